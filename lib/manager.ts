import { EventEmitter } from 'node:events'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest, FastifySchema, FastifyTypeProviderDefault, RawRequestDefaultExpression, RawServerDefault, RouteGenericInterface } from 'fastify'
import type {
  ConfirmLoginOptions,
  CookiesForOptions,
  Guard,
  GuardHandler,
  GuardOptions,
  LoginConfig,
  LoginEvents,
  LoginInfo,
  LoginInfoOf,
  LoginRecord,
  LoginStore,
  LoginUserOptions,
  RequestLoader,
  LoginUser,
  UserLoader
} from '../types/index'
import { nowInSeconds } from './clock'
import { LoginCookies } from './cookies/login-cookies'
import {
  FST_LOGIN_COOKIE_NEEDS_USER_LOADER,
  FST_LOGIN_INVALID_OPTION,
  FST_LOGIN_INVALID_USER,
  FST_LOGIN_NO_STORE,
  FST_LOGIN_NO_USER_ID,
  FST_LOGIN_NOT_A_COOKIE_LOGIN,
  FST_LOGIN_NOT_AWAITED,
  FST_LOGIN_NOT_LOGGED_IN,
  FST_LOGIN_UNAUTHORIZED
} from './errors'
import { DeviceBindingEndpoints } from './binding/dbsc-routes'
import { DeviceBinding } from './binding/device-binding'
import { createCrossOriginProtection } from './guards/cross-origin'
import { createAuthenticate, type AuthFunction } from './guards/authenticate'
import { createGuard } from './guards/guard'
import { RefreshRouteCheck } from './guards/refresh-route'
import { kInternals, type LoginInternals } from './internals'
import { LoginIds } from './logins/login-ids'
import { Devices } from './logins/devices'
import { LoginRecords } from './logins/records'
import { userId } from './mixins'
import { safeNextPath } from './guards/next'
import { checkDuration } from './options'
import { OpenApiDocs, type SwaggerTransform } from './openapi'
import { Resolution } from './resolution'
import type { Keys } from './cookies/signing'
import { andThen, isThenable, loginState, type LoginState, type MaybePromise } from './state'
import { METHOD, type AccountToken } from './cookies/token'

const UNGUARDED = 'this route lets anonymous visitors reach it. Guard it with `config: { login: \'required\' }` or `onRequest: app.loginManager.loginRequired`'

// What `app.inject` sends unless told otherwise: cookiesFor() binds to it.
const INJECT_USER_AGENT = 'lightMyRequest'
const INJECT_IP = '127.0.0.1'

// `app.loginManager`: the callbacks, the guards, logging in and out, the
// logins of a user, and the events. One per plugin registration; all
// per-request data lives on the request, the engine in Resolution.
export class LoginManager extends EventEmitter<LoginEvents> {
  readonly config: LoginConfig
  readonly loginRequired: Guard
  readonly loginProhibited: Guard
  readonly freshLoginRequired: Guard
  readonly crossOriginProtection: Guard
  readonly authenticate: AuthFunction
  readonly [kInternals]: LoginInternals

  #resolution: Resolution
  #records: LoginRecords | null
  #devices: Devices | null
  #binding: DeviceBinding | null
  #loginIds = new LoginIds()

  constructor (config: LoginConfig, keys: Keys, store: LoginStore | null, log: FastifyBaseLogger, userLoader?: UserLoader, requestLoader?: RequestLoader) {
    super()
    this.config = config
    // Heard from the store, with no request to log a listener's failure on.
    const onRevoked = (loginId: string, userId: string): void => { this.emit('loginRevoked', loginId, userId) }
    this.#records = store === null ? null : new LoginRecords(store, config, keys.realmTags, log, onRevoked)
    this.#devices = this.#records === null ? null : new Devices(this.#records, config)
    const cookies = new LoginCookies(config, keys.signer)
    // The options made sure that device binding comes with a store.
    this.#binding = config.deviceBinding === false ? null : new DeviceBinding(config, keys.signer, cookies, this.#records as LoginRecords)
    this.#resolution = new Resolution(config, keys, cookies, this.#records, this.#binding, this)
    if (userLoader !== undefined) this.userLoader(userLoader)
    if (requestLoader !== undefined) this.requestLoader(requestLoader)
    const resolution = this.#resolution
    this[kInternals] = {
      resolveUser: (request) => resolution.resolveUser(request),
      currentUser: (request) => resolution.currentUser(request),
      isAuthenticated: (request) => loginState(request).authenticated,
      isFresh: (request) => resolution.isFresh(request),
      account: (request) => loginState(request).account as AccountToken | null,
      refreshCookies: (request, reply) => resolution.refreshCookies(request, reply),
      carryLastUse: (request, reply) => resolution.carryLastUse(request, reply),
      emit: (request, event, ...args) => resolution.emit(request, event, ...args),
      handlers: { unauthorized: null, authorized: null, needsRefresh: null },
      refreshRoute: new RefreshRouteCheck(config.refreshRoute),
      openapi: new OpenApiDocs(config),
      hasLoader: () => resolution.userLoader !== null || resolution.requestLoader !== null,
      deviceBinding: this.#binding === null ? null : new DeviceBindingEndpoints(this.#binding, resolution, this.#records as LoginRecords),
      ready: async () => { await this.#records?.listen() },
      close: async () => { await this.#records?.close() }
    }
    this.loginRequired = this.guard({ mode: 'required' })
    this.loginProhibited = this.guard({ mode: 'prohibited' })
    this.freshLoginRequired = this.guard({ mode: 'fresh' })
    this.crossOriginProtection = createCrossOriginProtection(this[kInternals], config)
    this.authenticate = createAuthenticate(this[kInternals])
  }

  userLoader (loader: UserLoader): this {
    this.#resolution.userLoader = checkFunction('userLoader', loader)
    return this
  }

  requestLoader (loader: RequestLoader): this {
    this.#resolution.requestLoader = checkFunction('requestLoader', loader)
    return this
  }

  unauthorizedHandler (handler: GuardHandler): this {
    this[kInternals].handlers.unauthorized = checkFunction('unauthorizedHandler', handler)
    return this
  }

  authorizedHandler (handler: GuardHandler): this {
    this[kInternals].handlers.authorized = checkFunction('authorizedHandler', handler)
    return this
  }

  needsRefreshHandler (handler: GuardHandler): this {
    this[kInternals].handlers.needsRefresh = checkFunction('needsRefreshHandler', handler)
    return this
  }

  // @fastify/swagger's global `transform`, handed on to the routes the
  // plugin documents (swagger calls their own transform instead of it).
  swaggerTransform<T> (transform: T): T {
    this[kInternals].openapi.global = checkFunction('swaggerTransform', transform) as SwaggerTransform
    return transform
  }

  guard (options: GuardOptions): Guard {
    return createGuard(this[kInternals], this.config, options)
  }

  // The current user as the app's user type, for typed code on a guarded
  // route; nobody logged in is a 401 through Fastify's error handler.
  user (request: FastifyRequest): LoginUser {
    const user = this.#resolution.currentUser(request)
    if (!loginState(request).authenticated) throw new FST_LOGIN_UNAUTHORIZED('app.loginManager.user(request)', UNGUARDED)
    return user as LoginUser
  }

  // With a store, the login is recorded before its cookies are written: a
  // cookie never names a login the server does not know.
  loginUser (request: FastifyRequest, reply: FastifyReply, user: LoginUser, options: LoginUserOptions = {}): MaybePromise<boolean> {
    checkLoginUser(user)
    // Without a user loader the cookie could never be read back.
    if (this.#resolution.userLoader === null) throw new FST_LOGIN_COOKIE_NEEDS_USER_LOADER('loginUser()')
    const { fresh = true, force = false } = options
    if (force !== true && (user as { isActive?: unknown }).isActive === false) return false

    const account = this.#newAccount(user, options, this.#resolution.clientOf(request.headers['user-agent'], request.ip))
    // Device binding: the browser is asked to register a key for the login.
    const offered = this.#binding !== null && this.#binding.offers(request)
    if (offered) account.binding = 'pending'
    const state = loginState(request)
    return reported(reply, 'loginUser()', andThen(this.#record(request, reply, state, account, user), (evicted) => {
      if (reply.sent) return this.#unrecord(account)
      this.#resolution.cookies.writeLogin(reply, state, account, fresh ? account.issuedAt : null)
      if (offered) this.#binding?.offer(reply, account.loginId)
      this.#resolution.replaceLogin(state, account, fresh)
      this.#resolution.settle(request, state, user, null)
      this.#resolution.emit(request, 'login', request, user)
      for (const record of evicted) this.#resolution.emit(request, 'loginEvicted', request, record)
      return true
    }))
  }

  // With a store: records the new login, ends the one the request's cookie
  // named (a login over another on the same browser replaces it: a copy of
  // the old cookie must not stay alive, unlisted by the user), and the
  // user's least recently used ones past `maxLogins`.
  #record (request: FastifyRequest, reply: FastifyReply, state: LoginState, account: AccountToken, user: LoginUser): MaybePromise<LoginRecord[]> {
    const records = this.#records
    const devices = this.#devices
    if (records === null || devices === null) return []
    const previous = this.#resolution.readToken(request, state)
    return andThen(records.create(account, request.headers['user-agent'], request.ip), () => {
      // Nobody awaited loginUser: its login goes again (the caller sees to
      // it), and nothing else is ended for a login no browser got.
      if (reply.sent) return []
      const ended = previous === null ? undefined : this.#end(request, previous)
      return andThen(ended, () => devices.evict(user, account.id, account.loginId))
    })
  }

  // Ends the login a request's cookie names, if the request may (a bound
  // login only from the browser that holds its key: device-binding.ts).
  #end (request: FastifyRequest, token: AccountToken): MaybePromise<unknown> {
    const records = this.#records as LoginRecords
    const binding = this.#binding
    if (binding === null) return records.end(token.id, token.loginId, token.expiresAt)
    return andThen(binding.mayEnd(request, token, nowInSeconds()), (may) => may ? records.end(token.id, token.loginId, token.expiresAt) : undefined)
  }

  // The reply left before the store answered (a loginUser nobody awaited):
  // no browser got this login's cookie, so its record goes too, or it would
  // stay in listLogins as a device nobody has.
  #unrecord (account: AccountToken): MaybePromise<never> {
    const notAwaited = new FST_LOGIN_NOT_AWAITED('loginUser()')
    const records = this.#records
    if (records === null) throw notAwaited
    const deleted = records.end(account.id, account.loginId, account.expiresAt)
    if (!isThenable(deleted)) throw notAwaited
    return Promise.resolve(deleted).then(() => { throw notAwaited }, (error: unknown) => {
      notAwaited.cause = error
      throw notAwaited
    })
  }

  // Expires the login cookies and, with a store, ends the login itself:
  // every copy of its cookie is anonymous from then on, on every instance.
  logoutUser (request: FastifyRequest, reply: FastifyReply): MaybePromise<void> {
    const resolution = this.#resolution
    const state = loginState(request)
    const token = resolution.readToken(request, state)
    if (state.authenticated) {
      resolution.emit(request, 'logout', request, state.user as LoginUser)
    } else if (state.user === undefined && this.listenerCount('logout') > 0) {
      this.#announceLogout(request, token)
    }
    const forget = (): void => {
      resolution.clearCookies(request, reply, state)
      resolution.replaceLogin(state, null, false)
      resolution.settle(request, state, null, null)
    }
    const records = this.#records
    // A cookie planted beside the real one made the request anonymous: the
    // logout still ends every login its cookies name, and one loginUser made
    // earlier in the request.
    const duplicated = state.cookies?.duplicated === true
    const logins = [...(duplicated ? resolution.everyToken(request) : []), ...(token === null ? [] : [token])]
    if (records === null || logins.length === 0) return forget()
    // The record goes first: if the store fails, the browser keeps its
    // cookie, and the user can log out again once the store is back.
    const deleted = logins.reduce<MaybePromise<unknown>>((previous, login) => andThen(previous, () => this.#end(request, login)), undefined)
    return reported(reply, 'logoutUser()', andThen(deleted, () => {
      if (reply.sent) throw new FST_LOGIN_NOT_AWAITED('logoutUser()')
      forget()
    }))
  }

  // Re-authentication starts a new login (ASVS 7.2.4): a new login id and
  // cookies, so that a copy of the cookie taken before the user proved who
  // they are again is not as good as the new one. With a store the new record
  // takes the old one's place (its creation time kept: the devices list still
  // shows one row for this device) and the old login is ended everywhere.
  confirmLogin (request: FastifyRequest, reply: FastifyReply, options: ConfirmLoginOptions = {}): MaybePromise<void> {
    const user = this.#resolution.currentUser(request)
    const state = loginState(request)
    const account = state.account
    if (!state.authenticated) throw new FST_LOGIN_NOT_LOGGED_IN('confirmLogin()')
    if (account === null || account === undefined) throw new FST_LOGIN_NOT_A_COOKIE_LOGIN('confirmLogin()')
    const now = nowInSeconds()
    const binding = this.#binding
    const offered = binding !== null && account.binding !== 'bound' && binding.offers(request)
    const confirmed: AccountToken = {
      ...account,
      loginId: this.#loginIds.next(),
      lastSeenAt: now,
      authenticatedAt: now,
      rotatedAt: now,
      generation: 0,
      unconfirmed: false,
      binding: offered ? 'pending' : 'none',
      method: checkMethod(options?.method),
      // The user proved who they are from this client: bind the login to it again.
      client: this.#resolution.clientOf(request.headers['user-agent'], request.ip)
    }
    const records = this.#records
    const replaced = records === null
      ? undefined
      : andThen(records.own(account.id, account.loginId), (old) => {
        // A bound login stays bound to the same key: the browser's session goes on.
        const device = binding !== null && account.binding === 'bound' && old?.bound === true ? old : null
        if (device !== null) confirmed.binding = 'bound'
        return andThen(records.create(confirmed, request.headers['user-agent'], request.ip, old?.createdAt ?? account.issuedAt, device), () => {
          return records.end(account.id, account.loginId, account.expiresAt)
        })
      })
    return reported(reply, 'confirmLogin()', andThen(replaced, () => {
      if (reply.sent) throw new FST_LOGIN_NOT_AWAITED('confirmLogin()')
      // A new fresh cookie restarts the freshDuration clock.
      this.#resolution.cookies.writeLogin(reply, state, confirmed, now)
      if (confirmed.binding === 'bound') binding?.carryProof(request, reply, state, account.loginId, confirmed.loginId, now)
      if (offered) binding?.offer(reply, confirmed.loginId)
      this.#resolution.replaceLogin(state, confirmed, true)
      this.#resolution.emit(request, 'loginConfirmed', request, user as LoginUser)
    }))
  }

  // Typed for the route: never null where only logged-in users get through.
  loginInfo<RouteGeneric extends RouteGenericInterface, ContextConfig> (request: FastifyRequest<RouteGeneric, RawServerDefault, RawRequestDefaultExpression, FastifySchema, FastifyTypeProviderDefault, ContextConfig>): LoginInfoOf<ContextConfig, RouteGeneric>
  loginInfo (request: FastifyRequest): LoginInfo | null {
    this.#resolution.currentUser(request)
    const state = loginState(request)
    if (!state.authenticated) return null
    const account = state.account
    if (account === null || account === undefined) {
      return { source: 'request', loginId: null, remembered: false, fresh: false, issuedAt: null, expiresAt: null, method: null, authenticatedAt: null, bound: false }
    }
    return {
      source: 'cookie',
      loginId: account.loginId,
      remembered: account.remember,
      fresh: this.#resolution.isFresh(request),
      issuedAt: account.issuedAt,
      expiresAt: account.expiresAt,
      method: account.method,
      authenticatedAt: account.authenticatedAt,
      bound: account.binding === 'bound'
    }
  }

  nextUrl (request: FastifyRequest, fallback = '/'): string {
    const field = this.config.nextField === false ? 'next' : this.config.nextField
    const fromQuery = fieldOf(request.query, field)
    const candidate = fromQuery === undefined ? fieldOf(request.body, field) : fromQuery
    return safeNextPath(candidate) ?? fallback
  }

  // With a store, the cookies name a recorded login, as a real one would.
  async cookiesFor (user: LoginUser, options: CookiesForOptions = {}): Promise<Record<string, string>> {
    checkLoginUser(user)
    // Cookies that load nobody would make a test pass for the wrong reason.
    if (this.#resolution.userLoader === null) throw new FST_LOGIN_COOKIE_NEEDS_USER_LOADER('cookiesFor()')
    const { fresh = true, userAgent = INJECT_USER_AGENT, ip = INJECT_IP } = options
    const { cookieName } = this.config
    const account = this.#newAccount(user, options, this.#resolution.clientOf(userAgent, ip))
    if (this.#records !== null) {
      await this.#records.create(account, userAgent, ip)
    }
    const cookies: Record<string, string> = { [cookieName.account]: this.#resolution.cookies.signAccount(account) }
    if (fresh) cookies[cookieName.isFresh] = this.#resolution.cookies.signFresh(account, account.issuedAt)
    return cookies
  }

  /** The user's live logins, newest first. */
  async listLogins (user: LoginUser | string): Promise<LoginRecord[]> {
    return await this.#store('listLogins()').list(idOf(user))
  }

  async revokeLogin (user: LoginUser | string, loginId: string): Promise<boolean> {
    const devices = this.#store('revokeLogin()')
    if (typeof loginId !== 'string' || loginId.length === 0) {
      throw new FST_LOGIN_INVALID_OPTION('loginId', 'must be the `loginId` of one of the user\'s logins (see listLogins)')
    }
    return await devices.revoke(idOf(user), loginId)
  }

  // Every login of the request's user but the request's own.
  async revokeOtherLogins (request: FastifyRequest): Promise<number> {
    const devices = this.#store('revokeOtherLogins()')
    await this.#resolution.resolveUser(request)
    const state = loginState(request)
    const account = state.account
    if (!state.authenticated) throw new FST_LOGIN_NOT_LOGGED_IN('revokeOtherLogins()')
    if (account === null || account === undefined) throw new FST_LOGIN_NOT_A_COOKIE_LOGIN('revokeOtherLogins()')
    return await devices.revokeAll(account.id, account.loginId)
  }

  async revokeAllLogins (user: LoginUser | string): Promise<number> {
    return await this.#store('revokeAllLogins()').revokeAll(idOf(user))
  }

  #store (method: string): Devices {
    if (this.#devices === null) throw new FST_LOGIN_NO_STORE(method)
    return this.#devices
  }

  // A logout on a route that never resolved the user: the 'logout' listeners
  // still hear who it was, without the logout waiting for the loader.
  #announceLogout (request: FastifyRequest, token: AccountToken | null): void {
    const { userLoader, requestLoader } = this.#resolution
    let load: () => unknown
    if (token !== null && userLoader !== null) load = () => userLoader(token.id, request)
    else if (requestLoader !== null) load = () => requestLoader(request)
    else return
    Promise.resolve()
      .then(load)
      .then((user) => {
        if (user !== null && user !== undefined) this.#resolution.emit(request, 'logout', request, user as LoginUser)
      }, (error: unknown) => request.log.error({ err: error }, 'fastify-login: could not load the user for the \'logout\' event'))
  }

  #newAccount (user: LoginUser, options: LoginUserOptions, client: string): AccountToken {
    const id = userId(user as object)
    if (id === null || id === '') throw new FST_LOGIN_NO_USER_ID()
    // Lone surrogates do not survive UTF-8: the id would come back different.
    if (!id.isWellFormed()) {
      throw new FST_LOGIN_INVALID_USER('the user id must be well-formed Unicode')
    }
    const remember = options.remember ?? this.config.cookieRememberMe.account
    if (typeof remember !== 'boolean') {
      throw new FST_LOGIN_INVALID_OPTION('remember', 'must be true or false')
    }
    // A login that is not remembered ends with the browser session; the
    // server gives it sessionDuration, not the remembered lifetime.
    const duration = options.duration ?? (remember ? this.config.cookieDuration : this.config.sessionDuration)
    checkDuration('duration', duration)
    const now = nowInSeconds()
    return {
      id,
      issuedAt: now,
      expiresAt: now + Math.ceil(duration),
      lastSeenAt: now,
      authenticatedAt: now,
      rotatedAt: now,
      generation: 0,
      loginId: this.#loginIds.next(),
      remember,
      unconfirmed: false,
      binding: 'none',
      method: checkMethod(options.method),
      client
    }
  }
}

// How the user proved who they are: it goes into the cookie as it is.
function checkMethod (method: unknown): string | null {
  if (method === undefined || method === null) return null
  if (typeof method !== 'string' || !METHOD.test(method)) {
    throw new FST_LOGIN_INVALID_OPTION('method', 'must be 1 to 32 letters, digits, `_`, `:` or `-`, such as \'password\' or \'passkey\', or null')
  }
  return method
}

// A promise of loginUser or logoutUser that nobody awaits must not become an
// unhandled rejection (a crash): if it fails once the reply is gone, it is logged.
function reported<T> (reply: FastifyReply, method: string, result: MaybePromise<T>): MaybePromise<T> {
  if (isThenable(result)) {
    result.then(undefined, (error: unknown) => {
      if (reply.sent) reply.log.error({ err: error }, `fastify-login: ${method} failed after the reply was sent`)
    })
  }
  return result
}

function idOf (user: LoginUser | string): string {
  const id = typeof user === 'string' ? user : user !== null && typeof user === 'object' ? userId(user as object) : null
  if (id === null) throw new FST_LOGIN_INVALID_USER('expected a user object with an id, or a user id')
  // A lone surrogate becomes U+FFFD in UTF-8 (Redis keys): 'x\uD800' would
  // name the logins of user 'x\uFFFD'.
  if (!id.isWellFormed()) throw new FST_LOGIN_INVALID_USER('the user id must be well-formed Unicode')
  return id
}

function checkLoginUser (user: unknown): void {
  if (user === null || typeof user !== 'object') {
    throw new FST_LOGIN_INVALID_USER('expected a user object')
  }
  if ((user as { isAnonymous?: unknown }).isAnonymous === true) {
    throw new FST_LOGIN_INVALID_USER('the anonymous user cannot log in')
  }
}

function checkFunction<T> (name: string, value: T): T {
  if (typeof value !== 'function') {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be a function')
  }
  return value
}

function fieldOf (source: unknown, field: string): unknown {
  if (source === null || typeof source !== 'object') return undefined
  return Object.hasOwn(source, field) ? (source as Record<string, unknown>)[field] : undefined
}
