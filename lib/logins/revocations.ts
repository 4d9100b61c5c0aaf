import { performance } from 'node:perf_hooks'
import type { Revocation } from '../../types/index'

// The logins ended anywhere that have not expired yet, as this process heard
// of them from the store, and whether it may trust that it heard of them all.
// A cookie that verifies names its user and its lifetimes; what it cannot say
// is that its login was ended since. With this list, checking a login this
// process never saw is one lookup, not a store read (docs/design/login-validity.md).
//
// Trusted only with proof: the store reports, after each heartbeat answered on
// the connection that hears revocations, that every revocation completed
// before the heartbeat was sent has been delivered. A revocation made 100 ms
// ago or more must have been heard, so the list is trusted only while the
// last proof is younger than that. A stalled connection sends no proof, and
// every request then reads the store.
export const PROOF_WINDOW_MS = 100

export class Revocations {
  // Login id → when the login would have expired (seconds): after that its
  // cookie is refused by its own times, and the entry can go.
  #ended = new Map<string, number>()
  #listening = false
  // performance.now() when the newest proof was asked for; Infinity: a store
  // of this process, which reports every revocation before it returns.
  #provenAt = -Infinity
  // Logins issued before this (seconds) must be checked against their record:
  // the store lost revocations made before it (a Redis restarted empty).
  #trustedSince = 0
  #sweep: IterableIterator<[string, number]> | null = null

  get trustedSince (): number {
    return this.#trustedSince
  }

  add (revocation: Revocation): void {
    const known = this.#ended.get(revocation.loginId)
    if (known === undefined || known < revocation.expiresAt) this.#ended.set(revocation.loginId, revocation.expiresAt)
  }

  has (loginId: string): boolean {
    return this.#ended.has(loginId)
  }

  // Whether the list may answer for a login now.
  trusted (): boolean {
    return this.#listening && performance.now() - this.#provenAt < PROOF_WINDOW_MS
  }

  listening (listening: boolean): void {
    this.#listening = listening
    // A proof from before the connection dropped proves nothing about after.
    if (!listening && this.#provenAt !== Infinity) this.#provenAt = -Infinity
  }

  heard (at: number): void {
    if (at > this.#provenAt) this.#provenAt = at
  }

  trustSince (since: number): void {
    if (since > this.#trustedSince) this.#trustedSince = since
  }

  // Forgets up to `budget` expired entries, going on where the last call
  // stopped: a long list is swept a slice at a time, never in one pause.
  sweep (now: number, budget: number): void {
    for (let left = budget; left > 0; left--) {
      this.#sweep ??= this.#ended.entries()
      const next = this.#sweep.next()
      if (next.done === true) {
        this.#sweep = null
        return
      }
      if (next.value[1] <= now) this.#ended.delete(next.value[0])
    }
  }
}
