import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { CurrentUser, Guard, GuardHandler, Message } from '../types/index'
import type { LoginManager } from './manager'
import { isThenable } from './state'

// The guards are callback-style hooks: with a synchronous loader a guarded
// request passes without allocating a promise. Each denial goes to the app's
// handler when it set one, else to a redirect, else to a plain status.

interface Denial {
  handler: () => GuardHandler | null
  route: string | null
  status: number
  message: Message
}

export function createGuards (manager: LoginManager): { loginRequired: Guard, loginProhibited: Guard } {
  const { config } = manager
  const unauthorized: Denial = {
    handler: () => manager.unauthorizedCallback,
    route: config.loginRequiredRoute,
    status: 401,
    message: config.loginRequiredMessage
  }
  const authorized: Denial = {
    handler: () => manager.authorizedCallback,
    route: config.loginProhibitedRoute,
    status: 403,
    message: config.loginProhibitedMessage
  }

  function guard (pass: (request: FastifyRequest) => boolean, denial: Denial): Guard {
    function decide (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
      if (pass(request)) {
        manager.renewCookies(request, reply)
        done()
      } else {
        deny(request, reply, denial, done)
      }
    }
    return function loginGuard (request, reply, done) {
      let user: CurrentUser | Promise<CurrentUser>
      try {
        user = manager.resolveUser(request)
      } catch (error) {
        done(error as Error)
        return
      }
      if (isThenable(user)) {
        user.then(() => decide(request, reply, done), done)
      } else {
        decide(request, reply, done)
      }
    }
  }

  return {
    loginRequired: guard((request) => manager.isAuthenticated(request), unauthorized),
    loginProhibited: guard((request) => !manager.isAuthenticated(request), authorized)
  }
}

function deny (request: FastifyRequest, reply: FastifyReply, denial: Denial, done: HookHandlerDoneFunction): void {
  const handler = denial.handler()
  if (handler === null) {
    answer(request, reply, denial)
    return
  }
  let outcome: unknown
  try {
    outcome = handler(request, reply)
  } catch (error) {
    done(error as Error)
    return
  }
  if (isThenable(outcome)) {
    outcome.then((value) => finish(request, reply, denial, value), done)
  } else {
    finish(request, reply, denial, outcome)
  }
}

// A handler may send the reply, return a payload, or return `reply` to say it
// will send later. If it does none of these the default answer goes out: a
// refused request never falls through to the route.
function finish (request: FastifyRequest, reply: FastifyReply, denial: Denial, value: unknown): void {
  if (reply.sent || value === reply) return
  if (value !== undefined) {
    reply.send(value)
    return
  }
  answer(request, reply, denial)
}

function answer (request: FastifyRequest, reply: FastifyReply, denial: Denial): void {
  if (denial.route !== null) {
    reply.redirect(denial.route, 307)
    return
  }
  const message = typeof denial.message === 'function' ? denial.message(request) : denial.message
  reply.code(denial.status).type('text/plain; charset=utf-8').send(message)
}
