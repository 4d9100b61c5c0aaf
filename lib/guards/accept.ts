// Does the client prefer JSON to HTML? Browsers send `text/html` first, API
// clients `application/json`; `*/*` alone (curl) is a tie, and a tie keeps
// the browser behaviour. Follows RFC 9110: the most specific matching range
// gives a type its quality.

const JSON_TYPE = ['application', 'json']
const HTML_TYPE = ['text', 'html']

// Real clients send a handful of ranges; a refusal must stay cheap however
// long the header an attacker sends.
const MAX_RANGES = 32
const MAX_LENGTH = 2048

export function prefersJson (accept: string | undefined): boolean {
  if (typeof accept !== 'string' || accept.length === 0) return false
  const ranges = accept.slice(0, MAX_LENGTH).split(',', MAX_RANGES).map(parseRange)
  const json = preference(ranges, JSON_TYPE)
  const html = preference(ranges, HTML_TYPE)
  // Higher quality wins; at equal quality, the type named outright beats one
  // reached through a wildcard (axios: `application/json, text/plain, */*`).
  return json.q > html.q || (json.q === html.q && json.q > 0 && json.specificity > html.specificity)
}

interface Range {
  type: string
  subtype: string
  q: number
}

function parseRange (text: string): Range {
  const [mediaRange, ...parameters] = text.split(';')
  const [type = '', subtype = ''] = mediaRange.trim().toLowerCase().split('/')
  let q = 1
  for (const parameter of parameters) {
    const [name, value] = parameter.split('=')
    if (name.trim().toLowerCase() === 'q') {
      const parsed = Number(value)
      q = Number.isNaN(parsed) ? 0 : Math.min(Math.max(parsed, 0), 1)
    }
  }
  return { type, subtype, q }
}

// The quality of a type, from the most specific range that matches it.
function preference (ranges: Range[], [type, subtype]: string[]): { q: number, specificity: number } {
  let best = { q: 0, specificity: 0 }
  for (const range of ranges) {
    let specificity = 0
    if (range.type === type && range.subtype === subtype) specificity = 3
    else if (range.type === type && range.subtype === '*') specificity = 2
    else if (range.type === '*' && range.subtype === '*') specificity = 1
    if (specificity > best.specificity || (specificity === best.specificity && specificity > 0 && range.q > best.q)) {
      best = { q: range.q, specificity }
    }
  }
  return best
}
