import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fastifyCookie, { Signer as CookieSigner } from '@fastify/cookie'
import type { FastifyLoginOptions, Guard } from '../types/index'
import type { CookieCodec } from './cookies'
import { FST_LOGIN_NO_SECRET, FST_LOGIN_NO_USER_LOADER, FST_LOGIN_USER_NOT_LOADED } from './errors'
import { kInternals, LoginManager, type LoginInternals } from './manager'
import { checkSecret, resolveConfig } from './options'
import { isThenable, kLoginState, loginState } from './state'
import { signingKey, type Signer } from './token'

// Options → decorators → hooks. No global hook is added: a route that never
// asks who is logged in does no work for this plugin.
export async function plugin (fastify: FastifyInstance, options: FastifyLoginOptions): Promise<void> {
  const config = resolveConfig(options)
  const { signer, codec } = await cookieSupport(fastify, options)
  const manager = new LoginManager(config, signer, codec, options.userLoader, options.requestLoader)
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

  // `config: { login: 'required' }` on a route adds the guard to that route
  // alone, when the route is declared: nothing runs for other routes. Routes
  // declared before this plugin has loaded are not seen: `await` its register.
  const standardGuards: Record<string, Guard> = {
    required: manager.loginRequired,
    prohibited: manager.loginProhibited,
    fresh: manager.freshLoginRequired
  }
  fastify.addHook('onRoute', function guardDeclaredRoutes (routeOptions) {
    const declared = routeOptions.config?.login
    if (declared === undefined) return
    const guard = typeof declared === 'string' && Object.hasOwn(standardGuards, declared)
      ? standardGuards[declared]
      : manager.guard(typeof declared === 'string' ? { mode: declared } : declared)
    const existing = routeOptions.onRequest
    routeOptions.onRequest = existing === undefined ? [guard] : [guard, ...(Array.isArray(existing) ? existing : [existing])]
  })

  fastify.addHook('onReady', async function checkUserLoader () {
    if (!login.hasLoader()) throw new FST_LOGIN_NO_USER_LOADER()
  })
}

// Our own secret gets its own signer; without one we borrow the signer of an
// @fastify/cookie the app registered with a secret.
async function cookieSupport (fastify: FastifyInstance, options: FastifyLoginOptions): Promise<{ signer: Signer, codec: CookieCodec }> {
  const secrets = checkSecret(options.secret)
  const hasCookiePlugin = fastify.hasPlugin('@fastify/cookie')
  if (secrets === null && !(hasCookiePlugin && fastify.hasDecorator('unsignCookie'))) {
    throw new FST_LOGIN_NO_SECRET()
  }
  const codec = hasCookiePlugin ? codecOf(fastify) : await ownCodec(fastify)
  if (secrets !== null) return { signer: new CookieSigner(secrets.map(signingKey)), codec }
  return {
    signer: {
      sign: (value) => fastify.signCookie(value),
      unsign: (value) => fastify.unsignCookie(value)
    },
    codec
  }
}

// Without the app's @fastify/cookie, ours is registered in a scope of its own
// with no routes: its onSend hook and decorators stay out of the app, so
// routes that never read the login pay nothing for it.
async function ownCodec (fastify: FastifyInstance): Promise<CookieCodec> {
  let codec: CookieCodec | undefined
  await fastify.register(async function cookieFunctions (scope) {
    await scope.register(fastifyCookie, { hook: false })
    codec = codecOf(scope)
  })
  return codec as CookieCodec
}

function codecOf (instance: FastifyInstance): CookieCodec {
  return {
    parse: (header) => instance.parseCookie(header),
    serialize: (name, value, options) => instance.serializeCookie(name, value, options)
  }
}

// `reply.locals` is what @fastify/view merges into every template's data.
// Declaring it here, lazily, lets templates read `currentUser` without a
// per-request hook; @fastify/view skips its own hook when `locals` exists.
function exposeToTemplates (fastify: FastifyInstance, login: LoginInternals): void {
  if (fastify.hasReplyDecorator('locals')) {
    // @fastify/view came first and fills `reply.locals` in its own hook.
    fastify.addHook('preHandler', function addCurrentUserToLocals (request, reply, done) {
      const locals = (reply as FastifyReply & { locals?: Record<string, unknown> }).locals
      if (locals !== null && typeof locals === 'object') defineCurrentUser(locals, request, login)
      done()
    })
    return
  }
  // The locals live in the request's login state: a reply field of their own
  // would be set on every reply of the app.
  fastify.decorateReply('locals', {
    getter (this: FastifyReply) {
      const state = loginState(this.request)
      if (state.locals === null) state.locals = defineCurrentUser({}, this.request, login)
      return state.locals
    },
    setter (this: FastifyReply, value: Record<string, unknown> | null) {
      // Locals an app assigns keep `currentUser` too.
      loginState(this.request).locals = value !== null && typeof value === 'object' && !Object.hasOwn(value, 'currentUser')
        ? defineCurrentUser(value, this.request, login)
        : value
    }
  })
}

function defineCurrentUser (locals: Record<string, unknown>, request: FastifyRequest, login: LoginInternals): Record<string, unknown> {
  return Object.defineProperty(locals, 'currentUser', {
    enumerable: true,
    configurable: true,
    get: () => templateUser(request, login)
  })
}

// @fastify/view copies every local into the template data, whether the
// template uses it or not. A page that never shows the user must render even
// when an async loader has not run: it gets a stand-in that throws the clear
// error only if the template does touch it.
function templateUser (request: FastifyRequest, login: LoginInternals): unknown {
  const user = login.resolveUser(request)
  return isThenable(user) ? NOT_LOADED : user
}

const NOT_LOADED = new Proxy(Object.freeze({}), {
  get () {
    throw new FST_LOGIN_USER_NOT_LOADED()
  }
})
