import type { FastifyRequest } from 'fastify'
import type { LoginCurrentUser } from '../types/index'
import type { SentCookies } from './cookies/header'
import type { AccountToken, FreshToken, Verified } from './cookies/token'
import type { Verdict } from './logins/verdict'

// Per-request login state, kept under a Symbol so nothing leaks into the
// request's public shape. Created on the first question about the login,
// so requests that never ask carry only a null.
export const kLoginState = Symbol('fastify-login.state')

export interface LoginState {
  // The login cookies the request sent; null: not read yet.
  cookies: SentCookies | null
  // The verified account cookie. undefined: not read yet; null: none valid.
  token: AccountToken | null | undefined
  // The login of the request: the token, once its record (with a store) is
  // known to be alive. undefined: not known yet; null: no login.
  account: AccountToken | null | undefined
  // What checking the login with a store decided (null: no store, or done).
  verdict: Verdict | null
  // Bumped by loginUser and logoutUser: a resolution still under way when
  // they ran must not overwrite what they set.
  generation: number
  // The account cookie was signed with an older secret: re-sign it.
  renewAccount: boolean
  // 'strong' session protection refused the account cookie: clear it.
  protectionFailed: boolean
  // This response already expires the copies of a login cookie sent twice.
  plantedExpired: boolean
  // The Set-Cookie line of each login cookie this response sets (a logout
  // must then expire them, and a second write replaces the line).
  written: Map<string, string> | null
  user: LoginCurrentUser | undefined
  authenticated: boolean
  pending: Promise<LoginCurrentUser> | null
  error: unknown
  // undefined: not read yet; null: no valid fresh cookie.
  freshCookie: Verified<FreshToken> | null | undefined
  fresh: boolean | undefined
  // reply.locals, for templates (null: not asked for yet, or reset by the app).
  locals: Record<string, unknown> | null
}

export type StatefulRequest = FastifyRequest & { [kLoginState]: LoginState | null | undefined }

export function loginState (request: FastifyRequest): LoginState {
  const holder = request as StatefulRequest
  let state = holder[kLoginState]
  // undefined: a request of a scope made before the plugin decorated requests.
  if (state === null || state === undefined) {
    state = {
      cookies: null,
      token: undefined,
      account: undefined,
      verdict: null,
      generation: 0,
      renewAccount: false,
      protectionFailed: false,
      plantedExpired: false,
      written: null,
      user: undefined,
      authenticated: false,
      pending: null,
      error: undefined,
      freshCookie: undefined,
      fresh: undefined,
      locals: null
    }
    holder[kLoginState] = state
  }
  return state
}

// Marks the config of a route whose `config.login` got the guard of this
// manager when declared. Fastify copies the config (symbol keys too) into
// the route after the onRoute hooks.
const kGuardedBy = Symbol('fastify-login.guarded-by')

export function markGuarded<T extends object> (config: T, manager: object): T {
  return Object.assign(config, { [kGuardedBy]: manager })
}

export function isGuarded (config: object, manager: object): boolean {
  return (config as { [kGuardedBy]?: object })[kGuardedBy] === manager
}

// Marks a hook made by one manager (a guard, crossOriginProtection), so that
// the plugin finds its own hooks among those of a route.
const kHookOf = Symbol('fastify-login.hook-of')

export function markHook<T extends object> (hook: T, owner: object): T {
  return Object.assign(hook, { [kHookOf]: owner })
}

export function isHookOf (hook: unknown, owner: object): boolean {
  return (hook as { [kHookOf]?: object } | null)?.[kHookOf] === owner
}

// Loaders, stores and handlers may answer with a promise or a plain value.
export function isThenable<T> (value: unknown): value is PromiseLike<T> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function'
}

export type MaybePromise<T> = T | Promise<T>

// Runs `next` on the value now, or once it arrives: synchronous stores and
// loaders keep a synchronous path.
export function andThen<T, R> (value: T | PromiseLike<T>, next: (value: T) => R | PromiseLike<R>): R | Promise<R> {
  return isThenable<T>(value) ? Promise.resolve(value).then(next) : next(value) as R | Promise<R>
}
