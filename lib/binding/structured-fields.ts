// The little of Structured Field Values (RFC 9651) that device binding reads
// and writes: single strings. The specification makes `Secure-Session-Response`
// and `Sec-Secure-Session-Id` sf-strings (quoted); Chrome 156 sends them bare.
// Both forms are read. What the plugin writes is always quoted: Chrome
// ignores a bare challenge, and then ends the session.

// `value` as an sf-string or a bare item, if what is inside matches
// `alphabet` (which must exclude `"` and `\`: no escapes are read) and is at
// most `max` characters long; null otherwise.
export function readItem (value: unknown, alphabet: RegExp, max: number): string | null {
  if (typeof value !== 'string' || value.length > max + 2) return null
  const trimmed = value.trim()
  const inner = trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"') ? trimmed.slice(1, -1) : trimmed
  return inner.length > 0 && inner.length <= max && alphabet.test(inner) ? inner : null
}

export function sfString (value: string): string {
  return `"${value.replace(/[\\"]/g, '\\$&')}"`
}
