import { hkdfSync, randomFillSync } from 'node:crypto'
import type { Secret } from '../types/index'

// What the login cookies carry. Both are signed as a whole with the
// HMAC signer of @fastify/cookie; these functions shape the payload.
//
//   account: a1.<id, base64url>.<issued at>.<expires at>.<login id>.<r|s>.<client>
//   fresh:   f1.<login id>.<issued at>
//
// Times are seconds since the epoch in base 36. The login id is random per
// login: the fresh cookie names it, so it cannot be paired with another
// login's account cookie. The type tag keeps one kind from passing for the other.
// <client> is a keyed tag of the user agent and address that logged in
// (session protection), empty when protection is off.

export interface AccountToken {
  id: string
  issuedAt: number
  expiresAt: number
  loginId: string
  remember: boolean
  client: string
}

export interface FreshToken {
  loginId: string
  issuedAt: number
}

export interface Signer {
  sign (value: string): string
  unsign (value: string): { valid: boolean, renew: boolean, value: string | null }
}

// Browsers keep at most about 4 KB per cookie; anything longer is not ours,
// and refusing it before the HMAC keeps huge headers cheap to reject.
export const MAX_COOKIE_LENGTH = 4096

const BASE64URL = /^[A-Za-z0-9_-]+$/
const TIME = /^[0-9a-z]{1,10}$/
const LOGIN_ID = /^[A-Za-z0-9_-]{16}$/
const CLIENT = /^[A-Za-z0-9_-]{0,128}$/

export function nowInSeconds (): number {
  return Math.floor(Date.now() / 1000)
}

// Random login ids (96 bits each), drawn from a pool refilled 256 ids at a
// time: a call into the CSPRNG per login was the largest single cost of
// loginUser. Node's own randomUUID caches its entropy the same way. Each
// byte is used once; the pool belongs to one login manager.
export class LoginIds {
  #pool = Buffer.alloc(12 * 256)
  #next = this.#pool.length

  next (): string {
    if (this.#next === this.#pool.length) {
      randomFillSync(this.#pool)
      this.#next = 0
    }
    const id = this.#pool.toString('base64url', this.#next, this.#next + 12)
    this.#next += 12
    return id
  }
}

// The key that signs login cookies, derived from the app's secret. Apps often
// share one secret with @fastify/cookie; a value the app signs there (perhaps
// one a visitor chose) must never pass for a login cookie.
export function signingKey (secret: Secret): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, '', 'fastify-login cookie signing v1', 32))
}

// Identifies the client a login was made from (session protection): an HMAC,
// through the signer, of its user agent and address. Keyed because the cookie
// is readable, and a plain hash of an IPv4 address is reversed by trying them
// all; checked with unsign, so every secret of a rotation still matches.
export function clientTag (signer: Signer, userAgent: string | undefined, ip: string): string {
  const signed = signer.sign(clientMessage(userAgent, ip))
  return signed.slice(signed.lastIndexOf('.') + 1).replaceAll('+', '-').replaceAll('/', '_')
}

// Client checks that passed, by tag and client: one HMAC per login and
// client, not one per request. Only matches are kept, and only for clients
// of ordinary size, so neither forged tags nor huge user agents fill it.
export class KnownClients {
  #passed = new TwoGenerations<true>(5000)

  isSame (signer: Signer, tag: string, userAgent: string | undefined, ip: string): boolean {
    if (tag.length === 0) return false
    const message = clientMessage(userAgent, ip)
    // A tag is base64url: the newline cannot be part of it.
    const key = `${tag}\n${message}`
    if (this.#passed.get(key) === true) return true
    const same = signer.unsign(`${message}.${tag.replaceAll('-', '+').replaceAll('_', '/')}`).valid
    if (same && message.length <= 512) this.#passed.set(key, true)
    return same
  }
}

function clientMessage (userAgent: string | undefined, ip: string): string {
  return `client\n${userAgent ?? ''}\n${ip}`
}

// Browsers keep a cookie only if its name and value, as sent, fit in 4096
// bytes. Signed tokens are ASCII and sent as they are.
export function fitsInBrowser (name: string, value: string): boolean {
  return name.length + 1 + value.length <= MAX_COOKIE_LENGTH
}

export function encodeAccount (token: AccountToken): string {
  return [
    'a1',
    Buffer.from(token.id, 'utf8').toString('base64url'),
    token.issuedAt.toString(36),
    token.expiresAt.toString(36),
    token.loginId,
    token.remember ? 'r' : 's',
    token.client
  ].join('.')
}

export function encodeFresh (token: FreshToken): string {
  return `f1.${token.loginId}.${token.issuedAt.toString(36)}`
}

export interface Verified<T> {
  token: T
  // Signed with an older secret of the list: re-sign with the current one.
  renew: boolean
}

// Returns null for anything that is not a valid, unexpired account cookie:
// missing, oversized, unsigned, tampered, malformed or past its expiry.
export function readAccount (signer: Signer, raw: string | undefined, now: number): Verified<AccountToken> | null {
  const payload = verify(signer, raw)
  if (payload === null) return null
  const parts = payload.value.split('.')
  if (parts.length !== 7 || parts[0] !== 'a1') return null
  const [, id64, issued, expires, loginId, remember, client] = parts
  if (!BASE64URL.test(id64) || !TIME.test(issued) || !TIME.test(expires) || !LOGIN_ID.test(loginId) || !CLIENT.test(client)) return null
  if (remember !== 'r' && remember !== 's') return null
  const expiresAt = parseInt(expires, 36)
  // The browser's Max-Age is advice; the server enforces the lifetime itself.
  if (now >= expiresAt) return null
  return {
    token: {
      id: Buffer.from(id64, 'base64url').toString('utf8'),
      issuedAt: parseInt(issued, 36),
      expiresAt,
      loginId,
      remember: remember === 'r',
      client
    },
    renew: payload.renew
  }
}

export function readFresh (signer: Signer, raw: string | undefined): Verified<FreshToken> | null {
  const payload = verify(signer, raw)
  if (payload === null) return null
  const parts = payload.value.split('.')
  if (parts.length !== 3 || parts[0] !== 'f1' || !LOGIN_ID.test(parts[1]) || !TIME.test(parts[2])) return null
  return {
    token: { loginId: parts[1], issuedAt: parseInt(parts[2], 36) },
    renew: payload.renew
  }
}

function verify (signer: Signer, raw: string | undefined): { value: string, renew: boolean } | null {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_COOKIE_LENGTH) return null
  const result = signer.unsign(raw)
  if (!result.valid || typeof result.value !== 'string') return null
  return { value: result.value, renew: result.renew }
}

// At most two generations of `size` entries: when the newer fills up, the
// older is dropped whole and the newer takes its place. Bounded, O(1), and
// entries in use move up to the newer generation, so they stay.
export class TwoGenerations<V> {
  #size: number
  #current = new Map<string, V>()
  #previous = new Map<string, V>()

  constructor (size: number) {
    this.#size = size
  }

  get (key: string): V | undefined {
    const value = this.#current.get(key)
    if (value !== undefined) return value
    const older = this.#previous.get(key)
    if (older !== undefined) this.set(key, older)
    return older
  }

  set (key: string, value: V): void {
    if (this.#current.size >= this.#size) {
      this.#previous = this.#current
      this.#current = new Map()
    }
    this.#current.set(key, value)
  }
}

// Verified cookies, by their exact signed value: a cookie seen again skips
// the HMAC and the parsing. Only cookies that verified get in, so forged ones
// cannot fill it. What is kept is frozen, since requests share it.
export class VerifiedCookies<T extends object> {
  #cache: TwoGenerations<Verified<T>>
  #verify: (signer: Signer, raw: string, now: number) => Verified<T> | null

  constructor (size: number, verify: (signer: Signer, raw: string, now: number) => Verified<T> | null) {
    this.#cache = new TwoGenerations(size)
    this.#verify = verify
  }

  read (signer: Signer, raw: string | undefined, now: number): Verified<T> | null {
    if (typeof raw !== 'string') return null
    let verified = this.#cache.get(raw)
    if (verified === undefined) {
      const read = this.#verify(signer, raw, now)
      if (read === null) return null
      Object.freeze(read.token)
      verified = Object.freeze(read)
      this.#cache.set(raw, verified)
    }
    return verified
  }
}

// Account cookies also expire: the expiry is checked on every read, cached or not.
export class VerifiedAccounts extends VerifiedCookies<AccountToken> {
  constructor (size: number) {
    super(size, readAccount)
  }

  override read (signer: Signer, raw: string | undefined, now: number): Verified<AccountToken> | null {
    const verified = super.read(signer, raw, now)
    // The browser's Max-Age is advice; the server enforces the lifetime itself.
    return verified === null || now >= verified.token.expiresAt ? null : verified
  }
}
