import { test } from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { memoryStore } from '../lib/index'
import type { LoginRecord, LoginStore } from '../types/index'
import { clock, cookieJar, login, portal, setCookieHeaders } from './helpers'

// Rotation with reuse detection (issue 20, part 1), with memoryStore and a
// controlled clock: every `every` seconds a login's account cookie is
// re-issued as its next generation; an older generation that comes back more
// than `grace` seconds after a newer one was first used ends the login. The
// same against Redis and three instances: test/rotation-redis.test.ts.

const EVERY = 600
const GRACE = 60

// A browser: a cookie jar that takes what each response sets (unless the
// response is lost on the way).
class Browser {
  jar: Record<string, string>
  constructor (jar: Record<string, string>) { this.jar = { ...jar } }
  async get (app: FastifyInstance, url = '/me', { lost = false } = {}): Promise<LightMyRequestResponse> {
    const { response, arrive } = await this.send(app, url)
    if (!lost) arrive()
    return response
  }

  // A request whose response reaches the jar when `arrive` is called.
  async send (app: FastifyInstance, url = '/me'): Promise<{ response: LightMyRequestResponse, arrive: () => void }> {
    const response = await app.inject({ url, cookies: this.jar })
    return { response, arrive: () => { this.jar = { ...this.jar, ...cookieJar(response) } } }
  }

  copy (): Browser { return new Browser(this.jar) }
  // The account cookie's generation and flags (a3: fields 7 and 9).
  get generation (): string {
    const fields = this.jar.account.split('.')
    return `${fields[7]}.${fields[9]}`
  }
}

interface Setup {
  app: FastifyInstance
  time: { advance: (seconds: number) => void }
  reused: LoginRecord[]
  store: LoginStore & { writes: Record<string, number> }
}

// A memoryStore that counts its writes.
function countingStore (): LoginStore & { writes: Record<string, number> } {
  const inner = memoryStore()
  const writes: Record<string, number> = {}
  const count = <A extends unknown[], R>(name: string, method: (...args: A) => R) => (...args: A): R => {
    writes[name] = (writes[name] ?? 0) + 1
    return method(...args)
  }
  return {
    ...inner,
    writes,
    touch: count('touch', inner.touch),
    advanceGeneration: count('advanceGeneration', inner.advanceGeneration as NonNullable<LoginStore['advanceGeneration']>),
    get: count('get', inner.get)
  }
}

async function setup (t: Test): Promise<Setup> {
  const store = countingStore()
  return { ...await rotating(t, store), store }
}

// An app that rotates logins in `store`, and what it says of reuse.
async function rotating (t: Test, store: LoginStore, options: Record<string, unknown> = {}): Promise<Omit<Setup, 'store'>> {
  const time = clock(t)
  const reused: LoginRecord[] = []
  const { app } = await portal(t, store, { rotation: { every: EVERY, grace: GRACE }, ...options }, (app) => {
    app.loginManager.on('loginReuseDetected', (_request, record) => { reused.push(record) })
  })
  return { app, time, reused }
}

// A memoryStore whose every read answers a tick after it read.
function slowReads (): LoginStore {
  const inner = memoryStore()
  return {
    ...inner,
    get: async (loginId, userId) => {
      const record = inner.get(loginId, userId) as LoginRecord | null
      return await new Promise((resolve) => setImmediate(() => resolve(record)))
    }
  }
}

// Two browsers taking turns, `steps` times: the first after `apart[0]`
// seconds, the second `apart[1]` after it. What each request was answered.
async function turns (app: FastifyInstance, time: Setup['time'], browsers: [Browser, Browser], apart: [number, number], steps: number): Promise<number[]> {
  const statuses: number[] = []
  for (let step = 0; step < steps; step++) {
    for (const [i, browser] of browsers.entries()) {
      time.advance(apart[i])
      statuses.push((await browser.get(app)).statusCode)
    }
  }
  return statuses
}

test('a login is re-issued as its next generation once per `every`, on a guarded request', async (t) => {
  const { app, time, store } = await setup(t)
  const browser = new Browser(await login(app))
  const loginId = (await browser.get(app)).json().loginId
  t.equal(browser.generation, '0.s', 'generation 0')
  time.advance(EVERY - 1)
  t.same(setCookieHeaders(await browser.get(app, '/plain')), [], 'an unguarded page never re-issues')
  t.equal(store.writes.get ?? 0, 0, 'younger than `every`: no store read')
  time.advance(1)
  const rotated = await browser.get(app)
  t.equal(rotated.statusCode, 200)
  t.equal(rotated.json().loginId, loginId, 'the same login, the same login id')
  t.equal(browser.generation, '1.su', 'generation 1, its first use not yet recorded')
  t.equal(store.writes.advanceGeneration ?? 0, 0, 'issuing it writes nothing')
  await browser.get(app)
  t.equal(browser.generation, '1.s', 'its first use recorded, and re-issued as such')
  t.equal(store.writes.advanceGeneration, 1, 'one store write per rotation')
  for (let i = 0; i < 5; i++) await browser.get(app)
  t.equal(store.writes.advanceGeneration, 1, 'and no more')
  t.same((await app.loginManager.listLogins('1')).map((record) => [record.loginId, record.generation]), [[loginId, 1]], 'the devices list does not change')
})

test('ordinary use never ends a login', async (t) => {
  t.test('a response carrying the new cookie never arrives: the old one goes on working, long after grace', async (t) => {
    const { app, time, reused } = await setup(t)
    const browser = new Browser(await login(app))
    time.advance(EVERY)
    for (let i = 0; i < 3; i++) {
      t.equal((await browser.get(app, '/me', { lost: true })).statusCode, 200, `lost response ${i + 1}`)
      time.advance(GRACE * 3)
    }
    t.equal(browser.generation, '0.s')
    t.equal((await browser.get(app)).statusCode, 200, 'the next one arrives')
    t.equal((await browser.get(app)).statusCode, 200)
    t.equal(browser.generation, '1.s')
    t.same(reused, [])
  })

  t.test('parallel requests with the old cookie while the rotation is in flight, and two tabs', async (t) => {
    const { app, time, reused } = await setup(t)
    const browser = new Browser(await login(app))
    time.advance(EVERY)
    const old = browser.copy()
    const answers = await Promise.all([0, 1, 2].map(async () => await old.copy().get(app)))
    t.same(answers.map((answer) => answer.statusCode), [200, 200, 200], 'each of three parallel requests passes')
    t.same(answers.map((answer) => new Browser(cookieJar(answer)).generation), ['1.su', '1.su', '1.su'], 'each gets the next generation')
    browser.jar = { ...browser.jar, ...cookieJar(answers[0]) }
    t.equal((await browser.get(app)).statusCode, 200, 'the browser uses it: its first use is recorded')
    time.advance(GRACE)
    const straggler = old.copy()
    t.equal((await straggler.get(app)).statusCode, 200, 'another tab still sends the old one, within grace: fine')
    t.equal(straggler.generation, '1.s', 'and catches up')
    t.equal((await browser.get(app)).statusCode, 200)
    t.same(reused, [])
  })

  t.test('a slow response re-issued the old generation, and reached the browser after the new one was used', async (t) => {
    const { app, time, reused } = await setup(t)
    const browser = new Browser(await login(app))
    time.advance(EVERY - 1)
    const slow = await browser.send(app)
    t.equal(setCookieHeaders(slow.response).length, 1, 'the slow page\'s answer re-issues the old generation (its last use moved on)')
    time.advance(1)
    await browser.get(app)
    await browser.get(app)
    t.equal(browser.generation, '1.s', 'the new one is used')
    slow.arrive()
    t.equal(browser.generation, '0.s', 'then the slow answer puts the old one back')
    time.advance(GRACE * 10)
    t.equal((await browser.get(app)).statusCode, 200, 'long after grace: its last use was within grace before the new one\'s first')
    t.equal(browser.generation, '1.s', 'and it catches up')
    t.same(reused, [])
  })

  t.test('a clock that moves back does not end it', async (t) => {
    const { app, time, reused } = await setup(t)
    const browser = new Browser(await login(app))
    time.advance(EVERY)
    const old = browser.copy()
    await browser.get(app)
    await browser.get(app)
    time.advance(-30)
    t.equal((await old.get(app)).statusCode, 200, 'the older cookie, "before" the newer one was used')
    t.same(reused, [])
  })
})

test('reuse ends the login, in either order, everywhere, and says so once', async (t) => {
  for (const order of ['the thief first', 'the owner first']) {
    const { app, time, reused } = await setup(t)
    const owner = new Browser(await login(app, '1', 'Chrome on Windows'))
    const thief = owner.copy()
    time.advance(EVERY)
    const [first, second] = order === 'the thief first' ? [thief, owner] : [owner, thief]
    await first.get(app)
    t.equal((await first.get(app)).statusCode, 200, `${order}: its newer generation is used`)
    time.advance(GRACE + 1)
    const late = await second.get(app)
    t.equal(late.statusCode, 401, `${order}: the older generation, more than grace later: refused`)
    t.equal((await first.get(app)).statusCode, 401, `${order}: and the login is ended for every copy`)
    t.same(await app.loginManager.listLogins('1'), [], `${order}: and from the devices list`)
    t.equal(reused.length, 1, `${order}: loginReuseDetected once`)
    t.match(reused[0], { userId: '1', userAgent: 'Chrome on Windows', generation: 1 }, 'with the record, to tell the user')
    t.equal((await second.get(app)).statusCode, 401)
    t.equal(reused.length, 1, 'not again for the next attempt')
  }
})

test('what a late copy cannot be: reuse', async (t) => {
  t.test('a copy two generations behind, within grace of the newest one\'s first use', async (t) => {
    const { app, time, reused } = await setup(t)
    const owner = new Browser(await login(app))
    const thief = owner.copy()
    for (let i = 0; i < 2; i++) {
      time.advance(EVERY)
      await owner.get(app)
      await owner.get(app)
    }
    t.equal(owner.generation, '2.s')
    t.equal((await thief.get(app)).statusCode, 401, 'generation 0: the one after it was used and replaced')
    t.match(reused, [{ generation: 2 }])
    t.equal((await owner.get(app)).statusCode, 401)
  })

  t.test('the one just before, last used more than grace before the newer one\'s first use', async (t) => {
    const { app, time, reused } = await setup(t)
    const owner = new Browser(await login(app))
    time.advance(EVERY - GRACE - 1)
    await owner.get(app)
    const thief = owner.copy()
    time.advance(GRACE + 1)
    await owner.get(app)
    await owner.get(app)
    time.advance(GRACE + 1)
    t.equal((await thief.get(app)).statusCode, 401)
    t.equal(reused.length, 1)
  })
})

test('two copies used together stay together; one left unused for longer than every + 2 × grace ends the login when it comes back', async (t) => {
  const { app, time, reused } = await setup(t)
  const owner = new Browser(await login(app))
  const thief = owner.copy()
  // Both use the login every half minute, the thief 10 s after the owner:
  // through three rotations, neither ends it.
  const statuses = await turns(app, time, [owner, thief], [20, 10], 60)
  t.same(statuses.filter((status) => status !== 200), [], 'every request served')
  t.same(reused, [], 'together')
  // The thief stops; the owner goes on. The owner's first rotation more than
  // grace after the thief's last use leaves the thief's copy behind.
  for (let step = 0; step < (EVERY + 2 * GRACE) / 30 + 1; step++) {
    time.advance(30)
    t.equal((await owner.get(app)).statusCode, 200)
  }
  t.equal((await thief.get(app)).statusCode, 401, 'the copy comes back: the login is ended')
  t.equal(reused.length, 1)
  t.equal((await owner.get(app)).statusCode, 401)
})

test('two copies that take turns, one request a visit, each rotated on its own visit: the copy used second ends the login', async (t) => {
  for (const first of ['owner', 'thief'] as const) {
    t.test(`the ${first} rotates first`, async (t) => {
      const { app, time, reused, store } = await setup(t)
      const owner = new Browser(await login(app))
      const thief = owner.copy()
      const [one, other] = first === 'owner' ? [owner, thief] : [thief, owner]
      // 150 s apart, turn about: each visit the only request of its copy.
      const statuses = await turns(app, time, [one, other], [150, 150], 4)
      // At 600 s the second copy is rotated (generation 1, issued at 600),
      // at 750 the first (generation 1, issued at 750), since the record
      // still says 0; at 900 the second's is used and recorded; at 1050 the
      // first's, 150 s after the recorded one was issued, is another party's.
      t.same(statuses, [200, 200, 200, 200, 200, 200, 401, 401], 'ended at the first one\'s next visit')
      t.equal(reused.length, 1, 'loginReuseDetected, once')
      t.equal(store.writes.advanceGeneration, 1, 'one rotation recorded')
    })
  }
})

test('cookies of one generation issued within grace of each other are one browser\'s: a late one is kept, and a store that keeps no issue time never ends a login by it', async (t) => {
  t.test('two parallel requests with the old cookie; the one answered last is used long after', async (t) => {
    const { app, time, reused } = await setup(t)
    const browser = new Browser(await login(app))
    time.advance(EVERY)
    const first = await browser.send(app)
    time.advance(GRACE - 1)
    const second = await browser.send(app)
    second.arrive()
    t.equal((await browser.get(app)).statusCode, 200, 'the second one used, and recorded')
    first.arrive()
    t.equal(browser.generation, '1.su', 'the first one arrives after it')
    time.advance(EVERY - GRACE - 1)
    t.equal((await browser.get(app)).statusCode, 200, 'and is used long after grace: kept')
    t.same(reused, [])
    t.equal(browser.generation, '1.s')
  })

  t.test('a store whose advanceGeneration predates its cookie argument', async (t) => {
    const inner = memoryStore()
    const advance = inner.advanceGeneration as NonNullable<LoginStore['advanceGeneration']>
    const store: LoginStore = { ...inner, advanceGeneration: (loginId, userId, generation, usedAt) => advance(loginId, userId, generation, usedAt) }
    const { app, time, reused } = await rotating(t, store)
    const owner = new Browser(await login(app))
    t.same(await turns(app, time, [owner, owner.copy()], [150, 150], 4), [200, 200, 200, 200, 200, 200, 200, 200])
    t.same(reused, [], 'taking turns is not told from one browser without it, as before it')
  })
})

test('with storeCacheWindow, rotation is judged on the record as the store has it', async (t) => {
  // A store without subscribe: records are reused from the window cache.
  const withoutSubscribe = (): LoginStore => {
    const { subscribe: _, ...store } = memoryStore()
    return store
  }

  // The record cached on the instance that gets the slow request; the
  // rotation made and recorded there too, or on another instance.
  for (const instances of [1, 2]) {
    t.test(`a slow response puts the older generation back, on ${instances} instance(s): never rotated again from a cached record`, async (t) => {
      const store = withoutSubscribe()
      const { app: one, time, reused } = await rotating(t, store, { storeCacheWindow: 300 })
      const other = instances === 1 ? one : (await portal(t, store, { rotation: { every: EVERY, grace: GRACE }, storeCacheWindow: 300 })).app
      const browser = new Browser(await login(one))
      time.advance(EVERY - 1)
      const slow = await browser.send(one) // its last use moves on: generation 0 re-issued, and the record cached
      time.advance(2)
      t.equal((await browser.get(other)).statusCode, 200, 'rotated')
      time.advance(1)
      t.equal((await browser.get(other)).statusCode, 200, 'its first use recorded')
      slow.arrive()
      t.equal(browser.generation, '0.s', 'the slow response put generation 0 back')
      time.advance(100)
      t.equal((await browser.get(one)).statusCode, 200, 'a late copy of its own')
      t.equal(browser.generation, '1.s', 'given the generation recorded, not rotated again')
      time.advance(1)
      t.equal((await browser.get(other)).statusCode, 200, 'the generation recorded, confirmed')
      time.advance(1)
      t.equal((await browser.get(one)).statusCode, 200, 'where the cached record is older than the cookie')
      t.equal(browser.generation, '1.s', 'still confirmed: an older record read is a stale one')
      time.advance(250)
      t.equal((await browser.get(one)).statusCode, 200, 'and kept once the window has passed')
      t.same(reused, [])
    })
  }

  t.test('an unconfirmed cookie whose first use this instance recorded is served from the window', async (t) => {
    const inner = withoutSubscribe()
    let reads = 0
    const store: LoginStore = { ...inner, get: (loginId, userId) => { reads++; return inner.get(loginId, userId) } }
    const { app, time } = await rotating(t, store, { storeCacheWindow: 300 })
    const browser = new Browser(await login(app))
    time.advance(EVERY)
    await browser.get(app)
    time.advance(1)
    t.equal((await browser.get(app, '/me', { lost: true })).statusCode, 200, 'its first use recorded; the answer lost')
    const before = reads
    for (let i = 0; i < 4; i++) t.equal((await browser.get(app, '/me', { lost: true })).statusCode, 200)
    t.equal(reads - before, 1, 'one store read (the recording dropped the cached record), then the window')
  })

  t.test('two copies that take turns are told apart', async (t) => {
    const { app, time, reused } = await rotating(t, withoutSubscribe(), { storeCacheWindow: 300 })
    const owner = new Browser(await login(app))
    const statuses = await turns(app, time, [owner, owner.copy()], [100, 100], 10)
    t.equal(reused.length, 1, 'loginReuseDetected')
    t.same(statuses.slice(-2), [401, 401], 'and the login ended')
  })
})

test('a copy whose first use loses the race to record its generation is judged on its next request', async (t) => {
  // Two requests both read the record before either writes.
  const { app, time, reused } = await rotating(t, slowReads())
  const owner = new Browser(await login(app))
  const thief = owner.copy()
  time.advance(EVERY)
  await owner.get(app)
  time.advance(GRACE + 1)
  await thief.get(app)
  t.same([owner.generation, thief.generation], ['1.su', '1.su'], 'each copy rotated on its own visit')
  time.advance(GRACE) // each use also records the login's last use
  const [first, second] = await Promise.all([owner.send(app), thief.send(app)])
  t.same([first.response.statusCode, second.response.statusCode], [200, 200], 'both first uses at once: the owner\'s is recorded')
  first.arrive()
  second.arrive()
  t.equal(thief.generation, '1.su', 'the other stays unconfirmed')
  t.equal((await thief.get(app)).statusCode, 401, 'and its next request, another cookie of the generation, ends the login')
  t.equal(reused.length, 1)
})

test('during a rolling deploy, an instance of an older version that records a generation without its cookie never ends a login', async (t) => {
  const inner = memoryStore()
  const advance = inner.advanceGeneration as NonNullable<LoginStore['advanceGeneration']>
  // The older version's advance: the generation and its first use, the
  // record's cookie (of the generation before) left as it was.
  const older: LoginStore = { ...inner, advanceGeneration: (loginId, userId, generation, usedAt) => advance(loginId, userId, generation, usedAt, (inner.get(loginId, userId) as LoginRecord).generationCookie ?? undefined) }
  const { app: current, time, reused } = await rotating(t, inner)
  const { app: previous } = await portal(t, older, { rotation: { every: EVERY, grace: GRACE } })
  const browser = new Browser(await login(current))
  time.advance(EVERY)
  await browser.get(current)
  time.advance(1)
  await browser.get(current)
  t.equal(browser.generation, '1.s', 'generation 1, recorded with its cookie')
  time.advance(EVERY)
  await browser.get(previous)
  time.advance(1)
  // Parallel requests with the unconfirmed cookie: the older instance records it.
  const [first, second] = [await browser.send(previous), await browser.send(current)]
  t.same([first.response.statusCode, second.response.statusCode], [200, 200], 'one browser\'s parallel requests')
  t.same(reused, [])
})

test('reuse seen by parallel requests of an asynchronous store is said once', async (t) => {
  // Parallel requests all read the record before one ends it.
  const { app, time, reused } = await rotating(t, slowReads())
  const owner = new Browser(await login(app))
  const thief = owner.copy()
  time.advance(EVERY)
  await owner.get(app)
  await owner.get(app)
  time.advance(GRACE + 1)
  const answers = await Promise.all([0, 1, 2].map(async () => (await thief.copy().get(app)).statusCode))
  t.same(answers, [401, 401, 401])
  t.equal(reused.length, 1, 'once: the request that ended the login')
})

test('with rotation off, nothing is re-issued and an older cookie is not reuse', async (t) => {
  const time = clock(t)
  const { app } = await portal(t, memoryStore(), { rotation: false })
  const browser = new Browser(await login(app))
  const copy = browser.copy()
  time.advance(EVERY * 10)
  t.equal((await browser.get(app)).statusCode, 200)
  t.equal(browser.generation, '0.s', 'no new generation')
  t.equal((await copy.get(app)).statusCode, 200, 'a copy is the same login, as without a store')
})

test('a store without the fast path (no subscribe): every request reads, and rotation works the same', async (t) => {
  const time = clock(t)
  const { subscribe, ...reading } = memoryStore()
  t.type(subscribe, 'function')
  const { app } = await portal(t, reading, { rotation: { every: EVERY, grace: GRACE } })
  const browser = new Browser(await login(app))
  time.advance(EVERY)
  await browser.get(app)
  const unconfirmed = browser.copy()
  t.equal(browser.generation, '1.su')
  t.equal((await browser.get(app)).statusCode, 200, 'its first use recorded')
  t.equal((await unconfirmed.get(app)).statusCode, 200, 'a parallel request with the same unconfirmed cookie: recorded already')
  t.equal(unconfirmed.generation, '1.s', 'and confirmed without a write')
})

test('a rotated cookie at a registration whose store cannot record it: accepted, nothing written', async (t) => {
  const time = clock(t)
  const store = memoryStore()
  const { app } = await portal(t, store, { rotation: { every: EVERY, grace: GRACE } })
  const browser = new Browser(await login(app))
  time.advance(EVERY)
  await browser.get(app)
  t.equal(browser.generation, '1.su')
  const { app: unable } = await portal(t, { ...store, advanceGeneration: undefined }, { rotation: false })
  t.equal((await browser.get(unable)).statusCode, 200)
})
