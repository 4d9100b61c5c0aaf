import type { FastifyReply, FastifyRequest } from 'fastify'
import type { SerializeOptions } from '@fastify/cookie'
import type { LoginConfig } from '../types/index'
import { FST_LOGIN_INVALID_USER } from './errors'
import type { LoginState } from './state'
import { encodeAccount, encodeFresh, fitsInBrowser, type AccountToken, type Signer } from './token'

// Reads and writes the login cookies with @fastify/cookie's parse and
// serialize, never through its hooks: those run on every route of an app, and
// a route that never asks who is logged in must not pay for this plugin. The
// header is parsed here, once, only for requests that ask.

export type CookieJar = Record<string, string | undefined>

// @fastify/cookie's parse and serialize, as decorators of an instance that
// registered it. Its module-level exports would not do: each copy of the
// package loads them on its own first registration, and the app's copy may
// not be ours.
export interface CookieCodec {
  parse (header: string): CookieJar
  serialize (name: string, value: string, options: SerializeOptions): string
}

export function parseRequestCookies (request: FastifyRequest, codec: CookieCodec): CookieJar {
  // An app that registered @fastify/cookie with its parsing hook already did the work.
  if (request.cookies !== null && request.cookies !== undefined) return request.cookies
  const header = request.headers.cookie
  return typeof header === 'string' && header.length > 0 ? codec.parse(header) : {}
}

function cookieOptions (config: LoginConfig, request: FastifyRequest, maxAge: number | null): SerializeOptions {
  // Browsers drop SameSite=None cookies that are not Secure.
  const secure = config.cookieSameSite === 'none' || (config.cookieSecure === 'auto' ? request.protocol === 'https' : config.cookieSecure)
  return {
    path: config.cookiePath,
    domain: config.cookieDomain,
    httpOnly: config.cookieHttpOnly,
    sameSite: config.cookieSameSite,
    // 'auto' follows the request's protocol, which honours Fastify's trustProxy.
    secure,
    maxAge: maxAge ?? undefined,
    expires: maxAge === null ? undefined : new Date(Date.now() + maxAge * 1000)
  }
}

// Signs the account token and writes it, with a fresh cookie naming the same
// login when freshIssuedAt is given.
export function writeLoginCookies (reply: FastifyReply, state: LoginState, codec: CookieCodec, config: LoginConfig, signer: Signer, account: AccountToken, freshIssuedAt: number | null): void {
  const { cookieName, cookieRememberMe } = config
  const signed = signAccount(signer, cookieName.account, account)
  const lifetime = Math.max(0, account.expiresAt - Math.floor(Date.now() / 1000))
  // Responses that set a login must not be kept by shared caches.
  reply.header('cache-control', 'no-store')
  setCookie(reply, state, codec, cookieName.account, signed, cookieOptions(config, reply.request, account.remember ? lifetime : null))
  if (freshIssuedAt === null) return
  setCookie(reply, state, codec, cookieName.isFresh, signFresh(signer, account, freshIssuedAt), cookieOptions(config, reply.request, cookieRememberMe.isFresh ? lifetime : null))
}

export function signAccount (signer: Signer, name: string, account: AccountToken): string {
  const signed = signer.sign(encodeAccount(account))
  if (!fitsInBrowser(name, signed)) {
    throw new FST_LOGIN_INVALID_USER('the user id is too long: the account cookie would exceed the 4096 bytes browsers keep')
  }
  return signed
}

// The fresh cookie names the account cookie's login.
export function signFresh (signer: Signer, account: AccountToken, issuedAt: number): string {
  return signer.sign(encodeFresh({ loginId: account.loginId, issuedAt }))
}

export function clearLoginCookie (reply: FastifyReply, state: LoginState, codec: CookieCodec, config: LoginConfig, name: string): void {
  reply.header('cache-control', 'no-store')
  setCookie(reply, state, codec, name, '', { ...cookieOptions(config, reply.request, 0), expires: new Date(0) })
}

// One Set-Cookie per login cookie and response: a second write in the same
// response (a login, then a logout) replaces the first, which the browser
// would otherwise apply too, in order.
function setCookie (reply: FastifyReply, state: LoginState, codec: CookieCodec, name: string, value: string, options: SerializeOptions): void {
  const header = codec.serialize(name, value, options)
  const previous = state.written?.get(name)
  if (previous !== undefined) {
    const kept = [reply.getHeader('set-cookie')].flat().filter((line) => typeof line === 'string' && line !== previous)
    reply.removeHeader('set-cookie')
    if (kept.length > 0) reply.header('set-cookie', kept)
  }
  reply.header('set-cookie', header)
  state.written ??= new Map()
  state.written.set(name, header)
}
