import tap, { test } from 'tap'
import type { Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { get as httpsGet } from 'node:https'
import { DbscBrowser, offerOf } from './dbsc-client'
import { rawCommand, startRedis } from './redis-server'
import type { LoginRecord, LoginStore as PackageStore } from '../types/index'
import { SoftwareAuthenticator, type Tampering } from './software-authenticator'
import { oidcProvider, signInAtProvider, CLIENT_ID, CLIENT_SECRET } from './oidc-provider'

// The example app (example/), through inject, against a temporary SQLite file.
// It is plain CommonJS JavaScript that loads the built package (dist/), as
// `npm run example` runs it; these are the shapes the tests rely on.

interface StudentRow { id: number, name: string, grade: number, passwordHash: string, sessionVersion: number }
interface ExampleDb {
  studentById (id: number): StudentRow | null
  studentByName (name: string): StudentRow | null
  createStudent (student: { name: string, grade: number, passwordHash: string }): StudentRow | null
  close (): void
}
type Portal = FastifyInstance & { db: ExampleDb }
interface Limits { name: number, passwordMin: number, passwordMax: number }

const { buildApp, LIMITS } = require('../example/app.js') as {
  buildApp (options: { databasePath: string, secret: string, logger?: boolean }): Promise<Portal>
  LIMITS: Limits
}
const { hashPassword, verifyPassword } = require('../example/passwords.js') as {
  hashPassword (password: string): Promise<string>
  verifyPassword (password: string, stored: string): Promise<boolean>
}
const { openDatabase } = require('../example/db.js') as { openDatabase (file: string): ExampleDb }
const { settings, DEMO_STUDENT } = require('../example/server.js') as {
  settings (env: Record<string, string | undefined>): { databasePath: string, secret?: string, host: string, port: number, publicUrl: string | null, redisUrl: string | null, selfServedHttps: boolean, oidc: { name: string } | null }
  DEMO_STUDENT: { name: string, grade: number, password: string }
}

interface RawDatabase {
  prepare (sql: string): { get (...params: unknown[]): unknown, all (...params: unknown[]): unknown[] }
  close (): void
}
const Database = require('better-sqlite3') as new (file: string, options?: { readonly?: boolean }) => RawDatabase

// Real scrypt and real child processes: about 30 s with coverage on two
// cores, more than tap's default for a file.
tap.setTimeout(120000)

const SECRET = 'example-test-secret-that-is-long-enough-42'
const PASSWORD = 'correct horse battery'
const exampleDir = resolve(__dirname, '..', 'example')

interface Fixture {
  app: Portal
  dir: string
  file: string
  // Reads the database through a connection of its own, as a third party would.
  rows (): Array<Record<string, unknown>>
  count (): number
}

async function portal (t: Test, options: object = {}, prefix = 'portal-test-'): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  const file = join(dir, 'portal.sqlite')
  const app = await buildApp({ databasePath: file, secret: SECRET, ...options } as never)
  const raw = new Database(file, { readonly: true })
  t.teardown(async () => {
    raw.close()
    await app.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return {
    app,
    dir,
    file,
    rows: () => raw.prepare('SELECT * FROM students ORDER BY id').all() as Array<Record<string, unknown>>,
    count: () => (raw.prepare('SELECT count(*) AS n FROM students').get() as { n: number }).n
  }
}

interface StoredCookie { value: string, persistent: boolean }

// A browser, as far as the portal can tell: a cookie jar (session and
// persistent cookies), the CSRF token of the last page, and a user agent.
class Browser {
  jar = new Map<string, StoredCookie>()
  csrf = ''

  constructor (readonly app: Portal, readonly userAgent = 'lightMyRequest', readonly ip = '127.0.0.1') {}

  get cookies (): Record<string, string> {
    return Object.fromEntries([...this.jar].map(([name, cookie]) => [name, cookie.value]))
  }

  async get (url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    return this.send('GET', url, undefined, headers)
  }

  // Posts a form, with the CSRF token of the last page unless told otherwise.
  async post (url: string, fields: Record<string, string | string[]> = {}, { csrf = true, headers = {} }: { csrf?: boolean, headers?: Record<string, string> } = {}): Promise<LightMyRequestResponse> {
    const form = new URLSearchParams()
    if (csrf) form.append('_csrf', this.csrf)
    for (const [name, value] of Object.entries(fields)) {
      for (const one of Array.isArray(value) ? value : [value]) form.append(name, one)
    }
    return this.send('POST', url, form.toString(), { 'content-type': 'application/x-www-form-urlencoded', ...headers })
  }

  async send (method: 'GET' | 'POST', url: string, payload: string | undefined, headers: Record<string, string>): Promise<LightMyRequestResponse> {
    const response = await this.app.inject({ method, url, payload, cookies: this.cookies, remoteAddress: this.ip, headers: { 'user-agent': this.userAgent, ...headers } })
    for (const cookie of response.cookies as Array<{ name: string, value: string, maxAge?: number, expires?: Date }>) {
      if (cookie.maxAge === 0) this.jar.delete(cookie.name)
      else this.jar.set(cookie.name, { value: cookie.value, persistent: cookie.maxAge !== undefined || cookie.expires !== undefined })
    }
    const token = /name="_csrf" value="([^"]+)"/.exec(response.body)
    if (token !== null) this.csrf = token[1]
    return response
  }

  // Closing the browser: session cookies are gone, persistent ones stay.
  restart (): void {
    for (const [name, cookie] of this.jar) if (!cookie.persistent) this.jar.delete(name)
    this.csrf = ''
  }

  // Signing up and logging in return the POST's answer, after following its
  // redirect as a browser does (the page it lands on has the new CSRF token).
  async signUp (name: string, password = PASSWORD, { grade = '7', remember = false } = {}): Promise<LightMyRequestResponse> {
    await this.get('/signup')
    return this.followed(await this.post('/signup', { name, grade, password, ...(remember ? { remember: 'yes' } : {}) }))
  }

  async logIn (name: string, password = PASSWORD, { remember = false, next = '' } = {}): Promise<LightMyRequestResponse> {
    await this.get('/login')
    return this.followed(await this.post('/login', { name, password, ...(remember ? { remember: 'yes' } : {}), ...(next === '' ? {} : { next }) }))
  }

  async followed (response: LightMyRequestResponse): Promise<LightMyRequestResponse> {
    if (response.statusCode === 303) await this.get(response.headers.location as string)
    return response
  }

  // Follows redirects to the page at the end, as a browser does.
  async visit (url: string): Promise<LightMyRequestResponse> {
    let response = await this.get(url)
    for (let hops = 0; response.statusCode >= 300 && response.statusCode < 400 && hops < 5; hops++) {
      response = await this.get(response.headers.location as string)
    }
    return response
  }

  async navigation (): Promise<string> {
    const html = (await this.get('/')).body
    return text(/<nav>([\s\S]*?)<\/nav>/.exec(html)?.[1] ?? '')
  }
}

// The visible text of some HTML, on one line.
function text (html: string): string {
  return html.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim()
}

// The error messages of a page, joined by ' | ' when there are several.
function errorOf (response: LightMyRequestResponse): string | undefined {
  const one = /<p class="error" role="alert">([^<]*)<\/p>/.exec(response.body)?.[1]
  if (one !== undefined) return one
  const list = /<ul class="error" role="alert">([\s\S]*?)<\/ul>/.exec(response.body)?.[1]
  return list === undefined ? undefined : [...list.matchAll(/<li>([^<]*)<\/li>/g)].map((match) => match[1]).join(' | ')
}

function noticeOf (response: LightMyRequestResponse): string | undefined {
  return /<p class="notice" role="status">([^<]*)<\/p>/.exec(response.body)?.[1]
}

test('the home page: anonymous navigation, security headers, the stylesheet', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  const home = await browser.get('/')
  t.equal(home.statusCode, 200)
  t.match(home.headers['content-type'], /^text\/html; charset=utf-8/)
  t.equal(await browser.navigation(), 'Log in · Sign up')
  t.match(home.headers['content-security-policy'], /default-src 'none'/)
  t.equal(home.headers['cache-control'], 'no-store')
  t.equal(home.headers['x-content-type-options'], 'nosniff')
  const css = await browser.get('/style.css')
  t.equal(css.statusCode, 200)
  t.match(css.headers['content-type'], /^text\/css/)
  t.equal(css.headers['cache-control'], 'max-age=3600')
  const missing = await browser.get('/nowhere')
  t.equal(missing.statusCode, 404)
  t.equal(errorOf(missing), 'There is no page at this address.')
})

test('sign up: logged in at once, the name in the navigation, a row in the database', async (t) => {
  const { app, count, rows } = await portal(t)
  const browser = new Browser(app)
  const form = await browser.get('/signup')
  t.equal(form.statusCode, 200)
  t.match(form.body, 'name="_csrf"')
  t.match(form.body, `maxlength="${LIMITS.name}"`)

  const response = await browser.signUp('Grace', PASSWORD, { grade: '12' })
  t.equal(response.statusCode, 303)
  t.equal(response.headers.location, '/profile')
  t.equal(count(), 1)
  t.match(rows()[0], { name: 'Grace', grade: 12, session_version: 1, api_token_hash: null })
  t.equal(await browser.navigation(), 'Logged in as Grace · Log out')

  const profile = await browser.get('/profile')
  t.equal(profile.statusCode, 200)
  t.match(text(profile.body), 'Name Grace Grade 12')
  t.match(text(profile.body), 'Fresh: you typed your password in this browser session.')
  t.notOk(browser.jar.get('account')?.persistent, 'without "remember me", a browser-session login')

  const remembered = new Browser(app, 'another browser')
  t.equal((await remembered.signUp('Hedy', PASSWORD, { remember: true })).statusCode, 303)
  t.ok(remembered.jar.get('account')?.persistent, 'with "remember me", the login cookie outlives the browser session')
  t.notOk(remembered.jar.get('fresh')?.persistent, 'the fresh cookie never does')
})

test('sign up refuses bad input with a message and a 4xx, and writes nothing', async (t) => {
  const { app, count, rows } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada')
  const before = rows()
  const cases: Array<[string, Record<string, string | string[]>, number, string]> = [
    ['empty name', { name: '', grade: '5', password: PASSWORD }, 400, 'Please enter your name.'],
    ['blank name', { name: '   ', grade: '5', password: PASSWORD }, 400, 'Please enter your name.'],
    ['missing fields', {}, 400, 'Please enter your name. | Please choose a grade from 1 to 12. | Please choose a password.'],
    ['repeated name field', { name: ['Bo', 'Bob'], grade: '5', password: PASSWORD }, 400, 'Please enter your name.'],
    ['over-long name', { name: 'x'.repeat(LIMITS.name + 1), grade: '5', password: PASSWORD }, 400, 'Names are at most 64 characters long.'],
    ['control characters', { name: 'Bo\u0000b', grade: '5', password: PASSWORD }, 400, 'Names cannot contain control characters or invisible characters.'],
    ['no grade', { name: 'Bob', password: PASSWORD }, 400, 'Please choose a grade from 1 to 12.'],
    ['grade 0', { name: 'Bob', grade: '0', password: PASSWORD }, 400, 'Please choose a grade from 1 to 12.'],
    ['grade 13', { name: 'Bob', grade: '13', password: PASSWORD }, 400, 'Please choose a grade from 1 to 12.'],
    ['grade 1e1', { name: 'Bob', grade: '1e1', password: PASSWORD }, 400, 'Please choose a grade from 1 to 12.'],
    ['empty password', { name: 'Bob', grade: '5', password: '' }, 400, 'Please choose a password.'],
    ['short password', { name: 'Bob', grade: '5', password: 'x'.repeat(LIMITS.passwordMin - 1) }, 400, 'Passwords need at least 8 characters.'],
    ['over-long password', { name: 'Bob', grade: '5', password: 'x'.repeat(LIMITS.passwordMax + 1) }, 400, 'Passwords are at most 128 characters long.'],
    ['duplicate name', { name: 'Ada', grade: '5', password: PASSWORD }, 409, 'The name “Ada” is taken. Choose another one.'],
    ['duplicate name, other case', { name: ' ada ', grade: '5', password: PASSWORD }, 409, 'The name “ada” is taken. Choose another one.']
  ]
  const visitor = new Browser(app, 'visitor')
  await visitor.get('/signup')
  for (const [label, fields, status, message] of cases) {
    const response = await visitor.post('/signup', fields)
    t.equal(response.statusCode, status, `${label}: status`)
    t.equal(errorOf(response), message, `${label}: message`)
    t.equal(response.cookies.filter((cookie) => cookie.name === 'account').length, 0, `${label}: not logged in`)
  }
  t.equal(count(), 1, 'nothing written')
  t.same(rows(), before, 'the existing row is untouched')

  const again = await visitor.post('/signup', { name: 'Bob', grade: '4', password: 'short', remember: 'yes' })
  t.match(again.body, 'value="Bob"', 'the form keeps the name')
  t.match(again.body, '<option value="4" selected>', 'and the grade')
  t.match(again.body, /name="remember" value="yes" checked/, 'and "remember me"')
  t.notMatch(again.body, 'value="short"', 'never the password')
  t.equal(await visitor.navigation(), 'Log in · Sign up')
})

test('names are escaped everywhere they are shown', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('<b>Bo</b> & "Co"')
  const profile = await browser.get('/profile')
  t.match(profile.body, '&lt;b&gt;Bo&lt;/b&gt; &amp; &#34;Co&#34;')
  t.notMatch(profile.body, '<b>Bo</b>')
  const duplicate = await new Browser(app, 'other').signUp('<b>Bo</b> & "Co"')
  t.equal(duplicate.statusCode, 409)
  t.match(duplicate.body, 'value="&lt;b&gt;Bo&lt;/b&gt; &amp; &#34;Co&#34;"')
})

test('log in: wrong password, unknown name, empty and over-long fields are refused, nothing written', async (t) => {
  const { app, rows } = await portal(t)
  await new Browser(app, 'setup').signUp('Ada')
  const before = rows()
  const browser = new Browser(app)
  const form = await browser.get('/login')
  t.equal(form.statusCode, 200)
  t.notMatch(form.body, 'name="next"', 'no next, no hidden field')
  const cases: Array<[string, Record<string, string>, number, string]> = [
    ['wrong password', { name: 'Ada', password: 'not the password' }, 401, 'Wrong name or password.'],
    ['unknown name', { name: 'Nobody', password: PASSWORD }, 401, 'Wrong name or password.'],
    ['unknown name again', { name: 'Nobody else', password: PASSWORD }, 401, 'Wrong name or password.'],
    ['empty name', { name: '', password: PASSWORD }, 400, 'Please enter your name.'],
    ['empty password', { name: 'Ada', password: '' }, 400, 'Please enter your password.'],
    ['over-long name', { name: 'x'.repeat(LIMITS.name + 1), password: PASSWORD }, 400, 'That name is too long (at most 64 characters).'],
    ['over-long password', { name: 'Ada', password: 'x'.repeat(LIMITS.passwordMax + 1) }, 400, 'That password is too long (at most 128 characters).']
  ]
  for (const [label, fields, status, message] of cases) {
    const response = await browser.post('/login', { ...fields, remember: 'yes' })
    t.equal(response.statusCode, status, `${label}: status`)
    t.equal(errorOf(response), message, `${label}: message`)
    t.notOk(response.headers['set-cookie']?.toString().includes('account='), `${label}: no login cookie`)
    t.match(response.body, /name="remember" value="yes" checked/, `${label}: keeps "remember me"`)
  }
  t.same(rows(), before, 'nothing written')
  t.equal(await browser.navigation(), 'Log in · Sign up')
})

test('log in with and without "remember me"; a browser restart keeps only the remembered login', async (t) => {
  const { app } = await portal(t)
  await new Browser(app, 'setup').signUp('Ada')

  const remembered = new Browser(app)
  const response = await remembered.logIn(' Ada ', PASSWORD, { remember: true })
  t.equal(response.statusCode, 303)
  t.equal(response.headers.location, '/profile')
  t.match(response.headers['set-cookie'], /account=[^;]+; Max-Age=\d+/)
  remembered.restart()
  t.equal(await remembered.navigation(), 'Logged in as Ada · Log out', 'still logged in after the restart')
  const profile = await remembered.get('/profile')
  t.match(text(profile.body), 'Remembered from an earlier visit', 'but not fresh')

  const forgotten = new Browser(app, 'another browser')
  t.equal((await forgotten.logIn('ada')).statusCode, 303, 'names are case-insensitive')
  t.equal(await forgotten.navigation(), 'Logged in as Ada · Log out')
  forgotten.restart()
  t.equal(await forgotten.navigation(), 'Log in · Sign up', 'a login without "remember me" ends with the browser session')
})

test('login-prohibited pages send a logged-in student to the profile', async (t) => {
  const { app, count } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada')
  for (const url of ['/login', '/signup']) {
    const response = await browser.get(url)
    t.equal(response.statusCode, 307, url)
    t.equal(response.headers.location, '/profile', url)
  }
  // A form posted from a stale tab: 303, so the browser follows with a GET.
  for (const url of ['/login', '/signup']) {
    const response = await browser.post(url, { name: 'Bob', grade: '3', password: PASSWORD })
    t.equal(response.statusCode, 303, url)
    t.equal(response.headers.location, '/profile', url)
  }
  t.equal(count(), 1)
})

test('protected pages send anonymous visitors to log in; refused form posts get a 303', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.get('/')
  for (const url of ['/profile', '/password', '/reauthenticate']) {
    const response = await browser.get(url)
    t.equal(response.statusCode, 307, url)
    t.equal(response.headers.location, `/login?next=${encodeURIComponent(url)}`, url)
  }
  for (const url of ['/password', '/reauthenticate', '/logout-everywhere', '/api-token']) {
    const response = await browser.post(url, { password: PASSWORD })
    t.equal(response.statusCode, 303, url)
    t.equal(response.headers.location, `/login?next=${encodeURIComponent(url)}`, url)
  }
})

test('next: back to the page that was asked for, through the login form; never to another site', async (t) => {
  const { app } = await portal(t)
  await new Browser(app, 'setup').signUp('Ada')
  const browser = new Browser(app)
  const guarded = await browser.get('/password?tab=1')
  t.equal(guarded.headers.location, '/login?next=%2Fpassword%3Ftab%3D1')
  const form = await browser.get(guarded.headers.location as string)
  t.match(form.body, '<input type="hidden" name="next" value="/password?tab=1">')

  const wrong = await browser.post('/login', { name: 'Ada', password: 'wrong password', next: '/password?tab=1' })
  t.equal(wrong.statusCode, 401)
  t.match(wrong.body, '<input type="hidden" name="next" value="/password?tab=1">', 'a failed attempt keeps next')

  const response = await browser.post('/login', { name: 'Ada', password: PASSWORD, next: '/password?tab=1' })
  t.equal(response.statusCode, 303)
  t.equal(response.headers.location, '/password?tab=1')
  t.equal((await browser.get('/password?tab=1')).statusCode, 200, 'a fresh login may change the password')

  const other = new Browser(app, 'other')
  for (const next of ['//evil.example/', 'https://evil.example/', '/\\evil.example', 'javascript:alert(1)']) {
    const page = await other.get(`/login?next=${encodeURIComponent(next)}`)
    t.notMatch(page.body, 'name="next"', `${next}: not kept in the form`)
  }
  const evil = await other.logIn('Ada', PASSWORD, { next: '//evil.example/' })
  t.equal(evil.headers.location, '/profile', 'an unsafe next falls back to the profile')
})

test('CSRF: every state-changing form needs the token of its own browser', async (t) => {
  const { app, rows } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada')
  const before = rows()

  const noToken = await browser.post('/logout', {}, { csrf: false })
  t.equal(noToken.statusCode, 403)
  t.equal(errorOf(noToken), 'This form has expired or did not come from this site. Go back, reload the page and try again.')
  t.equal(await browser.navigation(), 'Logged in as Ada · Log out', 'still logged in')

  for (const url of ['/password', '/logout-everywhere', '/api-token']) {
    t.equal((await browser.post(url, { password: 'new password 1', confirm: 'new password 1' }, { csrf: false })).statusCode, 403, url)
    const forged = await browser.post(url, { _csrf: 'forged', password: 'new password 1', confirm: 'new password 1' }, { csrf: false })
    t.equal(forged.statusCode, 403, `${url}, forged token`)
  }
  t.same(rows(), before, 'nothing changed')

  // Log-in CSRF: another site cannot log a visitor in as someone else.
  const visitor = new Browser(app, 'visitor')
  await visitor.get('/login')
  t.equal((await visitor.post('/login', { name: 'Ada', password: PASSWORD }, { csrf: false })).statusCode, 403)
  t.equal((await visitor.post('/signup', { name: 'Eve', grade: '3', password: PASSWORD }, { csrf: false })).statusCode, 403)
  const stranger = new Browser(app, 'stranger')
  await stranger.get('/login')
  stranger.csrf = browser.csrf
  t.equal((await stranger.post('/login', { name: 'Ada', password: PASSWORD })).statusCode, 403, 'a token from another browser does not fit')
  t.equal(rows().length, 1)

  // The token may come in a header (for scripts); a request without a body then reaches the form's checks.
  const headerOnly = await visitor.send('POST', '/login', undefined, { 'x-csrf-token': visitor.csrf })
  t.equal(headerOnly.statusCode, 400)
  t.equal(errorOf(headerOnly), 'Please enter your name. | Please enter your password.')
})

test('log out is a POST: it ends the login and clears the cookies', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada', PASSWORD, { remember: true })
  const response = await browser.post('/logout')
  t.equal(response.statusCode, 303)
  t.equal(response.headers.location, '/')
  t.match(response.headers['set-cookie'], /account=; Max-Age=0/)
  t.equal(await browser.navigation(), 'Log in · Sign up')
  t.equal((await browser.get('/profile')).statusCode, 307)
  t.equal((await browser.get('/logout')).statusCode, 404, 'there is no GET log-out')
  await browser.get('/login') // a page with a form, and so a token for the new CSRF secret
  const again = await browser.post('/logout')
  t.equal(again.statusCode, 303, 'logging out twice is harmless')
  t.notMatch(String(again.headers['set-cookie'] ?? ''), 'account=', 'and sends no cookie to clear')
})

test('a tampered or foreign login cookie is logged out', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada', PASSWORD, { remember: true })
  const account = browser.jar.get('account') as StoredCookie
  account.value = account.value.replace(/.(\.[^.]+)$/, (match, signature) => (match[0] === 'A' ? 'B' : 'A') + signature)
  t.equal(await browser.navigation(), 'Log in · Sign up')
  t.equal((await browser.get('/profile')).statusCode, 307)

  // Cookies signed with this app's secret, for ids the loader does not accept.
  for (const id of ['1', 'ada:1', '1:2', '99:1']) {
    const cookies = await app.loginManager.cookiesFor({ getId: () => id, isAuthenticated: true } as never)
    const response = await app.inject({ url: '/profile', cookies })
    t.equal(response.statusCode, 307, `id ${id}`)
  }
  const good = await app.loginManager.cookiesFor({ getId: () => '1:1' } as never)
  t.equal((await app.inject({ url: '/profile', cookies: good })).statusCode, 200, 'the current id and version load the student')
})

test('a login cookie planted beside the real one: the page is refused, the copy expired, the real login kept', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada', PASSWORD, { remember: true })
  const real = Object.entries(browser.cookies).map(([name, value]) => `${name}=${value}`).join('; ')
  // Another port of 127.0.0.1 set `account` at Path=/profile: the browser sends it first.
  const refused = await app.inject({ url: '/profile', headers: { cookie: `account=planted; ${real}` } })
  t.equal(refused.statusCode, 307, 'a login cookie sent twice is no login')
  const lines = [refused.headers['set-cookie']].flat().map(String).filter((line) => line.startsWith('account='))
  t.same(lines.map((line) => /Path=[^;]+/.exec(line)?.[0]), ['Path=/profile'], 'the copy is expired where it lives, the real cookie (Path=/) is not')
  const flash = (refused.cookies as Array<{ name: string, value: string }>).find((cookie) => cookie.name === 'flash')
  t.equal(app.unsignCookie(flash?.value ?? '').value, 'login-required', 'not "your login has ended"')
  t.equal(await browser.navigation(), 'Logged in as Ada · Log out', 'the real login was never ended')
  t.equal((await app.loginManager.listLogins('1:1')).length, 1)
})

test('a fresh login is needed to change the password: re-authenticate, then back', async (t) => {
  const { app, rows } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada', PASSWORD, { remember: true })
  const otherDevice = new Browser(app, 'phone')
  await otherDevice.logIn('Ada', PASSWORD, { remember: true })
  browser.restart()
  const before = rows()

  const asked = await browser.get('/password')
  t.equal(asked.statusCode, 307)
  t.equal(asked.headers.location, '/reauthenticate?next=%2Fpassword')
  await browser.get('/profile')
  const stale = await browser.post('/password', { current: PASSWORD, password: 'brand new password', confirm: 'brand new password' })
  t.equal(stale.statusCode, 303, 'a stale form post is sent to re-authenticate with a GET')
  t.equal(stale.headers.location, '/reauthenticate?next=%2Fpassword')
  t.same(rows(), before, 'and changes nothing')

  const form = await browser.get(asked.headers.location as string)
  t.equal(form.statusCode, 200)
  t.match(form.body, '<input type="hidden" name="next" value="/password">')
  t.match(form.body, '<input type="text" name="username" value="Ada" autocomplete="username" hidden>', 'a password manager knows whose password it is')
  const cases: Array<[string, string, number, string]> = [
    ['empty', '', 400, 'Please enter your password.'],
    ['over-long', 'x'.repeat(LIMITS.passwordMax + 1), 400, 'That password is too long (at most 128 characters).'],
    ['wrong', 'not my password', 401, 'Wrong password.']
  ]
  for (const [label, password, status, message] of cases) {
    const response = await browser.post('/reauthenticate', { password, next: '/password' })
    t.equal(response.statusCode, status, label)
    t.equal(errorOf(response), message, label)
    t.match(response.body, 'name="next" value="/password"', `${label}: keeps next`)
  }
  t.equal((await browser.get('/password')).statusCode, 307, 'still not fresh')

  const confirmed = await browser.post('/reauthenticate', { password: PASSWORD, next: '/password' })
  t.equal(confirmed.statusCode, 303)
  t.equal(confirmed.headers.location, '/password')
  const page = await browser.get('/password')
  t.equal(page.statusCode, 200)
  t.match(page.body, '<input type="text" name="username" value="Ada" autocomplete="username" hidden>')
  t.match(page.body, 'name="current"', 'the form asks for the current password')

  const refused: Array<[Record<string, string>, number, string]> = [
    [{ current: PASSWORD, password: '', confirm: '' }, 400, 'Please choose a password.'],
    [{ current: PASSWORD, password: 'short', confirm: 'short' }, 400, 'Passwords need at least 8 characters.'],
    [{ current: PASSWORD, password: 'y'.repeat(LIMITS.passwordMax + 1), confirm: 'y'.repeat(LIMITS.passwordMax + 1) }, 400, 'Passwords are at most 128 characters long.'],
    [{ current: PASSWORD, password: 'brand new password', confirm: 'brand new passwort' }, 400, 'The two new passwords do not match.'],
    [{ password: 'brand new password', confirm: 'brand new password' }, 400, 'Please enter your current password.'],
    [{ current: '', password: 'short', confirm: 'other' }, 400, 'Please enter your current password. | Passwords need at least 8 characters. | The two new passwords do not match.'],
    [{ current: 'not my password', password: 'brand new password', confirm: 'brand new password' }, 401, 'Your current password is not that one.']
  ]
  for (const [fields, status, message] of refused) {
    const response = await browser.post('/password', fields)
    t.equal(response.statusCode, status, message)
    t.equal(errorOf(response), message)
  }
  t.same(rows(), before, 'nothing written')

  const changed = await browser.post('/password', { current: PASSWORD, password: 'brand new password', confirm: 'brand new password' })
  t.equal(changed.statusCode, 303)
  t.equal(changed.headers.location, '/profile')
  const profile = await browser.get('/profile')
  t.equal(profile.statusCode, 200, 'this device stays logged in')
  t.equal(noticeOf(profile), 'Your password was changed. Every other device was logged out, and your API token was revoked.')
  t.match(text(profile.body), 'Fresh:')
  t.equal(noticeOf(await browser.get('/profile')), undefined, 'the notice is shown once')
  t.ok(browser.jar.get('account')?.persistent, 'its new login is remembered, as the one it replaces was')
  t.equal((await otherDevice.get('/profile')).statusCode, 307, 'the other device is logged out')

  const [row] = rows()
  t.not(row.password_hash, before[0].password_hash)
  t.equal(row.session_version, 2)
  t.equal((await new Browser(app, 'x').logIn('Ada', PASSWORD)).statusCode, 401, 'the old password no longer works')
  t.equal((await new Browser(app, 'y').logIn('Ada', 'brand new password')).statusCode, 303, 'the new one does')
})

test('notices are one-shot and come from the server, never from a link', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada')
  for (const notice of ['everywhere', 'password', 'constructor', '<script>', 'toString']) {
    const response = await browser.get(`/profile?notice=${encodeURIComponent(notice)}`)
    t.equal(response.statusCode, 200)
    t.equal(noticeOf(response), undefined, notice)
  }

  // A notice cookie that is not the portal's own (planted by a neighbour) shows nothing.
  for (const value of ['logged-out', 'Anything at all', 's:logged-out.forged']) {
    browser.jar.set('flash', { value, persistent: false })
    const page = await browser.get('/profile')
    t.equal(noticeOf(page), undefined, value)
    t.notOk(browser.jar.has('flash'), 'and is cleared')
  }
  // A signed code that is not in the table shows nothing either.
  browser.jar.set('flash', { value: app.signCookie('constructor'), persistent: false })
  t.equal(noticeOf(await browser.get('/profile')), undefined, 'constructor')
})

test('log out everywhere needs a fresh login; every other cookie of the student then loads nobody; this device stays', async (t) => {
  const { app, rows } = await portal(t)
  const laptop = new Browser(app, 'laptop')
  await laptop.signUp('Ada', PASSWORD, { remember: true })
  const phone = new Browser(app, 'phone')
  await phone.logIn('Ada', PASSWORD, { remember: true })
  const stolen = new Map(phone.jar)
  const bystander = new Browser(app, 'bystander')
  await bystander.signUp('Bob')

  // The laptop was restarted: remembered, not fresh. A stolen, remembered
  // cookie is no better: neither may lock the student out of the others.
  laptop.restart()
  await laptop.get('/profile')
  const stale = await laptop.post('/logout-everywhere')
  t.equal(stale.statusCode, 303)
  t.equal(stale.headers.location, '/reauthenticate?next=%2Flogout-everywhere')
  t.match(rows(), [{ name: 'Ada', session_version: 1 }], 'nothing revoked')
  await laptop.get(stale.headers.location as string)
  const confirmed = await laptop.post('/reauthenticate', { password: PASSWORD, next: '/logout-everywhere' })
  t.equal(confirmed.headers.location, '/logout-everywhere')
  const confirmPage = await laptop.get('/logout-everywhere')
  t.equal(confirmPage.statusCode, 200, 'the journey ends on a page that asks to confirm, not a 404')
  t.match(text(confirmPage.body), 'This browser stays logged in.')

  const response = await laptop.post('/logout-everywhere')
  t.equal(response.statusCode, 303)
  t.equal(response.headers.location, '/profile')
  const profile = await laptop.get('/profile')
  t.equal(profile.statusCode, 200, 'this device is logged in again')
  t.equal(noticeOf(profile), 'Every other device was logged out, and your API token was revoked.')
  t.match(text(profile.body), 'Fresh:', 'as fresh as it was')

  // The phone is sent to log in, and told why; its dead cookie is cleared.
  const refused = await phone.get('/profile')
  t.equal(refused.statusCode, 307, 'the phone is logged out')
  t.equal(refused.headers.location, '/login?next=%2Fprofile')
  t.notOk(phone.jar.has('account'), 'its cookie that no longer works is cleared')
  const login = await phone.get(refused.headers.location as string)
  t.equal(noticeOf(login), 'You were logged out: someone chose “Log out everywhere else” on another device. Log in again.')
  phone.jar = stolen
  t.equal(await phone.navigation(), 'Log in · Sign up', 'so is any copy of its cookies')
  t.equal(await bystander.navigation(), 'Logged in as Bob · Log out', 'other students are not affected')
  t.match(rows(), [{ name: 'Ada', session_version: 2, revoked_by: 'everywhere' }, { name: 'Bob', session_version: 1 }])
})

test('the log-in page says why you are there', async (t) => {
  const { app } = await portal(t)
  const anonymous = new Browser(app)
  const guarded = await anonymous.get('/password')
  t.equal(guarded.headers.location, '/login?next=%2Fpassword')
  const page = await anonymous.get(guarded.headers.location as string)
  t.equal(noticeOf(page), app.loginManager.config.loginRequiredMessage, "the plugin's loginRequiredMessage, as Flask-Login flashes it")
  t.equal(noticeOf(await anonymous.get('/login')), undefined, 'once')
  t.equal(noticeOf(await anonymous.get('/login?next=%2Fprofile')), undefined, 'a link alone does not make the page say it')

  const browser = new Browser(app, 'laptop')
  await browser.signUp('Ada')
  await browser.get('/profile')
  await browser.post('/logout')
  t.equal(noticeOf(await browser.get('/')), 'You have been logged out.')
  t.equal(noticeOf(await browser.get('/')), undefined)

  // A password changed on another device.
  const phone = new Browser(app, 'phone')
  await phone.logIn('Ada')
  await browser.logIn('Ada')
  await browser.get('/password')
  await browser.post('/password', { current: PASSWORD, password: 'brand new password', confirm: 'brand new password' })
  const login = await phone.visit('/profile')
  t.equal(noticeOf(login), 'You were logged out: your password was changed on another device. Log in with the new password.')
  t.equal(noticeOf(await phone.get('/login')), undefined, 'once')
})

test('the re-authentication page says why it asks', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app, 'laptop browser')
  await browser.signUp('Ada', PASSWORD, { remember: true })
  const reason = async (b: Browser): Promise<string> => text(/<h1>[^<]*<\/h1>\s*<p>([^<]*)<\/p>/.exec((await b.visit('/password')).body)?.[1] ?? '')

  t.equal((await browser.visit('/password')).statusCode, 200, 'fresh: no question')
  t.equal(text((await browser.get('/reauthenticate')).body).includes('To continue, type your password again.'), true, 'asked anyway: a plain request')

  // The same cookies from another browser: 'basic' session protection.
  const moved = new Browser(app, 'another browser')
  moved.jar = new Map(browser.jar)
  t.equal(await reason(moved), 'Your browser or network changed since you logged in. To continue, type your password again.')

  // Freshness lasts an hour (the plugin's freshDuration).
  const later = new Browser(app, 'laptop browser')
  later.jar = new Map(browser.jar)
  const realNow = Date.now
  Date.now = () => realNow() + 3601 * 1000
  try {
    t.equal(await reason(later), 'It has been a while since you typed your password. To continue, type it again.')
  } finally {
    Date.now = realNow
  }

  // The browser was closed and opened again.
  browser.restart()
  t.equal(await reason(browser), 'You were remembered from an earlier visit. To continue, type your password again.')
})

test('the JSON API: a bearer token made on its own page, stored hashed, shown once, with an expiry', async (t) => {
  const { app, rows } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada', PASSWORD, { grade: '9', remember: true })

  const anonymous = await app.inject('/api/me')
  t.equal(anonymous.statusCode, 401)
  t.equal(anonymous.headers['www-authenticate'], 'Bearer realm="portal"')
  t.match(anonymous.headers['content-type'], /^application\/json/)
  t.same(anonymous.json(), { statusCode: 401, error: 'Unauthorized', message: 'Send your API token: Authorization: Bearer <token>' })

  const none = await browser.get('/api-token')
  t.equal(none.statusCode, 200)
  t.match(text(none.body), 'You have no API token.')
  const created = await browser.post('/api-token')
  t.equal(created.statusCode, 303, 'POST, then redirect, then GET')
  t.equal(created.headers.location, '/api-token')
  const shown = await browser.get('/api-token')
  t.equal(shown.headers['cache-control'], 'no-store')
  const token = /<pre class="token">(portal_[A-Za-z0-9_-]{43})<\/pre>/.exec(shown.body)?.[1] as string
  t.ok(token, 'the page shows the token')
  t.match(shown.body, `curl -H 'Authorization: Bearer ${token}' http://localhost:80/api/me`)
  const [row] = rows()
  t.equal(row.api_token_hash, createHash('sha256').update(token).digest('base64url'), 'only its hash is stored')
  const expiresAt = new Date((row.api_token_expires_at as number) * 1000)
  t.ok(Math.abs(expiresAt.getTime() - Date.now() - 30 * 24 * 3600 * 1000) < 60000, 'it works for 30 days')
  t.match(shown.body, `Your API token works until <time datetime="${expiresAt.toISOString()}">${expiresAt.toISOString().slice(0, 16).replace('T', ' ')} UTC</time>.`)

  const reloaded = await browser.get('/api-token')
  t.notMatch(reloaded.body, 'class="token"', 'a reload shows it no more')
  t.match(text(reloaded.body), 'Your API token works until', 'only when it expires')
  t.equal(rows()[0].api_token_hash, row.api_token_hash, 'and makes no new one')

  const me = await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${token}` } })
  t.equal(me.statusCode, 200)
  t.same(me.json(), { name: 'Ada', grade: 9 })
  t.equal((await app.inject({ url: '/api/me', headers: { authorization: `bearer ${token}` } })).statusCode, 200, 'the scheme is case-insensitive')
  t.equal(me.headers['set-cookie'], undefined, 'the API sets no cookie')

  for (const authorization of [`Bearer ${token.slice(0, -1)}x`, `Bearer ${token.slice(0, -1)}`, `Basic ${token}`, token, 'Bearer ', `Bearer ${token} extra`]) {
    const refused = await app.inject({ url: '/api/me', headers: { authorization } })
    t.equal(refused.statusCode, 401, authorization)
    t.equal(refused.json().error, 'Unauthorized')
  }

  // A new token replaces the old one; "log out everywhere" revokes it.
  await browser.post('/api-token')
  const second = /<pre class="token">([^<]+)<\/pre>/.exec((await browser.get('/api-token')).body)?.[1] as string
  t.not(second, token)
  t.equal((await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${token}` } })).statusCode, 401, 'the old token is gone')
  t.equal((await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${second}` } })).statusCode, 200)
  await browser.get('/logout-everywhere')
  await browser.post('/logout-everywhere')
  t.equal((await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${second}` } })).statusCode, 401, 'revoked')
  t.equal(rows()[0].api_token_hash, null)
  t.match(text((await browser.get('/api-token')).body), 'You have no API token.')
})

test('API tokens: only under /api/, never a login of the pages; they expire', async (t) => {
  const { app, rows } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada', PASSWORD)
  await browser.get('/api-token')
  await browser.post('/api-token')
  const token = /<pre class="token">([^<]+)<\/pre>/.exec((await browser.get('/api-token')).body)?.[1] as string
  const bearer = { authorization: `Bearer ${token}` }

  // A stolen token cannot log out everywhere (and so revoke the token and
  // keep a cookie), confirm a login, or read a page.
  for (const [method, url] of [['GET', '/profile'], ['POST', '/logout-everywhere'], ['POST', '/reauthenticate'], ['GET', '/api-token'], ['POST', '/password']] as const) {
    const response = await app.inject({ method, url, headers: { ...bearer, 'content-type': 'application/x-www-form-urlencoded' }, payload: method === 'POST' ? 'password=x' : undefined })
    t.equal(response.statusCode, 400, `${method} ${url}`)
    t.equal(errorOf(response), 'API tokens work only under /api/. Log in with your name and password to use the pages.')
    t.notMatch(String(response.headers['set-cookie']), /account=|fresh=/, `${method} ${url}: no login cookie`)
  }
  t.match(rows(), [{ session_version: 1 }], 'nothing revoked')
  t.notOk(rows()[0].api_token_hash === null, 'the token still works')

  // 30 days later.
  const realNow = Date.now
  t.teardown(() => { Date.now = realNow })
  Date.now = () => realNow() + 30 * 24 * 3600 * 1000 + 1000
  t.equal((await app.inject({ url: '/api/me', headers: bearer })).statusCode, 401, 'expired')
  await browser.logIn('Ada')
  t.match(text((await browser.get('/api-token')).body), 'Your API token expired on')
})

test('the API-token journey from a remembered login ends on the token page', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada', PASSWORD, { remember: true })
  browser.restart()
  await browser.get('/profile')

  // The button of a page that was open: a POST, refused for freshness.
  const stale = await browser.post('/api-token')
  t.equal(stale.headers.location, '/reauthenticate?next=%2Fapi-token')
  await browser.get(stale.headers.location as string)
  const confirmed = await browser.post('/reauthenticate', { password: PASSWORD, next: '/api-token' })
  const end = await browser.visit(confirmed.headers.location as string)
  t.equal(end.statusCode, 200, 'not a 404')
  t.match(text(end.body), 'Your API token')
  t.match(end.body, 'action="/api-token"')

  // The same after "log out everywhere" from another device.
  const phone = new Browser(app, 'phone')
  await phone.logIn('Ada')
  await phone.get('/logout-everywhere')
  await phone.post('/logout-everywhere')
  const loggedOut = await browser.post('/api-token')
  t.equal(loggedOut.headers.location, '/login?next=%2Fapi-token')
  await browser.get(loggedOut.headers.location as string)
  const again = await browser.post('/login', { name: 'Ada', password: PASSWORD, next: '/api-token' })
  const page = await browser.visit(again.headers.location as string)
  t.equal(page.statusCode, 200)
  t.match(page.body, 'action="/api-token"')
})

test('passwords are stored as salted scrypt hashes, never in clear', async (t) => {
  const { app, file, rows } = await portal(t)
  await new Browser(app, 'a').signUp('Ada', PASSWORD)
  await new Browser(app, 'b').signUp('Bob', PASSWORD)
  const [ada, bob] = rows() as Array<{ password_hash: string }>
  for (const hash of [ada.password_hash, bob.password_hash]) {
    t.match(hash, /^scrypt\$16384\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/)
    t.notMatch(hash, PASSWORD)
  }
  t.not(ada.password_hash, bob.password_hash, 'the same password, two hashes')
  t.not(ada.password_hash.split('$')[4], bob.password_hash.split('$')[4], 'two salts')
  for (const path of [file, `${file}-wal`]) {
    if (existsSync(path)) t.notOk(readFileSync(path).includes(PASSWORD), `${path} holds no clear password`)
  }

  t.equal(await verifyPassword(PASSWORD, ada.password_hash), true)
  t.equal(await verifyPassword('correct horse battery!', ada.password_hash), false)
  t.equal(await verifyPassword(PASSWORD, 'plain text'), false, 'an unknown format never matches')
  t.equal(await verifyPassword(PASSWORD, 'bcrypt$1$2$3$4$5'), false)
  const composed = await hashPassword('caf\u00e9 au lait')
  t.equal(await verifyPassword('cafe\u0301 au lait', composed), true, 'Unicode forms are normalised')
})

test('the database checks names and grades too', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portal-db-'))
  const db = openDatabase(join(dir, 'portal.sqlite'))
  t.teardown(() => {
    db.close()
    rmSync(dir, { recursive: true, force: true })
  })
  t.throws(() => db.createStudent({ name: 'Ada', grade: 13, passwordHash: 'x' }), { code: 'SQLITE_CONSTRAINT_CHECK' })
  t.throws(() => db.createStudent({ name: '', grade: 3, passwordHash: 'x' }), { code: 'SQLITE_CONSTRAINT_CHECK' })
  t.match(db.createStudent({ name: 'Ada', grade: 3, passwordHash: 'x' }), { id: 1, name: 'Ada', sessionVersion: 1 })
  t.equal(db.createStudent({ name: 'ADA', grade: 4, passwordHash: 'y' }), null, 'a taken name inserts nothing')
  t.equal(db.studentById(2), null)
  t.equal(db.studentByName('nobody'), null)
})

test('errors: other 4xx show their message; a server error shows no details', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.get('/login')
  const unsupported = await browser.send('POST', '/login', '<name>Ada</name>', { 'content-type': 'application/xml' })
  t.equal(unsupported.statusCode, 415)
  t.match(errorOf(unsupported), /^Unsupported Media Type/)

  app.db.close() // the database goes away
  const response = await browser.post('/login', { name: 'Ada', password: PASSWORD })
  t.equal(response.statusCode, 500)
  t.equal(errorOf(response), 'Something went wrong on our side. Please try again later.')
  t.notMatch(response.body, 'database')
})

test('server.js: settings from the environment', async (t) => {
  t.same(settings({}), { databasePath: join(exampleDir, 'data', 'portal.sqlite'), secret: undefined, host: '127.0.0.1', port: 3000, publicUrl: null, redisUrl: null, selfServedHttps: false, oidc: null })
  t.same(settings({ EXAMPLE_DB: 'x.sqlite', LOGIN_SECRET: SECRET, PORT: '8080', PUBLIC_URL: 'https://portal.example', REDIS_URL: 'redis://127.0.0.1:6379', EXAMPLE_HTTPS: '1' }), {
    redisUrl: 'redis://127.0.0.1:6379',
    databasePath: resolve('x.sqlite'),
    secret: SECRET,
    host: '127.0.0.1',
    port: 8080,
    publicUrl: 'https://portal.example',
    selfServedHttps: true,
    oidc: null
  })
  t.equal(settings({ EXAMPLE_HTTPS: 'yes' }).selfServedHttps, false, 'only `1` turns it on')
  const oidc = { OIDC_ISSUER: 'https://id.example/realms/school', OIDC_CLIENT_ID: 'portal', OIDC_CLIENT_SECRET: 'a secret' }
  t.same(settings(oidc).oidc, { issuer: 'https://id.example/realms/school', clientId: 'portal', clientSecret: 'a secret', name: 'id.example' }, 'the button names the issuer\'s host')
  t.same(settings({ ...oidc, OIDC_NAME: 'School ID' }).oidc?.name, 'School ID')
  t.equal(settings({ ...oidc, OIDC_ISSUER: 'not a url' }).oidc?.name, 'not a url', 'buildApp refuses it (see below)')
  for (const missing of ['OIDC_ISSUER', 'OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET']) {
    t.equal(settings({ ...oidc, [missing]: '' }).oidc, null, `without ${missing}, no provider`)
  }
})

interface Running { child: ChildProcess, url: string, output: () => string }

// Starts `node example/server.js` and waits for the URL it prints.
async function startServer (t: Test, env: Record<string, string | undefined>): Promise<Running> {
  const childEnv = { ...process.env, ...env }
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete childEnv[name]
  const child = spawn(process.execPath, [join(exampleDir, 'server.js')], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill() })
  let output = ''
  return new Promise((resolve, reject) => {
    const read = (chunk: Buffer): void => {
      output += chunk.toString()
      // It prints http://localhost:PORT; fetch goes straight to the address it listens on.
      const port = /Student portal: http:\/\/localhost:(\d+)/.exec(output)?.[1]
      if (port !== undefined) resolve({ child, url: `http://127.0.0.1:${port}`, output: () => output })
    }
    child.stdout.on('data', read)
    child.stderr.on('data', read)
    child.on('exit', (code) => reject(new Error(`server.js exited with ${code}: ${output}`)))
  })
}

async function stopServer (running: Running): Promise<number | null> {
  return new Promise((resolve) => {
    running.child.on('exit', (code) => resolve(code))
    running.child.kill('SIGTERM')
  })
}

// The set-cookie values of a fetch response, as a Cookie header.
function cookieHeader (response: Response, previous = ''): string {
  const jar = new Map(previous.split('; ').filter(Boolean).map((pair) => pair.split('=', 2) as [string, string]))
  for (const line of response.headers.getSetCookie()) {
    const [pair] = line.split(';')
    const index = pair.indexOf('=')
    jar.set(pair.slice(0, index), pair.slice(index + 1))
  }
  return [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
}

test('server.js: seeds the demo student once, keeps its secret, survives a restart', { timeout: 60000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portal-server-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const env = { EXAMPLE_DB: join(dir, 'data', 'portal.sqlite'), PORT: '0', LOGIN_SECRET: undefined }

  const first = await startServer(t, env)
  t.match(first.output(), `Demo student:   name "${DEMO_STUDENT.name}", password "${DEMO_STUDENT.password}"\n`)
  const home = await fetch(first.url)
  t.equal(home.status, 200)
  t.match(text(await home.text()), 'Log in · Sign up')

  // Log in as the demo student, as a browser would.
  const loginPage = await fetch(`${first.url}/login`)
  let cookies = cookieHeader(loginPage)
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await loginPage.text())?.[1] as string
  const login = await fetch(`${first.url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: cookies, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: csrf, name: DEMO_STUDENT.name, password: DEMO_STUDENT.password, remember: 'yes' })
  })
  t.equal(login.status, 303)
  cookies = cookieHeader(login, cookies)
  t.equal(await stopServer(first), 0, 'SIGTERM closes it cleanly')

  const secretFile = join(dir, 'data', 'login-secret')
  t.equal(statSync(secretFile).mode & 0o777, 0o600, 'the generated secret is private')
  const secret = readFileSync(secretFile, 'utf8')

  const second = await startServer(t, env)
  t.match(second.output(), '(unless you changed it)', 'the demo student is not seeded twice')
  const profile = await fetch(`${second.url}/profile`, { headers: { cookie: cookies }, redirect: 'manual' })
  t.equal(profile.status, 200, 'the login survives the restart: same secret')
  t.match(await profile.text(), `Grade</dt><dd>${DEMO_STUDENT.grade}</dd>`)
  t.equal(readFileSync(secretFile, 'utf8'), secret)
  t.equal(await stopServer(second), 0)
})

test('server.js: LOGIN_SECRET from the environment; a busy port is an error', { timeout: 60000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portal-server-'))
  const blocker: Server = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    blocker.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const port = (blocker.address() as { port: number }).port
  const child = spawn(process.execPath, [join(exampleDir, 'server.js')], {
    env: { ...process.env, EXAMPLE_DB: join(dir, 'portal.sqlite'), PORT: String(port), LOGIN_SECRET: SECRET },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const code = await new Promise((resolve) => child.on('exit', resolve))
  t.equal(code, 1)
  t.match(output, 'EADDRINUSE')
  t.notOk(existsSync(join(dir, 'login-secret')), 'no secret file when LOGIN_SECRET is set')
})

const passwords = require('../example/passwords.js') as {
  stats: { hashes: number, running: number, mostRunning: number }
  HASH_SLOTS: number
  HASH_QUEUE: number
}

// Moves the clock of the app (rate-limit windows, cookie and token times) forward.
function advanceClock (t: Test, ms: number): void {
  const realNow = Date.now
  Date.now = () => realNow() + ms
  t.teardown(() => { Date.now = realNow })
}

test('password guessing: the 6th wrong password is a 429 that says when to retry; after the window the right one works', async (t) => {
  const { app } = await portal(t)
  await new Browser(app, 'setup', '10.0.0.9').signUp('Ada')
  const attacker = new Browser(app, 'attacker', '10.0.0.1')
  await attacker.get('/login')
  for (let guess = 1; guess <= 5; guess++) {
    t.equal((await attacker.post('/login', { name: 'Ada', password: `guess number ${guess}` })).statusCode, 401, `guess ${guess}`)
  }
  const before = passwords.stats.hashes
  const sixth = await attacker.post('/login', { name: 'Ada', password: 'guess number 6' })
  t.equal(sixth.statusCode, 429)
  t.ok(Number(sixth.headers['retry-after']) > 800 && Number(sixth.headers['retry-after']) <= 900, 'Retry-After: the rest of the 15 minutes')
  t.match(errorOf(sixth), /^Too many wrong passwords\. Try again in 1[45] min \(at \d\d:\d\d UTC\)\.$/)
  t.equal(sixth.headers['content-security-policy']?.includes("default-src 'none'"), true, 'a page like the others')
  t.equal((await attacker.post('/login', { name: 'Ada', password: PASSWORD })).statusCode, 429, 'even the right password, during the window')
  t.equal(passwords.stats.hashes, before, 'refused before any hashing')

  advanceClock(t, 15 * 60 * 1000 + 1000)
  await attacker.get('/login')
  const later = await attacker.post('/login', { name: 'Ada', password: PASSWORD })
  t.equal(later.statusCode, 303, 'after the window the right password works')
})

test('password guessing: a burst of 40 concurrent guesses gets five checked; the right one after them does not log in', async (t) => {
  const { app } = await portal(t)
  await new Browser(app, 'setup', '10.0.0.9').signUp('Ada')
  const attacker = new Browser(app, 'attacker', '10.0.0.1')
  await attacker.get('/login')
  const guess = async (password: string): Promise<LightMyRequestResponse> => await app.inject({
    method: 'POST',
    url: '/login',
    cookies: attacker.cookies,
    remoteAddress: '10.0.0.1',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ _csrf: attacker.csrf, name: 'Ada', password }).toString()
  })
  const before = passwords.stats.hashes
  const answers = await Promise.all([...Array.from({ length: 39 }, async (_, index) => await guess(`guess number ${index}`)), guess(PASSWORD)])
  t.equal(passwords.stats.hashes - before, 5, 'five passwords checked: the limit')
  const statuses = answers.map((answer) => answer.statusCode)
  t.same([statuses.filter((status) => status === 401).length, statuses.filter((status) => status === 429).length], [5, 35], 'five wrong, 35 refused before hashing')
  const right = answers[39]
  t.equal(right.statusCode, 429, 'the right password after the limit does not log in')
  t.notOk([right.headers['set-cookie']].flat().some((line) => String(line).startsWith('account=')), 'no login cookie')
  t.equal((await new Browser(app, 'ada', '10.0.0.3').logIn('Ada')).statusCode, 429, 'and the name is locked, as after five failures in a row')
})

test('password guessing: what one attacker locks, and what not', async (t) => {
  const { app } = await portal(t)
  await new Browser(app, 'setup', '10.0.0.8').signUp('Ada')
  await new Browser(app, 'setup', '10.0.0.9').signUp('Bob')
  const attacker = new Browser(app, 'attacker', '10.0.0.1')
  await attacker.get('/login')
  for (let guess = 1; guess <= 5; guess++) await attacker.post('/login', { name: 'ada', password: `guess number ${guess}` })

  // Another student, from another address: not locked at all.
  t.equal((await new Browser(app, 'bob', '10.0.0.2').logIn('Bob')).statusCode, 303, 'Bob, elsewhere, logs in')
  // The policy says: five failures lock the name (for everyone, whichever
  // address: the guesser may have many) and the address (for every name).
  t.equal((await new Browser(app, 'ada', '10.0.0.3').logIn('Ada')).statusCode, 429, 'Ada herself waits out the window: the documented trade-off')
  t.equal((await new Browser(app, 'bob at the attacker', '10.0.0.1').logIn('Bob')).statusCode, 429, 'the address is locked for every name')
  // Successes do not count: many log-ins from one address are fine.
  for (let login = 1; login <= 8; login++) {
    t.equal((await new Browser(app, `classroom ${login}`, '10.0.0.4').logIn('Bob')).statusCode, 303, `log-in ${login} from a shared address`)
  }
})

test('password guessing: re-authentication and the password change count too; sign-ups are limited per address', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app, 'laptop', '10.0.0.5')
  await browser.signUp('Ada', PASSWORD, { remember: true })
  browser.restart()
  await browser.get('/reauthenticate')
  for (let guess = 1; guess <= 3; guess++) {
    t.equal((await browser.post('/reauthenticate', { password: `guess number ${guess}` })).statusCode, 401)
  }
  await browser.post('/reauthenticate', { password: PASSWORD })
  await browser.get('/password')
  for (let guess = 4; guess <= 5; guess++) {
    t.equal((await browser.post('/password', { current: `guess number ${guess}`, password: 'a new password', confirm: 'a new password' })).statusCode, 401)
  }
  const refused = await browser.post('/password', { current: PASSWORD, password: 'a new password', confirm: 'a new password' })
  t.equal(refused.statusCode, 429, 'five failures across the three forms')
  browser.restart()
  await browser.get('/reauthenticate')
  t.equal((await browser.post('/reauthenticate', { password: PASSWORD })).statusCode, 429, 're-authentication is refused too')
  t.ok(Number(refused.headers['retry-after']) > 800 && Number(refused.headers['retry-after']) <= 900, 'Retry-After: the rest of the window')

  const visitor = new Browser(app, 'signups', '10.0.0.6')
  for (let signUp = 1; signUp <= 10; signUp++) {
    const response = await visitor.signUp(`Student ${signUp}`)
    t.equal(response.statusCode, 303, `sign-up ${signUp}`)
    await visitor.get('/profile')
    await visitor.post('/logout')
  }
  const eleventh = await visitor.signUp('Student 11')
  t.equal(eleventh.statusCode, 429)
  t.ok(Number(eleventh.headers['retry-after']) > 3500 && Number(eleventh.headers['retry-after']) <= 3600, 'Retry-After: the rest of the hour')
  t.match(errorOf(eleventh), /^Too many sign-ups from your address\. Try again in 60 min/)
  t.equal((await visitor.signUp('')).statusCode, 400, 'a form with mistakes costs nothing and is still answered')
})

test('password checks: at most a few hashes at once, a bounded queue, then 503', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.get('/login')
  passwords.stats.mostRunning = 0
  const attempts = Array.from({ length: passwords.HASH_SLOTS + passwords.HASH_QUEUE + 8 }, (_, index) => app.inject({
    method: 'POST',
    url: '/login',
    cookies: browser.cookies,
    remoteAddress: `10.1.0.${index + 1}`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ _csrf: browser.csrf, name: `nobody ${index}`, password: PASSWORD }).toString()
  }))
  const responses = await Promise.all(attempts)
  const statuses = responses.map((response) => response.statusCode)
  t.equal(passwords.stats.mostRunning, passwords.HASH_SLOTS, 'never more hashes at once than the slots')
  t.equal(statuses.filter((status) => status === 401).length, passwords.HASH_SLOTS + passwords.HASH_QUEUE, 'the slots and the queue are answered')
  t.equal(statuses.filter((status) => status === 503).length, 8, 'the rest at once, with a 503')
  const refused = responses.find((response) => response.statusCode === 503) as LightMyRequestResponse
  t.equal(refused.headers['retry-after'], '1')
  t.equal(errorOf(refused), 'Too many password checks are waiting; try again in a moment.')
})

test('the dummy hash for unknown names is made at start-up, not on the first probe', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.get('/login')
  const before = passwords.stats.hashes
  t.equal((await browser.post('/login', { name: 'Nobody', password: PASSWORD })).statusCode, 401)
  t.equal(passwords.stats.hashes - before, 1, 'one scrypt, as for a known name: nothing built on the way')
})

test('a new CSRF secret at log-in and log-out: a token from before is worth nothing after', async (t) => {
  const { app } = await portal(t)
  await new Browser(app, 'setup').signUp('Ada')
  const browser = new Browser(app)
  await browser.get('/login')
  const before = { secret: browser.jar.get('_csrf')?.value, token: browser.csrf }
  await browser.post('/login', { name: 'Ada', password: PASSWORD })
  t.not(browser.jar.get('_csrf')?.value, before.secret, 'log-in: a new secret')
  // A token planted or learnt before the log-in (login CSRF, a shared computer).
  const stale = await browser.post('/logout', { _csrf: before.token }, { csrf: false })
  t.equal(stale.statusCode, 403)
  await browser.get('/profile')
  const loggedIn = { secret: browser.jar.get('_csrf')?.value, token: browser.csrf }
  t.equal((await browser.post('/logout')).statusCode, 303)
  t.not(browser.jar.get('_csrf')?.value, loggedIn.secret, 'log-out: a new secret')
  await browser.get('/login')
  t.equal((await browser.post('/login', { name: 'Ada', password: PASSWORD, _csrf: loggedIn.token }, { csrf: false })).statusCode, 403)
})

test('served over https: every cookie is Secure and named __Host-, so no neighbour can plant one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portal-https-'))
  const app = await buildApp({ databasePath: join(dir, 'portal.sqlite'), secret: SECRET, https: true, trustProxy: true } as never)
  t.teardown(async () => {
    await app.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const browser = new Browser(app)
  const send = browser.send.bind(browser)
  browser.send = async (method, url, payload, headers) => send(method, url, payload, { 'x-forwarded-proto': 'https', ...headers })
  await browser.signUp('Ada', PASSWORD, { remember: true })
  t.same([...browser.jar.keys()].sort(), ['__Host-account', '__Host-csrf', '__Host-fresh'])
  await browser.get('/profile')
  const logout = await browser.post('/logout')
  const lines = [logout.headers['set-cookie']].flat().map(String)
  t.ok(lines.length >= 3)
  for (const line of lines) {
    t.match(line, /^__Host-/, line)
    t.match(line, /; Secure/, line)
    t.match(line, /; Path=\/(;|$)/, line)
    t.notMatch(line, /Domain=/i, line)
  }
  t.ok(browser.jar.has('__Host-flash'), 'the notice cookie too')
  // A plain `account` or `_csrf` cookie, as a neighbour could plant, is not read.
  browser.jar.set('account', { value: 'planted', persistent: false })
  t.equal(await browser.navigation(), 'Log in · Sign up')
})

test('served over https: a login is bound to its browser where it can; the devices page says so; a copy is turned away, not logged out', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portal-https-'))
  const app = await buildApp({ databasePath: join(dir, 'portal.sqlite'), secret: SECRET, https: true, trustProxy: true } as never)
  t.teardown(async () => {
    await app.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const overHttps = (browser: Browser): Browser => {
    const send = browser.send.bind(browser)
    browser.send = async (method, url, payload, headers) => send(method, url, payload, { 'x-forwarded-proto': 'https', ...headers })
    return browser
  }
  const browser = overHttps(new Browser(app))
  await browser.get('/signup')
  const signedUp = await browser.post('/signup', { name: 'Ada', grade: '7', password: PASSWORD })
  const offer = offerOf(signedUp)
  t.equal(offer?.path, '/device-binding/register', 'the sign-up response offers binding')
  // The browser registers a key, as Chrome does.
  const key = new DbscBrowser()
  const registered = await browser.send('POST', offer?.path as string, undefined, { 'secure-session-response': key.token(offer?.challenge as string, { jwk: true }) })
  t.equal(registered.statusCode, 200)
  t.ok(browser.jar.has('__Host-bound'), 'a bound cookie, __Host- too')
  await browser.followed(signedUp)
  const devices = text((await browser.get('/devices')).body)
  t.match(devices, /Bound to its browser yes: a copy of its cookies works in no other browser/)

  // Its cookies without the bound cookie, in another browser: sent to log
  // in, told why, and not logged out.
  const copy = overHttps(new Browser(app, 'another browser'))
  copy.jar.set('__Host-account', browser.jar.get('__Host-account') as StoredCookie)
  const profile = await copy.visit('/profile')
  t.match(text(profile.body), /This browser could not prove that it is the one you logged in with/)
  t.ok(copy.jar.has('__Host-account'), 'its cookie is left alone')
  t.equal(await browser.navigation(), 'Logged in as Ada · Log out', 'the real browser is still logged in')

  // A browser that registers nothing: its login is not bound, and works.
  const other = overHttps(new Browser(app))
  await other.logIn('Ada')
  t.equal(await other.navigation(), 'Logged in as Ada · Log out')
  t.match(text((await other.get('/devices')).body), /Bound to its browser no/)
})

test('forms report every field error at once, and never echo a value over its limit', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.get('/signup')
  const huge = 'N'.repeat(1_000_000)
  const signUp = await browser.post('/signup', { name: huge, grade: '99', password: 'short' })
  t.equal(signUp.statusCode, 400)
  t.equal(errorOf(signUp), 'Names are at most 64 characters long. | Please choose a grade from 1 to 12. | Passwords need at least 8 characters.')
  t.ok(signUp.body.length < 10000, 'the megabyte of name is not in the page')
  t.match(signUp.body, /name="name" value=""/)

  await browser.get('/login')
  const login = await browser.post('/login', { name: huge, password: '' })
  t.equal(errorOf(login), 'That name is too long (at most 64 characters). | Please enter your password.')
  t.ok(login.body.length < 10000)
  const kept = await browser.post('/login', { name: 'Ada', password: '' })
  t.match(kept.body, 'value="Ada"', 'a value within its limit is kept')
})

test('names that look like another are refused at sign-up', async (t) => {
  const { app, count } = await portal(t)
  await new Browser(app, 'setup').signUp('Ada')
  const visitor = new Browser(app, 'visitor')
  const cases: Array<[string, string]> = [
    ['\u0410da', 'Names cannot mix Latin, Cyrillic and Greek letters.'], // Cyrillic А
    ['Ad\u03b1', 'Names cannot mix Latin, Cyrillic and Greek letters.'], // Greek α
    ['A\u200bda', 'Names cannot contain control characters or invisible characters.'], // zero-width space
    ['Ada\u200d', 'Names cannot contain control characters or invisible characters.'], // zero-width joiner
    ['\u202eadA', 'Names cannot contain control characters or invisible characters.'], // right-to-left override
    ['Ada\u2066x\u2069', 'Names cannot contain control characters or invisible characters.'], // bidi isolate
    ['Ada\u00a0Lovelace', 'Names cannot contain control characters or invisible characters.'], // no-break space
    ['A\tda', 'Names cannot contain control characters or invisible characters.']
  ]
  for (const [name, message] of cases) {
    const response = await visitor.signUp(name)
    t.equal(response.statusCode, 400, JSON.stringify(name))
    t.equal(errorOf(response), message, JSON.stringify(name))
  }
  t.equal(count(), 1)
  for (const name of ['Ада', 'Ἀλέξανδρος', 'José María', "O'Brien-Smith", '李小龍', 'Ada 2']) {
    t.equal((await new Browser(app, name).signUp(name)).statusCode, 303, `${name}: one script is fine`)
  }
  t.equal((await new Browser(app, 'nfd').signUp('Jose\u0301')).statusCode, 303)
  t.equal((await new Browser(app, 'nfc').signUp('Jos\u00e9')).statusCode, 409, 'the same name in another Unicode form is taken')
})

test('security headers on every response, framework errors included', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.get('/login')
  const responses: Array<[string, LightMyRequestResponse]> = [
    ['a page', await browser.get('/')],
    ['a bad URL', await app.inject({ url: '/%E0%A4%A' })],
    ['a body too large', await browser.send('POST', '/login', 'x'.repeat(2 * 1024 * 1024), { 'content-type': 'application/x-www-form-urlencoded' })],
    ['an unsupported type', await browser.send('POST', '/login', '{}', { 'content-type': 'text/csv' })],
    ['not found', await browser.get('/nowhere')]
  ]
  t.equal(responses[1][1].statusCode, 400)
  t.match(responses[1][1].body, /not a valid url/)
  t.equal(responses[2][1].statusCode, 413)
  for (const [label, response] of responses) {
    t.equal(response.headers['x-frame-options'], 'DENY', label)
    t.match(response.headers['content-security-policy'], /frame-ancestors 'none'/, label)
    t.equal(response.headers['x-content-type-options'], 'nosniff', label)
    t.equal(response.headers['referrer-policy'], 'same-origin', label)
    t.equal(response.headers['cache-control'], 'no-store', label)
  }
})

test('a database made by an older portal is brought up to date, its logins kept', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portal-migrate-'))
  const file = join(dir, 'portal.sqlite')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const Writable = require('better-sqlite3') as new (file: string) => { exec (sql: string): void, close (): void }
  const old = new Writable(file)
  old.exec(`CREATE TABLE students (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE CHECK (length(name) BETWEEN 1 AND 64),
    grade INTEGER NOT NULL CHECK (grade BETWEEN 1 AND 12), password_hash TEXT NOT NULL,
    session_version INTEGER NOT NULL DEFAULT 1, api_token_hash TEXT UNIQUE,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))) STRICT;
    INSERT INTO students (name, grade, password_hash, api_token_hash) VALUES ('Ada', 11, 'x', 'an old token hash');
    CREATE TABLE logins (login_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, created_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL, remembered INTEGER NOT NULL, user_agent TEXT NOT NULL, ip TEXT NOT NULL) STRICT;
    INSERT INTO logins VALUES ('an-old-login', '1:1', 1, 1, 4102444800, 1, 'an old browser', '127.0.0.1')`)
  old.close()
  const db = openDatabase(file) as ExampleDb & { logins: LoginStore }
  t.match(db.studentById(1), { name: 'Ada', grade: 11, passwordHash: 'x', sessionVersion: 1, revokedBy: null, apiTokenExpiresAt: null, webauthnUserId: null })
  t.match(db.logins.get('an-old-login', '1:1'), { userAgent: 'an old browser', method: null }, 'the logins table gets its method column')
  db.close()
  const again = openDatabase(file) // once only
  t.match(again.studentById(1), { name: 'Ada' })
  again.close()
})

test('server.js behind an https proxy: PUBLIC_URL', { timeout: 60000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portal-server-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const child = spawn(process.execPath, [join(exampleDir, 'server.js')], {
    env: { ...process.env, EXAMPLE_DB: join(dir, 'portal.sqlite'), PORT: '0', LOGIN_SECRET: SECRET, PUBLIC_URL: 'https://portal.example', OIDC_ISSUER: 'https://id.example', OIDC_CLIENT_ID: 'portal', OIDC_CLIENT_SECRET: 'a secret', OIDC_NAME: 'School ID' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill() })
  let output = ''
  const local = await new Promise<string>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const url = /Listening on: +(http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1]
      if (url !== undefined) resolve(url)
    })
  })
  t.match(output, 'Student portal: https://portal.example\n')
  t.match(output, 'Sign in with:   a password, a passkey or School ID (https://id.example)\n')
  const page = await fetch(`${local}/login`, { headers: { 'x-forwarded-proto': 'https' } })
  t.match(page.headers.getSetCookie().join('\n'), /^__Host-csrf=.*; Secure/)
  const code = await new Promise((resolve) => {
    child.on('exit', resolve)
    child.kill('SIGTERM')
  })
  t.equal(code, 0)
})

test('server.js with EXAMPLE_HTTPS: https on a self-signed certificate made once, and how to trust it', { timeout: 60000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portal-server-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const start = async (): Promise<{ url: string, output: string, child: ChildProcess }> => {
    const child = spawn(process.execPath, [join(exampleDir, 'server.js')], {
      env: { ...process.env, EXAMPLE_DB: join(dir, 'portal.sqlite'), PORT: '0', LOGIN_SECRET: SECRET, EXAMPLE_HTTPS: '1' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    t.teardown(() => { child.kill() })
    let output = ''
    const url = await new Promise<string>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes('trusted certificates')) resolve(/Student portal: (https:\/\/localhost:\d+)/.exec(output)?.[1] as string)
      })
    })
    return { url, output, child }
  }
  const stop = async (child: ChildProcess): Promise<unknown> => await new Promise((resolve) => {
    child.on('exit', resolve)
    child.kill('SIGTERM')
  })
  const first = await start()
  const certificate = readFileSync(join(dir, 'tls-cert.pem'))
  t.equal((statSync(join(dir, 'tls-key.pem')).mode & 0o777), 0o600, 'the key is its owner\'s alone')
  const spki = createHash('sha256').update(new X509Certificate(certificate).publicKey.export({ type: 'spki', format: 'der' })).digest('base64')
  t.match(first.output, `--ignore-certificate-errors-spki-list=${spki}`, 'the pin Chromium needs')
  t.match(first.output, '--enable-features=DeviceBoundSessions,EnableBoundSessionCredentialsSoftwareKeysForManualTesting')
  const page = await new Promise<{ status: number, cookies: string[] }>((resolve, reject) => {
    const url = new URL('/login', first.url)
    httpsGet({ host: '127.0.0.1', port: url.port, path: url.pathname, servername: 'localhost', ca: certificate }, (response) => {
      response.resume()
      resolve({ status: response.statusCode as number, cookies: response.headers['set-cookie'] ?? [] })
    }).on('error', reject)
  })
  t.equal(page.status, 200, 'served over TLS, with the certificate for localhost')
  t.match(page.cookies.join('\n'), /^__Host-csrf=.*; Secure/)
  t.equal(await stop(first.child), 0)
  const second = await start()
  t.same(readFileSync(join(dir, 'tls-cert.pem')), certificate, 'the next start keeps the certificate')
  t.match(second.output, spki)
  t.equal(await stop(second.child), 0)
})

// The example's store, synchronous: the package's LoginStore, each answer a value.
type LoginStore = { [K in keyof PackageStore]-?: NonNullable<PackageStore[K]> extends (...args: infer A) => infer R ? (...args: A) => Exclude<R, Promise<unknown>> : never }

test('login-store.js: the LoginStore interface over SQLite', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portal-store-'))
  const file = join(dir, 'portal.sqlite')
  const db = openDatabase(file) as ExampleDb & { logins: LoginStore }
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = db.logins
  const now = Math.floor(Date.now() / 1000)
  const login = (loginId: string, userId: string, createdAt: number, expiresAt = now + 3600): LoginRecord => ({
    loginId,
    userId,
    createdAt,
    lastSeenAt: createdAt,
    expiresAt,
    remembered: loginId.endsWith('r'),
    userAgent: `browser of ${loginId}`,
    ip: '127.0.0.1',
    method: loginId.endsWith('r') ? 'password' : null,
    authenticatedAt: createdAt,
    generation: 0,
    generationUsedAt: createdAt,
    realm: 'portal',
    deviceKey: null,
    deviceSession: null,
    deviceChallengeAt: 0,
    bound: false
  })
  const heard: unknown[] = []
  store.subscribe?.({ revoked: (ended) => heard.push(...ended), listening: (on) => heard.push(on), heard: (at) => heard.push(at), trustedSince: () => {} })
  t.same(heard, [true, Infinity], 'one process: listening, and every ending heard before delete returns')

  t.equal(store.get('none', '1:1'), null, 'nothing yet')
  t.same(store.list('1:1'), [])
  const { method: _, ...withoutMethod } = login('a', '1:1', now - 30)
  store.create(withoutMethod as LoginRecord) // from a fastify-login that predates `method`
  t.equal(store.get('a', '1:1')?.method, null)
  store.create(login('br', '1:1', now - 20))
  store.create(login('c', '1:1', now - 10))
  store.create(login('d', '2:1', now - 5))
  t.same(store.get('br', '1:1'), login('br', '1:1', now - 20), 'a record comes back as it went in, booleans and nulls included')
  t.equal(store.get('br', '2:1'), null, 'only under its own user')
  t.same(store.list('1:1').map((record) => record.loginId), ['c', 'br', 'a'], 'newest first')

  store.touch('a', now, '1:1')
  t.equal(store.get('a', '1:1')?.lastSeenAt, now)
  store.touch('a', now - 20, '1:1', now + 1)
  t.equal(store.get('a', '1:1')?.lastSeenAt, now, 'never moved back')
  t.equal(store.get('a', '1:1')?.expiresAt, now + 3600, 'nor the expiry')
  store.touch('a', now, '1:1', now + 7200)
  t.equal(store.get('a', '1:1')?.expiresAt, now + 7200, 'a sliding expiry moves forward')
  store.touch('a', now + 5, '2:1')
  t.equal(store.get('a', '1:1')?.lastSeenAt, now, 'touch under another user does nothing')

  t.equal(store.advanceGeneration?.('c', '1:1', 1, now, '1 7'), true, 'a newer generation used')
  t.match(store.get('c', '1:1'), { generation: 1, generationUsedAt: now, generationCookie: '1 7' })
  t.equal(store.advanceGeneration?.('c', '1:1', 1, now + 9, '1 8'), false, 'not twice')
  t.equal(store.advanceGeneration?.('c', '2:1', 2, now, '2 8'), false, 'not for another user')
  t.match(store.get('c', '1:1'), { generationUsedAt: now, generationCookie: '1 7' }, 'the first use, and the cookie used, are kept')
  t.equal(store.advanceGeneration?.('c', '1:1', 2, now + 1), true, 'a caller that does not say which cookie')
  t.equal(store.get('c', '1:1')?.generationCookie, undefined, 'keeps none')

  // Device binding: a key once, each challenge once, only the user's own login.
  t.equal(store.bind?.('c', '2:1', '{"k":1}', 's'), false, 'not for another user')
  t.equal(store.bind?.('c', '1:1', '{"k":1}', 's'), true)
  t.equal(store.bind?.('c', '1:1', '{"k":2}', 't'), false, 'once')
  t.match(store.get('c', '1:1'), { deviceKey: '{"k":1}', deviceSession: 's', deviceChallengeAt: 0, bound: true })
  t.equal(store.useChallenge?.('c', '1:1', 1000), true)
  t.equal(store.useChallenge?.('c', '1:1', 1000), false, 'each challenge once')
  t.equal(store.useChallenge?.('c', '1:1', 999), false, 'never an older one')
  t.equal(store.useChallenge?.('c', '2:1', 2000), false, 'not for another user')
  t.equal(store.get('c', '1:1')?.deviceChallengeAt, 1000)

  t.equal(store.delete('a', '1:1'), true)
  t.match(heard.at(-1), { loginId: 'a', userId: '1:1', expiresAt: now + 7200 }, 'the ending told, with when it would have expired')
  t.equal(store.delete('a', '1:1'), false, 'gone')
  t.equal(store.get('a', '1:1'), null)
  t.equal(store.delete('d', '1:1'), false, 'not another user\'s')
  t.same(store.list('2:1').map((record) => record.loginId), ['d'], 'other users keep theirs')

  const realm = store.realm?.(['tag-1'])
  t.match(realm, /^[A-Za-z0-9_-]{16}$/, 'a new realm id')
  t.equal(store.realm?.(['tag-2', 'tag-1']), realm, 'found under a tag it knows, and the new tag joins it')
  t.equal(store.realm?.(['tag-2']), realm)
  t.not(store.realm?.(['tag-3']), realm, 'another app\'s secret: another realm')

  // Expired: invisible at once, and deleted as new logins come.
  store.create(login('old', '3:1', now - 100, now - 1))
  t.equal(store.get('old', '3:1'), null, 'an expired login is no login')
  t.same(store.list('3:1'), [])
  store.create(login('new', '3:1', now))
  db.close()
  const raw = new Database(file, { readonly: true })
  t.same(raw.prepare('SELECT login_id FROM logins ORDER BY login_id').all(), [{ login_id: 'br' }, { login_id: 'c' }, { login_id: 'd' }, { login_id: 'new' }], 'the expired row is gone from the file')
  t.same(raw.prepare('SELECT login_id FROM ended_logins').all(), [{ login_id: 'a' }], 'the ended login, until it would have expired')
  raw.close()

  // A restart reads the ended logins back.
  const again = openDatabase(file) as ExampleDb & { logins: LoginStore }
  const after: unknown[] = []
  again.logins.subscribe?.({ revoked: (ended) => after.push(...ended), listening: () => {}, heard: () => {}, trustedSince: () => {} })
  t.match(after, [{ loginId: 'a', userId: '1:1' }])
  again.close()
})

test('login-store.js: a database of the first version gets the new columns', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portal-store-'))
  const file = join(dir, 'portal.sqlite')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const old = new Database(file) as RawDatabase & { exec (sql: string): void }
  old.exec(`CREATE TABLE logins (login_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, created_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL, remembered INTEGER NOT NULL, user_agent TEXT NOT NULL, ip TEXT NOT NULL) STRICT;
    INSERT INTO logins VALUES ('x', '1:1', 1, 1, 99999999999, 1, 'ua', '127.0.0.1')`)
  old.close()
  const db = openDatabase(file) as ExampleDb & { logins: LoginStore }
  t.same(db.logins.get('x', '1:1'), { loginId: 'x', userId: '1:1', createdAt: 1, lastSeenAt: 1, expiresAt: 99999999999, remembered: true, userAgent: 'ua', ip: '127.0.0.1', method: null, generation: 0, deviceKey: null, deviceSession: null, deviceChallengeAt: 0, bound: false },
    'an old row: the plugin reads what it lacks as its defaults')
  db.close()
})

test('cross-origin form posts are refused on every state-changing route, CSRF token or not', async (t) => {
  const { app, rows } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada')
  const before = rows()
  // What a browser sends for a form posted from another port of 127.0.0.1
  // (same site, other origin), from another site, and from an old browser
  // that sends only Origin.
  const foreign: Array<Record<string, string>> = [
    { 'sec-fetch-site': 'same-site', origin: 'http://127.0.0.1:8081' },
    { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' },
    { origin: 'http://127.0.0.1:8081' },
    { origin: 'null' }
  ]
  const forms: Array<[string, Record<string, string>]> = [
    ['/password', { current: PASSWORD, password: 'owned by mallory', confirm: 'owned by mallory' }],
    ['/logout-everywhere', {}],
    ['/api-token', {}],
    ['/reauthenticate', { password: PASSWORD }],
    ['/logout', {}]
  ]
  await browser.get('/profile')
  for (const [url, fields] of forms) {
    for (const headers of foreign) {
      const response = await browser.post(url, fields, { headers })
      t.equal(response.statusCode, 403, `${url} ${JSON.stringify(headers)}`)
      t.equal(response.body, 'Cross-origin request refused.')
      t.equal(response.headers['x-frame-options'], 'DENY', 'with the security headers')
    }
  }
  t.same(rows(), before, 'nothing changed')
  t.equal(await browser.navigation(), 'Logged in as Ada · Log out', 'still logged in')

  const visitor = new Browser(app, 'visitor')
  await visitor.get('/login')
  for (const headers of foreign) {
    t.equal((await visitor.post('/login', { name: 'Ada', password: PASSWORD }, { headers })).statusCode, 403, `login CSRF ${JSON.stringify(headers)}`)
    t.equal((await visitor.post('/signup', { name: 'Eve', grade: '3', password: PASSWORD }, { headers })).statusCode, 403, `sign-up ${JSON.stringify(headers)}`)
  }
  t.equal(await visitor.navigation(), 'Log in · Sign up')
  t.equal(rows().length, 1)

  // The portal's own pages, a typed address, and clients without either header pass.
  const own: Array<Record<string, string>> = [{ 'sec-fetch-site': 'same-origin', origin: 'http://localhost:80' }, { 'sec-fetch-site': 'none' }, { host: '127.0.0.1:3000', origin: 'http://127.0.0.1:3000' }, {}]
  for (const headers of own) {
    const page = new Browser(app, JSON.stringify(headers))
    await page.get('/login')
    t.equal((await page.post('/login', { name: 'Ada', password: PASSWORD }, { headers })).statusCode, 303, JSON.stringify(headers))
  }
  // Page loads are never refused, wherever the link was.
  t.equal((await browser.get('/profile', { 'sec-fetch-site': 'cross-site' })).statusCode, 200)
})

function loginIdsOn (page: LightMyRequestResponse): string[] {
  return [...page.body.matchAll(/name="login" value="([^"]+)"/g)].map((match) => match[1])
}

test('your devices: every live login, this one marked; log out another; log-out ends the login on the server', async (t) => {
  const { app, file } = await portal(t)
  const laptop = new Browser(app, 'Laptop <b>Firefox</b>', '10.0.0.1')
  await laptop.signUp('Ada', PASSWORD, { remember: true })
  const phone = new Browser(app, 'Phone Safari', '10.0.0.2')
  await phone.logIn('Ada')
  const stolen = new Map(phone.jar)
  await new Browser(app, 'Bob browser', '10.0.0.3').signUp('Bob')

  const page = await laptop.get('/devices')
  t.equal(page.statusCode, 200)
  const shown = text(page.body)
  t.match(shown, 'Phone Safari Address 10.0.0.2 Logged in')
  t.match(shown, 'Laptop &lt;b&gt;Firefox&lt;/b&gt; (this device) Address 10.0.0.1')
  t.match(page.body, 'Laptop &lt;b&gt;Firefox&lt;/b&gt;', 'a user agent is text, never markup')
  t.match(shown, /Last used \d{4}-\d\d-\d\d \d\d:\d\d UTC/)
  t.match(shown, 'Remembered yes')
  t.match(shown, 'Remembered no, until the browser closes')
  t.notMatch(shown, 'Bob browser', "only the student's own logins")
  const [phoneLogin] = loginIdsOn(page)
  t.equal(loginIdsOn(page).length, 1, 'a button for the other device, none for this one')

  const revoked = await laptop.post('/devices', { login: phoneLogin })
  t.equal(revoked.statusCode, 303)
  t.equal(revoked.headers.location, '/devices')
  const after = await laptop.get('/devices')
  t.equal(noticeOf(after), 'That device was logged out.')
  t.equal(loginIdsOn(after).length, 0)
  t.equal((await laptop.post('/devices', { login: phoneLogin })).statusCode, 303)
  t.equal(noticeOf(await laptop.get('/devices')), 'That device was already logged out.')

  // The phone, on its next page load, is logged out and told why.
  const refused = await phone.get('/profile')
  t.equal(refused.statusCode, 307)
  t.notOk(phone.jar.has('account'), 'its dead cookie is cleared')
  t.equal(noticeOf(await phone.get(refused.headers.location as string)),
    'Your login on this device has ended: it was logged out from another device, or it expired. Log in again.')
  phone.jar = stolen
  t.equal(await phone.navigation(), 'Log in · Sign up', 'so is any copy of its cookies')

  // Log-out ends the login on the server: a copy taken before is worth nothing.
  const tablet = new Browser(app, 'Tablet', '10.0.0.4')
  await tablet.logIn('Ada')
  const copy = new Map(tablet.jar)
  await tablet.post('/logout')
  const thief = new Browser(app, 'Tablet', '10.0.0.4')
  thief.jar = copy
  t.equal(await thief.navigation(), 'Log in · Sign up', 'the copy of a logged-out cookie is anonymous')
  t.equal(loginIdsOn(await laptop.get('/devices')).length, 0, 'and the tablet is gone from the list')

  // The logins are rows of the portal's database.
  const raw = new Database(file, { readonly: true })
  t.teardown(() => raw.close())
  t.equal((raw.prepare("SELECT count(*) AS n FROM logins WHERE user_id = '1:1'").get() as { n: number }).n, 1, 'the laptop only')
})

test('your devices: a post without a device is a 400 that says so, not a server error', async (t) => {
  const { app } = await portal(t)
  const laptop = new Browser(app)
  await laptop.signUp('Ada')
  await laptop.get('/devices')
  for (const fields of [{}, { login: '' }, { login: ['a', 'b'] }] as Array<Record<string, string | string[]>>) {
    const response = await laptop.post('/devices', fields)
    t.equal(response.statusCode, 400, JSON.stringify(fields))
    t.equal(errorOf(response), 'Choose the device to log out.')
  }
  t.equal(await laptop.navigation(), 'Logged in as Ada · Log out', 'still logged in')
})

test('your devices: ending another login needs a fresh login, and only ends your own', async (t) => {
  const { app } = await portal(t)
  const laptop = new Browser(app, 'laptop')
  await laptop.signUp('Ada', PASSWORD, { remember: true })
  const phone = new Browser(app, 'phone')
  await phone.logIn('Ada')
  const bob = new Browser(app, 'bob')
  await bob.signUp('Bob')
  const bobLogin = loginIdsOn(await new Browser(app, 'bob 2').logIn('Bob').then(async () => bob.get('/devices')))[0]
  t.ok(bobLogin)

  laptop.restart()
  const page = await laptop.get('/devices')
  t.equal(page.statusCode, 200, 'a remembered login may look')
  const stale = await laptop.post('/devices', { login: loginIdsOn(page)[0] })
  t.equal(stale.headers.location, '/reauthenticate?next=%2Fdevices', 'but not end another')
  await laptop.get(stale.headers.location as string)
  const confirmed = await laptop.post('/reauthenticate', { password: PASSWORD, next: '/devices' })
  t.equal((await laptop.visit(confirmed.headers.location as string)).statusCode, 200, 'and comes back to the list')
  t.equal(await phone.navigation(), 'Logged in as Ada · Log out', 'the phone is still logged in')

  t.equal((await laptop.post('/devices', { login: bobLogin })).statusCode, 303)
  t.equal(noticeOf(await laptop.get('/devices')), 'That device was already logged out.', "another student's login is not found")
  t.equal(await bob.navigation(), 'Logged in as Bob · Log out')
})

test('a login used from two places is ended, and the browser that brought the older copy is told', async (t) => {
  const { app } = await portal(t)
  const realNow = Date.now
  let offset = 0
  Date.now = () => realNow() + offset
  t.teardown(() => { Date.now = realNow })
  const reused: LoginRecord[] = []
  app.loginManager.on('loginReuseDetected', (_request, record) => { reused.push(record) })

  // The thief's copy is used first: the laptop comes back with the older cookie.
  const laptop = new Browser(app, 'Laptop <b>Firefox</b>', '10.0.0.1')
  await laptop.signUp('Ada', PASSWORD, { remember: true })
  const thief = new Browser(app, 'curl', '203.0.113.9')
  thief.jar = new Map(laptop.jar)
  offset += 601_000 // the cookie is re-issued every ten minutes
  t.equal((await thief.get('/profile')).statusCode, 200, 'the copy gets the next generation')
  t.equal(await thief.navigation(), 'Logged in as Ada · Log out', 'and uses it')
  offset += 61_000 // more than the minute of grace
  const refused = await laptop.get('/profile')
  t.equal(refused.statusCode, 307)
  t.equal(refused.headers.location, '/login?next=%2Fprofile')
  t.notOk(laptop.jar.has('account'), 'its cookie is cleared')
  t.equal(noticeOf(await laptop.get(refused.headers.location as string)),
    'Your login on “Laptop &lt;b&gt;Firefox&lt;/b&gt;” was ended because it was used from two places: someone may have had a copy of it. Log in again, and if you did not expect this, change your password.')
  t.match(reused, [{ userAgent: 'Laptop <b>Firefox</b>', ip: '10.0.0.1' }], 'loginReuseDetected, once')
  const stolen = new Map(thief.jar)
  t.equal((await thief.get('/profile')).statusCode, 307, 'the copy is ended too')
  t.equal(noticeOf(await thief.get('/login')), 'Your login on this device has ended: it was logged out from another device, or it expired. Log in again.')
  t.equal(reused.length, 1)
  await laptop.logIn('Ada')
  t.equal(await laptop.navigation(), 'Logged in as Ada · Log out', 'the owner logs in again with the password')
  thief.jar = stolen
  t.equal(await thief.navigation(), 'Log in · Sign up', 'a new login, which the copy is not part of')

  // The owner moves on first; the copy comes back on the home page, which has
  // no guard. The phone sent no user agent.
  const phone = new Browser(app, '', '10.0.0.2')
  await phone.logIn('Ada', PASSWORD, { remember: true })
  const copy = new Browser(app, 'curl', '203.0.113.9')
  copy.jar = new Map(phone.jar)
  offset += 601_000
  await phone.get('/profile')
  t.equal((await phone.get('/profile')).statusCode, 200)
  offset += 61_000
  const home = await copy.get('/')
  t.equal(home.statusCode, 200)
  t.equal(noticeOf(home), 'Your login on “Unknown browser” was ended because it was used from two places: someone may have had a copy of it. Log in again, and if you did not expect this, change your password.', 'said on the page itself')
  t.notOk(copy.jar.has('account'), 'and the copy cleared')
  t.equal(await phone.navigation(), 'Log in · Sign up', 'the phone is logged out')
  t.equal(reused.length, 2)
  t.equal(noticeOf(await copy.get('/')), undefined, 'once')
})

test('server.js with REDIS_URL: the logins live in Redis, and log-out ends them there', { timeout: 60000 }, async (t) => {
  const redis = await startRedis(t)
  const dir = mkdtempSync(join(tmpdir(), 'portal-server-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const running = await startServer(t, { EXAMPLE_DB: join(dir, 'portal.sqlite'), PORT: '0', LOGIN_SECRET: SECRET, REDIS_URL: `redis://127.0.0.1:${redis.port}` })
  t.match(running.output(), `Logins kept in: redis://127.0.0.1:${redis.port}`)
  // A user's keys: their logins and the index of them (the realm and epoch keys are the app's).
  const keys = async (): Promise<string> => rawCommand(redis.port, 'KEYS fastify-login:{u:*')
  t.notMatch(await keys(), 'fastify-login:', 'no login yet')

  const loginPage = await fetch(`${running.url}/login`)
  let cookies = cookieHeader(loginPage)
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await loginPage.text())?.[1] as string
  const login = await fetch(`${running.url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: cookies, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: csrf, name: DEMO_STUDENT.name, password: DEMO_STUDENT.password })
  })
  t.equal(login.status, 303)
  cookies = cookieHeader(login, cookies)
  t.match(await keys(), 'fastify-login:', 'the login is a record in Redis')
  const devices = await fetch(`${running.url}/devices`, { headers: { cookie: cookies }, redirect: 'manual' })
  t.equal(devices.status, 200)
  const page = await devices.text()
  t.match(page, '(this device)')
  const token = /name="_csrf" value="([^"]+)"/.exec(page)?.[1] as string
  const logout = await fetch(`${running.url}/logout`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: cookieHeader(devices, cookies), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: token })
  })
  t.equal(logout.status, 303)
  const copy = await fetch(`${running.url}/profile`, { headers: { cookie: cookies }, redirect: 'manual' })
  t.equal(copy.status, 307, 'a copy of the logged-out cookie is anonymous')
  t.equal(await stopServer(running), 0, 'SIGTERM closes the app and its Redis client')
})

// Passkeys, through inject: the answers a browser's authenticator would
// give come from a software authenticator with real keys (node:crypto).
const ORIGIN = 'http://localhost' // what inject's Host, localhost:80, makes

interface PasskeyRow { credential_id: string, student_id: number, counter: number, transports: string }

function passkeyRows (file: string): PasskeyRow[] {
  const raw = new Database(file, { readonly: true })
  try {
    return raw.prepare('SELECT * FROM passkeys ORDER BY rowid').all() as PasskeyRow[]
  } finally {
    raw.close()
  }
}

// The options of a ceremony, as public/passkeys.js asks for them.
async function ceremonyOptions (browser: Browser, url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return browser.send('POST', url, undefined, { 'x-csrf-token': browser.csrf, accept: 'application/json', ...headers })
}

// Signs up (a fresh login) and adds a passkey on the profile.
async function withPasskey (browser: Browser, name: string, authenticator = new SoftwareAuthenticator(ORIGIN)): Promise<SoftwareAuthenticator> {
  await browser.signUp(name, PASSWORD)
  await browser.get('/profile')
  const options = (await ceremonyOptions(browser, '/passkeys/options')).json()
  const added = await browser.post('/passkeys', { credential: authenticator.register(options).json })
  if (added.headers.location !== '/profile') throw new Error(`no passkey added: ${added.statusCode} ${errorOf(added)}`)
  return authenticator
}

async function passkeyLogIn (browser: Browser, authenticator: SoftwareAuthenticator, fields: Record<string, string> = {}, tampering: Tampering = {}): Promise<LightMyRequestResponse> {
  await browser.get('/login')
  const options = (await ceremonyOptions(browser, '/login/passkey/options')).json()
  return browser.post('/login/passkey', { credential: authenticator.answer(options, undefined, tampering), ...fields })
}

test('passkeys: add one on the profile, log in with it without a password, confirm a login with it, remove it', async (t) => {
  const { app, file } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada', PASSWORD)
  const profile = await browser.get('/profile')
  t.match(profile.body, '<form method="post" action="/passkeys" data-passkey="register" data-options="/passkeys/options">')
  t.match(profile.body, '<script src="/passkeys.js" defer></script>')
  t.match(profile.headers['content-security-policy'], "script-src 'self'; connect-src 'self'", 'the script may run, and fetch the options')
  const script = await browser.get('/passkeys.js')
  t.equal(script.statusCode, 200)
  t.match(script.headers['content-type'], /^text\/javascript/)
  t.match(script.body, 'navigator.credentials.create')

  const asked = await ceremonyOptions(browser, '/passkeys/options')
  t.equal(asked.statusCode, 200)
  const options = asked.json()
  t.match(options, { rp: { id: 'localhost', name: 'Student portal' }, user: { name: 'Ada' }, attestation: 'none', authenticatorSelection: { residentKey: 'required', userVerification: 'required' }, excludeCredentials: [] })
  t.match(asked.headers['set-cookie'], /^passkey-flow=[^;]+; Max-Age=300; Path=\/; HttpOnly; SameSite=Strict$/, 'the challenge waits in a signed, strict, short-lived cookie')
  t.notMatch(asked.headers['set-cookie'], options.challenge, 'signed, not readable as the challenge alone') // base64url of JSON
  const authenticator = new SoftwareAuthenticator(ORIGIN)
  const { json, passkey } = authenticator.register(options)
  const added = await browser.post('/passkeys', { credential: json })
  t.equal(added.statusCode, 303)
  t.equal(added.headers.location, '/profile')
  const withOne = await browser.get('/profile')
  t.equal(noticeOf(withOne), 'Your passkey was added. You can now log in with it, without your password.')
  t.match(text(withOne.body), /Passkey added \d{4}-\d\d-\d\d \d\d:\d\d UTC Remove/)
  t.match(passkeyRows(file), [{ credential_id: passkey.id, student_id: 1, counter: 0, transports: '["internal"]' }])
  const again = (await ceremonyOptions(browser, '/passkeys/options')).json()
  t.same(again.excludeCredentials, [{ id: passkey.id, type: 'public-key', transports: ['internal'] }], 'the authenticator is told which passkey is here already')
  t.equal(again.user.id, options.user.id, 'one user handle per student')
  await browser.post('/logout')

  // Log in: no name, no password; the authenticator knows whose passkey it is.
  const visitor = new Browser(app, 'a phone')
  const login = await visitor.get('/login?next=%2Fdevices')
  t.match(login.body, 'data-passkey="sign-in" data-options="/login/passkey/options" data-remember-from="password-login"')
  t.match(login.body, 'Log in with a passkey')
  const signIn = await ceremonyOptions(visitor, '/login/passkey/options')
  t.match(signIn.json(), { rpId: 'localhost', userVerification: 'required' })
  t.notOk('allowCredentials' in signIn.json() && signIn.json().allowCredentials.length > 0, 'no list of passkeys: they are discoverable')
  const loggedIn = await visitor.post('/login/passkey', { credential: authenticator.answer(signIn.json()), remember: 'yes', next: '/devices' })
  t.equal(loggedIn.statusCode, 303)
  t.equal(loggedIn.headers.location, '/devices', 'back to the page that was asked for')
  t.ok(visitor.jar.get('account')?.persistent, '"remember me" came along')
  t.equal(await visitor.navigation(), 'Logged in as Ada · Log out')
  t.match(passkeyRows(file), [{ counter: 1 }], 'its counter moved on')
  t.match(text((await visitor.get('/devices')).body), 'signed in with a passkey', 'the login says how it was made')

  // Confirm a remembered login with the passkey: fresh again.
  visitor.restart()
  const refused = await visitor.get('/password')
  t.equal(refused.headers.location, '/reauthenticate?next=%2Fpassword')
  const confirmPage = await visitor.get(refused.headers.location as string)
  t.match(confirmPage.body, 'data-passkey="confirm" data-options="/reauthenticate/passkey/options"')
  t.match(confirmPage.body, 'Continue with a passkey')
  const confirmOptions = (await ceremonyOptions(visitor, '/reauthenticate/passkey/options')).json()
  t.same(confirmOptions.allowCredentials, [{ id: passkey.id, type: 'public-key', transports: ['internal'] }], "only the student's own passkeys")
  const confirmed = await visitor.post('/reauthenticate/passkey', { credential: authenticator.answer(confirmOptions), next: '/password' })
  t.equal(confirmed.statusCode, 303)
  t.equal(confirmed.headers.location, '/password')
  t.equal((await visitor.get('/password')).statusCode, 200, 'fresh again')

  // Remove it: it logs nobody in any more.
  const removed = await visitor.post('/passkeys/delete', { passkey: passkey.id })
  t.equal(removed.headers.location, '/profile')
  t.equal(noticeOf(await visitor.get('/profile')), 'That passkey was removed: it no longer logs you in.')
  await visitor.post('/passkeys/delete', { passkey: passkey.id })
  t.equal(noticeOf(await visitor.get('/profile')), 'That passkey was already removed.')
  t.same(passkeyRows(file), [])
  const stranger = new Browser(app, 'stranger')
  const gone = await passkeyLogIn(stranger, authenticator)
  t.equal(gone.statusCode, 401)
  t.equal(errorOf(gone), 'That passkey was not accepted.')
})

// A clock the test moves on, as often as it needs (rate-limit windows, flow expiry).
function controlledClock (t: Test): { advance (ms: number): void } {
  const realNow = Date.now
  let offset = 0
  Date.now = () => realNow() + offset
  t.teardown(() => { Date.now = realNow })
  return { advance (ms) { offset += ms } }
}

// Past the window of the attempt limits: each refusal below starts from none.
const PAST_THE_WINDOW = 16 * 60 * 1000

test('passkeys: every wrong answer is refused with a clear page, no login, never a 5xx', async (t) => {
  const { app, file } = await portal(t)
  const clock = controlledClock(t)
  const authenticator = await withPasskey(new Browser(app, 'setup'), 'Ada')
  const bob = await withPasskey(new Browser(app, 'bob'), 'Bob')
  const visitor = new Browser(app, 'visitor', '10.0.0.7')
  const cases: Array<[string, Tampering, string]> = [
    ['another origin (a page on another port of localhost)', { origin: 'http://localhost:8081' }, 'That passkey was not accepted.'],
    ['another challenge', { challenge: 'AAAA' }, 'That passkey was not accepted.'],
    ['a registration answer', { type: 'webauthn.create' }, 'That passkey was not accepted.'],
    ['no user verification', { userVerified: false }, 'That passkey was not accepted.'],
    ["another student's user handle", { userHandle: bob.passkeys[0].userHandle }, 'That passkey was not accepted.']
  ]
  for (const [label, tampering, message] of cases) {
    clock.advance(PAST_THE_WINDOW)
    const response = await passkeyLogIn(visitor, authenticator, {}, tampering)
    t.equal(response.statusCode, 401, label)
    t.equal(errorOf(response), message, label)
    t.notOk(visitor.jar.has('account'), `${label}: no login`)
  }
  t.equal(passkeyRows(file)[0].counter, 0, 'no refused answer moved the counter')

  // Answers that are not answers.
  for (const credential of ['', 'not json', '{}', '{"id":"x","response":{}}', JSON.stringify({ id: 'unknown', response: {} }), 'x'.repeat(17 * 1024)]) {
    clock.advance(PAST_THE_WINDOW)
    await visitor.get('/login')
    await ceremonyOptions(visitor, '/login/passkey/options')
    const response = await visitor.post('/login/passkey', { credential })
    t.equal(response.statusCode, 401, credential.slice(0, 30))
    t.equal(errorOf(response), 'That passkey was not accepted.')
  }

  // The flow cookie: missing, replayed, of another ceremony, expired, forged.
  clock.advance(PAST_THE_WINDOW)
  await visitor.get('/login')
  const options = (await ceremonyOptions(visitor, '/login/passkey/options')).json()
  const answer = authenticator.answer(options)
  const copy = new Map(visitor.jar)
  visitor.jar.delete('passkey-flow')
  const missing = await visitor.post('/login/passkey', { credential: answer })
  t.equal(missing.statusCode, 400)
  t.equal(errorOf(missing), 'This sign-in did not start in this browser, or it was already finished. Start again.')
  visitor.jar = new Map(copy)
  t.equal((await visitor.post('/login/passkey', { credential: answer })).statusCode, 303, 'the answer works once')
  await visitor.get('/profile')
  await visitor.post('/logout')
  const replayer = new Browser(app, 'visitor', '10.0.0.7')
  replayer.jar = new Map(copy)
  await replayer.get('/login')
  replayer.jar.set('passkey-flow', copy.get('passkey-flow') as StoredCookie)
  const replayed = await replayer.post('/login/passkey', { credential: answer })
  t.equal(replayed.statusCode, 400)
  t.equal(errorOf(replayed), 'This sign-in was already used. Start again.', 'a replayed answer and its cookie are refused')
  t.ok(passkeyRows(file)[0].counter > 1)
  clock.advance(PAST_THE_WINDOW)
  const cloned = await passkeyLogIn(new Browser(app, 'clone'), authenticator, {}, { counter: 1 })
  t.equal(cloned.statusCode, 401, 'a counter that went back (a cloned authenticator)')
  const withoutHandle = await passkeyLogIn(new Browser(app, 'no handle'), authenticator, {}, { userHandle: null, counter: 1000 })
  t.equal(withoutHandle.statusCode, 303, 'an answer without a user handle is checked against the passkey alone')

  const ada = new Browser(app, 'ada')
  await ada.logIn('Ada')
  const registration = await ceremonyOptions(ada, '/passkeys/options')
  const crossFlow = new Browser(app, 'cross')
  await crossFlow.get('/login')
  crossFlow.jar.set('passkey-flow', ada.jar.get('passkey-flow') as StoredCookie)
  const crossed = await crossFlow.post('/login/passkey', { credential: authenticator.answer({ challenge: registration.json().challenge, rpId: 'localhost' }) })
  t.equal(crossed.statusCode, 400, 'a registration challenge cannot finish a sign-in')
  t.equal(errorOf(crossed), 'This sign-in did not start in this browser, or it was already finished. Start again.')

  for (const value of ['forged', app.signCookie('not base64url json'), app.signCookie(Buffer.from('"a string"').toString('base64url'))]) {
    await visitor.get('/login')
    visitor.jar.set('passkey-flow', { value, persistent: false })
    t.equal((await visitor.post('/login/passkey', { credential: answer })).statusCode, 400, value)
  }

  await visitor.get('/login')
  const late = (await ceremonyOptions(visitor, '/login/passkey/options')).json()
  clock.advance(301 * 1000)
  const expired = await visitor.post('/login/passkey', { credential: authenticator.answer(late) })
  t.equal(expired.statusCode, 400)
  t.equal(errorOf(expired), 'This sign-in took too long. Start again.')
  t.notOk(visitor.jar.has('account'))
})

test('passkeys: registration and re-authentication refuse what is not the student\'s own', async (t) => {
  const { app, file } = await portal(t)
  const ada = new Browser(app, 'ada')
  const authenticator = await withPasskey(ada, 'Ada')
  const bob = new Browser(app, 'bob')
  const bobs = await withPasskey(bob, 'Bob')

  // Registration: a wrong answer, the same passkey twice, a flow of another student.
  const options = (await ceremonyOptions(ada, '/passkeys/options')).json()
  const wrong = await ada.post('/passkeys', { credential: authenticator.register(options, { origin: 'http://localhost:8081' }).json })
  t.equal(wrong.statusCode, 400)
  t.equal(errorOf(wrong), 'That passkey was not accepted. Try again.')
  t.match(text(wrong.body), 'Passkeys', 'on the profile')
  const forgedAttestation = (await ceremonyOptions(ada, '/passkeys/options')).json()
  const unverified = await ada.post('/passkeys', { credential: authenticator.register(forgedAttestation, { badAttestation: true }).json })
  t.equal(unverified.statusCode, 400, 'an attestation whose signature does not verify')
  const firstOptions = (await ceremonyOptions(ada, '/passkeys/options')).json()
  const adaAnswer = JSON.parse(new SoftwareAuthenticator(ORIGIN).register(firstOptions).json)
  t.equal((await ada.post('/passkeys', { credential: JSON.stringify(adaAnswer) })).statusCode, 303)
  const duplicate = await ada.post('/passkeys', { credential: JSON.stringify(adaAnswer) })
  t.equal(duplicate.statusCode, 400, 'the same answer again: its challenge is used')
  t.equal(passkeyRows(file).length, 3)

  const bobOptions = (await ceremonyOptions(bob, '/passkeys/options')).json()
  ada.jar.set('passkey-flow', bob.jar.get('passkey-flow') as StoredCookie)
  const foreign = await ada.post('/passkeys', { credential: authenticator.register(bobOptions).json })
  t.equal(foreign.statusCode, 400, "a ceremony started by Bob's login cannot add a passkey to Ada")
  t.equal(passkeyRows(file).filter((row) => row.student_id === 1).length, 2)

  // An authenticator that registers a passkey the portal already has (a replayed attestation).
  const reused = new SoftwareAuthenticator(ORIGIN)
  const one = (await ceremonyOptions(ada, '/passkeys/options')).json()
  const made = reused.register(one)
  t.equal((await ada.post('/passkeys', { credential: made.json })).statusCode, 303)
  const two = (await ceremonyOptions(bob, '/passkeys/options')).json()
  const sameKey = JSON.parse(made.json)
  const fresh = JSON.parse(reused.register(two).json)
  // The new attestation, with the credential id already registered to Ada.
  const attestation = Buffer.from(fresh.response.attestationObject, 'base64url')
  const at = attestation.indexOf(Buffer.from(fresh.id, 'base64url'))
  Buffer.from(sameKey.id, 'base64url').copy(attestation, at)
  const clash = await bob.post('/passkeys', { credential: JSON.stringify({ ...fresh, id: sameKey.id, rawId: sameKey.id, response: { ...fresh.response, attestationObject: attestation.toString('base64url') } }) })
  t.equal(clash.statusCode, 409)
  t.equal(errorOf(clash), 'That passkey is already registered.')

  // Re-authentication: only with one's own passkey, only in the ceremony one started.
  await ada.get('/reauthenticate')
  const confirm = (await ceremonyOptions(ada, '/reauthenticate/passkey/options')).json()
  const withBobs = await ada.post('/reauthenticate/passkey', { credential: bobs.answer({ ...confirm }, bobs.passkeys[0]) })
  t.equal(withBobs.statusCode, 401, "Bob's passkey does not confirm Ada's login")
  t.equal(errorOf(withBobs), 'That passkey was not accepted.')
  t.match(withBobs.body, 'Confirm it is you')
  await ada.get('/reauthenticate')
  const started = (await ceremonyOptions(ada, '/reauthenticate/passkey/options')).json()
  const flow = ada.jar.get('passkey-flow') as StoredCookie
  await bob.get('/reauthenticate')
  bob.jar.set('passkey-flow', flow)
  const swapped = await bob.post('/reauthenticate/passkey', { credential: authenticator.answer(started) })
  t.equal(swapped.statusCode, 400, "a ceremony of Ada's login cannot confirm Bob's")

  // Guards: adding needs a fresh login (the page says how), confirming a login.
  const remembered = new Browser(app, 'remembered')
  await remembered.logIn('Ada', PASSWORD, { remember: true })
  remembered.restart()
  const stale = await remembered.get('/profile')
  t.match(stale.body, '<a href="/reauthenticate?next=%2Fprofile">confirm it is you</a>')
  t.notMatch(stale.body, 'data-passkey="register"')
  const notFresh = await ceremonyOptions(remembered, '/passkeys/options')
  t.equal(notFresh.statusCode, 401, 'a remembered login cannot add a passkey')
  const anonymous = new Browser(app, 'anonymous')
  await anonymous.get('/login')
  t.equal((await ceremonyOptions(anonymous, '/reauthenticate/passkey/options')).statusCode, 401)
  t.equal((await ceremonyOptions(bob, '/login/passkey/options')).statusCode, 403, 'a logged-in student does not log in again')
})

test('passkeys need the portal\'s own name: not an IP address, not another port, not another host', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada')
  for (const host of ['127.0.0.1', 'localhost:8081', 'evil.example', 'bad host']) {
    const response = await ceremonyOptions(browser, '/passkeys/options', { host })
    t.equal(response.statusCode, 400, host)
    t.same(response.json(), { message: "Passkeys work only at the portal's name: open http://localhost:80." }, host)
  }
  const atIp = await browser.get('/profile', { host: '127.0.0.1' })
  t.match(atIp.body, 'open <a href="http://localhost:80/profile">http://localhost:80</a>')
  t.notMatch(atIp.body, 'data-passkey')

  // With PUBLIC_URL, that name, whatever the Host header says.
  const dir = mkdtempSync(join(tmpdir(), 'portal-public-'))
  const behindProxy = await buildApp({ databasePath: join(dir, 'portal.sqlite'), secret: SECRET, publicUrl: 'https://portal.example' } as never)
  t.teardown(async () => {
    await behindProxy.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const student = new Browser(behindProxy)
  await student.signUp('Ada')
  const options = (await ceremonyOptions(student, '/passkeys/options', { host: 'evil.example' })).json()
  t.equal(options.rp.id, 'portal.example')
  const added = await student.post('/passkeys', { credential: new SoftwareAuthenticator('https://portal.example').register(options).json })
  t.equal(added.headers.location, '/profile', 'an answer made at https://portal.example is accepted')
})

test('passkeys: refused answers count with the wrong passwords; the sixth is a 429', async (t) => {
  const { app } = await portal(t)
  const authenticator = await withPasskey(new Browser(app, 'setup'), 'Ada')
  const attacker = new Browser(app, 'attacker', '10.0.0.1')
  for (let guess = 1; guess <= 3; guess++) {
    t.equal((await passkeyLogIn(attacker, authenticator, {}, { origin: 'http://localhost:8081' })).statusCode, 401, `answer ${guess}`)
  }
  await attacker.get('/login')
  for (let guess = 4; guess <= 5; guess++) {
    t.equal((await attacker.post('/login', { name: 'Ada', password: `guess ${guess}` })).statusCode, 401, `password ${guess}`)
  }
  const refused = await passkeyLogIn(attacker, authenticator)
  t.equal(refused.statusCode, 429, 'even a good answer, during the window')
  t.match(errorOf(refused), /^Too many refused sign-ins\. Try again in 1[45] min/)
  const confirm = new Browser(app, 'ada', '10.0.0.1')
  t.equal((await confirm.logIn('Ada', PASSWORD)).statusCode, 429, 'the address is locked for passwords too')

  // Confirming a login counts the same way: Ada, from elsewhere, is locked too.
  const ada = new Browser(app, 'ada', '10.0.0.2')
  const cookies = await app.loginManager.cookiesFor({ getId: () => '1:1' } as never, { userAgent: 'ada', ip: '10.0.0.2' })
  for (const [name, value] of Object.entries(cookies)) ada.jar.set(name, { value, persistent: false })
  await ada.get('/reauthenticate')
  const options = (await ceremonyOptions(ada, '/reauthenticate/passkey/options')).json()
  const locked = await ada.post('/reauthenticate/passkey', { credential: authenticator.answer(options) })
  t.equal(locked.statusCode, 429, 'the name is locked for its passkeys too')
})

// The portal with "Sign in with School ID", against a real OpenID provider
// on 127.0.0.1 (another site than the portal's localhost).
const PROVIDER_NAMES = { ada: 'Ada Lovelace', ada2: 'Ada Lovelace', mallory: 'M\u200ballory' }

async function oidcPortal (t: Test, issuer?: string): Promise<Fixture & { issuer: string }> {
  const provider = await oidcProvider(t, PROVIDER_NAMES)
  await provider.start([`${ORIGIN}/login/oidc/callback`])
  const oidc = { issuer: issuer ?? provider.issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, name: 'School ID' }
  return { ...await portal(t, { oidc }, 'portal-oidc-'), issuer: oidc.issuer }
}

// "Sign in with School ID" as `login`: the portal's redirect, the
// provider's pages, and the callback; returns the callback's answer.
async function oidcSignIn (browser: Browser, login: string, start = '/login/oidc'): Promise<LightMyRequestResponse> {
  const redirect = await browser.get(start)
  const callback = await signInAtProvider(redirect.headers.location as string, login)
  return browser.get(callback.pathname + callback.search)
}

test('OpenID Connect: the first sign-in creates a student, later ones log that student in', async (t) => {
  const { app, rows, file, issuer } = await oidcPortal(t)
  const browser = new Browser(app)
  const login = await browser.get('/login?next=%2Fdevices')
  t.match(login.body, '<a class="button" href="/login/oidc?next=%2Fdevices">Sign in with School ID</a>')
  const redirect = await browser.get('/login/oidc?next=%2Fdevices')
  t.equal(redirect.statusCode, 303)
  const authorization = new URL(redirect.headers.location as string)
  t.equal(`${authorization.origin}${authorization.pathname}`, `${issuer}/auth`)
  const query = Object.fromEntries(authorization.searchParams)
  t.match(query, { client_id: CLIENT_ID, response_type: 'code', scope: 'openid profile', redirect_uri: 'http://localhost/login/oidc/callback', code_challenge_method: 'S256' })
  t.match(query.state, /^[\w-]{43}$/)
  t.match(query.nonce, /^[\w-]{43}$/)
  t.match(query.code_challenge, /^[\w-]{43}$/)
  t.match(redirect.headers['set-cookie'], /^oidc-flow=[^;]+; Max-Age=600; Path=\/; HttpOnly; SameSite=Lax$/, 'Lax: the provider sends the browser back from another site')
  t.notMatch(redirect.headers['set-cookie'], query.state, 'the state is signed in the cookie, not alone')

  const callback = await signInAtProvider(redirect.headers.location as string, 'ada')
  t.equal(callback.searchParams.get('state'), query.state)
  const signedIn = await browser.get(callback.pathname + callback.search)
  t.equal(signedIn.statusCode, 303)
  t.equal(signedIn.headers.location, '/devices', 'back to the page that was asked for')
  t.equal(await browser.navigation(), 'Logged in as Ada Lovelace · Log out', "the provider's name")
  t.match(rows(), [{ id: 1, name: 'Ada Lovelace', grade: null, password_hash: null }])
  const raw = new Database(file, { readonly: true })
  t.teardown(() => raw.close())
  t.same(raw.prepare('SELECT * FROM oidc_accounts').all(), [{ issuer, subject: 'ada', student_id: 1 }], 'linked to the subject, per issuer')
  const profile = await browser.get('/profile')
  t.match(text(profile.body), 'Grade not set')
  t.match(text(profile.body), 'Choose a password')
  t.match(text((await browser.get('/devices')).body), 'signed in with School ID')

  // Later sign-ins log the same student in.
  const phone = new Browser(app, 'phone')
  t.equal((await oidcSignIn(phone, 'ada')).headers.location, '/profile')
  t.equal(await phone.navigation(), 'Logged in as Ada Lovelace · Log out')
  t.equal(rows().length, 1)

  // Another subject with the same name: a name of its own. A name the portal
  // does not allow: 'Student'.
  await oidcSignIn(new Browser(app, 'other'), 'ada2')
  await oidcSignIn(new Browser(app, 'mallory'), 'mallory')
  await new Browser(app, 'x').signUp('Grace')
  await oidcSignIn(new Browser(app, 'grace'), 'Grace')
  t.same(rows().map((row) => row.name), ['Ada Lovelace', 'Ada Lovelace 2', 'Student', 'Grace', 'Grace 2'])
  t.equal((await browser.get('/login/oidc')).statusCode, 307, 'a logged-in student is sent to the profile')
})

test('a student made by the provider has no password until they choose one', async (t) => {
  const { app, rows } = await oidcPortal(t)
  const browser = new Browser(app)
  await oidcSignIn(browser, 'ada')
  const visitor = new Browser(app, 'visitor')
  await visitor.get('/login')
  t.equal((await visitor.post('/login', { name: 'Ada Lovelace', password: '' })).statusCode, 400, 'an empty password is no password')
  t.equal(errorOf(await visitor.post('/login', { name: 'Ada Lovelace', password: 'any password at all' })), 'Wrong name or password.')

  const stale = await browser.get('/reauthenticate')
  t.match(text(stale.body), 'You have no password to confirm it with yet.')
  t.notMatch(stale.body, 'name="password"')
  t.equal(errorOf(await browser.post('/reauthenticate', { password: 'any password at all' })), 'Wrong password.')

  const page = await browser.get('/password')
  t.equal(page.statusCode, 200)
  t.match(page.body, '<title>Choose a password · Student portal</title>')
  t.notMatch(page.body, 'name="current"', 'no current password to ask for')
  t.match(text(page.body), 'You signed up through School ID and have no password yet')
  t.equal(errorOf(await browser.post('/password', { password: 'short', confirm: 'short' })), 'Passwords need at least 8 characters.')
  const chosen = await browser.post('/password', { password: 'my first password', confirm: 'my first password' })
  t.equal(chosen.statusCode, 303)
  t.match(rows()[0].password_hash, /^scrypt\$/)
  t.equal((await new Browser(app, 'laptop').logIn('Ada Lovelace', 'my first password')).statusCode, 303, 'now the name and password work too')
  t.match((await browser.get('/password')).body, 'name="current"', 'and changing it asks for it')
})

test('OpenID Connect: a wrong state, a replay, no flow cookie, an expired one, a refusal: a clear page, no login, never a 5xx', async (t) => {
  const { app, rows } = await oidcPortal(t)
  const clock = controlledClock(t)
  const refused = (response: LightMyRequestResponse, label: string, message: string): void => {
    t.equal(response.statusCode, 400, label)
    t.equal(errorOf(response), message, label)
    t.match(response.body, '<title>Sign in with School ID · Student portal</title>', label)
    t.notMatch(String(response.headers['set-cookie']), /(^|,)account=/, `${label}: no login`)
  }
  const browser = new Browser(app)
  const redirect = await browser.get('/login/oidc')
  const callback = await signInAtProvider(redirect.headers.location as string, 'ada')
  const path = callback.pathname + callback.search
  const flow = browser.jar.get('oidc-flow') as StoredCookie

  refused(await new Browser(app, 'no cookie').get(path), 'no flow cookie', 'This sign-in did not start in this browser, or it was already finished. Start again.')
  // Login CSRF: the attacker's own callback, opened in the victim's browser
  // (which has a sign-in of its own under way).
  const victim = new Browser(app, 'victim')
  await victim.get('/login/oidc')
  refused(await victim.get(path), 'another browser\'s answer', 'This answer from School ID is not for the sign-in started in this browser. Start again.')
  const wrongState = new Browser(app, 'wrong state')
  wrongState.jar.set('oidc-flow', flow)
  refused(await wrongState.get(path.replace(/state=[^&]+/, 'state=another')), 'a wrong state', 'This answer from School ID is not for the sign-in started in this browser. Start again.')
  const crossFlow = new Browser(app, 'cross')
  await crossFlow.get('/login')
  await ceremonyOptions(crossFlow, '/login/passkey/options')
  crossFlow.jar.set('oidc-flow', crossFlow.jar.get('passkey-flow') as StoredCookie)
  refused(await crossFlow.get(path), 'a passkey challenge as the OIDC state', 'This sign-in did not start in this browser, or it was already finished. Start again.')

  // The wrong-state attempt used the flow up: a copy of the cookie is refused too.
  const replay = new Browser(app, 'replay')
  replay.jar.set('oidc-flow', flow)
  refused(await replay.get(path), 'a replayed callback', 'This sign-in was already used. Start again.')

  const late = new Browser(app, 'late')
  const lateRedirect = await late.get('/login/oidc')
  const lateCallback = await signInAtProvider(lateRedirect.headers.location as string, 'ada')
  clock.advance(601 * 1000)
  refused(await late.get(lateCallback.pathname + lateCallback.search), 'an expired flow cookie', 'This sign-in took too long. Start again.')

  const cancelled = new Browser(app, 'cancelled')
  const started = new URL((await cancelled.get('/login/oidc')).headers.location as string)
  refused(await cancelled.get(`/login/oidc/callback?error=access_denied&state=${started.searchParams.get('state')}`), 'refused at the provider', 'School ID did not sign you in. Start again, or log in with your password.')
  const forged = new Browser(app, 'forged code')
  const forgedStart = new URL((await forged.get('/login/oidc')).headers.location as string)
  refused(await forged.get(`/login/oidc/callback?code=not-a-code&state=${forgedStart.searchParams.get('state')}`), 'a code the provider never gave', 'School ID did not confirm this sign-in. Start again.')
  t.equal(rows().length, 0, 'no student made')

  const honest = new Browser(app, 'honest')
  t.equal((await oidcSignIn(honest, 'ada')).statusCode, 303, 'a sign-in from start to end still works')
})

test('OpenID Connect: a plain-http issuer elsewhere fails at start; an unreachable provider is a 503', async (t) => {
  for (const issuer of ['http://id.example', 'http://127.0.0.2:8080', 'not a url', 'ftp://localhost']) {
    await t.rejects(buildApp({ databasePath: ':memory:', secret: SECRET, oidc: { issuer, clientId: 'portal', clientSecret: 'x', name: 'X' } } as never),
      { message: `OIDC_ISSUER must be an https:// URL, or http:// on 127.0.0.1 or localhost for local development; ${JSON.stringify(issuer)} is not.` }, issuer)
  }
  const https = await buildApp({ databasePath: ':memory:', secret: SECRET, oidc: { issuer: 'https://id.example', clientId: 'portal', clientSecret: 'x', name: 'X' } } as never)
  await https.close()

  // Nobody listens there: the portal starts all the same.
  const closed = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
  const { app } = await oidcPortal(t, `http://127.0.0.1:${closed}`)
  const browser = new Browser(app)
  for (let attempt = 1; attempt <= 2; attempt++) {
    const down = await browser.get('/login/oidc')
    t.equal(down.statusCode, 503, `attempt ${attempt}: tried again`)
    t.equal(errorOf(down), 'School ID cannot be reached right now. Try again later, or log in with your password.')
  }
  const state = Buffer.from(JSON.stringify({ flow: 'oidc-login', id: 'a-state', expiresAt: Math.floor(Date.now() / 1000) + 60, data: {} })).toString('base64url')
  browser.jar.set('oidc-flow', { value: app.signCookie(state), persistent: false })
  const callback = await browser.get('/login/oidc/callback?code=x&state=a-state')
  t.equal(callback.statusCode, 503, 'the callback too: never a login, never a logout')
  const secure = await buildApp({ databasePath: ':memory:', secret: SECRET, oidc: { issuer: `https://127.0.0.1:${closed}`, clientId: 'portal', clientSecret: 'x', name: 'X' } } as never)
  t.teardown(() => secure.close())
  t.equal((await secure.inject('/login/oidc')).statusCode, 503, 'an https provider that does not answer')
  const foreign = await browser.get('/login/oidc', { host: 'evil.example' })
  t.equal(foreign.statusCode, 400)
  t.equal(errorOf(foreign), 'Open the portal at http://localhost:80 to sign in with School ID.')
})

test('delete my account: a password or a passkey entered in the last 5 minutes, then everything goes', async (t) => {
  const { app, file, rows } = await portal(t)
  const clock = controlledClock(t)
  const laptop = new Browser(app, 'laptop')
  const authenticator = await withPasskey(laptop, 'Ada')
  const phone = new Browser(app, 'phone')
  await phone.logIn('Ada')
  await new Browser(app, 'bob').signUp('Bob')
  t.match(text((await laptop.get('/profile')).body), 'Delete my account Asks for your password or a passkey first.')

  const page = await laptop.get('/delete-account')
  t.equal(page.statusCode, 200, 'a password typed just now is enough')
  t.match(text(page.body), 'This cannot be undone.')

  // Six minutes later the login is still fresh (an hour), but not recent enough.
  clock.advance(6 * 60 * 1000)
  t.equal((await laptop.get('/password')).statusCode, 200, 'still fresh')
  const asked = await laptop.get('/delete-account')
  t.equal(asked.statusCode, 307)
  const to = new URL(asked.headers.location as string, ORIGIN)
  t.equal(to.pathname, '/reauthenticate')
  t.equal(to.searchParams.get('next'), '/delete-account')
  t.equal(to.searchParams.get('methods'), 'passkey,password', 'the page is told which ways count')
  const confirm = await laptop.get(asked.headers.location as string)
  t.match(text(confirm.body), 'This page needs your password or a passkey, entered in the last few minutes.')
  t.match(confirm.body, 'name="password"')
  t.match(confirm.body, 'data-passkey="confirm"')
  t.match(confirm.body, '<input type="hidden" name="methods" value="passkey,password">')
  const stalePost = await laptop.post('/delete-account')
  t.equal(stalePost.statusCode, 303, 'a form left open is refused too')
  t.equal(rows().length, 2)

  // A passkey confirms it; the page is then open for five minutes.
  const options = (await ceremonyOptions(laptop, '/reauthenticate/passkey/options')).json()
  const confirmed = await laptop.post('/reauthenticate/passkey', { credential: authenticator.answer(options), next: '/delete-account', methods: 'passkey,password' })
  t.equal(confirmed.headers.location, '/delete-account')
  t.equal((await laptop.get('/delete-account')).statusCode, 200)
  clock.advance(6 * 60 * 1000)
  t.equal((await laptop.get('/delete-account')).statusCode, 307, 'and closed again after')
  await laptop.get('/reauthenticate?next=%2Fdelete-account&methods=passkey%2Cpassword')
  t.equal((await laptop.post('/reauthenticate', { password: PASSWORD, next: '/delete-account' })).headers.location, '/delete-account', 'a password confirms it too')
  await laptop.get('/delete-account')

  const deleted = await laptop.post('/delete-account')
  t.equal(deleted.statusCode, 303)
  t.equal(deleted.headers.location, '/')
  t.equal(noticeOf(await laptop.get('/')), 'Your account was deleted, and you were logged out everywhere.')
  t.equal(await laptop.navigation(), 'Log in · Sign up')
  t.equal(await phone.navigation(), 'Log in · Sign up', 'the other device is logged out')
  t.same(rows().map((row) => row.name), ['Bob'], 'only Bob is left')
  t.same(passkeyRows(file), [], 'the passkey went with the account')
  const raw = new Database(file, { readonly: true })
  t.teardown(() => raw.close())
  t.equal((raw.prepare("SELECT count(*) AS n FROM logins WHERE user_id LIKE '1:%'").get() as { n: number }).n, 0, 'and every login')
  t.equal((await new Browser(app, 'again').logIn('Ada')).statusCode, 401, 'the password logs nobody in')
  t.equal((await passkeyLogIn(new Browser(app, 'passkey'), authenticator)).statusCode, 401, 'nor the passkey')
})

test('delete my account: a login made by the provider must confirm with a password or a passkey', async (t) => {
  const { app, rows } = await oidcPortal(t)
  const browser = new Browser(app)
  await oidcSignIn(browser, 'ada')
  const asked = await browser.get('/delete-account')
  t.equal(asked.statusCode, 307, 'a fresh login by the provider is not one of the methods')
  const page = await browser.get(asked.headers.location as string)
  t.match(text(page.body), 'You have no password or passkey to confirm it with yet.')
  await browser.get('/password')
  await browser.post('/password', { password: 'my first password', confirm: 'my first password' })
  await browser.get('/reauthenticate?next=%2Fdelete-account&methods=passkey%2Cpassword')
  await browser.post('/reauthenticate', { password: 'my first password', next: '/delete-account' })
  t.equal((await browser.get('/delete-account')).statusCode, 200)
  await browser.post('/delete-account')
  t.same(rows(), [])
  t.equal((await oidcSignIn(new Browser(app, 'later'), 'ada')).statusCode, 303, 'signing in again makes a new student')
  t.match(rows(), [{ id: 2, name: 'Ada Lovelace' }])
})

test('server.js: a plain-http OIDC_ISSUER on another machine stops the start, and says why', { timeout: 60000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portal-server-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const child = spawn(process.execPath, [join(exampleDir, 'server.js')], {
    env: { ...process.env, EXAMPLE_DB: join(dir, 'portal.sqlite'), PORT: '0', LOGIN_SECRET: SECRET, OIDC_ISSUER: 'http://id.example', OIDC_CLIENT_ID: 'portal', OIDC_CLIENT_SECRET: 'a secret' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  t.equal(await new Promise((resolve) => child.on('exit', resolve)), 1)
  t.match(output, 'OIDC_ISSUER must be an https:// URL, or http:// on 127.0.0.1 or localhost for local development; "http://id.example" is not.')
  t.notMatch(output, 'Student portal:')
})
