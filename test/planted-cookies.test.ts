import { test } from 'tap'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import fastifyLogin, { memoryStore } from '../lib/index'
import { plantedPlaces } from '../lib/cookies/planted'
import type { FastifyLoginOptions } from '../types/index'
import { cookieJar, SECRET, setCookieHeaders, User, userStore } from './helpers'

// A login cookie planted by a same-site page (another port of the host, a
// sibling subdomain) is sent beside the real one, and a login cookie sent
// twice is no login: the page would stay anonymous for as long as the copy
// lives. A guard's response expires the name where a copy can be, never at
// the real cookie's own place, and never ends the real login.

async function app (options: FastifyLoginOptions = {}): Promise<FastifyInstance> {
  const users = userStore()
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, store: memoryStore(), userLoader: (id) => users.get(id), ...options })
  app.get('/login', async (request, reply) => {
    await app.loginManager.loginUser(request, reply, users.get('1') as User)
    return 'in'
  })
  app.get('/docs/page', { onRequest: app.loginManager.loginRequired }, (request) => request.currentUser.getId())
  app.get('/guest-logout', { onRequest: app.loginManager.loginProhibited }, async (request, reply) => {
    await app.loginManager.logoutUser(request, reply)
    return 'bye'
  })
  app.get('/logout', async (request, reply) => {
    await app.loginManager.logoutUser(request, reply)
    return 'bye'
  })
  app.get('/:deep/*', { onRequest: app.loginManager.loginRequired }, () => 'deep')
  await app.ready()
  return app
}

interface Line { name: string, domain: string | null, path: string, expired: boolean }

function linesOf (response: LightMyRequestResponse): Line[] {
  return setCookieHeaders(response).map((line) => ({
    name: line.slice(0, line.indexOf('=')),
    domain: /; Domain=([^;]+)/.exec(line)?.[1] ?? null,
    path: /; Path=([^;]+)/.exec(line)?.[1] as string,
    expired: /; Max-Age=0;/.test(line) && /Expires=Thu, 01 Jan 1970/.test(line)
  }))
}

// A browser's cookie store: one cookie per name, domain and path, a cookie
// with a Domain attribute filed under a leading dot (as Chromium, Firefox
// and WebKit do), apart from a host-only one.
function browserJar (host: string): { set (name: string, value: string, domain: string | null, path: string): void, apply (response: LightMyRequestResponse): void, names (): string[], header (): string } {
  const cookies = new Map<string, { name: string, value: string, path: string }>()
  const key = (name: string, domain: string | null, path: string): string => `${name} ${domain === null ? host : `.${domain}`} ${path}`
  return {
    set: (name, value, domain, path) => { cookies.set(key(name, domain, path), { name, value, path }) },
    apply: (response) => {
      for (const line of linesOf(response)) if (line.expired) cookies.delete(key(line.name, line.domain, line.path))
    },
    names: () => [...cookies.keys()].sort(),
    // Longer paths first, as browsers send them.
    header: () => [...cookies.values()].sort((a, b) => b.path.length - a.path.length).map(({ name, value }) => `${name}=${value}`).join('; ')
  }
}

test('a guard that sees a planted copy expires it where it can be, never the real cookie, and the login lives on', async (t) => {
  const server = await app()
  t.teardown(() => server.close())
  const host = 'app.example.com'
  const real = cookieJar(await server.inject({ url: '/login', headers: { host } }))
  const jar = browserJar(host)
  jar.set('account', real.account, null, '/')
  jar.set('fresh', real.fresh, null, '/')
  // Tossed by a sibling subdomain, and by another port of the host.
  jar.set('account', 'junk-from-a-sibling', 'example.com', '/')
  jar.set('account', 'junk-from-another-port', null, '/docs')

  const refused = await server.inject({ url: '/docs/page?x=1', headers: { host, cookie: jar.header() } })
  t.equal(refused.statusCode, 401, 'a cookie sent twice is no login')
  t.equal(refused.headers['cache-control'], 'no-store')
  const lines = linesOf(refused)
  t.ok(lines.every((line) => line.name === 'account' && line.expired), 'only the name sent twice is expired')
  t.same(lines.map(({ domain, path }) => `${domain ?? '(host)'} ${path}`).sort(), [
    '(host) /docs', '(host) /docs/', '(host) /docs/page',
    'app.example.com /', 'app.example.com /docs', 'app.example.com /docs/', 'app.example.com /docs/page',
    'example.com /', 'example.com /docs', 'example.com /docs/', 'example.com /docs/page'
  ], 'the request\'s path and its parents, host-only and for the host and its parent domain, but the real cookie\'s own place')
  jar.apply(refused)
  t.same(jar.names(), ['account app.example.com /', 'fresh app.example.com /'], 'the planted copies are gone, the real cookies stay')
  const after = await server.inject({ url: '/docs/page', headers: { host, cookie: jar.header() } })
  t.equal(after.statusCode, 200, 'the next request carries the real login alone')
  t.equal(after.body, '1')
  t.equal((await server.loginManager.listLogins('1')).length, 1, 'the login was never ended')
  t.same(setCookieHeaders(after), [], 'and nothing more to expire')
})

test('the places spared and skipped: cookieDomain, __Host- names, addresses, unsafe paths, a second guard', async (t) => {
  const withDomain = await app({ cookieDomain: 'example.com' })
  t.teardown(() => withDomain.close())
  const real = cookieJar(await withDomain.inject({ url: '/login', headers: { host: 'app.example.com' } }))
  const spared = linesOf(await withDomain.inject({ url: '/docs/page', headers: { host: 'app.example.com', cookie: `account=junk; account=${real.account}` } }))
  t.ok(spared.some((line) => line.domain === null && line.path === '/'), 'with cookieDomain, a host-only copy at cookiePath is not the real one')
  t.notOk(spared.some((line) => line.domain === 'example.com' && line.path === '/'), 'the real one, Domain=example.com; Path=/, is spared')

  const hostPrefixed = await app({ cookieName: { account: '__Host-account', isFresh: '__Secure-fresh' }, cookieSecure: true })
  t.teardown(() => hostPrefixed.close())
  const prefixed = linesOf(await hostPrefixed.inject({ url: '/docs/page', headers: { host: 'app.example.com', cookie: '__Host-account=a; __Host-account=b; __Secure-fresh=c; __Secure-fresh=d' } }))
  t.ok(prefixed.length > 0 && prefixed.every((line) => line.name === '__Secure-fresh'), 'a __Host- cookie cannot be planted elsewhere: only the __Secure- one is expired')
  t.same(setCookieHeaders(await hostPrefixed.inject({ url: '/docs/page', headers: { host: 'app.example.com', cookie: '__Host-account=a; __Host-account=b' } })), [], 'a __Host- name alone sent twice: nothing to expire')
  t.ok(setCookieHeaders(await hostPrefixed.inject({ url: '/docs/page', headers: { host: 'app.example.com', cookie: '__Secure-fresh=c; __Secure-fresh=d' } })).every((line) => line.includes('; Secure;')), 'with Secure, which a __Secure- line needs')

  const server = await app()
  t.teardown(() => server.close())
  const planted = 'account=a; account=b'
  t.same(linesOf(await server.inject({ url: '/docs/page', headers: { host: '127.0.0.1:3000', cookie: planted } })).map((line) => `${line.domain ?? '(host)'} ${line.path}`),
    ['(host) /docs', '(host) /docs/', '(host) /docs/page'], 'an address has no parent domains')
  t.same(linesOf(await server.inject({ url: '/guest-logout', headers: { cookie: planted } })).map((line) => `${line.domain ?? '(host)'} ${line.path}`), ['(host) /guest-logout', '(host) /'],
    'a guard and a logout in one response: the copies expired once (localhost: host-only), then the real cookie')
  t.same(linesOf(await server.inject({ url: '/a;b/c', headers: { cookie: planted } })).map((line) => line.path), [], 'a path a Set-Cookie cannot carry is left out')
  const deep = linesOf(await server.inject({ url: `/a/${'c/'.repeat(50)}`, headers: { host: 'a.b.c.d.e.example.com', cookie: planted } }))
  t.equal(deep.length, 8 * 5 - 1, 'bounded however deep the path and the host: 8 paths, host-only and 4 domains, less the real place')
  t.same([...new Set(deep.map((line) => line.domain))], ['example.com', 'e.example.com', 'd.e.example.com', 'a.b.c.d.e.example.com', null])
})

test('an explicit logout with a planted copy ends every login its cookies name, and expires the copies too', async (t) => {
  const server = await app()
  t.teardown(() => server.close())
  const host = 'app.example.com'
  const real = cookieJar(await server.inject({ url: '/login', headers: { host } }))
  const response = await server.inject({ url: '/logout', headers: { host, cookie: `account=junk; account=${real.account}` } })
  t.equal(response.statusCode, 200)
  t.same(await server.loginManager.listLogins('1'), [], 'the user asked to log out: the login they hold is ended')
  const lines = linesOf(response)
  t.ok(lines.some((line) => line.domain === null && line.path === '/'), 'the real cookie is expired, as in any logout')
  t.ok(lines.some((line) => line.domain === 'example.com' && line.path === '/'), 'and so are the places of a planted copy')
})

test('plantedPlaces: the parents of the path and of the host, never the real place', async (t) => {
  t.same(plantedPlaces('/', 'localhost', '/', undefined), [], 'nothing but the real place')
  t.same(plantedPlaces('/x', 'Example.COM', '/', undefined), [
    { domain: 'example.com', path: '/' },
    { domain: null, path: '/x' },
    { domain: 'example.com', path: '/x' }
  ], 'an apex site: a sibling\'s copy for the apex is not the real, host-only, cookie')
  t.same(plantedPlaces('/app/x', 'shop.example.com', '/app', '.Example.com').filter((place) => place.path === '/app'), [
    { domain: null, path: '/app' },
    { domain: 'shop.example.com', path: '/app' }
  ], 'a cookieDomain with a leading dot is the same domain')
  t.same(plantedPlaces('*', 'localhost', '/', undefined), [], 'no path, no other place')
})
