'use strict'

// The student portal: sign up, log in (with "remember me", a passkey, or an
// OpenID provider), a profile, a password change, passkeys, "log out
// everywhere" behind a fresh login, deleting the account behind a recent
// password or passkey, and a small JSON API with bearer tokens. `server.js` runs it; the tests build it with
// `buildApp()` against a temporary database.
const { hkdfSync } = require('node:crypto')
const { readFileSync } = require('node:fs')
const { join } = require('node:path')
const Fastify = require('fastify')
const fastifyCookie = require('@fastify/cookie')
const fastifyCsrf = require('@fastify/csrf-protection')
const fastifyFormbody = require('@fastify/formbody')
const fastifyRateLimit = require('@fastify/rate-limit')
const fastifyView = require('@fastify/view')
const ejs = require('ejs')
const fastifyLogin = require('..') // the package itself: `require('fastify-login')` in your app
const { UserMixin } = fastifyLogin
const { openDatabase, API_TOKEN_DAYS } = require('./db')
const { createAttemptLimits } = require('./attempts')
const { createFlash } = require('./flash')
const { LIMITS, field, echo, normalizeName, checkName, checkGrade, checkNewPassword, checkPresent, problems } = require('./forms')
const { hashPassword, passwordMatches, prepareDummyHash } = require('./passwords')
const { createSite } = require('./site')
const { passkeyRoutes, CEREMONY_SECONDS } = require('./passkeys')
const { oidcRoutes, checkIssuer, FLOW_SECONDS: OIDC_FLOW_SECONDS } = require('./oidc')

class Student extends UserMixin {
  constructor ({ id, name, grade, passwordHash, sessionVersion, apiTokenExpiresAt }) {
    super()
    this.id = id
    this.name = name
    this.grade = grade // null for a student made by an OpenID provider
    this.hasPassword = passwordHash !== null
    this.sessionVersion = sessionVersion
    this.apiTokenExpiresAt = apiTokenExpiresAt
  }

  // The alternative id: a login cookie names the student *and* the session
  // version it was issued under. Bumping the version revokes every cookie.
  getId () {
    return `${this.id}:${this.sessionVersion}`
  }
}

// Sent with every response, framework errors (400, 413…) included: they are
// set in onSend, the last step before any response goes out.
const SECURITY_HEADERS = {
  // Scripts: public/passkeys.js only, which fetches the passkey options.
  'content-security-policy': "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY', // frame-ancestors, for browsers that predate it
  'referrer-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store'
}

// Why the re-authentication page is shown: the login is not fresh because…
const STALE_REASONS = {
  remembered: 'You were remembered from an earlier visit. To continue, type your password again.',
  timeout: 'It has been a while since you typed your password. To continue, type it again.',
  client: 'Your browser or network changed since you logged in. To continue, type your password again.',
  fresh: 'To continue, type your password again.',
  // A route that asks for a recent password or passkey (`maxAge`, `methods`).
  recent: 'This page needs your password or a passkey, entered in the last few minutes.'
}

// Deleting the account: a password or a passkey entered in the last 5 minutes
// (a fresh login made by the provider, or older, is not enough).
const RECENT = { mode: 'fresh', maxAge: 300, methods: ['passkey', 'password'] }

const LOGIN_REQUIRED_MESSAGE = 'Please log in to see this page.'
// A new API token is shown on the page it redirects to, once, for this long at most.
const SHOW_TOKEN_FOR_MS = 5 * 60 * 1000

const STYLE = readFileSync(join(__dirname, 'public', 'style.css'))
const PASSKEYS_SCRIPT = readFileSync(join(__dirname, 'public', 'passkeys.js'))

// `https`: the portal is served over https (behind a TLS proxy, with
// `trustProxy`, or by itself with `tls`: its key and certificate). Its
// cookies are then Secure and named `__Host-…`: a neighbouring subdomain
// cannot plant or override them (cookie tossing). And a login is bound to
// the browser that made it, where the browser can (device binding): a copy
// of its cookies works nowhere else.
// `store`: where logins are recorded, so that each can be listed and ended
// ("Your devices"); by default a table of the portal's database (login-store.js).
// `publicUrl`: where students reach the portal (PUBLIC_URL), for passkeys and
// the OpenID provider; without it, http://localhost (https with `tls`) at the
// port it listens on (site.js). `oidc`: `{ issuer, clientId, clientSecret, name }` adds "Sign in
// with <name>" (oidc.js).
async function buildApp ({ databasePath, secret, logger = false, https = false, tls = null, trustProxy = false, store = null, publicUrl = null, oidc = null }) {
  // A plain-http provider anywhere but this machine fails here, at start.
  if (oidc !== null) checkIssuer(oidc.issuer)
  const db = openDatabase(databasePath)
  const app = Fastify({
    logger,
    trustProxy,
    ...(tls === null ? {} : { https: tls }),
    // A URL Fastify cannot even decode is answered before any hook runs: it
    // gets the headers here.
    frameworkErrors (error, request, reply) {
      reply.headers(SECURITY_HEADERS).code(400).type('text/plain; charset=utf-8').send(`${error.message}\n`)
    }
  })
  app.decorate('db', db)
  const site = createSite(app, publicUrl, tls === null ? 'http' : 'https')
  app.addHook('onClose', async () => db.close())
  app.addHook('onSend', (request, reply, payload, done) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
      if (!reply.hasHeader(name)) reply.header(name, value)
    }
    done(null, payload)
  })
  // Checking a password for an unknown name needs a hash to compare with:
  // made now, not on the first probe.
  await prepareDummyHash()

  const cookiePrefix = https ? '__Host-' : ''
  const accountCookie = `${cookiePrefix}account`
  const csrfCookie = https ? '__Host-csrf' : '_csrf'

  // @fastify/csrf-protection keeps its secret in a cookie, so @fastify/cookie
  // comes first, with its parsing hook. It signs the CSRF and notice cookies
  // with a key of its own, derived from the app's secret, and fastify-login
  // gets the secret itself: one key per purpose, so no signed value passes for
  // another cookie.
  const cookieKey = Buffer.from(hkdfSync('sha256', secret, '', 'portal csrf cookie', 32))
  await app.register(fastifyCookie, { secret: cookieKey })

  // fastify-login before @fastify/view: templates then see `currentUser`
  // without any per-request hook.
  await app.register(fastifyLogin, {
    secret,
    cookieName: { account: accountCookie, isFresh: `${cookiePrefix}fresh`, bound: `${cookiePrefix}bound` },
    cookieSecure: https ? true : 'auto', // 'auto': Secure on https; plain http works on 127.0.0.1
    store: store ?? db.logins,
    // Chrome binds a login made over https to a key of its own (DBSC); other
    // browsers log in as before. Its two endpoints are /device-binding/….
    deviceBinding: https,
    loginRequiredRoute: '/login',
    loginRequiredMessage: LOGIN_REQUIRED_MESSAGE,
    loginProhibitedRoute: '/profile',
    refreshRoute: '/reauthenticate',

    // Synchronous, like better-sqlite3: `request.currentUser` is ready on
    // every page. A cookie of an older session version loads nobody, and the
    // request remembers why, for the log-in page to say.
    userLoader (id, request) {
      const match = /^(\d+):(\d+)$/.exec(id)
      if (match === null) return null
      const row = db.studentById(Number(match[1]))
      if (row === null) return null
      if (row.sessionVersion !== Number(match[2])) {
        request.logoutReason = row.revokedBy === 'password' ? 'password-changed-elsewhere' : 'logged-out-everywhere'
        return null
      }
      return new Student(row)
    },

    // For API clients, under /api/ only: asked when there is no valid login
    // cookie. A token is never a login of the pages (it could not be fresh,
    // confirmed or logged out there).
    requestLoader (request) {
      if (!request.url.startsWith('/api/')) return null
      const token = bearerToken(request.headers.authorization)
      const row = token === null ? null : db.studentByApiToken(token)
      return row === null ? null : new Student(row)
    }
  })
  const { loginRequired, loginProhibited, freshLoginRequired } = app.loginManager
  app.decorateRequest('logoutReason', null)
  app.decorateRequest('clientChanged', false)
  app.decorateRequest('cookieSentTwice', false)
  app.decorateRequest('deviceNotProven', false)
  app.loginManager.on('sessionProtected', (request) => { request.clientChanged = true })
  app.loginManager.on('duplicateCookie', (request) => { request.cookieSentTwice = true })
  // A bound login's cookie without its proof: a copy, or a browser that
  // could not refresh its bound cookie just now. The login goes on.
  app.loginManager.on('boundProofMissing', (request) => { request.deviceNotProven = true })
  // This store records which generation of a login's cookie was used, so
  // the plugin rotates cookies: an older copy that comes back after a newer
  // one was used means two browsers hold the login, and the plugin has ended
  // it. The request that brought the copy is told, whichever page it asked
  // for (docs/stolen-cookies.md).
  app.decorateRequest('reusedLogin', null)
  app.loginManager.on('loginReuseDetected', (request, record) => { request.reusedLogin = record })

  const flash = createFlash({ cookieName: `${cookiePrefix}flash`, secure: https, messages: { 'login-required': LOGIN_REQUIRED_MESSAGE } })

  // A guard sends a visitor to log in: the log-in page says why. A login
  // cookie that no longer works (another device ended that login, or it
  // expired, or it was used from two places) is cleared on the way. Not a
  // login cookie sent twice: the second is a copy planted by a neighbouring
  // site, which the guard has already expired where it can; logging out
  // would end the real login.
  app.loginManager.unauthorizedHandler((request, reply) => {
    if (request.reusedLogin !== null) {
      flash.set(reply, 'login-reused', deviceOf(request.reusedLogin))
      return app.loginManager.logoutUser(request, reply)
    }
    // Its cookies stay: the login is not over, and the browser that holds its
    // key shows it again on its next page.
    if (request.deviceNotProven) {
      flash.set(reply, 'device-not-proven')
      return
    }
    const ended = request.cookieSentTwice ? null : request.logoutReason ?? (request.cookies[accountCookie] === undefined ? null : 'login-ended')
    flash.set(reply, ended ?? 'login-required')
    if (ended !== null) return app.loginManager.logoutUser(request, reply) // a promise with an asynchronous store
  })

  await app.register(fastifyView, {
    engine: { ejs },
    root: join(__dirname, 'views'),
    layout: 'layout.ejs',
    // `oidcName`: the provider of "Sign in with …" on the log-in page, if any.
    defaultContext: { errors: [], notice: null, oidcName: oidc?.name ?? null }
  })
  await app.register(fastifyFormbody)
  await app.register(fastifyCsrf, {
    cookieKey: csrfCookie,
    cookieOpts: { path: '/', sameSite: 'strict', httpOnly: true, secure: https ? true : 'auto', signed: true }
  })
  // Every form that changes something sends the token: checked once the body is parsed.
  const csrf = app.csrfProtection
  // Counters only (attempts.js): the forms decide what counts.
  await app.register(fastifyRateLimit, { global: false })
  const attempts = createAttemptLimits(app)

  // A new CSRF secret at log-in and log-out: a token planted or learnt before
  // (login CSRF) is worth nothing once the visitor is someone else.
  function renewCsrfSecret (request, reply) {
    delete request.cookies[csrfCookie]
    reply.generateCsrf()
  }

  // Renders a page in the layout, with a CSRF token for its forms (the layout
  // has one too: the log-out button) and the notice a redirect left, if any.
  // Error pages leave the notice for the page it was meant for.
  async function render (reply, template, data, statusCode = 200) {
    // The layout shows who is logged in. With Redis (an asynchronous store)
    // that must be resolved first; with SQLite this answers at once.
    await reply.request.loadUser()
    // An unguarded page (the home page) can be where a reused login is found.
    const reused = reply.request.reusedLogin
    if (reused !== null) await app.loginManager.logoutUser(reply.request, reply)
    const notice = reused !== null ? flash.now('login-reused', deviceOf(reused)) : statusCode === 200 ? flash.take(reply.request, reply) : null
    const html = await reply.viewAsync(`${template}.ejs`, { csrfToken: reply.generateCsrf(), notice, ...data })
    return reply.code(statusCode).type('text/html; charset=utf-8').send(html)
  }

  // Too many failed passwords: 429, and when to try again.
  function tooManyAttempts (reply, retryAfter, why = 'Too many wrong passwords.') {
    const minutes = Math.ceil(retryAfter / 60)
    const at = new Date(Date.now() + retryAfter * 1000).toISOString().slice(11, 16)
    reply.header('retry-after', String(retryAfter))
    return render(reply, 'error', {
      title: 'Too many attempts',
      message: `${why} Try again in ${minutes} min (at ${at} UTC).`
    }, 429)
  }

  // Every form post, log-in and log-out included, must come from the
  // portal's own pages: a browser says where a request comes from
  // (Sec-Fetch-Site, else Origin), and an unsafe request from anywhere else
  // is refused with a 403. CSRF tokens alone fall to cookie tossing: another
  // port of 127.0.0.1, or a sibling subdomain, can plant its own CSRF secret.
  // Safe methods (GET, HEAD) and clients that send neither header pass.
  app.addHook('onRequest', app.loginManager.crossOriginProtection)

  // Bearer tokens belong to the API: anywhere else they are a mistake to
  // report, never a login of the pages (a stolen token must not log out
  // everywhere, confirm a login or get a cookie).
  app.addHook('onRequest', (request, reply, done) => {
    if (request.headers.authorization !== undefined && !request.url.startsWith('/api/')) {
      done(Object.assign(new Error('API tokens work only under /api/. Log in with your name and password to use the pages.'), { statusCode: 400 }))
      return
    }
    done()
  })

  app.get('/style.css', (request, reply) => reply.header('cache-control', 'max-age=3600').type('text/css; charset=utf-8').send(STYLE))
  app.get('/passkeys.js', (request, reply) => reply.header('cache-control', 'max-age=3600').type('text/javascript; charset=utf-8').send(PASSKEYS_SCRIPT))

  app.get('/', (request, reply) => render(reply, 'home', { title: 'Welcome' }))

  // Sign up and log in: only for visitors who are not logged in.
  app.get('/signup', { onRequest: loginProhibited }, (request, reply) =>
    render(reply, 'signup', { title: 'Sign up', values: {}, limits: LIMITS }))

  app.post('/signup', { onRequest: loginProhibited, preHandler: csrf }, async (request, reply) => {
    const name = normalizeName(field(request.body, 'name'))
    const grade = field(request.body, 'grade')
    const password = field(request.body, 'password')
    const values = { name: echo(name, LIMITS.name), grade, remember: field(request.body, 'remember') === 'yes' }
    const refuse = (statusCode, errors) =>
      render(reply, 'signup', { title: 'Sign up', values, limits: LIMITS, errors }, statusCode)

    const errors = problems(checkName(name), checkGrade(grade), checkNewPassword(password))
    if (errors.length > 0) return refuse(400, errors)
    const retryAfter = await attempts.signUpRefusal(request)
    if (retryAfter !== null) return tooManyAttempts(reply, retryAfter, 'Too many sign-ups from your address.')
    await attempts.signedUp(request)
    const row = db.createStudent({ name, grade: Number(grade), passwordHash: await hashPassword(password) })
    if (row === null) return refuse(409, [`The name “${name}” is taken. Choose another one.`])

    await app.loginManager.loginUser(request, reply, new Student(row), { remember: values.remember, method: 'password' })
    renewCsrfSecret(request, reply)
    return reply.redirect('/profile', 303)
  })

  app.get('/login', { onRequest: loginProhibited }, (request, reply) =>
    render(reply, 'login', { title: 'Log in', values: {}, next: app.loginManager.nextUrl(request, '') }))

  app.post('/login', { onRequest: loginProhibited, preHandler: csrf }, async (request, reply) => {
    const name = normalizeName(field(request.body, 'name'))
    const password = field(request.body, 'password')
    const values = { name: echo(name, LIMITS.name), remember: field(request.body, 'remember') === 'yes' }
    // `next` came through the form as a hidden field; nextUrl() keeps it only
    // when it is a path on this site.
    const next = app.loginManager.nextUrl(request, '')
    const refuse = (statusCode, errors) =>
      render(reply, 'login', { title: 'Log in', values, next, errors }, statusCode)

    const errors = problems(checkPresent('name', name, LIMITS.name), checkPresent('password', password, LIMITS.passwordMax))
    if (errors.length > 0) return refuse(400, errors)
    const row = db.studentByName(name)
    // A student without a password (made by an OpenID provider) matches none.
    const { retryAfter, matches } = await attempts.checkPassword(request, name, () => passwordMatches(password, row?.passwordHash ?? null))
    if (retryAfter !== null) return tooManyAttempts(reply, retryAfter)
    // One message for both: the page does not tell which names exist.
    if (!matches) return refuse(401, ['Wrong name or password.'])

    // "Remember me" checked: remembered for 60 days; unchecked (and by default),
    // a login that ends with the browser session.
    await app.loginManager.loginUser(request, reply, new Student(row), { remember: values.remember, method: 'password' })
    renewCsrfSecret(request, reply)
    return reply.redirect(app.loginManager.nextUrl(request, '/profile'), 303)
  })

  // A POST, with a CSRF token: another site cannot log you out. No guard:
  // logging out an anonymous visitor does nothing. With a store, the login
  // ends on the server too: a copy of the cookie is worth nothing after.
  app.post('/logout', { preHandler: csrf }, async (request, reply) => {
    // Not guarded: with Redis the user must be resolved before it is read.
    if ((await request.loadUser()).isAuthenticated) flash.set(reply, 'logged-out')
    await app.loginManager.logoutUser(request, reply)
    renewCsrfSecret(request, reply)
    return reply.redirect('/', 303)
  })

  app.get('/profile', { onRequest: loginRequired }, (request, reply) => renderProfile(request, reply))

  // The profile, with the student's passkeys; errors of adding one come back here.
  function renderProfile (request, reply, errors = [], statusCode = 200) {
    return render(reply, 'profile', {
      title: 'Profile',
      fresh: request.isFresh,
      passkeys: db.passkeysOf(request.currentUser.id).map((passkey) => ({ ...passkey, createdAt: utc(passkey.createdAt) })),
      passkeysHere: site.relyingParty(request) !== null,
      home: site.home(),
      errors
    }, statusCode)
  }

  // Changing the password needs a fresh login *and* the current password: a
  // fresh login can be forged or left open, the password cannot.
  // A student made by an OpenID provider has no password: the page then
  // asks for none ("Choose a password"), the fresh login is the proof.
  const passwordPage = (request) => request.currentUser.hasPassword ? 'Change password' : 'Choose a password'

  app.get('/password', { onRequest: freshLoginRequired }, (request, reply) =>
    render(reply, 'password', { title: passwordPage(request), limits: LIMITS }))

  app.post('/password', { onRequest: freshLoginRequired, preHandler: csrf }, async (request, reply) => {
    const current = field(request.body, 'current')
    const password = field(request.body, 'password')
    const student = request.currentUser
    const refuse = (statusCode, errors) => render(reply, 'password', { title: passwordPage(request), limits: LIMITS, errors }, statusCode)
    const errors = problems(
      student.hasPassword ? checkPresent('current password', current, LIMITS.passwordMax) : null,
      checkNewPassword(password),
      field(request.body, 'confirm') === password ? null : 'The two new passwords do not match.'
    )
    if (errors.length > 0) return refuse(400, errors)
    const { retryAfter, matches } = await attempts.checkPassword(request, student.name, async () =>
      !student.hasPassword || await passwordMatches(current, db.studentById(student.id).passwordHash))
    if (retryAfter !== null) return tooManyAttempts(reply, retryAfter)
    if (!matches) return refuse(401, ['Your current password is not that one.'])
    // A new password logs out every other device: new session version.
    const row = db.changePassword(student.id, await hashPassword(password))
    await logInAgain(request, reply, row)
    flash.set(reply, 'password-changed')
    return reply.redirect('/profile', 303)
  })

  // The re-authentication form (refreshRoute): the password again, then back
  // to the page that asked for a fresh login. It says why it asks.
  // It offers the student's password and passkeys, or only those the route
  // asks for: a route with `methods` sends them along (`methods=passkey,password`).
  app.get('/reauthenticate', { onRequest: loginRequired }, (request, reply) => renderReauthenticate(request, reply))

  function renderReauthenticate (request, reply, errors = [], statusCode = 200) {
    const methods = field(request.query, 'methods') || field(request.body, 'methods')
    const allowed = (method) => methods === '' || methods.split(',').includes(method)
    const student = request.currentUser
    return render(reply, 'reauthenticate', {
      title: 'Confirm it is you',
      reason: STALE_REASONS[methods === '' ? staleReason(request) : 'recent'],
      next: app.loginManager.nextUrl(request, ''),
      methods,
      password: allowed('password') && student.hasPassword,
      passkey: allowed('passkey') && db.passkeysOf(student.id).length > 0 && site.relyingParty(request) !== null,
      errors
    }, statusCode)
  }

  app.post('/reauthenticate', { onRequest: loginRequired, preHandler: csrf }, async (request, reply) => {
    const password = field(request.body, 'password')
    const refuse = (statusCode, errors) => renderReauthenticate(request, reply, errors, statusCode)

    const invalid = checkPresent('password', password, LIMITS.passwordMax)
    if (invalid !== null) return refuse(400, [invalid])
    const student = request.currentUser
    const { retryAfter, matches } = await attempts.checkPassword(request, student.name, () =>
      passwordMatches(password, db.studentById(student.id).passwordHash))
    if (retryAfter !== null) return tooManyAttempts(reply, retryAfter)
    if (!matches) return refuse(401, ['Wrong password.'])

    // Fresh again, as a new login (a copy of the old cookie no longer works);
    // the login now says it was confirmed with a password.
    await app.loginManager.confirmLogin(request, reply, { method: 'password' })
    return reply.redirect(app.loginManager.nextUrl(request, '/profile'), 303)
  })

  // Why this login is not fresh: its fresh cookie is gone with the browser
  // session, or it was sent from another browser or address ('basic' session
  // protection), or it is too old.
  function staleReason (request) {
    if (request.isFresh) return 'fresh'
    if (request.clientChanged) return 'client'
    return request.cookies[app.loginManager.config.cookieName.isFresh] === undefined ? 'remembered' : 'timeout'
  }

  // "Log out everywhere": a new session version makes every cookie issued
  // before load nobody; then this device gets a cookie under the new version.
  // It needs a fresh login: a stolen, remembered cookie must not lock the
  // student out of their other devices.
  app.get('/logout-everywhere', { onRequest: freshLoginRequired }, (request, reply) =>
    render(reply, 'logout-everywhere', { title: 'Log out everywhere else' }))

  app.post('/logout-everywhere', { onRequest: freshLoginRequired, preHandler: csrf }, async (request, reply) => {
    const row = db.revokeSessions(request.currentUser.id)
    await logInAgain(request, reply, row)
    flash.set(reply, 'logged-out-others')
    return reply.redirect('/profile', 303)
  })

  // After a revocation: this device logs in again under the new session
  // version, as remembered and as fresh as it was. The records of the old
  // version's logins are left to expire: their cookies already load nobody,
  // and the loader can then tell those devices why (userLoader above).
  async function logInAgain (request, reply, row) {
    const { remembered, method } = app.loginManager.loginInfo(request)
    await app.loginManager.loginUser(request, reply, new Student(row), { remember: remembered, fresh: request.isFresh, method })
  }

  // How each login was made, as "Your devices" says it.
  // Without a prototype: a method name such as `constructor` names nothing.
  const methods = Object.assign(Object.create(null), { password: 'with a password', passkey: 'with a passkey', oidc: `with ${oidc?.name}` })

  // "Your devices": every live login of the student, as the store has it.
  app.get('/devices', { onRequest: loginRequired }, async (request, reply) => {
    const thisLogin = app.loginManager.loginInfo(request).loginId
    const logins = (await app.loginManager.listLogins(request.currentUser)).map((login) => ({
      ...login,
      thisDevice: login.loginId === thisLogin,
      createdAt: utc(login.createdAt),
      lastSeenAt: utc(login.lastSeenAt),
      method: methods[login.method]
    }))
    return render(reply, 'devices', { title: 'Your devices', logins })
  })

  // Ends one other login. It needs a fresh login, as "log out everywhere"
  // does; a refusal comes back to GET /devices after re-authenticating.
  app.post('/devices', { onRequest: freshLoginRequired, preHandler: csrf }, async (request, reply) => {
    const login = field(request.body, 'login')
    // The page's buttons always send one: a post without it is not theirs.
    if (login === '') return render(reply, 'error', { title: 'Error', message: 'Choose the device to log out.' }, 400)
    const ended = await app.loginManager.revokeLogin(request.currentUser, login)
    flash.set(reply, ended ? 'device-logged-out' : 'device-already-gone')
    return reply.redirect('/devices', 303)
  })

  // Deleting the account needs a password or a passkey entered in the last
  // five minutes (RECENT): the guard sends anyone else to /reauthenticate,
  // with the methods it accepts. The student, their passkeys and every login
  // go; this browser is logged out.
  app.get('/delete-account', { config: { login: RECENT } }, (request, reply) =>
    render(reply, 'delete-account', { title: 'Delete my account' }))

  app.post('/delete-account', { config: { login: RECENT }, preHandler: csrf }, async (request, reply) => {
    const student = request.currentUser
    db.deleteStudent(student.id)
    await app.loginManager.revokeAllLogins(student)
    await app.loginManager.logoutUser(request, reply)
    renewCsrfSecret(request, reply)
    flash.set(reply, 'account-deleted')
    return reply.redirect('/', 303)
  })

  // API tokens: a credential that outlives cookies, so the page needs a fresh
  // login. A new token is made by a POST and shown by the GET it redirects to,
  // once: a reload shows no token and makes no new one.
  const tokensToShow = new Map() // student id → { token, expiresAt, until }

  app.get('/api-token', { onRequest: freshLoginRequired }, (request, reply) => {
    const student = request.currentUser
    const pending = tokensToShow.get(student.id)
    tokensToShow.delete(student.id)
    const token = pending !== undefined && pending.until > Date.now() ? pending.token : null
    return render(reply, 'api-token', {
      title: 'Your API token',
      token,
      expiresAt: student.apiTokenExpiresAt === null ? null : new Date(student.apiTokenExpiresAt * 1000),
      now: new Date(Date.now()),
      tokenDays: API_TOKEN_DAYS,
      origin: `${request.protocol}://${request.host}`
    })
  })

  app.post('/api-token', { onRequest: freshLoginRequired, preHandler: csrf }, (request, reply) => {
    const { token } = db.createApiToken(request.currentUser.id)
    tokensToShow.set(request.currentUser.id, { token, until: Date.now() + SHOW_TOKEN_FOR_MS })
    return reply.redirect('/api-token', 303)
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

  // Passkeys and "Sign in with …" (passkeys.js, oidc.js): their round trips
  // keep their state in signed, one-shot flow cookies (flow-state.js).
  const flows = {
    passkey: db.flowState({ name: `${cookiePrefix}passkey-flow`, sameSite: 'strict', secure: https, lifetime: CEREMONY_SECONDS }),
    oidc: db.flowState({ name: `${cookiePrefix}oidc-flow`, sameSite: 'lax', secure: https, lifetime: OIDC_FLOW_SECONDS })
  }
  const portal = { db, flows, site, csrf, render, flash, attempts, tooManyAttempts, renewCsrfSecret, renderProfile, renderReauthenticate, Student }
  passkeyRoutes(app, portal)
  if (oidc !== null) oidcRoutes(app, portal, oidc)

  app.setNotFoundHandler((request, reply) =>
    render(reply, 'error', { title: 'Not found', message: 'There is no page at this address.' }, 404))

  app.setErrorHandler((error, request, reply) => {
    if (error.code === 'PORTAL_PASSWORDS_BUSY') {
      reply.header('retry-after', '1')
      return render(reply, 'error', { title: 'Busy', message: error.message }, 503)
    }
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

// A login's device, as "Your devices" shows it.
function deviceOf (record) {
  return record.userAgent || 'Unknown browser'
}

// Seconds since the epoch, as the pages show times.
function utc (seconds) {
  return `${new Date(seconds * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC`
}

// `Authorization: Bearer portal_…`. Anything else is no token.
function bearerToken (header) {
  const match = /^Bearer +(portal_[A-Za-z0-9_-]{43})$/i.exec(header ?? '')
  return match === null ? null : match[1]
}

module.exports = { buildApp, Student, LIMITS }
