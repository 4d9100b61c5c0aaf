'use strict'

// What one device-binding refresh costs the server, in this process:
// `npm run build && node bench/device-binding.js`. A bound login (memoryStore,
// an ES256 or RS256 key made here) refreshes N times; each refresh is the
// browser's two requests (the one that gets a challenge, the signed one),
// sent with app.inject. What an empty POST with the same headers costs
// through inject is measured the same way and taken off, so what is left is
// the plugin's own work: two account-cookie checks (cached), a challenge
// signed and checked (HMAC), the JSON web token read, one record read, one
// signature check, one conditional write, a bound cookie signed. The
// browser's signing happens between the requests, outside the timings.
// Kept apart from `npm run bench`, which measures request throughput.

const { constants, generateKeyPairSync, sign } = require('node:crypto')
const Fastify = require('fastify')
const fastifyLogin = require('..')

const ROUNDS = Number(process.argv[2] ?? 2000)
const SECRET = 'a benchmark secret, 32 characters or more'

function token (alg, key, challenge, jwk) {
  const head = Buffer.from(JSON.stringify({ alg, typ: 'dbsc+jwt', ...(jwk === undefined ? {} : { jwk }) })).toString('base64url')
  const body = Buffer.from(JSON.stringify({ jti: challenge })).toString('base64url')
  const input = Buffer.from(`${head}.${body}`)
  const signature = alg === 'ES256'
    ? sign('sha256', input, { key, dsaEncoding: 'ieee-p1363' })
    : sign('sha256', input, { key, padding: constants.RSA_PKCS1_PADDING })
  return `${head}.${body}.${signature.toString('base64url')}`
}

function cookiesOf (response, jar) {
  for (const cookie of response.cookies) jar[cookie.name] = cookie.value
  return jar
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

async function measure (alg) {
  const app = Fastify({ trustProxy: true })
  await app.register(fastifyLogin, { secret: SECRET, store: fastifyLogin.memoryStore(), userLoader: (id) => ({ id }), deviceBinding: true })
  app.get('/login', async (request, reply) => {
    await app.loginManager.loginUser(request, reply, { id: '1' })
    return 'in'
  })
  app.post('/empty', { bodyLimit: 1 }, async () => ({}))
  await app.ready()
  const headers = { 'x-forwarded-proto': 'https' }
  const pair = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 })
  const login = await app.inject({ url: '/login', headers })
  const jar = cookiesOf(login, {})
  const offer = /path="([^"]+)";challenge="([^"]+)"/.exec(login.headers['secure-session-registration'])
  const registration = await app.inject({ method: 'POST', url: offer[1], cookies: jar, headers: { ...headers, 'secure-session-response': token(alg, pair.privateKey, offer[2], pair.publicKey.export({ format: 'jwk' })) } })
  cookiesOf(registration, jar)
  const { session_identifier: session, refresh_url: refresh } = registration.json()

  const ask = { ...headers, 'sec-secure-session-id': session }
  const refreshes = []
  const empties = []
  for (let round = 0; round < ROUNDS; round++) {
    // A challenge is used once, by its issue time in milliseconds: a browser
    // never refreshes twice within one, this loop would.
    const last = Date.now()
    while (Date.now() === last);
    let started = process.hrtime.bigint()
    const asked = await app.inject({ method: 'POST', url: refresh, cookies: jar, headers: ask })
    const challengeNs = process.hrtime.bigint() - started
    const challenge = /^"([^"]+)"/.exec(asked.headers['secure-session-challenge'])[1]
    const proof = { ...ask, 'secure-session-response': token(alg, pair.privateKey, challenge) }
    started = process.hrtime.bigint()
    const proven = await app.inject({ method: 'POST', url: refresh, cookies: jar, headers: proof })
    const proofNs = process.hrtime.bigint() - started
    if (asked.statusCode !== 403 || proven.statusCode !== 200) throw new Error(`refresh ${round}: ${asked.statusCode}, ${proven.statusCode}`)
    cookiesOf(proven, jar)
    started = process.hrtime.bigint()
    await app.inject({ method: 'POST', url: '/empty', cookies: jar, headers: ask })
    await app.inject({ method: 'POST', url: '/empty', cookies: jar, headers: proof })
    empties.push(Number(process.hrtime.bigint() - started) / 1000)
    refreshes.push(Number(challengeNs + proofNs) / 1000)
  }
  await app.close()
  // The first tenth warms the JIT up: not counted.
  const counted = (values) => values.slice(Math.floor(values.length / 10))
  const refresh_ = median(counted(refreshes))
  const empty = median(counted(empties))
  console.log(`${alg}: one refresh (two requests) ${refresh_.toFixed(0)} µs through inject, two empty POSTs ${empty.toFixed(0)} µs: the plugin's work ≈ ${(refresh_ - empty).toFixed(0)} µs (median of ${counted(refreshes).length})`)
}

async function main () {
  await measure('ES256')
  await measure('RS256')
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
