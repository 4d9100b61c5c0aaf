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

const BASE64URL = /^[A-Za-z0-9_-]+$/
const TIME = /^[0-9a-z]{1,10}$/
const LOGIN_ID = /^[A-Za-z0-9_-]{16}$/
const CLIENT = /^[A-Za-z0-9_-]{0,128}$/
// Ids must come back exactly as they went in: no replacement characters.
const UTF8 = new TextDecoder('utf-8', { fatal: true })

// Browsers keep a cookie only if its name and value, as sent, fit in 4096
// bytes. Signed tokens are ASCII and sent as they are.
export function fitsInBrowser (name: string, value: string): boolean {
  return name.length + 1 + value.length <= MAX_COOKIE_LENGTH
}

export function encodeAccount (token: AccountToken): string {
  return [
    'a2',
    Buffer.from(token.id, 'utf8').toString('base64url'),
    token.issuedAt.toString(36),
    token.expiresAt.toString(36),
    token.lastSeenAt.toString(36),
    token.loginId,
    token.remember ? 'r' : 's',
    token.client
  ].join('.')
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
  const parts = payload.value.split('.')
  let seen: string
  if (parts[0] === 'a2' && parts.length === 8) {
    seen = parts[4]
    parts.splice(4, 1)
  } else if (parts[0] === 'a1' && parts.length === 7) {
    seen = parts[2]
  } else {
    return null
  }
  const [, id64, issued, expires, loginId, remember, client] = parts
  if (!TIME.test(issued) || !TIME.test(expires) || !TIME.test(seen) || !LOGIN_ID.test(loginId) || !CLIENT.test(client)) return null
  if (remember !== 'r' && remember !== 's') return null
  const id = decodeId(id64)
  if (id === null) return null
  const token = {
    id,
    issuedAt: parseInt(issued, 36),
    expiresAt: parseInt(expires, 36),
    lastSeenAt: parseInt(seen, 36),
    loginId,
    remember: remember === 'r',
    client
  }
  if (!isCurrent(token, now)) return null
  return { token, renew: payload.renew }
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
function decodeId (id64: string): string | null {
  if (!BASE64URL.test(id64)) return null
  const bytes = Buffer.from(id64, 'base64url')
  if (bytes.toString('base64url') !== id64) return null
  try {
    return UTF8.decode(bytes)
  } catch {
    return null
  }
}

function verify (signer: Signer, raw: string | undefined): { value: string, renew: boolean } | null {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_COOKIE_LENGTH) return null
  const result = signer.unsign(raw)
  if (!result.valid || typeof result.value !== 'string') return null
  return { value: result.value, renew: result.renew }
}
