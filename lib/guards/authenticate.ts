import type { FastifyReply, FastifyRequest } from 'fastify'
import { FST_LOGIN_UNAUTHORIZED } from '../errors'
import type { LoginInternals } from '../internals'
import { isThenable } from '../state'
import { varyOnCookie } from './guard'

// A check in @fastify/auth's shape, for `app.auth([app.loginManager.authenticate,
// apiKey], { relation: 'or' })`. A guard answers a refused request itself (a
// redirect, a 401), so @fastify/auth would never try the next check; this one
// only reports, through `done(error)`, and @fastify/auth decides the answer.

export type AuthFunction = (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => void

export function createAuthenticate (login: LoginInternals): AuthFunction {
  // undefined: logged in.
  function verdict (request: FastifyRequest, reply: FastifyReply): Error | undefined {
    // As the guards do: re-sign cookies of a rotated secret, slide expiry.
    login.refreshCookies(request, reply)
    return login.isAuthenticated(request) ? undefined : new FST_LOGIN_UNAUTHORIZED('app.loginManager.authenticate', 'the request has no valid login')
  }

  return function authenticate (request, reply, done) {
    // The answer depends on the login cookie: caches must key on it.
    varyOnCookie(reply)
    let user
    try {
      user = login.resolveUser(request)
    } catch (error) {
      failed(reply, done, error)
      return
    }
    if (isThenable(user)) user.then(() => done(verdict(request, reply)), (error: unknown) => failed(reply, done, error))
    else done(verdict(request, reply))
  }
}

// A loader or store that fails (a database outage) is a server error, never
// a logout: @fastify/auth answers an error without a status with a 401, so
// the reply gets a 500 first (a later check that passes still clears it).
function failed (reply: FastifyReply, done: (error?: Error) => void, error: unknown): void {
  const status = (error as { statusCode?: unknown } | null)?.statusCode
  if (!(typeof status === 'number' && status >= 400 && status <= 599)) reply.code(500)
  done(error as Error)
}
