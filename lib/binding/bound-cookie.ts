import type { Signer } from '../cookies/signing'
import { verifySigned, type Verified } from '../cookies/token'
import { VerifiedCookies } from '../cookies/verified'

// The bound cookie: proof, for `credentialDuration` seconds, that the browser
// holding the account cookie of a bound login also holds that login's key.
// Only the registration and the refresh endpoint issue one, each after
// checking a signature made with the key. It names the login, not the
// account cookie's generation, so rotating the account cookie leaves it valid.
//
//   b1.<login id>.<expires at, seconds, base 36>

export interface BoundToken {
  loginId: string
  expiresAt: number
}

// A request sent as the browser drops the cookie (at its Max-Age) may reach
// a server whose clock is a little ahead: still the browser's own.
export const BOUND_COOKIE_GRACE = 5

const BOUND = /^b1\.([A-Za-z0-9_-]{22})\.([0-9a-z]{1,10})$/

export function encodeBound (token: BoundToken): string {
  return `b1.${token.loginId}.${token.expiresAt.toString(36)}`
}

export function readBound (signer: Signer, raw: string, now: number): Verified<BoundToken> | null {
  const payload = verifySigned(signer, raw)
  const fields = payload === null ? null : BOUND.exec(payload.value)
  if (payload === null || fields === null) return null
  const token = { loginId: fields[1], expiresAt: parseInt(fields[2], 36) }
  return isCurrent(token, now) ? { token, renew: payload.renew } : null
}

// Expiry is checked on every read, cached or not.
export class VerifiedBoundCookies extends VerifiedCookies<BoundToken> {
  constructor (size: number) {
    super(size, readBound)
  }

  override read (signer: Signer, raw: string | undefined, now: number): Verified<BoundToken> | null {
    const verified = super.read(signer, raw, now)
    return verified === null || !isCurrent(verified.token, now) ? null : verified
  }
}

function isCurrent (token: BoundToken, now: number): boolean {
  return now < token.expiresAt + BOUND_COOKIE_GRACE
}
