import { SeenOnce } from './admission'
import { TwoGenerations } from '../cache'
import type { Signer } from './signing'
import { isCurrent, readAccount, readFresh, type AccountToken, type FreshToken, type Verified } from './token'

// Verified cookies, by their exact signed value: from its third visit on, a
// cookie skips the HMAC and the parsing. Only cookies that verified get in,
// so forged ones cannot fill it, and only on their second visit
// (admission.ts), so one-off cookies do not churn it. What is kept is frozen, since requests share it.
export class VerifiedCookies<T extends object> {
  #cache: TwoGenerations<Verified<T>>
  #seen: SeenOnce
  #verify: (signer: Signer, raw: string, now: number) => Verified<T> | null

  constructor (size: number, verify: (signer: Signer, raw: string, now: number) => Verified<T> | null) {
    this.#cache = new TwoGenerations(size)
    this.#seen = new SeenOnce(size)
    this.#verify = verify
  }

  read (signer: Signer, raw: string | undefined, now: number): Verified<T> | null {
    if (typeof raw !== 'string') return null
    let verified = this.#cache.get(raw)
    if (verified === undefined) {
      const read = this.#verify(signer, raw, now)
      if (read === null || !this.#seen.again(raw)) return read
      Object.freeze(read.token)
      verified = Object.freeze(read)
      this.#cache.set(raw, verified)
    }
    return verified
  }
}

// Account cookies also expire: their times are checked on every read, cached or not.
export class VerifiedAccounts extends VerifiedCookies<AccountToken> {
  constructor (size: number) {
    super(size, readAccount)
  }

  override read (signer: Signer, raw: string | undefined, now: number): Verified<AccountToken> | null {
    const verified = super.read(signer, raw, now)
    return verified === null || !isCurrent(verified.token, now) ? null : verified
  }
}

export class VerifiedFreshCookies extends VerifiedCookies<FreshToken> {
  constructor (size: number) {
    super(size, readFresh)
  }
}
