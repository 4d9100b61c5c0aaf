import type { FastifyBaseLogger, FastifyRequest, RouteOptions } from 'fastify'

// `refreshRoute` is where freshLoginRequired sends a logged-in user to type
// the password again. A page there that refuses logged-in users (a log-in
// page, under loginProhibited) sends them away again, for ever. Said once per
// registration: when such a route is declared, else the first time the guard
// refuses someone there (a scope's hook cannot be seen on its routes).

const BASE = 'http://relative.invalid'
const ROUTE_HOOKS = ['onRequest', 'preParsing', 'preValidation', 'preHandler'] as const

export class RefreshRouteCheck {
  // The loginProhibited guards of this registration, the named one and those
  // of guard({ mode: 'prohibited' }).
  readonly prohibitedGuards = new WeakSet<object>()
  readonly path: string | null
  #warned = false

  constructor (refreshRoute: string | null) {
    this.path = pathOf(refreshRoute)
  }

  // At onRoute, after the route's own `config.login` got its guard.
  declared (route: RouteOptions, log: FastifyBaseLogger): void {
    if (this.#warned || route.url !== this.path) return
    const hooks = ROUTE_HOOKS.flatMap((name) => [route[name] ?? []].flat())
    if (hooks.some((hook) => this.prohibitedGuards.has(hook))) this.#warn(log)
  }

  // A loginProhibited guard refused this request.
  refused (request: FastifyRequest): void {
    if (!this.#warned && request.routeOptions.url === this.path) this.#warn(request.log)
  }

  #warn (log: FastifyBaseLogger): void {
    this.#warned = true
    log.warn(`fastify-login: \`refreshRoute\` (${this.path as string}) is guarded by \`loginProhibited\`, which refuses logged-in users: freshLoginRequired sends a login that is not fresh there, and it is sent away again, never able to re-authenticate. Guard that page with \`loginRequired\` instead (it is for users who are logged in), or point \`refreshRoute\` at another page.`)
  }
}

// Only a path of this app can name one of its routes.
function pathOf (route: string | null): string | null {
  if (route === null) return null
  const url = new URL(route, BASE)
  return url.origin === BASE ? url.pathname : null
}
