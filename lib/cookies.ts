import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CookieSerializeOptions } from '@fastify/cookie'
import type { LoginConfig } from '../types/index'

// Reads and writes the login cookies. Reading never relies on a global
// cookie-parsing hook: the header is parsed here, once, only for requests
// that ask who is logged in.

export type CookieJar = Record<string, string | undefined>

export function parseRequestCookies (request: FastifyRequest): CookieJar {
  // An app that registered @fastify/cookie with its parsing hook already did the work.
  if (request.cookies !== null && request.cookies !== undefined) return request.cookies
  const header = request.headers.cookie
  return typeof header === 'string' && header.length > 0 ? request.server.parseCookie(header) : {}
}

export function cookieOptions (config: LoginConfig, request: FastifyRequest, maxAge: number | null): CookieSerializeOptions {
  const options: CookieSerializeOptions = {
    path: config.cookiePath,
    domain: config.cookieDomain,
    httpOnly: config.cookieHttpOnly,
    sameSite: config.cookieSameSite,
    // 'auto' follows the request's protocol, which honours Fastify's trustProxy.
    secure: config.cookieSecure === 'auto' ? request.protocol === 'https' : config.cookieSecure,
    // Our values are signed already; never let an app's parseOptions sign them twice.
    signed: false
  }
  if (maxAge !== null) {
    options.maxAge = maxAge
    options.expires = new Date(Date.now() + maxAge * 1000)
  }
  return options
}

export function setLoginCookie (reply: FastifyReply, config: LoginConfig, name: string, value: string, maxAge: number | null): void {
  reply.setCookie(name, value, cookieOptions(config, reply.request, maxAge))
}

export function clearLoginCookie (reply: FastifyReply, config: LoginConfig, name: string): void {
  reply.clearCookie(name, cookieOptions(config, reply.request, null))
}
