import type { EventEmitter } from 'node:events'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { LoginAnonymousUser, LoginCurrentUser, LoginConfig, LoginEvents, LoginRecord, RequestLoader, LoginUser, UserLoader } from '../types/index'
import { ClientCheck } from './binding/client-check'
import type { DeviceBinding } from './binding/device-binding'
import { nowInSeconds } from './clock'
import { cookieValues, type SentCookies } from './cookies/header'
import type { LoginCookies } from './cookies/login-cookies'
import { FST_LOGIN_USER_NOT_LOADED } from './errors'
import { emitSafely } from './events'
import type { LoginRecords } from './logins/records'
import { touchInterval, UNPROVEN, type Verdict } from './logins/verdict'
import { isThenable, kLoginState, loginState, type LoginState, type MaybePromise, type StatefulRequest } from './state'
import type { Keys } from './cookies/signing'
import type { AccountToken } from './cookies/token'
import { VerifiedAccounts, VerifiedFreshCookies } from './cookies/verified'
import { ForeignSignatures } from './cookies/foreign-signatures'

type MaybeUser = LoginUser | null | undefined
type LoadEvent = 'userLoadedFromCookie' | 'userLoadedFromRequest'
type Loaded = [user: MaybeUser | PromiseLike<MaybeUser>, event: LoadEvent | null]

// Four: room for the real cookie beside the copies a page plants in practice
// (at another path, for a parent domain); each value past them would only
// cost an HMAC and a store call (see everyToken).
const MAX_LOGOUT_COOKIES = 4

// Who is logged in on a request: the account cookie verified (signature,
// times, duplicates, client), the login's record checked when there is a
// store, then the app's loader. Each step runs at most once per request and
// only when something asks; synchronous stores and loaders keep it synchronous.
export class Resolution {
  readonly config: LoginConfig
  readonly cookies: LoginCookies
  readonly records: LoginRecords | null
  // With `deviceBinding`: what a bound login must prove.
  readonly binding: DeviceBinding | null
  userLoader: UserLoader | null = null
  requestLoader: RequestLoader | null = null

  #keys: Keys
  #emitter: EventEmitter<LoginEvents>
  // Verified cookies and client checks: a cookie costs an HMAC on its first
  // two visits, a client one per client, not one per request. They hold what
  // this manager's keys verified: never share them.
  #accounts = new VerifiedAccounts(5000)
  #freshCookies = new VerifiedFreshCookies(5000)
  #clients: ClientCheck
  #foreignSignatures = new ForeignSignatures()

  constructor (config: LoginConfig, keys: Keys, cookies: LoginCookies, records: LoginRecords | null, binding: DeviceBinding | null, emitter: EventEmitter<LoginEvents>) {
    this.config = config
    this.cookies = cookies
    this.records = records
    this.binding = binding
    this.#keys = keys
    this.#emitter = emitter
    this.#clients = new ClientCheck(keys.clientKeys)
  }

  // The user of this request: resolved at most once, then cached. Returns a
  // promise only while a store or loader is still working.
  resolveUser (request: FastifyRequest): LoginCurrentUser | Promise<LoginCurrentUser> {
    const state = loginState(request)
    if (state.user !== undefined) return state.user
    if (state.error !== undefined) throw state.error
    if (state.pending !== null) return state.pending

    // The store and the loaders are the app's: their errors (a database
    // outage) must reach Fastify's error handler, never pass for a logout.
    try {
      const account = this.readLogin(request, state)
      if (isThenable(account)) {
        const generation = state.generation
        return this.#wait(request, state, Promise.resolve(account).then((login) => {
          return state.generation === generation ? this.#callLoader(request, state, login) : [state.user as LoginUser, null]
        }))
      }
      const [loaded, event] = this.#callLoader(request, state, account)
      if (!isThenable(loaded)) return this.settle(request, state, loaded, event)
      return this.#wait(request, state, Promise.resolve([loaded, event]))
    } catch (error) {
      state.error = error
      throw error
    }
  }

  // With an asynchronous store, the getter refuses on every request alike,
  // though most are answered without the store: code that works only until
  // a request needs a store read would fail in production, not in tests.
  currentUser (request: FastifyRequest): LoginCurrentUser {
    const state = loginState(request)
    if (state.user === undefined && state.error === undefined && this.records?.asynchronous === true) throw new FST_LOGIN_USER_NOT_LOADED()
    const user = this.resolveUser(request)
    if (isThenable(user)) throw new FST_LOGIN_USER_NOT_LOADED()
    return user
  }

  isFresh (request: FastifyRequest): boolean {
    this.currentUser(request)
    const state = loginState(request)
    if (state.fresh === undefined) state.fresh = this.#checkFresh(request, state)
    return state.fresh
  }

  // The verified account cookie of the request, read once. A duplicated
  // login cookie, a cookie of another client under 'strong' protection, or
  // (without a store) one idle for too long counts as no cookie.
  readToken (request: FastifyRequest, state: LoginState): AccountToken | null {
    if (state.token !== undefined) return state.token
    const sent = this.sent(request, state)
    if (sent.duplicated) {
      state.token = null
      this.emit(request, 'duplicateCookie', request)
      return null
    }
    const now = nowInSeconds()
    const verified = this.#accounts.read(this.#keys.signer, sent.account, now)
    if (verified === null && sent.account !== undefined) this.#foreignSignatures.refused(request, sent.account, now)
    let token = verified === null ? null : verified.token
    state.renewAccount = verified !== null && verified.renew
    if (token !== null && this.config.sessionProtection === 'strong' && !this.sameClient(request, token)) {
      token = null
      state.protectionFailed = true
      this.emit(request, 'sessionProtected', request)
    }
    const idle = this.config.idleTimeout
    if (token !== null && this.records === null && idle !== null && now - token.lastSeenAt >= idle) token = null
    state.token = token
    return token
  }

  // The logins the request's account cookies name, though it sent more than
  // one (and so has no login): what a logout must end. Each distinct value
  // costs an HMAC and each login a store call, so a page that plants copies
  // by the hundred must not set the price of a logout: the first
  // MAX_LOGOUT_COOKIES distinct values are read, each login once.
  everyToken (request: FastifyRequest): AccountToken[] {
    const now = nowInSeconds()
    const logins = new Map<string, AccountToken>()
    for (const raw of cookieValues(request.headers.cookie as string, this.config.cookieName.account, MAX_LOGOUT_COOKIES)) {
      const token = this.#accounts.read(this.#keys.signer, raw, now)?.token
      if (token !== undefined) logins.set(token.loginId, token)
    }
    return [...logins.values()]
  }

  // The login of the request: its token, once the store (if any) says the
  // login is alive, and its bound cookie (device binding) proves its key.
  readLogin (request: FastifyRequest, state: LoginState): MaybePromise<AccountToken | null> {
    const token = this.readToken(request, state)
    if (token === null || this.records === null) {
      state.account = token
      return token
    }
    const now = nowInSeconds()
    let login = token
    if (this.binding !== null && token.binding !== 'none') {
      const proven = this.binding.proof(request, token.loginId, now) !== null
      // The account cookie of a bound login is not enough: no store call,
      // and the login goes on for the browser that holds the key.
      if (!proven && token.binding === 'bound') return this.#judged(request, state, token, UNPROVEN)
      // Offered binding, and its browser registered: the cookie says so from now on.
      if (proven && token.binding === 'pending') login = { ...token, binding: 'bound' }
    }
    const verdict = this.records.check(login, now)
    if (!isThenable(verdict)) return this.#judged(request, state, login, verdict, login !== token)
    const generation = state.generation
    return Promise.resolve(verdict).then((judged) => {
      return state.generation === generation ? this.#judged(request, state, login, judged, login !== token) : null
    })
  }

  // `foundBound`: the login was offered binding and proved it since: its
  // cookie must say so.
  #judged (request: FastifyRequest, state: LoginState, login: AccountToken, verdict: Verdict, foundBound = false): AccountToken | null {
    state.verdict = foundBound && verdict.alive ? { ...verdict, next: { ...verdict.next, binding: 'bound' } } : verdict
    state.account = verdict.alive ? login : null
    if (verdict.reused) this.emit(request, 'loginReuseDetected', request, verdict.record as LoginRecord)
    if (verdict.unproven) this.emit(request, 'boundProofMissing', request)
    return state.account
  }

  // Re-issues the account cookie of the request's login as `account` (device
  // binding's registration), with what its check asked for already in it.
  writeAccount (reply: FastifyReply, state: LoginState, account: AccountToken): void {
    state.verdict = null
    state.account = account
    state.token = account
    this.cookies.writeLogin(reply, state, account, null)
  }

  // Called by the guards, which hold the reply: clears cookies refused by
  // 'strong' protection, re-signs cookies signed with a secret that is being
  // rotated out, slides the expiry of remembered logins when asked to, and
  // (without a store) carries the last use for the idle timeout.
  refreshCookies (request: FastifyRequest, reply: FastifyReply): void {
    const state = loginState(request)
    // A copy planted beside the login cookie would keep every request
    // anonymous for as long as it lives: expired where it can be.
    if (state.cookies?.duplicated === true) this.expirePlanted(request, reply, state)
    if (state.protectionFailed) {
      state.protectionFailed = false
      this.clearCookies(request, reply, state)
      return
    }
    const account = state.account
    if (!state.authenticated || account === null || account === undefined) return
    const now = nowInSeconds()
    // With a store, a sliding cookie moves with its record (logins/records.ts).
    const slide = this.config.cookieRefreshEachRequest && account.remember && this.records === null
    const idle = this.config.idleTimeout
    const seen = this.records === null && idle !== null && now - account.lastSeenAt >= touchInterval(idle)
    // What checking the login with its record asked for: a rotation, the
    // first use of one recorded, the last use moved on.
    const changes = state.verdict?.next ?? null
    const client = state.renewAccount && account.client !== '' ? this.#clients.check(account.client, request.headers['user-agent'], request.ip) : null
    if (!state.renewAccount && !slide && !seen && changes === null) return

    let next = account
    if (client !== null) {
      // Its client tag is from the old secret too: tag it with the current one
      // before that secret is dropped.
      next = { ...next, client: this.clientOf(request.headers['user-agent'], request.ip) }
    }
    if (slide) next = { ...next, issuedAt: now, expiresAt: now + (account.expiresAt - account.issuedAt) }
    if (slide || seen) next = { ...next, lastSeenAt: now }
    if (changes !== null) next = { ...next, ...changes }
    state.verdict = null
    state.account = next
    state.token = next
    const fresh = this.#readFresh(request, state)
    // The fresh cookie names the login, not its times: re-sign it only when
    // its signature is from an old secret.
    const freshIssuedAt = fresh !== null && fresh.renew && fresh.token.loginId === account.loginId ? fresh.token.issuedAt : null
    state.renewAccount = false
    this.cookies.writeLogin(reply, state, next, freshIssuedAt)
  }

  // Without a store, the last use of a login travels in its cookie: a
  // request that read the login on an unguarded page re-issues it too (once
  // a minute at most), or browsing such pages would end in the idle timeout.
  carryLastUse (request: FastifyRequest, reply: FastifyReply): void {
    const state = (request as StatefulRequest)[kLoginState]
    const account = state?.account
    if (state === null || state === undefined || !state.authenticated || account === null || account === undefined) return
    const now = nowInSeconds()
    if (now - account.lastSeenAt < touchInterval(this.config.idleTimeout)) return
    // With a store, what its check asked for goes along (it wrote the last use).
    const next = { ...account, lastSeenAt: now, ...state.verdict?.next }
    state.verdict = null
    state.account = next
    state.token = next
    this.cookies.writeLogin(reply, state, next, null)
  }

  settle (request: FastifyRequest, state: LoginState, user: MaybeUser, event: LoadEvent | null): LoginCurrentUser {
    state.pending = null
    state.authenticated = user !== null && user !== undefined
    if (state.authenticated) {
      state.user = user as LoginUser
      if (event !== null) this.emit(request, event, request, user as LoginUser)
    } else {
      state.user = this.#anonymousUser()
    }
    return state.user
  }

  // The request's login as loginUser or logoutUser leaves it: whatever its
  // cookies said no longer counts, and a resolution under way is superseded.
  replaceLogin (state: LoginState, account: AccountToken | null, fresh: boolean): void {
    state.generation++
    state.token = account
    state.account = account
    state.verdict = null
    state.renewAccount = false
    state.protectionFailed = false
    state.error = undefined
    state.freshCookie = null
    state.fresh = fresh
  }

  sent (request: FastifyRequest, state: LoginState): SentCookies {
    if (state.cookies === null) state.cookies = this.cookies.read(request)
    return state.cookies
  }

  clearCookies (request: FastifyRequest, reply: FastifyReply, state: LoginState): void {
    const sent = this.sent(request, state)
    if (sent.duplicated) this.expirePlanted(request, reply, state)
    this.cookies.clear(reply, state, sent)
    this.binding?.clear(request, reply, state)
  }

  expirePlanted (request: FastifyRequest, reply: FastifyReply, state: LoginState): void {
    if (state.plantedExpired) return
    state.plantedExpired = true
    this.cookies.expirePlanted(request, reply)
  }

  sameClient (request: FastifyRequest, account: AccountToken): boolean {
    return this.#clients.check(account.client, request.headers['user-agent'], request.ip) !== null
  }

  clientOf (userAgent: string | undefined, ip: string): string {
    return this.config.sessionProtection === false ? '' : this.#clients.tag(userAgent, ip)
  }

  emit<K extends keyof LoginEvents> (request: FastifyRequest, event: K, ...args: LoginEvents[K]): void {
    emitSafely(this.#emitter, request, event, ...args)
  }

  #callLoader (request: FastifyRequest, state: LoginState, account: AccountToken | null): Loaded {
    if (account !== null && this.userLoader !== null) return [this.userLoader(account.id, request), 'userLoadedFromCookie']
    // Only a request without a valid login cookie is asked about its headers.
    if (this.requestLoader !== null) {
      state.account = null
      return [this.requestLoader(request), 'userLoadedFromRequest']
    }
    return [null, null]
  }

  // A login or logout in the meantime supersedes the work: it must not
  // overwrite the user they set, nor fail a request they already answered.
  #wait (request: FastifyRequest, state: LoginState, work: Promise<Loaded>): Promise<LoginCurrentUser> {
    const generation = state.generation
    const pending: Promise<LoginCurrentUser> = work
      .then(async ([loaded, event]) => [await loaded, event] as const)
      .then(
        ([user, event]) => state.generation === generation ? this.settle(request, state, user, event) : state.user as LoginCurrentUser,
        (error: unknown) => {
          if (state.generation !== generation) return state.user as LoginCurrentUser
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

  #readFresh (request: FastifyRequest, state: LoginState) {
    if (state.freshCookie === undefined) {
      // A duplicated fresh cookie already made the request anonymous (readToken).
      state.freshCookie = this.#freshCookies.read(this.#keys.signer, this.sent(request, state).isFresh, nowInSeconds())
    }
    return state.freshCookie
  }

  #checkFresh (request: FastifyRequest, state: LoginState): boolean {
    const account = state.account
    if (!state.authenticated || account === null || account === undefined) return false
    const fresh = this.#readFresh(request, state)
    if (fresh === null || fresh.token.loginId !== account.loginId) return false
    // "Sudo mode" ends: a fresh cookie counts for freshDuration after it was issued.
    const freshFor = this.config.freshDuration
    if (freshFor !== null && nowInSeconds() - fresh.token.issuedAt >= freshFor) return false
    // 'basic' protection: a login used from another client is no longer fresh.
    if (this.config.sessionProtection === 'basic' && !this.sameClient(request, account)) {
      this.emit(request, 'sessionProtected', request)
      return false
    }
    return true
  }

  #anonymousUser (): LoginAnonymousUser {
    const Anonymous = this.config.anonymousUser
    // Classes need `new`; arrow functions cannot take it. A plain function
    // factory works either way, since `new` returns the object it returns.
    return (Anonymous.prototype === undefined
      ? (Anonymous as () => LoginAnonymousUser)()
      : new (Anonymous as new () => LoginAnonymousUser)())
  }
}

function noop (): void {}
