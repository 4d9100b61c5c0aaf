'use strict'

// The student portal: sign up, log in (with "remember me"), a profile, a
// password change behind a fresh login, "log out everywhere", and a small
// JSON API with bearer tokens. `server.js` runs it; the tests build it with
// `buildApp()` against a temporary database.
const { hkdfSync } = require('node:crypto')
const { readFileSync } = require('node:fs')
const { join } = require('node:path')
const Fastify = require('fastify')
const fastifyCookie = require('@fastify/cookie')
const fastifyCsrf = require('@fastify/csrf-protection')
const fastifyFormbody = require('@fastify/formbody')
const fastifyView = require('@fastify/view')
const ejs = require('ejs')
const fastifyLogin = require('..') // the package itself: `require('fastify-login')` in your app
const { UserMixin } = fastifyLogin
const { openDatabase } = require('./db')
const { hashPassword, verifyPassword, verifyAgainstNobody } = require('./passwords')

// Field limits, checked before anything touches the database. The database
// checks the name and the grade again (see db.js).
const LIMITS = { name: 64, passwordMin: 8, passwordMax: 128, gradeMin: 1, gradeMax: 12 }

class Student extends UserMixin {
  constructor ({ id, name, grade, sessionVersion }) {
    super()
    this.id = id
    this.name = name
    this.grade = grade
    this.sessionVersion = sessionVersion
  }

  // The alternative id: a login cookie names the student *and* the session
  // version it was issued under. Bumping the version revokes every cookie.
  getId () {
    return `${this.id}:${this.sessionVersion}`
  }
}

// The notices a redirect may ask the profile page to show. Looked up, never
// echoed: a link cannot make the page say anything else.
const NOTICES = new Map([
  ['password', 'Your password was changed. Every other device was logged out.'],
  ['everywhere', 'Every other device was logged out, and your API token was revoked.']
])

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'referrer-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store'
}

const STYLE = readFileSync(join(__dirname, 'public', 'style.css'))

async function buildApp ({ databasePath, secret, logger = false }) {
  const db = openDatabase(databasePath)
  const app = Fastify({ logger })
  app.decorate('db', db)
  app.addHook('onClose', async () => db.close())
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(SECURITY_HEADERS)
    done()
  })

  // @fastify/csrf-protection keeps its secret in a cookie, so @fastify/cookie
  // comes first, with its parsing hook. It signs the CSRF cookie with a key of
  // its own, derived from the app's secret, and fastify-login gets the secret
  // itself: one key per purpose, so no signed value passes for another cookie.
  const csrfCookieKey = Buffer.from(hkdfSync('sha256', secret, '', 'portal csrf cookie', 32))
  await app.register(fastifyCookie, { secret: csrfCookieKey })

  // fastify-login before @fastify/view: templates then see `currentUser`
  // without any per-request hook.
  await app.register(fastifyLogin, {
    secret,
    cookieSecure: 'auto', // Secure on https; plain http works on 127.0.0.1
    loginRequiredRoute: '/login',
    loginProhibitedRoute: '/profile',
    refreshRoute: '/reauthenticate',

    // Synchronous, like better-sqlite3: `request.currentUser` is ready on
    // every page. A cookie of an older session version loads nobody.
    userLoader (id) {
      const match = /^(\d+):(\d+)$/.exec(id)
      if (match === null) return null
      const row = db.studentById(Number(match[1]))
      return row !== null && row.sessionVersion === Number(match[2]) ? new Student(row) : null
    },

    // For API clients: asked only when there is no valid login cookie.
    requestLoader (request) {
      const token = bearerToken(request.headers.authorization)
      const row = token === null ? null : db.studentByApiToken(token)
      return row === null ? null : new Student(row)
    }
  })
  const { loginRequired, loginProhibited, freshLoginRequired } = app.loginManager

  await app.register(fastifyView, {
    engine: { ejs },
    root: join(__dirname, 'views'),
    layout: 'layout.ejs',
    defaultContext: { error: null, notice: null }
  })
  await app.register(fastifyFormbody)
  await app.register(fastifyCsrf, {
    cookieOpts: { path: '/', sameSite: 'strict', httpOnly: true, secure: 'auto', signed: true }
  })
  // Every form that changes something sends the token: checked once the body is parsed.
  const csrf = app.csrfProtection

  // Renders a page in the layout, with a CSRF token for its forms (the layout
  // has one too: the log-out button).
  async function render (reply, template, data, statusCode = 200) {
    const html = await reply.viewAsync(`${template}.ejs`, { csrfToken: reply.generateCsrf(), ...data })
    return reply.code(statusCode).type('text/html; charset=utf-8').send(html)
  }

  app.get('/style.css', (request, reply) => reply.header('cache-control', 'max-age=3600').type('text/css; charset=utf-8').send(STYLE))

  app.get('/', (request, reply) => render(reply, 'home', { title: 'Welcome' }))

  // Sign up and log in: only for visitors who are not logged in.
  app.get('/signup', { onRequest: loginProhibited }, (request, reply) =>
    render(reply, 'signup', { title: 'Sign up', values: {}, limits: LIMITS }))

  app.post('/signup', { onRequest: loginProhibited, preHandler: csrf }, async (request, reply) => {
    const values = {
      name: field(request.body, 'name').trim(),
      grade: field(request.body, 'grade'),
      remember: field(request.body, 'remember') === 'yes'
    }
    const password = field(request.body, 'password')
    const refuse = (statusCode, error) =>
      render(reply, 'signup', { title: 'Sign up', values, limits: LIMITS, error }, statusCode)

    const invalid = checkName(values.name) ?? checkGrade(values.grade) ?? checkNewPassword(password)
    if (invalid !== null) return refuse(400, invalid)
    const row = db.createStudent({ name: values.name, grade: Number(values.grade), passwordHash: await hashPassword(password) })
    if (row === null) return refuse(409, `The name “${values.name}” is taken. Choose another one.`)

    app.loginManager.loginUser(request, reply, new Student(row), { remember: values.remember })
    return reply.redirect('/profile', 303)
  })

  app.get('/login', { onRequest: loginProhibited }, (request, reply) =>
    render(reply, 'login', { title: 'Log in', values: {}, next: app.loginManager.nextUrl(request, '') }))

  app.post('/login', { onRequest: loginProhibited, preHandler: csrf }, async (request, reply) => {
    const values = { name: field(request.body, 'name').trim(), remember: field(request.body, 'remember') === 'yes' }
    const password = field(request.body, 'password')
    // `next` came through the form as a hidden field; nextUrl() keeps it only
    // when it is a path on this site.
    const next = app.loginManager.nextUrl(request, '')
    const refuse = (statusCode, error) =>
      render(reply, 'login', { title: 'Log in', values, next, error }, statusCode)

    const invalid = checkPresent('name', values.name, LIMITS.name) ?? checkPresent('password', password, LIMITS.passwordMax)
    if (invalid !== null) return refuse(400, invalid)
    const row = db.studentByName(values.name)
    const matches = row === null ? await verifyAgainstNobody(password) : await verifyPassword(password, row.passwordHash)
    // One message for both: the page does not tell which names exist.
    if (!matches) return refuse(401, 'Wrong name or password.')

    app.loginManager.loginUser(request, reply, new Student(row), { remember: values.remember })
    return reply.redirect(app.loginManager.nextUrl(request, '/profile'), 303)
  })

  // A POST, with a CSRF token: another site cannot log you out. No guard:
  // logging out an anonymous visitor does nothing.
  app.post('/logout', { preHandler: csrf }, (request, reply) => {
    app.loginManager.logoutUser(request, reply)
    return reply.redirect('/', 303)
  })

  app.get('/profile', { onRequest: loginRequired }, (request, reply) =>
    render(reply, 'profile', { title: 'Profile', fresh: request.isFresh, notice: NOTICES.get(request.query.notice) ?? null }))

  // Changing the password needs a fresh login: a visitor remembered from an
  // earlier browser session types the password again first.
  app.get('/password', { onRequest: freshLoginRequired }, (request, reply) =>
    render(reply, 'password', { title: 'Change password', limits: LIMITS }))

  app.post('/password', { onRequest: freshLoginRequired, preHandler: csrf }, async (request, reply) => {
    const password = field(request.body, 'password')
    const invalid = checkNewPassword(password) ??
      (field(request.body, 'confirm') === password ? null : 'The two passwords do not match.')
    if (invalid !== null) return render(reply, 'password', { title: 'Change password', limits: LIMITS, error: invalid }, 400)
    // A new password logs out every other device: new session version.
    const row = db.changePassword(request.currentUser.id, await hashPassword(password))
    logInAgain(request, reply, row)
    return reply.redirect('/profile?notice=password', 303)
  })

  // The re-authentication form (refreshRoute): the password again, then back
  // to the page that asked for a fresh login.
  app.get('/reauthenticate', { onRequest: loginRequired }, (request, reply) =>
    render(reply, 'reauthenticate', { title: 'Confirm your password', next: app.loginManager.nextUrl(request, '') }))

  app.post('/reauthenticate', { onRequest: loginRequired, preHandler: csrf }, async (request, reply) => {
    const password = field(request.body, 'password')
    const next = app.loginManager.nextUrl(request, '')
    const refuse = (statusCode, error) =>
      render(reply, 'reauthenticate', { title: 'Confirm your password', next, error }, statusCode)

    const invalid = checkPresent('password', password, LIMITS.passwordMax)
    if (invalid !== null) return refuse(400, invalid)
    const row = db.studentById(request.currentUser.id)
    if (!await verifyPassword(password, row.passwordHash)) return refuse(401, 'Wrong password.')

    app.loginManager.confirmLogin(request, reply) // fresh again, same login
    return reply.redirect(app.loginManager.nextUrl(request, '/profile'), 303)
  })

  // "Log out everywhere": a new session version makes every cookie issued
  // before load nobody; then this device gets a cookie under the new version.
  app.post('/logout-everywhere', { onRequest: loginRequired, preHandler: csrf }, (request, reply) => {
    const row = db.revokeSessions(request.currentUser.id)
    logInAgain(request, reply, row)
    return reply.redirect('/profile?notice=everywhere', 303)
  })

  // After a revocation: this device stays logged in under the new session
  // version, as remembered and as fresh as it was.
  function logInAgain (request, reply, row) {
    const { remembered } = app.loginManager.loginInfo(request)
    app.loginManager.loginUser(request, reply, new Student(row), { remember: remembered, fresh: request.isFresh })
  }

  // A new API token, shown once. A credential that outlives cookies: creating
  // one needs a fresh login.
  app.post('/api-token', { onRequest: freshLoginRequired, preHandler: csrf }, (request, reply) => {
    const token = db.createApiToken(request.currentUser.id)
    return render(reply, 'api-token', { title: 'Your API token', token, origin: `${request.protocol}://${request.host}` })
  })

  // The JSON API: the request loader found the student from the bearer token
  // (a browser's login cookie works too; it is the same student).
  app.get('/api/me', (request, reply) => {
    const student = request.currentUser
    if (!student.isAuthenticated) {
      return reply.code(401).header('www-authenticate', 'Bearer realm="portal"').send({
        statusCode: 401,
        error: 'Unauthorized',
        message: 'Send your API token: Authorization: Bearer <token>'
      })
    }
    return { name: student.name, grade: student.grade }
  })

  app.setNotFoundHandler((request, reply) =>
    render(reply, 'error', { title: 'Not found', message: 'There is no page at this address.' }, 404))

  app.setErrorHandler((error, request, reply) => {
    if (!(error.statusCode >= 400 && error.statusCode < 500)) {
      request.log.error({ err: error }, 'request failed')
      return render(reply, 'error', { title: 'Error', message: 'Something went wrong on our side. Please try again later.' }, 500)
    }
    const message = error.code?.startsWith('FST_CSRF_')
      ? 'This form has expired or did not come from this site. Go back, reload the page and try again.'
      : error.message
    return render(reply, 'error', { title: 'Error', message }, error.statusCode)
  })

  return app
}

// `Authorization: Bearer portal_…`. Anything else is no token.
function bearerToken (header) {
  const match = /^Bearer +(portal_[A-Za-z0-9_-]{43})$/i.exec(header ?? '')
  return match === null ? null : match[1]
}

// A form field as a string: missing fields and repeated ones (arrays) are ''.
function field (body, name) {
  const value = body?.[name]
  return typeof value === 'string' ? value : ''
}

const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/ // eslint-disable-line no-control-regex

function checkName (name) {
  if (name === '') return 'Please enter your name.'
  if (name.length > LIMITS.name) return `Names are at most ${LIMITS.name} characters long.`
  if (CONTROL_CHARACTERS.test(name)) return 'Names cannot contain control characters.'
  return null
}

function checkGrade (grade) {
  const number = /^\d{1,2}$/.test(grade) ? Number(grade) : NaN
  return number >= LIMITS.gradeMin && number <= LIMITS.gradeMax
    ? null
    : `Please choose a grade from ${LIMITS.gradeMin} to ${LIMITS.gradeMax}.`
}

function checkNewPassword (password) {
  if (password === '') return 'Please choose a password.'
  if (password.length < LIMITS.passwordMin) return `Passwords need at least ${LIMITS.passwordMin} characters.`
  if (password.length > LIMITS.passwordMax) return `Passwords are at most ${LIMITS.passwordMax} characters long.`
  return null
}

// For the log-in forms: present and not absurdly long, nothing more (the
// rules for new passwords may have changed since the password was chosen).
function checkPresent (label, value, max) {
  if (value === '') return `Please enter your ${label}.`
  if (value.length > max) return `That ${label} is too long (at most ${max} characters).`
  return null
}

module.exports = { buildApp, Student, LIMITS }
