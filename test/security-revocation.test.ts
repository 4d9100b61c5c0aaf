import { test } from 'tap'
import fc from 'fast-check'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import fastifyLogin, { UserMixin } from '../lib/index'
import type { FastifyLoginOptions } from '../types/index'
import { OTHER_SECRET, SECRET } from './helpers'

// Revocation without a server-side session store: the alternative-id pattern
// of the README. getId() is the user id plus a session version kept in the
// user record; the loader refuses an id whose version is not current. A
// password change bumps the version, so every cookie issued before it loads
// no one, on every instance, whatever path the cookie takes.

class Account extends UserMixin {
  constructor (public userId: string, public name: string, public sessionVersion = 1) { super() }
  override getId (): string {
    return `${this.userId}:${this.sessionVersion}`
  }
}

type Database = Map<string, Account>

function database (): Database {
  return new Map([['1', new Account('1', 'ann')], ['2', new Account('2', 'bob')]])
}

// One instance of the app: the only state it shares with the others is the
// user table. `options` varies the cookie paths (rotation, sliding expiry).
async function instance (db: Database, options: FastifyLoginOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(fastifyLogin, {
    secret: SECRET,
    userLoader: (id) => {
      const [userId, version] = id.split(':')
      const account = db.get(userId)
      return account !== undefined && String(account.sessionVersion) === version ? account : null
    },
    ...options
  })
  app.post<{ Params: { id: string }, Querystring: { remember?: string } }>('/login/:id', (request, reply) => {
    app.loginManager.loginUser(request, reply, db.get(request.params.id) as Account, { remember: request.query.remember !== '0' })
    return 'in'
  })
  // A password change: only from a fresh login. Bumps the version, then logs this device in again.
  app.post('/password', { onRequest: app.loginManager.freshLoginRequired }, (request, reply) => {
    const account = request.currentUser as Account
    account.sessionVersion += 1
    app.loginManager.loginUser(request, reply, account)
    return 'changed'
  })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => ({ name: (request.currentUser as Account).name, fresh: request.isFresh }))
  return app
}

type Jar = Record<string, string>

function absorb (jar: Jar, response: LightMyRequestResponse): Jar {
  for (const cookie of response.cookies as Array<{ name: string, value: string, maxAge?: number }>) {
    if (cookie.maxAge === 0) delete jar[cookie.name]
    else jar[cookie.name] = cookie.value
  }
  return jar
}

test('a password change invalidates every earlier cookie of that user, on every instance and every cookie path', async (t) => {
  const db = database()
  const before = JSON.stringify([...db.keys()])
  const plain = await instance(db)
  const rotating = await instance(db, { secret: [SECRET, OTHER_SECRET] })
  const sliding = await instance(db, { cookieRefreshEachRequest: true })
  const retired = await instance(db, { secret: OTHER_SECRET })
  const instances = { plain, rotating, sliding }

  // Ann's devices, logged in every way there is.
  const devices: Record<string, Jar> = {
    laptop: absorb({}, await plain.inject({ method: 'POST', url: '/login/1' })),
    phone: absorb({}, await sliding.inject({ method: 'POST', url: '/login/1' })),
    'session-only tablet': absorb({}, await plain.inject({ method: 'POST', url: '/login/1?remember=0' })),
    'browser restarted (not fresh)': (({ account }) => ({ account }))(absorb({}, await rotating.inject({ method: 'POST', url: '/login/1' }))),
    'signed with the retired secret': absorb({}, await retired.inject({ method: 'POST', url: '/login/1' }))
  }
  const bob = absorb({}, await rotating.inject({ method: 'POST', url: '/login/2' }))
  for (const [name, jar] of Object.entries(devices)) {
    const response = await rotating.inject({ url: '/me', cookies: jar })
    t.equal(response.statusCode, 200, `${name}: logged in before the change`)
  }
  const stolen = { ...devices.laptop }

  const change = await sliding.inject({ method: 'POST', url: '/password', cookies: devices.laptop })
  t.equal(change.statusCode, 200, 'the laptop changes the password (on another instance than it logged in on)')
  absorb(devices.laptop, change)
  t.equal(db.get('1')?.sessionVersion, 2)

  for (const [label, app] of Object.entries(instances)) {
    t.same((await app.inject({ url: '/me', cookies: devices.laptop })).json(), { name: 'ann', fresh: true }, `${label}: the device that changed it stays logged in, fresh`)
    for (const [name, jar] of Object.entries({ ...devices, 'a copy of the laptop\'s old cookies': stolen })) {
      if (jar === devices.laptop) continue
      const response = await app.inject({ url: '/me', cookies: jar })
      t.equal(response.statusCode, 401, `${label}: ${name} is refused`)
      t.equal(response.headers['set-cookie'], undefined, `${label}: ${name} is neither re-signed nor slid`)
    }
    t.same((await app.inject({ url: '/me', cookies: bob })).json(), { name: 'bob', fresh: true }, `${label}: other users are untouched`)
  }
  t.equal((await plain.inject({ method: 'POST', url: '/password', cookies: stolen })).statusCode, 401, 'an old cookie cannot change the password back')

  // A second change invalidates the cookies issued by the first one.
  const firstChange = { ...devices.laptop }
  const phone = absorb({}, await plain.inject({ method: 'POST', url: '/login/1' }))
  absorb(phone, await plain.inject({ method: 'POST', url: '/password', cookies: phone }))
  t.equal((await rotating.inject({ url: '/me', cookies: firstChange })).statusCode, 401, 'cookies from the first change are refused after the second')
  t.equal((await rotating.inject({ url: '/me', cookies: phone })).statusCode, 200)

  t.equal(JSON.stringify([...db.keys()]), before, 'nothing was stored per login: the user table has the same rows')
  t.same(Object.keys(db.get('1') as Account).sort(), ['name', 'sessionVersion', 'userId'], 'and only the session version moved')
})

// A model of devices, instances and password changes. A device's cookies work
// exactly while the version they were issued under is its user's current one.
type Operation =
  | { kind: 'login', device: number, user: '1' | '2', on: number }
  | { kind: 'visit', device: number, on: number }
  | { kind: 'change', device: number, on: number }
  | { kind: 'forget', device: number }

const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({ kind: fc.constant('login' as const), device: fc.nat(3), user: fc.constantFrom('1' as const, '2' as const), on: fc.nat(2) }),
  fc.record({ kind: fc.constant('visit' as const), device: fc.nat(3), on: fc.nat(2) }),
  fc.record({ kind: fc.constant('visit' as const), device: fc.nat(3), on: fc.nat(2) }),
  fc.record({ kind: fc.constant('change' as const), device: fc.nat(3), on: fc.nat(2) }),
  fc.record({ kind: fc.constant('forget' as const), device: fc.nat(3) })
)

test('model: any sequence of logins, visits and password changes on three instances', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 25 }), async (operations) => {
    const db = database()
    const apps = [await instance(db), await instance(db, { cookieRefreshEachRequest: true }), await instance(db, { secret: [SECRET, OTHER_SECRET] })]
    const jars: Jar[] = [{}, {}, {}, {}]
    // What the model says each device holds: its user and the version its cookies carry.
    const held: Array<{ user: '1' | '2', version: number } | null> = [null, null, null, null]
    const current = (user: '1' | '2'): number => (db.get(user) as Account).sessionVersion
    const valid = (device: number): boolean => held[device] !== null && held[device].version === current(held[device].user)

    for (const [step, op] of operations.entries()) {
      const where = `step ${step} ${JSON.stringify(op)}`
      if (op.kind === 'forget') {
        jars[op.device] = {}
        held[op.device] = null
      } else if (op.kind === 'login') {
        absorb(jars[op.device], await apps[op.on].inject({ method: 'POST', url: `/login/${op.user}` }))
        held[op.device] = { user: op.user, version: current(op.user) }
      } else if (op.kind === 'visit') {
        const response = await apps[op.on].inject({ url: '/me', cookies: jars[op.device] })
        absorb(jars[op.device], response)
        if (response.statusCode !== (valid(op.device) ? 200 : 401)) throw new Error(`${where}: ${response.statusCode}, the model says ${valid(op.device) ? 'in' : 'out'}`)
        if (valid(op.device) && response.json().name !== (held[op.device]?.user === '1' ? 'ann' : 'bob')) throw new Error(`${where}: wrong user ${response.body}`)
      } else {
        const wasValid = valid(op.device)
        const response = await apps[op.on].inject({ method: 'POST', url: '/password', cookies: jars[op.device] })
        absorb(jars[op.device], response)
        if (response.statusCode !== (wasValid ? 200 : 401)) throw new Error(`${where}: ${response.statusCode}, the model says ${wasValid ? 'allowed' : 'refused'}`)
        if (wasValid) {
          const user = (held[op.device] as { user: '1' | '2' }).user
          held[op.device] = { user, version: current(user) }
        }
      }
    }
  }), { numRuns: 60 })
  t.pass('60 sequences of up to 25 operations')
})
