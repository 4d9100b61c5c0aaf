import { test } from 'tap'
import formbody from '@fastify/formbody'
import type { FastifyInstance, InjectOptions } from 'fastify'
import type { FastifyLoginOptions } from '../types/index'
import { prefersJson } from '../lib/guards/accept'
import { safeNextPath } from '../lib/guards/next'
import { build, loginCookies } from './helpers'

const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
const JSON_ACCEPT = 'application/json'

// A printable, one-line name for a test value: TAP output must not carry
// control characters or line separators.
function show (value: unknown): string {
  const text = typeof value === 'string' && value.length > 60 ? `${value.slice(0, 20)}...(${value.length} characters)` : value
  return (JSON.stringify(text) ?? String(text)).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

// An app whose /next route answers what `nextUrl` makes of the request, and
// what it was given, to be sure the value arrived exactly as meant.
async function nextApp (options: FastifyLoginOptions = {}): Promise<FastifyInstance> {
  const { app } = await build(options)
  await app.register(formbody)
  const handler = (request: Parameters<FastifyInstance['loginManager']['nextUrl']>[0]): Record<string, unknown> => ({
    next: app.loginManager.nextUrl(request, '/home'),
    query: request.query,
    body: request.body ?? null
  })
  app.get('/next', handler)
  app.post('/next', handler)
  app.get('/next-default', (request) => app.loginManager.nextUrl(request))
  return app
}

async function viaQuery (app: FastifyInstance, value: unknown, field = 'next'): Promise<{ next: string, received: unknown }> {
  const response = await app.inject({ url: '/next', query: { [field]: value as string } })
  const body = response.json()
  return { next: body.next, received: body.query[field] }
}

async function viaForm (app: FastifyInstance, value: string): Promise<{ next: string, received: unknown }> {
  const response = await app.inject({
    method: 'POST',
    url: '/next',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ next: value }).toString()
  })
  const body = response.json()
  return { next: body.next, received: body.body.next }
}

async function viaJson (app: FastifyInstance, value: unknown): Promise<{ next: string, received: unknown }> {
  const response = await app.inject({ method: 'POST', url: '/next', payload: { next: value } })
  const body = response.json()
  return { next: body.next, received: body.body.next }
}

// Every case here must come back as the fallback.
const REFUSED: Array<[string, string]> = [
  // Other hosts.
  ['http://evil.com', '/home'],
  ['https://evil.com/x', '/home'],
  ['HTTPS://evil.com', '/home'],
  // Scheme-relative, and backslashes that browsers read as slashes.
  ['//evil.com', '/home'],
  ['///evil.com', '/home'],
  ['/\\evil.com', '/home'],
  ['\\\\evil.com', '/home'],
  ['\\/evil.com', '/home'],
  ['/\\/evil.com', '/home'],
  // Schemes.
  ['javascript:alert(1)', '/home'],
  ['JaVaScRiPt:alert(1)', '/home'],
  ['data:text/html,<script>', '/home'],
  ['http:evil.com', '/home'],
  ['https:evil.com', '/home'],
  ['http:/evil.com', '/home'],
  // Characters browsers strip or skip.
  ['\t//evil.com', '/home'],
  [' //evil.com', '/home'],
  ['/\t/evil.com', '/home'],
  ['/\n/evil.com', '/home'],
  ['/\r\n/evil.com', '/home'],
  ['\x00//evil.com', '/home'],
  ['/\x7f/evil.com', '/home'],
  ['/%09/evil.com', '/home'],
  ['/%0d%0a/evil.com', '/home'],
  ['/%00', '/home'],
  ['\u3000//evil.com', '/home'],
  ['\ufeff//evil.com', '/home'],
  ['/\u00a0/evil.com', '/home'],
  ['/\u2028/evil.com', '/home'],
  ['/ /evil.com', '/home'],
  // Encoded forms, once or more.
  ['%2F%2Fevil.com', '/home'],
  ['/%2F/evil.com', '/home'],
  ['/%2Fevil.com', '/home'],
  ['/%2f%2fevil.com', '/home'],
  ['/%5Cevil.com', '/home'],
  ['/%5cevil.com', '/home'],
  ['/%255C%255Cevil.com', '/home'],
  ['%252F%252Fevil.com', '/home'],
  ['/%252F%252Fevil.com', '/home'],
  ['/%25252F%25252Fevil.com', '/home'],
  // Malformed percent encodings.
  ['/%E0%A4%A', '/home'],
  ['/%', '/home'],
  ['/%zz', '/home'],
  ['/%u002F', '/home'],
  // Empty, over-long.
  ['', '/home'],
  ['/' + 'a'.repeat(2048), '/home']
]

// Every case here must come back unchanged.
const ACCEPTED: Array<[string, string]> = [
  ['/', '/'],
  ['/profile', '/profile'],
  ['/profile?tab=1&x=2', '/profile?tab=1&x=2'],
  ['/a/b#frag', '/a/b#frag'],
  ['/search?q=hello%20world', '/search?q=hello%20world'],
  ['/caf%C3%A9', '/caf%C3%A9'],
  ['/a:b', '/a:b'],
  ['/javascript:alert(1)', '/javascript:alert(1)'],
  ['/path/with/./dots/../x', '/path/with/./dots/../x'],
  ['/a?b=//evil.com', '/a?b=//evil.com'],
  ['/a#//evil.com', '/a#//evil.com'],
  ['/a%2520b', '/a%2520b'],
  ['/' + 'a'.repeat(2047), '/' + 'a'.repeat(2047)]
]

const CASES = [...REFUSED, ...ACCEPTED]

test('nextUrl through the query string: hostile values give the fallback, local paths come back unchanged', async (t) => {
  const app = await nextApp()
  for (const [input, expected] of CASES) {
    const { next, received } = await viaQuery(app, input)
    t.equal(received, input, `the route received ${show(input)} as sent`)
    t.equal(next, expected, `${show(input)} -> ${show(expected)}`)
  }
})

// A subset through the bodies: the same decision whatever carried the value.
const BODY_CASES: Array<[string, string]> = [
  ['https://evil.com/x', '/home'],
  ['//evil.com', '/home'],
  ['/\\evil.com', '/home'],
  ['javascript:alert(1)', '/home'],
  ['\t//evil.com', '/home'],
  ['/\r\n/evil.com', '/home'],
  ['/%2Fevil.com', '/home'],
  ['/%255C%255Cevil.com', '/home'],
  ['/%E0%A4%A', '/home'],
  ['\ufeff//evil.com', '/home'],
  ['', '/home'],
  ['/profile?tab=1&x=2', '/profile?tab=1&x=2'],
  ['/caf%C3%A9', '/caf%C3%A9'],
  ['/javascript:alert(1)', '/javascript:alert(1)'],
  ['/a/b#frag', '/a/b#frag']
]

test('nextUrl through a form body and a JSON body', async (t) => {
  const app = await nextApp()
  for (const [input, expected] of BODY_CASES) {
    const form = await viaForm(app, input)
    t.equal(form.received, input, `form received ${show(input)}`)
    t.equal(form.next, expected, `form: ${show(input)} -> ${show(expected)}`)
    const json = await viaJson(app, input)
    t.equal(json.received, input, `JSON received ${show(input)}`)
    t.equal(json.next, expected, `JSON: ${show(input)} -> ${show(expected)}`)
  }
})

test('nextUrl refuses values that are not strings', async (t) => {
  const app = await nextApp()
  const repeated = await app.inject({ url: '/next', query: { next: ['/a', '/b'] } })
  t.same(repeated.json().query.next, ['/a', '/b'], 'a repeated query field is an array')
  t.equal(repeated.json().next, '/home')
  t.equal((await app.inject('/next?next=/a&next=/b')).json().next, '/home')
  const repeatedForm = await app.inject({
    method: 'POST',
    url: '/next',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'next=%2Fa&next=%2Fb'
  })
  t.equal(repeatedForm.json().next, '/home', 'a repeated form field is an array')
  for (const value of [42, 0, true, null, ['/a'], { path: '/a' }, { toString: '/a' }]) {
    const { next, received } = await viaJson(app, value)
    t.same(received, value)
    t.equal(next, '/home', `JSON ${show(value)} -> /home`)
  }
})

test('nextUrl: where the value is looked for, and the fallback', async (t) => {
  const app = await nextApp()
  t.equal((await app.inject('/next')).json().next, '/home', 'no next at all')
  t.equal((await app.inject('/next-default')).body, '/', 'the fallback defaults to /')
  t.equal((await app.inject({ url: '/next-default', query: { next: '//evil.com' } })).body, '/')
  t.equal((await app.inject({ url: '/next-default', query: { next: '/profile' } })).body, '/profile')
  t.equal((await app.inject({ url: '/next', query: { other: '/profile' } })).json().next, '/home', 'another field is not read')

  const fromBody = await app.inject({ method: 'POST', url: '/next', query: { other: '1' }, payload: { next: '/profile' } })
  t.equal(fromBody.json().next, '/profile', 'the body is read when the query has no next')
  const queryWins = await app.inject({ method: 'POST', url: '/next', query: { next: '/from-query' }, payload: { next: '/from-body' } })
  t.equal(queryWins.json().next, '/from-query', 'the query wins over the body')
  const noFallThrough = await app.inject({ method: 'POST', url: '/next', query: { next: '//evil.com' }, payload: { next: '/from-body' } })
  t.equal(noFallThrough.json().next, '/home', 'a refused query value does not fall through to the body')
  const emptyBody = await app.inject({ method: 'POST', url: '/next', payload: {} })
  t.equal(emptyBody.json().next, '/home', 'a body without next')
  const textBody = await app.inject({ method: 'POST', url: '/next', headers: { 'content-type': 'text/plain' }, payload: '/profile' })
  t.equal(textBody.json().next, '/home', 'a body that is a string is not searched')
  const arrayBody = await app.inject({ method: 'POST', url: '/next', payload: ['/profile'] })
  t.equal(arrayBody.json().next, '/home', 'a body that is an array')
})

test('nextUrl reads the configured nextField; with nextField: false it reads next', async (t) => {
  const renamed = await nextApp({ nextField: 'return_to' })
  t.equal((await viaQuery(renamed, '/profile', 'return_to')).next, '/profile')
  t.equal((await viaQuery(renamed, '//evil.com', 'return_to')).next, '/home')
  t.equal((await viaQuery(renamed, '/profile', 'next')).next, '/home', 'next is not read any more')
  const form = await renamed.inject({
    method: 'POST',
    url: '/next',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'return_to=%2Fprofile'
  })
  t.equal(form.json().next, '/profile')

  const off = await nextApp({ nextField: false })
  t.equal((await viaQuery(off, '/profile')).next, '/profile')
  t.equal((await viaQuery(off, 'https://evil.com/x')).next, '/home')
  t.equal((await viaJson(off, '/profile')).next, '/profile')

  // Own fields only: nothing is picked up from Object.prototype.
  const inherited = await nextApp({ nextField: 'constructor' })
  t.equal((await inherited.inject('/next')).json().next, '/home')
  t.equal((await inherited.inject({ method: 'POST', url: '/next', payload: { other: 1 } })).json().next, '/home')
  t.equal((await viaQuery(inherited, '/profile', 'constructor')).next, '/profile')
})

test('safeNextPath, called directly: every branch', async (t) => {
  for (const [input, expected] of CASES) {
    t.equal(safeNextPath(input), expected === '/home' ? null : expected, show(input))
  }
  // Not strings.
  for (const value of [undefined, null, 0, 42, true, ['/a'], { toString: () => '/a' }, Object('/a'), Symbol('next')]) {
    t.equal(safeNextPath(value), null, `${typeof value} is refused`)
  }
  // The length limit is 2048, inclusive.
  t.equal(safeNextPath('/' + 'x'.repeat(2047)), '/' + 'x'.repeat(2047), '2048 characters pass')
  t.equal(safeNextPath('/' + 'x'.repeat(2048)), null, '2049 characters do not')
  t.equal(safeNextPath('/%41'.repeat(600)), null, 'the limit counts the raw, encoded length')
  // Up to four decodings that change the value are checked; a fifth one is refused outright.
  t.equal(safeNextPath('/%25252541'), '/%25252541', 'four decodings: /%252541, /%2541, /%41, /A')
  t.equal(safeNextPath('/%2525252541'), null, 'five decodings: too clever')
  // Each branch of the decoding loop.
  t.equal(safeNextPath('/plain'), '/plain', 'nothing to decode')
  t.equal(safeNextPath('/%41'), '/%41', 'one harmless decoding')
  t.equal(safeNextPath('/%'), null, 'a raw % that starts no escape')
  t.equal(safeNextPath('/%u002F'), null, 'a non-standard %u escape')
  t.equal(safeNextPath('/%255'), '/%255', 'a bare % after decoding is only a character')
  t.equal(safeNextPath('/%5C'), null, 'a backslash appears on decoding')
  t.equal(safeNextPath('/%0A'), null, 'a newline appears on decoding')
  t.equal(safeNextPath('/%7F'), null, 'DEL appears on decoding')
  t.equal(safeNextPath('/%20/evil.com'), '/%20/evil.com', 'a decoded space is fine inside a path')
  t.equal(safeNextPath('/%2F'), null, 'a double slash appears on decoding')
  t.equal(safeNextPath('/%252F'), null, 'a double slash appears on the second decoding')
  t.equal(safeNextPath('%2Fa'), null, 'the raw value must start with a slash, even if its decoding does')
  // Raw characters.
  t.equal(safeNextPath('/café'), '/caf%C3%A9', 'raw non-ASCII letters are part of a path, sent encoded')
  t.equal(safeNextPath('/日本?q=é#à'), '/%E6%97%A5%E6%9C%AC?q=%C3%A9#%C3%A0', 'a Location header stays ASCII')
  t.equal(safeNextPath('/a\ud800'), null, 'a lone surrogate cannot be encoded')
  // Dot segments the browser resolves to a scheme-relative path.
  for (const dotted of ['/.//evil.com', '/x/..//evil.com', '/%2E%2E//evil.com', '/a/%2e%2e/%2e%2e//evil.com']) {
    t.equal(safeNextPath(dotted), null, `${dotted} resolves to //evil.com`)
  }
  for (const raw of ['/a b', '/a\u00a0b', '/a\u1680b', '/a\u180eb', '/a\u2000b', '/a\u200bb', '/a\u2029b', '/a\u205fb', '/a\u3000b', '/a\ufeffb', '/a\u0085b']) {
    t.equal(safeNextPath(raw), null, `raw ${show(raw)} is refused`)
  }
  // A question mark or hash does not make the rest safe: every decoding is checked.
  t.equal(safeNextPath('/a?b=%5C'), null, 'a backslash in the decoded query')
  t.equal(safeNextPath('/a?b=%2F%2Fevil.com'), '/a?b=%2F%2Fevil.com', 'a double slash inside the query is no host')

  t.equal(safeNextPath('/search?q=100%25'), '/search?q=100%25', 'a literal % in a local URL')
  t.equal(safeNextPath('/wiki/%25'), '/wiki/%25')
})

test('redirects carry next: the URL asked for, encoded, in the route query', async (t) => {
  const cases: Array<[string, string]> = [
    ['/login', '/login?next=%2Fme%3Ftab%3D2'],
    ['/login?lang=fr', '/login?lang=fr&next=%2Fme%3Ftab%3D2'],
    ['/login?', '/login?next=%2Fme%3Ftab%3D2'],
    ['/login?lang=fr&', '/login?lang=fr&next=%2Fme%3Ftab%3D2'],
    ['/login#top', '/login?next=%2Fme%3Ftab%3D2#top'],
    ['/login?lang=fr#top', '/login?lang=fr&next=%2Fme%3Ftab%3D2#top'],
    ['/login?#top', '/login?next=%2Fme%3Ftab%3D2#top'],
    ['https://auth.example.com/login', 'https://auth.example.com/login?next=%2Fme%3Ftab%3D2']
  ]
  for (const [route, location] of cases) {
    const { app } = await build({ loginRequiredRoute: route })
    const response = await app.inject('/me?tab=2')
    t.equal(response.statusCode, 307, route)
    t.equal(response.headers.location, location, `${route} -> ${location}`)
  }
})

test('redirects: nextField renames the field, false leaves it off, loginProhibited never carries it', async (t) => {
  const renamed = await build({ loginRequiredRoute: '/login', nextField: 'return_to' })
  t.equal((await renamed.app.inject('/me?tab=2')).headers.location, '/login?return_to=%2Fme%3Ftab%3D2')
  const spaced = await build({ loginRequiredRoute: '/login', nextField: 'back to' })
  t.equal((await spaced.app.inject('/me')).headers.location, '/login?back%20to=%2Fme', 'the field name is encoded too')

  const off = await build({ loginRequiredRoute: '/login?lang=fr#top', refreshRoute: '/reauth', nextField: false })
  off.app.get('/settings', { onRequest: off.app.loginManager.freshLoginRequired }, () => 'settings')
  const anonymous = await off.app.inject('/me?tab=2')
  t.equal(anonymous.statusCode, 307)
  t.equal(anonymous.headers.location, '/login?lang=fr#top', 'the route as configured')
  const { account } = await loginCookies(off.app)
  const stale = await off.app.inject({ url: '/settings?tab=2', cookies: { account } })
  t.equal(stale.statusCode, 307)
  t.equal(stale.headers.location, '/reauth')

  const { app } = await build({ loginProhibitedRoute: '/home', refreshRoute: '/reauth' })
  app.get('/settings', { onRequest: app.loginManager.freshLoginRequired }, () => 'settings')
  const cookies = await loginCookies(app)
  const prohibited = await app.inject({ url: '/guest?tab=2', cookies })
  t.equal(prohibited.statusCode, 307)
  t.equal(prohibited.headers.location, '/home', 'loginProhibited: no next')
  const refresh = await app.inject({ url: '/settings?tab=2', cookies: { account: cookies.account } })
  t.equal(refresh.statusCode, 307)
  t.equal(refresh.headers.location, '/reauth?next=%2Fsettings%3Ftab%3D2', 'freshLoginRequired carries next')
})

test('round trip: the next of the redirect, fed back to nextUrl, is the URL first asked for', async (t) => {
  for (const [options, asked] of [
    [{ loginRequiredRoute: '/login' }, '/me?tab=2'],
    [{ loginRequiredRoute: '/login?lang=fr#top' }, '/me?tab=2&x=%2F%2F'],
    [{ loginRequiredRoute: '/login', nextField: 'return_to' }, '/me?tab=2'],
    [{ loginRequiredRoute: '/login' }, '/me/?q=caf%C3%A9']
  ] as Array<[FastifyLoginOptions, string]>) {
    const { app } = await build(options)
    app.get('/me/', { onRequest: app.loginManager.loginRequired }, () => 'me/')
    app.get('/login', (request) => app.loginManager.nextUrl(request, '/home'))
    const redirected = await app.inject(asked)
    t.equal(redirected.statusCode, 307)
    // As a browser would: resolve the Location, drop its fragment, follow it.
    const location = new URL(redirected.headers.location as string, 'http://localhost')
    const back = await app.inject(location.pathname + location.search)
    t.equal(back.body, asked, `${asked} comes back`)
  }
})

test('round trip: a guarded catch-all asked for as //evil.com does not come back as an open redirect', async (t) => {
  const { app } = await build({ loginRequiredRoute: '/login' })
  app.get('/login', (request) => app.loginManager.nextUrl(request, '/home'))
  app.get('/*', { onRequest: app.loginManager.loginRequired }, () => 'anything')
  const redirected = await app.inject('//evil.com/%2F..')
  t.equal(redirected.statusCode, 307)
  t.equal(redirected.headers.location, '/login?next=%2F%2Fevil.com%2F%252F..', 'the URL is carried, encoded')
  const back = await app.inject(redirected.headers.location as string)
  t.equal(back.body, '/home', 'but nextUrl refuses it')
})

test('prefersJson: RFC 9110 qualities, the most specific range wins, a tie keeps HTML', async (t) => {
  const cases: Array<[string | undefined, boolean]> = [
    ['application/json', true],
    ['application/json, text/html;q=0.9', true],
    ['text/html, application/json', false],
    ['application/*', true],
    ['application/json;q=0', false],
    ['*/*;q=0.1, application/json', true],
    ['text/*;q=0.5, application/json;q=0.6', true],
    ['text/*;q=0.6, application/json;q=0.5', false],
    [';;;', false],
    ['application/json;q=abc', false],
    ['application/json;q', false],
    ['application/json;q=5', true],
    ['application/json;q=-1', false],
    ['', false],
    [undefined, false],
    ['*/*', false],
    [BROWSER_ACCEPT, false],
    ['text/plain', false],
    ['application', false],
    ['APPLICATION/JSON', true],
    [' application/json ; Q=0.5 , text/html ; q=0.4', true],
    ['application/json;charset=utf-8;q=0.9, text/html;q=0.8', true],
    ['*/*, application/json;q=0.5', false],
    ['application/json;q=0.5, */*;q=0.9', false],
    ['text/html;q=0.1, application/*;q=0.5, application/json;q=0.05', false],
    ['application/json;q=0.2, application/json', true],
    ['application/json, application/json;q=0.2', true],
    ['text/html;q=0, */*', true],
    ['text/html;q=0, application/json;q=0.1', true]
  ]
  for (const [accept, expected] of cases) {
    t.equal(prefersJson(accept), expected, `${show(accept)} -> ${expected}`)
  }
})

// Each refusal with a redirect route configured; the app also guards
// /settings with freshLoginRequired.
async function guardedApp (options: FastifyLoginOptions = {}): Promise<{ app: FastifyInstance, cookies: Record<string, string> }> {
  const { app } = await build(options)
  app.get('/settings', { onRequest: app.loginManager.freshLoginRequired }, () => 'settings')
  const cookies = await loginCookies(app)
  return { app, cookies }
}

function refusals (cookies: Record<string, string>): Array<[string, InjectOptions]> {
  return [
    ['loginRequired', { url: '/me?tab=2' }],
    ['loginProhibited', { url: '/guest', cookies }],
    ['freshLoginRequired', { url: '/settings', cookies: { account: cookies.account } }]
  ]
}

test('guards answer JSON to clients that prefer it, even when a redirect route is configured', async (t) => {
  const { app, cookies } = await guardedApp({ loginRequiredRoute: '/login', loginProhibitedRoute: '/home', refreshRoute: '/reauth' })
  const expected: Record<string, unknown> = {
    loginRequired: { statusCode: 401, error: 'Unauthorized', message: 'Please log in to access this page.' },
    loginProhibited: { statusCode: 403, error: 'Forbidden', message: 'Please log out to access this page.' },
    freshLoginRequired: { statusCode: 401, error: 'Unauthorized', message: 'Please reauthenticate to access this page.' }
  }
  for (const accept of [JSON_ACCEPT, 'application/json, text/html;q=0.9', 'application/*']) {
    for (const [guard, request] of refusals(cookies)) {
      const response = await app.inject({ ...request, headers: { accept } })
      const body = expected[guard] as { statusCode: number }
      t.equal(response.statusCode, body.statusCode, `${guard}, ${accept}`)
      t.match(response.headers['content-type'], /^application\/json/)
      t.notOk(response.headers.location, 'no redirect')
      t.same(response.json(), body)
    }
  }
})

test('browsers, curl and clients without Accept still get the redirect', async (t) => {
  const { app, cookies } = await guardedApp({ loginRequiredRoute: '/login', loginProhibitedRoute: '/home', refreshRoute: '/reauth' })
  const locations: Record<string, string> = {
    loginRequired: '/login?next=%2Fme%3Ftab%3D2',
    loginProhibited: '/home',
    freshLoginRequired: '/reauth?next=%2Fsettings'
  }
  for (const headers of [{ accept: BROWSER_ACCEPT }, { accept: '*/*' }, { accept: 'text/html, application/json' }, {}]) {
    for (const [guard, request] of refusals(cookies)) {
      const response = await app.inject({ ...request, headers })
      t.equal(response.statusCode, 307, `${guard}, ${JSON.stringify(headers)}`)
      t.equal(response.headers.location, locations[guard])
    }
  }
})

test('without redirect routes: JSON for API clients, the text message for the others', async (t) => {
  const { app, cookies } = await guardedApp()
  const messages: Record<string, [number, string]> = {
    loginRequired: [401, 'Please log in to access this page.'],
    loginProhibited: [403, 'Please log out to access this page.'],
    freshLoginRequired: [401, 'Please reauthenticate to access this page.']
  }
  for (const [guard, request] of refusals(cookies)) {
    const [status, message] = messages[guard]
    const json = await app.inject({ ...request, headers: { accept: JSON_ACCEPT } })
    t.equal(json.statusCode, status)
    t.same(json.json(), { statusCode: status, error: status === 401 ? 'Unauthorized' : 'Forbidden', message })
    for (const headers of [{ accept: '*/*' }, { accept: BROWSER_ACCEPT }, {}]) {
      const text = await app.inject({ ...request, headers })
      t.equal(text.statusCode, status, `${guard}, ${JSON.stringify(headers)}`)
      t.match(text.headers['content-type'], /^text\/plain/)
      t.equal(text.body, message)
    }
  }
})

test('message functions are called for the JSON answer too', async (t) => {
  const { app, cookies } = await guardedApp({
    loginRequiredRoute: '/login',
    loginRequiredMessage: (request) => `log in to see ${request.url}`,
    loginProhibitedMessage: (request) => `${request.currentUser.getId()} is logged in`,
    needsRefreshMessage: () => 'type your password again'
  })
  const headers = { accept: JSON_ACCEPT }
  t.same((await app.inject({ url: '/me?tab=2', headers })).json(), { statusCode: 401, error: 'Unauthorized', message: 'log in to see /me?tab=2' })
  t.same((await app.inject({ url: '/guest', cookies, headers })).json(), { statusCode: 403, error: 'Forbidden', message: '1 is logged in' })
  t.same((await app.inject({ url: '/settings', cookies: { account: cookies.account }, headers })).json(), { statusCode: 401, error: 'Unauthorized', message: 'type your password again' })
})

test('an app handler still wins over the JSON answer; one that does nothing falls back to it', async (t) => {
  const { app } = await build({ loginRequiredRoute: '/login' })
  app.loginManager.unauthorizedHandler((_request, reply) => reply.code(401).send({ custom: true }))
  const headers = { accept: JSON_ACCEPT }
  t.same((await app.inject({ url: '/me', headers })).json(), { custom: true })
  app.loginManager.unauthorizedHandler(() => undefined)
  const fallback = await app.inject({ url: '/me', headers })
  t.equal(fallback.statusCode, 401)
  t.same(fallback.json(), { statusCode: 401, error: 'Unauthorized', message: 'Please log in to access this page.' })
})

test('redirecting to nextUrl() works for non-ASCII paths: the Location header is encoded', async (t) => {
  const { app } = await build()
  app.get('/back', (request, reply) => reply.redirect(app.loginManager.nextUrl(request), 303))
  const response = await app.inject({ url: '/back', query: { next: '/日本?q=é' } })
  t.equal(response.statusCode, 303)
  t.equal(response.headers.location, '/%E6%97%A5%E6%9C%AC?q=%C3%A9')
})
