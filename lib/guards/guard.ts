import { STATUS_CODES } from 'node:http'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { FreshRequirement, LoginCurrentUser, Guard, GuardHandler, GuardOptions, LoginConfig, Message } from '../../types/index'
import { METHOD, type AccountToken } from '../cookies/token'
import { nowInSeconds } from '../clock'
import { prefersJson } from './accept'
import { FST_LOGIN_INVALID_OPTION } from '../errors'
import type { LoginInternals } from '../internals'
import { checkMessage, checkRoute } from '../options'
import { isThenable, markHook } from '../state'

// The guards are callback-style hooks: with a synchronous loader a guarded
// request passes without allocating a promise. Each refusal goes to the app's
// handler when it set one, else to a redirect, else to a plain status; API
// clients that prefer JSON get the status with a JSON body instead.

interface Refusal {
  // Which of the app's handlers answers it, read when refusing: set late is fine.
  handler: keyof LoginInternals['handlers']
  route: string | null
  status: number
  message: Message
  // Redirects carry the URL that was asked for, to come back after logging in.
  nextField: string | false
  event: 'unauthorized' | 'needsRefresh' | null
  // What a step-up route asked for, told to the needsRefresh listeners and,
  // as `methods`, to the re-authentication page.
  requirement: FreshRequirement | null
}

type Decision = (request: FastifyRequest) => Refusal | null

const MODES = ['required', 'prohibited', 'fresh', 'optional']

export function createGuard (login: LoginInternals, config: LoginConfig, options: GuardOptions): Guard {
  if (options === null || typeof options !== 'object' || !MODES.includes(options.mode)) {
    throw new FST_LOGIN_INVALID_OPTION('login', "must be 'required', 'prohibited', 'fresh' or 'optional', or { mode, route, message }")
  }
  // 'optional' lets everyone through: a route or message would never be used.
  if (options.mode === 'optional' && (options.route !== undefined || options.message !== undefined)) {
    throw new FST_LOGIN_INVALID_OPTION('login', "'optional' refuses nobody, so it takes no `route` or `message`: remove them, or use 'required'")
  }
  const override = {
    route: options.route === undefined ? undefined : checkRoute('login.route', options.route),
    message: options.message === undefined ? undefined : checkMessage('login.message', options.message)
  }
  const requirement = checkStepUp(options)
  // The refusal the mode is named after takes the route's overrides.
  function refusal (mode: string, base: Refusal): Refusal {
    if (options.mode !== mode) return base
    return {
      ...base,
      route: override.route === undefined ? base.route : override.route,
      message: override.message ?? base.message
    }
  }

  const unauthorized = refusal('required', {
    handler: 'unauthorized',
    route: config.loginRequiredRoute,
    status: 401,
    message: config.loginRequiredMessage,
    nextField: config.nextField,
    event: 'unauthorized',
    requirement: null
  })
  const needsRefresh = refusal('fresh', {
    handler: 'needsRefresh',
    route: config.refreshRoute,
    status: 401,
    message: config.needsRefreshMessage,
    nextField: config.nextField,
    event: 'needsRefresh',
    requirement: requirement ?? { maxAge: null, methods: null }
  })
  const prohibited = refusal('prohibited', {
    handler: 'authorized',
    route: config.loginProhibitedRoute,
    status: 403,
    message: config.loginProhibitedMessage,
    nextField: false,
    event: null,
    requirement: null
  })

  const decisions: Record<string, Decision> = {
    // Resolves the user before the handler (an asynchronous loader is done by
    // then) and lets everyone through: pages that show who is logged in.
    optional: () => null,
    required: (request) => login.isAuthenticated(request) ? null : unauthorized,
    prohibited: (request) => login.isAuthenticated(request) ? prohibited : null,
    fresh: (request) => {
      if (!login.isAuthenticated(request)) return unauthorized
      if (!login.isFresh(request)) return needsRefresh
      return requirement === null || meets(login.account(request) as AccountToken, requirement) ? null : needsRefresh
    }
  }
  const decide = decisions[options.mode]
  // A guard that refuses nobody has nothing to exempt a preflight from.
  const exempt = new Set(options.mode === 'optional' ? [] : config.exemptMethods)

  function judge (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    login.refreshCookies(request, reply)
    const refused = decide(request)
    if (refused === null) {
      done()
      return
    }
    if (refused === prohibited) login.refreshRoute.refused(request)
    if (refused.event === 'needsRefresh') login.emit(request, 'needsRefresh', request, refused.requirement as FreshRequirement)
    else if (refused.event !== null) login.emit(request, refused.event, request)
    refuse(request, reply, refused, login.handlers[refused.handler], done)
  }

  // Fastify hands a hook the whole request and reply; the public Guard type
  // names only their raw parts (see types/index.d.ts for why).
  const guard = markHook(function loginGuard (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    // CORS preflights carry no cookies, so they cannot pass a guard; a CORS
    // plugin answers them before route hooks run. One that reaches the guard
    // gets an empty answer: never the guarded handler, run anonymously.
    if (exempt.has(request.method)) {
      reply.code(204).send()
      return
    }
    // The answer depends on the login cookie: caches must key on it.
    varyOnCookie(reply)
    let user: LoginCurrentUser | Promise<LoginCurrentUser>
    try {
      user = login.resolveUser(request)
      if (!isThenable(user)) {
        judge(request, reply, done)
        return
      }
    } catch (error) {
      done(error as Error)
      return
    }
    user.then(() => guarded(done, () => judge(request, reply, done)), done)
  } as Guard, login)
  if (options.mode === 'prohibited') login.refreshRoute.prohibitedGuards.add(guard)
  return guard
}

function refuse (request: FastifyRequest, reply: FastifyReply, refusal: Refusal, handler: GuardHandler | null, done: HookHandlerDoneFunction): void {
  if (handler === null) {
    answer(request, reply, refusal)
    return
  }
  const outcome = handler(request, reply)
  if (isThenable(outcome)) {
    outcome.then((value) => guarded(done, () => finish(request, reply, refusal, value)), done)
  } else {
    finish(request, reply, refusal, outcome)
  }
}

// After an await, an error (a message function that throws, say) must still
// reach Fastify's error handler, not become an unhandled rejection.
function guarded (done: HookHandlerDoneFunction, step: () => void): void {
  try {
    step()
  } catch (error) {
    done(error as Error)
  }
}

// A handler may send the reply, return a payload, or return `reply` to say it
// will send later. If it does none of these the default answer goes out: a
// refused request never falls through to the route.
function finish (request: FastifyRequest, reply: FastifyReply, refusal: Refusal, value: unknown): void {
  if (reply.sent || value === reply) return
  if (value !== undefined) {
    reply.send(value)
    return
  }
  answer(request, reply, refusal)
}

function answer (request: FastifyRequest, reply: FastifyReply, refusal: Refusal): void {
  const message = typeof refusal.message === 'function' ? refusal.message(request) : refusal.message
  if (prefersJson(request.headers.accept)) {
    reply.code(refusal.status).send({ statusCode: refusal.status, error: STATUS_CODES[refusal.status], message })
    return
  }
  if (refusal.route !== null) {
    // 307 keeps the method, as the design asks, for page loads. A refused form
    // post gets 303 instead: 307 would post its fields (a new password, say)
    // again, to the login page.
    const status = request.method === 'GET' || request.method === 'HEAD' ? 307 : 303
    let location = refusal.nextField !== false ? withField(refusal.route, refusal.nextField, request.url) : refusal.route
    // The re-authentication page can offer the ways the route accepts.
    const methods = refusal.requirement?.methods
    if (methods !== null && methods !== undefined) location = withField(location, 'methods', methods.join(','))
    reply.redirect(location, status)
    return
  }
  reply.code(refusal.status).type('text/plain; charset=utf-8').send(message)
}

export function varyOnCookie (reply: FastifyReply): void {
  const vary = reply.getHeader('vary')
  if (vary === undefined) {
    reply.header('vary', 'Cookie')
    return
  }
  const fields = String(vary).toLowerCase().split(',').map((field) => field.trim())
  if (!fields.includes('cookie') && !fields.includes('*')) reply.header('vary', `${String(vary)}, Cookie`)
}

// Step-up (`maxAge`, `methods`): only with mode 'fresh', checked when the
// route is declared. null: a plain fresh guard.
function checkStepUp (options: GuardOptions): FreshRequirement | null {
  const { maxAge, methods } = options as { maxAge?: unknown, methods?: unknown }
  if (maxAge === undefined && methods === undefined) return null
  if (options.mode !== 'fresh') {
    throw new FST_LOGIN_INVALID_OPTION('login', `\`maxAge\` and \`methods\` go with mode 'fresh' only, not '${options.mode}'`)
  }
  if (maxAge !== undefined && (typeof maxAge !== 'number' || !Number.isFinite(maxAge) || maxAge <= 0)) {
    throw new FST_LOGIN_INVALID_OPTION('login.maxAge', 'must be a positive number of seconds since the user last proved who they are')
  }
  if (methods !== undefined && (!Array.isArray(methods) || methods.length === 0 || !methods.every((method) => typeof method === 'string' && METHOD.test(method)))) {
    throw new FST_LOGIN_INVALID_OPTION('login.methods', 'must be a non-empty array of methods such as [\'passkey\', \'password\'] (1 to 32 letters, digits, `_`, `:` or `-` each)')
  }
  return Object.freeze({ maxAge: maxAge ?? null, methods: methods === undefined ? null : Object.freeze([...methods as string[]]) })
}

// The last authentication is recent enough (exactly `maxAge` passes) and
// made with one of the methods.
function meets (account: AccountToken, requirement: FreshRequirement): boolean {
  if (requirement.maxAge !== null && nowInSeconds() - account.authenticatedAt > requirement.maxAge) return false
  return requirement.methods === null || (account.method !== null && requirement.methods.includes(account.method))
}

// Appends `<field>=<value>` to the route's query, before any fragment.
function withField (route: string, field: string, url: string): string {
  const hash = route.indexOf('#')
  const base = hash === -1 ? route : route.slice(0, hash)
  const fragment = hash === -1 ? '' : route.slice(hash)
  const separator = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?'
  return `${base}${separator}${encodeURIComponent(field)}=${encodeURIComponent(url)}${fragment}`
}
