import type { FastifyReply, FastifyRequest } from 'fastify'
import type {
  AnonymousUser,
  CurrentUser,
  GuardHandler,
  LoginConfig,
  LoginUserOptions,
  User,
  UserLoader
} from '../types/index'
import { clearLoginCookie, parseRequestCookies, setLoginCookie } from './cookies'
import {
  FST_LOGIN_INVALID_OPTION,
  FST_LOGIN_INVALID_USER,
  FST_LOGIN_NO_USER_ID,
  FST_LOGIN_USER_NOT_LOADED
} from './errors'
import { createGuards } from './guards'
import { userId } from './mixins'
import { isThenable, loginState, type LoginState } from './state'
import {
  encodeAccount,
  encodeFresh,
  MAX_COOKIE_LENGTH,
  newLoginId,
  nowInSeconds,
  readAccount,
  readFresh,
  type AccountToken,
  type Signer
} from './token'

// `app.loginManager`: the callbacks, the guards, and logging in and out.
export class LoginManager {
  readonly config: LoginConfig
  readonly loginRequired
  readonly loginProhibited

  #signer: Signer
  #userLoader: UserLoader | null = null
  #unauthorizedHandler: GuardHandler | null = null
  #authorizedHandler: GuardHandler | null = null

  constructor (config: LoginConfig, signer: Signer, userLoader: UserLoader | undefined) {
    this.config = config
    this.#signer = signer
    if (userLoader !== undefined) this.userLoader(userLoader)
    const guards = createGuards(this)
    this.loginRequired = guards.loginRequired
    this.loginProhibited = guards.loginProhibited
  }

  get hasUserLoader (): boolean {
    return this.#userLoader !== null
  }

  get unauthorizedCallback (): GuardHandler | null {
    return this.#unauthorizedHandler
  }

  get authorizedCallback (): GuardHandler | null {
    return this.#authorizedHandler
  }

  userLoader (loader: UserLoader): this {
    this.#userLoader = checkFunction('userLoader', loader)
    return this
  }

  unauthorizedHandler (handler: GuardHandler): this {
    this.#unauthorizedHandler = checkFunction('unauthorizedHandler', handler)
    return this
  }

  authorizedHandler (handler: GuardHandler): this {
    this.#authorizedHandler = checkFunction('authorizedHandler', handler)
    return this
  }

  // The user of this request: resolved at most once, then cached. Returns a
  // promise only while an asynchronous loader is still working.
  resolveUser (request: FastifyRequest): CurrentUser | Promise<CurrentUser> {
    const state = loginState(request)
    if (state.user !== undefined) return state.user
    if (state.error !== undefined) throw state.error
    if (state.pending !== null) return state.pending

    const account = this.readAccount(request, state)
    if (account === null) return this.#settle(state, null)

    // The loader is the app's code: its errors (a database outage) must reach
    // Fastify's error handler, never pass for a logout.
    const loaded = (this.#userLoader as UserLoader)(account.id, request)
    if (!isThenable(loaded)) return this.#settle(state, loaded)

    const pending = Promise.resolve(loaded).then(
      (user) => this.#settle(state, user),
      (error: unknown) => {
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

  currentUser (request: FastifyRequest): CurrentUser {
    const user = this.resolveUser(request)
    if (isThenable(user)) throw new FST_LOGIN_USER_NOT_LOADED()
    return user
  }

  async loadUser (request: FastifyRequest): Promise<CurrentUser> {
    return await this.resolveUser(request)
  }

  isAuthenticated (request: FastifyRequest): boolean {
    return loginState(request).authenticated
  }

  isFresh (request: FastifyRequest): boolean {
    this.currentUser(request)
    const state = loginState(request)
    if (!state.authenticated) return false
    if (state.fresh === undefined) {
      const account = state.account as AccountToken
      const fresh = readFresh(this.#signer, this.#cookies(request, state)[this.config.cookieName.isFresh])
      state.fresh = fresh !== null && fresh.token.loginId === account.loginId
    }
    return state.fresh
  }

  // The verified account cookie of the request, read once.
  readAccount (request: FastifyRequest, state: LoginState = loginState(request)): AccountToken | null {
    if (state.account === undefined) {
      const verified = readAccount(this.#signer, this.#cookies(request, state)[this.config.cookieName.account], nowInSeconds())
      state.account = verified === null ? null : verified.token
      state.renewAccount = verified !== null && verified.renew
    }
    return state.account
  }

  // Called by the guards, which hold the reply: cookies signed with a
  // secret that is being rotated out are re-signed with the current one.
  renewCookies (request: FastifyRequest, reply: FastifyReply): void {
    const state = loginState(request)
    if (!state.renewAccount || !state.authenticated) return
    state.renewAccount = false
    const account = state.account as AccountToken
    const fresh = readFresh(this.#signer, this.#cookies(request, state)[this.config.cookieName.isFresh])
    this.#writeCookies(reply, account, fresh !== null && fresh.token.loginId === account.loginId ? fresh.token.issuedAt : null)
  }

  loginUser (request: FastifyRequest, reply: FastifyReply, user: User, options: LoginUserOptions = {}): boolean {
    if (user === null || typeof user !== 'object') {
      throw new FST_LOGIN_INVALID_USER('needs a user object')
    }
    if ((user as { isAnonymous?: unknown }).isAnonymous === true) {
      throw new FST_LOGIN_INVALID_USER('cannot log in the anonymous user')
    }
    const id = userId(user)
    if (id === null || id === '') throw new FST_LOGIN_NO_USER_ID()
    // Lone surrogates do not survive UTF-8: the id would come back different.
    if (!id.isWellFormed()) {
      throw new FST_LOGIN_INVALID_USER('needs a user id that is well-formed Unicode')
    }
    const remember = options.remember ?? this.config.cookieRememberMe.account
    if (typeof remember !== 'boolean') {
      throw new FST_LOGIN_INVALID_OPTION('remember', 'must be true or false')
    }

    const now = nowInSeconds()
    const account: AccountToken = {
      id,
      issuedAt: now,
      expiresAt: now + Math.ceil(this.config.cookieDuration),
      loginId: newLoginId(),
      remember
    }
    this.#writeCookies(reply, account, now)

    const state = loginState(request)
    state.account = account
    state.renewAccount = false
    state.user = user as CurrentUser
    state.authenticated = true
    state.pending = null
    state.error = undefined
    state.fresh = true
    return true
  }

  logoutUser (request: FastifyRequest, reply: FastifyReply): void {
    clearLoginCookie(reply, this.config, this.config.cookieName.account)
    clearLoginCookie(reply, this.config, this.config.cookieName.isFresh)
    const state = loginState(request)
    state.account = null
    state.renewAccount = false
    state.pending = null
    state.error = undefined
    this.#settle(state, null)
  }

  anonymousUser (): AnonymousUser {
    const Anonymous = this.config.anonymousUser
    // Classes need `new`; arrow functions cannot take it. A plain function
    // factory works either way, since `new` returns the object it returns.
    return (Anonymous.prototype === undefined
      ? (Anonymous as () => AnonymousUser)()
      : new (Anonymous as new () => AnonymousUser)())
  }

  #settle (state: LoginState, user: User | null | undefined): CurrentUser {
    state.pending = null
    state.authenticated = user !== null && user !== undefined
    state.user = state.authenticated ? user as User : this.anonymousUser()
    return state.user
  }

  #cookies (request: FastifyRequest, state: LoginState) {
    if (state.cookies === null) state.cookies = parseRequestCookies(request)
    return state.cookies
  }

  // Writes the account cookie and, when freshIssuedAt is given, a fresh
  // cookie bound to the same login.
  #writeCookies (reply: FastifyReply, account: AccountToken, freshIssuedAt: number | null): void {
    const { cookieName, cookieRememberMe } = this.config
    const signed = this.#signer.sign(encodeAccount(account))
    if (signed.length > MAX_COOKIE_LENGTH) {
      throw new FST_LOGIN_INVALID_USER(`needs a shorter user id: the account cookie would be ${signed.length} characters, more than browsers keep`)
    }
    const lifetime = Math.max(0, account.expiresAt - nowInSeconds())
    setLoginCookie(reply, this.config, cookieName.account, signed, account.remember ? lifetime : null)
    if (freshIssuedAt !== null) {
      const fresh = this.#signer.sign(encodeFresh({ loginId: account.loginId, issuedAt: freshIssuedAt }))
      setLoginCookie(reply, this.config, cookieName.isFresh, fresh, cookieRememberMe.isFresh ? lifetime : null)
    }
  }
}

function checkFunction<T> (name: string, value: T): T {
  if (typeof value !== 'function') {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be a function')
  }
  return value
}

function noop (): void {}
