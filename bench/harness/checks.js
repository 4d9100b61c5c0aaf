'use strict'

// The checks after the rounds: memory of a guarded server, revocation across instances.

const { request } = require('./net')
const { startServer } = require('./servers')
const { NAME, REFUSED, SCENARIOS, REVOKE_TIMEOUT_MS, CACHED_LOGINS } = require('./scenarios')
const { login, sameSizeCookie, prepare, mintElsewhere } = require('./feeds')
const { load } = require('./measure')
const { median, format, mb } = require('./report')

// A short run, then a ten times longer one, each followed by a forced GC:
// the memory of the login-guarded server must not grow with the requests it
// serves. Each request carries a login cookie of its own, so that anything
// kept per cookie would show. The cookies are minted first, by another
// process of the same server (same secret), so that minting does not swell
// the measured server. A warm-up as long as the long run comes first: the
// process's memory outside the JS heap (allocator, buffers of crypto and http)
// grows over the first 100,000 requests or so and then stays flat, and that
// is not growth per request.
async function memoryCheck (options) {
  const scenario = SCENARIOS.find((one) => one.name === 'login-guarded')
  const short = options.memoryRequests
  const cookies = await mintElsewhere(scenario.app, undefined, short * 21)
  const server = await startServer(scenario.app, { execArgv: ['--expose-gc'] })
  try {
    const { headers } = await prepare(scenario, server, options)
    // Memory per cached login: the heap with one login cookie seen (and the
    // code warm), then with the cache of verified cookies full (2 × 5,000).
    // The cache takes a cookie on its second visit: each comes twice in a row.
    const cached = Math.min(CACHED_LOGINS, short * 10)
    await load(scenario, server, { headers }, { ...options, amount: cached })
    const empty = (await server.stats(true)).memory.heapUsed
    const twice = cookies.slice(0, cached).flatMap((cookie) => [cookie, cookie])
    await load(scenario, server, { headers: {}, cookies: { list: twice, next: 0, end: twice.length } }, { ...options, amount: twice.length })
    const full = (await server.stats(true)).memory.heapUsed
    const perLogin = (full - empty) / cached
    console.log(`memory: ${format(perLogin)} bytes of heap per cached login (${format(cached)} cached)`)
    if (short * 10 > cached) await load(scenario, server, { headers: {}, cookies: { list: cookies, next: cached, end: short * 10 } }, { ...options, amount: short * 10 - cached })
    const samples = []
    let next = short * 10
    for (const amount of [short, short * 10]) {
      const first = next
      next += amount
      await load(scenario, server, { headers: {}, cookies: { list: cookies, next: first, end: next } }, { ...options, amount })
      const { memory } = await server.stats(true)
      samples.push({ requests: amount, rss: memory.rss, heapUsed: memory.heapUsed })
      console.log(`memory: after ${format(amount)} more requests, each with its own cookie: rss ${mb(memory.rss)} MB, heap used ${mb(memory.heapUsed)} MB`)
    }
    return { samples, perLogin, cached }
  } finally {
    await server.close()
  }
}

// Three instances of login-store-redis sharing one Redis, as a deployment
// would: a login all three have served is revoked on one, and the two others
// are asked about it in a loop until they refuse it. Each sample is the time
// from sending the revoke to the refusal by one of the others.
async function revocationCheck (options) {
  const servers = await Promise.all([0, 1, 2].map(() => startServer('login-store-redis')))
  try {
    const samples = []
    const times = options.smoke ? 3 : 50
    for (let i = 0; i < times; i++) {
      const at = servers[i % 3]
      const others = servers.filter((one) => one !== at)
      const cookie = await login(at)
      const headers = { cookie: sameSizeCookie(cookie) }
      // Each instance knows the login (its cache is warm: no store read).
      for (const one of servers) {
        for (let twice = 0; twice < 2; twice++) {
          const answer = await request(one.port, 'GET', '/me', headers)
          if (answer.status !== 200 || answer.body !== NAME) throw new Error(`revocation: a new login answered ${answer.status} on another instance`)
        }
      }
      const started = process.hrtime.bigint()
      const revoke = request(at.port, 'POST', '/logout', headers)
      await Promise.all(others.map(async (one) => {
        for (;;) {
          const answer = await request(one.port, 'GET', '/me', headers)
          const ms = Number(process.hrtime.bigint() - started) / 1e6
          if (answer.status === 401 && answer.body === REFUSED) return samples.push(ms)
          if (answer.status !== 200) throw new Error(`revocation: another instance answered ${answer.status} while the login was revoked`)
          if (ms > REVOKE_TIMEOUT_MS) throw new Error(`revocation: another instance still accepted a revoked login after ${REVOKE_TIMEOUT_MS} ms`)
        }
      }))
      const revoked = await revoke
      if (revoked.status !== 200) throw new Error(`revocation: POST /logout answered ${revoked.status}`)
      // And it stays refused on every instance, the one that revoked it too.
      for (const one of servers) {
        const answer = await request(one.port, 'GET', '/me', headers)
        if (answer.status !== 401) throw new Error(`revocation: a revoked login answered ${answer.status} afterwards`)
      }
    }
    const sorted = [...samples].sort((a, b) => a - b)
    const result = { count: samples.length, median: median(samples), p99: sorted[Math.ceil(sorted.length * 0.99) - 1], max: sorted[sorted.length - 1] }
    console.log(`revocation across 3 instances: ${result.count} refusals, median ${result.median.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, max ${result.max.toFixed(1)} ms`)
    return result
  } finally {
    await Promise.all(servers.map((server) => server.close()))
  }
}

module.exports = { memoryCheck, revocationCheck }
