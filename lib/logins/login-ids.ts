import { randomFillSync } from 'node:crypto'

// Random login ids (128 bits each, ASVS 7.2.3), drawn from a pool refilled 256 ids at a
// time: a call into the CSPRNG per login was the largest single cost of
// loginUser. Node's own randomUUID caches its entropy the same way. Each
// byte is used once; the pool belongs to one login manager.
export class LoginIds {
  #pool = Buffer.alloc(BYTES * 256)
  #next = this.#pool.length

  next (): string {
    if (this.#next === this.#pool.length) {
      randomFillSync(this.#pool)
      this.#next = 0
    }
    const id = this.#pool.toString('base64url', this.#next, this.#next + BYTES)
    this.#next += BYTES
    return id
  }
}

const BYTES = 16
