import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'

// A passkey authenticator in software, for tests through `inject`: it makes
// the JSON a browser's navigator.credentials would hand to the page (as
// example/public/passkeys.js posts it), with real P-256 keys and ECDSA
// signatures from node:crypto, in the formats of the WebAuthn specification
// (authenticator data, CBOR attestation object "none", COSE public key).
// Each option lets a test make one thing wrong: the origin, the challenge,
// the ceremony type, the user verification, the counter.

export interface RegistrationOptionsJSON { challenge: string, rp: { id: string }, user: { id: string, name: string } }
export interface AuthenticationOptionsJSON { challenge: string, rpId: string, allowCredentials?: Array<{ id: string }> }

export interface Passkey {
  readonly id: string
  readonly rpId: string
  readonly userHandle: string
  readonly privateKey: KeyObject
  counter: number
}

export interface Tampering {
  origin?: string
  challenge?: string
  type?: string
  userVerified?: boolean
  userHandle?: string | null
  counter?: number
  /** A "packed" self-attestation whose signature does not verify. */
  badAttestation?: boolean
}

const UP = 0x01
const UV = 0x04
const AT = 0x40

const b64url = (bytes: Buffer): string => bytes.toString('base64url')
const sha256 = (data: Buffer | string): Buffer => createHash('sha256').update(data).digest()

// CBOR (RFC 8949), as much as WebAuthn needs: integers, byte and text strings, maps.
type Cbor = number | string | Buffer | Map<Cbor, Cbor>

function head (major: number, length: number): Buffer {
  if (length < 24) return Buffer.from([(major << 5) | length])
  if (length < 256) return Buffer.from([(major << 5) | 24, length])
  const bytes = Buffer.alloc(3)
  bytes[0] = (major << 5) | 25
  bytes.writeUInt16BE(length, 1)
  return bytes
}

export function cbor (value: Cbor): Buffer {
  if (typeof value === 'number') return value >= 0 ? head(0, value) : head(1, -1 - value)
  if (typeof value === 'string') return Buffer.concat([head(3, Buffer.byteLength(value)), Buffer.from(value)])
  if (Buffer.isBuffer(value)) return Buffer.concat([head(2, value.length), value])
  return Buffer.concat([head(5, value.size), ...[...value].flatMap(([key, item]) => [cbor(key), cbor(item)])])
}

function counterBytes (counter: number): Buffer {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32BE(counter)
  return bytes
}

export class SoftwareAuthenticator {
  readonly passkeys: Passkey[] = []

  constructor (readonly origin: string) {}

  // navigator.credentials.create(): a new passkey for the options' user.
  register (options: RegistrationOptionsJSON, tampering: Tampering = {}): { json: string, passkey: Passkey } {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const jwk = publicKey.export({ format: 'jwk' })
    const coseKey = cbor(new Map<Cbor, Cbor>([[1, 2], [3, -7], [-1, 1], [-2, Buffer.from(jwk.x as string, 'base64url')], [-3, Buffer.from(jwk.y as string, 'base64url')]]))
    const id = randomBytes(16)
    const flags = UP | AT | (tampering.userVerified === false ? 0 : UV)
    const credentialData = Buffer.concat([Buffer.alloc(16), Buffer.from([0, id.length]), id, coseKey])
    const authData = Buffer.concat([sha256(options.rp.id), Buffer.from([flags]), counterBytes(0), credentialData])
    const attestation = tampering.badAttestation === true
      ? ['packed', new Map<Cbor, Cbor>([['alg', -7], ['sig', sign('sha256', Buffer.from('something else'), privateKey)]])] as const
      : ['none', new Map<Cbor, Cbor>()] as const
    const attestationObject = cbor(new Map<Cbor, Cbor>([['fmt', attestation[0]], ['attStmt', attestation[1]], ['authData', authData]]))
    const clientData = this.#clientData('webauthn.create', options.challenge, tampering)
    const passkey: Passkey = { id: b64url(id), rpId: options.rp.id, userHandle: options.user.id, privateKey, counter: 0 }
    this.passkeys.push(passkey)
    return {
      passkey,
      json: JSON.stringify({
        id: passkey.id,
        rawId: passkey.id,
        type: 'public-key',
        clientExtensionResults: {},
        response: { clientDataJSON: b64url(clientData), attestationObject: b64url(attestationObject), transports: ['internal'] }
      })
    }
  }

  // navigator.credentials.get(): signs the challenge with a passkey of the
  // relying party (the last one made, unless told which).
  answer (options: AuthenticationOptionsJSON, passkey = this.passkeys.at(-1) as Passkey, tampering: Tampering = {}): string {
    passkey.counter = tampering.counter ?? passkey.counter + 1
    const flags = UP | (tampering.userVerified === false ? 0 : UV)
    const authData = Buffer.concat([sha256(options.rpId), Buffer.from([flags]), counterBytes(passkey.counter)])
    const clientData = this.#clientData('webauthn.get', options.challenge, tampering)
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientData)]), passkey.privateKey)
    const userHandle = tampering.userHandle === undefined ? passkey.userHandle : tampering.userHandle
    return JSON.stringify({
      id: passkey.id,
      rawId: passkey.id,
      type: 'public-key',
      clientExtensionResults: {},
      response: {
        clientDataJSON: b64url(clientData),
        authenticatorData: b64url(authData),
        signature: b64url(signature),
        ...(userHandle === null ? {} : { userHandle })
      }
    })
  }

  #clientData (type: string, challenge: string, tampering: Tampering): Buffer {
    return Buffer.from(JSON.stringify({
      type: tampering.type ?? type,
      challenge: tampering.challenge ?? challenge,
      origin: tampering.origin ?? this.origin,
      crossOrigin: false
    }))
  }
}
