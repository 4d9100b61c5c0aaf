import { TwoGenerations } from '../cache'
import { HmacKey } from '../cookies/hmac'
import { sameTag } from '../cookies/signing'

// Session protection: which client (user agent and address) made a login.
// The tag is keyed because the cookie is readable, and a plain hash of an
// IPv4 address is reversed by trying them all.
export class ClientCheck {
  #keys: readonly HmacKey[]
  #hmac: (key: HmacKey, message: string) => string
  // The current key's tag of each client seen lately: one HMAC per client,
  // whether it logs in (loginUser tags it) or presents a tag to check, and
  // however many tags, forged or not, it presents. What is kept is a
  // function of the client alone, computed here: nothing a request sends is
  // trusted by being in it. Clients of ordinary size only, so huge user
  // agents do not fill it.
  #tags = new TwoGenerations<string>(5000)

  // `hmac` is a seam for tests that count the HMACs the cache saves.
  constructor (keys: readonly Buffer[], hmac = tagOf) {
    this.#keys = keys.map((key) => new HmacKey(key))
    this.#hmac = hmac
  }

  tag (userAgent: string | undefined, ip: string): string {
    const message = clientMessage(userAgent, ip)
    const known = this.#tags.get(message)
    if (known !== undefined) return known
    const tag = this.#hmac(this.#keys[0], message)
    if (message.length <= 512) this.#tags.set(message, tag)
    return tag
  }

  // null: another client. renew: tagged with a key being rotated out.
  check (tag: string, userAgent: string | undefined, ip: string): { renew: boolean } | null {
    if (tag.length === 0) return null
    if (sameTag(this.tag(userAgent, ip), tag)) return CURRENT
    // Only while a secret is rotated out: tags of the older keys.
    const message = clientMessage(userAgent, ip)
    for (let i = 1; i < this.#keys.length; i++) {
      if (sameTag(this.#hmac(this.#keys[i], message), tag)) return RENEW
    }
    return null
  }
}

const CURRENT = Object.freeze({ renew: false })
const RENEW = Object.freeze({ renew: true })

function tagOf (key: HmacKey, message: string): string {
  return key.tag(message)
}

function clientMessage (userAgent: string | undefined, ip: string): string {
  return `${userAgent ?? ''}\n${ip}`
}
