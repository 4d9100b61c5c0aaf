// Which cookies came once lately: a cache of verified cookies takes a cookie
// the second time it comes, never the first. A cookie seen once and never
// again (the first request of a login, or one of more live logins than the
// cache holds) would otherwise be kept for thousands of requests, long
// enough to leave the young generation, and every one of them would cost a
// full garbage collection to drop: measured, that cost a cold request more
// than its HMAC. What is kept here is a 32-bit fingerprint of each cookie in
// a fixed array, written over, so remembering costs no allocation at all.
// A collision only admits a cookie a request early; it is verified either way.
export class SeenOnce {
  #slots: Int32Array
  #mask: number

  // `size` slots, rounded up to a power of two.
  constructor (size: number) {
    const slots = 2 ** Math.ceil(Math.log2(Math.max(2, size)))
    this.#slots = new Int32Array(slots)
    this.#mask = slots - 1
  }

  // Whether `key` came before (and its slot was not taken since); marks it.
  again (key: string): boolean {
    const print = fingerprint(key)
    const slot = print & this.#mask
    if (this.#slots[slot] === print) return true
    this.#slots[slot] = print
    return false
  }
}

// The last characters of a signed cookie are its signature: HMAC output,
// as good as random. A few of them, mixed (FNV-1a), make the fingerprint.
function fingerprint (key: string): number {
  let hash = 0x811c9dc5
  for (let i = Math.max(0, key.length - FINGERPRINT_CHARACTERS); i < key.length; i++) {
    hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193)
  }
  return hash | 0
}

const FINGERPRINT_CHARACTERS = 8
