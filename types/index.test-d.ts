// Type tests run by a plain `npx tsd` / `npm run test:types`.
//
// How tsd picks files: when `types/index.test-d.ts` (the typings file name
// with `.test-d.ts`) exists, a plain `tsd` compiles THIS FILE ONLY; the other
// `*.test-d.ts` files of this folder run with `tsd --files <file>`. tsd puts
// every file of a run into one TypeScript program, so a module augmentation
// (`interface LoginTypes { ... }`) in one file would apply to all of them:
// each `LoginTypes` configuration therefore lives in its own file and run.
//
//   index.test-d.ts                LoginTypes { user: Student }   (this file)
//   default-user.test-d.ts         no augmentation
//   anonymous-user.test-d.ts       LoginTypes { anonymousUser: Guest }
//   app-named-user.test-d.ts       the app's classes named User and AnonymousUser
//   app-named-current-user.test-d.ts  the app's class named CurrentUser
//
// (types/forms/ compiles the import forms with tsc, and a script file that
// declares the user type.)
//
// This file declares the app's user type, the way an app does it once, and
// leaves the anonymous user at its default: so one plain run checks both
// branches of the lookup (the declared `user`, the default `anonymousUser`)
// besides the plugin's API.

import Fastify, {
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
  type FastifyTypeProvider,
  type onRequestHookHandler,
  type preHandlerHookHandler
} from 'fastify'
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import fastifyAuth, { type FastifyAuthFunction } from '@fastify/auth'
import fastifySwagger, { type SwaggerTransform } from '@fastify/swagger'
import fastifyLogin, {
  fastifyLogin as namedFastifyLogin,
  UserMixin,
  AnonymousUserMixin,
  type AuthFunction,
  type LoginCurrentUser,
  type FastifyLoginOptions,
  type Guard,
  type GuardHandler,
  type GuardOptions,
  type LoginRouteConfig,
  type LoginConfig,
  type LoginManager,
  type LoginInfo,
  type LoginRecord,
  type LoginStore,
  type MaybePromise,
  type LoginUser,
  type UserLoader,
  memoryStore,
  redisStore
} from '..'
import fastifyLoginCjs = require('..')
import * as fastifyLoginNamespace from '..'

class Student extends UserMixin {
  constructor (public id: number, public name: string, public grade: number) {
    super()
  }
}

declare module '..' {
  interface LoginTypes {
    user: Student
  }
}

const secret = 'a-secret-of-at-least-thirty-two-characters'
const userLoader = (id: string): Student | null => (id === '1' ? new Student(1, 'Ada', 3) : null)

// 1. Import forms: ESM default, named, CJS `require` -------------------------

type Plugin = FastifyPluginAsync<FastifyLoginOptions>

expectAssignable<Plugin>(fastifyLogin)
expectAssignable<Plugin>(namedFastifyLogin)
// The classes hang off the plugin, as they do at run time.
expectType<typeof UserMixin>(fastifyLogin.UserMixin)
expectType<typeof AnonymousUserMixin>(namedFastifyLogin.AnonymousUserMixin)
expectType<typeof namedFastifyLogin>(fastifyLogin)
expectType<typeof namedFastifyLogin>(fastifyLoginCjs.default)
expectType<typeof namedFastifyLogin>(fastifyLoginCjs.fastifyLogin)
expectAssignable<Plugin>(fastifyLoginCjs)
expectType<Parameters<Plugin>>({} as Parameters<typeof fastifyLoginCjs>)
expectType<ReturnType<Plugin>>(fastifyLoginCjs(Fastify(), { secret }))
expectType<typeof UserMixin>(fastifyLoginCjs.UserMixin)
expectType<typeof AnonymousUserMixin>(fastifyLoginCjs.AnonymousUserMixin)
// `import * as`: the classes and the plugin off the namespace. (The ESM,
// CommonJS and bundler resolutions of every form: types/forms/.)
expectType<typeof UserMixin>(fastifyLoginNamespace.UserMixin)
expectType<typeof AnonymousUserMixin>(fastifyLoginNamespace.default.AnonymousUserMixin)
expectAssignable<Plugin>(fastifyLoginNamespace.default)
expectAssignable<Plugin>(fastifyLoginNamespace.fastifyLogin)

{
  const app = Fastify()
  app.register(fastifyLogin, { secret, userLoader })
  app.register(namedFastifyLogin, { secret, userLoader })
  app.register(fastifyLoginCjs, { secret, userLoader })
  app.register(fastifyLoginCjs.default, { secret, userLoader })
  app.register(fastifyLoginNamespace.default, { secret, userLoader })
  app.register(fastifyLogin, { secret, userLoader, prefix: '/auth' })
  app.register(fastifyLogin, (instance) => ({ secret, userLoader: () => (instance.hasDecorator('db') ? null : null) }))
  // Every option is optional: the secret can come from @fastify/cookie and
  // the loader from `app.loginManager.userLoader()`.
  app.register(fastifyLogin)
  app.register(fastifyLogin, {})
  expectError(app.register(fastifyLogin, { secret, userLoader, unknownOption: true }))
  expectError(app.register(fastifyLoginCjs, { secret: 42 }))
}

// 2. Options -----------------------------------------------------------------

// secret: string, Buffer, arrays of them (the first signs, all verify).
expectType<string | Buffer | ReadonlyArray<string | Buffer> | undefined>({} as FastifyLoginOptions['secret'])
expectAssignable<FastifyLoginOptions>({ secret: [secret] as const })
expectAssignable<FastifyLoginOptions>({ secret })
expectAssignable<FastifyLoginOptions>({ secret: Buffer.alloc(32) })
expectAssignable<FastifyLoginOptions>({ secret: [secret, 'the-previous-secret-of-32-characters'] })
expectAssignable<FastifyLoginOptions>({ secret: [Buffer.alloc(32), secret] })
expectNotAssignable<FastifyLoginOptions>({ secret: 42 })
expectNotAssignable<FastifyLoginOptions>({ secret: [secret, 42] })
expectNotAssignable<FastifyLoginOptions>({ secret: null })
expectError(Fastify().register(fastifyLogin, { secret: 42, userLoader }))

// userLoader: sync or async, Student | null | undefined, gets the request.
expectAssignable<FastifyLoginOptions>({ userLoader })
expectAssignable<FastifyLoginOptions>({ userLoader: () => null })
expectAssignable<FastifyLoginOptions>({ userLoader: () => undefined })
expectAssignable<FastifyLoginOptions>({ userLoader: async (id: string) => new Student(Number(id), 'Ada', 3) })
expectAssignable<FastifyLoginOptions>({ userLoader: async () => null })
expectAssignable<FastifyLoginOptions>({
  userLoader: (id, request) => {
    expectType<string>(id)
    expectType<FastifyRequest>(request)
    return undefined
  }
})
expectType<UserLoader | undefined>({} as FastifyLoginOptions['userLoader'])
expectNotAssignable<FastifyLoginOptions>({ userLoader: () => 42 })
expectNotAssignable<FastifyLoginOptions>({ userLoader: async () => 42 })
expectNotAssignable<FastifyLoginOptions>({ userLoader: (id: number) => new Student(id, 'Ada', 3) })
// A plain UserMixin lacks the Student fields the app declared.
expectNotAssignable<FastifyLoginOptions>({ userLoader: () => new UserMixin() })
expectError(Fastify().register(fastifyLogin, { secret, userLoader: () => 42 }))

// Cookies. (expectNotAssignable widens its argument: a bare 'Lax' would be
// checked as `string`, so string literals get `as const` there.)
expectType<'lax' | 'strict' | 'none' | undefined>({} as FastifyLoginOptions['cookieSameSite'])
expectAssignable<FastifyLoginOptions>({ cookieSameSite: 'lax' })
expectAssignable<FastifyLoginOptions>({ cookieSameSite: 'strict' })
expectAssignable<FastifyLoginOptions>({ cookieSameSite: 'none' })
expectNotAssignable<FastifyLoginOptions>({ cookieSameSite: 'Lax' as const })
expectNotAssignable<FastifyLoginOptions>({ cookieSameSite: true })
expectError(Fastify().register(fastifyLogin, { secret, cookieSameSite: 'Strict' }))
expectType<boolean | 'auto' | undefined>({} as FastifyLoginOptions['cookieSecure'])
expectAssignable<FastifyLoginOptions>({ cookieSecure: true })
expectAssignable<FastifyLoginOptions>({ cookieSecure: false })
expectAssignable<FastifyLoginOptions>({ cookieSecure: 'auto' })
expectNotAssignable<FastifyLoginOptions>({ cookieSecure: 'always' as const })
expectError(Fastify().register(fastifyLogin, { secret, cookieSecure: 'https' }))
expectAssignable<FastifyLoginOptions>({
  cookieName: { account: 'session' },
  cookieRememberMe: { isFresh: true },
  cookieDuration: 3600,
  cookieHttpOnly: true,
  cookiePath: '/',
  cookieDomain: 'example.com',
  loginRequiredRoute: '/login',
  loginProhibitedRoute: null
})
expectNotAssignable<FastifyLoginOptions>({ cookieName: { account: 1 } })
expectNotAssignable<FastifyLoginOptions>({ cookieDuration: '60d' })

// Messages: a string, or a function of the request.
expectAssignable<FastifyLoginOptions>({ loginRequiredMessage: 'Please log in.' })
expectAssignable<FastifyLoginOptions>({
  loginRequiredMessage: (request) => {
    expectType<FastifyRequest>(request)
    return `Please log in to see ${request.url}.`
  },
  loginProhibitedMessage: () => 'Please log out.'
})
expectNotAssignable<FastifyLoginOptions>({ loginRequiredMessage: 401 })
expectNotAssignable<FastifyLoginOptions>({ loginProhibitedMessage: () => 403 })

// The anonymous user: a class, or a factory function.
class Visitor extends AnonymousUserMixin {
  readonly visitedAt = Date.now()
}
expectAssignable<FastifyLoginOptions>({ anonymousUser: AnonymousUserMixin })
expectAssignable<FastifyLoginOptions>({ anonymousUser: Visitor })
expectAssignable<FastifyLoginOptions>({ anonymousUser: () => new Visitor() })
expectNotAssignable<FastifyLoginOptions>({ anonymousUser: new AnonymousUserMixin() })
// A logged-in user is no anonymous user, nor is a class that needs arguments.
expectNotAssignable<FastifyLoginOptions>({ anonymousUser: UserMixin })
expectNotAssignable<FastifyLoginOptions>({ anonymousUser: () => new Student(1, 'Ada', 3) })
expectNotAssignable<FastifyLoginOptions>({
  anonymousUser: class extends AnonymousUserMixin {
    constructor (public readonly locale: string) {
      super()
    }
  }
})

// 3. app.loginManager --------------------------------------------------------

{
  const app = Fastify()
  const manager = app.loginManager
  expectType<LoginManager>(manager)

  // config: the resolved options, read-only all the way down.
  expectType<LoginConfig>(manager.config)
  expectType<number>(manager.config.cookieDuration)
  expectType<'lax' | 'strict' | 'none'>(manager.config.cookieSameSite)
  expectType<boolean | 'auto'>(manager.config.cookieSecure)
  expectType<string | undefined>(manager.config.cookieDomain)
  expectType<string | null>(manager.config.loginRequiredRoute)
  expectType<string>(manager.config.cookieName.account)
  expectError(manager.config.cookieDuration = 60)
  expectError(manager.config.cookieName.account = 'session')
  expectError(manager.config.cookieRememberMe.isFresh = true)
  expectError(manager.config = {} as LoginConfig)
  expectError(manager.config.secret)

  // The setters return the manager, so they chain; handlers may be async.
  expectType<LoginManager>(manager.userLoader(userLoader))
  expectType<LoginManager>(manager.userLoader(async (id) => new Student(Number(id), 'Ada', 3)))
  expectType<LoginManager>(manager.unauthorizedHandler((request, reply) => reply.redirect(`/login?next=${request.url}`)))
  expectType<LoginManager>(manager.authorizedHandler(async (_request, reply) => {
    await reply.code(403).send('Already logged in')
  }))
  expectType<LoginManager>(
    manager
      .userLoader(userLoader)
      .unauthorizedHandler(async () => ({ error: 'Unauthorized' }))
      .authorizedHandler(() => 'Forbidden')
  )
  expectAssignable<GuardHandler>(async (request: FastifyRequest, reply: FastifyReply) => reply.send(request.url))
  expectError(manager.userLoader(() => 42))
  expectError(manager.userLoader(async () => new UserMixin()))
  expectError(manager.unauthorizedHandler('/login'))
  expectError(manager.loginRequired = manager.loginProhibited)

  // The guards: route `onRequest` / `preHandler`, alone or in arrays, and hooks.
  expectType<Guard>(manager.loginRequired)
  expectType<Guard>(manager.loginProhibited)
  expectAssignable<onRequestHookHandler>(manager.loginRequired)
  // Callback style, like the hooks: (request, reply, done).
  app.get('/called', async (request, reply) => {
    expectType<void>(manager.loginRequired.call(app, request, reply, (error?: Error) => { expectType<Error | undefined>(error) }))
    return 'ok'
  })
  expectAssignable<preHandlerHookHandler>(manager.loginProhibited)
  app.get('/profile', { onRequest: manager.loginRequired }, async (request) => request.currentUser.getId())
  app.get('/login', { onRequest: [manager.loginProhibited] }, async () => 'form')
  app.get('/settings', { preHandler: manager.loginRequired }, async () => 'settings')
  app.get('/signup', { preHandler: [manager.loginProhibited] }, async () => 'form')
  app.post<{ Body: { name: string }, Querystring: { next?: string } }>(
    '/grades',
    { onRequest: manager.loginRequired, preHandler: manager.loginRequired },
    async (request) => request.body.name
  )
  app.route({ method: 'GET', url: '/route', onRequest: manager.loginRequired, handler: async () => 'ok' })
  app.addHook('onRequest', manager.loginRequired)
  app.addHook('preHandler', manager.loginProhibited)
  app.register(async (scope) => {
    scope.addHook('onRequest', scope.loginManager.loginRequired)
    scope.addHook('preHandler', scope.loginManager.loginRequired)
  })

  app.post('/login', async (request, reply) => {
    const student = new Student(1, 'Ada', 3)
    expectType<MaybePromise<boolean>>(manager.loginUser(request, reply, student))
    expectType<MaybePromise<boolean>>(manager.loginUser(request, reply, student, { remember: true }))
    expectType<MaybePromise<boolean>>(manager.loginUser(request, reply, student, {}))
    expectError(manager.loginUser(request, reply, student, { remember: 'yes' }))
    expectError(manager.loginUser(request, reply, student, { rememberMe: true }))
    expectError(manager.loginUser(request, reply, new UserMixin()))
    expectError(manager.loginUser(request, reply, new AnonymousUserMixin()))
    expectError(manager.loginUser(request, reply, null))
    expectError(manager.loginUser(request, reply))
    expectType<MaybePromise<void>>(manager.logoutUser(request, reply))
    expectType<boolean>(await manager.loginUser(request, reply, student))
    expectError(manager.logoutUser(request))
    return 'ok'
  })
}

// 4. Request decorators ------------------------------------------------------

Fastify().get('/me', async (request) => {
  expectType<LoginCurrentUser>(request.currentUser)
  expectType<Student | AnonymousUserMixin>(request.currentUser)
  expectType<Promise<Student | AnonymousUserMixin>>(request.loadUser())
  expectType<Student | AnonymousUserMixin>(await request.loadUser())
  expectType<boolean>(request.isFresh)
  expectError(request.currentUser = new AnonymousUserMixin())
  expectError(request.isFresh = true)
  expectError(request.loadUser('1'))
  return request.currentUser.getId()
})

// 5. The declared user type --------------------------------------------------

expectType<Student>({} as LoginUser)

declare const request: FastifyRequest
const current = request.currentUser
expectType<Student | AnonymousUserMixin>(current)
expectError(current.name)
expectError(current.equals(current))
expectType<string | null>(current.getId())
expectType<boolean>(current.isActive)
expectType<boolean>(current.isAuthenticated)

if (request.currentUser.isAuthenticated) {
  expectType<Student>(request.currentUser)
  expectType<string>(request.currentUser.name)
  expectType<number>(request.currentUser.grade)
  expectType<string>(request.currentUser.getId())
  expectType<false>(request.currentUser.isAnonymous)
} else {
  expectType<AnonymousUserMixin>(request.currentUser)
  expectType<null>(request.currentUser.getId())
  expectError(request.currentUser.name)
}

if (current.isAnonymous) {
  expectType<AnonymousUserMixin>(current)
} else {
  expectType<Student>(current)
}

if (!current.isAuthenticated) {
  expectError(current.grade)
} else {
  expectType<number>(current.grade)
}

// The user type reaches a typed route's request too.
Fastify().withTypeProvider<FastifyTypeProvider>().get<{ Params: { id: string } }>(
  '/students/:id',
  { onRequest: Fastify().loginManager.loginRequired },
  async (request) => {
    const user = await request.loadUser()
    return user.isAuthenticated ? `${user.name} ${request.params.id}` : null
  }
)

// 6. The rest of the public API ----------------------------------------------

// Loading the user from the request itself (API keys), and the new options.
expectAssignable<FastifyLoginOptions>({
  requestLoader: async (request: FastifyRequest) => (request.headers.authorization === undefined ? null : new Student(1, 'Ada', 3)),
  refreshRoute: '/reauthenticate',
  needsRefreshMessage: (request: FastifyRequest) => `Please confirm your password for ${request.url}.`,
  nextField: false,
  exemptMethods: ['OPTIONS', 'HEAD'],
  sessionProtection: 'strong',
  cookieRefreshEachRequest: true
})
expectAssignable<FastifyLoginOptions>({ requestLoader: () => undefined, nextField: 'return_to', sessionProtection: false })
expectNotAssignable<FastifyLoginOptions>({ requestLoader: () => new UserMixin() })
expectNotAssignable<FastifyLoginOptions>({ sessionProtection: 'paranoid' as const })
expectNotAssignable<FastifyLoginOptions>({ sessionProtection: true })
expectNotAssignable<FastifyLoginOptions>({ nextField: true })
expectNotAssignable<FastifyLoginOptions>({ exemptMethods: 'OPTIONS' })
expectError(Fastify().register(fastifyLogin, { secret, sessionProtection: 'basic', refreshRoute: 42 }))

{
  const app = Fastify()
  const manager = app.loginManager
  expectType<'basic' | 'strong' | false>(manager.config.sessionProtection)
  expectType<string | false>(manager.config.nextField)
  expectType<readonly string[]>(manager.config.exemptMethods)
  expectError(manager.config.exemptMethods.push('GET'))
  expectType<LoginManager>(manager.requestLoader((request) => (request.ip === '127.0.0.1' ? new Student(1, 'Ada', 3) : null)))
  expectType<LoginManager>(manager.needsRefreshHandler(async (_request, reply) => reply.redirect('/reauthenticate')))
  expectError(manager.requestLoader(async () => 'api-key-user'))

  // The fresh guard, and guards with their own route or message.
  expectType<Guard>(manager.freshLoginRequired)
  expectType<Guard>(manager.guard({ mode: 'required', route: '/api-login' }))
  expectType<Guard>(manager.guard({ mode: 'prohibited', message: () => 'Log out first.' }))
  expectType<Guard>(manager.guard({ mode: 'fresh', route: null }))
  expectError(manager.guard({ mode: 'admin' }))
  expectError(manager.guard('required'))
  expectError(manager.guard({ route: '/login' }))
  app.get('/password', { onRequest: manager.freshLoginRequired }, async () => 'form')
  app.register(async (api) => {
    api.addHook('onRequest', api.loginManager.guard({ mode: 'required', message: 'API key required' }))
  })

  // ...or declared in the route's config.
  expectAssignable<LoginRouteConfig>('required')
  expectAssignable<LoginRouteConfig>({ mode: 'fresh', route: '/reauthenticate' })
  expectAssignable<GuardOptions>({ mode: 'prohibited', message: (request: FastifyRequest) => request.url })
  expectNotAssignable<LoginRouteConfig>('admin' as const)
  expectNotAssignable<GuardOptions>({ mode: 'required' as const, route: 42 })
  app.get('/dashboard', { config: { login: 'required' } }, async () => 'dashboard')
  app.get('/login-form', { config: { login: { mode: 'prohibited', route: '/' } } }, async () => 'form')
  app.route({ method: 'POST', url: '/email', config: { login: 'fresh' }, handler: async () => 'ok' })
  // Step-up: fresh, recent enough, by a method the route accepts.
  app.delete('/account', { config: { login: { mode: 'fresh', maxAge: 300, methods: ['passkey', 'password'] } } }, async (request) => {
    expectType<Student>(request.currentUser)
    return 'deleted'
  })
  expectType<Guard>(manager.guard({ mode: 'fresh', maxAge: 60 }))
  expectError(manager.guard({ mode: 'required', maxAge: 60 }))
  expectError(manager.guard({ mode: 'prohibited', methods: ['passkey'] }))
  expectError(app.get('/x', { config: { login: { mode: 'fresh', maxAge: '5m' } } }, async () => 'x'))
  // An unknown key (a typo) does not compile where the object is typed as a guard's options.
  expectError(manager.guard({ mode: 'fresh', method: ['passkey'] }))
  expectError<LoginRouteConfig>({ mode: 'fresh', maxAge: 60, methds: ['passkey'] })
  expectError(app.get('/admin', { config: { login: 'admin' } }, async () => 'admin'))
  app.get('/config', async (request) => {
    expectType<LoginRouteConfig | undefined>(request.routeOptions.config.login)
    return 'ok'
  })

  app.post('/session', async (request, reply) => {
    const student = new Student(1, 'Ada', 3)
    expectType<MaybePromise<boolean>>(manager.loginUser(request, reply, student, { remember: false, duration: 3600, fresh: false, force: true }))
    expectError(manager.loginUser(request, reply, student, { duration: '1h' }))
    expectType<MaybePromise<void>>(manager.confirmLogin(request, reply))
    expectType<MaybePromise<void>>(manager.confirmLogin(request, reply, { method: 'passkey' }))
    expectError(manager.confirmLogin(request, reply, { method: 42 }))
    expectType<MaybePromise<boolean>>(manager.loginUser(request, reply, student, { method: 'oidc:school' }))
    expectType<MaybePromise<boolean>>(manager.loginUser(request, reply, student, { method: null }))
    expectType<string>(manager.nextUrl(request))
    const info = manager.loginInfo(request)
    expectType<LoginInfo | null>(info)
    if (info !== null) {
      expectType<'cookie' | 'request'>(info.source)
      expectType<boolean>(info.remembered)
      expectType<number | null>(info.expiresAt)
      expectType<string | null>(info.method)
      expectType<number | null>(info.authenticatedAt)
      expectType<boolean>(info.bound)
    }
    expectType<string>(manager.nextUrl(request, '/home'))
    expectError(manager.nextUrl(request, null))
    return reply.redirect(manager.nextUrl(request))
  })

  // For tests: the cookies a login would set.
  expectType<Promise<Record<string, string>>>(manager.cookiesFor(new Student(1, 'Ada', 3)))
  expectType<Promise<Record<string, string>>>(manager.cookiesFor(new Student(1, 'Ada', 3), { remember: true, fresh: false, duration: 60, userAgent: 'tap', ip: '10.0.0.1' }))
  expectError(manager.cookiesFor(new AnonymousUserMixin()))
  expectError(manager.cookiesFor(new Student(1, 'Ada', 3), { ip: 10 }))

  // Events, with typed arguments.
  expectType<LoginManager>(manager.on('login', (request, user) => {
    expectType<FastifyRequest>(request)
    expectType<Student>(user)
  }))
  manager.on('logout', (_request, user) => { expectType<Student>(user) })
  manager.once('loginConfirmed', (_request, user) => { expectType<Student>(user) })
  manager.on('userLoadedFromCookie', (_request, user) => { expectType<Student>(user) })
  manager.on('userLoadedFromRequest', async (_request, user) => { expectType<number>(user.grade) })
  manager.on('unauthorized', (request) => { expectType<FastifyRequest>(request) })
  manager.on('needsRefresh', (request, requirement) => {
    expectType<FastifyRequest>(request)
    expectType<readonly string[] | null>(requirement.methods)
    expectType<number | null>(requirement.maxAge)
  })
  manager.on('loginRevoked', (loginId, userId) => { expectType<[string, string]>([loginId, userId]) })
  manager.on('loginEvicted', (request, record) => { expectType<[FastifyRequest, string]>([request, record.userAgent]) })
  manager.on('loginReuseDetected', (_request, record) => { expectType<string | null>(record.method) })
  manager.on('loginBound', (request, record) => { expectType<[FastifyRequest, boolean, string | null]>([request, record.bound, record.deviceKey]) })
  manager.on('boundProofMissing', (request) => { expectType<FastifyRequest>(request) })
  manager.on('sessionProtected', (request) => { expectType<FastifyRequest>(request) })
  expectError(manager.on('login', (_request: FastifyRequest, user: number) => user))
  expectError(manager.emit('login', {} as FastifyRequest))
}

// Logins the server can end: stores and the methods over them.
{
  const app = Fastify()
  const store: LoginStore = memoryStore()
  app.register(fastifyLogin, { secret, userLoader, store, idleTimeout: 1800, sessionDuration: 3600, freshDuration: null, storeCacheWindow: 5, trustedOrigins: ['https://a.example'] })
  app.register(fastifyLogin, { secret, userLoader, store, realm: 'admin', maxLogins: 1, rotation: { every: 300, grace: 30 } })
  app.register(fastifyLogin, { secret, userLoader, store, maxLogins: (user) => user.grade > 10 ? 5 : 2, rotation: false })
  expectError(app.register(fastifyLogin, { secret, userLoader, store, rotation: true }))
  // Device binding: on, off, or where and for how long.
  app.register(fastifyLogin, { secret, userLoader, store, deviceBinding: true, cookieName: { bound: '__Host-bound' } })
  app.register(fastifyLogin, { secret, userLoader, store, deviceBinding: { path: '/dbsc', credentialDuration: 900 } })
  app.register(fastifyLogin, { secret, userLoader, store, deviceBinding: {} })
  expectError(app.register(fastifyLogin, { secret, userLoader, store, deviceBinding: { credentialDuration: '10m' } }))
  expectError(app.register(fastifyLogin, { secret, userLoader, store, deviceBinding: 'on' }))
  const binding = app.loginManager.config.deviceBinding
  if (binding !== false) expectType<[string, number]>([binding.path, binding.credentialDuration])
  expectType<string>(app.loginManager.config.cookieName.bound)
  expectError(app.register(fastifyLogin, { secret, userLoader, store, maxLogins: '5' }))
  expectType<LoginStore>(redisStore({ client: {}, prefix: 'app:' }))
  expectError(redisStore({ prefix: 'app:' }))
  expectError(app.register(fastifyLogin, { secret, userLoader, store: {} }))
  const manager = app.loginManager
  const student = new Student(1, 'Ada', 3)
  expectType<Promise<LoginRecord[]>>(manager.listLogins(student))
  expectType<Promise<LoginRecord[]>>(manager.listLogins('1'))
  expectType<Promise<boolean>>(manager.revokeLogin(student, 'id'))
  expectType<Promise<number>>(manager.revokeAllLogins('1'))
  app.get('/devices', { onRequest: manager.crossOriginProtection }, async (request) => {
    expectType<number>(await manager.revokeOtherLogins(request))
    expectType<string | null | undefined>(manager.loginInfo(request)?.loginId)
    return 'ok'
  })
  const custom: LoginStore = {
    create: async () => {},
    get: () => null,
    touch: () => {},
    delete: async () => true,
    list: () => []
  }
  expectAssignable<LoginStore>(custom)
  // The optional methods: the fast path, rotation, realms, device binding.
  expectAssignable<LoginStore>({
    ...custom,
    touch: async (_loginId: string, _lastSeenAt: number, _userId: string, _expiresAt?: number) => {},
    advanceGeneration: async () => true,
    realm: async (tags: readonly string[]) => tags[0],
    bind: (_loginId: string, _userId: string, _deviceKey: string, _deviceSession: string) => true,
    useChallenge: async (_loginId: string, _userId: string, _issuedAt: number) => false,
    subscribe: (listener) => {
      listener.revoked([{ loginId: 'a', userId: 'b', expiresAt: 1 }])
      listener.listening(true)
      listener.heard(Infinity)
      listener.trustedSince(0)
    }
  })
  manager.on('duplicateCookie', (request) => expectType<string>(request.url))
  manager.on('crossOriginRefused', (request) => expectType<string>(request.url))
}

// @fastify/auth: `authenticate` is one of its checks, beside the app's own.
{
  const app = Fastify()
  app.register(fastifyAuth)
  app.register(fastifyLogin, { secret, userLoader })
  const bearer: FastifyAuthFunction = (request, _reply, done) => {
    done(request.headers.authorization === 'Bearer key' ? undefined : new Error('no key'))
  }
  expectAssignable<FastifyAuthFunction>(app.loginManager.authenticate)
  expectType<AuthFunction>(app.loginManager.authenticate)
  app.get('/api/either', { preHandler: app.auth([app.loginManager.authenticate, bearer], { relation: 'or' }) }, () => 'ok')
  app.get('/api/both', { preHandler: app.auth([app.loginManager.authenticate, bearer], { relation: 'and' }) }, () => 'ok')
  app.get('/api/nested', { preHandler: app.auth([[app.loginManager.authenticate, bearer], bearer]) }, () => 'ok')
  app.get('/api/hook', { onRequest: app.loginManager.authenticate }, () => 'ok')
  expectError(app.loginManager.authenticate({} as FastifyRequest, {} as FastifyReply))
}

// @fastify/swagger: a global transform, handed over, keeps its own type.
{
  const app = Fastify()
  app.register(fastifyLogin, { secret, userLoader })
  const transform: SwaggerTransform = ({ schema, url }) => ({ schema, url })
  expectType<SwaggerTransform>(app.loginManager.swaggerTransform(transform))
  app.register(fastifySwagger, { openapi: {}, transform: app.loginManager.swaggerTransform(transform) })
  expectError(app.loginManager.swaggerTransform('transform'))
}

// 7. Types that follow the guards --------------------------------------------

// A route whose own config guards it: `currentUser` is the app's user, with
// no check and no cast.
{
  const app = Fastify()
  app.get('/profile', { config: { login: 'required' } }, async (request) => {
    expectType<Student>(request.currentUser)
    expectType<string>(request.currentUser.name)
    expectType<Student>(await request.loadUser())
    return request.currentUser.grade
  })
  app.post('/password', { config: { login: 'fresh' } }, (request) => {
    expectType<Student>(request.currentUser)
    return request.currentUser.name
  })
  app.get('/admin', { config: { login: { mode: 'required', route: '/admin/login' } } }, (request) => {
    expectType<Student>(request.currentUser)
  })
  app.route({
    method: 'GET',
    url: '/grades',
    config: { login: 'required' },
    handler: (request) => {
      expectType<Student>(request.currentUser)
    }
  })
  // Other guards, and none, keep both kinds of user.
  app.get('/login', { config: { login: 'prohibited' } }, (request) => {
    expectType<Student | AnonymousUserMixin>(request.currentUser)
    expectError(request.currentUser.name)
  })
  // 'optional' resolves the user for anyone: reading it compiles, either kind.
  app.get('/layout', { config: { login: 'optional' } }, (request) => {
    expectType<Student | AnonymousUserMixin>(request.currentUser)
    expectError(request.currentUser.name)
    return request.currentUser.isAuthenticated ? `Logged in as ${request.currentUser.name}` : 'Log in'
  })
  expectAssignable<LoginRouteConfig>('optional')
  expectType<Guard>(app.loginManager.guard({ mode: 'optional' }))
  app.get('/maybe', { config: {} }, (request) => {
    expectType<Student | AnonymousUserMixin>(request.currentUser)
    expectError(request.currentUser.name)
  })
  app.get('/public', (request) => {
    expectType<Student | AnonymousUserMixin>(request.currentUser)
    // The check still narrows it.
    if (request.currentUser.isAuthenticated) expectType<string>(request.currentUser.name)
  })
  // With hooks beside it, and a guard hook.
  app.get('/students/:id', {
    config: { login: 'required' },
    onRequest: app.loginManager.loginRequired,
    preHandler: (request, _reply, done) => {
      expectType<Student>(request.currentUser)
      done()
    }
  }, (request) => request.currentUser.name)
  // A route that names its RouteGeneric names its config type too, as the
  // second type argument: TypeScript infers all of them or none.
  app.get<{ Params: { id: string } }, { login: 'required' }>('/students/:id/grade', {
    config: { login: 'required' }
  }, (request) => `${request.currentUser.name} ${request.params.id}`)
  app.get<{ Params: { id: string } }>('/students/:id/name', {
    config: { login: 'required' }
  }, (request) => {
    expectType<Student | AnonymousUserMixin>(request.currentUser)
  })
  // Or inside the RouteGeneric, as `Config`, beside Params and Body.
  app.post<{ Params: { id: string }, Body: { name: string }, Config: { login: 'fresh' } }>('/students/:id', {
    config: { login: 'fresh' }
  }, async (request) => {
    expectType<Student>(request.currentUser)
    expectType<Student>(await request.loadUser())
    expectType<string>(request.params.id)
    expectType<string>(request.body.name)
    return request.currentUser.name
  })
  app.get<{ Config: { login: 'required' } }>('/grade', { config: { login: 'required' } }, (request) => request.currentUser.grade)
  app.get<{ Querystring: { q: string }, Config: { login: { mode: 'required', route: '/login' } } }>('/search', {
    config: { login: { mode: 'required', route: '/login' } }
  }, (request) => {
    expectType<Student>(request.currentUser)
  })
  app.route<{ Params: { id: string }, Config: { login: 'required' } }>({
    method: 'GET',
    url: '/students/:id/report',
    config: { login: 'required' },
    handler: (request) => {
      expectType<Student>(request.currentUser)
    }
  })
  app.get<{ Params: { id: string }, Config: { login: 'prohibited' } }>('/join/:id', (request) => {
    expectType<Student | AnonymousUserMixin>(request.currentUser)
  })
  app.get<{ Params: { id: string }, Config: {} }>('/open/:id', (request) => {
    expectType<Student | AnonymousUserMixin>(request.currentUser)
  })
  expectError(app.get<{ Config: { login: 'requried' } }>('/typo', () => 'no'))
  expectError(app.get('/typo', { config: { login: 'requried' } }, () => 'no'))
}

// `loginInfo(request)` is never null where only logged-in users get through,
// as `currentUser` is the app's user there.
{
  const app = Fastify()
  const manager = app.loginManager
  app.get('/devices', { config: { login: 'required' } }, (request) => {
    expectType<LoginInfo>(manager.loginInfo(request))
    return manager.loginInfo(request).loginId
  })
  app.post('/password', { config: { login: 'fresh' } }, (request) => {
    expectType<LoginInfo>(manager.loginInfo(request))
  })
  app.get('/admin', { config: { login: { mode: 'fresh', route: '/again' } } }, (request) => {
    expectType<LoginInfo>(manager.loginInfo(request))
  })
  app.get<{ Params: { id: string } }, { login: 'required' }>('/students/:id', { config: { login: 'required' } }, (request) => {
    expectType<LoginInfo>(manager.loginInfo(request))
  })
  app.get<{ Params: { id: string }, Config: { login: 'required' } }>('/students/:id/devices', { config: { login: 'required' } }, (request) => {
    expectType<LoginInfo>(manager.loginInfo(request))
  })
  // Anywhere else it may be null: no guard, another guard, a guard hook.
  app.get('/public', (request) => {
    expectType<LoginInfo | null>(manager.loginInfo(request))
    // @ts-expect-error: possibly null
    return manager.loginInfo(request).loginId
  })
  app.get('/login', { config: { login: 'prohibited' } }, (request) => {
    expectType<LoginInfo | null>(manager.loginInfo(request))
  })
  app.get('/hooked', { onRequest: manager.loginRequired }, (request) => {
    expectType<LoginInfo | null>(manager.loginInfo(request))
  })
  app.get<{ Params: { id: string } }>('/students/:id/name', { config: { login: 'required' } }, (request) => {
    expectType<LoginInfo | null>(manager.loginInfo(request))
  })
  app.addHook('preHandler', async (request) => {
    expectType<LoginInfo | null>(manager.loginInfo(request))
  })
}

// 8. http2 servers: the guards and methods take its request and reply --------

{
  const app = Fastify({ http2: true })
  app.register(fastifyLogin, { secret, userLoader })
  const manager = app.loginManager
  app.get('/me', { onRequest: manager.loginRequired }, (request) => {
    const user = request.currentUser
    return user.isAuthenticated ? user.name : ''
  })
  app.get('/login', { onRequest: manager.loginProhibited }, (request, reply) => {
    expectType<boolean | Promise<boolean>>(manager.loginUser(request, reply, new Student(1, 'Ada', 3), { remember: true }))
    return reply.redirect(manager.nextUrl(request, '/'))
  })
  app.get('/settings', { preHandler: [manager.freshLoginRequired, manager.guard({ mode: 'fresh', route: '/again' })] }, (request, reply) => {
    manager.confirmLogin(request, reply)
    expectType<LoginInfo | null>(manager.loginInfo(request))
    manager.logoutUser(request, reply)
  })
  app.get('/profile', { config: { login: 'required' } }, (request) => {
    expectType<Student>(request.currentUser)
    expectType<LoginInfo>(manager.loginInfo(request))
  })
  app.register(async (scope) => {
    scope.addHook('onRequest', scope.loginManager.loginRequired)
    scope.addHook('preHandler', scope.loginManager.guard({ mode: 'required' }))
  })
  expectType<Promise<Record<string, string>>>(manager.cookiesFor(new Student(1, 'Ada', 3)))
  // The http/1 guards do not pass for http2's, nor the other way round.
  expectError(Fastify().get('/x', { onRequest: manager.loginRequired }, () => 'x'))
  expectError(app.get('/x', { onRequest: Fastify().loginManager.loginRequired }, () => 'x'))
}
{
  const app = Fastify({ http2: true, https: { key: 'key', cert: 'cert' } })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, (request, reply) => {
    app.loginManager.logoutUser(request, reply)
  })
}

// 9. The typed accessor: the app's user, or a 401 -----------------------------

{
  const app = Fastify()
  app.get('/report', { onRequest: app.loginManager.loginRequired }, (request) => {
    expectType<Student>(app.loginManager.user(request))
    return app.loginManager.user(request).grade
  })
  app.get<{ Params: { id: string } }>('/students/:id', (request) => {
    expectType<Student>(app.loginManager.user(request))
  })
  expectError(app.loginManager.user())
  const http2 = Fastify({ http2: true })
  http2.get('/report', (request) => {
    expectType<Student>(http2.loginManager.user(request))
  })
}
