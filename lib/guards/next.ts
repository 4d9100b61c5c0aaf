// Decides whether a `next` value may be redirected to: only a path on this
// site. Everything else (other hosts, schemes, scheme-relative `//host`,
// backslashes that browsers read as slashes, control characters that browsers
// strip, dot segments that resolve to `//host`, and the URL-encoded forms of
// all of these) is refused. Stops open redirects, the classic phishing aid of
// login pages.

// Control characters are exactly what these patterns look for.
/* eslint-disable no-control-regex */
const MAX_NEXT_LENGTH = 2048
const MAX_DECODE_ROUNDS = 5
const BASE = 'http://next.invalid'

// The raw value: no whitespace, control or backslash characters at all.
const UNSAFE_RAW = /[\u0000-\u0020\u007f-\u00a0\\\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff]/
// Decoded layers may hold spaces (a path may), but nothing a browser strips or
// reads as a slash.
const UNSAFE_DECODED = /[\u0000-\u001f\u007f\\]/
// Only ASCII escapes can hide a slash, a backslash or a control character.
const ASCII_ESCAPE = /%([0-7][0-9A-Fa-f])/g
const NON_ASCII = /[^\u0000-\u007f]+/g
// Every % of the raw value starts a valid escape: anything else is for a decoder to guess at.
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/

export function safeNextPath (value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NEXT_LENGTH) return null
  if (UNSAFE_RAW.test(value) || BAD_ESCAPE.test(value) || !value.isWellFormed() || !isLocalPath(value)) return null

  // Someone may decode it again later (a proxy, the app): every decoding of it
  // must be as harmless as the value itself. Decoding only ASCII escapes never
  // fails, so a lone `%` (as in `?q=100%25`) does not make a good path bad.
  let layer = value
  for (let round = 0; ; round++) {
    const decoded = layer.replace(ASCII_ESCAPE, (_escape, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    if (decoded === layer) break
    // Still changing after this many rounds: too clever to be a real path.
    if (round === MAX_DECODE_ROUNDS - 1) return null
    if (UNSAFE_DECODED.test(decoded) || !isLocalPath(decoded)) return null
    layer = decoded
  }
  // A Location header is ASCII: send other characters percent-encoded.
  return value.replace(NON_ASCII, encodeURI)
}

// Starts with one slash, and still does once the browser has resolved its
// dot segments (`/.//evil.com` is requested as `//evil.com`).
function isLocalPath (value: string): boolean {
  return value.startsWith('/') && !value.startsWith('//') && !new URL(value, BASE).pathname.startsWith('//')
}
