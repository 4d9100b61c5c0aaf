import { TwoGenerations } from './cache'
import { hmacTag, sameTag } from './signing'

// Session protection: which client (user agent and address) made a login.
// The tag is keyed because the cookie is readable, and a plain hash of an
// IPv4 address is reversed by trying them all.
export class ClientCheck {
  #keys: readonly Buffer[]
  #hmac: typeof hmacTag
  // Checks that passed, by tag and client: one HMAC per login and client,
  // not one per request. Only matches are kept, and only for clients of
  // ordinary size, so neither forged tags nor huge user agents fill it.
  #passed = new TwoGenerations<{ renew: boolean }>(5000)

  // `hmac` is a seam for tests that count the HMACs the cache saves.
  constructor (keys: readonly Buffer[], hmac = hmacTag) {
    this.#keys = keys
    this.#hmac = hmac
  }

  tag (userAgent: string | undefined, ip: string): string {
    return this.#hmac(this.#keys[0], clientMessage(userAgent, ip))
  }

  // null: another client. renew: tagged with a key being rotated out.
  check (tag: string, userAgent: string | undefined, ip: string): { renew: boolean } | null {
    if (tag.length === 0) return null
    const message = clientMessage(userAgent, ip)
    // A tag is base64url: the newline cannot be part of it.
    const key = `${tag}\n${message}`
    const known = this.#passed.get(key)
    if (known !== undefined) return known
    const index = this.#keys.findIndex((clientKey) => sameTag(this.#hmac(clientKey, message), tag))
    if (index === -1) return null
    const passed = { renew: index > 0 }
    if (message.length <= 512) this.#passed.set(key, passed)
    return passed
  }
}

function clientMessage (userAgent: string | undefined, ip: string): string {
  return `${userAgent ?? ''}\n${ip}`
}
