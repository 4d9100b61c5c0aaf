import { createHmac, hash } from 'node:crypto'

// HMAC-SHA256 (RFC 2104) under one key, from two one-shot hashes:
// H((K ^ opad) || H((K ^ ipad) || message)). createHmac builds a native
// object for every message, and on a login cookie that cost more than the
// hashing itself; crypto.hash does not. The output is byte for byte that of
// createHmac, which the tests check. Each key owns its two buffers: the
// padded key sits in front, the message (or the inner digest) is written
// behind it, and nothing is shared between keys or instances.
export class HmacKey {
  #key: Buffer
  #inner: Buffer
  #outer: Buffer

  constructor (key: Buffer) {
    // Keys longer than a block would first be hashed; the plugin's keys are
    // 32 bytes (HKDF), and this class is for those only.
    if (key.length > BLOCK) throw new RangeError(`an HMAC key of at most ${BLOCK} bytes`)
    this.#key = key
    this.#inner = Buffer.alloc(BLOCK + MAX_MESSAGE_BYTES, IPAD)
    this.#outer = Buffer.alloc(BLOCK + DIGEST, OPAD)
    for (let i = 0; i < key.length; i++) {
      this.#inner[i] ^= key[i]
      this.#outer[i] ^= key[i]
    }
  }

  // The MAC of the message's UTF-8 bytes (as createHmac().update(message)
  // takes them), in base64 with its padding: a cookie signature.
  base64 (message: string): string {
    return this.#mac(message, 'base64')
  }

  // Its first 16 bytes in base64url: a client tag.
  tag (message: string): string {
    return this.#mac(message, 'buffer').toString('base64url', 0, TAG_BYTES)
  }

  #mac (message: string, encoding: 'base64'): string
  #mac (message: string, encoding: 'buffer'): Buffer
  #mac (message: string, encoding: 'base64' | 'buffer'): string | Buffer {
    // Up to 3 bytes a UTF-16 unit: a message that might not fit goes the slow
    // way (a huge id being signed, which the cookie's size check refuses, or
    // a huge user agent being tagged).
    if (message.length > MAX_MESSAGE_BYTES / 3) {
      const hmac = createHmac('sha256', this.#key).update(message)
      return encoding === 'buffer' ? hmac.digest() : hmac.digest(encoding)
    }
    const length = this.#inner.write(message, BLOCK)
    // The inner digest as a one-byte string ('binary' is latin1, the name
    // crypto's types know): a Buffer of its own costs more than the hash.
    this.#outer.write(hash('sha256', this.#inner.subarray(0, BLOCK + length), 'binary'), BLOCK, 'latin1')
    return hash('sha256', this.#outer, encoding)
  }
}

const BLOCK = 64
const DIGEST = 32
// 128 bits: a tag is matched, never verified offline.
const TAG_BYTES = 16
const IPAD = 0x36
const OPAD = 0x5c
// Cookies are at most 4096 characters: their UTF-8, with room to spare.
const MAX_MESSAGE_BYTES = 3 * 4096
