import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { FST_LOGIN_USER_NOT_LOADED } from './errors'
import type { LoginInternals } from './internals'
import { isThenable, loginState } from './state'

// `reply.locals` is what @fastify/view merges into every template's data.
// Declaring it here, lazily, lets templates read `currentUser` without a
// per-request hook; @fastify/view skips its own hook when `locals` exists.
export function exposeToTemplates (fastify: FastifyInstance, login: LoginInternals): void {
  if (fastify.hasReplyDecorator('locals')) {
    // @fastify/view came first: it owns `reply.locals` and fills it in its
    // own hook, and an app may replace it later (`reply.locals = {…}`). Each
    // reply gets an accessor of its own, so that locals assigned at any time
    // carry `currentUser` too.
    fastify.addHook('onRequest', function keepCurrentUserInLocals (request, reply, done) {
      let locals = withCurrentUser((reply as FastifyReply & { locals?: unknown }).locals, request, login)
      Object.defineProperty(reply, 'locals', {
        configurable: true,
        enumerable: true,
        get: () => locals,
        set: (value: unknown) => { locals = withCurrentUser(value, request, login) }
      })
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
      loginState(this.request).locals = withCurrentUser(value, this.request, login)
    }
  })
}

function withCurrentUser<T> (value: T, request: FastifyRequest, login: LoginInternals): T {
  return value !== null && typeof value === 'object' && !Object.hasOwn(value, 'currentUser')
    ? defineCurrentUser(value as Record<string, unknown>, request, login) as T
    : value
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
  return isThenable(user) ? NOT_LOADED : templateView(user as object)
}

// Handlebars reads only a context's own properties (its guard against
// prototype pollution), and `isAuthenticated`, `isAnonymous` and `isActive`
// are getters of UserMixin's prototype: every user looked anonymous. The
// template sees the user through a view, an empty object whose prototype is
// the user, that reports the user's own properties and the getters of its
// classes as its own. Methods run on the user itself, so that classes with
// private fields work.
function templateView (user: object): object {
  return new Proxy(Object.create(user) as object, TEMPLATE_VIEW)
}

const TEMPLATE_VIEW: ProxyHandler<object> = {
  get (view, key) {
    const user = Object.getPrototypeOf(view) as object
    const value: unknown = Reflect.get(user, key, user)
    return typeof value === 'function' ? value.bind(user) : value
  },
  ownKeys (view) {
    return Reflect.ownKeys(Object.getPrototypeOf(view) as object)
  },
  getOwnPropertyDescriptor (view, key) {
    const user = Object.getPrototypeOf(view) as object
    const own = Reflect.getOwnPropertyDescriptor(user, key)
    if (own !== undefined) return { value: Reflect.get(user, key, user), writable: false, enumerable: own.enumerable, configurable: true }
    for (let proto = Object.getPrototypeOf(user) as object | null; proto !== null && proto !== Object.prototype; proto = Object.getPrototypeOf(proto) as object | null) {
      const inherited = Reflect.getOwnPropertyDescriptor(proto, key)
      if (inherited !== undefined) {
        return inherited.get === undefined ? undefined : { value: Reflect.get(user, key, user), writable: false, enumerable: false, configurable: true }
      }
    }
    return undefined
  }
}

const NOT_LOADED = new Proxy(Object.freeze({}), {
  get () {
    throw new FST_LOGIN_USER_NOT_LOADED()
  }
})
