import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify'
import type { FastifyLoginOptions, Guard, LoginRouteConfig, LoginStore } from '../types/index'
import { addDeviceBindingRoutes } from './binding/dbsc-routes'
import { FST_LOGIN_INVALID_OPTION, FST_LOGIN_NO_SECRET, FST_LOGIN_NO_USER_LOADER } from './errors'
import { kInternals } from './internals'
import { LoginManager } from './manager'
import type { SwaggerTransform } from './openapi'
import { checkSecret, resolveConfig } from './options'
import { borrowedKeys, ownKeys, type Keys } from './cookies/signing'
import { isGuarded, isHookOf, kLoginState, markGuarded } from './state'
import { exposeToTemplates } from './templates'

// Options → decorators → hooks. No global hook is added: a route that never
// asks who is logged in does no work for this plugin.
export async function plugin (fastify: FastifyInstance, options: FastifyLoginOptions): Promise<void> {
  const config = resolveConfig(options)
  const store = checkStore(options.store)
  const keys = keysOf(fastify, options, config.realm)
  const manager = new LoginManager(config, keys, store, fastify.log, options.userLoader, options.requestLoader)
  const login = manager[kInternals]

  fastify.decorate('loginManager', manager)
  fastify.decorateRequest(kLoginState, null)
  fastify.decorateRequest('currentUser', {
    getter (this: FastifyRequest) {
      return login.currentUser(this)
    }
  })
  fastify.decorateRequest('loadUser', async function (this: FastifyRequest) {
    return await login.resolveUser(this)
  })
  fastify.decorateRequest('isFresh', {
    getter (this: FastifyRequest) {
      return login.isFresh(this)
    }
  })
  exposeToTemplates(fastify, login)
  if (config.idleTimeout !== null) {
    // The one case with an app-wide hook, opted into by the idle timeout:
    // the last use must reach the cookie on unguarded pages too.
    fastify.addHook('onSend', function carryLastUse (request, reply, payload, done) {
      login.carryLastUse(request, reply)
      done(null, payload)
    })
  }
  if (options.secret === undefined && config.sessionProtection === 'strong') {
    fastify.log.warn('fastify-login: sessionProtection \'strong\' with the signer of @fastify/cookie: rotating that secret logs every user out, since the client tag cannot be checked with the old one. Give fastify-login its own `secret`.')
  }

  guardDeclaredRoutes(fastify, manager)
  if (login.deviceBinding !== null) {
    addDeviceBindingRoutes(fastify, login.deviceBinding)
    const { credentialDuration } = login.deviceBinding.binding.settings
    if (credentialDuration < SHORTEST_CREDENTIAL_DURATION) {
      fastify.log.warn(`fastify-login: \`deviceBinding.credentialDuration\` is ${credentialDuration} s. Chrome refreshes the bound cookie when 2 minutes are left, and signs at most about 6 refreshes per 9 minutes: under ${SHORTEST_CREDENTIAL_DURATION} s an active login runs out, and is anonymous until the quota frees. Use it in tests only.`)
    }
  }
  // Only when refreshRoute is a path of this app: nothing to check otherwise.
  if (login.refreshRoute.path !== null) {
    fastify.addHook('onRoute', function checkRefreshRoute (routeOptions) {
      login.refreshRoute.declared(routeOptions, this.log)
    })
  }

  const unrotated = store !== null && config.rotation === false && options.rotation === undefined

  fastify.addHook('onReady', async function checkUserLoader () {
    if (!login.hasLoader()) throw new FST_LOGIN_NO_USER_LOADER()
    if (unrotated) {
      fastify.log.warn('fastify-login: the login store has no `advanceGeneration` method, so logins are not rotated: a copied cookie works until its login ends. Add the method to the store (see docs/logins.md, "Writing a store"), or pass `rotation: false` to say you know.')
    }
    // A store that reports revocations from other instances starts listening.
    await login.ready()
  })
  fastify.addHook('onClose', async function closeStore () {
    await login.close()
  })
}

// `config: { login: 'required' }` on a route adds the guard to that route
// alone, when the route is declared: nothing runs for other routes.
function guardDeclaredRoutes (fastify: FastifyInstance, manager: LoginManager): void {
  const standardGuards: Record<string, Guard> = {
    required: manager.loginRequired,
    prohibited: manager.loginProhibited,
    fresh: manager.freshLoginRequired,
    optional: manager.guard({ mode: 'optional' })
  }
  const guardOf = (declared: LoginRouteConfig): Guard => typeof declared === 'string' && Object.hasOwn(standardGuards, declared)
    ? standardGuards[declared]
    : manager.guard(typeof declared === 'string' ? { mode: declared } : declared)

  const owner = manager[kInternals]
  const openapi = owner.openapi
  fastify.addHook('onRoute', function guardDeclaredRoute (routeOptions) {
    for (const name of GUARD_STAGES) runOwnHooksLast(routeOptions, name, owner)
    const declared = routeOptions.config?.login
    if (declared === undefined) return
    const guard = guardOf(declared)
    // A copy: the app may share one config object between routes of scopes
    // this registration cannot see, whose routes must not look guarded.
    const config: Record<string, unknown> = markGuarded({ ...routeOptions.config }, manager)
    // With @fastify/swagger, the route's operation names the login cookie.
    if (openapi.documents(this, declared)) config.swaggerTransform = openapi.transform(config.swaggerTransform as SwaggerTransform | false | undefined)
    routeOptions.config = config
    // Last among the route's onRequest hooks so far: a rate limit registered
    // before this plugin counts the requests the guard refuses.
    const existing = routeOptions.onRequest
    routeOptions.onRequest = existing === undefined ? [guard] : [...(Array.isArray(existing) ? existing : [existing]), guard]
  })

  // Routes declared before this plugin loaded (an un-awaited register) were
  // not seen above. Only then, one hook for this scope guards those that ask
  // for a login; an app that registers the plugin first pays nothing for it.
  // find-my-way prints exactly this for a router without routes.
  if (fastify.printRoutes() === '(empty tree)') return
  const lateGuards = new WeakMap<object, Guard>()
  fastify.addHook('onRequest', function guardEarlierRoutes (request, reply, done) {
    const config = request.routeOptions.config as { login?: LoginRouteConfig } | undefined
    if (config?.login === undefined || isGuarded(config, manager)) {
      done()
      return
    }
    let guard = lateGuards.get(config)
    if (guard === undefined) lateGuards.set(config, guard = guardOf(config.login))
    guard.call(this, request, reply, done)
  })
}

// A route's own hooks of this plugin (its guards, crossOriginProtection) go
// after the others of their list, in their order, as the guard of
// `config.login` does: the hooks that plugins registered before this one
// added to the route (a rate limit) then see the requests they refuse. The
// route's own hooks cannot be told from those: they move before ours too.
const GUARD_STAGES = ['onRequest', 'preValidation', 'preHandler'] as const

function runOwnHooksLast (routeOptions: RouteOptions, name: typeof GUARD_STAGES[number], owner: object): void {
  const hooks: unknown = routeOptions[name]
  // A single hook: nothing was added after it.
  if (!Array.isArray(hooks)) return
  const own = hooks.filter((hook) => isHookOf(hook, owner))
  if (own.length === 0 || hooks.slice(-own.length).every((hook) => isHookOf(hook, owner))) return
  // A new array: the app's may be shared with other routes.
  routeOptions[name] = [...hooks.filter((hook) => !isHookOf(hook, owner)), ...own]
}

const STORE_METHODS = ['create', 'get', 'touch', 'delete', 'list'] as const
// Chrome refreshes a bound cookie early once it has two minutes left or less.
const SHORTEST_CREDENTIAL_DURATION = 300

function checkStore (store: LoginStore | undefined | null): LoginStore | null {
  if (store === undefined || store === null) return null
  const missing = STORE_METHODS.filter((method) => typeof (store as unknown as Record<string, unknown>)?.[method] !== 'function')
  if (typeof store !== 'object' || missing.length > 0) {
    throw new FST_LOGIN_INVALID_OPTION('store', `must be a LoginStore (memoryStore(), redisStore({ client }) or your own), but ${typeof store === 'object' ? `it has no ${missing.join(', ')} method` : `it is a ${typeof store}`}`)
  }
  for (const method of ['subscribe', 'close', 'deleteAll', 'advanceGeneration', 'realm', 'bind', 'useChallenge'] as const) {
    if (store[method] !== undefined && typeof store[method] !== 'function') {
      throw new FST_LOGIN_INVALID_OPTION(`store.${method}`, 'must be a function when present')
    }
  }
  return store
}

// Our own secret gets its own keys; without one we borrow the signer of an
// @fastify/cookie the app registered with a secret. Reading and writing the
// cookies needs no @fastify/cookie: cookies/header.ts and cookies/login-cookies.ts do it.
function keysOf (fastify: FastifyInstance, options: FastifyLoginOptions, realm: string): Keys {
  const secrets = checkSecret(options.secret)
  if (secrets !== null) return ownKeys(secrets, realm)
  if (!(fastify.hasPlugin('@fastify/cookie') && fastify.hasDecorator('unsignCookie'))) throw new FST_LOGIN_NO_SECRET()
  return borrowedKeys(fastify, realm)
}
