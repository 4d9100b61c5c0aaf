import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fastifyCookie, { Signer as CookieSigner } from '@fastify/cookie'
import type { FastifyLoginOptions } from '../types/index'
import { FST_LOGIN_NO_SECRET, FST_LOGIN_NO_USER_LOADER } from './errors'
import { LoginManager } from './manager'
import { checkSecret, resolveConfig } from './options'
import { kLoginState } from './state'
import type { Signer } from './token'

const kTemplateLocals = Symbol('fastify-login.locals')

type LocalsReply = FastifyReply & { [kTemplateLocals]: Record<string, unknown> | null }

// Options → decorators → hooks. No global hook is added: a route that never
// asks who is logged in does no work for this plugin.
export async function plugin (fastify: FastifyInstance, options: FastifyLoginOptions): Promise<void> {
  const config = resolveConfig(options)
  const signer = await cookieSigner(fastify, options)
  const manager = new LoginManager(config, signer, options.userLoader, options.requestLoader)

  fastify.decorate('loginManager', manager)
  fastify.decorateRequest(kLoginState, null)
  fastify.decorateRequest('currentUser', {
    getter (this: FastifyRequest) {
      return manager.currentUser(this)
    }
  })
  fastify.decorateRequest('loadUser', function (this: FastifyRequest) {
    return manager.loadUser(this)
  })
  fastify.decorateRequest('isFresh', {
    getter (this: FastifyRequest) {
      return manager.isFresh(this)
    }
  })
  exposeToTemplates(fastify)

  // `config: { login: 'required' }` on a route adds the guard to that route
  // alone, when the route is declared: nothing runs for other routes.
  fastify.addHook('onRoute', function guardDeclaredRoutes (routeOptions) {
    const login = routeOptions.config?.login
    if (login === undefined) return
    const guard = manager.guard(typeof login === 'string' ? { mode: login } : login)
    const existing = routeOptions.onRequest
    routeOptions.onRequest = existing === undefined ? [guard] : [guard, ...(Array.isArray(existing) ? existing : [existing])]
  })

  fastify.addHook('onReady', async function checkUserLoader () {
    if (!manager.hasLoader) throw new FST_LOGIN_NO_USER_LOADER()
  })
}

// Our own secret gets its own signer; without one we borrow the signer of an
// @fastify/cookie the app registered with a secret. When @fastify/cookie is
// missing we register it without its parsing hook, so that routes which never
// read the login do not pay for parsing cookies.
async function cookieSigner (fastify: FastifyInstance, options: FastifyLoginOptions): Promise<Signer> {
  const secrets = checkSecret(options.secret)
  const hasCookiePlugin = fastify.hasPlugin('@fastify/cookie')
  if (secrets === null && !(hasCookiePlugin && fastify.hasDecorator('unsignCookie'))) {
    throw new FST_LOGIN_NO_SECRET()
  }
  if (!hasCookiePlugin) {
    await fastify.register(fastifyCookie, { hook: false })
  }
  // The signer accepts strings and Buffers mixed, whatever its types say.
  if (secrets !== null) return new CookieSigner(secrets as string[])
  return {
    sign: (value) => fastify.signCookie(value),
    unsign: (value) => fastify.unsignCookie(value)
  }
}

// `reply.locals` is what @fastify/view merges into every template's data.
// Declaring it here, lazily, lets templates read `currentUser` without a
// per-request hook; @fastify/view skips its own hook when `locals` exists.
function exposeToTemplates (fastify: FastifyInstance): void {
  if (fastify.hasReplyDecorator('locals')) {
    // @fastify/view came first and fills `reply.locals` in its own hook.
    fastify.addHook('preHandler', function addCurrentUserToLocals (request, reply, done) {
      const locals = (reply as FastifyReply & { locals?: Record<string, unknown> }).locals
      if (locals !== null && typeof locals === 'object') defineCurrentUser(locals, request)
      done()
    })
    return
  }
  fastify.decorateReply(kTemplateLocals, null)
  fastify.decorateReply('locals', {
    getter (this: LocalsReply) {
      if (this[kTemplateLocals] === null) this[kTemplateLocals] = defineCurrentUser({}, this.request)
      return this[kTemplateLocals]
    },
    setter (this: LocalsReply, value: Record<string, unknown>) {
      this[kTemplateLocals] = value
    }
  })
}

function defineCurrentUser (locals: Record<string, unknown>, request: FastifyRequest): Record<string, unknown> {
  return Object.defineProperty(locals, 'currentUser', {
    enumerable: true,
    configurable: true,
    get: () => request.currentUser
  })
}
