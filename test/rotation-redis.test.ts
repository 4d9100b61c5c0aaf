import { test } from 'tap'
import type { Test } from 'tap'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import type { LoginRecord, LoginStore } from '../types/index'
import { clock } from './helpers'
import { PROOF_WINDOW_MS } from '../lib/logins/revocations'
import { commandCalls, instance, PROBE_MS, ranSince, readyClient, type Instance } from './redis-instances'
import { redisClient, startRedis, type RedisServer } from './redis-server'

// Rotation with reuse detection (issue 20, part 1) against a real Redis: three
// instances of the app on one redis-server, a round-robin balancer in front of
// them, browsers with a cookie jar, and the plugin's clock moved by the test
// (Redis keeps its own: times are judged from the cookie and the record,
// never from key expiry). Every ordinary use keeps the login; every reuse
// ends it on every instance and says so once. The same with memoryStore:
// test/rotation.test.ts.

const EVERY = 600
const GRACE = 60

type Clock = ReturnType<typeof clock>

// A load balancer: each request to the next instance in turn, or to the one
// named. An instance may run `skews[i]` seconds ahead of (or behind) the
// test's clock; a skew applies around one request, so a test that sets one
// sends its requests one after another.
class Balancer {
  readonly instances: Instance[]
  readonly skews: number[]
  #time: Clock
  #next = 0

  constructor (instances: Instance[], time: Clock) {
    this.instances = instances
    this.skews = instances.map(() => 0)
    this.#time = time
  }

  async inject (options: InjectOptions, at?: number): Promise<Served> {
    const index = at ?? this.#next++ % this.instances.length
    const skew = this.skews[index]
    this.#time.advance(skew)
    try {
      return { response: await this.instances[index].app.inject(options), instance: index }
    } finally {
      this.#time.advance(-skew)
    }
  }
}

interface Served {
  response: LightMyRequestResponse
  instance: number
}

// A response on its way back: its cookies reach the jar when it arrives,
// which a test may put off (a slow response) or never do (a lost one).
interface InFlight extends Served {
  arrive (): LightMyRequestResponse
}

// A browser: one cookie jar, which all its tabs share. A request carries the
// jar as it is when the request is sent.
class Browser {
  jar: Record<string, string>
  readonly #balancer: Balancer

  constructor (balancer: Balancer, jar: Record<string, string> = {}) {
    this.#balancer = balancer
    this.jar = { ...jar }
  }

  async send (url = '/me', at?: number, headers: Record<string, string> = {}): Promise<InFlight> {
    const served = await this.#balancer.inject({ url, headers, cookies: { ...this.jar } }, at)
    return {
      ...served,
      arrive: () => {
        this.jar = applyCookies(this.jar, served.response)
        return served.response
      }
    }
  }

  async get (url = '/me', at?: number): Promise<LightMyRequestResponse> {
    return (await this.send(url, at)).arrive()
  }

  // Someone else with a copy of this jar.
  copy (): Browser {
    return new Browser(this.#balancer, this.jar)
  }

  // The account cookie's generation and flags (a3: fields 7 and 9).
  get generation (): string {
    const fields = (this.jar.account ?? '').split('.')
    return `${fields[7]}.${fields[9]}`
  }
}

// What a browser does with Set-Cookie: a cookie set to expire is dropped.
function applyCookies (jar: Record<string, string>, response: LightMyRequestResponse): Record<string, string> {
  const next = { ...jar }
  for (const cookie of response.cookies as Array<{ name: string, value: string, maxAge?: number, expires?: Date }>) {
    if (cookie.maxAge === 0 || (cookie.expires !== undefined && cookie.expires.getTime() <= Date.now())) delete next[cookie.name]
    else next[cookie.name] = cookie.value
  }
  return next
}

interface Reuse {
  instance: number
  record: LoginRecord
}

interface Fleet {
  balancer: Balancer
  instances: Instance[]
  time: Clock
  // loginReuseDetected, as each instance emitted it.
  reused: Reuse[]
  // What the plugin asked of the store, per instance.
  calls: Array<Record<string, number>>
  // An instance whose store stops proving that it heard every ending: it
  // reads the record on every request once its last proof is 100 ms old.
  deaf: boolean[]
}

// Three instances on one redis-server, each with its own client, rotating
// logins every EVERY seconds with GRACE seconds of grace.
async function startFleet (t: Test, server: RedisServer): Promise<Fleet> {
  // Before the instances start: their store's epoch is read with this clock.
  const time = clock(t)
  const instances: Instance[] = []
  const reused: Reuse[] = []
  const calls: Array<Record<string, number>> = []
  const deaf: boolean[] = []
  for (let i = 0; i < 3; i++) {
    const counted: Record<string, number> = {}
    calls.push(counted)
    deaf.push(false)
    const wrap = (store: LoginStore): LoginStore => {
      const count = <A extends unknown[], R>(name: string, method: (...args: A) => R) => (...args: A): R => {
        counted[name] = (counted[name] ?? 0) + 1
        return method(...args)
      }
      return {
        ...store,
        get: count('get', store.get),
        touch: count('touch', store.touch),
        advanceGeneration: count('advanceGeneration', store.advanceGeneration as NonNullable<LoginStore['advanceGeneration']>),
        subscribe: async (listener) => await store.subscribe?.({ ...listener, heard: (at) => { if (!deaf[i]) listener.heard(at) } })
      }
    }
    const one = await instance(t, await readyClient(t, server.port), { rotation: { every: EVERY, grace: GRACE } }, wrap)
    one.app.loginManager.on('loginReuseDetected', (_request, record) => { reused.push({ instance: i, record }) })
    instances.push(one)
  }
  return { balancer: new Balancer(instances, time), instances, time, reused, calls, deaf }
}

function total (fleet: Fleet, method: string): number {
  return fleet.calls.reduce((sum, counted) => sum + (counted[method] ?? 0), 0)
}

async function logIn (fleet: Fleet, userAgent = 'Firefox', at = 0): Promise<{ browser: Browser, loginId: string }> {
  const browser = new Browser(fleet.balancer)
  const response = (await browser.send('/login/1?remember=1', at, { 'user-agent': userAgent })).arrive()
  if (response.statusCode !== 200) throw new Error(`login: ${response.statusCode}`)
  return { browser, loginId: (await browser.get('/me', at)).json().loginId }
}

// The login is alive, the same one, on every instance; listed once; no reuse said.
async function kept (t: Test, fleet: Fleet, browser: Browser, loginId: string): Promise<void> {
  for (const [i, { app }] of fleet.instances.entries()) {
    const response = await browser.get('/me', i)
    t.equal(response.statusCode, 200, `instance ${i + 1} keeps the login`)
    t.equal(response.json().loginId, loginId, 'the same login id')
    t.same((await app.loginManager.listLogins('1')).map((record) => record.loginId), [loginId], 'and lists it, once')
  }
  t.same(fleet.reused, [], 'no reuse said')
}

// When each instance hears that the login ended (performance.now()): to
// call before whatever ends it.
function hearing (fleet: Fleet, loginId: string): Promise<number[]> {
  return Promise.all(fleet.instances.map(async ({ watch }) => await watch.until('revoked', (ids) => ids.includes(loginId), PROBE_MS)))
}

// The login is ended everywhere within 100 ms: that long after it ended,
// every copy is refused by every instance, which has heard of it by then or
// no longer trusts its list of ended logins and reads the record. Listed nowhere.
async function ended (t: Test, fleet: Fleet, browsers: Browser[]): Promise<void> {
  await delay(PROOF_WINDOW_MS)
  for (const [i, { app }] of fleet.instances.entries()) {
    for (const browser of browsers) t.equal((await browser.copy().get('/me', i)).statusCode, 401, `refused by instance ${i + 1}`)
    t.same(await app.loginManager.listLogins('1'), [], `listed by no instance (${i + 1})`)
  }
}

function delay (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

test('rotation against Redis, three instances behind a round-robin balancer', async (t) => {
  const server = await startRedis(t)
  const admin = redisClient(t, server.port)
  t.beforeEach(async () => { await admin.flushall() })

  t.test('once per `every`, the next generation on the next guarded request, whichever instance serves it; one write', async (t) => {
    const fleet = await startFleet(t, server)
    const { browser, loginId } = await logIn(fleet)
    t.equal(browser.generation, '0.r')
    for (let cycle = 1; cycle <= 3; cycle++) {
      fleet.time.advance(EVERY - 1)
      await browser.get('/me')
      t.equal(browser.generation, `${cycle - 1}.r`, `cycle ${cycle}: not before \`every\``)
      fleet.time.advance(1)
      const before = await commandCalls(admin)
      const advanced = total(fleet, 'advanceGeneration')
      const touched = total(fleet, 'touch')
      await browser.get('/me')
      t.equal(browser.generation, `${cycle}.ru`, `cycle ${cycle}: the next generation, its first use not recorded`)
      t.equal(total(fleet, 'advanceGeneration'), advanced, 'issuing it writes nothing')
      for (let i = 0; i < 9; i++) {
        const response = await browser.get('/me')
        t.equal(response.statusCode, 200)
        t.equal(response.json().loginId, loginId, 'the same login')
      }
      t.equal(browser.generation, `${cycle}.r`, 'its first use recorded, and re-issued as such')
      t.equal(total(fleet, 'advanceGeneration') - advanced, 1, 'by one write, over ten requests on three instances')
      const ran = ranSince(before, await commandCalls(admin))
      const touches = total(fleet, 'touch') - touched
      t.comment(`cycle ${cycle}, ten requests from \`every\` on: ${JSON.stringify(ran)} in Redis; store calls: 1 advanceGeneration, ${touches} touch`)
      // The scripts' own commands: a touch is HGET + HSET, the first use
      // recorded HGET + HGET + HSET. Reads beyond the one of the rotation
      // are those of an instance whose proof was late (a loaded machine).
      t.equal(ran.hset, touches + 1, 'Redis wrote the record once for the rotation (and once per last use moved on)')
      t.ok(ran.hgetall >= 1, 'the record was read for the rotation')
      // EVAL: a script's first run on this server (EVALSHA answered NOSCRIPT).
      t.same(Object.keys(ran).filter((command) => !['hset', 'hget', 'evalsha', 'eval', 'hgetall'].includes(command)), [], 'nothing else')
    }
    t.match(await fleet.instances[2].app.loginManager.listLogins('1'), [{ loginId, generation: 3 }], 'the devices list: the same login, its generation')
    t.same(fleet.reused, [])

    const before = await commandCalls(admin)
    for (let i = 0; i < 30; i++) t.equal((await browser.get('/me')).statusCode, 200)
    const warm = ranSince(before, await commandCalls(admin))
    t.comment(`30 more requests within the minute: ${JSON.stringify(warm)} in Redis`)
    t.same(Object.keys(warm).filter((command) => command !== 'hgetall'), [], 'between rotations, no writes: the warm path asks Redis nothing (but a late proof\'s read)')
    t.ok((warm.hgetall ?? 0) < 15, `most requests read nothing (${warm.hgetall ?? 0} reads in 30)`)
  })

  t.test('ordinary use keeps the login', async (t) => {
    t.test('a response carrying the new cookie is lost, again and again, long after grace', async (t) => {
      const fleet = await startFleet(t, server)
      const { browser, loginId } = await logIn(fleet)
      fleet.time.advance(EVERY)
      for (let i = 0; i < 6; i++) {
        const lost = await browser.send('/me')
        t.equal(lost.response.statusCode, 200, `lost response ${i + 1}, on instance ${lost.instance + 1}`)
        fleet.time.advance(GRACE * 3)
      }
      t.equal(browser.generation, '0.r', 'the browser still has the old one')
      t.equal(total(fleet, 'advanceGeneration'), 0, 'and nothing was recorded')
      await browser.get('/me')
      t.equal(browser.generation, '1.ru', 'the next one arrives')
      await kept(t, fleet, browser, loginId)
      t.equal(browser.generation, '1.r')
    })

    t.test('the response that recorded the first use is lost: the unconfirmed cookie goes on, on every instance', async (t) => {
      const fleet = await startFleet(t, server)
      const { browser, loginId } = await logIn(fleet)
      fleet.time.advance(EVERY)
      await browser.get('/me', 0)
      t.equal(browser.generation, '1.ru')
      t.equal((await browser.send('/me', 1)).response.statusCode, 200, 'its first use, recorded by instance 2; the answer is lost')
      const key = `fastify-login:{u:MQ}:login:${loginId}`
      const recorded = await admin.hmget(key, 'generation', 'generationUsedAt')
      t.equal(recorded[0], '1')
      fleet.time.advance(GRACE * 3)
      const before = await commandCalls(admin)
      for (const i of [1, 2, 0, 1, 2]) {
        t.equal((await browser.send('/me', i)).response.statusCode, 200, `the unconfirmed cookie again, long after grace, on instance ${i + 1} (answer lost)`)
      }
      t.comment(`five requests with the unconfirmed cookie, answers lost: ${JSON.stringify(ranSince(before, await commandCalls(admin)))} in Redis`)
      t.same(fleet.calls.map((counted) => counted.advanceGeneration ?? 0), [0, 1, 0], 'recorded once: the other instances read the record once each, which has this cookie, and write nothing')
      t.same(await admin.hmget(key, 'generation', 'generationUsedAt'), recorded, 'and Redis kept the first')
      await kept(t, fleet, browser, loginId)
      t.equal(browser.generation, '1.r')
    })

    t.test('parallel requests with the old cookie on the three instances while the rotation is in flight, answered in any order', async (t) => {
      const fleet = await startFleet(t, server)
      const { browser, loginId } = await logIn(fleet)
      fleet.time.advance(EVERY)
      const inFlight = await Promise.all([0, 1, 2, 0, 1, 2].map(async (i) => await browser.send('/me', i)))
      t.same(inFlight.map(({ response }) => response.statusCode), [200, 200, 200, 200, 200, 200], 'six requests, two per instance, at once')
      inFlight[4].arrive()
      t.equal(browser.generation, '1.ru')
      const confirming = await browser.send('/me', 0)
      t.equal(confirming.response.statusCode, 200, 'the browser uses the new one: its first use is recorded')
      // Of the others, some arrive before that answer, some after.
      for (const i of [1, 5]) inFlight[i].arrive()
      confirming.arrive()
      for (const i of [0, 2, 3]) inFlight[i].arrive()
      t.equal(browser.generation, '1.ru', 'a late answer put an unconfirmed copy back')
      fleet.time.advance(GRACE * 2)
      const stragglers = await Promise.all([0, 1, 2].map(async (i) => await browser.send('/me', i)))
      t.same(stragglers.map(({ response }) => response.statusCode), [200, 200, 200], 'long after grace, it is the same generation: fine')
      await kept(t, fleet, browser, loginId)
      t.equal(browser.generation, '1.r')
      t.equal(total(fleet, 'advanceGeneration'), 1, 'recorded by the first; every other instance that saw the unconfirmed copy read the record, which has it')
    })

    t.test('parallel requests with the unconfirmed cookie on the three instances: each records its first use, Redis changes once', async (t) => {
      const fleet = await startFleet(t, server)
      const { browser, loginId } = await logIn(fleet)
      fleet.time.advance(EVERY)
      await browser.get('/me', 0)
      t.equal(browser.generation, '1.ru')
      const before = await commandCalls(admin)
      const answers = await Promise.all([0, 1, 2].map(async (i) => await browser.send('/me', i)))
      t.same(answers.map(({ response }) => response.statusCode), [200, 200, 200])
      const ran = ranSince(before, await commandCalls(admin))
      t.comment(`three parallel requests with the unconfirmed cookie, one per instance: ${JSON.stringify(ran)} in Redis`)
      t.same(fleet.calls.map((counted) => counted.advanceGeneration ?? 0), [1, 1, 1], 'each instance asks Redis to record it')
      t.equal(ran.hset, 1, 'Redis writes it once: the others find it recorded')
      for (const answer of answers) answer.arrive()
      for (let i = 0; i < 6; i++) await browser.get('/me')
      t.equal(total(fleet, 'advanceGeneration'), 3, 'and the confirmed cookie asks nothing more')
      await kept(t, fleet, browser, loginId)
    })

    t.test('a slow response re-issued the old generation, and reached the browser after the new one was used', async (t) => {
      const fleet = await startFleet(t, server)
      const { browser, loginId } = await logIn(fleet)
      // A slow page, asked for just before the rotation is due: its answer
      // carries the old generation (its last use moved on).
      fleet.time.advance(EVERY - 1)
      const slow = await browser.send('/me', 0)
      t.equal(slow.response.statusCode, 200)
      t.equal(slow.response.cookies.length, 1, 'the slow answer re-issues the account cookie')
      fleet.time.advance(1)
      await browser.get('/me', 1)
      t.equal(browser.generation, '1.ru')
      await browser.get('/me', 2)
      t.equal(browser.generation, '1.r', 'the new one is used')
      fleet.time.advance(5)
      slow.arrive()
      t.equal(browser.generation, '0.r', 'then the slow answer arrives: the old generation is back in the jar')
      fleet.time.advance(GRACE * 10)
      await kept(t, fleet, browser, loginId)
      t.equal(browser.generation, '1.r', 'and the browser catches up')
    })

    t.test('two tabs, one jar, through three rotations', async (t) => {
      const fleet = await startFleet(t, server)
      const { browser, loginId } = await logIn(fleet)
      const statuses = new Set<number>()
      // Each step, both tabs send a request at once; their answers arrive in
      // either order. Steps 50 s apart: a rotation falls between two of them.
      for (let step = 0; step < 40; step++) {
        fleet.time.advance(50)
        const [one, two] = await Promise.all([browser.send('/me'), browser.send(step % 3 === 0 ? '/plain' : '/me')])
        const order = step % 2 === 0 ? [one, two] : [two, one]
        for (const answer of order) statuses.add(answer.arrive().statusCode)
      }
      t.same([...statuses], [200], 'every request of either tab passed')
      t.match(browser.generation, /^3\.ru?$/, 'three rotations in 2000 s')
      await kept(t, fleet, browser, loginId)
    })

    t.test('the clock moves: back on every instance, forward an hour, and instances 10 s apart', async (t) => {
      const fleet = await startFleet(t, server)
      const { browser, loginId } = await logIn(fleet)
      fleet.time.advance(EVERY)
      const tab = browser.copy()
      await browser.get('/me')
      await browser.get('/me')
      t.equal(browser.generation, '1.r')
      fleet.time.advance(-30)
      t.equal((await tab.get('/me')).statusCode, 200, 'every clock set back 30 s: the old cookie came "before" the new one was used')
      fleet.time.advance(3600)
      t.equal((await browser.get('/me')).statusCode, 200, 'set forward an hour: due, rotated')
      t.equal(browser.generation, '2.ru')
      // Instance 1 runs 10 s behind, instance 3 10 s ahead.
      fleet.balancer.skews.splice(0, 3, -10, 0, 10)
      const old = browser.copy()
      await browser.get('/me', 0)
      t.equal(browser.generation, '2.r', 'its first use, recorded by the instance 10 s behind')
      fleet.time.advance(GRACE - 25)
      for (const i of [2, 1]) t.equal((await old.copy().get('/me', i)).statusCode, 200, `a tab's older one, ${GRACE - 25} s later, judged by instance ${i + 1}`)
      for (let i = 0; i < 30; i++) {
        fleet.time.advance(50)
        t.equal((await browser.get('/me')).statusCode, 200)
      }
      t.match(browser.generation, /^4\.ru?$/, 'rotated twice more in 1500 s')
      fleet.balancer.skews.fill(0)
      await kept(t, fleet, browser, loginId)
    })

    t.test('an instance that cannot trust its list of ended logins reads the record, and rotates the same way', async (t) => {
      const fleet = await startFleet(t, server)
      const { browser, loginId } = await logIn(fleet)
      fleet.deaf[1] = true
      await delay(150) // its last proof is now too old
      const reads = fleet.calls[1].get ?? 0
      t.equal((await browser.get('/me', 1)).statusCode, 200)
      t.equal(fleet.calls[1].get - reads, 1, 'it reads the record')
      fleet.time.advance(EVERY)
      await browser.get('/me', 1)
      t.equal(browser.generation, '1.ru', 'rotated there')
      await browser.get('/me', 1)
      t.equal(browser.generation, '1.r', 'its first use recorded there too')
      t.equal(fleet.calls[1].advanceGeneration, 1)
      for (let i = 0; i < 5; i++) await browser.get('/me', 1)
      t.equal(fleet.calls[1].advanceGeneration, 1, 'once')
      fleet.deaf[1] = false
      await kept(t, fleet, browser, loginId)
    })
  })

  t.test('reuse ends the login on every instance within 100 ms, and says so once', async (t) => {
    for (const order of ['the thief first', 'the owner first']) {
      t.test(order, async (t) => {
        const fleet = await startFleet(t, server)
        const { browser: owner, loginId } = await logIn(fleet, 'Chrome on Windows')
        const thief = owner.copy()
        fleet.time.advance(EVERY)
        const [first, second] = order === 'the thief first' ? [thief, owner] : [owner, thief]
        await first.get('/me', 0)
        t.equal((await first.get('/me', 1)).statusCode, 200, 'the newer generation, first used on instance 2')
        t.equal(first.generation, '1.r')
        fleet.time.advance(GRACE + 1)
        const heard = hearing(fleet, loginId)
        const sent = performance.now()
        const late = await second.get('/me', 2)
        t.equal(late.statusCode, 401, 'the older one, more than grace later, on instance 3: refused')
        t.equal(fleet.reused.length, 1, 'loginReuseDetected')
        t.match(fleet.reused[0], { instance: 2, record: { loginId, userId: '1', userAgent: 'Chrome on Windows', generation: 1 } }, 'by that instance, with the record, to tell the user')
        await ended(t, fleet, [first, second])
        const heardAfter = (await heard).map((at) => `${(at - sent).toFixed(1)} ms`)
        t.comment(`${order}: the instances heard the ending ${heardAfter.join(', ')} after the older cookie was sent`)
        t.equal(fleet.reused.length, 1, 'said once, whoever comes back')
      })
    }

    t.test('two copies that take turns, one request a visit on another instance, each rotated on its own visit', async (t) => {
      const fleet = await startFleet(t, server)
      const { browser: owner, loginId } = await logIn(fleet)
      const thief = owner.copy()
      const statuses: number[] = []
      // 150 s apart, turn about, round robin: at 600 s the thief's copy is
      // rotated, at 750 the owner's (the record still at generation 0), at
      // 900 the thief's is used, and at 1050 the owner's is another cookie
      // of generation 1, issued 150 s apart from the one recorded.
      for (let step = 0; step < 4; step++) {
        fleet.time.advance(150)
        statuses.push((await owner.get('/me')).statusCode)
        fleet.time.advance(150)
        statuses.push((await thief.get('/me')).statusCode)
      }
      t.same(statuses, [200, 200, 200, 200, 200, 200, 401, 401], 'ended at the owner\'s next visit')
      t.equal(fleet.reused.length, 1, 'loginReuseDetected, once')
      t.match(fleet.reused[0], { record: { loginId, generation: 1 } })
      await ended(t, fleet, [owner, thief])
    })

    t.test('the older copy comes back on the three instances at once', async (t) => {
      const fleet = await startFleet(t, server)
      const { browser: owner } = await logIn(fleet)
      const thief = owner.copy()
      fleet.time.advance(EVERY)
      await owner.get('/me')
      await owner.get('/me')
      fleet.time.advance(GRACE + 1)
      const answers = await Promise.all([0, 1, 2, 0, 1, 2].map(async (i) => (await thief.copy().send('/me', i)).response.statusCode))
      t.same(answers, [401, 401, 401, 401, 401, 401], 'six requests, two per instance: each refused')
      t.equal(fleet.reused.length, 1, 'said once, by the one that ended it')
      await ended(t, fleet, [owner, thief])
    })

    t.test('a copy two generations behind, within grace of the newest one\'s first use', async (t) => {
      const fleet = await startFleet(t, server)
      const { browser: owner } = await logIn(fleet)
      const thief = owner.copy()
      for (let cycle = 0; cycle < 2; cycle++) {
        fleet.time.advance(EVERY)
        await owner.get('/me')
        await owner.get('/me')
      }
      t.equal(owner.generation, '2.r')
      fleet.time.advance(1)
      t.equal((await thief.get('/me')).statusCode, 401, 'generation 0, a second after generation 2 was first used: refused')
      t.match(fleet.reused, [{ record: { generation: 2 } }])
      await ended(t, fleet, [owner, thief])
    })

    t.test('a copy last used more than grace before the newer generation\'s first use', async (t) => {
      const fleet = await startFleet(t, server)
      const { browser: owner } = await logIn(fleet)
      fleet.time.advance(EVERY - GRACE - 1)
      await owner.get('/me') // its last use moves on, in the cookie
      const thief = owner.copy()
      fleet.time.advance(GRACE + 1)
      await owner.get('/me')
      await owner.get('/me')
      t.equal(owner.generation, '1.r', 'the newer generation, first used grace + 1 s after the copy\'s last use')
      fleet.time.advance(GRACE + 1)
      t.equal((await thief.get('/me')).statusCode, 401, 'the copy, more than grace after that: refused')
      t.equal(fleet.reused.length, 1)
      await ended(t, fleet, [owner, thief])
    })
  })
})
