'use strict'

// What a scenario is measured with: its cookies, checked before the run.

const crypto = require('node:crypto')
const { request } = require('./net')
const { startServer } = require('./servers')
const { NAME, REFUSED } = require('./scenarios')

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
// the connections it is measured with; `refresh()`, if there, must run
// before each run, and `close()` once the feed is done with.
async function prepare (scenario, server, options) {
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
  if (carriesLastUse(scenario)) return scenario.cold ? await freshLogins(scenario, server, options) : freshLogin(scenario, server)
  if (!scenario.cold) return { headers }
  // bare issues no login: cookies of random bytes, as many.
  const list = scenario.app === 'bare'
    ? Array.from({ length: options.coldCookies }, () => `uid=${crypto.randomBytes(96).toString('base64url')}`)
    : await mintElsewhere(server.app, server.plugin, options.coldCookies, scenario.anyUser === true)
  return { headers: {}, cookies: deal(list, options.connections) }
}

// Connection k sends cookies k, k + 50, k + 100, …, and each connection
// carries on from run to run: a cookie comes back after all the others.
function deal (list, connections) {
  const shares = Array.from({ length: connections }, () => [])
  list.forEach((cookie, i) => shares[i % connections].push(sameSizeCookie(cookie)))
  return { shares, cursors: shares.map(() => 0) }
}

// A login with a store carries its last use in its cookie: a request whose
// cookie says the login was last used a minute ago or more records the use
// in the store (once a minute a login per process) and re-issues the cookie
// with the new time, which the browser keeps for its next request. Cookies
// minted before the run and sent unchanged would grow older than that a
// minute in: every request would then be answered with a new cookie (an HMAC
// and a Set-Cookie line the servers without a store do not pay), and every
// request of a login this process has not seen would write to Redis, which
// is neither the warm nor the cold path of a browser that keeps its cookies.
// So each run of these scenarios gets cookies of its own, made just before
// it, as a browser holds them after its last response.
function carriesLastUse (scenario) {
  return scenario.app.startsWith('login-store')
}

// Warm: one login, made on the measured server before each run.
function freshLogin (scenario, server) {
  const feed = {
    headers: null,
    async refresh () {
      feed.headers = { cookie: sameSizeCookie(await login(server)) }
    }
  }
  return feed
}

// Cold: before each run, new logins, a window's worth for each connection
// (more than a 1 s run sends), minted by another process of the same server
// (below: why not the measured one), which is kept for the whole set of
// processes. A longer run (the warm-up, a profile) goes round them again,
// each coming back after 50,000 others: still cold, and still used within a
// minute of being minted, which minting more would not be. They are logins
// of the 1,000 users in turn: one user with millions of logins is no
// deployment's.
async function freshLogins (scenario, server, options) {
  const minter = await startServer(server.app, { plugin: server.plugin })
  const feed = {
    headers: {},
    cookies: null,
    async refresh () {
      feed.cookies = deal(await minter.mint(options.connections * options.window, scenario.anyUser === true), options.connections)
    },
    close: async () => await minter.close()
  }
  return feed
}

// Cookies minted by another process of the same server (same secret, same
// build), so that the measured one does not start with the garbage of
// minting 100,000 of them: CPU profiles of cold scenarios showed it as
// allocations costing ten times more than in a warm one.
async function mintElsewhere (app, plugin, count, anyUser = false) {
  const minter = await startServer(app, { plugin })
  try {
    return await minter.mint(count, anyUser)
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

// The next requests of one connection: at most `size` of its cookies, new
// objects each run (autocannon writes its buffers into them), so that a run
// builds only about what it sends and keeps nothing for the next.
function window (share, from, size) {
  const requests = []
  for (let i = 0; i < Math.min(size, share.length); i++) requests.push({ headers: { cookie: share[(from + i) % share.length] } })
  return requests
}

// The memory check's cookies, once each in order, up to `end`.
function nextCookie (cookies) {
  return cookies.list[Math.min(cookies.next++, cookies.end - 1)]
}

module.exports = { login, sameSizeCookie, prepare, deal, mintElsewhere, forge, window, nextCookie }
