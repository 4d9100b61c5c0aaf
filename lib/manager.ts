import { EventEmitter } from 'node:events'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type {
  AnonymousUser,
  CookiesForOptions,
  CurrentUser,
  Guard,
  GuardHandler,
  GuardOptions,
  LoginConfig,
  LoginEvents,
  LoginInfo,
  LoginUserOptions,
  RequestLoader,
  User,
  UserLoader
} from '../types/index'
import { clearLoginCookie, parseRequestCookies, signAccount, signFresh, writeLoginCookies, type CookieCodec } from './cookies'
import {
  FST_LOGIN_INVALID_OPTION,
  FST_LOGIN_INVALID_USER,
  FST_LOGIN_NO_USER_ID,
  FST_LOGIN_NO_USER_LOADER,
  FST_LOGIN_NOT_LOGGED_IN,
  FST_LOGIN_USER_NOT_LOADED
} from './errors'
import { createGuard } from './guards'
import { userId } from './mixins'
import { safeNextPath } from './next'
import { checkDuration } from './options'
import { isThenable, loginState, type LoginState } from './state'
import {
  clientTag,
  KnownClients,
  LoginIds,
  nowInSeconds,
  readFresh,
  VerifiedAccounts,
  VerifiedCookies,
  type AccountToken,
  type Signer
} from './token'

type MaybeUser = User | null | undefined
type LoadEvent = 'userLoadedFromCookie' | 'userLoadedFromRequest'

// What the guards and the request decorators need from the manager, and apps
// must not call: kept under a Symbol, like Fastify's own internals.
export const kInternals = Symbol('fastify-login.internals')

export interface LoginInternals {
  resolveUser (request: FastifyRequest): CurrentUser | Promise<CurrentUser>
  currentUser (request: FastifyRequest): CurrentUser
  isAuthenticated (request: FastifyRequest): boolean
  isFresh (request: FastifyRequest): boolean
  refreshCookies (request: FastifyRequest, reply: FastifyReply): void
  emit<K extends keyof LoginEvents> (request: FastifyRequest, event: K, ...args: LoginEvents[K]): void
  handlers: { unauthorized: GuardHandler | null, authorized: GuardHandler | null, needsRefresh: GuardHandler | null }
  hasLoader (): boolean
}

// What `app.inject` sends unless told otherwise: cookiesFor() binds to it.
const INJECT_USER_AGENT = 'lightMyRequest'
const INJECT_IP = '127.0.0.1'

// `app.loginManager`: the callbacks, the guards, logging in and out, and the
// events. One per plugin registration; all per-request data lives on the request.
export class LoginManager extends EventEmitter<LoginEvents> {
  readonly config: LoginConfig
  readonly loginRequired: Guard
  readonly loginProhibited: Guard
  readonly freshLoginRequired: Guard
  readonly [kInternals]: LoginInternals

  #signer: Signer
  #codec: CookieCodec
  // Verified cookies and client checks: one HMAC per cookie or client, not one
  // per request. They hold what this manager's one signer verified: never share them.
  #accounts = new VerifiedAccounts(5000)
  #freshCookies = new VerifiedCookies(5000, readFresh)
  #clients = new KnownClients()
  #loginIds = new LoginIds()
  #userLoader: UserLoader | null = null
  #requestLoader: RequestLoader | null = null

  constructor (config: LoginConfig, signer: Signer, codec: CookieCodec, userLoader?: UserLoader, requestLoader?: RequestLoader) {
    super()
    this.config = config
    this.#signer = signer
    this.#codec = codec
    if (userLoader !== undefined) this.userLoader(userLoader)
    if (requestLoader !== undefined) this.requestLoader(requestLoader)
    this[kInternals] = {
      resolveUser: (request) => this.#resolveUser(request),
      currentUser: (request) => this.#currentUser(request),
      isAuthenticated: (request) => loginState(request).authenticated,
      isFresh: (request) => this.#isFresh(request),
      refreshCookies: (request, reply) => this.#refreshCookies(request, reply),
      emit: (request, event, ...args) => this.#emitSafely(request, event, ...args),
      handlers: { unauthorized: null, authorized: null, needsRefresh: null },
      hasLoader: () => this.#userLoader !== null || this.#requestLoader !== null
    }
    this.loginRequired = this.guard({ mode: 'required' })
    this.loginProhibited = this.guard({ mode: 'prohibited' })
    this.freshLoginRequired = this.guard({ mode: 'fresh' })
  }

  userLoader (loader: UserLoader): this {
    this.#userLoader = checkFunction('userLoader', loader)
    return this
  }

  requestLoader (loader: RequestLoader): this {
    this.#requestLoader = checkFunction('requestLoader', loader)
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

  guard (options: GuardOptions): Guard {
    return createGuard(this[kInternals], this.config, options)
  }

  loginUser (request: FastifyRequest, reply: FastifyReply, user: User, options: LoginUserOptions = {}): boolean {
    checkLoginUser(user)
    // Without a user loader the cookie could never be read back.
    if (this.#userLoader === null) throw new FST_LOGIN_NO_USER_LOADER()
    const { fresh = true, force = false } = options
    if (force !== true && (user as { isActive?: unknown }).isActive === false) return false

    const account = this.#newAccount(user, options, this.#clientOf(request.headers['user-agent'], request.ip))
    const state = loginState(request)
    writeLoginCookies(reply, state, this.#codec, this.config, this.#signer, account, fresh ? account.issuedAt : null)
    this.#replaceLogin(state, account, fresh)
    this.#settle(request, state, user, null)
    this.#emitSafely(request, 'login', request, user)
    return true
  }

  logoutUser (request: FastifyRequest, reply: FastifyReply): void {
    const state = loginState(request)
    if (state.authenticated) {
      this.#emitSafely(request, 'logout', request, state.user as User)
    } else if (state.user === undefined && this.listenerCount('logout') > 0) {
      this.#announceLogout(request, state)
    }
    this.#clearCookies(request, reply, state)
    this.#replaceLogin(state, null, false)
    this.#settle(request, state, null, null)
  }

  confirmLogin (request: FastifyRequest, reply: FastifyReply): void {
    const user = this.#currentUser(request)
    const state = loginState(request)
    const account = state.account
    if (!state.authenticated || account === null || account === undefined) {
      throw new FST_LOGIN_NOT_LOGGED_IN('confirmLogin()')
    }
    // The user proved who they are from this client: bind the login to it again.
    const confirmed = { ...account, client: this.#clientOf(request.headers['user-agent'], request.ip) }
    writeLoginCookies(reply, state, this.#codec, this.config, this.#signer, confirmed, nowInSeconds())
    state.account = confirmed
    state.renewAccount = false
    state.fresh = true
    this.#emitSafely(request, 'loginConfirmed', request, user as User)
  }

  loginInfo (request: FastifyRequest): LoginInfo | null {
    this.#currentUser(request)
    const state = loginState(request)
    if (!state.authenticated) return null
    const account = state.account
    if (account === null || account === undefined) {
      return { source: 'request', remembered: false, fresh: false, issuedAt: null, expiresAt: null }
    }
    return {
      source: 'cookie',
      remembered: account.remember,
      fresh: this.#isFresh(request),
      issuedAt: account.issuedAt,
      expiresAt: account.expiresAt
    }
  }

  nextUrl (request: FastifyRequest, fallback = '/'): string {
    const field = this.config.nextField === false ? 'next' : this.config.nextField
    const fromQuery = fieldOf(request.query, field)
    const candidate = fromQuery === undefined ? fieldOf(request.body, field) : fromQuery
    return safeNextPath(candidate) ?? fallback
  }

  async cookiesFor (user: User, options: CookiesForOptions = {}): Promise<Record<string, string>> {
    checkLoginUser(user)
    const { fresh = true, userAgent = INJECT_USER_AGENT, ip = INJECT_IP } = options
    const { cookieName } = this.config
    const account = this.#newAccount(user, options, this.#clientOf(userAgent, ip))
    const cookies: Record<string, string> = { [cookieName.account]: signAccount(this.#signer, cookieName.account, account) }
    if (fresh) cookies[cookieName.isFresh] = signFresh(this.#signer, account, account.issuedAt)
    return cookies
  }

  // The user of this request: resolved at most once, then cached. Returns a
  // promise only while an asynchronous loader is still working.
  #resolveUser (request: FastifyRequest): CurrentUser | Promise<CurrentUser> {
    const state = loginState(request)
    if (state.user !== undefined) return state.user
    if (state.error !== undefined) throw state.error
    if (state.pending !== null) return state.pending

    // The loaders are the app's code: their errors (a database outage) must
    // reach Fastify's error handler, never pass for a logout.
    try {
      const account = this.#readAccount(request, state)
      if (account !== null && this.#userLoader !== null) {
        return this.#load(request, state, this.#userLoader(account.id, request), 'userLoadedFromCookie')
      }
      // Only a request without a valid login cookie is asked about its headers.
      if (this.#requestLoader !== null) {
        state.account = null
        return this.#load(request, state, this.#requestLoader(request), 'userLoadedFromRequest')
      }
    } catch (error) {
      state.error = error
      throw error
    }
    return this.#settle(request, state, null, null)
  }

  #currentUser (request: FastifyRequest): CurrentUser {
    const user = this.#resolveUser(request)
    if (isThenable(user)) throw new FST_LOGIN_USER_NOT_LOADED()
    return user
  }

  #isFresh (request: FastifyRequest): boolean {
    this.#currentUser(request)
    const state = loginState(request)
    if (state.fresh === undefined) state.fresh = this.#checkFresh(request, state)
    return state.fresh
  }

  // The verified account cookie of the request, read once. With 'strong'
  // session protection a cookie from another client counts as no cookie.
  #readAccount (request: FastifyRequest, state: LoginState): AccountToken | null {
    if (state.account === undefined) {
      const verified = this.#accounts.read(this.#signer, this.#cookies(request, state)[this.config.cookieName.account], nowInSeconds())
      state.account = verified === null ? null : verified.token
      state.renewAccount = verified !== null && verified.renew
      if (state.account !== null && this.config.sessionProtection === 'strong' && !this.#sameClient(request, state.account)) {
        state.account = null
        state.protectionFailed = true
        this.#emitSafely(request, 'sessionProtected', request)
      }
    }
    return state.account
  }

  #readFresh (request: FastifyRequest, state: LoginState) {
    if (state.freshCookie === undefined) {
      state.freshCookie = this.#freshCookies.read(this.#signer, this.#cookies(request, state)[this.config.cookieName.isFresh], nowInSeconds())
    }
    return state.freshCookie
  }

  // Called by the guards, which hold the reply: clears cookies refused by
  // 'strong' protection, re-signs cookies signed with a secret that is being
  // rotated out, and slides the expiry of remembered logins when asked to.
  #refreshCookies (request: FastifyRequest, reply: FastifyReply): void {
    const state = loginState(request)
    if (state.protectionFailed) {
      state.protectionFailed = false
      this.#clearCookies(request, reply, state)
      return
    }
    const account = state.account
    if (!state.authenticated || account === null || account === undefined) return
    const slide = this.config.cookieRefreshEachRequest && account.remember
    if (!state.renewAccount && !slide) return

    let next = account
    if (state.renewAccount && account.client !== '' && this.#sameClient(request, account)) {
      // Its client tag is from the old secret too: tag it with the current one
      // before that secret is dropped.
      next = { ...next, client: this.#clientOf(request.headers['user-agent'], request.ip) }
    }
    if (slide) {
      const now = nowInSeconds()
      next = { ...next, issuedAt: now, expiresAt: now + (account.expiresAt - account.issuedAt) }
    }
    state.account = next
    const fresh = this.#readFresh(request, state)
    // The fresh cookie names the login, not its times: re-sign it only when
    // its signature is from an old secret.
    const freshIssuedAt = fresh !== null && fresh.renew && fresh.token.loginId === account.loginId ? fresh.token.issuedAt : null
    state.renewAccount = false
    writeLoginCookies(reply, state, this.#codec, this.config, this.#signer, next, freshIssuedAt)
  }

  #checkFresh (request: FastifyRequest, state: LoginState): boolean {
    const account = state.account
    if (!state.authenticated || account === null || account === undefined) return false
    const fresh = this.#readFresh(request, state)
    if (fresh === null || fresh.token.loginId !== account.loginId) return false
    // 'basic' protection: a login used from another client is no longer fresh.
    if (this.config.sessionProtection === 'basic' && !this.#sameClient(request, account)) {
      this.#emitSafely(request, 'sessionProtected', request)
      return false
    }
    return true
  }

  #load (request: FastifyRequest, state: LoginState, loaded: MaybeUser | PromiseLike<MaybeUser>, event: LoadEvent): CurrentUser | Promise<CurrentUser> {
    if (!isThenable(loaded)) return this.#settle(request, state, loaded, event)
    // A login or logout in the meantime supersedes the load: it must not
    // overwrite the user they set, nor fail a request they already answered.
    const pending: Promise<CurrentUser> = Promise.resolve(loaded).then(
      (user) => state.pending === pending ? this.#settle(request, state, user, event) : state.user as CurrentUser,
      (error: unknown) => {
        if (state.pending !== pending) return state.user as CurrentUser
        state.error = error
        state.pending = null
        throw error
      }
    )
    // Read through the getter, the promise may have no other listener yet.
    pending.catch(noop)
    state.pending = pending
    return pending
  }

  #settle (request: FastifyRequest, state: LoginState, user: MaybeUser, event: LoadEvent | null): CurrentUser {
    state.pending = null
    state.authenticated = user !== null && user !== undefined
    if (state.authenticated) {
      state.user = user as User
      if (event !== null) this.#emitSafely(request, event, request, user as User)
    } else {
      state.user = this.#anonymousUser()
    }
    return state.user
  }

  // A logout on a route that never resolved the user: the 'logout' listeners
  // still hear who it was, without the logout waiting for the loader.
  #announceLogout (request: FastifyRequest, state: LoginState): void {
    const account = this.#readAccount(request, state)
    const userLoader = this.#userLoader
    const requestLoader = this.#requestLoader
    let load: () => MaybeUser | PromiseLike<MaybeUser>
    if (account !== null && userLoader !== null) load = () => userLoader(account.id, request)
    else if (requestLoader !== null) load = () => requestLoader(request)
    else return
    Promise.resolve()
      .then(load)
      .then((user) => {
        if (user !== null && user !== undefined) this.#emitSafely(request, 'logout', request, user)
      }, (error: unknown) => request.log.error({ err: error }, 'fastify-login: could not load the user for the \'logout\' event'))
  }

  #anonymousUser (): AnonymousUser {
    const Anonymous = this.config.anonymousUser
    // Classes need `new`; arrow functions cannot take it. A plain function
    // factory works either way, since `new` returns the object it returns.
    return (Anonymous.prototype === undefined
      ? (Anonymous as () => AnonymousUser)()
      : new (Anonymous as new () => AnonymousUser)())
  }

  // Listeners are the app's code too, but an observer must not break the
  // request it observes: a throwing or rejecting listener is logged.
  #emitSafely<K extends keyof LoginEvents> (request: FastifyRequest, event: K, ...args: LoginEvents[K]): void {
    if (this.listenerCount(event) === 0) return
    // rawListeners: once() wrappers remove themselves when called.
    for (const listener of this.rawListeners(event) as Array<(...values: unknown[]) => unknown>) {
      try {
        const result = listener.apply(this, args)
        if (isThenable(result)) result.then(undefined, (error: unknown) => logListenerError(request, event, error))
      } catch (error) {
        logListenerError(request, event, error)
      }
    }
  }

  #sameClient (request: FastifyRequest, account: AccountToken): boolean {
    return this.#clients.isSame(this.#signer, account.client, request.headers['user-agent'], request.ip)
  }

  #clientOf (userAgent: string | undefined, ip: string): string {
    return this.config.sessionProtection === false ? '' : clientTag(this.#signer, userAgent, ip)
  }

  #cookies (request: FastifyRequest, state: LoginState) {
    if (state.cookies === null) state.cookies = parseRequestCookies(request, this.#codec)
    return state.cookies
  }

  // The request's login as loginUser or logoutUser leaves it: whatever its
  // cookies said no longer counts.
  #replaceLogin (state: LoginState, account: AccountToken | null, fresh: boolean): void {
    state.account = account
    state.renewAccount = false
    state.protectionFailed = false
    state.error = undefined
    state.freshCookie = null
    state.fresh = fresh
  }

  // Expires the login cookies this request sent or this response set, and no
  // others: a logout of a visitor without cookies sends no Set-Cookie.
  #clearCookies (request: FastifyRequest, reply: FastifyReply, state: LoginState): void {
    const cookies = this.#cookies(request, state)
    for (const name of [this.config.cookieName.account, this.config.cookieName.isFresh]) {
      if (cookies[name] !== undefined || state.written?.has(name) === true) clearLoginCookie(reply, state, this.#codec, this.config, name)
    }
  }

  #newAccount (user: User, options: LoginUserOptions, client: string): AccountToken {
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
    const duration = options.duration ?? this.config.cookieDuration
    checkDuration('duration', duration)
    const now = nowInSeconds()
    return { id, issuedAt: now, expiresAt: now + Math.ceil(duration), loginId: this.#loginIds.next(), remember, client }
  }
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

function logListenerError (request: FastifyRequest, event: string, error: unknown): void {
  request.log.error({ err: error }, `fastify-login: a '${event}' listener failed`)
}

function noop (): void {}
