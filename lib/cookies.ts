import type { FastifyReply, FastifyRequest } from 'fastify'
import { nowInSeconds } from './clock'
import type { LoginConfig } from '../types/index'
import { FST_LOGIN_INVALID_USER } from './errors'
import type { Signer } from './signing'
import type { LoginState } from './state'
import { encodeAccount, encodeFresh, fitsInBrowser, type AccountToken } from './token'

// Reads the login cookies with @fastify/cookie's parse, never through its
// hooks: those run on every route of an app, and a route that never asks who
// is logged in must not pay for this plugin. The header is parsed here, once,
// only for requests that ask. The Set-Cookie lines are written here too, in
// the form and attribute order of @fastify/cookie's serialize (cookie 2):
// their attributes are fixed by the options, which are checked when the
// plugin is registered, so the line is put together from parts built once
// instead of validating every attribute of every cookie of every login.

export type CookieJar = Record<string, string | undefined>

// @fastify/cookie's parse, as a decorator of an instance that
// registered it. Its module-level exports would not do: each copy of the
// package loads them on its own first registration, and the app's copy may
// not be ours.
export interface CookieCodec {
  parse (header: string): CookieJar
}

// The login cookies of one manager: its names, attributes and signer, built once.
export class LoginCookies {
  #codec: CookieCodec
  #config: LoginConfig
  #signer: Signer
  // The attributes after Path, and those between Max-Age and Expires.
  #scope: string
  #flags: string

  constructor (codec: CookieCodec, config: LoginConfig, signer: Signer) {
    this.#codec = codec
    this.#config = config
    this.#signer = signer
    this.#scope = (config.cookieDomain === undefined || config.cookieDomain === '' ? '' : `; Domain=${config.cookieDomain}`) + `; Path=${config.cookiePath}`
    this.#flags = config.cookieHttpOnly ? '; HttpOnly' : ''
  }

  // The request's cookies, and whether a login cookie came more than once.
  // A duplicate is how a cookie planted by a sibling subdomain (with a
  // longer Path, so sent first) would override the real login.
  read (request: FastifyRequest): { jar: CookieJar, duplicated: boolean } {
    const header = request.headers.cookie
    if (typeof header !== 'string' || header.length === 0) return { jar: {}, duplicated: false }
    const { account, isFresh } = this.#config.cookieName
    const duplicated = occursTwice(header, account) || occursTwice(header, isFresh)
    // An app that registered @fastify/cookie with its parsing hook already did the work.
    const parsed = request.cookies
    return { jar: parsed !== null && parsed !== undefined ? parsed : this.#codec.parse(header), duplicated }
  }

  // Signs the account token and writes it, with a fresh cookie naming the same
  // login when freshIssuedAt is given.
  writeLogin (reply: FastifyReply, state: LoginState, account: AccountToken, freshIssuedAt: number | null): void {
    const { cookieName, cookieRememberMe } = this.#config
    const signed = this.signAccount(account)
    const lifetime = Math.max(0, account.expiresAt - nowInSeconds())
    // Responses that set a login must not be kept by shared caches.
    reply.header('cache-control', 'no-store')
    const secure = this.#secure(reply.request)
    this.#set(reply, state, cookieName.account, this.#line(cookieName.account, signed, secure, account.remember ? lifetime : null))
    if (freshIssuedAt === null) return
    this.#set(reply, state, cookieName.isFresh, this.#line(cookieName.isFresh, this.signFresh(account, freshIssuedAt), secure, cookieRememberMe.isFresh ? lifetime : null))
  }

  signAccount (account: AccountToken): string {
    const signed = this.#signer.sign(encodeAccount(account))
    if (!fitsInBrowser(this.#config.cookieName.account, signed)) {
      throw new FST_LOGIN_INVALID_USER('the user id is too long: the account cookie would exceed the 4096 bytes browsers keep')
    }
    return signed
  }

  // The fresh cookie names the account cookie's login.
  signFresh (account: AccountToken, issuedAt: number): string {
    return this.#signer.sign(encodeFresh({ loginId: account.loginId, issuedAt }))
  }

  // Expires the login cookies this request sent or this response set, and no
  // others: a logout of a visitor without cookies sends no Set-Cookie.
  clear (reply: FastifyReply, state: LoginState, jar: CookieJar): void {
    for (const name of [this.#config.cookieName.account, this.#config.cookieName.isFresh]) {
      if (cookieValue(jar, name) === undefined && state.written?.has(name) !== true) continue
      reply.header('cache-control', 'no-store')
      this.#set(reply, state, name, this.#line(name, '', this.#secure(reply.request), 0, EPOCH))
    }
  }

  #secure (request: FastifyRequest): boolean {
    const config = this.#config
    // Browsers drop SameSite=None cookies that are not Secure. 'auto' follows
    // the request's protocol, which honours Fastify's trustProxy.
    return config.cookieSameSite === 'none' || (config.cookieSecure === 'auto' ? request.protocol === 'https' : config.cookieSecure)
  }

  // maxAge null: a browser-session cookie. The value goes as it is, as
  // @fastify/cookie sends it: a signed token is base64, base64url and dots
  // (the user id is base64url-encoded), never a character a cookie cannot carry.
  #line (name: string, value: string, secure: boolean, maxAge: number | null, expires?: Date): string {
    let line = `${name}=${value}`
    if (maxAge !== null) line += `; Max-Age=${maxAge}`
    line += this.#scope
    const until = expires ?? (maxAge === null ? undefined : new Date(Date.now() + maxAge * 1000))
    if (until !== undefined) line += `; Expires=${until.toUTCString()}`
    line += this.#flags
    if (secure) line += '; Secure'
    return line + SAME_SITE[this.#config.cookieSameSite]
  }

  // One Set-Cookie per login cookie and response: a second write in the same
  // response (a login, then a logout) replaces the first, which the browser
  // would otherwise apply too, in order.
  #set (reply: FastifyReply, state: LoginState, name: string, header: string): void {
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
}

const EPOCH = new Date(0)
const SAME_SITE = { lax: '; SameSite=Lax', strict: '; SameSite=Strict', none: '; SameSite=None' } as const

// A parsed jar may be a plain object: `constructor` or `__proto__` must not
// read as cookies the request sent.
export function cookieValue (jar: CookieJar, name: string): string | undefined {
  return Object.hasOwn(jar, name) ? jar[name] : undefined
}

// Every value the header sends under `name`, decoded as the parser would:
// for a logout that must end every login a tossed cookie stood beside.
export function cookieValues (header: string, name: string): string[] {
  const values: string[] = []
  for (const pair of header.split(';')) {
    const equals = pair.indexOf('=')
    if (equals === -1 || pair.slice(0, equals).trim() !== name) continue
    let value = pair.slice(equals + 1).trim()
    if (value.length > 1 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1)
    try {
      values.push(decodeURIComponent(value))
    } catch {
      values.push(value)
    }
  }
  return values
}

// Whether `name=` starts two of the header's cookie pairs. Cheap enough for
// every request that asks who is logged in: one indexOf in the common case.
function occursTwice (header: string, name: string): boolean {
  let count = 0
  let from = 0
  for (;;) {
    const at = header.indexOf(name, from)
    if (at === -1) return false
    from = at + name.length
    // Parsers trim the name: `account =x` is a cookie named account too.
    let equals = from
    while (isBlank(header.charCodeAt(equals))) equals++
    if (header.charCodeAt(equals) === 61 /* = */ && startsPair(header, at) && ++count === 2) return true
  }
}

function startsPair (header: string, at: number): boolean {
  let i = at - 1
  while (i >= 0 && isBlank(header.charCodeAt(i))) i--
  return i < 0 || header.charCodeAt(i) === 59 /* ; */
}

function isBlank (code: number): boolean {
  return code === 32 || code === 9
}
