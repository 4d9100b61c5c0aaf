// Does the client prefer JSON to HTML? Browsers send `text/html` first, API
// clients `application/json`; `*/*` alone (curl) is a tie, and a tie keeps
// the browser behaviour. Follows RFC 9110: the most specific matching range
// gives a type its quality.

const JSON_TYPE = ['application', 'json']
const HTML_TYPE = ['text', 'html']

export function prefersJson (accept: string | undefined): boolean {
  if (typeof accept !== 'string' || accept.length === 0) return false
  const ranges = accept.split(',').map(parseRange)
  return quality(ranges, JSON_TYPE) > quality(ranges, HTML_TYPE)
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

function quality (ranges: Range[], [type, subtype]: string[]): number {
  let best = 0
  let bestSpecificity = 0
  for (const range of ranges) {
    let specificity = 0
    if (range.type === type && range.subtype === subtype) specificity = 3
    else if (range.type === type && range.subtype === '*') specificity = 2
    else if (range.type === '*' && range.subtype === '*') specificity = 1
    if (specificity > bestSpecificity || (specificity === bestSpecificity && specificity > 0 && range.q > best)) {
      best = range.q
      bestSpecificity = specificity
    }
  }
  return best
}
