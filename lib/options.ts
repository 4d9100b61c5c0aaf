import type { FastifyLoginOptions, LoginConfig, Message, Secret } from '../types/index'
import { FST_LOGIN_INVALID_OPTION, FST_LOGIN_WEAK_SECRET } from './errors'
import { AnonymousUserMixin } from './mixins'
import { MAX_LIFETIME } from './cookies/token'

const HOUR = 60 * 60
const DAY = 24 * HOUR
const SIXTY_DAYS = 60 * DAY
// Browsers cap cookie lifetimes at 400 days; longer would only be a surprise.
const MAX_DURATION = MAX_LIFETIME
// A redirect target goes into a Location header: printable ASCII only.
const HEADER_SAFE = /^[\x21-\x7e]+$/
const MIN_SECRET_LENGTH = 32
// RFC 6265 cookie-name token: anything else could split or inject attributes.
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

export function resolveConfig (options: FastifyLoginOptions): LoginConfig {
  const cookieName = {
    account: options.cookieName?.account ?? 'account',
    isFresh: options.cookieName?.isFresh ?? 'fresh'
  }
  for (const [key, name] of Object.entries(cookieName)) {
    if (typeof name !== 'string' || !COOKIE_NAME.test(name)) {
      throw new FST_LOGIN_INVALID_OPTION(`cookieName.${key}`, 'must be a non-empty cookie name made of letters, digits and !#$%&\'*+-.^_`|~')
    }
  }
  if (cookieName.account === cookieName.isFresh) {
    throw new FST_LOGIN_INVALID_OPTION('cookieName', 'must use two different names for `account` and `isFresh`')
  }

  const cookieRememberMe = {
    account: options.cookieRememberMe?.account ?? false,
    isFresh: options.cookieRememberMe?.isFresh ?? false
  }
  checkBoolean('cookieRememberMe.account', cookieRememberMe.account)
  checkBoolean('cookieRememberMe.isFresh', cookieRememberMe.isFresh)

  const cookieDuration = options.cookieDuration ?? SIXTY_DAYS
  checkDuration('cookieDuration', cookieDuration)

  const cookieSecure = options.cookieSecure ?? 'auto'
  if (cookieSecure !== 'auto' && typeof cookieSecure !== 'boolean') {
    throw new FST_LOGIN_INVALID_OPTION('cookieSecure', "must be 'auto', true or false")
  }
  const cookieHttpOnly = options.cookieHttpOnly ?? true
  checkBoolean('cookieHttpOnly', cookieHttpOnly)

  const cookieSameSite = options.cookieSameSite ?? 'lax'
  if (cookieSameSite !== 'lax' && cookieSameSite !== 'strict' && cookieSameSite !== 'none') {
    throw new FST_LOGIN_INVALID_OPTION('cookieSameSite', "must be 'lax', 'strict' or 'none'")
  }
  // Browsers drop SameSite=None cookies that are not Secure: fail now, not silently later.
  if (cookieSameSite === 'none' && cookieSecure === false) {
    throw new FST_LOGIN_INVALID_OPTION('cookieSameSite', "'none' needs `cookieSecure` 'auto' or true")
  }

  const cookiePath = options.cookiePath ?? '/'
  if (typeof cookiePath !== 'string' || !cookiePath.startsWith('/') || /[;\s]/.test(cookiePath)) {
    throw new FST_LOGIN_INVALID_OPTION('cookiePath', "must be a path starting with '/' without ';' or spaces")
  }
  const cookieDomain = options.cookieDomain
  if (cookieDomain !== undefined && (typeof cookieDomain !== 'string' || !/^[A-Za-z0-9.-]+$/.test(cookieDomain))) {
    throw new FST_LOGIN_INVALID_OPTION('cookieDomain', 'must be a host name such as example.com')
  }
  for (const [key, name] of Object.entries(cookieName)) {
    checkPrefix(`cookieName.${key}`, name, { cookieSecure, cookiePath, cookieDomain })
  }

  const anonymousUser = options.anonymousUser ?? AnonymousUserMixin
  if (typeof anonymousUser !== 'function') {
    throw new FST_LOGIN_INVALID_OPTION('anonymousUser', 'must be a class or a function that returns the anonymous user')
  }

  const nextField = options.nextField ?? 'next'
  if (nextField !== false && (typeof nextField !== 'string' || nextField.length === 0)) {
    throw new FST_LOGIN_INVALID_OPTION('nextField', 'must be a query field name, or false to leave it off')
  }

  const exemptMethods = options.exemptMethods ?? ['OPTIONS']
  if (!Array.isArray(exemptMethods) || !exemptMethods.every((method) => typeof method === 'string' && method.length > 0)) {
    throw new FST_LOGIN_INVALID_OPTION('exemptMethods', "must be an array of HTTP methods such as ['OPTIONS']")
  }

  const sessionProtection = options.sessionProtection ?? 'basic'
  if (sessionProtection !== 'basic' && sessionProtection !== 'strong' && sessionProtection !== false) {
    throw new FST_LOGIN_INVALID_OPTION('sessionProtection', "must be 'basic', 'strong' or false")
  }

  const cookieRefreshEachRequest = options.cookieRefreshEachRequest ?? false
  checkBoolean('cookieRefreshEachRequest', cookieRefreshEachRequest)

  const sessionDuration = options.sessionDuration ?? DAY
  checkDuration('sessionDuration', sessionDuration)
  const freshDuration = checkOptionalDuration('freshDuration', options.freshDuration, HOUR)
  const idleTimeout = checkOptionalDuration('idleTimeout', options.idleTimeout, null)
  const storeCacheWindow = options.storeCacheWindow ?? 0
  if (typeof storeCacheWindow !== 'number' || !Number.isFinite(storeCacheWindow) || storeCacheWindow < 0 || storeCacheWindow > HOUR) {
    throw new FST_LOGIN_INVALID_OPTION('storeCacheWindow', 'must be a number of seconds from 0 (no cache) to 3600')
  }
  const trustedOrigins = checkOrigins(options.trustedOrigins)

  return deepFreeze({
    cookieName,
    cookieRememberMe,
    cookieDuration,
    cookieSecure,
    cookieHttpOnly,
    cookieSameSite,
    cookiePath,
    cookieDomain,
    loginRequiredRoute: checkRoute('loginRequiredRoute', options.loginRequiredRoute),
    loginRequiredMessage: checkMessage('loginRequiredMessage', options.loginRequiredMessage, 'Please log in to access this page.'),
    loginProhibitedRoute: checkRoute('loginProhibitedRoute', options.loginProhibitedRoute),
    loginProhibitedMessage: checkMessage('loginProhibitedMessage', options.loginProhibitedMessage, 'Please log out to access this page.'),
    refreshRoute: checkRoute('refreshRoute', options.refreshRoute),
    needsRefreshMessage: checkMessage('needsRefreshMessage', options.needsRefreshMessage, 'Please reauthenticate to access this page.'),
    nextField,
    exemptMethods: exemptMethods.map((method: string) => method.toUpperCase()),
    sessionProtection,
    cookieRefreshEachRequest,
    sessionDuration,
    freshDuration,
    idleTimeout,
    storeCacheWindow,
    trustedOrigins,
    anonymousUser
  })
}

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

// `null` turns it off; undefined takes the default.
function checkOptionalDuration<T extends number | null> (name: string, value: unknown, fallback: T): number | T {
  if (value === undefined) return fallback
  if (value === null) return null as T
  checkDuration(name, value)
  return value
}

// RFC 6265bis 4.1.3: browsers (and strict clients such as curl) drop a
// `__Secure-` cookie without Secure, and a `__Host-` cookie without Secure,
// with a Domain, or with a Path other than `/`: the login would silently fail.
function checkPrefix (option: string, name: string, cookie: { cookieSecure: boolean | 'auto', cookiePath: string, cookieDomain: string | undefined }): void {
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

// Origins as browsers send them: scheme, host and port, nothing else.
function checkOrigins (value: unknown): readonly string[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) {
    throw new FST_LOGIN_INVALID_OPTION('trustedOrigins', "must be an array of origins such as ['https://app.example.com']")
  }
  return value.map((origin: unknown) => {
    let url: URL | null = null
    try {
      url = typeof origin === 'string' ? new URL(origin) : null
    } catch {}
    if (url === null || url.origin === 'null' || url.origin !== (origin as string).replace(/\/$/, '').toLowerCase()) {
      throw new FST_LOGIN_INVALID_OPTION('trustedOrigins', `has ${JSON.stringify(origin)}, which is not an origin: give scheme, host and optional port only, such as 'https://app.example.com'`)
    }
    return url.origin
  })
}

function checkBoolean (name: string, value: unknown): void {
  if (typeof value !== 'boolean') {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be true or false')
  }
}

export function checkRoute (name: string, value: unknown): string | null {
  if (value === undefined || value === null) return null
  if (typeof value !== 'string' || !HEADER_SAFE.test(value)) {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be a URL (string of printable ASCII, percent-encode the rest) or null')
  }
  return value
}

export function checkMessage (name: string, value: unknown, fallback: Message): Message {
  if (value === undefined) return fallback
  if (typeof value !== 'string' && typeof value !== 'function') {
    throw new FST_LOGIN_INVALID_OPTION(name, 'must be a string or a function (request) => string')
  }
  return value as Message
}

function deepFreeze<T extends object> (value: T): T {
  for (const inner of Object.values(value)) {
    if (inner !== null && typeof inner === 'object') Object.freeze(inner)
  }
  return Object.freeze(value)
}
