import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { FST_LOGIN_USER_NOT_LOADED } from './errors'
import type { LoginInternals } from './internals'
import { isThenable, loginState } from './state'

// `reply.locals` is what @fastify/view merges into every template's data.
// Declaring it here, lazily, lets templates read `currentUser` without a
// per-request hook; @fastify/view skips its own hook when `locals` exists.
export function exposeToTemplates (fastify: FastifyInstance, login: LoginInternals): void {
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
