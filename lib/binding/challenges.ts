import type { Signer } from '../cookies/signing'
import { CLOCK_SKEW, verifySigned } from '../cookies/token'

// What the browser signs with its key: a registration challenge, sent with
// the login response, and a refresh challenge on each refresh. Each names
// the login it was issued for and when (milliseconds), signed with the
// realm's key under a type tag of its own, so that any instance of the app
// checks what another issued, without a store, and neither kind passes for
// the other or for a cookie. A refresh challenge works once: the record
// keeps the issue time of the newest one used (LoginStore.useChallenge).
//
//   r1.<login id>.<issued at, ms, base 36>     registration
//   c1.<login id>.<issued at, ms, base 36>     refresh

export type ChallengeKind = 'registration' | 'refresh'

export interface Challenge {
  loginId: string
  issuedAt: number
}

// The browser signs within milliseconds of getting a challenge; half a
// minute is room for a slow machine, and little for a replay.
export const CHALLENGE_LIFETIME_MS = 30_000
// A login offered binding (a cookie flagged `p`) whose browser has not
// registered within this many seconds has a browser without it: longer
// than a registration challenge lives, so none can come after.
export const OFFER_WINDOW = 60

export const EXPIRED = 'expired'

const TAG = { registration: 'r1', refresh: 'c1' } as const
const CHALLENGE = /^([rc]1)\.([A-Za-z0-9_-]{22})\.([0-9a-z]{1,11})$/

export class Challenges {
  #signer: Signer

  constructor (signer: Signer) {
    this.#signer = signer
  }

  issue (kind: ChallengeKind, loginId: string, now: number): string {
    return this.#signer.sign(`${TAG[kind]}.${loginId}.${now.toString(36)}`)
  }

  // The challenge, `EXPIRED`, or null for anything this app did not issue
  // as a challenge of that kind (or issued in the future: a wrong clock).
  read (kind: ChallengeKind, value: string, now: number): Challenge | typeof EXPIRED | null {
    const payload = verifySigned(this.#signer, value)
    const fields = payload === null ? null : CHALLENGE.exec(payload.value)
    if (fields === null || fields[1] !== TAG[kind]) return null
    const issuedAt = parseInt(fields[3], 36)
    if (issuedAt > now + CLOCK_SKEW * 1000) return null
    if (now - issuedAt >= CHALLENGE_LIFETIME_MS) return EXPIRED
    return { loginId: fields[2], issuedAt }
  }
}
