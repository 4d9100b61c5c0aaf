import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CookieSerializeOptions } from '@fastify/cookie'
import type { LoginConfig } from '../types/index'
import { FST_LOGIN_INVALID_USER } from './errors'
import { encodeAccount, encodeFresh, fitsInBrowser, type AccountToken, type Signer } from './token'

// Reads and writes the login cookies. Reading never relies on a global
// cookie-parsing hook: the header is parsed here, once, only for requests
// that ask who is logged in.

export type CookieJar = Record<string, string | undefined>

export function parseRequestCookies (request: FastifyRequest): CookieJar {
  // An app that registered @fastify/cookie with its parsing hook already did the work.
  if (request.cookies !== null && request.cookies !== undefined) return request.cookies
  const header = request.headers.cookie
  return typeof header === 'string' && header.length > 0 ? request.server.parseCookie(header) : {}
}

function cookieOptions (config: LoginConfig, request: FastifyRequest, maxAge: number | null): CookieSerializeOptions {
  // Browsers drop SameSite=None cookies that are not Secure.
  const secure = config.cookieSameSite === 'none' || (config.cookieSecure === 'auto' ? request.protocol === 'https' : config.cookieSecure)
  return {
    path: config.cookiePath,
    domain: config.cookieDomain,
    httpOnly: config.cookieHttpOnly,
    sameSite: config.cookieSameSite,
    // 'auto' follows the request's protocol, which honours Fastify's trustProxy.
    secure,
    // Set even when empty: an app's @fastify/cookie parseOptions must not sign
    // our values twice or turn a browser-session cookie into a lasting one.
    signed: false,
    maxAge: maxAge ?? undefined,
    expires: maxAge === null ? undefined : new Date(Date.now() + maxAge * 1000)
  }
}

// Signs the account token and writes it, with a fresh cookie naming the same
// login when freshIssuedAt is given. Returns the names written.
export function writeLoginCookies (reply: FastifyReply, config: LoginConfig, signer: Signer, account: AccountToken, freshIssuedAt: number | null): string[] {
  const { cookieName, cookieRememberMe } = config
  const signed = signAccount(signer, cookieName.account, account)
  const lifetime = Math.max(0, account.expiresAt - Math.floor(Date.now() / 1000))
  // Responses that set a login must not be kept by shared caches.
  reply.header('cache-control', 'no-store')
  reply.setCookie(cookieName.account, signed, cookieOptions(config, reply.request, account.remember ? lifetime : null))
  if (freshIssuedAt === null) return [cookieName.account]
  const fresh = signer.sign(encodeFresh({ loginId: account.loginId, issuedAt: freshIssuedAt }))
  reply.setCookie(cookieName.isFresh, fresh, cookieOptions(config, reply.request, cookieRememberMe.isFresh ? lifetime : null))
  return [cookieName.account, cookieName.isFresh]
}

export function signAccount (signer: Signer, name: string, account: AccountToken): string {
  const signed = signer.sign(encodeAccount(account))
  if (!fitsInBrowser(name, signed)) {
    throw new FST_LOGIN_INVALID_USER('the user id is too long: the account cookie would exceed the 4096 bytes browsers keep')
  }
  return signed
}

export function clearLoginCookie (reply: FastifyReply, config: LoginConfig, name: string): void {
  reply.header('cache-control', 'no-store')
  reply.clearCookie(name, cookieOptions(config, reply.request, null))
}
