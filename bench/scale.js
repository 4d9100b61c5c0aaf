'use strict'

// The scale run of issue 23: `npm run bench:scale` (about 10 minutes on 2
// cores; not in CI). One redis-server holds 1,000,000 live logins, made
// through the store's own create (cookiesFor, pipelined), of 500,000 users
// with two devices each; three instances of login-store-redis share it and
// are sent requests at once, each request a login the instance has not
// seen. Measured, with 0, 100,000 and 1,000,000 ended logins in the list:
//  - Redis commands per request (INFO commandstats, the PINGs apart);
//  - memory of each instance (rss, heap after a forced GC), and from it the
//    memory per live login and per ended login held;
//  - Redis memory per login (INFO memory over the logins), and per ended
//    login (MEMORY USAGE of the ended set);
//  - the time for a new instance to become ready: it reads every ended login.
// Then @fastify/session over connect-redis, measured the same way in a Redis
// of its own: memory per session. The figures and what they give for 10
// instances and 10,000,000 logins go to bench/SCALE.md (--out FILE|-), and
// with --docs between the scale markers of docs/benchmark.md.
//
// Options: --live N (1000000), --ended a,b (100000,1000000: the ended logins
// to measure at, besides 0), --instances N (3), --seconds S (10, per load),
// --cookies N (100000: new logins each load sends), --sessions N (as --live),
// --out FILE|-, --docs.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { NAME } = require('./harness/scenarios')
const { redis, admin, startRedis, stopRedis, redisNow, commandsBetween, info } = require('./harness/redis')
const { children, startServer } = require('./harness/servers')
const { deal } = require('./harness/feeds')
const { load } = require('./harness/measure')
const { format, mb } = require('./harness/report')

const APP = 'login-store-redis'
const PREFIX = 'fastify-login:'
// Users of the filled logins: ids from here on (seven digits, as a database
// would number them), two logins each; the ended ones are of other users.
const FIRST_USER = 1000000
const LOGINS_PER_USER = 2
// Connections over all instances, as in npm run bench.
const CONNECTIONS = 48

function parseArgs (argv) {
  const options = { live: 1000000, ended: [100000, 1000000], instances: 3, seconds: 10, cookies: 100000, sessions: null, out: path.join(__dirname, 'SCALE.md'), docs: false }
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1]
    switch (argv[i]) {
      case '--live': options.live = whole('--live', value); i++; break
      case '--ended': options.ended = value.split(',').map((one) => whole('--ended', one)).sort((a, b) => a - b); i++; break
      case '--instances': options.instances = whole('--instances', value); i++; break
      case '--seconds': options.seconds = whole('--seconds', value); i++; break
      case '--cookies': options.cookies = whole('--cookies', value); i++; break
      case '--sessions': options.sessions = whole('--sessions', value); i++; break
      case '--out': options.out = value === '-' ? null : path.resolve(value); i++; break
      case '--docs': options.docs = true; break
      default: throw new Error(`unknown option ${argv[i]}`)
    }
  }
  options.sessions ??= options.live
  return options
}

function whole (flag, value) {
  const number = Number(value)
  if (!Number.isSafeInteger(number) || number < 1) throw new Error(`${flag} needs a whole number above 0`)
  return number
}

// ---------------------------------------------------------------- instances

// An instance, and how long it took to become ready: its `ready` (the
// realm, the subscription, every ended login read back from Redis), and the
// whole start from the fork to listening (Node and the modules loaded too).
async function startInstance () {
  const started = performance.now()
  const server = await startServer(APP, { execArgv: ['--expose-gc'] })
  return { server, readyMs: server.readyMs, startMs: performance.now() - started }
}

// Memory after a forced GC, in bytes.
async function memoryOf (server) {
  const { memory } = await server.stats(true)
  return { rss: memory.rss, heapUsed: memory.heapUsed }
}

// Waits until the instances have heard every ending published: their CPU
// time stops moving (a revocation heard costs some), for half a second.
async function settled (servers) {
  let before = await Promise.all(servers.map((server) => server.stats()))
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 500))
    const after = await Promise.all(servers.map((server) => server.stats()))
    const busy = after.map((one, i) => (one.cpu.user + one.cpu.system) - (before[i].cpu.user + before[i].cpu.system))
    // 500 ms with under 10 ms of CPU each: heartbeats only.
    if (busy.every((us) => us < 10000)) return
    before = after
  }
}

// What the instances and Redis spend with no request at all, a second: the
// subscribers' heartbeats (and the sweep of expired ended logins), over 3 s.
async function idle (servers) {
  const before = await Promise.all(servers.map((server) => server.stats()))
  const redisBefore = await redisNow()
  const started = performance.now()
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const seconds = (performance.now() - started) / 1000
  const redisAfter = await redisNow()
  const after = await Promise.all(servers.map((server) => server.stats()))
  const cpu = after.map((one, i) => (one.cpu.user + one.cpu.system - before[i].cpu.user - before[i].cpu.system) / 1000 / seconds)
  return {
    instanceMs: cpu.reduce((a, b) => a + b, 0) / cpu.length,
    redisMs: (redisAfter.cpu - redisBefore.cpu) / 1000 / seconds,
    pings: commandsBetween(redisBefore.calls, redisAfter.calls).pings / seconds
  }
}

// ---------------------------------------------------------------- load

// Requests to every instance at once, each with a new login (minted just
// before by the minting process, so that its last use is under a minute
// old, as a browser's cookie is: see harness/feeds.js). Instance i starts a
// third of the way further into the same cookies, so a login goes from one
// instance to the next as a balancer would send it, and no instance sees a
// login twice. Returns requests/second, Redis commands per request and each
// instance's CPU per request and memory.
async function spread (servers, minter, options) {
  const connections = Math.max(1, Math.floor(CONNECTIONS / servers.length))
  const scenario = { name: 'scale', method: 'GET', path: '/me', status: 200, body: NAME, anyUser: true }
  const feedsOf = (cookies) => servers.map((_, i) => {
    const offset = Math.floor(i * cookies.length / servers.length)
    return { headers: {}, cookies: deal([...cookies.slice(offset), ...cookies.slice(0, offset)], connections) }
  })
  // A warm-up on logins of their own (the JIT of new instances, and of the
  // others after a fill): not measured.
  const warmup = await minter.mint(Math.ceil(options.cookies / 5), true)
  const warmupFeeds = feedsOf(warmup)
  await Promise.all(servers.map((server, i) => load(scenario, server, warmupFeeds[i], { connections, duration: 2, window: Math.ceil(warmup.length / connections) })))
  const cookies = await minter.mint(options.cookies, true)
  const feeds = feedsOf(cookies)
  const window = Math.ceil(cookies.length / connections)
  const cpuBefore = await Promise.all(servers.map((server) => server.stats()))
  const redisBefore = await redisNow()
  const between = performance.now()
  const results = await Promise.all(servers.map((server, i) => load(scenario, server, feeds[i], { connections, duration: options.seconds, window })))
  // The PINGs a second over the time between the two readings, which holds
  // the building of each load's requests too, not over the load's seconds.
  const seconds = (performance.now() - between) / 1000
  const redisAfter = await redisNow()
  const cpuAfter = await Promise.all(servers.map((server) => server.stats()))
  const sent = results.reduce((sum, result) => sum + result.requests.sent, 0)
  const answered = results.reduce((sum, result) => sum + result.requests.total, 0)
  const ran = commandsBetween(redisBefore.calls, redisAfter.calls)
  const cpu = servers.map((_, i) => (cpuAfter[i].cpu.user + cpuAfter[i].cpu.system - cpuBefore[i].cpu.user - cpuBefore[i].cpu.system) / results[i].requests.total)
  return {
    rps: results.reduce((sum, result) => sum + result.requests.total / (result.duration - result.building), 0),
    answered,
    commandsPerRequest: ran.commands / sent,
    byName: ran.byName,
    pingsPerSecond: ran.pings / seconds,
    cpuPerRequest: cpu,
    memory: await Promise.all(servers.map(memoryOf))
  }
}

// ---------------------------------------------------------------- Redis

async function redisMemory () {
  return Number((await info('memory')).used_memory)
}

// Bytes Redis holds for one key and all it contains.
async function keyBytes (key) {
  return Number(await admin().call('MEMORY', 'USAGE', key, 'SAMPLES', '0'))
}

// The first filled user's index and one of its records, as the fill made
// them: their sizes, and the record's fields.
async function sampleLogin () {
  const tag = `${PREFIX}{u:${Buffer.from(String(FIRST_USER)).toString('base64url')}}:`
  const [loginId] = await admin().zrange(`${tag}logins`, 0, 0)
  const key = `${tag}login:${loginId}`
  return { record: await keyBytes(key), index: await keyBytes(`${tag}logins`), logins: Number(await admin().zcard(`${tag}logins`)), fields: await admin().hgetall(key) }
}

// One key of those matching `pattern`.
async function anyKey (pattern) {
  let cursor = '0'
  do {
    const [next, keys] = await admin().scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    if (keys.length > 0) return keys[0]
    cursor = next
  } while (cursor !== '0')
  throw new Error(`no key in Redis matches ${pattern}`)
}

// ---------------------------------------------------------------- the run

async function main () {
  const options = parseArgs(process.argv.slice(2))
  const started = Date.now()
  const log = (message) => console.log(`${Math.round((Date.now() - started) / 1000)} s: ${message}`)
  await startRedis()
  const minter = await startServer(APP)
  const stages = []
  let instances = []
  try {
    const emptyRedis = await redisMemory()
    instances = await Promise.all(Array.from({ length: options.instances }, startInstance))
    const servers = () => instances.map((one) => one.server)
    log(`${options.instances} instances ready in ${instances.map((one) => one.readyMs.toFixed(0)).join(', ')} ms (empty Redis; started in ${instances.map((one) => one.startMs.toFixed(0)).join(', ')} ms)`)

    const stage = async (label, live, ended, newcomer) => {
      const quiet = await idle(servers())
      const measured = await spread(servers(), minter, options)
      stages.push({ label, live, ended, newcomer, idle: quiet, ...measured })
      log(`${label}: ${format(measured.rps)} req/s over ${options.instances} instances, ${measured.commandsPerRequest.toFixed(4)} Redis commands a request ` +
        `${JSON.stringify(measured.byName)}, heap ${measured.memory.map((one) => mb(one.heapUsed)).join(' / ')} MB, rss ${measured.memory.map((one) => mb(one.rss)).join(' / ')} MB`)
    }
    // A new instance among the others: ready time, and its memory once it
    // has read every ended login back (not heard them one by one).
    const newcomer = async () => {
      const { server, readyMs, startMs } = await startInstance()
      try {
        return { readyMs, startMs, memory: await memoryOf(server) }
      } finally {
        await server.close()
      }
    }

    await stage('no logins in Redis but those the load sends', 0, 0, await newcomer())

    log(`filling ${format(options.live)} live logins …`)
    const before = await redisMemory()
    const fillStarted = performance.now()
    await minter.fill({ first: FIRST_USER, count: options.live, perUser: LOGINS_PER_USER, end: false })
    const fillSeconds = (performance.now() - fillStarted) / 1000
    const filled = await redisMemory()
    const sample = await sampleLogin()
    const liveFigures = { count: options.live, seconds: fillSeconds, bytes: filled - before, keys: Number(await admin().dbsize()), sample }
    log(`${format(options.live)} logins in ${fillSeconds.toFixed(1)} s; Redis ${mb(filled - before)} MB more, ${format((filled - before) / options.live)} bytes a login`)
    await stage(`${format(options.live)} live, none ended`, options.live, 0, await newcomer())

    let ended = 0
    let nextUser = FIRST_USER + Math.ceil(options.live / LOGINS_PER_USER)
    const endedFigures = []
    for (const target of options.ended) {
      const count = target - ended
      log(`ending ${format(count)} more logins (made, then ended with revokeAllLogins) …`)
      const endStarted = performance.now()
      const done = await minter.fill({ first: nextUser, count, perUser: LOGINS_PER_USER, end: true })
      if (done.ended !== count) throw new Error(`ended ${done.ended} logins of ${count}`)
      const seconds = (performance.now() - endStarted) / 1000
      nextUser += Math.ceil(count / LOGINS_PER_USER)
      ended = target
      await settled([...servers(), minter])
      const set = await keyBytes(`${PREFIX}ended`)
      const members = Number(await admin().zcard(`${PREFIX}ended`))
      endedFigures.push({ ended, seconds, count, set, members, redis: await redisMemory() })
      log(`${format(ended)} ended in the list (${format(members)} in Redis: ${format(set / members)} bytes each); made and ended in ${seconds.toFixed(1)} s`)
      await stage(`${format(options.live)} live, ${format(ended)} ended`, options.live, ended, await newcomer())
    }
    for (const one of instances) await one.server.close()
    instances = []
    await minter.close()
    stopRedis()

    // connect-redis, the same way: a Redis of its own, sessions made through
    // @fastify/session's own POST /login.
    log(`filling ${format(options.sessions)} sessions of @fastify/session + connect-redis …`)
    await startRedis()
    const sessionMinter = await startServer('session-redis')
    const emptySessions = await redisMemory()
    const sessionStarted = performance.now()
    await sessionMinter.fill({ count: options.sessions })
    const sessionSeconds = (performance.now() - sessionStarted) / 1000
    const sessionBytes = (await redisMemory()) - emptySessions
    const sessionKey = await anyKey('bench-session:*')
    const sessions = { count: options.sessions, seconds: sessionSeconds, bytes: sessionBytes, keys: Number(await admin().dbsize()), key: await keyBytes(sessionKey), value: await admin().get(sessionKey) }
    log(`${format(options.sessions)} sessions in ${sessionSeconds.toFixed(1)} s: ${format(sessionBytes / options.sessions)} bytes a session`)
    await sessionMinter.close()

    const markdown = report({ options, emptyRedis, instances: stages, live: liveFigures, ended: endedFigures, sessions, elapsed: (Date.now() - started) / 1000 })
    console.log('\n' + markdown)
    if (options.out !== null) {
      fs.writeFileSync(options.out, '# fastify-login at scale\n\n' + markdown + '\nReproduce: `npm run bench:scale` (writes this file; not run in CI).\n')
      console.log(`written to ${path.relative(process.cwd(), options.out)}`)
    }
    if (options.docs) intoDocs(markdown)
  } finally {
    for (const one of instances) await one.server.close()
    stopRedis()
  }
}

// ---------------------------------------------------------------- report

function report ({ options, instances, live, ended, sessions, elapsed }) {
  const cpus = os.cpus()
  const lines = []
  const base = instances[0]
  const perInstance = (stage, key) => stage.memory.reduce((sum, one) => sum + one[key], 0) / stage.memory.length
  lines.push(`${new Date().toISOString().slice(0, 10)} · ${cpus[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores · ` +
    `Node ${process.version} · ${os.type()} ${os.release()} · ${Math.round(elapsed)} s`, '')
  lines.push(`One redis-server; ${options.instances} instances of login-store-redis (bench/server.js) sharing it, ` +
    `${CONNECTIONS} connections spread over them, ${options.seconds} s of load at each stage after 2 s of warm-up, each request a login that instance had not seen ` +
    `(${format(options.cookies)} new logins minted just before each load by the minting process, sent to every instance in turn). ` +
    `Live logins: ${format(live.count)}, of ${format(live.count / LOGINS_PER_USER)} users with ${LOGINS_PER_USER} each, made through the store's own create (\`cookiesFor\`, 256 in flight) ` +
    `with a browser's user agent (${live.sample.fields.userAgent.length} characters); ended logins made the same way, then ended with \`revokeAllLogins\`. ` +
    'Memory after a forced GC (`--expose-gc`), the mean of the instances.', '')

  lines.push('| stage | req/s (all instances) | Redis cmd/req | by command | instance µs/req | heap used | rss | new instance: ready / started in | its heap |')
  lines.push('|---|--:|--:|---|--:|--:|--:|--:|--:|')
  for (const stage of instances) {
    const commands = Object.entries(stage.byName).map(([name, count]) => `${name} ${format(count)}`).join(', ') || 'none'
    lines.push(`| ${stage.label} | ${format(stage.rps)} | ${stage.commandsPerRequest.toFixed(4)} | ${commands} (of ${format(stage.answered)} requests) | ` +
      `${(stage.cpuPerRequest.reduce((a, b) => a + b, 0) / stage.cpuPerRequest.length).toFixed(1)} | ${mb(perInstance(stage, 'heapUsed'))} MB | ${mb(perInstance(stage, 'rss'))} MB | ` +
      `${format(stage.newcomer.readyMs)} / ${format(stage.newcomer.startMs)} ms | ${mb(stage.newcomer.memory.heapUsed)} MB |`)
  }
  const pings = instances.map((stage) => stage.pingsPerSecond)
  const idleMs = instances.map((stage) => stage.idle.instanceMs)
  const idleRedis = instances.map((stage) => stage.idle.redisMs)
  lines.push('', `Left out of the commands: PINGs, ${format(Math.min(...pings))}–${format(Math.max(...pings))} a second, the heartbeats of ` +
    `${options.instances + 1} subscribers (the instances and the minting process), at most 20 a second each (50 before 7 December). With no request at all, ` +
    `each instance spent ${Math.min(...idleMs).toFixed(1)}–${Math.max(...idleMs).toFixed(1)} ms of CPU a second (its heartbeat, and the sweep of expired ended logins), ` +
    `and Redis ${Math.min(...idleRedis).toFixed(1)}–${Math.max(...idleRedis).toFixed(1)} ms a second for all ${options.instances + 1} (3 s at each stage).`)

  const withLive = instances.find((stage) => stage.live > 0 && stage.ended === 0)
  const perLive = withLive === undefined ? null : (perInstance(withLive, 'heapUsed') - perInstance(base, 'heapUsed')) / withLive.live
  lines.push('', '| per instance | heap | rss |', '|---|--:|--:|')
  lines.push(`| no login in Redis (the bounded caches full from the load) | ${mb(perInstance(base, 'heapUsed'))} MB | ${mb(perInstance(base, 'rss'))} MB |`)
  if (perLive !== null) lines.push(`| per live login (${format(withLive.live)} live against none) | ${perLive.toFixed(1)} bytes | ${((perInstance(withLive, 'rss') - perInstance(base, 'rss')) / withLive.live).toFixed(1)} bytes |`)
  for (const stage of instances.filter((one) => one.ended > 0)) {
    const heard = (perInstance(stage, 'heapUsed') - perInstance(withLive, 'heapUsed')) / stage.ended
    const read = (stage.newcomer.memory.heapUsed - withLive.newcomer.memory.heapUsed) / stage.ended
    lines.push(`| per ended login, ${format(stage.ended)} ended: heard one by one (running instances) / read back at ready (a new one) | ` +
      `${format(heard)} / ${format(read)} bytes | ${format((perInstance(stage, 'rss') - perInstance(withLive, 'rss')) / stage.ended)} / ` +
      `${format((stage.newcomer.memory.rss - withLive.newcomer.memory.rss) / stage.ended)} bytes |`)
  }

  const perLogin = live.bytes / live.count
  const perSession = sessions.bytes / sessions.count
  lines.push('', '| Redis | count | made in | used_memory added | per one | one key (MEMORY USAGE) |', '|---|--:|--:|--:|--:|---|')
  lines.push(`| fastify-login, live logins | ${format(live.count)} | ${live.seconds.toFixed(1)} s | ${mb(live.bytes)} MB | ${format(perLogin)} bytes | ` +
    `record ${format(live.sample.record)} B; user index ${format(live.sample.index)} B for ${live.sample.logins} logins |`)
  for (const one of ended) {
    lines.push(`| fastify-login, ended logins (the \`ended\` set) | ${format(one.members)} | ${one.seconds.toFixed(1)} s (${format(one.count)} made and ended) | ` +
      `${mb(one.set)} MB | ${format(one.set / one.members)} bytes | the whole set |`)
  }
  lines.push(`| @fastify/session + connect-redis, sessions | ${format(sessions.count)} | ${sessions.seconds.toFixed(1)} s | ${mb(sessions.bytes)} MB | ${format(perSession)} bytes | ` +
    `${format(sessions.key)} B: \`${sessions.value}\` |`)
  lines.push('', `A login in Redis is ${(perLogin / perSession).toFixed(1)} times a connect-redis session: its record keeps what the devices list shows ` +
    '(user agent, address, times, method) and an entry in its user\'s index, where the session holds the user id and its cookie\'s settings. ' +
    `The record as filled: ${Object.entries(live.sample.fields).map(([field, value]) => `${field} ${value.length}`).join(', ')} (characters of each value).`)

  // 10 instances, 10,000,000 logins, from the figures above.
  const last = instances[instances.length - 1]
  const endedMost = last.ended > 0 ? last : null
  const heardPerEnded = endedMost === null ? null : (perInstance(endedMost, 'heapUsed') - perInstance(withLive, 'heapUsed')) / endedMost.ended
  const readyPerEnded = endedMost === null ? null : (endedMost.newcomer.readyMs - withLive.newcomer.readyMs) / endedMost.ended
  lines.push('', '| 10 instances, 10,000,000 live logins | from | figure |', '|---|---|--:|')
  lines.push(`| Redis memory for the logins | ${format(perLogin)} bytes × 10,000,000 | ${format(perLogin * 1e7 / 2 ** 30)} GB |`)
  lines.push(`| Redis memory for the same as connect-redis sessions | ${format(perSession)} bytes × 10,000,000 | ${format(perSession * 1e7 / 2 ** 30)} GB |`)
  lines.push(`| Redis commands per request (logins not seen) | measured: does not depend on instances or logins | ${last.commandsPerRequest.toFixed(4)} |`)
  lines.push('| PINGs a second | 20 × 10 subscribers | 200 |')
  lines.push(`| CPU of an idle instance (its heartbeat) | measured, per instance | ${base.idle.instanceMs.toFixed(1)} ms a second |`)
  if (heardPerEnded !== null) {
    lines.push(`| instance heap per 1,000,000 ended logins held | ${format(heardPerEnded)} bytes × 1,000,000 | ${mb(heardPerEnded * 1e6)} MB |`)
    lines.push(`| new instance ready, per 1,000,000 ended logins | (${format(endedMost.newcomer.readyMs)} − ${format(withLive.newcomer.readyMs)} ms) / ${format(endedMost.ended)} × 1,000,000 | ${format(readyPerEnded * 1e6)} ms |`)
  }
  return lines.join('\n') + '\n'
}

// `--docs`: between the scale markers of docs/benchmark.md.
function intoDocs (markdown) {
  const file = path.join(__dirname, '..', 'docs', 'benchmark.md')
  const text = fs.readFileSync(file, 'utf8')
  const start = '<!-- scale:start -->'
  const end = '<!-- scale:end -->'
  const from = text.indexOf(start)
  const to = text.indexOf(end)
  if (from === -1 || to < from) throw new Error(`docs/benchmark.md has no ${start} … ${end} markers`)
  fs.writeFileSync(file, text.slice(0, from + start.length) + '\n' + markdown + text.slice(to))
  console.log('docs/benchmark.md: scale results updated')
}

main().catch((error) => {
  console.error(error)
  for (const child of children) child.kill()
  if (redis.child !== null) stopRedis()
  process.exit(1)
})
