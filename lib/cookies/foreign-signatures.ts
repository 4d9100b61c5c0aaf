import type { FastifyRequest } from 'fastify'
import { isCurrent, MAX_COOKIE_LENGTH, parseAccount } from './token'

// An instance started with another secret (behind a balancer, one that fell
// back to a random secret when LOGIN_SECRET was missing) takes every other
// instance's cookies for anonymous visitors, and nothing would say why. A
// cookie of our shape, current, whose signature no key verifies is the sign
// of it: a warning names the cause, once a minute at most, so that forged
// cookies cannot flood the log.

const WARN_EVERY = 60
// 32 bytes of HMAC in base64 without padding, as both signers write it.
const SIGNATURE = /^[A-Za-z0-9+/]{43}$/

export const FOREIGN_SIGNATURE_WARNING = 'fastify-login: a well-formed, unexpired login cookie has a signature that none of this instance\'s keys verifies, so its request is anonymous. ' +
  'The likely cause: a different `secret` on this instance (every instance of an app needs the same one; one that started without it, with a random fallback, refuses the others\' cookies), ' +
  'or a secret rotated out too early (keep the previous one in the list, `secret: [current, previous]`, until its cookies expire). Else a forged cookie. Logged at most once a minute.'

export class ForeignSignatures {
  #warnedAt = -Infinity

  // Called with an account cookie that did not verify, and only then.
  refused (request: FastifyRequest, raw: string, now: number): void {
    if (now - this.#warnedAt < WARN_EVERY || !signedElsewhere(raw, now)) return
    this.#warnedAt = now
    request.log.warn(FOREIGN_SIGNATURE_WARNING)
  }
}

// Well formed and not expired, yet refused: only its signature can have
// failed. Costs no HMAC.
function signedElsewhere (raw: string, now: number): boolean {
  const dot = raw.lastIndexOf('.')
  if (raw.length > MAX_COOKIE_LENGTH || dot === -1 || !SIGNATURE.test(raw.slice(dot + 1))) return false
  const token = parseAccount(raw.slice(0, dot))
  return token !== null && isCurrent(token, now)
}
