import type { FastifyRequest } from 'fastify'
import type { CurrentUser } from '../types/index'
import type { CookieJar } from './cookies'
import type { AccountToken } from './token'

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
  // This response sets login cookies (a logout must then expire them).
  wroteCookies: boolean
  user: CurrentUser | undefined
  authenticated: boolean
  pending: Promise<CurrentUser> | null
  error: unknown
  fresh: boolean | undefined
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
      wroteCookies: false,
      user: undefined,
      authenticated: false,
      pending: null,
      error: undefined,
      fresh: undefined
    }
    holder[kLoginState] = state
  }
  return state
}

export function isThenable<T> (value: unknown): value is PromiseLike<T> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function'
}
