import { test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import fastifyLogin from '../lib/index'
import { SECRET, User } from './helpers'

// Concurrency and faults: many requests at once, users mixed with anonymous
// visitors, and a user loader that is fast, slow, failing, flaky or hung
// (cut off by a timeout) depending on the id. Each response must belong to
// its own request, a failure must stay with its request, and nothing may be
// left behind: no timer, no listener, no pending promise.

const REQUESTS = 2000
// The loader's timeout is a real timer, long enough never to fire by itself
// (a loaded machine must not turn a slow answer into a timeout): the test
// makes the clock jump instead, once every request that can finish has.
const TIMEOUT_MS = 60_000

type Kind = 'sync' | 'slow' | 'fail' | 'reject' | 'hang' | 'flaky' | 'gone'
const KINDS: Kind[] = ['sync', 'slow', 'fail', 'reject', 'hang', 'flaky', 'gone']

// A small deterministic generator: the seed is printed, a failure can be replayed with SEED=<n>.
function mulberry32 (seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

interface Loads {
  started: number
  settled: number
  // The timeouts still running, to fire when the test says the time is up.
  timeouts: Set<() => void>
}

function newLoads (): Loads {
  return { started: 0, settled: 0, timeouts: new Set() }
}

// Waits for the requests that can finish, then lets every running loader
// timeout fire, until the rest have answered too.
async function settle<T> (answers: Array<Promise<T>>, canFinish: boolean[], loads: Loads): Promise<T[]> {
  await Promise.all(answers.filter((_, i) => canFinish[i]))
  const progress = { done: false }
  const all = Promise.all(answers).finally(() => { progress.done = true })
  while (!progress.done) {
    for (const fire of loads.timeouts) fire()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return await all
}

// A database call that can be cancelled: its timer goes when it is aborted.
function query (kind: Kind, id: string, users: Map<string, User>, delay: number, signal: AbortSignal): Promise<User | null> {
  return new Promise((resolve, reject) => {
    // A hung call answers never: only the timeout ends it.
    const timer = kind === 'hang'
      ? undefined
      : setTimeout(() => {
        signal.removeEventListener('abort', onAbort)
        if (kind === 'reject') reject(new Error(`database error for ${id}`))
        else resolve(users.get(id) ?? null)
      }, delay)
    function onAbort (): void {
      clearTimeout(timer)
      reject(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

function nonceOf (request: FastifyRequest): number {
  return Number((request.query as { nonce?: string }).nonce)
}

async function faultyApp (users: Map<string, User>, loads: Loads, random: () => number): Promise<FastifyInstance> {
  // Fastify logs every 500 at error level; the test reads the answers instead.
  const app = Fastify({ logger: false })
  await app.register(fastifyLogin, {
    secret: SECRET,
    userLoader: (id, request) => {
      const kind = id.split('-')[0] as Kind
      if (kind === 'sync') return users.get(id) ?? null
      if (kind === 'fail') throw new Error(`loader failed for ${id}`)
      // Flaky: fails for odd nonces. The request decides, so each outcome is known.
      if (kind === 'flaky') {
        if (nonceOf(request) % 2 === 1) throw new Error(`flaky loader failed for ${id}`)
        return users.get(id) ?? null
      }
      loads.started++
      const controller = new AbortController()
      const timeUp = (): void => controller.abort(new Error(`loader timed out for ${id}`))
      const timer = setTimeout(timeUp, TIMEOUT_MS)
      loads.timeouts.add(timeUp)
      return query(kind, id, users, 1 + Math.floor(random() * 15), controller.signal).finally(() => {
        clearTimeout(timer)
        loads.timeouts.delete(timeUp)
        loads.settled++
      })
    }
  })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => ({ id: request.currentUser.getId(), nonce: nonceOf(request) }))
  app.get('/who', async (request) => {
    const user = await request.loadUser()
    return { id: user.getId(), nonce: nonceOf(request) }
  })
  app.post<{ Params: { id: string } }>('/login/:id', (request, reply) => {
    app.loginManager.loginUser(request, reply, users.get(request.params.id) as User)
    return { id: request.params.id, nonce: nonceOf(request) }
  })
  app.post('/logout', { onRequest: app.loginManager.loginRequired }, (request, reply) => {
    const was = request.currentUser.getId()
    app.loginManager.logoutUser(request, reply)
    return { id: was, nonce: nonceOf(request) }
  })
  return app
}

// What a request should get, from the kind of its user.
function expected (route: string, kind: Kind | null, id: string | null, nonce: number): { status: number, body?: unknown, error?: string } {
  const fails = kind === 'fail' || kind === 'reject' || kind === 'hang' || (kind === 'flaky' && nonce % 2 === 1)
  const known = kind !== null && kind !== 'gone' && !fails
  if (route === 'login') return { status: 200, body: { id, nonce } }
  if (kind !== null && fails) {
    const message = kind === 'fail' ? 'loader failed' : kind === 'reject' ? 'database error' : kind === 'hang' ? 'loader timed out' : 'flaky loader failed'
    return { status: 500, error: `${message} for ${id}` }
  }
  if (route === 'who') return { status: 200, body: { id: known ? id : null, nonce } }
  // /me and /logout are guarded.
  return known ? { status: 200, body: { id, nonce } } : { status: 401 }
}

// Timers and sockets: what a request could leave behind. (Writes of the test
// runner's own output come and go and are not counted.)
const LEAKABLE = /^(Timeout|Immediate|TCP|Process|FSReq|GetAddrInfo)/

function resourceCounts (): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const resource of process.getActiveResourcesInfo()) {
    if (LEAKABLE.test(resource)) counts[resource] = (counts[resource] ?? 0) + 1
  }
  return counts
}

test(`${REQUESTS} concurrent requests with a slow, failing and hanging loader: each answer is its own, nothing leaks`, async (t) => {
  const seed = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed} (replay with SEED=${seed})`)
  const random = mulberry32(seed)
  const users = new Map<string, User>()
  for (const kind of KINDS) {
    if (kind === 'gone') continue
    for (let i = 0; i < 6; i++) users.set(`${kind}-${i}`, new User(`${kind}-${i}`, `${kind} ${i}`))
  }
  const loads = newLoads()
  const app = await faultyApp(users, loads, random)
  await app.ready()

  // Every user's cookies, made by the plugin itself.
  const cookies = new Map<string, Record<string, string>>()
  for (const kind of KINDS) {
    for (let i = 0; i < 6; i++) cookies.set(`${kind}-${i}`, await app.loginManager.cookiesFor(new User(`${kind}-${i}`, '')))
  }

  let loaded = 0
  const countLoad = (): void => { loaded++ }
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  const listenersBefore = { manager: app.loginManager.eventNames().map((name) => [name, app.loginManager.listenerCount(name)]), process: process.listenerCount('unhandledRejection') }
  const resourcesBefore = resourceCounts()
  app.loginManager.on('userLoadedFromCookie', countLoad)
  process.on('unhandledRejection', onUnhandled)

  const routes = ['me', 'who', 'login', 'logout'] as const
  const plan = Array.from({ length: REQUESTS }, (_, nonce) => {
    const route = routes[Math.floor(random() * routes.length)]
    // One request in five is an anonymous visitor.
    const anonymous = random() < 0.2
    const kind = anonymous ? null : KINDS[Math.floor(random() * KINDS.length)]
    const id = kind === null ? null : `${kind}-${Math.floor(random() * 6)}`
    const loginAs = route === 'login' ? `sync-${Math.floor(random() * 6)}` : null
    return { nonce, route, kind, id, loginAs }
  })
  const answers = await settle(plan.map(({ nonce, route, id, loginAs }) => app.inject({
    method: route === 'login' || route === 'logout' ? 'POST' : 'GET',
    url: route === 'login' ? `/login/${loginAs}` : `/${route}`,
    query: { nonce: String(nonce) },
    cookies: id === null ? {} : cookies.get(id)
  })), plan.map(({ route, kind }) => route === 'login' || kind !== 'hang'), loads)

  const wrong: string[] = []
  const tally: Record<string, number> = {}
  let successfulLoads = 0
  answers.forEach((answer, i) => {
    const { nonce, route, kind, id, loginAs } = plan[i]
    const want = expected(route, kind, route === 'login' ? loginAs : id, nonce)
    const key = `${route} ${kind ?? 'anonymous'} ${answer.statusCode}`
    tally[key] = (tally[key] ?? 0) + 1
    if (answer.statusCode !== want.status) {
      wrong.push(`#${nonce} ${route} as ${id}: ${answer.statusCode} ${answer.body}, expected ${want.status}`)
    } else if (want.body !== undefined && answer.body !== JSON.stringify(want.body)) {
      wrong.push(`#${nonce} ${route} as ${id}: ${answer.body}, expected ${JSON.stringify(want.body)}`)
    } else if (want.error !== undefined && answer.json().message !== want.error) {
      wrong.push(`#${nonce} ${route} as ${id}: the error ${answer.json().message}, expected ${want.error}`)
    }
    // Cookies change only with a login, or a logout of someone logged in.
    const setsCookies = answer.headers['set-cookie'] !== undefined
    if (setsCookies !== (route === 'login' || (route === 'logout' && want.status === 200))) wrong.push(`#${nonce} ${route}: Set-Cookie ${setsCookies}`)
    if (kind !== null && kind !== 'gone' && route !== 'login' && want.status !== 500) successfulLoads++
  })
  t.same(wrong, [], `all ${REQUESTS} answers are their own request's (seed ${seed})`)
  t.comment(JSON.stringify(tally))
  t.ok(KINDS.every((kind) => Object.keys(tally).some((key) => key.includes(` ${kind} `))), 'every kind of user was in the mix')
  t.equal(loaded, successfulLoads, 'the loader announced exactly the users it found')

  // The process keeps serving, right away, for every kind.
  const after = await settle(KINDS.map((kind, i) => app.inject({ url: '/me', query: { nonce: String(REQUESTS + i * 2) }, cookies: cookies.get(`${kind}-0`) })), KINDS.map((kind) => kind !== 'hang'), loads)
  for (const [i, kind] of KINDS.entries()) {
    t.equal(after[i].statusCode, expected('me', kind, `${kind}-0`, REQUESTS + i * 2).status, `after the storm, ${kind} still gets its answer`)
  }

  // Nothing left behind. Immediates queued by the last answers run within a
  // few turns of the event loop; anything still there after that is a leak.
  for (let turn = 0; turn < 20 && JSON.stringify(resourceCounts()) !== JSON.stringify(resourcesBefore); turn++) {
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(loads.settled, loads.started, `every one of the ${loads.started} asynchronous loads settled`)
  t.equal(loads.timeouts.size, 0, 'no loader timeout still running')
  t.same(unhandled, [], 'no unhandled rejection')
  app.loginManager.off('userLoadedFromCookie', countLoad)
  process.off('unhandledRejection', onUnhandled)
  t.same({ manager: app.loginManager.eventNames().map((name) => [name, app.loginManager.listenerCount(name)]), process: process.listenerCount('unhandledRejection') }, listenersBefore, 'no listener added to the manager or the process')
  t.same(resourceCounts(), resourcesBefore, 'no timer or handle left behind')
  await app.close()
})

test('a request whose loader times out fails alone; the same user on other requests is unaffected', async (t) => {
  const users = new Map([['hang-0', new User('hang-0', 'h')], ['slow-0', new User('slow-0', 's')]])
  const loads = newLoads()
  const app = await faultyApp(users, loads, () => 0.5)
  const hung = await app.loginManager.cookiesFor(users.get('hang-0') as User)
  const slow = await app.loginManager.cookiesFor(users.get('slow-0') as User)
  // Interleaved: a hung load in flight does not hold back the others.
  const nonces = [0, 1, 2, 3, 4, 5]
  const answers = await settle(nonces.map((nonce) => app.inject({ url: '/me', query: { nonce: String(nonce) }, cookies: nonce % 2 === 0 ? hung : slow })), nonces.map((nonce) => nonce % 2 === 1), loads)
  t.same(answers.map((answer) => answer.statusCode), [500, 200, 500, 200, 500, 200], 'the hung ones fail, the others pass')
  t.same(answers.filter((_, i) => i % 2 === 1).map((answer) => answer.json()), [{ id: 'slow-0', nonce: 1 }, { id: 'slow-0', nonce: 3 }, { id: 'slow-0', nonce: 5 }], 'each with its own answer')
  t.ok(answers.filter((_, i) => i % 2 === 0).every((answer) => answer.json().message === 'loader timed out for hang-0'), 'the failures say why')
  t.equal(loads.settled, loads.started, 'every load settled')
  t.equal(loads.timeouts.size, 0, 'no timeout still running')
  await app.close()
})
