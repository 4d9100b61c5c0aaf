// Reads the login cookies out of a request's Cookie header, and nothing else:
// one indexOf per cookie name in the common case, where parsing the whole
// header into a jar costs an object and a string for every cookie the app
// has. It reads as @fastify/cookie's parser (cookie 2) does: pairs split at
// `;`, names and values trimmed of spaces and tabs, values percent-decoded
// when they can be, and a pair that only contains a name= inside its value
// is not that cookie.

// The value each login cookie was first sent with, and whether either came
// more than once. A duplicate is how a cookie planted by a sibling
// subdomain (with a longer Path, so sent first) would override the real login.
export interface SentCookies {
  readonly account: string | undefined
  readonly isFresh: string | undefined
  readonly duplicated: boolean
}

const NO_COOKIES: SentCookies = Object.freeze({ account: undefined, isFresh: undefined, duplicated: false })

export function readLoginCookies (header: string | undefined, account: string, isFresh: string): SentCookies {
  if (typeof header !== 'string' || header.length === 0) return NO_COOKIES
  const accountAt = pairAt(header, account, 0)
  const freshAt = pairAt(header, isFresh, 0)
  return {
    account: accountAt === -1 ? undefined : valueAt(header, accountAt),
    isFresh: freshAt === -1 ? undefined : valueAt(header, freshAt),
    duplicated: (accountAt !== -1 && pairAt(header, account, accountAt) !== -1) || (freshAt !== -1 && pairAt(header, isFresh, freshAt) !== -1)
  }
}

// Whether the header sends a cookie of that name more than once.
export function sentTwice (header: string, name: string): boolean {
  const first = pairAt(header, name, 0)
  return first !== -1 && pairAt(header, name, first) !== -1
}

// The distinct values the header sends under `name`, in quotes or not, the
// first `limit` of them: a logout must end every login a tossed cookie stood
// beside, whichever way it is spelled.
export function cookieValues (header: string, name: string, limit = Infinity): string[] {
  const values = new Set<string>()
  for (let at = pairAt(header, name, 0); at !== -1 && values.size < limit; at = pairAt(header, name, at)) {
    // The quotes come off as sent, before decoding: `%22` is part of a value.
    const value = rawValueAt(header, at)
    values.add(decode(value.length > 1 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value))
  }
  return [...values]
}

// Where the `=` of the next pair named `name` is, searching after `from`;
// -1 if there is none. A match inside a value is never a pair: going back
// over blanks from it reaches a character of the value, not a `;`.
function pairAt (header: string, name: string, from: number): number {
  for (let at = header.indexOf(name, from); at !== -1; at = header.indexOf(name, at + 1)) {
    // Parsers trim the name: `account =x` is a cookie named account too.
    let equals = at + name.length
    while (isBlank(header.charCodeAt(equals))) equals++
    if (header.charCodeAt(equals) === EQUALS && startsPair(header, at)) return equals
  }
  return -1
}

function valueAt (header: string, equals: number): string {
  return decode(rawValueAt(header, equals))
}

function rawValueAt (header: string, equals: number): string {
  let end = header.indexOf(';', equals + 1)
  if (end === -1) end = header.length
  return trimmed(header, equals + 1, end)
}

function startsPair (header: string, at: number): boolean {
  let i = at - 1
  while (i >= 0 && isBlank(header.charCodeAt(i))) i--
  return i < 0 || header.charCodeAt(i) === SEMICOLON
}

function trimmed (header: string, start: number, end: number): string {
  while (start < end && isBlank(header.charCodeAt(start))) start++
  while (end > start && isBlank(header.charCodeAt(end - 1))) end--
  return header.slice(start, end)
}

// As the parser does: a value that is not valid percent-encoding stays as it came.
function decode (value: string): string {
  if (!value.includes('%')) return value
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}

function isBlank (code: number): boolean {
  return code === 32 || code === 9
}

const EQUALS = 61
const SEMICOLON = 59
