import type { FastifyLoginOptions, LoginConfig } from '../../types/index'
import { checkTogether } from './checks'
import { refuseUnknown } from './names'
import { OPTIONS, resolveOption, type Option } from './table'

export { checkDuration, checkMessage, checkRoute, checkSecret } from './checks'

// What Fastify's `register` itself reads from a plugin's options, and then
// passes on to the plugin with the rest.
const REGISTER_OPTIONS = ['prefix', 'logLevel', 'logSerializers']
const KNOWN = [...Object.keys(OPTIONS), ...REGISTER_OPTIONS]

export function resolveConfig (options: FastifyLoginOptions): LoginConfig {
  refuseUnknown(options, KNOWN)
  const given = options as Record<string, unknown>
  const config: Record<string, unknown> = {}
  const derived: Array<[string, Option<unknown>]> = []
  for (const [name, option] of Object.entries(OPTIONS)) {
    if (!('check' in option)) continue
    if ('derive' in option && given[name] === undefined) derived.push([name, option as Option<unknown>])
    else config[name] = resolveOption(name, option as Option<unknown>, given[name], given)
  }
  for (const [name, option] of derived) config[name] = option.derive?.(config, given)
  checkTogether(config as unknown as LoginConfig)
  return deepFreeze(config) as unknown as LoginConfig
}

function deepFreeze<T extends object> (value: T): T {
  for (const inner of Object.values(value)) {
    if (inner !== null && typeof inner === 'object') Object.freeze(inner)
  }
  return Object.freeze(value)
}
