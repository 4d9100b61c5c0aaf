import type { Signer } from './signing'

// What the login cookies carry. Both are signed as a whole; these functions
// shape and read the payload.
//
//   account: a3.<id, base64url>.<issued at>.<expires at>.<last seen>.<authenticated at>
//              .<rotated at>.<generation>.<login id>.<r|s><flags>.<method>.<client>
//   fresh:   f1.<login id>.<issued at>
//
// Times are seconds since the epoch, and the generation a count, in base 36.
// The login id is random per login (128 bits): the fresh cookie names it, so
// it cannot be paired with another login's account cookie. The type tag keeps
// one kind from passing for the other. <client> is a keyed tag of the user
// agent and address that logged in (session protection), empty when
// protection is off. <last seen> is when the login was last used (idle
// timeout, and last use with a store). <authenticated at> is the last
// loginUser or confirmLogin, <method> how the user proved who they were then
// (empty: not said). <generation> and <rotated at> number the cookie's
// rotations (a store's reuse detection); <flags> are letters: `u` a rotated
// cookie whose first use is not yet recorded, `p` a login offered device
// binding, `b` a login bound to its device. Account cookies of the earlier
// formats (a1 without <last seen>, a2 without what follows it; both with
// 96-bit login ids) are still read.

export type Binding = 'none' | 'pending' | 'bound'

export interface AccountToken {
  id: string
  issuedAt: number
  expiresAt: number
  lastSeenAt: number
  authenticatedAt: number
  rotatedAt: number
  generation: number
  loginId: string
  remember: boolean
  // The first use of this generation is not recorded in the store yet.
  unconfirmed: boolean
  binding: Binding
  method: string | null
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
// 22 characters (128 bits) since a3; 16 (96 bits) in cookies of older formats.
const LOGIN_ID = /^[A-Za-z0-9_-]{16}(?:[A-Za-z0-9_-]{6})?$/
// What `method` may be: short, and nothing a cookie or this format cannot carry.
export const METHOD = /^[A-Za-z0-9_:-]{1,32}$/
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
  const times = `${token.issuedAt.toString(36)}.${token.expiresAt.toString(36)}.${token.lastSeenAt.toString(36)}.${token.authenticatedAt.toString(36)}.${token.rotatedAt.toString(36)}.${token.generation.toString(36)}`
  const flags = (token.remember ? 'r' : 's') + (token.unconfirmed ? 'u' : '') + BINDING_FLAG[token.binding]
  return `a3.${id}.${times}.${token.loginId}.${flags}.${token.method ?? ''}.${token.client}`
}

export function encodeFresh (token: FreshToken): string {
  return `f1.${token.loginId}.${token.issuedAt.toString(36)}`
}

// Returns null for anything that is not a valid, current account cookie:
// missing, oversized, unsigned, tampered, malformed, issued in the future,
// longer-lived than any option allows, or past its expiry.
export function readAccount (signer: Signer, raw: string | undefined, now: number): Verified<AccountToken> | null {
  const payload = verifySigned(signer, raw)
  if (payload === null) return null
  const token = parseAccount(payload.value)
  if (token === null || !isCurrent(token, now)) return null
  return { token, renew: payload.renew }
}

// One pass over the payload, field by field (times: 1 to 10 base-36 digits;
// login id: 22 base64url characters, 16 before a3; method: up to 32 of
// [A-Za-z0-9_:-]; client: up to 128 base64url characters, the last field).
// Regexes and a split into an array cost more than the HMAC's own arithmetic
// on a new cookie; this reads the times as it checks them and allocates the
// id, the login id, the method, the client and the token, nothing else.
export function parseAccount (value: string): AccountToken | null {
  const version = value.startsWith('a3.') ? 3 : value.startsWith('a2.') ? 2 : value.startsWith('a1.') ? 1 : 0
  if (version === 0) return null
  const idEnd = value.indexOf('.', 3)
  if (idEnd === -1) return null
  const issuedEnd = value.indexOf('.', idEnd + 1)
  const issuedAt = base36(value, idEnd + 1, issuedEnd)
  if (issuedAt === -1) return null
  const expiresEnd = value.indexOf('.', issuedEnd + 1)
  const expiresAt = base36(value, issuedEnd + 1, expiresEnd)
  if (expiresAt === -1) return null
  // a1 has no last use: it counts from the issue.
  let end = version === 1 ? expiresEnd : value.indexOf('.', expiresEnd + 1)
  const lastSeenAt = version === 1 ? issuedAt : base36(value, expiresEnd + 1, end)
  if (lastSeenAt === -1) return null
  // Before a3: authenticated when issued, never rotated.
  let authenticatedAt = issuedAt
  let rotatedAt = issuedAt
  let generation = 0
  if (version === 3) {
    const authenticatedEnd = value.indexOf('.', end + 1)
    authenticatedAt = base36(value, end + 1, authenticatedEnd)
    if (authenticatedAt === -1) return null
    const rotatedEnd = value.indexOf('.', authenticatedEnd + 1)
    rotatedAt = base36(value, authenticatedEnd + 1, rotatedEnd)
    if (rotatedAt === -1) return null
    end = value.indexOf('.', rotatedEnd + 1)
    generation = base36(value, rotatedEnd + 1, end)
    if (generation === -1) return null
  }
  const loginEnd = end + 1 + (version === 3 ? LOGIN_ID_LENGTH : OLD_LOGIN_ID_LENGTH)
  if (value.charCodeAt(loginEnd) !== DOT || !isBase64url(value, end + 1, loginEnd)) return null
  const remember = value.charCodeAt(loginEnd + 1)
  if (remember !== R && remember !== S) return null
  let at = loginEnd + 2
  let unconfirmed = false
  let binding: Binding = 'none'
  let method: string | null = null
  if (version === 3) {
    if (value.charCodeAt(at) === U) { unconfirmed = true; at++ }
    const flag = value.charCodeAt(at)
    if (flag === P || flag === B) { binding = flag === P ? 'pending' : 'bound'; at++ }
    if (value.charCodeAt(at) !== DOT) return null
    const methodEnd = value.indexOf('.', at + 1)
    if (methodEnd === -1 || methodEnd - at - 1 > MAX_METHOD_LENGTH || !isMethod(value, at + 1, methodEnd)) return null
    if (methodEnd > at + 1) method = value.slice(at + 1, methodEnd)
    at = methodEnd
  }
  if (value.charCodeAt(at) !== DOT) return null
  const clientStart = at + 1
  if (value.length - clientStart > MAX_CLIENT_LENGTH || !isBase64url(value, clientStart, value.length)) return null
  // Last: the one field that allocates more than its string.
  const id = decodeId(value.slice(3, idEnd))
  if (id === null) return null
  return {
    id,
    issuedAt,
    expiresAt,
    lastSeenAt,
    authenticatedAt,
    rotatedAt,
    generation,
    loginId: value.slice(end + 1, loginEnd),
    remember: remember === R,
    unconfirmed,
    binding,
    method,
    client: value.slice(clientStart)
  }
}

const DOT = 46
const R = 114
const S = 115
const U = 117
const P = 112
const B = 98
const BINDING_FLAG = { none: '', pending: 'p', bound: 'b' } as const
const LOGIN_ID_LENGTH = 22
const OLD_LOGIN_ID_LENGTH = 16
const MAX_METHOD_LENGTH = 32
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

// The base64url alphabet and `:`, the characters METHOD allows.
function isMethod (value: string, from: number, to: number): boolean {
  for (let at = from; at < to; at++) {
    const code = value.charCodeAt(at)
    if (code !== COLON && (code >= 128 || BASE64URL_VALUES[code] === -1)) return false
  }
  return true
}

const COLON = 58

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
    token.authenticatedAt <= now + CLOCK_SKEW && token.rotatedAt <= now + CLOCK_SKEW &&
    token.expiresAt - token.issuedAt <= MAX_LIFETIME &&
    now < token.expiresAt
}

export function readFresh (signer: Signer, raw: string | undefined, now: number): Verified<FreshToken> | null {
  const payload = verifySigned(signer, raw)
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

// The value a signed cookie (or challenge) carries, if its signature is one of ours.
export function verifySigned (signer: Signer, raw: string | undefined): { value: string, renew: boolean } | null {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_COOKIE_LENGTH) return null
  const result = signer.unsign(raw)
  if (!result.valid || typeof result.value !== 'string') return null
  return { value: result.value, renew: result.renew }
}
