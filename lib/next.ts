// Decides whether a `next` value may be redirected to: only a path on this
// site. Everything else (other hosts, schemes, scheme-relative `//host`,
// backslashes that browsers read as slashes, control characters that browsers
// strip, and the URL-encoded forms of all of these) is refused. Stops open
// redirects, the classic phishing aid of login pages.

const MAX_NEXT_LENGTH = 2048
const MAX_DECODE_ROUNDS = 5
const BASE = 'http://next.invalid'

// The raw value: no whitespace, control or backslash characters at all.
const UNSAFE_RAW = /[\u0000-\u0020\u007f-\u00a0\\\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff]/
// Decoded layers may hold spaces (a path may), but nothing a browser strips or
// reads as a slash.
const UNSAFE_DECODED = /[\u0000-\u001f\u007f\\]/

export function safeNextPath (value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NEXT_LENGTH) return null
  if (UNSAFE_RAW.test(value) || !isLocalPath(value)) return null

  // Someone may decode it again later (a proxy, the app): every decoding of it
  // must be as harmless as the value itself.
  let layer = value
  for (let round = 0; ; round++) {
    // Still changing after this many rounds: too clever to be a real path.
    if (round === MAX_DECODE_ROUNDS) return null
    let decoded: string
    try {
      decoded = decodeURIComponent(layer)
    } catch {
      return null
    }
    if (decoded === layer) break
    if (UNSAFE_DECODED.test(decoded) || !isLocalPath(decoded)) return null
    layer = decoded
  }

  // Last word to the WHATWG URL parser, which is what browsers use.
  return new URL(value, BASE).origin === BASE ? value : null
}

function isLocalPath (value: string): boolean {
  return value.startsWith('/') && !value.startsWith('//')
}
