import type { FastifyRequest } from 'fastify'
import type { CurrentUser } from '../types/index'
import type { CookieJar } from './cookies'
import type { AccountToken, FreshToken, Verified } from './token'

// Per-request login state, kept under a Symbol so nothing leaks into the
// request's public shape. Created on the first question about the login,
// so requests that never ask carry only a null.
export const kLoginState = Symbol('fastify-login.state')

export interface LoginState {
  cookies: CookieJar | null
  // undefined: not read yet; null: no valid account cookie.
  account: AccountToken | null | undefined
  // The account cookie was signed with an older secret: re-sign it.
  renewAccount: boolean
  // 'strong' session protection refused the account cookie: clear it.
  protectionFailed: boolean
  // The Set-Cookie line of each login cookie this response sets (a logout
  // must then expire them, and a second write replaces the line).
  written: Map<string, string> | null
  user: CurrentUser | undefined
  authenticated: boolean
  pending: Promise<CurrentUser> | null
  error: unknown
  // undefined: not read yet; null: no valid fresh cookie.
  freshCookie: Verified<FreshToken> | null | undefined
  fresh: boolean | undefined
  // reply.locals, for templates (null: not asked for yet, or reset by the app).
  locals: Record<string, unknown> | null
}

export type StatefulRequest = FastifyRequest & { [kLoginState]: LoginState | null }

export function loginState (request: FastifyRequest): LoginState {
  const holder = request as StatefulRequest
  let state = holder[kLoginState]
  if (state === null) {
    state = {
      cookies: null,
      account: undefined,
      renewAccount: false,
      protectionFailed: false,
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

// Loaders and handlers may answer with a promise or a plain value.
export function isThenable<T> (value: unknown): value is PromiseLike<T> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function'
}
