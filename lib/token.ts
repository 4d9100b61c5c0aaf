import { createHash, randomBytes } from 'node:crypto'

// What the login cookies carry. Both are signed as a whole with the
// HMAC signer of @fastify/cookie; these functions only shape the payload.
//
//   account: a1.<id, base64url>.<issued at>.<expires at>.<login id>.<r|s>.<client>
//   fresh:   f1.<login id>.<issued at>
//
// Times are seconds since the epoch in base 36. The login id is random per
// login: the fresh cookie names it, so it cannot be paired with another
// login's account cookie. The type tag keeps one kind from passing for the other.
// <client> is a hash of the user agent and address that logged in (session
// protection), empty when protection is off.

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
const CLIENT = /^[A-Za-z0-9_-]{0,22}$/

export function nowInSeconds (): number {
  return Math.floor(Date.now() / 1000)
}

export function newLoginId (): string {
  return randomBytes(12).toString('base64url')
}

// Identifies the client a login was made from. Not secret (it travels inside
// a signed, readable cookie); it only has to change when the client does.
export function clientHash (userAgent: string | undefined, ip: string): string {
  return createHash('sha256').update(`${userAgent ?? ''}\n${ip}`).digest('base64url').slice(0, 22)
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
