import { constants, createPublicKey, verify, type KeyObject } from 'node:crypto'
import { TwoGenerations } from '../cache'
import { FST_LOGIN_BINDING_MALFORMED } from '../errors'
import { readItem } from './structured-fields'

// The browser's proof (`Secure-Session-Response`): a JSON web token it signs
// with its key, whose `jti` is the challenge it was given. At registration
// its header carries the public key (`jwk`); on refresh the plugin takes the
// key from the login's record. Only ES256 (P-256) and RS256 (RSA, 2048 to
// 4096 bits) are read: never `none`, never a key the header did not agree
// with. Everything is checked before any JSON is trusted or a key imported,
// and a token longer than any browser sends is refused unread.

export type Algorithm = 'ES256' | 'RS256'

export interface Proof {
  alg: Algorithm
  // The challenge the browser signed.
  challenge: string
  // Registration only: the public key, as the record keeps it (jwkJson).
  jwk: string | null
  signingInput: string
  signature: Buffer
}

// An RS256 registration token with a 4096-bit key is under 2,000 characters.
const MAX_TOKEN_LENGTH = 4096
const TOKEN = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
const BASE64URL = /^[A-Za-z0-9_-]*$/
const MAX_CHALLENGE_LENGTH = 256

export function readProof (header: unknown, registration: boolean): Proof {
  if (header === undefined) throw new FST_LOGIN_BINDING_MALFORMED('the `Secure-Session-Response` header is missing')
  const token = readItem(header, TOKEN, MAX_TOKEN_LENGTH)
  if (token === null) throw new FST_LOGIN_BINDING_MALFORMED(`\`Secure-Session-Response\` is not a JSON web token of at most ${MAX_TOKEN_LENGTH} characters`)
  const [head, body, signature] = token.split('.')
  const jose = json(head, 'header')
  const payload = json(body, 'payload')
  if (jose.typ !== 'dbsc+jwt') throw new FST_LOGIN_BINDING_MALFORMED('the token\'s `typ` is not "dbsc+jwt"')
  // A header extension the plugin does not know must not be ignored (RFC 7515 4.1.11).
  if (jose.crit !== undefined) throw new FST_LOGIN_BINDING_MALFORMED('the token has a `crit` header')
  const alg = jose.alg
  if (alg !== 'ES256' && alg !== 'RS256') throw new FST_LOGIN_BINDING_MALFORMED('the token\'s `alg` is not ES256 or RS256')
  const challenge = payload.jti
  if (typeof challenge !== 'string' || challenge.length === 0 || challenge.length > MAX_CHALLENGE_LENGTH) {
    throw new FST_LOGIN_BINDING_MALFORMED('the token has no challenge (`jti`)')
  }
  const bytes = base64url(signature, 'the signature')
  return { alg, challenge, jwk: registration ? jwkJson(jose.jwk, alg) : null, signingInput: `${head}.${body}`, signature: bytes }
}

export function verifyProof (proof: Proof, key: KeyObject): boolean {
  if (proof.alg !== algorithmOf(key)) return false
  const input = Buffer.from(proof.signingInput, 'latin1')
  if (proof.alg === 'ES256') {
    // JWS signatures are r || s, 32 bytes each (RFC 7518 3.4), not DER.
    return proof.signature.length === 64 && verify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, proof.signature)
  }
  return verify('sha256', input, { key, padding: constants.RSA_PKCS1_PADDING }, proof.signature)
}

export function algorithmOf (key: KeyObject): Algorithm {
  return key.asymmetricKeyType === 'ec' ? 'ES256' : 'RS256'
}

// Public keys by their JWK, imported once: importing one costs more than
// checking a signature with it.
export class DeviceKeys {
  #keys = new TwoGenerations<KeyObject>(1000)

  key (jwk: string): KeyObject {
    let key = this.#keys.get(jwk)
    if (key === undefined) {
      key = importKey(jwk)
      this.#keys.set(jwk, key)
    }
    return key
  }
}

function importKey (jwk: string): KeyObject {
  let key: KeyObject
  try {
    key = createPublicKey({ key: JSON.parse(jwk), format: 'jwk' })
  } catch {
    throw new FST_LOGIN_BINDING_MALFORMED('the key (`jwk`) is not a valid public key')
  }
  const bits = key.asymmetricKeyDetails?.modulusLength
  if (key.asymmetricKeyType === 'rsa' && (bits === undefined || bits < 2048 || bits > 4096)) {
    throw new FST_LOGIN_BINDING_MALFORMED('an RSA key (`jwk`) must have 2048 to 4096 bits')
  }
  return key
}

// The key as the record keeps it: only the members that make it (RFC 7638
// order), whatever else the browser sent. Checked here, imported (and so
// checked again) when the signature is.
function jwkJson (jwk: unknown, alg: Algorithm): string {
  if (jwk === null || typeof jwk !== 'object') throw new FST_LOGIN_BINDING_MALFORMED('the registration token has no key (`jwk`)')
  const { kty, crv, x, y, n, e } = jwk as Record<string, unknown>
  if (alg === 'ES256') {
    if (kty !== 'EC' || crv !== 'P-256' || !isCoordinate(x) || !isCoordinate(y)) {
      throw new FST_LOGIN_BINDING_MALFORMED('an ES256 key (`jwk`) must be an EC key on P-256')
    }
    return JSON.stringify({ crv, kty, x, y })
  }
  // 2048 to 4096 bits are 342 to 683 characters; exponents are short.
  if (kty !== 'RSA' || typeof n !== 'string' || n.length < 342 || n.length > 683 || !BASE64URL.test(n) ||
    typeof e !== 'string' || e.length === 0 || e.length > 8 || !BASE64URL.test(e)) {
    throw new FST_LOGIN_BINDING_MALFORMED('an RS256 key (`jwk`) must be an RSA key of 2048 to 4096 bits')
  }
  return JSON.stringify({ e, kty, n })
}

function isCoordinate (value: unknown): value is string {
  return typeof value === 'string' && value.length === 43 && BASE64URL.test(value)
}

function json (part: string, what: string): Record<string, unknown> {
  const text = base64url(part, `the token's ${what}`).toString('utf8')
  let value: unknown = null
  try {
    value = JSON.parse(text)
  } catch {}
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new FST_LOGIN_BINDING_MALFORMED(`the token's ${what} is not a JSON object`)
  }
  return value as Record<string, unknown>
}

// A length no encoder makes is refused; the alphabet was checked with the token.
function base64url (part: string, what: string): Buffer {
  if (part.length % 4 === 1) throw new FST_LOGIN_BINDING_MALFORMED(`${what} is not base64url`)
  return Buffer.from(part, 'base64url')
}
