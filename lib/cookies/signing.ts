import { hkdfSync, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
// For the types of the app's @fastify/cookie decorators, borrowed below.
import type {} from '@fastify/cookie'
import type { Secret } from '../../types/index'
import { DEFAULT_REALM } from './realm'
import { HmacKey } from './hmac'

// The keys of the plugin: one signs the login cookies, another tags the
// client a login was made from. Both are derived from the app's secret, so
// that nothing the app signs elsewhere with it can pass for either. The
// signing key is also derived from the realm (the login area: the cookie
// names, or the `realm` option), so that a cookie of one registration never
// verifies in another one that shares the secret (ASVS 9.2.3): a customer
// renaming their cookies is not the administrator with the same id.

export interface Signer {
  sign (value: string): string
  unsign (value: string): { valid: boolean, renew: boolean, value: string | null }
}

export interface Keys {
  signer: Signer
  // The first tags new logins; all of them are tried when checking (rotation).
  clientKeys: readonly Buffer[]
  // One per secret: under which names a store may know this realm (realm.ts).
  realmTags: readonly string[]
}

// Apps often share one secret with @fastify/cookie; a value the app signs
// there (perhaps one a visitor chose) must never pass for a login cookie.
export function signingKey (secret: Secret, realm: string = DEFAULT_REALM): Buffer {
  // The default realm keeps the key cookies were signed with before realms.
  return derive(secret, realm === DEFAULT_REALM ? SIGNING : `${SIGNING} realm ${realm}`)
}

const SIGNING = 'fastify-login cookie signing v1'

export function clientKey (secret: Secret): Buffer {
  return derive(secret, 'fastify-login client tag v1')
}

export function ownKeys (secrets: readonly Secret[], realm: string): Keys {
  return {
    signer: new HmacSigner(secrets.map((secret) => signingKey(secret, realm))),
    clientKeys: secrets.map(clientKey),
    realmTags: secrets.map((secret) => derive(secret, `${REALM_TAG}${realm}`).toString('base64url'))
  }
}

const REALM_TAG = 'fastify-login realm tag v1 '

// The signatures of @fastify/cookie's Signer (`<value>.<HMAC-SHA256,
// base64 without padding>`), so cookies signed by either verify with the
// other, written for the one use here: the first key signs, all are tried.
// Its Signer strips the padding with a regex and copies both signatures
// into Buffers for every key, and createHmac costs more than the hashing;
// the login path paid for both on every new cookie. The comparison stays
// constant-time.
export class HmacSigner implements Signer {
  #keys: readonly HmacKey[]
  // The presented and the expected signature, as bytes for timingSafeEqual:
  // written over on each check instead of two Buffers per cookie.
  #actual = Buffer.alloc(SIGNATURE_LENGTH)
  #expected = Buffer.alloc(SIGNATURE_LENGTH)

  constructor (keys: readonly Buffer[]) {
    this.#keys = keys.map((key) => new HmacKey(key))
  }

  sign (value: string): string {
    return `${value}.${mac(this.#keys[0], value)}`
  }

  unsign (signed: string): { valid: boolean, renew: boolean, value: string | null } {
    const dot = signed.lastIndexOf('.')
    // A signature is always 43 characters: anything else cannot match.
    if (dot === -1 || signed.length - dot - 1 !== SIGNATURE_LENGTH) return INVALID
    // Only ASCII is written as it is: in latin1, U+0141 would be the byte of 'A'.
    for (let i = dot + 1; i < signed.length; i++) if (signed.charCodeAt(i) > 0x7f) return INVALID
    this.#actual.write(signed.slice(dot + 1), 'latin1')
    const value = signed.slice(0, dot)
    for (let i = 0; i < this.#keys.length; i++) {
      // The digest's base64 ends in padding, which the Buffer has no room for.
      this.#expected.write(this.#keys[i].base64(value), 'latin1')
      if (timingSafeEqual(this.#expected, this.#actual)) return { valid: true, renew: i > 0, value }
    }
    // Not left lying around: the valid signature of a value a visitor chose.
    this.#expected.fill(0)
    return INVALID
  }
}

// 32 bytes in base64 are 44 characters, the last one padding.
const SIGNATURE_LENGTH = 43
const INVALID = Object.freeze({ valid: false, renew: false, value: null })

function mac (key: HmacKey, value: string): string {
  return key.base64(value).slice(0, SIGNATURE_LENGTH)
}

// Without a secret of its own the plugin signs with the app's @fastify/cookie.
// The client key must not be that signer: its tags would be app-valid
// signatures of a message the visitor chooses (the user agent). It is
// derived from the signature of a constant instead, so every instance of
// the app agrees on it.
//
// Its signer cannot take a key per realm: another realm's values are signed
// with the realm's name in front of them (the cookie does not carry it), so
// that its signatures are of other messages.
export function borrowedKeys (fastify: FastifyInstance, realm: string): Keys {
  const signed = fastify.signCookie('fastify-login client tag key v1')
  const prefix = realm === DEFAULT_REALM ? '' : `${realm}\n`
  return {
    signer: prefix === ''
      ? { sign: (value) => fastify.signCookie(value), unsign: (value) => fastify.unsignCookie(value) }
      : {
          sign: (value) => fastify.signCookie(prefix + value).slice(prefix.length),
          unsign: (value) => {
            const result = fastify.unsignCookie(prefix + value)
            return result.valid && result.value !== null ? { ...result, value: result.value.slice(prefix.length) } : { valid: false, renew: false, value: null }
          }
        },
    clientKeys: [derive(signed, 'fastify-login client tag v1')],
    realmTags: [derive(fastify.signCookie(`${REALM_TAG}${realm}`), 'fastify-login realm tag v1').toString('base64url')]
  }
}

function derive (secret: Secret, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, '', info, 32))
}

export function sameTag (a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))
}
