'use strict'

// The benchmark: `npm run bench` (full, about 4 minutes on 2 cores) or
// `npm run bench:smoke` (`--smoke`: 1-second rounds, one round, every
// server, nothing written: the check CI can run so the harness cannot rot).
//
// Each server runs in its own Node process (bench/server.js) on a free
// loopback port; autocannon runs here, in this process, as a library. The
// servers take turns round after round (the order reversed every other round)
// so that drift of the machine hits all of them alike. Every measurement
// checks that each response had the expected status and body, and a guarded
// route must refuse a request without the cookie before it is measured.
//
// On Linux the CPU time the rest of the machine uses (other processes, other
// tenants of a VM) is watched too: before each measurement the harness waits
// for the machine to be quiet, and a measurement disturbed by more than
// --max-foreign of the machine is redone, both within --patience seconds
// for the whole run.
//
// Options: --smoke, --rounds N, --duration S, --warmup S, --generations N
// (sets of fresh server processes the rounds are split between), --connections N,
// --only a,b (scenarios), --no-memory, --memory-requests N, --out FILE|-,
// --docs (also put the results into docs/benchmark.md, between its bench
// markers; --readme is the old name of it),
// --max-foreign 0.15, --patience S, --profile SCENARIO (a CPU profile of that server,
// written to bench/profiles/, and its top functions), --compare PATH (every
// fastify-login server also runs from another build's dist/index.js, as
// `name@before`: how a change is measured side by side).

const { fork, spawn } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const autocannon = require('autocannon')

const SERVER = path.join(__dirname, 'server.js')
const NAME = 'Ada'
const REFUSED = 'Please log in to access this page.'
// floor-cold cycles through the cookies of the 1,000 users of bench/server.js.
const ANY_USER = /^(Ada|user[0-9]{1,4})$/

// app: the server kind of bench/server.js. cookie: send the cookie that the
// app's own POST /login issued. Every scenario gets its own server process.
const SCENARIOS = [
  { name: 'bare', app: 'bare', what: 'no auth (the ceiling)' },
  // A second process of the same server: its ratio to bare, 1.00 in theory,
  // shows how far this machine lets two identical servers apart.
  { name: 'bare-twin', app: 'bare', what: 'the same as bare, another process: the noise floor' },
  // bare fed another Cookie header on each request, as the cold scenarios
  // are: bare reads none of it, so what differs from bare is what the feed
  // itself costs the server.
  { name: 'bare-cold', app: 'bare', cold: true, what: 'bare, each request with another Cookie header' },
  { name: 'floor', app: 'floor', what: '@fastify/cookie, one signed cookie unsigned by hand' },
  // floor with a Cookie header that changes on every request, as login-cold's
  // does: the harness then does the same work for both (floor keeps nothing
  // per cookie, so it is as fast either way).
  { name: 'floor-cold', app: 'floor', cold: true, anyUser: true, what: 'floor, each request with another signed cookie' },
  { name: 'login-unguarded', app: 'login-unguarded', what: 'fastify-login registered, route without guard' },
  { name: 'login-guarded', app: 'login', what: 'fastify-login, loginRequired + request.currentUser' },
  // Real traffic brings cookies the cache of verified cookies has not seen
  // (first requests, more logins than it holds, a restarted process): here
  // every request does, so every request pays the HMAC.
  { name: 'login-cold', app: 'login', cold: true, what: 'login-guarded, each request with a login cookie not seen before (no cache hit)' },
  // Server-side login records (issue 10): in the process, and in Redis (a
  // redis-server the harness starts). Warm: the process has seen the login
  // and heard no revocation, so no store round trip; cold: every request a
  // login it has not seen, so one Redis read each.
  { name: 'login-store-memory', app: 'login-store-memory', what: 'login-guarded with memoryStore()' },
  { name: 'login-store-redis', app: 'login-store-redis', what: 'login-guarded with redisStore(), a login the process knows' },
  { name: 'login-store-redis-cold', app: 'login-store-redis', cold: true, what: 'login-store-redis, each request with a login not seen before (a Redis read each)' },
  // Not in the default run (--only login-fresh-strong): a route that also checks freshness and the client.
  { name: 'login-fresh-strong', app: 'login-fresh-strong', extra: true, what: "fastify-login, freshLoginRequired, sessionProtection 'strong'" },
  { name: 'login-anonymous', app: 'login', cookie: false, status: 401, body: REFUSED, what: 'fastify-login guard, no cookie (401)' },
  { name: 'passport', app: 'passport', what: '@fastify/passport + @fastify/secure-session, isAuthenticated()' },
  // passport fed another session cookie on each request, as login-cold is:
  // it decrypts every request either way, so this should match passport.
  { name: 'passport-cold', app: 'passport', cold: true, what: 'passport, each request with another session cookie' },
  { name: 'session', app: 'session', what: '@fastify/session, memory store, user id in the session' },
  { name: 'session-redis', app: 'session-redis', what: '@fastify/session over connect-redis (node-redis), user id in the session' },
  { name: 'login-login', app: 'login', method: 'POST', path: '/login', cookie: false, what: 'fastify-login loginUser, issues its cookies' },
  { name: 'passport-login', app: 'passport', method: 'POST', path: '/login', cookie: false, what: '@fastify/passport logIn, issues its session' }
].map((scenario) => ({ method: 'GET', path: '/me', cookie: true, status: 200, body: NAME, ...scenario }))

// The issue's targets, on the ratio of requests/second to the baseline's in the same round.
const TARGETS = [
  { name: 'bare-twin', baseline: 'bare', min: null },
  { name: 'bare-cold', baseline: 'bare', min: null },
  { name: 'login-unguarded', baseline: 'bare', min: 0.98 },
  { name: 'login-guarded', baseline: 'floor', min: 1.30 },
  { name: 'login-guarded', baseline: 'passport', min: 1.5 },
  { name: 'login-guarded', baseline: 'session', min: 2.5 },
  // Issue 14: the first request of a login, and the login itself.
  { name: 'floor-cold', baseline: 'floor', min: null },
  { name: 'login-cold', baseline: 'floor-cold', min: 1.10 },
  { name: 'login-cold', baseline: 'passport', min: 1.30 },
  { name: 'login-cold', baseline: 'passport-cold', min: null },
  { name: 'login-login', baseline: 'passport-login', min: 1.20 },
  // Issue 10: logins you can end.
  { name: 'login-store-memory', baseline: 'login-guarded', min: null },
  { name: 'login-store-redis', baseline: 'login-guarded', min: 0.95 },
  { name: 'login-store-redis', baseline: 'session-redis', min: 3 },
  { name: 'login-store-redis-cold', baseline: 'session-redis', min: null }
]
// Revocation across instances (issue 10): the slowest of the other instances
// to refuse a revoked login, ms after the revoke was sent.
const REVOKE_P99_MS = 100
const REVOKE_TIMEOUT_MS = 2000
// Distinct login cookies a cold scenario goes through, in order: each comes
// back only after all the others. The cache of verified cookies takes a
// cookie on its second visit if its fingerprint's slot (one of 8,192) was
// not written over in between; after 20,000 others, 8.7 % of them still
// were, and hit on every later visit. After 100,000, e^(-100000/8192): none.
const COLD_COOKIES = 100000
// Requests a connection has built for one run: more than a 1 s round sends
// (about 800 at 40k req/s over 50 connections). A longer run (the warm-up,
// a profile) goes round them again: each then comes back after 50,000 other
// cookies, still cold (e^(-50000/8192) of them admitted: 0.2 %).
const COLD_WINDOW = 1000
const MEMORY_GROWTH = 1.10
// The capacity of the cache of verified account cookies (two generations of 5,000).
const CACHED_LOGINS = 10000

function parseArgs (argv) {
  const smoke = argv.includes('--smoke') || process.env.BENCH_SMOKE === '1'
  const options = {
    smoke,
    // Many short turns cancel drift better than a few long ones.
    rounds: smoke ? 1 : 12,
    // autocannon stops on whole seconds.
    duration: 1,
    warmup: smoke ? 1 : 2,
    // Sets of fresh server processes the rounds are split between.
    generations: smoke ? 1 : 3,
    connections: 50,
    memory: !argv.includes('--no-memory'),
    memoryRequests: smoke ? 200 : 10000,
    only: null,
    compare: null,
    out: smoke ? null : path.join(__dirname, 'RESULTS.md'),
    profile: null,
    readme: false,
    maxForeign: 0.15,
    // Seconds that waiting for quiet and redoing disturbed measurements may
    // add to the whole run.
    patience: smoke ? 0 : 40
  }
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1]
    switch (argv[i]) {
      case '--rounds': options.rounds = positive('--rounds', value); i++; break
      case '--duration': options.duration = positive('--duration', value); i++; break
      case '--warmup': options.warmup = Number(value); i++; break
      case '--generations': options.generations = positive('--generations', value); i++; break
      case '--connections': options.connections = positive('--connections', value); i++; break
      case '--memory-requests': options.memoryRequests = positive('--memory-requests', value); i++; break
      case '--max-foreign': options.maxForeign = Number(value); i++; break
      case '--patience': options.patience = Number(value); i++; break
      case '--only': options.only = value.split(','); i++; break
      case '--compare': options.compare = path.resolve(value); i++; break
      case '--out': options.out = value === '-' ? null : path.resolve(value); i++; break
      case '--profile': options.profile = value; i++; break
      case '--docs':
      case '--readme': options.readme = true; break
    }
  }
  return options
}

function positive (flag, value) {
  const number = Number(value)
  if (!(number > 0)) throw new Error(`${flag} needs a positive number`)
  return number
}

// ---------------------------------------------------------------- servers

// Every server process forked, so that a failed run can end them all
// rather than hang on their open IPC channels.
const children = new Set()

// The redis-server of the run, for the servers that keep logins or sessions
// in Redis: Debian's, on a free loopback port, in a directory of its own,
// nothing saved to disk. Like `children`, it belongs to the run and is
// stopped however the run ends.
const redis = { port: null, child: null, dir: null }

function needsRedis (app) {
  return app.endsWith('-redis')
}

async function startRedis () {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fastify-login-bench-redis-'))
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'ignore', 'inherit'] })
  child.once('error', (error) => console.error(`redis-server could not start (${error.message}): install it with \`apt-get install redis-server\``))
  Object.assign(redis, { port, child, dir })
  const deadline = Date.now() + 10000
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) throw new Error('redis-server exited before it answered')
    try {
      if ((await ping(port)).startsWith('+PONG')) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within 10 s`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function stopRedis () {
  if (redis.child !== null && redis.child.exitCode === null) redis.child.kill()
  if (redis.dir !== null) fs.rmSync(redis.dir, { recursive: true, force: true })
  Object.assign(redis, { port: null, child: null, dir: null })
}

// PING in Redis' inline form: enough to wait for the server without a client.
function ping (port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.setTimeout(1000, () => socket.destroy(new Error('timed out')))
    socket.once('error', reject)
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (chunk) => {
      socket.end()
      resolve(chunk.toString())
    })
  })
}

function freePort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

// Forks bench/server.js and resolves once it listens. `plugin` loads
// fastify-login from another checkout (compare a change side by side).
function startServer (app, { execArgv = [], plugin } = {}) {
  return new Promise((resolve, reject) => {
    const args = plugin === undefined ? [app] : [app, plugin]
    const env = redis.port === null ? process.env : { ...process.env, BENCH_REDIS_PORT: String(redis.port) }
    const child = fork(SERVER, args, { execArgv, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.add(child)
    const pending = new Map()
    let nextId = 0
    const onExit = (code) => reject(new Error(`server ${app} exited with code ${code} before listening`))
    child.once('exit', onExit)
    // A server that dies answers nothing more: fail what waits on it.
    child.once('exit', (code, signal) => {
      children.delete(child)
      for (const [, waiting] of pending) waiting.reject(new Error(`server ${app} exited (${signal ?? code}) during the run`))
      pending.clear()
    })
    child.on('message', (message) => {
      if (message.type === 'listening') {
        child.off('exit', onExit)
        resolve(server(message.port))
      } else if (pending.has(message.id)) {
        pending.get(message.id).resolve(message)
        pending.delete(message.id)
      }
    })

    function ask (message) {
      return new Promise((resolve, reject) => {
        const id = nextId++
        pending.set(id, { resolve, reject })
        child.send({ ...message, id })
      })
    }

    function server (port) {
      return {
        app,
        plugin,
        port,
        // CPU time and memory of the server process, after a GC if asked
        // (and the server runs with --expose-gc).
        stats: (gc = false) => ask({ type: 'stats', gc }),
        // Distinct valid login cookies, minted with loginManager.cookiesFor,
        // asked for 10,000 at a time to keep each IPC message small.
        async mint (count) {
          const cookies = []
          while (cookies.length < count) cookies.push(...(await ask({ type: 'mint', count: Math.min(10000, count - cookies.length) })).cookies)
          return cookies
        },
        close () {
          return new Promise((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve()
            child.once('exit', resolve)
            child.send({ type: 'close' })
          })
        }
      }
    }
  })
}

function request (port, method, urlPath, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

// Logs in through the app's own POST /login: each auth layer issues its own cookie.
async function login (server) {
  const response = await request(server.port, 'POST', '/login')
  const setCookie = response.headers['set-cookie'] ?? []
  if (response.status !== 200 || response.body !== NAME || setCookie.length === 0) {
    throw new Error(`${server.app}: POST /login answered ${response.status} ${JSON.stringify(response.body)} without a cookie`)
  }
  return setCookie.map((line) => line.split(';', 1)[0]).join('; ')
}

// Every measured request carries a Cookie header of this many bytes: the
// auth layer's own cookie (if any) and a filler cookie making up the rest.
// Header size alone moves a bare route by up to 10 % on loopback; with the
// same bytes in every request, only the auth layer differs between servers.
const COOKIE_HEADER_BYTES = 320

function sameSizeCookie (cookie) {
  const filler = COOKIE_HEADER_BYTES - cookie.length - (cookie === '' ? 0 : 2) - 'filler='.length
  if (filler < 1) throw new Error(`a ${cookie.length}-byte cookie does not fit in the ${COOKIE_HEADER_BYTES} bytes every request sends: raise COOKIE_HEADER_BYTES`)
  return [cookie, 'filler=' + 'f'.repeat(filler)].filter(Boolean).join('; ')
}

// Before measuring: the scenario answers what it should, and a guarded route
// refuses a request without the cookie or with a forged one (a guard that let
// everyone in would be fast and worthless). Returns what to measure with: the
// request headers, and for a cold scenario its cookies, dealt out between
// the `connections` it is measured with.
async function prepare (scenario, server, connections) {
  const cookie = await login(server)
  const headers = { cookie: sameSizeCookie(scenario.cookie ? cookie : '') }
  const response = await request(server.port, scenario.method, scenario.path, headers)
  if (response.status !== scenario.status || response.body !== scenario.body) {
    throw new Error(`${scenario.name}: ${scenario.method} ${scenario.path} answered ${response.status} ${JSON.stringify(response.body)}, ` +
      `expected ${scenario.status} ${JSON.stringify(scenario.body)}`)
  }
  const guarded = scenario.app !== 'bare' && scenario.app !== 'login-unguarded'
  if (guarded) {
    for (const [label, refused] of [['without a cookie', ''], ['with a forged cookie', forge(cookie)]]) {
      const answer = await request(server.port, 'GET', '/me', { cookie: sameSizeCookie(refused) })
      if (answer.status !== 401 || answer.body !== REFUSED) {
        throw new Error(`${scenario.name}: GET /me ${label} answered ${answer.status}, expected 401`)
      }
    }
  }
  // A login the server can end: once revoked, its cookie is refused.
  if (scenario.app.startsWith('login-store')) await checkRevoked(scenario.name, server, server)
  if (!scenario.cold) return { headers }
  // bare issues no login: cookies of random bytes, as many.
  const list = scenario.app === 'bare'
    ? Array.from({ length: COLD_COOKIES }, () => `uid=${crypto.randomBytes(96).toString('base64url')}`)
    : await mintElsewhere(server.app, server.plugin, COLD_COOKIES)
  // Connection k sends cookies k, k + 50, k + 100, …, and each connection
  // carries on from run to run: a cookie comes back after all the others.
  const shares = Array.from({ length: connections }, () => [])
  list.forEach((cookie, i) => shares[i % connections].push(sameSizeCookie(cookie)))
  return { headers: {}, cookies: { shares, cursors: shares.map(() => 0) } }
}

// Cookies minted by another process of the same server (same secret, same
// build), so that the measured one does not start with the garbage of
// minting 100,000 of them: CPU profiles of cold scenarios showed it as
// allocations costing ten times more than in a warm one.
async function mintElsewhere (app, plugin, count) {
  const minter = await startServer(app, { plugin })
  try {
    return await minter.mint(count)
  } finally {
    await minter.close()
  }
}

// Logs in on `at`, revokes the login there (POST /logout with its cookie),
// and checks that `on` refuses that cookie afterwards.
async function checkRevoked (name, at, on) {
  const cookie = await login(at)
  const headers = { cookie: sameSizeCookie(cookie) }
  const before = await request(on.port, 'GET', '/me', headers)
  if (before.status !== 200 || before.body !== NAME) throw new Error(`${name}: a new login answered ${before.status} before its revocation`)
  const logout = await request(at.port, 'POST', '/logout', headers)
  if (logout.status !== 200) throw new Error(`${name}: POST /logout answered ${logout.status}`)
  const after = await request(on.port, 'GET', '/me', headers)
  if (at === on && (after.status !== 401 || after.body !== REFUSED)) throw new Error(`${name}: a revoked login answered ${after.status}, expected 401`)
  return after
}

// One character in the middle of the first cookie's value, changed.
function forge (cookie) {
  const start = cookie.indexOf('=') + 1
  const end = cookie.includes(';') ? cookie.indexOf(';') : cookie.length
  const at = start + Math.floor((end - start) / 2)
  return cookie.slice(0, at) + (cookie[at] === 'A' ? 'B' : 'A') + cookie.slice(at + 1)
}

// ---------------------------------------------------------------- measuring

// One autocannon run; throws unless every response was the expected one.
async function load (scenario, server, { headers, cookies }, options) {
  const called = process.hrtime.bigint()
  let built = called
  const clients = []
  if (cookies?.shares !== undefined && cookies.shares.length !== options.connections) {
    throw new Error(`${scenario.name}: cookies dealt to ${cookies.shares.length} connections, measured with ${options.connections}`)
  }
  const result = await autocannon({
    url: `http://127.0.0.1:${server.port}${scenario.path}`,
    method: scenario.method,
    headers,
    connections: options.connections,
    ...(options.amount === undefined ? { duration: options.duration } : { amount: options.amount }),
    ...(cookies === undefined
      ? { expectBody: scenario.body }
      : {
          // A cookie of its own for each request.
          verifyBody: scenario.anyUser === true ? (body) => ANY_USER.test(body) : (body) => body === scenario.body,
          ...(cookies.shares !== undefined
            ? {
                // Each connection goes on through its own share of the
                // cookies from where it stopped the run before, its requests
                // built before the run, as a warm scenario's one request is.
                // Built on each request instead (setupRequest), they cost the
                // load generator enough that the server, waiting on it, spent
                // more CPU per request: bare-cold against bare shows that.
                setupClient: (client) => {
                  const k = clients.push(client) - 1
                  client.setRequests(window(cookies.shares[k], cookies.cursors[k]))
                  built = process.hrtime.bigint()
                }
              }
            : { requests: [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, cookie: nextCookie(cookies) } }) }] })
        })
  })
  const codes = Object.keys(result.statusCodeStats)
  if (result.errors > 0 || result.timeouts > 0 || result.mismatches > 0 || codes.length !== 1 || Number(codes[0]) !== scenario.status) {
    throw new Error(`${scenario.name}: wrong answers under load: ${result.errors} errors, ${result.timeouts} timeouts, ` +
      `${result.mismatches} unexpected bodies, status codes ${JSON.stringify(result.statusCodeStats)} (expected only ${scenario.status})`)
  }
  clients.forEach((client, k) => { cookies.cursors[k] = (cookies.cursors[k] + client.reqsMade) % cookies.shares[k].length })
  // autocannon's clock starts before its clients build their requests.
  result.building = Number(built - called) / 1e9
  return result
}

// The next requests of one connection: at most COLD_WINDOW of its cookies,
// new objects each run (autocannon writes its buffers into them), so that a
// run builds only about what it sends and keeps nothing for the next.
function window (share, from) {
  const requests = []
  for (let i = 0; i < Math.min(COLD_WINDOW, share.length); i++) requests.push({ headers: { cookie: share[(from + i) % share.length] } })
  return requests
}

// The memory check's cookies, once each in order, up to `end`.
function nextCookie (cookies) {
  return cookies.list[Math.min(cookies.next++, cookies.end - 1)]
}

async function measure (scenario, server, feed, options) {
  const machineBefore = machineTime()
  const ownBefore = process.cpuUsage()
  const before = await server.stats()
  const started = process.hrtime.bigint()
  const result = await load(scenario, server, feed, options)
  const after = await server.stats()
  const elapsed = Number(process.hrtime.bigint() - started) / 1000
  const own = process.cpuUsage(ownBefore)
  const machineAfter = machineTime()
  const cpu = (after.cpu.user - before.cpu.user) + (after.cpu.system - before.cpu.system)
  let foreign = null
  if (machineBefore !== null && machineAfter !== null) {
    // What the machine spent on anything but this load generator and this
    // server, as a share of all its cores.
    const busy = machineAfter.busy - machineBefore.busy - cpu - own.user - own.system
    // Not while the load generator alone was building its requests.
    foreign = Math.min(1, Math.max(0, busy) / ((elapsed - result.building * 1e6) * os.availableParallelism()))
  }
  return { rps: result.requests.total / (result.duration - result.building), p99: result.latency.p99, cpuPerRequest: cpu / result.requests.total, foreign }
}

// Waits, within the run's patience, until the rest of the machine uses no
// more than --max-foreign of it (probed while the servers are idle).
async function waitForQuiet (options, patience) {
  while (patience.left > 0) {
    const before = machineTime()
    const started = Date.now()
    await new Promise((resolve) => setTimeout(resolve, 250))
    const after = machineTime()
    if (before === null || after === null) return
    const elapsed = (Date.now() - started) / 1000
    if ((after.busy - before.busy) / (elapsed * 1e6 * os.availableParallelism()) <= options.maxForeign) return
    patience.left -= elapsed
    patience.waited += elapsed
  }
}

// CPU time of the whole machine so far, in µs (Linux; null elsewhere). User,
// system and steal time; interrupt time, mostly the loopback traffic of the
// run itself, is left out.
function machineTime () {
  let line
  try {
    line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]
  } catch {
    return null
  }
  const [user, nice, system, , , , , steal] = line.split(/\s+/).slice(1).map(Number)
  return { busy: (user + nice + system + steal) * (1e6 / 100) } // USER_HZ is 100 on Linux
}

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
    const { headers } = await prepare(scenario, server, options.connections)
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

// ---------------------------------------------------------------- revocation

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

// ---------------------------------------------------------------- profiling

// `--profile login-guarded`: runs that server under --cpu-prof for 10 s of
// load and prints where its CPU time went.
async function profile (options) {
  const scenario = SCENARIOS.find((one) => one.name === options.profile)
  if (scenario === undefined) throw new Error(`--profile: unknown scenario ${options.profile}`)
  const dir = path.join(__dirname, 'profiles')
  fs.mkdirSync(dir, { recursive: true })
  const before = new Set(fs.readdirSync(dir))
  if (needsRedis(scenario.app)) await startRedis()
  const server = await startServer(scenario.app, { execArgv: ['--cpu-prof', '--cpu-prof-dir', dir] })
  const feed = await prepare(scenario, server, options.connections)
  const duration = options.smoke ? 1 : 10
  console.log(`profiling ${scenario.name} for ${duration} s …`)
  const result = await load(scenario, server, feed, { ...options, duration })
  await server.close()
  const file = fs.readdirSync(dir).find((name) => !before.has(name) && name.endsWith('.cpuprofile'))
  console.log(`${format(result.requests.average)} req/s under the profiler; profile: ${path.relative(process.cwd(), path.join(dir, file))}\n`)
  printProfile(JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')))
}

function printProfile (profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const selfTime = new Map()
  const totalTime = new Map()
  let busy = 0
  let idle = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i])
    const delta = profile.timeDeltas[i] ?? 0
    const key = frameName(node)
    if (key === '(idle)') {
      idle += delta
      continue
    }
    busy += delta
    selfTime.set(key, (selfTime.get(key) ?? 0) + delta)
    // Total time: once per function on the sample's stack.
    const seen = new Set()
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const frame = frameName(byId.get(id))
      if (seen.has(frame)) continue
      seen.add(frame)
      totalTime.set(frame, (totalTime.get(frame) ?? 0) + delta)
    }
  }
  const byArea = new Map()
  for (const [key, time] of selfTime) {
    const area = areaOf(key)
    byArea.set(area, (byArea.get(area) ?? 0) + time)
  }
  const percent = (time) => `${(100 * time / busy).toFixed(1).padStart(5)} %`
  const top = (map, count) => [...map].sort((a, b) => b[1] - a[1]).slice(0, count)
  console.log(`busy ${(busy / 1e6).toFixed(1)} s, idle ${(idle / 1e6).toFixed(1)} s; percentages of busy time\n`)
  console.log('self time by area:')
  for (const [area, time] of top(byArea, 12)) console.log(`  ${percent(time)}  ${area}`)
  console.log('\ntop functions by self time:')
  for (const [key, time] of top(selfTime, 25)) console.log(`  ${percent(time)}  ${key}`)
  console.log('\nfastify-login and @fastify/cookie, total time with callees (a hook that calls done() synchronously also counts the rest of the request):')
  for (const [key, time] of top(totalTime, Infinity)) {
    if (/ (dist\/|node_modules\/@fastify\/cookie\/)/.test(key) && time / busy >= 0.002) console.log(`  ${percent(time)}  ${key}`)
  }
}

function frameName (node) {
  const { functionName, url, lineNumber } = node.callFrame
  if (!url) return functionName || '(anonymous)'
  const file = url.replace(/^file:\/\//, '').replace(path.dirname(__dirname) + path.sep, '').replace(/^.*node_modules\//, 'node_modules/')
  return `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}`
}

function areaOf (key) {
  if (/ dist\//.test(key)) return 'fastify-login (dist/, from lib/)'
  if (/ bench\//.test(key)) return 'bench server'
  const dependency = / node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(key)
  if (dependency !== null) return dependency[1]
  if (/ node:/.test(key)) return 'node internals (JS)'
  if (/^\((garbage collector|program)\)$/.test(key)) return key
  return 'native (syscalls such as writev, V8 builtins)'
}

// ---------------------------------------------------------------- reporting

function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

function format (number) {
  return Math.round(number).toLocaleString('en-US')
}

function mb (bytes) {
  return (bytes / 1024 / 1024).toFixed(1)
}

function percentage (share) {
  return `${Math.round(share * 100)} %`
}

// name / baseline. The ratio the targets use is the median of the ratios of
// the same round: the two were measured seconds apart, so drift of the
// machine between rounds cancels out. Also given: the range of those
// per-round ratios, the ratio of the medians, and the ratio of server CPU per
// request (baseline / name), which moves less when the machine is busy.
function compare (runs, name, baseline) {
  const a = runs.get(name)
  const b = runs.get(baseline)
  if (a === undefined || b === undefined) return null
  const perRound = a.map((run, i) => run.rps / b[i].rps)
  return {
    sameRound: median(perRound),
    min: Math.min(...perRound),
    max: Math.max(...perRound),
    ofMedians: median(a.map((run) => run.rps)) / median(b.map((run) => run.rps)),
    byCpu: median(b.map((run) => run.cpuPerRequest)) / median(a.map((run) => run.cpuPerRequest))
  }
}

function report (scenarios, runs, memory, revocation, patience, options, elapsed) {
  const lines = []
  const cpus = os.cpus()
  lines.push(`${new Date().toISOString().slice(0, 10)} · ${cpus[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores · ` +
    `Node ${process.version} · ${os.type()} ${os.release()} · ${Math.round(elapsed)} s`, '')
  lines.push(`Each server in its own process; autocannon in the orchestrator, ${options.connections} connections. ` +
    `${options.rounds} rounds of ${options.duration} s per server, the servers in turn (the order reversed every other round), ` +
    `on ${Math.min(options.generations, options.rounds)} set(s) of fresh processes, each warmed up for ${options.warmup} s. ` +
    'Medians over the rounds; a ratio is the median of the ratios within each round. The load generator and the server share the machine. ' +
    '"server µs/req" is the server process\'s own CPU time per request.', '')
  lines.push('| server | what | req/s | p99 ms | server µs/req | × bare |')
  lines.push('|---|---|--:|--:|--:|--:|')
  for (const scenario of scenarios) {
    const measured = runs.get(scenario.name)
    if (measured === undefined) continue
    const ratio = compare(runs, scenario.name, 'bare')
    lines.push(`| ${scenario.name} | ${scenario.what} | ${format(median(measured.map((run) => run.rps)))} | ` +
      `${median(measured.map((run) => run.p99))} | ${median(measured.map((run) => run.cpuPerRequest)).toFixed(1)} | ` +
      `${ratio === null ? '' : ratio.sameRound.toFixed(2)} |`)
  }

  lines.push('', '| target | req/s ratio | per round | ratio of medians | by server CPU | goal | |')
  lines.push('|---|--:|--:|--:|--:|--:|---|')
  for (const target of TARGETS) {
    const ratio = compare(runs, target.name, target.baseline)
    if (ratio === null) continue
    const verdict = target.min === null ? '' : ratio.sameRound >= target.min ? 'met' : '**missed**'
    lines.push(`| ${target.name} / ${target.baseline} | ${ratio.sameRound.toFixed(2)} | ${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)} | ` +
      `${ratio.ofMedians.toFixed(2)} | ${ratio.byCpu.toFixed(2)} | ${target.min === null ? '' : '≥ ' + target.min.toFixed(2)} | ${verdict} |`)
  }
  if (revocation !== null) {
    lines.push(`| revoke to refusal, 3 instances over Redis: p99 ms (median ${revocation.median.toFixed(1)}, max ${revocation.max.toFixed(1)}, ${revocation.count} refusals) | ` +
      `${revocation.p99.toFixed(1)} | | | | ≤ ${REVOKE_P99_MS} | ${revocation.p99 <= REVOKE_P99_MS ? 'met' : '**missed**'} |`)
  }
  if (memory !== null) {
    const [short, long] = memory.samples
    for (const [label, key] of [['rss', 'rss'], ['heap used', 'heapUsed']]) {
      const growth = long[key] / short[key]
      lines.push(`| login-guarded memory: ${label} after ${format(long.requests)} more requests / after ${format(short.requests)} | ` +
        `${growth.toFixed(2)} | | | | ≤ ${MEMORY_GROWTH.toFixed(2)} | ${growth <= MEMORY_GROWTH ? 'met' : '**missed**'} |`)
    }
    lines.push('', 'Memory of the login-guarded server (`--expose-gc`, after a forced GC; each request with a login cookie of its own; ' +
      `after a warm-up of ${format(long.requests)} such requests): ${mb(short.rss)} MB rss, ${mb(short.heapUsed)} MB heap used after ${format(short.requests)} requests; ` +
      `${mb(long.rss)} MB rss, ${mb(long.heapUsed)} MB heap used after ${format(long.requests)} more. ` +
      `Per cached login: ${format(memory.perLogin)} bytes of heap (the heap with the cache of verified cookies full, ${format(memory.cached)} entries, ` +
      'less the heap with one login seen, over that count).')
  }

  const all = [...runs.values()].flat()
  const foreign = all.map((run) => run.foreign).filter((value) => value !== null)
  if (foreign.length > 0) {
    const disturbed = foreign.filter((value) => value > options.maxForeign).length
    lines.push('', `Other load on the machine during the measurements: median ${percentage(median(foreign))}, ` +
      `highest ${percentage(Math.max(...foreign))} of its CPU; waited ${Math.round(patience.waited)} s for quiet and ` +
      `redid ${patience.redone} measurement(s) above ${percentage(options.maxForeign)}` +
      (disturbed > 0 ? `; **${disturbed} above it in the end**, with no retry left: read those rows with care.` : '.'))
  }
  return lines.join('\n') + '\n'
}

// `--docs`: puts the results between the bench markers of docs/benchmark.md,
// and touches nothing else.
function updateReadme (markdown) {
  const file = path.join(__dirname, '..', 'docs', 'benchmark.md')
  const readme = fs.readFileSync(file, 'utf8')
  const start = '<!-- bench:start -->'
  const end = '<!-- bench:end -->'
  const from = readme.indexOf(start)
  const to = readme.indexOf(end)
  if (from === -1 || to < from) throw new Error(`docs/benchmark.md has no ${start} … ${end} markers`)
  fs.writeFileSync(file, readme.slice(0, from + start.length) + '\n' + markdown + readme.slice(to))
  console.log('docs/benchmark.md: results updated')
}

// ---------------------------------------------------------------- main

async function main () {
  const options = parseArgs(process.argv.slice(2))
  if (options.profile !== null) {
    try {
      return await profile(options)
    } finally {
      stopRedis()
    }
  }
  const started = Date.now()
  const seconds = () => Math.round((Date.now() - started) / 1000)
  const selected = options.only === null ? SCENARIOS.filter((one) => !one.extra) : SCENARIOS.filter((one) => options.only.includes(one.name))
  // --compare PATH: each fastify-login server also runs from another build
  // (a checkout's dist/index.js), side by side, as `name@before`.
  const scenarios = options.compare === null
    ? selected
    : selected.flatMap((one) => one.app.startsWith('login') ? [one, { ...one, name: `${one.name}@before`, plugin: options.compare, what: `${one.what}, from ${options.compare}` }] : [one])
  if (scenarios.length === 0) throw new Error(`--only: no scenario among ${SCENARIOS.map((one) => one.name).join(', ')}`)

  if (scenarios.some((one) => needsRedis(one.app))) await startRedis()
  console.log(`${scenarios.length} servers, ${options.rounds} round(s) of ${options.duration} s after a ${options.warmup} s warm-up, ` +
    `${options.connections} connections${options.smoke ? ' (smoke)' : ''}`)
  const runs = new Map(scenarios.map((scenario) => [scenario.name, []]))
  const patience = { left: options.patience, waited: 0, redone: 0 }
  const generations = Math.min(options.generations, options.rounds)
  let round = 0
  for (let generation = 0; generation < generations; generation++) {
    // Fresh processes for each generation of rounds: a process can be
    // lastingly faster or slower than its twin (placement, memory layout),
    // and that must average out like the drift of the machine.
    const servers = await Promise.all(scenarios.map((scenario) => startServer(scenario.app, { plugin: scenario.plugin })))
    try {
      const feeds = []
      for (let i = 0; i < scenarios.length; i++) {
        feeds.push(await prepare(scenarios[i], servers[i], options.connections))
        await waitForQuiet(options, patience)
        // Warm-up: lets the JIT settle; not recorded.
        if (options.warmup > 0) await load(scenarios[i], servers[i], feeds[i], { ...options, duration: options.warmup })
      }
      const end = Math.round(options.rounds * (generation + 1) / generations)
      for (; round < end; round++) {
        // Turns, in alternating directions: A B C … C B A …
        const order = scenarios.map((_, i) => i)
        if (round % 2 === 1) order.reverse()
        const redoneBefore = patience.redone
        for (const i of order) {
          await waitForQuiet(options, patience)
          let run = await measure(scenarios[i], servers[i], feeds[i], options)
          // Redo a measurement the rest of the machine disturbed; keep the calmest.
          for (let attempt = 0; attempt < 2 && run.foreign > options.maxForeign && patience.left > 0; attempt++) {
            await waitForQuiet(options, patience)
            const retryStarted = Date.now()
            const again = await measure(scenarios[i], servers[i], feeds[i], options)
            patience.left -= (Date.now() - retryStarted) / 1000
            patience.redone++
            if (again.foreign < run.foreign) run = again
          }
          runs.get(scenarios[i].name).push(run)
        }
        const roundRedone = patience.redone - redoneBefore
        const progress = scenarios.map((scenario) => `${scenario.name} ${(runs.get(scenario.name)[round].rps / 1000).toFixed(1)}k`)
        const foreign = scenarios.map((scenario) => runs.get(scenario.name)[round].foreign ?? 0)
        console.log(`round ${round + 1}/${options.rounds} (${seconds()} s): ${progress.join(' · ')} req/s; ` +
          `other load up to ${percentage(Math.max(...foreign))}${roundRedone > 0 ? `, ${roundRedone} redone` : ''}`)
      }
    } finally {
      await Promise.all(servers.map((server) => server.close()))
    }
  }

  const revocation = scenarios.some((one) => one.name === 'login-store-redis') ? await revocationCheck(options) : null
  stopRedis()
  const memory = options.memory ? await memoryCheck(options) : null
  const markdown = report(scenarios, runs, memory, revocation, patience, options, (Date.now() - started) / 1000)
  console.log('\n' + markdown)
  if (options.out !== null) {
    fs.writeFileSync(options.out, '# fastify-login benchmark results\n\n' + markdown +
      '\nReproduce: `npm run bench` (about 4 minutes; writes this file). `npm run bench:smoke` checks the harness in seconds.\n')
    console.log(`written to ${path.relative(process.cwd(), options.out)}`)
  }
  if (options.readme) updateReadme(markdown)
}

main().catch((error) => {
  console.error(error)
  for (const child of children) child.kill()
  stopRedis()
  process.exit(1)
})
