import { randomBytes } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { LoginConfig } from '../../types/index'
import { cookieValues } from '../cookies/header'
import type { LoginCookies } from '../cookies/login-cookies'
import type { Signer } from '../cookies/signing'
import type { AccountToken } from '../cookies/token'
import type { LoginRecords } from '../logins/records'
import { andThen, type LoginState, type MaybePromise } from '../state'
import { encodeBound, VerifiedBoundCookies, type BoundToken } from './bound-cookie'
import { Challenges } from './challenges'
import { sfString } from './structured-fields'

// Device binding (DBSC) as the rest of the plugin sees it: a login made over
// https is offered binding; a bound login is accepted only beside a valid
// bound cookie; the bound cookie is written and expired with the others. The
// protocol's two endpoints are dbsc-routes.ts.

type Settings = Exclude<LoginConfig['deviceBinding'], false>

// Copies of a bound cookie a request may send (a page can plant its own
// beside it): the first few are tried, any valid one proves the key.
const MAX_BOUND_COOKIES = 4

export class DeviceBinding {
  readonly settings: Settings
  readonly challenges: Challenges
  readonly registerPath: string
  readonly refreshPath: string
  #config: LoginConfig
  #signer: Signer
  #cookies: LoginCookies
  #records: LoginRecords
  #bound = new VerifiedBoundCookies(5000)

  constructor (config: LoginConfig, signer: Signer, cookies: LoginCookies, records: LoginRecords) {
    this.settings = config.deviceBinding as Settings
    this.#config = config
    this.#signer = signer
    this.#cookies = cookies
    this.#records = records
    this.challenges = new Challenges(signer)
    this.registerPath = `${this.settings.path}/register`
    this.refreshPath = `${this.settings.path}/refresh`
  }

  // Only over https (as `request.protocol` says, so behind a proxy that
  // Fastify trusts too): browsers bind nothing else.
  offers (request: FastifyRequest): boolean {
    return request.protocol === 'https'
  }

  // Asks the browser to register a key for the login, in the response that
  // sets its cookies (flagged pending). ES256 first, which Chrome picks.
  offer (reply: FastifyReply, loginId: string): void {
    const challenge = this.challenges.issue('registration', loginId, Date.now())
    reply.header('secure-session-registration', `(ES256 RS256);path=${sfString(this.registerPath)};challenge=${sfString(challenge)}`)
  }

  // The request's valid bound cookie naming this login (which its account
  // cookie named: the request has a Cookie header), or null.
  proof (request: FastifyRequest, loginId: string, now: number): BoundToken | null {
    for (const raw of cookieValues(request.headers.cookie as string, this.#config.cookieName.bound).slice(0, MAX_BOUND_COOKIES)) {
      const token = this.#bound.read(this.#signer, raw, now)?.token
      if (token?.loginId === loginId) return token
    }
    return null
  }

  // Whether the request may end this login (logout, or a login over it).
  // A bound login only from its browser: whoever holds a copy of its cookie
  // must not be able to log its owner out. A login offered binding may be
  // bound by now, even a second after the offer: its record says.
  mayEnd (request: FastifyRequest, token: AccountToken, now: number): MaybePromise<boolean> {
    if (token.binding === 'none' || this.proof(request, token.loginId, now) !== null) return true
    if (token.binding === 'bound') return false
    return andThen(this.#records.own(token.id, token.loginId), (record) => record === null || record.deviceKey === null)
  }

  // A new bound cookie, for `credentialDuration` (never past the login's end).
  writeProof (reply: FastifyReply, state: LoginState, loginId: string, loginExpiresAt: number, now: number): void {
    this.#write(reply, state, { loginId, expiresAt: Math.min(now + this.settings.credentialDuration, loginExpiresAt) }, now)
  }

  // confirmLogin: the new login of the same browser, proven until the
  // request's own bound cookie would have expired, and not a second longer.
  carryProof (request: FastifyRequest, reply: FastifyReply, state: LoginState, from: string, to: string, now: number): void {
    const proof = this.proof(request, from, now)
    if (proof !== null) this.#write(reply, state, { loginId: to, expiresAt: proof.expiresAt }, now)
  }

  // With the other login cookies: a logout leaves no bound cookie behind.
  clear (request: FastifyRequest, reply: FastifyReply, state: LoginState): void {
    const header = request.headers.cookie
    this.#cookies.expireBound(reply, state, typeof header === 'string' && cookieValues(header, this.#config.cookieName.bound).length > 0)
  }

  // What the browser keeps for the session (the registration's and each
  // refresh's answer): where to refresh, which URLs need the bound cookie
  // (the cookie path of this origin), and the cookie, with its attributes.
  sessionConfig (session: string): object {
    const path = this.#config.cookiePath
    return {
      session_identifier: session,
      refresh_url: this.refreshPath,
      scope: {
        include_site: false,
        // Rules are read last to first: everything outside the cookie path is out.
        ...(path === '/' ? {} : { scope_specification: [{ type: 'exclude', domain: '*', path: '/' }, { type: 'include', domain: '*', path }] })
      },
      credentials: [{ type: 'cookie', name: this.#config.cookieName.bound, attributes: this.#cookies.boundAttributes() }]
    }
  }

  #write (reply: FastifyReply, state: LoginState, token: BoundToken, now: number): void {
    this.#cookies.writeBound(reply, state, this.#signer.sign(encodeBound(token)), Math.max(0, token.expiresAt - now))
  }
}

// The id of a login's bound session: the browser names the session by it
// on refresh. Not a secret, only unique.
export function newSessionId (): string {
  return randomBytes(16).toString('base64url')
}
