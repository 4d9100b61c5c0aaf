import { test } from 'tap'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyLogin from '../lib/index'
import type { Secret } from '../types/index'
import { OTHER_SECRET, SECRET, User, userStore } from './helpers'

// Several instances of one app behind a round-robin client, as behind a load
// balancer: real servers on loopback, real HTTP, a cookie jar per browser.
// They share the secret and the user database, nothing else.

const OLD = OTHER_SECRET
const NEW = SECRET

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

function send (port: number, method: string, path: string, cookie: string | undefined): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // One connection per request: a rolling restart never meets a reused socket.
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent: false, headers: cookie === undefined ? {} : { cookie } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode as number, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

// A browser's cookie jar: keeps what Set-Cookie says, drops what it expires.
class Browser {
  readonly jar = new Map<string, string>()
  resigned = 0
  constructor (readonly name: string, readonly userId: string) {}

  get cookie (): string | undefined {
    return this.jar.size === 0 ? undefined : [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ')
  }

  absorb (answer: Answer): number {
    const header = answer.headers['set-cookie'] ?? []
    for (const line of header) {
      const [pair, ...attributes] = line.split(';').map((part) => part.trim())
      const eq = pair.indexOf('=')
      const name = pair.slice(0, eq)
      if (attributes.some((attribute) => /^max-age=0$/i.test(attribute))) this.jar.delete(name)
      else this.jar.set(name, pair.slice(eq + 1))
    }
    return header.length
  }

  copy (): Browser {
    const twin = new Browser(`${this.name} (copy)`, this.userId)
    for (const [name, value] of this.jar) twin.jar.set(name, value)
    return twin
  }

  // The random login id inside the account cookie (lib/cookies/token.ts): the same login keeps it.
  get loginId (): string | undefined {
    return this.jar.get('account')?.split('.')[8]
  }
}

interface Instance {
  app: FastifyInstance
  port: number
  secrets: Secret[]
}

async function startInstance (secrets: Secret[], users: Map<string, User>): Promise<Instance> {
  const app = Fastify()
  await app.register(fastifyLogin, { secret: secrets, userLoader: (id) => users.get(id) ?? null })
  app.post<{ Params: { id: string } }>('/login/:id', (request, reply) => {
    app.loginManager.loginUser(request, reply, users.get(request.params.id) as User)
    return 'in'
  })
  app.post('/logout', (request, reply) => {
    app.loginManager.logoutUser(request, reply)
    return 'out'
  })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => ({ id: request.currentUser.getId(), fresh: request.isFresh }))
  app.get('/who', (request) => ({ id: request.currentUser.getId(), fresh: request.isFresh }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, port: (app.server.address() as AddressInfo).port, secrets }
}

class Cluster {
  readonly instances: Instance[] = []
  readonly log: string[] = []
  #next = 0
  constructor (readonly users: Map<string, User>) {}

  async start (count: number, secrets: Secret[]): Promise<void> {
    for (let i = 0; i < count; i++) this.instances.push(await startInstance(secrets, this.users))
  }

  // A rolling deploy of one instance: stop it, start its successor.
  async replace (index: number, secrets: Secret[]): Promise<void> {
    await this.instances[index].app.close()
    this.instances[index] = await startInstance(secrets, this.users)
  }

  async send (browser: Browser, method: string, path: string, index = this.#next++ % this.instances.length): Promise<Answer> {
    const answer = await send(this.instances[index].port, method, path, browser.cookie)
    browser.absorb(answer)
    return answer
  }

  // Every browser visits every instance once, in round-robin order. Returns
  // what went wrong: any visit that was not its own user, logged in and fresh.
  async round (browsers: Browser[]): Promise<string[]> {
    const wrong: string[] = []
    for (let visit = 0; visit < this.instances.length; visit++) {
      for (const browser of browsers) {
        const index = this.#next++ % this.instances.length
        const before = browser.jar.get('account')
        const answer = await this.send(browser, 'GET', '/me', index)
        if (browser.jar.get('account') !== before) browser.resigned++
        const expected = JSON.stringify({ id: browser.userId, fresh: true })
        if (answer.status !== 200 || answer.body !== expected) wrong.push(`${browser.name} on instance ${index} (${this.describe(index)}): ${answer.status} ${answer.body}`)
      }
    }
    return wrong
  }

  describe (index: number): string {
    return this.instances[index].secrets.map((secret) => secret === OLD ? 'old' : secret === NEW ? 'new' : '?').join(',')
  }

  async close (): Promise<void> {
    for (const instance of this.instances) await instance.app.close()
  }
}

// Logs a new browser in through the round robin.
async function arrive (cluster: Cluster, name: string, userId: string): Promise<Browser> {
  const browser = new Browser(name, userId)
  const answer = await cluster.send(browser, 'POST', `/login/${userId}`)
  if (answer.status !== 200) throw new Error(`login failed: ${answer.status} ${answer.body}`)
  return browser
}

// What an instance with only this secret list makes of a browser's cookies,
// asked over real HTTP like the others (same client, so session protection
// sees the same client).
async function verdict (secrets: Secret[], browser: Browser, users: Map<string, User>): Promise<string> {
  const probe = await startInstance(secrets, users)
  try {
    return (await send(probe.port, 'GET', '/who', browser.cookie)).body
  } finally {
    await probe.app.close()
  }
}

test('three instances sharing a secret: a cookie issued by one works on all', async (t) => {
  const users = userStore()
  const cluster = new Cluster(users)
  t.teardown(() => cluster.close())
  await cluster.start(3, [SECRET])
  const browsers = [await arrive(cluster, 'ann', '1'), await arrive(cluster, 'bob', '2'), await arrive(cluster, 'ann elsewhere', '1')]
  t.same(await cluster.round(browsers), [], 'every browser is its own user, fresh, on every instance')
  t.same(browsers.map((browser) => browser.resigned), [0, 0, 0], 'and nothing is re-issued on the way')

  // Logging out on one instance logs the browser out on all of them...
  const [ann] = browsers
  const stolen = ann.copy()
  const out = await cluster.send(ann, 'POST', '/logout', 1)
  t.equal(out.status, 200, 'ann logs out on instance 1')
  t.same([...ann.jar.keys()], [], 'the logout expired both cookies')
  for (let index = 0; index < 3; index++) t.equal((await cluster.send(ann, 'GET', '/me', index)).status, 401, `logged out on instance ${index}`)
  // ...but it is the browser that forgets: a copy taken before still works
  // until it expires (see SECURITY.md: revocation needs the alternative id).
  t.same(await cluster.round([stolen]), [], 'a copy of the cookies made before the logout still works everywhere')
  t.same(await cluster.round(browsers.slice(1)), [], 'the other browsers are untouched')
})

test('rolling secret rotation across three instances: nobody is logged out, cookies move to the new secret as they pass', async (t) => {
  const users = userStore()
  const cluster = new Cluster(users)
  t.teardown(() => cluster.close())
  await cluster.start(3, [OLD])
  const active = [await arrive(cluster, 'ann', '1'), await arrive(cluster, 'bob', '2')]
  // Logged in before the rotation, then silent until the end.
  const idle = await arrive(cluster, 'idle ann', '1')
  const loginIds = new Map(active.map((browser) => [browser, browser.loginId]))
  t.same(await cluster.round(active), [], 'before the rotation')

  const phases: Array<[string, Secret[]]> = [
    ['1. add the new secret second', [OLD, NEW]],
    ['2. promote it first', [NEW, OLD]],
    ['3. drop the old secret', [NEW]]
  ]
  let newcomers = 0
  let signedWithOld: Browser[] = []
  for (const [phase, secrets] of phases) {
    // Everyone logged in so far holds cookies signed with the old secret.
    if (phase.startsWith('2.')) signedWithOld = [...active]
    for (let index = 0; index < 3; index++) {
      await cluster.replace(index, secrets)
      const mix = [0, 1, 2].map((i) => cluster.describe(i)).join(' | ')
      // Someone logs in in the middle of the deploy, on whichever instance is next.
      const newcomer = await arrive(cluster, `newcomer ${++newcomers}`, newcomers % 2 === 0 ? '1' : '2')
      active.push(newcomer)
      loginIds.set(newcomer, newcomer.loginId)
      t.same(await cluster.round(active), [], `${phase}, instance ${index} replaced (${mix}): all ${active.length} browsers stay logged in and fresh`)
    }
    if (phase.startsWith('2.')) {
      // Every active browser has passed a guard of a [new, old] instance since
      // the last replacement: its cookies are now signed with the new secret.
      const onNewOnly = await Promise.all(active.map((browser) => verdict([NEW], browser, users)))
      t.same(onNewOnly, active.map((browser) => JSON.stringify({ id: browser.userId, fresh: true })), 'after the promotion, every active browser\'s cookies verify with the new secret alone')
      t.same(await verdict([OLD], active[0], users), JSON.stringify({ id: null, fresh: false }), 'and no longer with the old one')
      t.ok(signedWithOld.every((browser) => browser.resigned > 0), `the ${signedWithOld.length} browsers that logged in under the old secret were re-signed on the way`)
      t.same(active.map((browser) => browser.loginId), active.map((browser) => loginIds.get(browser)), 're-signed, not re-issued: every browser keeps its own login')
      t.equal(await verdict([NEW, OLD], idle.copy(), users), JSON.stringify({ id: '1', fresh: true }), 'an idle browser still gets in while the old secret is listed')
    }
  }

  const before = active.map((browser) => browser.resigned)
  t.same(await cluster.round(active), [], 'after the rotation')
  t.same(active.map((browser) => browser.resigned), before, 'cookies signed with the only secret are not re-issued')
  // Documented: a browser that passed no guard between the promotion and the
  // drop still holds old-signed cookies, which no instance accepts any more.
  const lateVisit = await cluster.send(idle, 'GET', '/me')
  t.equal(lateVisit.status, 401, 'a browser idle through the whole rotation is logged out once the old secret is gone')
})
