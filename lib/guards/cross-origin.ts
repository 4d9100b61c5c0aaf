import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { Guard, LoginConfig } from '../../types/index'
import { prefersJson } from './accept'
import type { LoginInternals } from '../internals'
import { markHook } from '../state'

// Login CSRF without tokens, in the manner of Go's http.CrossOriginProtection:
// browsers say where a request comes from (Sec-Fetch-Site, else Origin), and
// an unsafe request from another origin is refused. Unlike double-submit
// tokens it cannot be defeated by a cookie planted from a sibling subdomain
// or another port of the same host. Requests without either header do not
// come from a browser page and pass. A WebSocket upgrade is a GET, but the
// browser sends the login cookie with it from any site and the socket then
// acts as the user (cross-site WebSocket hijacking): it counts as unsafe.

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])
const MESSAGE = 'Cross-origin request refused.'

export function createCrossOriginProtection (login: LoginInternals, config: LoginConfig): Guard {
  const trusted = new Set(config.trustedOrigins)

  function allowed (request: FastifyRequest): boolean {
    if (SAFE_METHODS.has(request.method) && !isWebSocketUpgrade(request)) return true
    const origin = request.headers.origin
    if (typeof origin === 'string' && trusted.has(origin.toLowerCase())) return true
    const site = request.headers['sec-fetch-site']
    // The browser itself tells: same-origin, or typed by the user (none).
    if (typeof site === 'string') return site === 'same-origin' || site === 'none'
    if (typeof origin !== 'string') return true
    // Older browsers send only Origin: it must name this very host. The
    // scheme is left out, as a TLS-terminating proxy changes it.
    return sameHost(origin, request.host)
  }

  // A hook gets the whole request and reply; the public Guard type names only
  // their raw parts (see types/index.d.ts for why).
  return markHook(function crossOriginProtection (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (allowed(request)) {
      done()
      return
    }
    login.emit(request, 'crossOriginRefused', request)
    reply.code(403)
    if (prefersJson(request.headers.accept)) {
      reply.send({ statusCode: 403, error: 'Forbidden', message: MESSAGE })
    } else {
      reply.type('text/plain; charset=utf-8').send(MESSAGE)
    }
  } as Guard, login)
}

function isWebSocketUpgrade (request: FastifyRequest): boolean {
  const upgrade = request.headers.upgrade
  return typeof upgrade === 'string' && /(^|[\s,])websocket($|[\s,])/i.test(upgrade)
}

// Both sides normalised by the URL parser, with the Origin's scheme, so that
// `http://host:80` and `Host: host` agree. An opaque origin ('null', data:)
// has no host, and matches none.
function sameHost (origin: string, host: string): boolean {
  try {
    const from = new URL(origin)
    return from.host !== '' && from.host === new URL(`${from.protocol}//${host}`).host
  } catch {
    return false
  }
}
