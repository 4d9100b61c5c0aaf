import type { FastifyLoginOptions, LoginConfig, Message, Secret } from '../../types/index'
import { FST_LOGIN_INVALID_OPTION, FST_LOGIN_NO_STORE, FST_LOGIN_STORE_CANNOT, FST_LOGIN_WEAK_SECRET } from '../errors'
import { defaultRealm } from '../cookies/realm'
import { MAX_LIFETIME } from '../cookies/token'
import { refuseUnknown } from './names'

// The checks of the option table (table.ts): each takes the option's name
// and the value given, and returns the value the config keeps, or throws
// FST_LOGIN_INVALID_OPTION naming the option and the fix.

// Browsers cap cookie lifetimes at 400 days; longer would only be a surprise.
const MAX_DURATION = MAX_LIFETIME
const HOUR = 60 * 60
// A redirect target goes into a Location header: printable ASCII only.
const HEADER_SAFE = /^[\x21-\x7e]+$/
const MIN_SECRET_LENGTH = 32
// RFC 6265 cookie-name token: anything else could split or inject attributes.
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

// Returns the secrets in signing order, or null when the plugin must borrow
// the signer of an already registered @fastify/cookie.
export function checkSecret (secret: FastifyLoginOptions['secret']): Secret[] | null {
  if (secret === undefined || secret === null) return null
  const secrets: Secret[] = Array.isArray(secret) ? [...secret] : [secret as Secret]
  if (secrets.length === 0) {
    throw new FST_LOGIN_WEAK_SECRET('is an empty array')
  }
  for (const one of secrets) {
    if (typeof one === 'string') {
      if (one.length < MIN_SECRET_LENGTH) {
        throw new FST_LOGIN_WEAK_SECRET(`is ${one.length} characters long, shorter than ${MIN_SECRET_LENGTH}`)
      }
    } else if (Buffer.isBuffer(one)) {
      if (one.length < MIN_SECRET_LENGTH) {
        throw new FST_LOGIN_WEAK_SECRET(`is a Buffer of ${one.length} bytes, shorter than ${MIN_SECRET_LENGTH}`)
      }
    } else {
      throw new FST_LOGIN_WEAK_SECRET('must be a string, a Buffer, or an array of them')
    }
  }
  return secrets
}

export function checkDuration (name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be a positive, finite number of seconds')
  }
  if (value > MAX_DURATION) {
    throw new FST_LOGIN_INVALID_OPTION(name, `must be at most 400 days (${MAX_DURATION} seconds), the longest browsers keep a cookie`)
  }
}

export function duration (name: string, value: unknown): number {
  checkDuration(name, value)
  return value
}

// For options whose null turns them off.
export function optionalDuration (name: string, value: unknown): number | null {
  return value === null ? null : duration(name, value)
}

export function cacheWindow (name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > HOUR) {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be a number of seconds from 0 (no cache) to 3600')
  }
  return value
}

export function cookieName (name: string, value: unknown): string {
  if (typeof value !== 'string' || !COOKIE_NAME.test(value)) {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be a non-empty cookie name made of letters, digits and !#$%&\'*+-.^_`|~')
  }
  return value
}

export function cookiePath (name: string, value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('/') || /[;\s]/.test(value)) {
    throw new FST_LOGIN_INVALID_OPTION(name, "must be a path starting with '/' without ';' or spaces")
  }
  return value
}

export function cookieDomain (name: string, value: unknown): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9.-]+$/.test(value)) {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be a host name such as example.com')
  }
  return value
}

// One of a few values; `said` lists them as the message shows them.
export function oneOf<T> (allowed: readonly T[], said: string): (name: string, value: unknown) => T {
  return (name, value) => {
    if (!allowed.includes(value as T)) throw new FST_LOGIN_INVALID_OPTION(name, `must be ${said}`)
    return value as T
  }
}

export function checkBoolean (name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be true or false')
  }
  return value
}

export function factory<T> (name: string, value: unknown): T {
  if (typeof value !== 'function') {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be a class or a function that returns the anonymous user')
  }
  return value as T
}

export function queryField (name: string, value: unknown): string | false {
  if (value !== false && (typeof value !== 'string' || value.length === 0)) {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be a query field name, or false to leave it off')
  }
  return value
}

export function methods (name: string, value: unknown): readonly string[] {
  if (!Array.isArray(value) || !value.every((method) => typeof method === 'string' && method.length > 0)) {
    throw new FST_LOGIN_INVALID_OPTION(name, "must be an array of HTTP methods such as ['OPTIONS']")
  }
  return value.map((method: string) => method.toUpperCase())
}

// Origins as browsers send them: scheme, host and port, nothing else.
export function origins (name: string, value: unknown): readonly string[] {
  if (!Array.isArray(value)) {
    throw new FST_LOGIN_INVALID_OPTION(name, "must be an array of origins such as ['https://app.example.com']")
  }
  return value.map((origin: unknown) => {
    let url: URL | null = null
    try {
      url = typeof origin === 'string' ? new URL(origin) : null
    } catch {}
    if (url === null || url.origin === 'null' || url.origin !== (origin as string).replace(/\/$/, '').toLowerCase()) {
      throw new FST_LOGIN_INVALID_OPTION(name, `has ${JSON.stringify(origin)}, which is not an origin: give scheme, host and optional port only, such as 'https://app.example.com'`)
    }
    return url.origin
  })
}

export function checkRoute (name: string, value: unknown): string | null {
  if (value === undefined || value === null) return null
  if (typeof value !== 'string' || !HEADER_SAFE.test(value)) {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be a URL (string of printable ASCII, percent-encode the rest) or null')
  }
  return value
}

export function checkMessage (name: string, value: unknown): Message {
  if (typeof value !== 'string' && typeof value !== 'function') {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be a string or a function (request) => string')
  }
  return value as Message
}

const REALM = /^[\x20-\x7e]{1,100}$/

export function realm (name: string, value: unknown): string {
  if (typeof value !== 'string' || !REALM.test(value)) {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be 1 to 100 printable ASCII characters naming the login area, such as \'admin\'')
  }
  return value
}

// Cookies of another name, path or domain are another login area.
export function derivedRealm (config: LoginConfig): string {
  return defaultRealm(config.cookieName, config.cookiePath, config.cookieDomain)
}

// A hundred devices is more than anyone uses, and few enough that listing
// them all (the devices page, every login's eviction check) stays cheap.
export function maxLogins (name: string, value: unknown): LoginConfig['maxLogins'] {
  if (typeof value !== 'function' && !(Number.isSafeInteger(value) && (value as number) >= 1)) {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be a whole number of logins, at least 1, or a function (user) => number')
  }
  return value as LoginConfig['maxLogins']
}

// Rotation needs a store that can record which generation of a cookie was
// used: on by default where it can be, an error where it is asked for and
// cannot be.
export function rotation (name: string, value: unknown, given: Readonly<Record<string, unknown>>): LoginConfig['rotation'] {
  if (value === false) return false
  const store = given.store as { advanceGeneration?: unknown } | undefined | null
  if (store === undefined || store === null) throw new FST_LOGIN_NO_STORE('`rotation`')
  if (typeof store.advanceGeneration !== 'function') throw new FST_LOGIN_STORE_CANNOT('rotation', 'advanceGeneration')
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be { every, grace } (seconds) or false')
  }
  const { every = 600, grace = 60, ...rest } = value as { every?: unknown, grace?: unknown }
  refuseUnknown(rest, ['every', 'grace'], `${name}.`)
  checkDuration(`${name}.every`, every)
  if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0 || grace > every) {
    throw new FST_LOGIN_INVALID_OPTION(`${name}.grace`, 'must be a number of seconds from 0 to `rotation.every`')
  }
  return { every, grace }
}

export function rotationByDefault (given: Readonly<Record<string, unknown>>): LoginConfig['rotation'] {
  const store = given.store as { advanceGeneration?: unknown } | undefined | null
  return typeof store?.advanceGeneration === 'function' ? rotation('rotation', {}, given) : false
}

// Device binding keeps a key in the login's record: it needs a store that
// can, and https (its cookie is Secure). Its endpoints are under the cookie
// path, so that the browser sends them the account cookie. The cookie
// options come before it in the table: what is given of them is checked.
export function deviceBinding (name: string, value: unknown, given: Readonly<Record<string, unknown>>): LoginConfig['deviceBinding'] {
  if (value === false) return false
  if (value !== true && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be true, false or { path, credentialDuration }')
  }
  const store = given.store as { bind?: unknown, useChallenge?: unknown } | undefined | null
  if (store === undefined || store === null) throw new FST_LOGIN_NO_STORE('`deviceBinding`')
  for (const method of ['bind', 'useChallenge'] as const) {
    if (typeof store[method] !== 'function') throw new FST_LOGIN_STORE_CANNOT('deviceBinding', method)
  }
  if (given.cookieSecure === false) {
    throw new FST_LOGIN_INVALID_OPTION(name, "works over https only, with Secure cookies: set `cookieSecure` to 'auto' or true")
  }
  const cookiePath = (given.cookiePath as string | undefined) ?? '/'
  const { path = `${cookiePath.replace(/\/$/, '')}/device-binding`, credentialDuration = DEFAULT_CREDENTIAL_DURATION, ...rest } = value === true ? {} : value as { path?: unknown, credentialDuration?: unknown }
  refuseUnknown(rest, ['path', 'credentialDuration'], `${name}.`)
  if (typeof path !== 'string' || !BINDING_PATH.test(path)) {
    throw new FST_LOGIN_INVALID_OPTION(`${name}.path`, "must be a path such as '/device-binding': segments of letters, digits and `-._~`, no trailing slash")
  }
  if (!isUnder(path, cookiePath)) {
    throw new FST_LOGIN_INVALID_OPTION(`${name}.path`, `must be under \`cookiePath\` ('${cookiePath}'), where the browser sends the login cookies`)
  }
  if (!Number.isSafeInteger(credentialDuration) || (credentialDuration as number) < 1 || (credentialDuration as number) > 24 * HOUR) {
    throw new FST_LOGIN_INVALID_OPTION(`${name}.credentialDuration`, 'must be a whole number of seconds from 1 to 86400 (a day); 600 is the default')
  }
  return { path, credentialDuration: credentialDuration as number }
}

// Ten minutes: a login in use proves its key about every eight (the browser
// refreshes when two minutes are left), within Chrome's quota of six
// signatures per nine minutes.
const DEFAULT_CREDENTIAL_DURATION = 600
const BINDING_PATH = /^(?:\/[A-Za-z0-9._~-]+)+$/

// Whether a cookie of path `cookiePath` is sent to `path` (RFC 6265 5.1.4).
function isUnder (path: string, cookiePath: string): boolean {
  return path === cookiePath || (path.startsWith(cookiePath) && (cookiePath.endsWith('/') || path[cookiePath.length] === '/'))
}

// The checks that need more than one option, once each is resolved.

export function differentNames (name: string, names: LoginConfig['cookieName']): void {
  if (new Set(Object.values(names)).size !== Object.keys(names).length) {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must use three different names for `account`, `isFresh` and `bound`')
  }
}

export function checkTogether (config: LoginConfig): void {
  // Browsers drop SameSite=None cookies that are not Secure: fail now, not silently later.
  if (config.cookieSameSite === 'none' && config.cookieSecure === false) {
    throw new FST_LOGIN_INVALID_OPTION('cookieSameSite', "'none' needs `cookieSecure` 'auto' or true")
  }
  for (const [key, name] of Object.entries(config.cookieName)) {
    checkPrefix(`cookieName.${key}`, name, config)
  }
}

// RFC 6265bis 4.1.3: browsers (and strict clients such as curl) drop a
// `__Secure-` cookie without Secure, and a `__Host-` cookie without Secure,
// with a Domain, or with a Path other than `/`: the login would silently fail.
function checkPrefix (option: string, name: string, cookie: LoginConfig): void {
  const lower = name.toLowerCase()
  const host = lower.startsWith('__host-')
  if (!host && !lower.startsWith('__secure-')) return
  const prefix = host ? '__Host-' : '__Secure-'
  if (cookie.cookieSecure === false) {
    throw new FST_LOGIN_INVALID_OPTION(option, `starts with ${prefix}, which browsers accept only with Secure: set \`cookieSecure\` to true (or 'auto', which sets it on https requests only)`)
  }
  if (host && cookie.cookieDomain !== undefined) {
    throw new FST_LOGIN_INVALID_OPTION(option, 'starts with __Host-, which browsers accept only without a Domain: remove `cookieDomain`, or use the __Secure- prefix')
  }
  if (host && cookie.cookiePath !== '/') {
    throw new FST_LOGIN_INVALID_OPTION(option, "starts with __Host-, which browsers accept only with Path=/: set `cookiePath` to '/', or use the __Secure- prefix")
  }
}
