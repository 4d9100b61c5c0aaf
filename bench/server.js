'use strict'

// One benchmark server: `node bench/server.js <app>`, forked by bench/run.js.
// It listens on a free loopback port and reports it over IPC; the
// orchestrator asks it for CPU time and memory over IPC too, so nothing but
// the measured route is ever hit by HTTP during a measurement.
//
// Every app serves the same two routes over the same user store:
//   GET  /me     the user's name (guarded by the app's auth layer, except bare
//                and login-unguarded); refused: 401 'Please log in to access this page.'
//   POST /login  logs user 1 in with the app's auth layer and answers the name

const Fastify = require('fastify')

const SECRET = 'bench-secret-0123456789abcdef-0123456789abcdef'
const REFUSED = 'Please log in to access this page.'

// The same user store in every server: a Map lookup.
const users = new Map()
for (let i = 1; i <= 1000; i++) users.set(String(i), { id: String(i), name: i === 1 ? 'Ada' : `user${i}` })
const ADA = users.get('1')

const apps = {
  // The ceiling: no auth at all.
  bare (app) {
    app.get('/me', () => users.get('1').name)
    app.post('/login', (request, reply) => {
      reply.header('set-cookie', 'uid=1; Path=/; HttpOnly; SameSite=Lax')
      return ADA.name
    })
  },

  // What a user could write by hand: one signed cookie, unsigned in the route.
  floor (app) {
    app.register(require('@fastify/cookie'), { secret: SECRET })
    app.after(() => {
      app.post('/login', (request, reply) => {
        reply.setCookie('uid', ADA.id, { signed: true, path: '/', httpOnly: true, sameSite: 'lax' })
        return ADA.name
      })
      app.get('/me', (request, reply) => {
        const raw = request.cookies.uid
        const unsigned = raw === undefined ? null : request.unsignCookie(raw)
        const user = unsigned !== null && unsigned.valid ? users.get(unsigned.value) : undefined
        if (user === undefined) return reply.code(401).type('text/plain; charset=utf-8').send(REFUSED)
        return user.name
      })
    })
  },

  // fastify-login, with /me guarded by loginRequired.
  login (app) {
    registerLogin(app)
    app.after(() => {
      app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => request.currentUser.name)
    })
  },

  // fastify-login with 'strong' session protection, /me guarded by
  // freshLoginRequired: the client tag and the fresh cookie are checked too.
  'login-fresh-strong' (app) {
    registerLogin(app, { sessionProtection: 'strong' })
    app.after(() => {
      app.get('/me', { onRequest: app.loginManager.freshLoginRequired }, (request) => request.currentUser.name)
    })
  },

  // fastify-login with server-side login records: in this process, and in
  // the Redis the orchestrator started (BENCH_REDIS_PORT), which every
  // instance shares. POST /logout ends the login everywhere.
  'login-store-memory' (app) {
    registerLogin(app, { store: require(pluginPath).memoryStore() })
    storeRoutes(app)
  },

  'login-store-redis' (app) {
    registerLogin(app, { store: redisLogins(app) })
    storeRoutes(app)
  },

  // The same without rotation (on by default with a store that can):
  // what rotation costs a request that does not rotate.
  'login-store-redis-norotation' (app) {
    registerLogin(app, { store: redisLogins(app), rotation: false })
    storeRoutes(app)
  },

  // fastify-login registered, /me without a guard: must cost nothing.
  'login-unguarded' (app) {
    registerLogin(app)
    app.after(() => {
      app.get('/me', () => users.get('1').name)
    })
  },

  // @fastify/passport over @fastify/secure-session.
  passport (app) {
    const passport = require('@fastify/passport').default
    app.register(require('@fastify/secure-session'), {
      key: Buffer.from(SECRET).subarray(0, 32),
      cookie: { path: '/', httpOnly: true, sameSite: 'lax' }
    })
    app.register(passport.initialize())
    app.register(passport.secureSession())
    passport.registerUserSerializer(async (user) => user.id)
    passport.registerUserDeserializer(async (id) => users.get(id) ?? null)
    app.after(() => {
      app.post('/login', async (request) => {
        await request.logIn(ADA)
        return ADA.name
      })
      app.get('/me', (request, reply) => {
        if (!request.isAuthenticated()) return reply.code(401).type('text/plain; charset=utf-8').send(REFUSED)
        return request.user.name
      })
    })
  },

  // What a user would pick for server-side sessions in Redis:
  // @fastify/session over connect-redis (node-redis client), otherwise as
  // the session server below.
  'session-redis' (app) {
    const { createClient } = require('redis')
    const { RedisStore } = require('connect-redis')
    const client = createClient({ url: `redis://127.0.0.1:${redisPort()}` })
    app.addHook('onReady', async () => { await client.connect() })
    app.addHook('onClose', async () => { await client.quit() })
    sessionApp(app, new RedisStore({ client, prefix: 'bench-session:' }))
  },

  // @fastify/session with its memory store, holding the user id.
  // Its defaults (rolling, saveUninitialized) except `secure`, which plain
  // http needs off.
  session (app) {
    sessionApp(app, undefined)
  }
}

function sessionApp (app, store) {
  app.register(require('@fastify/cookie'))
  app.register(require('@fastify/session'), {
    secret: SECRET,
    store,
    // Not its default (rolling: true), which re-sends the cookie on every
    // response; none of the other servers does that work.
    rolling: false,
    cookie: { secure: false, path: '/', httpOnly: true, sameSite: 'lax' }
  })
  app.after(() => {
    app.post('/login', (request) => {
      request.session.set('userId', ADA.id)
      return ADA.name
    })
    app.get('/me', (request, reply) => {
      const id = request.session.get('userId')
      const user = id === undefined ? undefined : users.get(id)
      if (user === undefined) return reply.code(401).type('text/plain; charset=utf-8').send(REFUSED)
      return user.name
    })
  })
}

function redisLogins (app) {
  const Redis = require('ioredis')
  const client = new Redis({ host: '127.0.0.1', port: redisPort(), lazyConnect: false })
  app.addHook('onClose', async () => { await client.quit() })
  return redisStore()({ client })
}

// redisStore, from the package or (a build that does not export it yet) its own file.
function redisStore () {
  return require(pluginPath).redisStore ??
    require(require('node:path').join(require('node:path').dirname(require.resolve(pluginPath)), 'stores', 'redis')).redisStore
}

function redisPort () {
  const port = Number(process.env.BENCH_REDIS_PORT)
  if (!(port > 0)) throw new Error('BENCH_REDIS_PORT is not set: bench/run.js starts a redis-server for the store servers')
  return port
}

// The /me of the login server, and POST /logout, which revokes the login.
function storeRoutes (app) {
  app.after(() => {
    app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => request.currentUser.name)
    app.post('/logout', async (request, reply) => {
      await app.loginManager.logoutUser(request, reply)
      return 'bye'
    })
  })
}

// `node bench/server.js login /other/checkout` loads fastify-login from
// another build, to compare a change side by side.
const pluginPath = process.argv[3] === undefined ? '..' : require('node:path').resolve(process.argv[3])

function registerLogin (app, options = {}) {
  app.register(require(pluginPath), {
    secret: SECRET,
    userLoader: (id) => users.get(id),
    ...options
  })
  app.after(() => {
    // A store may make loginUser asynchronous.
    app.post('/login', async (request, reply) => {
      await app.loginManager.loginUser(request, reply, ADA, { remember: true })
      return ADA.name
    })
  })
}

// Logins or sessions minted at once: the store answers them in any order,
// and a few hundred in flight keep its connection full (pipelined).
const IN_FLIGHT = 256

// Distinct valid cookies, through each auth layer's own API. `anyUser`: of
// each of the 1,000 users in turn (floor always: it keeps nothing per cookie,
// so 1,000 distinct ones are as cold as more).
async function mint (app, count, anyUser) {
  const userOf = (i) => anyUser ? users.get(String(1 + i % users.size)) : ADA
  // passport: a secure-session of user 1, encrypted anew (a new nonce) each time,
  // as its logIn stores it.
  if (app.hasDecorator('encodeSecureSession')) {
    return Array.from({ length: count }, () => `session=${encodeURIComponent(app.encodeSecureSession(app.createSecureSession({ passport: ADA.id })))}`)
  }
  // @fastify/session: a session of user 1 in its store, as POST /login makes it.
  if (app.hasDecorator('decryptSession')) return await inFlight(count, async () => await sessionCookie(app))
  if (app.loginManager === undefined) {
    return Array.from({ length: count }, (_, i) => `uid=${encodeURIComponent(app.signCookie(String(1 + i % users.size)))}`)
  }
  return await inFlight(count, async (i) => {
    const jar = await app.loginManager.cookiesFor(userOf(i), { fresh: false })
    return Object.entries(jar).map(([name, value]) => `${name}=${encodeURIComponent(value)}`).join('; ')
  })
}

async function sessionCookie (app) {
  const response = await app.inject({ method: 'POST', url: '/login' })
  const line = [response.headers['set-cookie']].flat().find((one) => one?.startsWith('sessionId='))
  if (response.statusCode !== 200 || line === undefined) throw new Error(`POST /login answered ${response.statusCode} without a session cookie`)
  return line.split(';', 1)[0]
}

// bench/scale.js: `count` logins (or sessions) in the store, none of them
// sent back. Logins are of users `first`, `first + 1`, … (`perUser` each),
// made by cookiesFor, so each goes through the store's own create, from a
// browser's user agent and address as a device list would show them; `end`:
// then ended, each user's with revokeAllLogins, as "log out everywhere" would.
const USER_AGENT = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'

async function fill (app, { first, count, perUser, end }) {
  if (app.hasDecorator('decryptSession')) {
    await inFlight(count, async () => await sessionCookie(app))
    return { count }
  }
  const manager = app.loginManager
  const userOf = (i) => ({ id: String(first + Math.floor(i / perUser)) })
  await inFlight(count, async (i) => await manager.cookiesFor(userOf(i), { fresh: false, userAgent: USER_AGENT, ip: `10.${i >> 16 & 255}.${i >> 8 & 255}.${i & 255}` }))
  if (!end) return { count }
  const ended = await inFlight(Math.ceil(count / perUser), async (u) => await manager.revokeAllLogins(userOf(u * perUser)))
  return { count, ended: ended.reduce((sum, one) => sum + one, 0) }
}

// work(0) … work(count - 1), IN_FLIGHT at a time; their results in order.
async function inFlight (count, work) {
  const results = new Array(count)
  let next = 0
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, count) }, async () => {
    while (next < count) {
      const i = next++
      results[i] = await work(i)
    }
  }))
  return results
}

async function main () {
  const kind = process.argv[2]
  const build = apps[kind]
  if (build === undefined) throw new Error(`unknown server kind ${kind}; one of ${Object.keys(apps).join(', ')}`)
  const app = Fastify({ logger: false })
  build(app)
  // How long `ready` takes: with a store, reading back every ended login.
  const readying = performance.now()
  await app.ready()
  const readyMs = performance.now() - readying
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address()

  process.on('message', (message) => {
    if (message.type === 'stats') {
      if (message.gc === true && typeof global.gc === 'function') {
        global.gc()
        global.gc()
      }
      process.send({ type: 'stats', id: message.id, cpu: process.cpuUsage(), memory: process.memoryUsage() })
    } else if (message.type === 'mint') {
      // Distinct valid cookies for the memory check and the cold scenarios, through the public API.
      mint(app, message.count, message.anyUser === true).then((cookies) => process.send({ type: 'minted', id: message.id, cookies }), fail)
    } else if (message.type === 'fill') {
      fill(app, message).then((filled) => process.send({ type: 'filled', id: message.id, ...filled }), fail)
    } else if (message.type === 'close') {
      app.close().then(() => process.exit(0))
    }
  })
  // The orchestrator going away takes the server with it.
  process.on('disconnect', () => process.exit(0))

  if (process.send !== undefined) process.send({ type: 'listening', port, readyMs })
  else console.log(`${kind} listening on http://127.0.0.1:${port}`)
}

// A mint or fill that fails ends the process: the orchestrator's wait on it fails with it.
function fail (error) {
  console.error(error)
  process.exit(1)
}

main().catch(fail)
