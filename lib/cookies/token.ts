import type { Signer } from './signing'

// What the login cookies carry. Both are signed as a whole; these functions
// shape and read the payload.
//
//   account: a2.<id, base64url>.<issued at>.<expires at>.<last seen>.<login id>.<r|s>.<client>
//   fresh:   f1.<login id>.<issued at>
//
// Times are seconds since the epoch in base 36. The login id is random per
// login: the fresh cookie names it, so it cannot be paired with another
// login's account cookie. The type tag keeps one kind from passing for the
// other. <client> is a keyed tag of the user agent and address that logged
// in (session protection), empty when protection is off. <last seen> is
// when the login was last used (idle timeout without a store). Account
// cookies of the first format (a1, without <last seen>) are still read.

export interface AccountToken {
  id: string
  issuedAt: number
  expiresAt: number
  lastSeenAt: number
  loginId: string
  remember: boolean
  client: string
}

export interface FreshToken {
  loginId: string
  issuedAt: number
}

export interface Verified<T> {
  token: T
  // Signed with an older secret of the list: re-sign with the current one.
  renew: boolean
}

// Browsers keep at most about 4 KB per cookie; anything longer is not ours,
// and refusing it before the HMAC keeps huge headers cheap to reject.
export const MAX_COOKIE_LENGTH = 4096
// Clocks of the instances of an app may disagree by this much. A token
// issued further in the future comes from a clock that is wrong: counting
// its lifetime from there would stretch it.
export const CLOCK_SKEW = 60
// Browsers cap cookie lifetimes at 400 days; the options allow no longer.
export const MAX_LIFETIME = 400 * 24 * 60 * 60

const TIME = /^[0-9a-z]{1,10}$/
const LOGIN_ID = /^[A-Za-z0-9_-]{16}$/
// Ids must come back exactly as they went in: no replacement characters,
// and a leading byte order mark kept (by default the decoder drops it, and
// "\uFEFFadmin" would read back as "admin").
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

// Browsers keep a cookie only if its name and value, as sent, fit in 4096
// bytes. Signed tokens are ASCII and sent as they are.
export function fitsInBrowser (name: string, value: string): boolean {
  return name.length + 1 + value.length <= MAX_COOKIE_LENGTH
}

export function encodeAccount (token: AccountToken): string {
  const id = Buffer.from(token.id, 'utf8').toString('base64url')
  const times = `${token.issuedAt.toString(36)}.${token.expiresAt.toString(36)}.${token.lastSeenAt.toString(36)}`
  return `a2.${id}.${times}.${token.loginId}.${token.remember ? 'r' : 's'}.${token.client}`
}

export function encodeFresh (token: FreshToken): string {
  return `f1.${token.loginId}.${token.issuedAt.toString(36)}`
}

// Returns null for anything that is not a valid, current account cookie:
// missing, oversized, unsigned, tampered, malformed, issued in the future,
// longer-lived than any option allows, or past its expiry.
export function readAccount (signer: Signer, raw: string | undefined, now: number): Verified<AccountToken> | null {
  const payload = verify(signer, raw)
  if (payload === null) return null
  const token = parseAccount(payload.value)
  if (token === null || !isCurrent(token, now)) return null
  return { token, renew: payload.renew }
}

// One pass over the payload, field by field, with the same rules the
// format always had (times: 1 to 10 base-36 digits; login id: 16 base64url
// characters; client: up to 128 of them, the last field). Five regexes and
// a split into an array cost more than the HMAC's own arithmetic on a new
// cookie; this reads the times as it checks them and allocates the id, the
// login id, the client and the token, nothing else.
export function parseAccount (value: string): AccountToken | null {
  const a2 = value.startsWith('a2.')
  if (!a2 && !value.startsWith('a1.')) return null
  const idEnd = value.indexOf('.', 3)
  if (idEnd === -1) return null
  const issuedEnd = value.indexOf('.', idEnd + 1)
  const issuedAt = base36(value, idEnd + 1, issuedEnd)
  if (issuedAt === -1) return null
  const expiresEnd = value.indexOf('.', issuedEnd + 1)
  const expiresAt = base36(value, issuedEnd + 1, expiresEnd)
  if (expiresAt === -1) return null
  // a1 has no last use: it counts from the issue.
  const seenEnd = a2 ? value.indexOf('.', expiresEnd + 1) : expiresEnd
  const lastSeenAt = a2 ? base36(value, expiresEnd + 1, seenEnd) : issuedAt
  if (lastSeenAt === -1) return null
  const loginEnd = seenEnd + 1 + LOGIN_ID_LENGTH
  if (value.charCodeAt(loginEnd) !== DOT || !isBase64url(value, seenEnd + 1, loginEnd)) return null
  const remember = value.charCodeAt(loginEnd + 1)
  if ((remember !== R && remember !== S) || value.charCodeAt(loginEnd + 2) !== DOT) return null
  const clientStart = loginEnd + 3
  if (value.length - clientStart > MAX_CLIENT_LENGTH || !isBase64url(value, clientStart, value.length)) return null
  // Last: the one field that allocates more than its string.
  const id = decodeId(value.slice(3, idEnd))
  if (id === null) return null
  return {
    id,
    issuedAt,
    expiresAt,
    lastSeenAt,
    loginId: value.slice(seenEnd + 1, loginEnd),
    remember: remember === R,
    client: value.slice(clientStart)
  }
}

const DOT = 46
const R = 114
const S = 115
const LOGIN_ID_LENGTH = 16
const MAX_CLIENT_LENGTH = 128
const MAX_TIME_LENGTH = 10

// The time in value[from, to): 1 to 10 base-36 digits (0-9, a-z), else -1.
// Ten digits stay below 2^53, so the sum is exact.
function base36 (value: string, from: number, to: number): number {
  if (to === -1 || to === from || to - from > MAX_TIME_LENGTH) return -1
  let time = 0
  for (let at = from; at < to; at++) {
    const code = value.charCodeAt(at)
    if (code >= 48 && code <= 57) time = time * 36 + code - 48
    else if (code >= 97 && code <= 122) time = time * 36 + code - 87
    else return -1
  }
  return time
}

function isBase64url (value: string, from: number, to: number): boolean {
  for (let at = from; at < to; at++) {
    const code = value.charCodeAt(at)
    if (code >= 128 || BASE64URL_VALUES[code] === -1) return false
  }
  return true
}

// The times of a token, checked against this instance's clock: not issued
// (or used) in the future, no longer-lived than options allow, not expired.
// The browser's Max-Age is advice; the server enforces the lifetime itself.
export function isCurrent (token: AccountToken, now: number): boolean {
  return token.issuedAt <= now + CLOCK_SKEW &&
    token.lastSeenAt >= token.issuedAt && token.lastSeenAt <= now + CLOCK_SKEW &&
    token.expiresAt - token.issuedAt <= MAX_LIFETIME &&
    now < token.expiresAt
}

export function readFresh (signer: Signer, raw: string | undefined, now: number): Verified<FreshToken> | null {
  const payload = verify(signer, raw)
  if (payload === null) return null
  const parts = payload.value.split('.')
  if (parts.length !== 3 || parts[0] !== 'f1' || !LOGIN_ID.test(parts[1]) || !TIME.test(parts[2])) return null
  const issuedAt = parseInt(parts[2], 36)
  if (issuedAt > now + CLOCK_SKEW) return null
  return { token: { loginId: parts[1], issuedAt }, renew: payload.renew }
}

// Only the one canonical spelling of an id is accepted, and only UTF-8.
// One pass over the characters checks the alphabet, decodes, and leaves
// whatever bits follow the last byte, which must be zero (canonical); a
// length that no encoder makes is refused first. Most ids are ASCII and are
// built here; others go through the UTF-8 decoder, which refuses invalid ones.
function decodeId (id64: string): string | null {
  if (id64.length === 0 || id64.length % 4 === 1) return null
  let id = ''
  let ascii = true
  let bits = 0
  let pending = 0
  for (let i = 0; i < id64.length; i++) {
    const code = id64.charCodeAt(i)
    const value = code < 128 ? BASE64URL_VALUES[code] : -1
    if (value === -1) return null
    pending = (pending << 6) | value
    bits += 6
    if (bits >= 8) {
      bits -= 8
      const byte = pending >> bits
      pending &= (1 << bits) - 1
      if (byte > 0x7f) ascii = false
      else if (ascii) id += String.fromCharCode(byte)
    }
  }
  if (pending !== 0) return null
  if (ascii) return id
  try {
    return UTF8.decode(Buffer.from(id64, 'base64url'))
  } catch {
    return null
  }
}

// The value of each base64url character by its code, -1 for any other.
const BASE64URL_VALUES = (() => {
  const values = new Int8Array(128).fill(-1)
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  for (let i = 0; i < alphabet.length; i++) values[alphabet.charCodeAt(i)] = i
  return values
})()

function verify (signer: Signer, raw: string | undefined): { value: string, renew: boolean } | null {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_COOKIE_LENGTH) return null
  const result = signer.unsign(raw)
  if (!result.valid || typeof result.value !== 'string') return null
  return { value: result.value, renew: result.renew }
}
