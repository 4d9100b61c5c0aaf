import { test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { redisStore } from '../lib/index'
import type { LoginStore } from '../types/index'
import { clock, login, portal, refusesIllFormedIds, setCookieHeaders, User } from './helpers'
import { commandCalls, instance, PROBE_MS, ranSince, readyClient, until, type Instance } from './redis-instances'
import { clusterClient, redisClient, startCluster, startRedis } from './redis-server'

// Logins the server can end (issue 10), through the plugin, with Redis: real
// redis-server processes (standalone, and a Cluster of three masters) shared
// by several Fastify instances, each with its own ioredis client.

// Revocations measured: p99 of 3 × 100 figures lets one round stalled by a
// busy machine (all three instances at once) through, not two.
const ROUNDS = 100

async function me (app: FastifyInstance, cookies: Record<string, string>): Promise<{ status: number, body: Record<string, unknown> | string }> {
  const response = await app.inject({ url: '/me', cookies })
  const json = String(response.headers['content-type']).startsWith('application/json')
  return { status: response.statusCode, body: json ? response.json() : response.body }
}

async function loginIdOf (app: FastifyInstance, cookies: Record<string, string>): Promise<string> {
  const { status, body } = await me(app, cookies)
  if (status !== 200 || typeof body === 'string') throw new Error(`not logged in: ${status}`)
  return body.loginId as string
}

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]
}

test('three instances, one Redis: a login works on all; ended on one, it is refused by all within 100 ms', async (t) => {
  const server = await startRedis(t)
  const admin = redisClient(t, server.port)
  const instances: Instance[] = []
  for (let i = 0; i < 3; i++) instances.push(await instance(t, await readyClient(t, server.port)))

  const cookies = await login(instances[0].app, '1', 'Phone')
  const loginId = await loginIdOf(instances[0].app, cookies)
  for (const [i, { app }] of instances.entries()) {
    t.same(await me(app, cookies), { status: 200, body: { name: 'ann', loginId } }, `instance ${i + 1} knows the login`)
    t.match(await app.loginManager.listLogins('1'), [{ loginId, userId: '1', userAgent: 'Phone', remembered: false }], `instance ${i + 1} lists it`)
  }

  t.test('a login is answered without asking Redis, also by an instance that never saw it', async (t) => {
    const cold = await login(instances[1].app, '2', 'Laptop')
    const before = await commandCalls(admin)
    let requests = 0
    for (let i = 0; i < 50; i++) {
      for (const { app } of instances) {
        t.equal((await me(app, cold)).status, 200)
        requests++
      }
    }
    const ran = ranSince(before, await commandCalls(admin))
    t.comment(`${requests} guarded requests of one login, on three instances (two never saw it log in): ${JSON.stringify(ran)} commands in Redis besides PING`)
    // A request is answered from the ended logins an instance heard of, while
    // its subscriber proved within 100 ms that it heard them all; a machine
    // too loaded to run the proof on time reads Redis instead, which is what
    // `hgetall` counts here. Never a touch: the login was used within the minute.
    t.same(Object.keys(ran).filter((command) => command !== 'hgetall'), [], 'nothing but the reads of a late proof')
    t.ok((ran.hgetall ?? 0) < requests / 2, `most requests ask Redis nothing (${ran.hgetall ?? 0} reads in ${requests})`)
    await instances[1].app.loginManager.revokeAllLogins('2')
  })

  t.test('logout, revokeLogin, revokeOtherLogins, revokeAllLogins: refused everywhere within 100 ms', async (t) => {
    const kinds = ['logout', 'revokeLogin', 'revokeOtherLogins', 'revokeAllLogins'] as const
    const figures: number[][] = [[], [], []]
    const byRole = { revoking: [] as number[], hearing: [] as number[] }
    t.equal(await instances[2].app.loginManager.revokeAllLogins('1'), 1, 'the phone\'s login, from above')
    for (let round = 0; round < ROUNDS; round++) {
      const kind = kinds[round % kinds.length]
      const revoker = instances[round % 3]
      const userId = String(1 + (round % 2))
      const victim = await login(instances[(round + 1) % 3].app, userId, `Device ${round}`)
      const keeper = kind === 'revokeOtherLogins' ? await login(revoker.app, userId, 'Keeper') : null
      const victimId = await loginIdOf(instances[0].app, victim)
      for (const { app } of instances) {
        t.equal((await me(app, victim)).status, 200)
        if (keeper !== null) t.equal((await me(app, keeper)).status, 200)
      }
      const others = instances.filter((other) => other !== revoker)
      const heard = others.map(async ({ watch }) => await watch.until('revoked', (ids) => ids.includes(victimId)))
      const start = performance.now()
      if (kind === 'logout') {
        t.equal((await revoker.app.inject({ url: '/logout', cookies: victim })).statusCode, 200)
      } else if (kind === 'revokeLogin') {
        t.equal(await revoker.app.loginManager.revokeLogin(userId, victimId), true)
      } else if (kind === 'revokeOtherLogins') {
        t.same((await revoker.app.inject({ url: '/revoke-others', cookies: keeper as Record<string, string> })).json(), { revoked: 1 })
      } else {
        t.equal(await revoker.app.loginManager.revokeAllLogins(userId), 1)
      }
      // The revoking instance has evicted it by the time the call returns;
      // the others when they hear it, which can be before that.
      const returned = performance.now() - start
      figures[instances.indexOf(revoker)].push(returned)
      byRole.revoking.push(returned)
      for (const [i, at] of (await Promise.all(heard)).entries()) {
        figures[instances.indexOf(others[i])].push(at - start)
        byRole.hearing.push(at - start)
      }
      for (const [i, { app, loaderCalls }] of instances.entries()) {
        loaderCalls.length = 0
        t.equal((await me(app, victim)).status, 401, `${kind} on instance ${instances.indexOf(revoker) + 1}: refused by instance ${i + 1}`)
        t.same(loaderCalls, [], 'without calling the loader')
        if (keeper !== null) t.equal((await me(app, keeper)).status, 200, 'the request\'s own login is kept')
      }
      if (keeper !== null) await revoker.app.loginManager.revokeAllLogins(userId)
    }
    const all = figures.flat().sort((a, b) => a - b)
    const report = (what: string, values: number[]): void => {
      values.sort((a, b) => a - b)
      t.comment(`${what}: median ${percentile(values, 0.5).toFixed(2)} ms, p99 ${percentile(values, 0.99).toFixed(2)} ms (${values.length})`)
    }
    for (const [i, own] of figures.entries()) report(`instance ${i + 1}, revoke → evicted`, own)
    report('the revoking instance, revoke call → returned', byRole.revoking)
    report('the other two, revoke call → heard and evicted', byRole.hearing)
    const p99 = percentile(all, 0.99)
    t.comment(`all instances: median ${percentile(all, 0.5).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, worst ${all[all.length - 1].toFixed(2)} ms of ${all.length}`)
    t.ok(p99 <= 100, `p99 revoke → refusal ≤ 100 ms (${p99.toFixed(2)} ms)`)
  })
})

test('Redis Cluster of three masters: login, list and revoke work, and a revocation is heard by the other instance', async (t) => {
  const servers = await startCluster(t)
  const ports = servers.map((server) => server.port)
  const one = await instance(t, clusterClient(t, ports))
  const two = await instance(t, clusterClient(t, ports))

  const time = clock(t)
  const phone = await login(one.app, '1', 'Phone')
  time.advance(5) // newest first is by createdAt, in seconds
  const laptop = await login(two.app, '1', 'Laptop', true)
  const bob = await login(one.app, '2', 'Bob')
  const phoneId = await loginIdOf(one.app, phone)
  const laptopId = await loginIdOf(two.app, laptop)
  for (const { app } of [one, two]) {
    for (const cookies of [phone, laptop, bob]) t.equal((await me(app, cookies)).status, 200)
    t.same((await app.loginManager.listLogins('1')).map((record) => [record.loginId, record.userAgent, record.remembered]),
      [[laptopId, 'Laptop', true], [phoneId, 'Phone', false]], 'both of ann\'s logins, newest first, from either instance')
  }

  const ends: Array<[string, Instance, Record<string, string>, () => Promise<unknown>]> = [
    ['revokeLogin', two, phone, async () => t.equal(await one.app.loginManager.revokeLogin('1', phoneId), true)],
    ['logout', one, laptop, async () => t.equal((await two.app.inject({ url: '/logout', cookies: laptop })).statusCode, 200)],
    ['revokeAllLogins', two, bob, async () => t.equal(await one.app.loginManager.revokeAllLogins('2'), 1)]
  ]
  for (const [kind, other, cookies, end] of ends) {
    const loginId = await loginIdOf(other.app, cookies)
    const heard = other.watch.until('revoked', (ids) => ids.includes(loginId))
    const start = performance.now()
    await end()
    const after = await heard - start
    t.comment(`Cluster, ${kind}: heard by the other instance after ${after.toFixed(2)} ms`)
    t.ok(after < 100, `${kind}: heard within 100 ms`)
    for (const { app } of [one, two]) t.equal((await me(app, cookies)).status, 401, `${kind}: refused by both`)
  }

  // revokeOtherLogins keeps the request's own login.
  const kept = await login(one.app, '1', 'Kept')
  const ended = await login(two.app, '1', 'Ended')
  const endedId = await loginIdOf(one.app, ended)
  const heard = two.watch.until('revoked', (ids) => ids.includes(endedId))
  t.same((await one.app.inject({ url: '/revoke-others', cookies: kept })).json(), { revoked: 1 })
  await heard
  t.equal((await me(two.app, ended)).status, 401)
  t.equal((await me(two.app, kept)).status, 200)
  t.match(await two.app.loginManager.listLogins('1'), [{ userAgent: 'Kept' }])
})

test('Redis down: a login is a 503, never accepted unchecked; back, it all works without a restart; killed with appendonly, no login is lost', async (t) => {
  const server = await startRedis(t, { appendonly: true })
  const admin = redisClient(t, server.port)
  const one = await instance(t, await readyClient(t, server.port))
  const two = await instance(t, await readyClient(t, server.port))
  const ann = await login(one.app, '1')
  const bob = await login(two.app, '2')
  for (const { app } of [one, two]) {
    for (const cookies of [ann, bob]) t.equal((await me(app, cookies)).status, 200, 'known, and cached, on both')
  }
  const bothListening = async (): Promise<void> => {
    await until('both instances to listen again', async () => one.watch.listening && two.watch.listening)
  }

  t.test('a revocation made while an instance cannot hear it is not missed', async (t) => {
    for (let i = 0; i < 5; i++) {
      const victim = await login(one.app, '1', `Victim ${i}`)
      const victimId = await loginIdOf(one.app, victim)
      t.equal((await me(two.app, victim)).status, 200)
      // Both subscribers lose their connection; the revocation is published to nobody.
      t.equal(await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub'), 2)
      t.equal(await two.app.loginManager.revokeLogin('1', victimId), true)
      t.equal(one.watch.listening, false, 'the instance knows it is deaf by then')
      t.equal((await me(one.app, victim)).status, 401, 'and asks Redis instead of its cache')
      t.equal((await me(one.app, ann)).status, 200, 'which still knows the others')
      await bothListening()
      t.equal((await me(one.app, victim)).status, 401, 'nor is it trusted again once the instance hears again')
    }
  })

  t.test('stopped: every request of a login is a 503, the rest of the app keeps serving', async (t) => {
    const probes: Array<{ deaf: boolean, status: number }> = []
    const probing = { on: true }
    const probe = (async () => {
      while (probing.on) {
        const deaf = !one.watch.listening
        probes.push({ deaf, status: (await me(one.app, ann)).status })
        await new Promise((resolve) => setImmediate(resolve))
      }
    })()
    const deafOne = one.watch.until('listening', (listening) => !listening, PROBE_MS)
    const deafTwo = two.watch.until('listening', (listening) => !listening, PROBE_MS)
    const stopping = performance.now()
    await server.stop()
    const stopped = performance.now()
    const noticed = await deafOne
    await deafTwo
    // Until a request made once the instance knew it was deaf has its answer:
    // one made just before can take that long by itself on a loaded machine.
    await until('a request made while deaf', async () => probes.some((probe) => probe.deaf))
    probing.on = false
    await probe
    const cached = probes.filter((probe) => !probe.deaf && probe.status === 200).length
    t.comment(`stop → redis-server exited ${(stopped - stopping).toFixed(0)} ms, → noticed by the subscriber ${(noticed - stopping).toFixed(0)} ms; ${cached} requests answered from the cache before that, ${probes.length - cached} after`)
    const deafProbes = probes.filter((probe) => probe.deaf)
    t.same(deafProbes.filter((probe) => probe.status !== 503), [], 'each of them a 503: none served from the cache')
    t.same(probes.filter((probe) => probe.status !== 200 && probe.status !== 503), [], 'and none anonymous')

    one.loaderCalls.length = 0
    const start = performance.now()
    const calls: Array<[Instance, string, Record<string, string>, string]> = [
      [one, '/me', ann, 'get'], [two, '/me', bob, 'get'], [one, '/devices', ann, 'get'],
      [two, '/login/2', {}, 'create'], [one, '/logout', ann, 'delete']
    ]
    for (const [{ app }, url, cookies, method] of calls) {
      const response = await app.inject({ url, cookies })
      t.equal(response.statusCode, 503, `${url}: 503`)
      t.match(response.json(), { code: 'FST_LOGIN_STORE_FAILED', message: new RegExp(`the login store failed in \`${method}\``) })
      if (url === '/login/2') t.same(setCookieHeaders(response), [], 'no cookie for a login that was not recorded')
    }
    const took = performance.now() - start
    t.comment(`5 requests needing Redis while it is down: ${took.toFixed(0)} ms in all`)
    t.ok(took < 2000, 'failing fast')
    t.same(one.loaderCalls, [], 'nobody was loaded unchecked')
    t.equal((await one.app.inject('/plain')).body, 'plain', 'a route without login is served')
    t.equal((await me(one.app, {})).status, 401, 'a request without a login cookie needs no store')
  })

  t.test('started again on the same port: the same cookies and new logins work, without restarting Fastify', async (t) => {
    const statuses = new Set<number>()
    await server.start()
    await until('the same cookies to work on both instances', async () => {
      const answers = [(await me(one.app, ann)).status, (await me(two.app, bob)).status]
      for (const status of answers) statuses.add(status)
      return answers.every((status) => status === 200)
    })
    t.notOk(statuses.has(401), `while Redis came back: ${[...statuses].join(', ')}, never anonymous (appendonly: nothing lost)`)
    await bothListening()
    const fresh = await login(two.app, '1', 'After the restart')
    t.equal((await me(one.app, fresh)).status, 200, 'a new login works everywhere')
    t.equal((await me(one.app, fresh)).status, 200)
    const before = await commandCalls(admin)
    for (let i = 0; i < 10; i++) t.equal((await me(one.app, fresh)).status, 200)
    t.same(ranSince(before, await commandCalls(admin)), {}, 'and is answered from the cache again')
    const ended = [await loginIdOf(one.app, fresh), await loginIdOf(one.app, ann)]
    const heard = ended.map(async (loginId) => await one.watch.until('revoked', (ids) => ids.includes(loginId)))
    await two.app.loginManager.revokeAllLogins('1')
    await Promise.all(heard)
    t.equal((await me(one.app, fresh)).status, 401, 'revocations are heard again')
    t.equal((await me(one.app, ann)).status, 401)
  })

  t.test('killed (SIGKILL) with appendonly: the login made just before is not lost', async (t) => {
    const last = await login(one.app, '1', 'Just before the crash')
    await server.kill()
    await server.start()
    // Each instance's client reconnects on its own schedule: a 503 until then, never a 401.
    const seen = new Set<number>()
    await until('the cookie to work again on both instances', async () => {
      const statuses = [(await me(two.app, last)).status, (await me(one.app, last)).status]
      for (const status of statuses) seen.add(status)
      return statuses.every((status) => status === 200)
    })
    t.notOk(seen.has(401), `never anonymous meanwhile (${[...seen].join(', ')})`)
    t.equal((await me(two.app, bob)).status, 200, 'nor any other')
    t.match(await one.app.loginManager.listLogins('1'), [{ userAgent: 'Just before the crash' }])
  })
})

test('redisStore: \'x\\uD800\' is refused, never read as user \'x\\uFFFD\' (whose Redis key it would name)', async (t) => {
  const server = await startRedis(t)
  await refusesIllFormedIds(t, redisStore({ client: await readyClient(t, server.port) }))
})

test('a client left with ioredis\' defaults: a request waits while Redis is down, and is answered when it is back', async (t) => {
  const server = await startRedis(t, { appendonly: true })
  // ioredis' defaults: an offline queue, 20 retries per command, no timeout.
  const client = redisClient(t, server.port, { maxRetriesPerRequest: 20 })
  const { app, watch } = await instance(t, client)
  const cookies = await login(app)
  t.equal((await me(app, cookies)).status, 200)
  const deaf = watch.until('listening', (listening) => !listening)
  await server.stop()
  await deaf
  let answered: number | null = null
  const start = performance.now()
  const waiting = me(app, cookies).then(({ status }) => { answered = status })
  await new Promise((resolve) => setTimeout(resolve, 1000))
  t.equal(answered, null, 'no answer after 1 s: queued until Redis is back (about 70 s with no Redis, then a 503)')
  await server.start()
  await waiting
  t.comment(`answered after ${(performance.now() - start).toFixed(0)} ms, Redis being back after 1 s`)
  t.equal(answered, 200, 'checked against Redis, then answered')
})

test('idle timeout and sessionDuration against Redis: the plugin\'s clock decides, Redis expires the keys with the login', async (t) => {
  const server = await startRedis(t)
  const admin = redisClient(t, server.port)
  const tag = (userId: string): string => `fastify-login:{u:${Buffer.from(userId).toString('base64url')}}:`
  const nowInSeconds = (): number => Math.floor(Date.now() / 1000)
  t.beforeEach(async () => { await admin.flushall() })

  // Only the plugin's clock is moved: Redis keeps its own, and every key
  // expires in the real future, so Redis never expires one during these.
  t.test('idle timeout: the last use seen by any instance counts', async (t) => {
    const time = clock(t)
    const one = await instance(t, await readyClient(t, server.port), { idleTimeout: 600 })
    const two = await instance(t, await readyClient(t, server.port), { idleTimeout: 600 })
    const cookies = await login(one.app)
    const loginId = await loginIdOf(one.app, cookies)
    time.advance(599)
    t.equal((await me(two.app, cookies)).status, 200, 'used on the other instance within the timeout')
    const lastSeen = Number(await admin.hget(`${tag('1')}login:${loginId}`, 'lastSeenAt'))
    t.ok(nowInSeconds() - lastSeen <= 1, 'which wrote that last use to Redis')
    time.advance(599)
    const before = await commandCalls(admin)
    t.equal((await me(one.app, cookies)).status, 200, 'the first instance last saw it 1198 s ago, so Redis decides: used 599 s ago')
    t.equal(ranSince(before, await commandCalls(admin)).hgetall, 1, 'it asked Redis')
    time.advance(600)
    for (const [i, { app, loaderCalls }] of [one, two].entries()) {
      loaderCalls.length = 0
      t.equal((await me(app, cookies)).status, 401, `idle for 600 s: refused by instance ${i + 1}`)
      t.same(loaderCalls, [])
    }
    t.equal(await admin.exists(`${tag('1')}login:${loginId}`), 1, 'by the plugin: the record is still in Redis, until the login expires')
  })

  t.test('sessionDuration: a login that is not remembered ends on the server, cached or not', async (t) => {
    const time = clock(t)
    const one = await instance(t, await readyClient(t, server.port), { sessionDuration: 3600 })
    const two = await instance(t, await readyClient(t, server.port), { sessionDuration: 3600 })
    const session = await login(one.app, '1', 'Firefox', false)
    const remembered = await login(one.app, '2', 'Firefox', true)
    const sessionId = await loginIdOf(one.app, session)
    const [record] = await one.app.loginManager.listLogins('1')
    t.equal(record.expiresAt - record.createdAt, 3600)
    t.equal(await admin.call('EXPIRETIME', `${tag('1')}login:${sessionId}`), record.expiresAt, 'its record expires with it in Redis')
    t.equal(await admin.call('EXPIRETIME', `${tag('1')}logins`), record.expiresAt, 'and so does the user\'s index')
    time.advance(3599)
    t.equal((await me(one.app, session)).status, 200)
    time.advance(1)
    t.equal((await me(one.app, session)).status, 401, 'cached on this instance: refused')
    t.equal((await me(two.app, session)).status, 401, 'never seen by this one: read from Redis, and refused')
    t.equal(await admin.exists(`${tag('1')}login:${sessionId}`), 1, 'by the plugin\'s clock: Redis still has it')
    for (const { app } of [one, two]) t.equal((await me(app, remembered)).status, 200, 'a remembered login lasts cookieDuration')
  })

  t.test('in real time: Redis drops the keys of an ended login by itself', async (t) => {
    const one = await instance(t, await readyClient(t, server.port), { sessionDuration: 1 })
    const cookies = await login(one.app, '1', 'Brief', false)
    const [record] = await one.app.loginManager.listLogins('1')
    const keys = [`${tag('1')}login:${record.loginId}`, `${tag('1')}logins`]
    for (const key of keys) t.equal(await admin.call('EXPIRETIME', key), record.expiresAt, `${key} expires with the login`)
    await new Promise((resolve) => setTimeout(resolve, record.expiresAt * 1000 + 50 - Date.now()))
    t.equal(await admin.exists(...keys), 0, 'both keys gone, without a cleanup job')
    t.same(await one.app.loginManager.listLogins('1'), [])
    t.equal((await me(one.app, cookies)).status, 401)
  })
})

test('a loginUser nobody awaited, with Redis: no cookie, and no phantom device left in listLogins or in Redis', async (t) => {
  const server = await startRedis(t)
  const admin = redisClient(t, server.port)
  const careless: { pending: Promise<boolean> | boolean } = { pending: false }
  const { app } = await portal(t, redisStore({ client: await readyClient(t, server.port) }), {}, (app) => {
    app.get('/careless-login', (request, reply) => {
      careless.pending = app.loginManager.loginUser(request, reply, new User(1, 'ann')) // no await
      return 'sent before Redis answered'
    })
  })
  const response = await app.inject('/careless-login')
  t.same(setCookieHeaders(response), [], 'no cookie could be written')
  await t.rejects(Promise.resolve(careless.pending), { code: 'FST_LOGIN_NOT_AWAITED' })
  t.same(await app.loginManager.listLogins('1'), [], 'no device that no browser has')
  t.same(await admin.keys('fastify-login:{u:*'), [], 'nothing of the user left in Redis')
})

test('a revocation that lands while an instance is reading the same login from Redis is refused on the next request', async (t) => {
  const server = await startRedis(t)
  const time = clock(t)
  // The reader's store reads are held, once Redis has answered them, until released.
  let held: { read: () => void, released: Promise<void> } | null = null
  const heldReads = (store: LoginStore): LoginStore => ({
    ...store,
    get: async (loginId, userId) => {
      const record = await store.get(loginId, userId)
      // Only the next read is held: a revocation's own read goes through.
      const hold = held
      held = null
      if (hold !== null) {
        hold.read()
        await hold.released
      }
      return record
    }
  })
  function holdNextRead (): { read: Promise<void>, release: () => void } {
    let release = (): void => {}
    const read = new Promise<void>((resolve) => {
      held = { read: resolve, released: new Promise((resolve) => { release = resolve }) }
    })
    return { read, release }
  }
  // A rotation due takes a request off the fast path: its record is read.
  const rotation = { every: 60, grace: 10 }
  const reader = await instance(t, await readyClient(t, server.port), { rotation }, heldReads)
  const other = await instance(t, await readyClient(t, server.port), { rotation })

  // Read, revoked (or not) while the read is held, released; then the next request.
  async function race (revoke: ((loginId: string) => Promise<void>) | null): Promise<{ first: number, next: number }> {
    const cookies = await login(other.app)
    const loginId = await loginIdOf(other.app, cookies)
    time.advance(60)
    const hold = holdNextRead()
    const first = me(reader.app, cookies)
    await hold.read // Redis has answered: the login is alive
    if (revoke !== null) await revoke(loginId)
    hold.release()
    const { status } = await first
    return { first: status, next: (await me(reader.app, cookies)).status }
  }

  t.same(await race(null), { first: 200, next: 200 }, 'unraced')
  t.same(await race(async (loginId) => {
    const heard = reader.watch.until('revoked', (ids) => ids.includes(loginId))
    t.equal(await other.app.loginManager.revokeLogin('1', loginId), true)
    await heard
  }), { first: 200, next: 401 }, 'revoked on another instance and heard mid-read: the read answers as it read, the next request is refused')
  t.same(await race(async (loginId) => {
    t.equal(await reader.app.loginManager.revokeLogin('1', loginId), true)
  }), { first: 200, next: 401 }, 'revoked on the reading instance itself mid-read: the same')
})
