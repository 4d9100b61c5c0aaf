import { inspect } from 'node:util'
import type { AnonymousUserFactory, FastifyLoginBaseOptions, LoginConfig } from '../../types/index'
import { FST_LOGIN_INVALID_OPTION } from '../errors'
import { AnonymousUserMixin } from '../mixins'
import { DEFAULT_REALM } from '../cookies/realm'
import {
  cacheWindow,
  checkBoolean,
  checkMessage,
  checkRoute,
  cookieDomain,
  cookieName,
  cookiePath,
  differentNames,
  duration,
  derivedRealm,
  deviceBinding,
  factory,
  maxLogins,
  methods,
  oneOf,
  optionalDuration,
  origins,
  queryField,
  realm,
  rotation,
  rotationByDefault
} from './checks'
import { refuseUnknown } from './names'

// Every option of the plugin, once: its default and its check. The names
// register refuses are the names missing here, so an option cannot be added
// without its check, nor checked without being known. Adding one: an entry
// here, its type in types/index.d.ts (FastifyLoginBaseOptions, and
// LoginConfig when the config shows it).

export type OptionName = keyof FastifyLoginBaseOptions | 'anonymousUser'

export interface Option<T> {
  readonly default: T
  // Turns a given value into the config's, or throws FST_LOGIN_INVALID_OPTION.
  // `given` is every option as given, for the few checks that need another.
  readonly check: (name: string, value: unknown, given: Given) => T
  // A default that depends on other options: computed from the config once
  // the rest is resolved, in place of `default`.
  readonly derive?: (config: Readonly<Record<string, unknown>>, given: Given) => T
  // undefined and null take the default; with this, null goes to the check
  // instead (it turns the option off, or is refused).
  readonly checksNull?: true
  // An option whose value is an object: its keys, each an option of its own.
  readonly fields?: { readonly [key: string]: Option<unknown> }
}

export type Given = Readonly<Record<string, unknown>>

// An option the config does not show (functions, the store, the secret),
// checked where it is used; known here so that it is not refused.
export interface OptionCheckedElsewhere {
  readonly checkedBy: string
}

export type OptionTable = {
  readonly [K in OptionName]: K extends keyof LoginConfig ? Option<LoginConfig[K]> : OptionCheckedElsewhere
}

const HOUR = 60 * 60
const DAY = 24 * HOUR

export const OPTIONS: OptionTable = {
  secret: { checkedBy: 'checkSecret, from keysOf in plugin.ts' },
  userLoader: { checkedBy: 'LoginManager#userLoader' },
  requestLoader: { checkedBy: 'LoginManager#requestLoader' },
  store: { checkedBy: 'checkStore in plugin.ts' },
  cookieName: object({
    account: { default: 'account', check: cookieName },
    isFresh: { default: 'fresh', check: cookieName },
    bound: { default: 'bound', check: cookieName }
  }, differentNames),
  cookieRememberMe: object({
    account: { default: false, check: checkBoolean },
    isFresh: { default: false, check: checkBoolean }
  }),
  cookieDuration: { default: 60 * DAY, check: duration },
  cookieSecure: { default: 'auto', check: oneOf(['auto', true, false] as const, "'auto', true or false") },
  cookieHttpOnly: { default: true, check: checkBoolean },
  cookieSameSite: { default: 'lax', check: oneOf(['lax', 'strict', 'none'] as const, "'lax', 'strict' or 'none'") },
  cookiePath: { default: '/', check: cookiePath },
  cookieDomain: { default: undefined, check: cookieDomain, checksNull: true },
  loginRequiredRoute: { default: null, check: checkRoute, checksNull: true },
  loginRequiredMessage: { default: 'Please log in to access this page.', check: checkMessage, checksNull: true },
  loginProhibitedRoute: { default: null, check: checkRoute, checksNull: true },
  loginProhibitedMessage: { default: 'Please log out to access this page.', check: checkMessage, checksNull: true },
  refreshRoute: { default: null, check: checkRoute, checksNull: true },
  needsRefreshMessage: { default: 'Please reauthenticate to access this page.', check: checkMessage, checksNull: true },
  nextField: { default: 'next', check: queryField },
  exemptMethods: { default: ['OPTIONS'], check: methods },
  sessionProtection: { default: 'basic', check: oneOf(['basic', 'strong', false] as const, "'basic', 'strong' or false") },
  cookieRefreshEachRequest: { default: false, check: checkBoolean },
  sessionDuration: { default: DAY, check: duration },
  freshDuration: { default: HOUR, check: optionalDuration, checksNull: true },
  idleTimeout: { default: null, check: optionalDuration, checksNull: true },
  storeCacheWindow: { default: 0, check: cacheWindow },
  trustedOrigins: { default: [], check: origins, checksNull: true },
  realm: { default: DEFAULT_REALM, check: realm, derive: (config) => derivedRealm(config as unknown as LoginConfig) },
  maxLogins: { default: 100, check: maxLogins },
  rotation: { default: false, check: rotation, derive: (_config, given) => rotationByDefault(given) },
  deviceBinding: { default: false, check: deviceBinding },
  anonymousUser: { default: AnonymousUserMixin, check: factory<AnonymousUserFactory> }
}

// Reads one option: its default when not given, else its check's answer.
export function resolveOption<T> (name: string, option: Option<T>, value: unknown, given: Given = {}): T {
  if (value === undefined || (value === null && option.checksNull !== true)) return option.default
  return option.check(name, value, given)
}

// An object-valued option. A string (`cookieName: 'admin'`) is refused: it
// would otherwise be read as an object without keys, all defaults.
function object<T extends object> (
  fields: { readonly [K in keyof T]: Option<T[K]> },
  together?: (name: string, value: T) => void
): Option<T> {
  const defaults = Object.fromEntries(Object.entries<Option<unknown>>(fields).map(([key, field]) => [key, field.default])) as T
  return {
    default: Object.freeze(defaults),
    fields,
    check (name, value) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new FST_LOGIN_INVALID_OPTION(name, `must be an object such as ${inspect(defaults)}, not ${Array.isArray(value) ? 'an array' : `a ${typeof value}`}`)
      }
      refuseUnknown(value, Object.keys(fields), `${name}.`)
      const resolved = Object.fromEntries(Object.entries<Option<unknown>>(fields).map(([key, field]) =>
        [key, resolveOption(`${name}.${key}`, field, (value as Record<string, unknown>)[key])])) as T
      together?.(name, resolved)
      return resolved
    }
  }
}
