import { createHmac } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions, type LightMyRequestResponse } from 'fastify'
import fastifyCookie, { Signer } from '@fastify/cookie'
import fastifyLogin, { UserMixin } from '../lib/index'
import { ClientCheck } from '../lib/binding/client-check'
import { clientKey, signingKey } from '../lib/cookies/signing'
import type { AccountToken } from '../lib/cookies/token'
import type { Test } from 'tap'
import type { FastifyLoginOptions, LoginStore } from '../types/index'

export const SECRET = 'test-secret-that-is-long-enough-0123456789'
export const OTHER_SECRET = 'another-secret-that-is-long-enough-987654'

export class User extends UserMixin {
  declare id: number | string
  name: string
  active: boolean

  constructor (id: number | string, name: string, active = true) {
    super()
    this.id = id
    this.name = name
    this.active = active
  }

  override get isActive (): boolean {
    return this.active
  }
}

export function userStore (): Map<string, User> {
  return new Map([
    ['1', new User(1, 'ann')],
    ['2', new User(2, 'bob')],
    ['3', new User(3, 'cid', false)]
  ])
}

export interface Built {
  app: FastifyInstance
  users: Map<string, User>
  loaderCalls: string[]
}

// A small app: /login/:id logs that user in (?remember=0|1), /logout logs
// out, /me is guarded, /who is not guarded, /guest is login-prohibited.
export async function build (
  options: FastifyLoginOptions = {},
  serverOptions: FastifyServerOptions = {}
): Promise<Built> {
  const users = userStore()
  const loaderCalls: string[] = []
  const app = Fastify(serverOptions)
  await app.register(fastifyLogin, {
    secret: SECRET,
    userLoader: (id) => {
      loaderCalls.push(id)
      return users.get(id)
    },
    ...options
  })
  app.get<{ Params: { id: string }, Querystring: { remember?: string } }>('/login/:id', (request, reply) => {
    const user = users.get(request.params.id) as User
    const remember = request.query.remember === undefined ? undefined : request.query.remember === '1'
    app.loginManager.loginUser(request, reply, user, { remember })
    return { id: user.id }
  })
  app.get('/logout', (request, reply) => {
    app.loginManager.logoutUser(request, reply)
    return 'bye'
  })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => {
    return { name: (request.currentUser as User).name, fresh: request.isFresh }
  })
  app.get('/who', (request) => {
    const user = request.currentUser
    return { authenticated: user.isAuthenticated, id: user.getId(), fresh: request.isFresh }
  })
  app.get('/guest', { preHandler: app.loginManager.loginProhibited }, () => 'welcome, guest')
  app.get('/plain', () => 'plain')
  return { app, users, loaderCalls }
}

// @fastify/cookie's parser, the independent oracle of what a Cookie header
// holds. Its module loads the parser on its first registration, which the
// plugin (reading its own cookies) no longer makes: a test file that uses it
// calls loadCookieParser() in a `before` hook.
export async function loadCookieParser (): Promise<void> {
  const app = Fastify()
  await app.register(fastifyCookie)
  await app.close()
}

export function parseCookieHeader (header: string): Record<string, string | undefined> {
  return fastifyCookie.parse(header)
}

export function cookieJar (response: LightMyRequestResponse): Record<string, string> {
  const jar: Record<string, string> = {}
  for (const cookie of response.cookies as Array<{ name: string, value: string }>) jar[cookie.name] = cookie.value
  return jar
}

export async function loginCookies (app: FastifyInstance, id = '1', query = ''): Promise<Record<string, string>> {
  const response = await app.inject(`/login/${id}${query}`)
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`)
  return cookieJar(response)
}

export function setCookieHeaders (response: LightMyRequestResponse): string[] {
  const header = response.headers['set-cookie']
  if (header === undefined) return []
  return Array.isArray(header) ? header : [header]
}

// A hand-made account token: what a login at `issuedAt` would carry, with
// the given fields changed.
export function accountToken (fields: Partial<AccountToken> & { issuedAt: number, expiresAt: number }): AccountToken {
  return {
    id: '1',
    lastSeenAt: fields.issuedAt,
    authenticatedAt: fields.issuedAt,
    rotatedAt: fields.issuedAt,
    generation: 0,
    loginId: 'A'.repeat(22),
    remember: true,
    unconfirmed: false,
    binding: 'none',
    method: null,
    client: '',
    ...fields
  }
}

// Signs a hand-made token the way the plugin does with `secret`: through the
// key it derives from it. For forging expired, tampered or odd tokens in tests.
export function signToken (payload: string, secret: string = SECRET): string {
  return new Signer(signingKey(secret)).sign(payload)
}

export function unsignToken (value: string, secret: string = SECRET): { valid: boolean, renew: boolean, value: string | null } {
  return new Signer(signingKey(secret)).unsign(value)
}

// The session-protection tag a login from this client records.
export function clientOf (userAgent: string | undefined, ip: string, secret: string = SECRET): string {
  return new ClientCheck([clientKey(secret)]).tag(userAgent, ip)
}

// A client tag worked out without lib/cookies/hmac.ts: 16 bytes of the HMAC, base64url.
export function referenceTag (key: Buffer, message: string): string {
  return createHmac('sha256', key).update(message).digest().toString('base64url', 0, 16)
}

// A request loader for `Authorization: Bearer <token>`, tokens mapping to user ids.
export function bearerLoader (users: Map<string, User>, tokens: Map<string, string>): (request: FastifyRequest) => User | null | undefined {
  return (request) => {
    const match = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')
    return match === null ? null : users.get(tokens.get(match[1]) ?? '')
  }
}

// Moves the plugin's clock (it reads Date.now) by `seconds` from now on.
// Frozen between advances, so a slow machine cannot move it by itself.
export function clock (t: Test): { advance: (seconds: number) => void } {
  const realNow = Date.now
  const start = realNow()
  let offset = 0
  Date.now = () => start + offset
  t.teardown(() => { Date.now = realNow })
  return { advance: (seconds) => { offset += seconds * 1000 } }
}

export interface Portal {
  app: FastifyInstance
  loaderCalls: string[]
}

// The app of the README's "Logins and devices": log in, a guarded page,
// logout, and the devices of the current user.
export async function portal (t: Test, store: LoginStore, options: Record<string, unknown> = {}, more?: (app: FastifyInstance) => void): Promise<Portal> {
  const users = userStore()
  const loaderCalls: string[] = []
  const app = Fastify()
  await app.register(fastifyLogin, {
    secret: SECRET,
    store,
    userLoader: (id) => { loaderCalls.push(id); return users.get(id) },
    ...options
  })
  app.get<{ Params: { id: string }, Querystring: { remember?: string } }>('/login/:id', async (request, reply) => {
    const ok = await app.loginManager.loginUser(request, reply, users.get(request.params.id) as User, { remember: request.query.remember === '1' })
    return { ok }
  })
  app.get('/logout', async (request, reply) => {
    await app.loginManager.logoutUser(request, reply)
    return 'bye'
  })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => ({ name: (request.currentUser as User).name, loginId: app.loginManager.loginInfo(request)?.loginId }))
  app.get('/devices', { onRequest: app.loginManager.loginRequired }, async (request) => await app.loginManager.listLogins(request.currentUser as User))
  app.get('/revoke-others', { onRequest: app.loginManager.loginRequired }, async (request) => ({ revoked: await app.loginManager.revokeOtherLogins(request) }))
  more?.(app)
  await app.ready()
  t.teardown(() => app.close())
  return { app, loaderCalls }
}

export async function login (app: FastifyInstance, id = '1', userAgent = 'Firefox', remember = false): Promise<Record<string, string>> {
  const response = await app.inject({ url: `/login/${id}`, query: { remember: remember ? '1' : '0' }, headers: { 'user-agent': userAgent } })
  if (response.statusCode !== 200) throw new Error(`login: ${response.statusCode} ${response.body}`)
  return cookieJar(response)
}

// A user id with a lone surrogate names nobody: UTF-8 (Redis keys, the
// cookie) would turn 'x\uD800' into 'x\uFFFD', another user's id.
export async function refusesIllFormedIds (t: Test, store: LoginStore): Promise<void> {
  const victim = new User('x\uFFFD', 'victim')
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, store, userLoader: (id) => id === victim.id ? victim : null })
  await app.ready()
  t.teardown(() => app.close())
  await app.loginManager.cookiesFor(victim)
  const [{ loginId }] = await app.loginManager.listLogins(victim)
  const invalid = { code: 'FST_LOGIN_INVALID_USER', message: 'fastify-login: invalid user: the user id must be well-formed Unicode.' }
  for (const impostor of ['x\uD800', new User('x\uD800', 'impostor')]) {
    await t.rejects(app.loginManager.listLogins(impostor), invalid, 'listLogins')
    await t.rejects(app.loginManager.revokeLogin(impostor, loginId), invalid, 'revokeLogin')
    await t.rejects(app.loginManager.revokeAllLogins(impostor), invalid, 'revokeAllLogins')
  }
  t.same((await app.loginManager.listLogins(victim)).map((record) => record.loginId), [loginId], 'the login of user x\uFFFD is alive')
}
