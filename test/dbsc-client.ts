import { generateKeyPairSync, sign, constants, type KeyObject } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { cookieJar } from './helpers'

// A browser that speaks Device Bound Session Credentials the way Chrome 156
// does (bare headers; the spec's quoted form on request), with a key made
// here: for driving the protocol through `app.inject`. The requests say they
// came over https through a proxy (`x-forwarded-proto`), so the app needs
// `trustProxy`.

export type Algorithm = 'ES256' | 'RS256'

export const HTTPS = { 'x-forwarded-proto': 'https' }

export interface Registration {
  path: string
  challenge: string
  algorithms: string[]
}

export class DbscBrowser {
  jar: Record<string, string>
  readonly alg: Algorithm
  jwk: Record<string, string>
  #key: KeyObject
  // How the headers are written: bare (Chrome 156) or quoted (the spec).
  quoted: boolean
  session: string | null = null
  refreshPath: string | null = null

  constructor ({ alg = 'ES256', jar = {}, quoted = false }: { alg?: Algorithm, jar?: Record<string, string>, quoted?: boolean } = {}) {
    this.alg = alg
    this.jar = { ...jar }
    this.quoted = quoted
    const pair = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 })
    this.#key = pair.privateKey
    this.jwk = pair.publicKey.export({ format: 'jwk' }) as Record<string, string>
  }

  // The same key and cookies in another tab, or the cookies alone elsewhere.
  copy (options: { keepKey?: boolean } = {}): DbscBrowser {
    const other = new DbscBrowser({ alg: this.alg, jar: this.jar, quoted: this.quoted })
    if (options.keepKey === true) {
      other.#key = this.#key
      other.jwk = this.jwk
    }
    other.session = this.session
    other.refreshPath = this.refreshPath
    return other
  }

  async get (app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    return this.#take(await app.inject({ url, headers: { ...HTTPS, ...headers }, cookies: this.jar }))
  }

  async post (app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    return this.#take(await app.inject({ method: 'POST', url, headers: { ...HTTPS, ...headers }, cookies: this.jar }))
  }

  // A JSON web token as Chrome signs it: ES256 as r || s, RS256 PKCS#1 v1.5.
  token (challenge: string, { jwk = false, header = {}, payload = {} }: { jwk?: boolean, header?: object, payload?: object } = {}): string {
    const head = Buffer.from(JSON.stringify({ alg: this.alg, ...(jwk ? { jwk: this.jwk } : {}), typ: 'dbsc+jwt', ...header })).toString('base64url')
    const body = Buffer.from(JSON.stringify({ jti: challenge, ...payload })).toString('base64url')
    const input = Buffer.from(`${head}.${body}`)
    const signature = this.alg === 'ES256'
      ? sign('sha256', input, { key: this.#key, dsaEncoding: 'ieee-p1363' })
      : sign('sha256', input, { key: this.#key, padding: constants.RSA_PKCS1_PADDING })
    return `${head}.${body}.${signature.toString('base64url')}`
  }

  item (value: string): string {
    return this.quoted ? `"${value}"` : value
  }

  // Registers as Chrome does after a login response that offered it.
  async register (app: FastifyInstance, offer: Registration): Promise<LightMyRequestResponse> {
    const response = await this.post(app, offer.path, { 'secure-session-response': this.item(this.token(offer.challenge, { jwk: true })) })
    if (response.statusCode === 200) {
      const config = response.json()
      this.session = config.session_identifier
      this.refreshPath = config.refresh_url
    }
    return response
  }

  // A refresh: the proof-less request, its 403 and challenge, the signed one.
  async refresh (app: FastifyInstance, verifier: FastifyInstance = app): Promise<LightMyRequestResponse> {
    const asked = await this.post(app, this.refreshPath as string, { 'sec-secure-session-id': this.item(this.session as string) })
    if (asked.statusCode !== 403) return asked
    const challenge = challengeOf(asked)
    return await this.post(verifier, this.refreshPath as string, {
      'sec-secure-session-id': this.item(this.session as string),
      'secure-session-response': this.item(this.token(challenge))
    })
  }

  #take (response: LightMyRequestResponse): LightMyRequestResponse {
    for (const cookie of response.cookies as Array<{ name: string, value: string, maxAge?: number }>) {
      if (cookie.maxAge === 0) delete this.jar[cookie.name]
      else this.jar[cookie.name] = cookie.value
    }
    return response
  }
}

// What a login response offers: Secure-Session-Registration read as Chrome does.
export function offerOf (response: LightMyRequestResponse): Registration | null {
  const header = response.headers['secure-session-registration']
  if (typeof header !== 'string') return null
  const match = /^\(([A-Z0-9 ]+)\);path="([^"]+)";challenge="([^"]+)"$/.exec(header)
  if (match === null) throw new Error(`not a registration header: ${header}`)
  return { algorithms: match[1].split(' '), path: match[2], challenge: match[3] }
}

// The challenge of a 403's Secure-Session-Challenge, which must be quoted and name the session.
export function challengeOf (response: LightMyRequestResponse): string {
  const header = String(response.headers['secure-session-challenge'])
  const match = /^"([^"\\]+)";id="([^"\\]+)"$/.exec(header)
  if (match === null) throw new Error(`not a challenge header: ${header}`)
  return match[1]
}

export { cookieJar }
