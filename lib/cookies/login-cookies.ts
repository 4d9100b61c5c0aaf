import type { FastifyReply, FastifyRequest } from 'fastify'
import { readLoginCookies, sentTwice, type SentCookies } from './header'
import { plantedPlaces } from './planted'
import { nowInSeconds } from '../clock'
import type { LoginConfig } from '../../types/index'
import { FST_LOGIN_INVALID_USER } from '../errors'
import type { Signer } from './signing'
import type { LoginState } from '../state'
import { encodeAccount, encodeFresh, fitsInBrowser, type AccountToken } from './token'

// Writes the login cookies: their Set-Cookie lines, in the form and
// attribute order of @fastify/cookie's serialize (cookie 2). Their
// attributes are fixed by the options, which are checked when the plugin is
// registered, so the line is put together from parts built once instead of
// validating every attribute of every cookie of every login. Reading them is
// header.ts, never @fastify/cookie's hooks: those run on every route
// of an app, and a route that never asks who is logged in must not pay for
// this plugin.

// The login cookies of one manager: its names, attributes and signer, built once.
export class LoginCookies {
  #config: LoginConfig
  #signer: Signer
  // The attributes after Path, and those between Max-Age and Expires.
  #scope: string
  #flags: string
  // The last Expires date written, by its second: the cookies of a login,
  // and of the logins within one second, share it.
  #expiresSecond = -1
  #expiresText = ''

  constructor (config: LoginConfig, signer: Signer) {
    this.#config = config
    this.#signer = signer
    this.#scope = (config.cookieDomain === undefined || config.cookieDomain === '' ? '' : `; Domain=${config.cookieDomain}`) + `; Path=${config.cookiePath}`
    this.#flags = config.cookieHttpOnly ? '; HttpOnly' : ''
  }

  // The login cookies of the request, read once per request by Resolution.
  read (request: FastifyRequest): SentCookies {
    return readLoginCookies(request.headers.cookie, this.#config.cookieName.account, this.#config.cookieName.isFresh)
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
  clear (reply: FastifyReply, state: LoginState, sent: SentCookies): void {
    this.#expire(reply, state, this.#config.cookieName.account, sent.account !== undefined)
    this.#expire(reply, state, this.#config.cookieName.isFresh, sent.isFresh !== undefined)
  }

  // The request sent a login cookie twice: a copy planted beside the real
  // one. Expires that name everywhere a copy can be for this request but at
  // the real cookie's own place, so the next request carries the real one
  // alone (planted.ts). A __Host- cookie cannot be planted elsewhere.
  expirePlanted (request: FastifyRequest, reply: FastifyReply): void {
    const { cookieName, cookiePath, cookieDomain } = this.#config
    const header = request.headers.cookie as string
    const names = [cookieName.account, cookieName.isFresh].filter((name) => !name.toLowerCase().startsWith('__host-') && sentTwice(header, name))
    if (names.length === 0) return
    const secure = this.#secure(request)
    reply.header('cache-control', 'no-store')
    for (const { domain, path } of plantedPlaces(request.url, request.hostname, cookiePath, cookieDomain)) {
      const scope = (domain === null ? '' : `; Domain=${domain}`) + `; Path=${path}`
      for (const name of names) {
        // Not through #set: these lines are not the login cookie's own.
        reply.header('set-cookie', `${name}=; Max-Age=0${scope}; Expires=${EPOCH}${this.#flags}${secure || name.toLowerCase().startsWith('__secure-') ? '; Secure' : ''}${SAME_SITE[this.#config.cookieSameSite]}`)
      }
    }
  }

  // Device binding's cookie (its value signed by the caller), always Secure:
  // the protocol runs over https only. Its attributes are the other login
  // cookies', and what boundAttributes() tells the browser.
  writeBound (reply: FastifyReply, state: LoginState, signed: string, maxAge: number): void {
    reply.header('cache-control', 'no-store')
    this.#set(reply, state, this.#config.cookieName.bound, this.#line(this.#config.cookieName.bound, signed, true, maxAge))
  }

  expireBound (reply: FastifyReply, state: LoginState, wasSent: boolean): void {
    this.#expire(reply, state, this.#config.cookieName.bound, wasSent)
  }

  // The bound cookie's attributes as the browser must match them (Domain,
  // Path, Secure, HttpOnly, SameSite): a cookie that differs from them counts
  // as missing, and every request would wait for a refresh. No Max-Age,
  // which Chrome refuses there.
  boundAttributes (): string {
    return `${this.#scope.slice(2)}${this.#flags}; Secure${SAME_SITE[this.#config.cookieSameSite]}`
  }

  #expire (reply: FastifyReply, state: LoginState, name: string, wasSent: boolean): void {
    if (!wasSent && state.written?.has(name) !== true) return
    reply.header('cache-control', 'no-store')
    this.#set(reply, state, name, this.#line(name, '', this.#secure(reply.request), 0, EPOCH))
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
  #line (name: string, value: string, secure: boolean, maxAge: number | null, expires?: string): string {
    let line = `${name}=${value}`
    if (maxAge !== null) line += `; Max-Age=${maxAge}`
    line += this.#scope
    const until = expires ?? (maxAge === null ? undefined : this.#expires(Date.now() + maxAge * 1000))
    if (until !== undefined) line += `; Expires=${until}`
    line += this.#flags
    if (secure) line += '; Secure'
    return line + SAME_SITE[this.#config.cookieSameSite]
  }

  #expires (at: number): string {
    const second = Math.floor(at / 1000)
    if (second !== this.#expiresSecond) {
      this.#expiresText = new Date(second * 1000).toUTCString()
      this.#expiresSecond = second
    }
    return this.#expiresText
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

const EPOCH = new Date(0).toUTCString()
const SAME_SITE = { lax: '; SameSite=Lax', strict: '; SameSite=Strict', none: '; SameSite=None' } as const
