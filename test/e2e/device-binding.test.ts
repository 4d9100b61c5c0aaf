import t from 'tap'
import type { Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import { chromium, type BrowserContext, type Cookie, type Page } from 'playwright-core'
import { CHROMIUM, FLAGS, launchChromium } from './chromium'
import fastifyLogin, { memoryStore } from '../../lib/index'
import { SECRET, User, userStore } from '../helpers'

// Device binding (DBSC) in a real browser: Debian's Chromium 156, headless,
// with its software keys (no TPM needed), against an https server whose
// self-signed certificate the browser trusts by its key
// (--ignore-certificate-errors-spki-list; --ignore-certificate-errors would
// load the pages but turn DBSC off). DevTools (Network.enableDeviceBoundSessions)
// reports each step; the tests wait on those reports, never on a guess of
// how long a step takes. Run with `npm run test:e2e`.

// The signing quota (6 per 9 minutes) is lifted: the bound cookie lives a
// few seconds here, so that the test sees several refreshes.
const DBSC = '--enable-features=DeviceBoundSessions:RefreshQuota/false,EnableBoundSessionCredentialsSoftwareKeysForManualTesting'
const CREDENTIAL_DURATION = 4

t.setTimeout(240000)

interface Seen {
  at: number
  method: string
  url: string
  status: number
  proof: boolean
}

const dir = mkdtempSync(join(tmpdir(), 'dbsc-e2e-'))
let app: FastifyInstance
let origin: string
let spki: string
let certificate: Buffer
const seen: Seen[] = []
const bound: string[] = []
const missing: string[] = []

// A self-signed certificate for localhost, made by the openssl CLI, and the
// hash of its public key that Chromium is told to trust.
function makeCertificate (): { key: Buffer, cert: Buffer } {
  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' })
  return { key: readFileSync(key), cert: readFileSync(cert) }
}

t.before(async () => {
  const tls = makeCertificate()
  certificate = tls.cert
  spki = createHash('sha256').update(new X509Certificate(tls.cert).publicKey.export({ type: 'spki', format: 'der' })).digest('base64')
  const users = userStore()
  app = Fastify({ https: tls })
  await app.register(fastifyLogin, {
    secret: SECRET,
    store: memoryStore(),
    userLoader: (id) => users.get(id),
    deviceBinding: { credentialDuration: CREDENTIAL_DURATION },
    rotation: { every: 2, grace: 2 }
  })
  app.addHook('onResponse', async (request, reply) => {
    seen.push({ at: Date.now(), method: request.method, url: request.url, status: reply.statusCode, proof: request.headers['secure-session-response'] !== undefined })
  })
  app.loginManager.on('loginBound', (_request, record) => { bound.push(record.loginId) })
  app.loginManager.on('boundProofMissing', (request) => { missing.push(request.url) })
  app.get<{ Params: { id: string } }>('/login/:id', async (request, reply) => {
    await app.loginManager.loginUser(request, reply, users.get(request.params.id) as User)
    return reply.type('text/html').send('<!doctype html><title>logged in</title><p>logged in</p>')
  })
  // The same login, offering RS256 before ES256 (Chrome takes the first).
  app.get<{ Params: { id: string } }>('/login-rs256/:id', {
    onSend: async (_request, reply) => {
      reply.header('secure-session-registration', String(reply.getHeader('secure-session-registration')).replace('(ES256 RS256)', '(RS256 ES256)'))
    }
  }, async (request, reply) => {
    await app.loginManager.loginUser(request, reply, users.get(request.params.id) as User)
    return reply.type('text/html').send('<!doctype html><title>logged in</title><p>logged in</p>')
  })
  app.get('/me', { config: { login: 'required' } }, (request) => ({ name: (request.currentUser as User).name, ...app.loginManager.loginInfo(request) }))
  app.get('/logout', async (request, reply) => {
    await app.loginManager.logoutUser(request, reply)
    return 'bye'
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  origin = `https://localhost:${(app.server.address() as { port: number }).port}`
})

t.teardown(async () => {
  await app.close()
  rmSync(dir, { recursive: true, force: true })
})

interface DbscEvent {
  at: number
  kind: 'creation' | 'refresh' | 'termination' | 'challenge'
  succeeded: boolean
  details: Record<string, unknown>
}

interface Watched {
  context: BrowserContext
  page: Page
  events: DbscEvent[]
  // The first event (already seen since `since`, or still to come) that matches.
  waitFor (match: (event: DbscEvent) => boolean, since: number, timeout?: number): Promise<DbscEvent>
  close (): Promise<void>
}

// A browser of its own (a fresh profile: sessions and quota are per
// profile), its DBSC events reported by DevTools from before the first page.
async function launch (t: Test, { dbsc = true } = {}): Promise<Watched> {
  const profile = mkdtempSync(join(dir, 'profile-'))
  const args = [...FLAGS, `--ignore-certificate-errors-spki-list=${spki}`, ...(dbsc ? [DBSC] : [])]
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args })
  context.setDefaultTimeout(15000)
  const page = context.pages()[0] ?? await context.newPage()
  const events: DbscEvent[] = []
  const waiters = new Set<{ match: (event: DbscEvent) => boolean, resolve: (event: DbscEvent) => void }>()
  const cdp = await context.newCDPSession(page)
  cdp.on('Network.deviceBoundSessionEventOccurred', (event: Record<string, unknown>) => {
    const kinds = ['creation', 'refresh', 'termination', 'challenge'] as const
    const kind = kinds.find((name) => event[`${name}EventDetails`] !== undefined) as DbscEvent['kind']
    const seenEvent = { at: Date.now(), kind, succeeded: event.succeeded as boolean, details: event[`${kind}EventDetails`] as Record<string, unknown> }
    events.push(seenEvent)
    for (const waiter of waiters) {
      if (waiter.match(seenEvent)) {
        waiters.delete(waiter)
        waiter.resolve(seenEvent)
      }
    }
  })
  await cdp.send('Network.enable')
  await cdp.send('Network.enableDeviceBoundSessions' as 'Network.enable', { enable: true } as never)
  const watched: Watched = {
    context,
    page,
    events,
    async waitFor (match, since, timeout = 10000) {
      const past = events.find((event) => event.at >= since && match(event))
      if (past !== undefined) return past
      return await new Promise((resolve, reject) => {
        const waiter = { match: (event: DbscEvent) => event.at >= since && match(event), resolve }
        waiters.add(waiter)
        setTimeout(() => {
          if (waiters.delete(waiter)) reject(new Error(`no such DevTools DBSC event in ${timeout} ms; seen: ${JSON.stringify(events)}`))
        }, timeout)
      })
    },
    async close () {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    }
  }
  t.teardown(() => watched.close().catch(() => {}))
  return watched
}

async function me (page: Page): Promise<{ status: number, body: Record<string, unknown> }> {
  const response = await page.goto(`${origin}/me`)
  if (response === null) throw new Error('no response')
  const text = await response.text()
  return { status: response.status(), body: text.startsWith('{') ? JSON.parse(text) : { text } }
}

// Waits until the server has seen no refresh for a while: an early refresh
// the last page started (the bound cookie lives under two minutes, so every
// page starts one) has finished, and the cookie jar holds its cookie.
async function settled (): Promise<void> {
  const quiet = 800
  for (;;) {
    const last = seen.filter((request) => request.url.includes('/device-binding/')).at(-1)?.at ?? 0
    const left = last + quiet - Date.now()
    if (left <= 0) return
    await new Promise((resolve) => setTimeout(resolve, left))
  }
}

async function boundCookie (context: BrowserContext): Promise<Cookie | undefined> {
  return (await context.cookies(origin)).find((cookie) => cookie.name === 'bound')
}

// The browser drops the bound cookie at its Max-Age: wait for that, making
// no request meanwhile (one would refresh it early).
async function boundCookieExpired (context: BrowserContext): Promise<void> {
  await settled()
  const cookie = await boundCookie(context)
  if (cookie === undefined) return
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, cookie.expires * 1000 - Date.now()) + 300))
}

// An https request from a client that is no browser, with the given cookies.
async function plainGet (path: string, cookies: Cookie[]): Promise<number> {
  return await new Promise((resolve, reject) => {
    const url = new URL(path, origin)
    httpsRequest({ host: '127.0.0.1', port: url.port, path: url.pathname, servername: 'localhost', ca: certificate, headers: { cookie: cookies.map((cookie) => `${cookie.name}=${cookie.value}`).join('; ') } }, (response) => {
      response.resume()
      response.on('end', () => resolve(response.statusCode as number))
    }).on('error', reject).end()
  })
}

t.test('Chrome binds a login to its key, refreshes its bound cookie, and copies of its cookies are refused', async (t) => {
  const victim = await launch(t)
  const start = Date.now()
  const login = await victim.page.goto(`${origin}/login/1`)
  t.match(await login?.headerValue('secure-session-registration'), /^\(ES256 RS256\);path="\/device-binding\/register";challenge="[^"]+"$/, 'the offer: ES256, then RS256, never none')
  const created = await victim.waitFor((event) => event.kind === 'creation', start)
  t.ok(created.succeeded, 'the browser registered a key')
  t.equal(created.details.fetchResult, 'Success')
  const registrations = seen.filter((request) => request.url === '/device-binding/register')
  t.same(registrations.map((request) => [request.status, request.proof]), [[200, true]], 'one registration, with a proof, accepted')
  t.equal(bound.length, 1, 'loginBound')
  t.same((await app.loginManager.listLogins('1')).map((record) => record.bound), [true], 'listLogins: bound')

  let page = await me(victim.page)
  t.equal(page.status, 200)
  t.equal(page.body.bound, true, 'loginInfo().bound')

  // The bound cookie lives CREDENTIAL_DURATION seconds: once the browser has
  // dropped it, the next page waits for a refresh (403 with a challenge, then
  // the signed challenge), and goes on with a new bound cookie.
  for (let round = 1; round <= 3; round++) {
    await boundCookieExpired(victim.context)
    t.equal(await boundCookie(victim.context), undefined, `round ${round}: the bound cookie is gone`)
    const before = Date.now()
    page = await me(victim.page)
    t.equal(page.status, 200, `round ${round}: still logged in`)
    t.equal(page.body.bound, true)
    const refreshed = await victim.waitFor((event) => event.kind === 'refresh' && event.details.wasFullyProactiveRefresh === false, before)
    t.equal(refreshed.details.refreshResult, 'Refreshed', `round ${round}: the page waited for a refresh`)
    const refreshes = seen.filter((request) => request.at >= before && request.url === '/device-binding/refresh')
    t.same(refreshes.slice(0, 2).map((request) => [request.status, request.proof]), [[403, false], [200, true]], `round ${round}: asked for a proof, then given one`)
  }
  t.same(missing, [], 'the browser never sent its login without its proof')
  t.ok((await app.loginManager.listLogins('1'))[0].generation > 0, 'the account cookie was rotated meanwhile: the bound cookie outlives rotations')

  // Its cookies, taken from the jar (HttpOnly ones too), in a browser
  // without its key: refused once the bound cookie they came with is gone,
  // and that browser has nothing to refresh it with.
  await settled()
  const stolen = await victim.context.cookies(origin)
  t.ok(stolen.some((cookie) => cookie.name === 'account') && stolen.some((cookie) => cookie.name === 'bound'), 'the account and bound cookies')
  const thieves = await launchChromium([`--ignore-certificate-errors-spki-list=${spki}`, DBSC])
  t.teardown(() => thieves.close())
  const thief = await thieves.newContext()
  await thief.addCookies(stolen)
  await boundCookieExpired(thief)
  const before = Date.now()
  const copied = await (await thief.newPage()).goto(`${origin}/me`)
  t.equal(copied?.status(), 401, 'the copy in another browser is anonymous')
  t.equal(missing.length, 1, 'boundProofMissing')

  // The account cookie alone, from a client that is no browser.
  t.equal(await plainGet('/me', stolen.filter((cookie) => cookie.name !== 'bound')), 401, 'a plain https client with the account cookie is refused')
  t.equal(missing.length, 2)
  t.notOk(seen.some((request) => request.at >= before && request.url.startsWith('/device-binding/')), 'neither asked for a refresh')

  // The real browser is still logged in: the copies ended nothing.
  page = await me(victim.page)
  t.equal(page.status, 200, 'the real browser goes on')
  t.equal(page.body.bound, true)
  t.same((await app.loginManager.listLogins('1')).length, 1)

  // Logging out expires the bound cookie too: the next page's refresh finds
  // no login, and the browser ends its session.
  const out = Date.now()
  await victim.page.goto(`${origin}/logout`)
  t.equal((await me(victim.page)).status, 401, 'logged out')
  const ended = await victim.waitFor((event) => event.kind === 'termination', out)
  t.ok(ended.details.deletionReason !== undefined, `the session ended (${String(ended.details.deletionReason)})`)
})

t.test('RS256: an offer that lists it first gets an RSA key, and the plugin verifies its proofs', async (t) => {
  // Chrome takes the first algorithm of the offer it can, and the plugin
  // lists ES256 first: this app's /login-rs256/ turns the list around.
  const browser = await launch(t)
  const start = Date.now()
  const login = await browser.page.goto(`${origin}/login-rs256/2`)
  t.match(await login?.headerValue('secure-session-registration'), /^\(RS256 ES256\);path="\/device-binding\/register";challenge="[^"]+"$/)
  const created = await browser.waitFor((event) => event.kind === 'creation', start)
  t.ok(created.succeeded)
  const key = JSON.parse((await app.loginManager.listLogins('2')).find((record) => record.bound)?.deviceKey ?? '{}')
  t.equal(key.kty, 'RSA', 'the record keeps an RSA key')
  await boundCookieExpired(browser.context)
  const before = Date.now()
  const page = await me(browser.page)
  t.equal(page.status, 200)
  t.equal(page.body.bound, true)
  const refreshed = await browser.waitFor((event) => event.kind === 'refresh' && event.details.wasFullyProactiveRefresh === false, before)
  t.equal(refreshed.details.refreshResult, 'Refreshed', 'refreshed with an RS256 proof')
})

t.test('a browser without device binding logs in unbound, and works as before', async (t) => {
  const browser = await launch(t, { dbsc: false })
  const before = Date.now()
  await browser.page.goto(`${origin}/login/2`)
  // Nothing to wait for but the registration that does not come: give the
  // page's own requests time to finish, then look.
  await browser.page.waitForLoadState('networkidle')
  const page = await me(browser.page)
  t.equal(page.status, 200)
  t.equal(page.body.bound, false)
  t.same(browser.events, [], 'no DBSC event')
  t.notOk(seen.some((request) => request.at >= before && request.url.startsWith('/device-binding/')), 'no registration')
  const record = (await app.loginManager.listLogins('2')).find((login) => login.loginId === page.body.loginId)
  t.equal(record?.bound, false, 'its login is not bound')
})
