'use strict'

// What the benchmark measures: the servers, and the issue targets on their ratios.

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
  // redis-server the harness starts). Since issue 23 a request is checked
  // against the ended logins the process heard of, with no Redis command,
  // whether or not the process has seen the login: warm, a login it has
  // served; cold, every request a login it has never seen (new logins for
  // each run, made by another process: feeds.js says why).
  { name: 'login-store-memory', app: 'login-store-memory', what: 'login-guarded with memoryStore()' },
  { name: 'login-store-redis', app: 'login-store-redis', what: 'login-guarded with redisStore() (rotation on, the default), a login the process knows' },
  { name: 'login-store-redis-cold', app: 'login-store-redis', cold: true, anyUser: true, what: 'login-store-redis, each request a login the process has never seen' },
  // Rotation off: what rotation costs a request that does not rotate (issue 20).
  { name: 'login-store-redis-norotation', app: 'login-store-redis-norotation', what: 'login-store-redis with rotation: false' },
  // Not in the default run: the fast path does the same with rotation off.
  { name: 'login-store-redis-norotation-cold', app: 'login-store-redis-norotation', cold: true, anyUser: true, extra: true, what: 'login-store-redis-cold with rotation: false' },
  // Not in the default run (--only login-fresh-strong): a route that also checks freshness and the client.
  { name: 'login-fresh-strong', app: 'login-fresh-strong', extra: true, what: "fastify-login, freshLoginRequired, sessionProtection 'strong'" },
  { name: 'login-anonymous', app: 'login', cookie: false, status: 401, body: REFUSED, what: 'fastify-login guard, no cookie (401)' },
  { name: 'passport', app: 'passport', what: '@fastify/passport + @fastify/secure-session, isAuthenticated()' },
  // passport fed another session cookie on each request, as login-cold is:
  // it decrypts every request either way, so this should match passport.
  { name: 'passport-cold', app: 'passport', cold: true, what: 'passport, each request with another session cookie' },
  { name: 'session', app: 'session', what: '@fastify/session, memory store, user id in the session' },
  { name: 'session-redis', app: 'session-redis', what: '@fastify/session over connect-redis (node-redis), user id in the session' },
  // session-redis fed another session cookie on each request (sessions made
  // beforehand by another process): it reads Redis on every request either
  // way, so this is its cost for a session it has not seen, as login-store-redis-cold is.
  { name: 'session-redis-cold', app: 'session-redis', cold: true, what: 'session-redis, each request with another session' },
  { name: 'login-login', app: 'login', method: 'POST', path: '/login', cookie: false, what: 'fastify-login loginUser, issues its cookies' },
  { name: 'passport-login', app: 'passport', method: 'POST', path: '/login', cookie: false, what: '@fastify/passport logIn, issues its session' }
].map((scenario) => ({ method: 'GET', path: '/me', cookie: true, status: 200, body: NAME, ...scenario }))

// The issues' targets, on the ratio of requests/second to the baseline's in
// the same round; `both`: on the ratio of server CPU per request as well.
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
  // Issues 10 and 23: logins you can end, Redis off the request path.
  { name: 'login-store-memory', baseline: 'login-guarded', min: null },
  { name: 'login-store-redis', baseline: 'login-guarded', min: 0.97, both: true },
  { name: 'login-store-redis', baseline: 'session-redis', min: 3, both: true },
  { name: 'login-store-redis-cold', baseline: 'session-redis-cold', min: 2, both: true },
  { name: 'login-store-redis-cold', baseline: 'login-cold', min: null },
  { name: 'session-redis-cold', baseline: 'session-redis', min: null },
  // Issue 20: rotation on, within noise of rotation off.
  { name: 'login-store-redis', baseline: 'login-store-redis-norotation', min: 0.95 }
]
// Issue 23: Redis commands per request, counted by Redis (INFO
// commandstats), the subscribers' PINGs apart.
const COMMAND_TARGETS = [
  { name: 'login-store-redis-cold', max: 0.05 }
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
// cookies, still cold (e^(-50000/8192) of them admitted: 0.2 %). The cold
// store scenarios mint this many new logins a connection before each run.
const COLD_WINDOW = 1000
const MEMORY_GROWTH = 1.10
// The capacity of the cache of verified account cookies (two generations of 5,000).
const CACHED_LOGINS = 10000

module.exports = { NAME, REFUSED, ANY_USER, SCENARIOS, TARGETS, COMMAND_TARGETS, REVOKE_P99_MS, REVOKE_TIMEOUT_MS, COLD_COOKIES, COLD_WINDOW, MEMORY_GROWTH, CACHED_LOGINS }
