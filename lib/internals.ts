import type { FastifyReply, FastifyRequest } from 'fastify'
import type { LoginCurrentUser, GuardHandler, LoginEvents } from '../types/index'
import type { DeviceBindingEndpoints } from './binding/dbsc-routes'
import type { AccountToken } from './cookies/token'
import type { RefreshRouteCheck } from './guards/refresh-route'
import type { OpenApiDocs } from './openapi'

// What the guards and the request decorators need from the manager, and apps
// must not call: kept under a Symbol, like Fastify's own internals.
export const kInternals = Symbol('fastify-login.internals')

export interface LoginInternals {
  resolveUser (request: FastifyRequest): LoginCurrentUser | Promise<LoginCurrentUser>
  currentUser (request: FastifyRequest): LoginCurrentUser
  isAuthenticated (request: FastifyRequest): boolean
  isFresh (request: FastifyRequest): boolean
  // The verified login of the request (its account cookie), once resolved; null for none.
  account (request: FastifyRequest): AccountToken | null
  refreshCookies (request: FastifyRequest, reply: FastifyReply): void
  carryLastUse (request: FastifyRequest, reply: FastifyReply): void
  emit<K extends keyof LoginEvents> (request: FastifyRequest, event: K, ...args: LoginEvents[K]): void
  handlers: { unauthorized: GuardHandler | null, authorized: GuardHandler | null, needsRefresh: GuardHandler | null }
  // Device binding's endpoints, when the option is on.
  deviceBinding: DeviceBindingEndpoints | null
  refreshRoute: RefreshRouteCheck
  openapi: OpenApiDocs
  hasLoader (): boolean
  ready (): Promise<void>
  close (): Promise<void>
}
