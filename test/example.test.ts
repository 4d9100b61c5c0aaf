import { test } from 'tap'
import type { Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'

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
  settings (env: Record<string, string | undefined>): { databasePath: string, secret?: string, host: string, port: number }
  DEMO_STUDENT: { name: string, grade: number, password: string }
}

interface RawDatabase {
  prepare (sql: string): { get (...params: unknown[]): unknown, all (...params: unknown[]): unknown[] }
  close (): void
}
const Database = require('better-sqlite3') as new (file: string, options?: { readonly?: boolean }) => RawDatabase

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

async function portal (t: Test): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'portal-test-'))
  const file = join(dir, 'portal.sqlite')
  const app = await buildApp({ databasePath: file, secret: SECRET })
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

  constructor (readonly app: Portal, readonly userAgent = 'lightMyRequest') {}

  get cookies (): Record<string, string> {
    return Object.fromEntries([...this.jar].map(([name, cookie]) => [name, cookie.value]))
  }

  async get (url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    return this.send('GET', url, undefined, headers)
  }

  // Posts a form, with the CSRF token of the last page unless told otherwise.
  async post (url: string, fields: Record<string, string | string[]> = {}, { csrf = true } = {}): Promise<LightMyRequestResponse> {
    const form = new URLSearchParams()
    if (csrf) form.append('_csrf', this.csrf)
    for (const [name, value] of Object.entries(fields)) {
      for (const one of Array.isArray(value) ? value : [value]) form.append(name, one)
    }
    return this.send('POST', url, form.toString(), { 'content-type': 'application/x-www-form-urlencoded' })
  }

  async send (method: 'GET' | 'POST', url: string, payload: string | undefined, headers: Record<string, string>): Promise<LightMyRequestResponse> {
    const response = await this.app.inject({ method, url, payload, cookies: this.cookies, headers: { 'user-agent': this.userAgent, ...headers } })
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

  async signUp (name: string, password = PASSWORD, { grade = '7', remember = false } = {}): Promise<LightMyRequestResponse> {
    await this.get('/signup')
    return this.post('/signup', { name, grade, password, ...(remember ? { remember: 'yes' } : {}) })
  }

  async logIn (name: string, password = PASSWORD, { remember = false, next = '' } = {}): Promise<LightMyRequestResponse> {
    await this.get('/login')
    return this.post('/login', { name, password, ...(remember ? { remember: 'yes' } : {}), ...(next === '' ? {} : { next }) })
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

function errorOf (response: LightMyRequestResponse): string | undefined {
  return /<p class="error" role="alert">([^<]*)<\/p>/.exec(response.body)?.[1]
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
    ['missing fields', {}, 400, 'Please enter your name.'],
    ['repeated name field', { name: ['Bo', 'Bob'], grade: '5', password: PASSWORD }, 400, 'Please enter your name.'],
    ['over-long name', { name: 'x'.repeat(LIMITS.name + 1), grade: '5', password: PASSWORD }, 400, 'Names are at most 64 characters long.'],
    ['control characters', { name: 'Bo\u0000b', grade: '5', password: PASSWORD }, 400, 'Names cannot contain control characters.'],
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
  t.equal(errorOf(headerOnly), 'Please enter your name.')
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
  const stale = await browser.post('/password', { password: 'brand new password', confirm: 'brand new password' })
  t.equal(stale.statusCode, 303, 'a stale form post is sent to re-authenticate with a GET')
  t.equal(stale.headers.location, '/reauthenticate?next=%2Fpassword')
  t.same(rows(), before, 'and changes nothing')

  const form = await browser.get(asked.headers.location as string)
  t.equal(form.statusCode, 200)
  t.match(form.body, '<input type="hidden" name="next" value="/password">')
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

  const refused: Array<[Record<string, string>, string]> = [
    [{ password: '', confirm: '' }, 'Please choose a password.'],
    [{ password: 'short', confirm: 'short' }, 'Passwords need at least 8 characters.'],
    [{ password: 'y'.repeat(LIMITS.passwordMax + 1), confirm: 'y'.repeat(LIMITS.passwordMax + 1) }, 'Passwords are at most 128 characters long.'],
    [{ password: 'brand new password', confirm: 'brand new passwort' }, 'The two passwords do not match.']
  ]
  for (const [fields, message] of refused) {
    const response = await browser.post('/password', fields)
    t.equal(response.statusCode, 400, message)
    t.equal(errorOf(response), message)
  }
  t.same(rows(), before, 'nothing written')

  const changed = await browser.post('/password', { password: 'brand new password', confirm: 'brand new password' })
  t.equal(changed.statusCode, 303)
  t.equal(changed.headers.location, '/profile?notice=password')
  const profile = await browser.get(changed.headers.location as string)
  t.equal(profile.statusCode, 200, 'this device stays logged in')
  t.match(profile.body, '<p class="notice" role="status">Your password was changed. Every other device was logged out.</p>')
  t.match(text(profile.body), 'Fresh:')
  t.ok(browser.jar.get('account')?.persistent, 'its new login is remembered, as the one it replaces was')
  t.equal((await otherDevice.get('/profile')).statusCode, 307, 'the other device is logged out')

  const [row] = rows()
  t.not(row.password_hash, before[0].password_hash)
  t.equal(row.session_version, 2)
  t.equal((await new Browser(app, 'x').logIn('Ada', PASSWORD)).statusCode, 401, 'the old password no longer works')
  t.equal((await new Browser(app, 'y').logIn('Ada', 'brand new password')).statusCode, 303, 'the new one does')
})

test('the profile shows only the notices it knows', async (t) => {
  const { app } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada')
  for (const notice of ['constructor', '<script>', 'toString']) {
    const response = await browser.get(`/profile?notice=${encodeURIComponent(notice)}`)
    t.equal(response.statusCode, 200)
    t.notMatch(response.body, 'class="notice"', notice)
  }
  t.notMatch((await browser.get('/profile?notice=password&notice=everywhere')).body, 'class="notice"')
})

test('log out everywhere: every other cookie of the student loads nobody; this device stays', async (t) => {
  const { app, rows } = await portal(t)
  const laptop = new Browser(app, 'laptop')
  await laptop.signUp('Ada', PASSWORD, { remember: true })
  const phone = new Browser(app, 'phone')
  await phone.logIn('Ada', PASSWORD, { remember: true })
  const stolen = new Map(phone.jar)
  const bystander = new Browser(app, 'bystander')
  await bystander.signUp('Bob')

  // The laptop was restarted: remembered, not fresh.
  laptop.restart()
  await laptop.get('/profile')
  const response = await laptop.post('/logout-everywhere')
  t.equal(response.statusCode, 303)
  t.equal(response.headers.location, '/profile?notice=everywhere')
  const profile = await laptop.get('/profile?notice=everywhere')
  t.equal(profile.statusCode, 200, 'this device is logged in again')
  t.match(profile.body, 'Every other device was logged out, and your API token was revoked.')
  t.match(text(profile.body), 'Remembered from an earlier visit', 'and no fresher than it was')
  t.equal((await laptop.get('/password')).statusCode, 307)

  t.equal((await phone.get('/profile')).statusCode, 307, 'the phone is logged out')
  phone.jar = stolen
  t.equal(await phone.navigation(), 'Log in · Sign up', 'so is any copy of its cookies')
  t.equal(await bystander.navigation(), 'Logged in as Bob · Log out', 'other students are not affected')
  t.match(rows(), [{ name: 'Ada', session_version: 2 }, { name: 'Bob', session_version: 1 }])
})

test('the JSON API: a bearer token made on the profile page, stored hashed, shown once', async (t) => {
  const { app, rows } = await portal(t)
  const browser = new Browser(app)
  await browser.signUp('Ada', PASSWORD, { grade: '9', remember: true })

  const anonymous = await app.inject('/api/me')
  t.equal(anonymous.statusCode, 401)
  t.equal(anonymous.headers['www-authenticate'], 'Bearer realm="portal"')
  t.match(anonymous.headers['content-type'], /^application\/json/)
  t.same(anonymous.json(), { statusCode: 401, error: 'Unauthorized', message: 'Send your API token: Authorization: Bearer <token>' })

  await browser.get('/profile')
  const created = await browser.post('/api-token')
  t.equal(created.statusCode, 200)
  t.equal(created.headers['cache-control'], 'no-store')
  const token = /<pre class="token">(portal_[A-Za-z0-9_-]{43})<\/pre>/.exec(created.body)?.[1] as string
  t.ok(token, 'the page shows the token')
  t.match(created.body, `curl -H 'Authorization: Bearer ${token}' http://localhost:80/api/me`)
  const [row] = rows()
  t.equal(row.api_token_hash, createHash('sha256').update(token).digest('base64url'), 'only its hash is stored')

  const me = await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${token}` } })
  t.equal(me.statusCode, 200)
  t.same(me.json(), { name: 'Ada', grade: 9 })
  t.equal((await app.inject({ url: '/api/me', headers: { authorization: `bearer ${token}` } })).statusCode, 200, 'the scheme is case-insensitive')
  t.equal(me.headers['set-cookie'], undefined, 'the API sets no cookie')
  t.equal((await app.inject({ url: '/profile', headers: { authorization: `Bearer ${token}` } })).statusCode, 200, 'the request loader serves every page')

  for (const authorization of [`Bearer ${token.slice(0, -1)}x`, `Bearer ${token.slice(0, -1)}`, `Basic ${token}`, token, 'Bearer ', `Bearer ${token} extra`]) {
    const refused = await app.inject({ url: '/api/me', headers: { authorization } })
    t.equal(refused.statusCode, 401, authorization)
    t.equal(refused.json().error, 'Unauthorized')
  }

  // A new token replaces the old one; "log out everywhere" revokes it.
  const second = /<pre class="token">([^<]+)<\/pre>/.exec((await browser.post('/api-token')).body)?.[1] as string
  t.not(second, token)
  t.equal((await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${token}` } })).statusCode, 401, 'the old token is gone')
  t.equal((await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${second}` } })).statusCode, 200)
  await browser.get('/profile')
  await browser.post('/logout-everywhere')
  t.equal((await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${second}` } })).statusCode, 401, 'revoked')
  t.equal(rows()[0].api_token_hash, null)

  // Creating a token needs a fresh login.
  await browser.post('/logout')
  await browser.logIn('Ada', PASSWORD, { remember: true })
  browser.restart()
  await browser.get('/profile')
  const stale = await browser.post('/api-token')
  t.equal(stale.statusCode, 303)
  t.equal(stale.headers.location, '/reauthenticate?next=%2Fapi-token')
  t.equal(rows()[0].api_token_hash, null)
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
  t.same(settings({}), { databasePath: join(exampleDir, 'data', 'portal.sqlite'), secret: undefined, host: '127.0.0.1', port: 3000 })
  t.same(settings({ EXAMPLE_DB: 'x.sqlite', LOGIN_SECRET: SECRET, PORT: '8080' }), {
    databasePath: resolve('x.sqlite'),
    secret: SECRET,
    host: '127.0.0.1',
    port: 8080
  })
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
      const url = /Student portal: (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1]
      if (url !== undefined) resolve({ child, url, output: () => output })
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
