import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { LoginEvents } from '../../types/index'
import { nowInSeconds } from '../clock'
import type { AccountToken } from '../cookies/token'
import { FST_LOGIN_BINDING_CONFLICT, FST_LOGIN_BINDING_MALFORMED, FST_LOGIN_BINDING_REFUSED, FST_LOGIN_INVALID_OPTION } from '../errors'
import type { LoginRecords } from '../logins/records'
import { loginState, type LoginState, type MaybePromise } from '../state'
import { EXPIRED } from './challenges'
import { DeviceKeys, readProof, verifyProof } from './dbsc-proof'
import { newSessionId, type DeviceBinding } from './device-binding'
import { readItem, sfString } from './structured-fields'

// The two endpoints of Device Bound Session Credentials (w3c/webappsec-dbsc,
// as Chrome 156 speaks it). Registration: the browser posts a token signed
// with a new key, whose challenge names the login it was offered to; the
// request must carry that login's account cookie, and the login is bound
// once. Refresh: asked without a proof, the endpoint answers 403 with a
// challenge; with one, it reads the record (the one store read), checks the
// signature with the record's key (the one signature check), uses the
// challenge up (one conditional write) and sets a new bound cookie.
//
// Every refusal is a 4xx that sets no cookie. Chrome ends its session on any
// 4xx but 403, which asks it to sign the challenge it carries: an expired or
// used challenge gets a new one, since the browser can do nothing wrong there.

// What the endpoints need of the per-request engine (resolution.ts).
export interface RequestLogins {
  readLogin (request: FastifyRequest, state: LoginState): MaybePromise<AccountToken | null>
  readToken (request: FastifyRequest, state: LoginState): AccountToken | null
  writeAccount (reply: FastifyReply, state: LoginState, account: AccountToken): void
  emit<K extends keyof LoginEvents> (request: FastifyRequest, event: K, ...args: LoginEvents[K]): void
}

const SESSION_ID = /^[A-Za-z0-9_-]+$/
const MAX_SESSION_ID_LENGTH = 64

export class DeviceBindingEndpoints {
  readonly binding: DeviceBinding
  #logins: RequestLogins
  #records: LoginRecords
  #keys = new DeviceKeys()

  constructor (binding: DeviceBinding, logins: RequestLogins, records: LoginRecords) {
    this.binding = binding
    this.#logins = logins
    this.#records = records
  }

  readonly register = async (request: FastifyRequest, reply: FastifyReply): Promise<object> => {
    overHttps(request)
    const proof = readProof(request.headers['secure-session-response'], true)
    const challenge = this.binding.challenges.read('registration', proof.challenge, Date.now())
    if (challenge === null) throw new FST_LOGIN_BINDING_REFUSED('the token does not sign a registration challenge of this app')
    if (challenge === EXPIRED) throw new FST_LOGIN_BINDING_REFUSED('the registration challenge expired')
    const state = loginState(request)
    const token = await this.#logins.readLogin(request, state)
    if (token === null || token.loginId !== challenge.loginId) {
      throw new FST_LOGIN_BINDING_REFUSED('the request does not carry the account cookie of the login the challenge was offered to')
    }
    if (token.binding !== 'pending') throw new FST_LOGIN_BINDING_CONFLICT()
    const key = this.#keys.key(proof.jwk as string)
    if (!verifyProof(proof, key)) throw new FST_LOGIN_BINDING_REFUSED('the signature does not verify with the key')
    const bound = await this.#records.bind(token.loginId, token.id, proof.jwk as string, newSessionId())
    const record = await this.#records.own(token.id, token.loginId)
    if (record === null) throw new FST_LOGIN_BINDING_REFUSED('the login has ended')
    // Bound already: by this key, it is the browser trying again after an
    // answer it never got (its cookies still say pending), and it gets the
    // session again, while the challenge lives (30 s). By another key, it is
    // another browser.
    if (!bound && (record.deviceKey === null || !this.#keys.key(record.deviceKey).equals(key))) throw new FST_LOGIN_BINDING_CONFLICT()
    // The account cookie says so from now on; the bound cookie proves it.
    this.#logins.writeAccount(reply, state, { ...token, ...state.verdict?.next, binding: 'bound' })
    if (bound) {
      this.binding.writeProof(reply, state, token.loginId, record.expiresAt, nowInSeconds())
      this.#logins.emit(request, 'loginBound', request, record)
    }
    // Tried again, no bound cookie: a registration token proves nothing about
    // who sends it (a copy of the request from a log works as well), so the
    // browser refreshes at once, which signs a new challenge with the key.
    return this.binding.sessionConfig(record.deviceSession as string)
  }

  readonly refresh = async (request: FastifyRequest, reply: FastifyReply): Promise<object> => {
    overHttps(request)
    const session = readItem(request.headers['sec-secure-session-id'], SESSION_ID, MAX_SESSION_ID_LENGTH)
    if (session === null) throw new FST_LOGIN_BINDING_MALFORMED('the `Sec-Secure-Session-Id` header is missing or not a session id')
    const state = loginState(request)
    const token = this.#logins.readToken(request, state)
    if (token === null || this.#records.revocations.has(token.loginId)) {
      throw new FST_LOGIN_BINDING_REFUSED('the request carries no account cookie of a live login')
    }
    const response = request.headers['secure-session-response']
    if (response === undefined) return this.#challenge(reply, token, session, 'sign the challenge in `Secure-Session-Challenge`')
    const proof = readProof(response, false)
    const challenge = this.binding.challenges.read('refresh', proof.challenge, Date.now())
    if (challenge === null) throw new FST_LOGIN_BINDING_REFUSED('the token does not sign a refresh challenge of this app')
    if (challenge === EXPIRED) return this.#challenge(reply, token, session, 'the challenge expired: sign this one')
    if (challenge.loginId !== token.loginId) throw new FST_LOGIN_BINDING_REFUSED('the challenge was issued to another login')
    const record = await this.#records.own(token.id, token.loginId)
    if (record === null || record.deviceKey === null || record.deviceSession !== session) {
      throw new FST_LOGIN_BINDING_REFUSED('the account cookie names no login bound in this session')
    }
    if (!verifyProof(proof, this.#keys.key(record.deviceKey))) throw new FST_LOGIN_BINDING_REFUSED('the signature does not verify with the login\'s key')
    if (!await this.#records.useChallenge(token.loginId, token.id, challenge.issuedAt)) {
      return this.#challenge(reply, token, session, 'the challenge was used already: sign this one')
    }
    this.binding.writeProof(reply, state, token.loginId, record.expiresAt, nowInSeconds())
    return this.binding.sessionConfig(session)
  }

  // 403 with a challenge is how the protocol asks for a proof: the browser
  // signs it and posts again. Not an error (nothing is logged).
  #challenge (reply: FastifyReply, token: AccountToken, session: string, message: string): FastifyReply {
    const challenge = this.binding.challenges.issue('refresh', token.loginId, Date.now())
    return reply.code(403)
      .header('cache-control', 'no-store')
      .header('secure-session-challenge', `${sfString(challenge)};id=${sfString(session)}`)
      .send({ statusCode: 403, code: 'FST_LOGIN_BINDING_CHALLENGE', error: 'Forbidden', message: `fastify-login: device binding: ${message}.` })
  }
}

// Browsers bind only over https, and send the (Secure) login cookies only there.
function overHttps (request: FastifyRequest): void {
  if (request.protocol !== 'https') throw new FST_LOGIN_BINDING_MALFORMED('it runs over https only (`request.protocol`, which honours `trustProxy`)')
}

// The routes go where the plugin was registered: its scope's prefix is part
// of `deviceBinding.path`, which names the URL the browser is sent to. The
// protocol's requests have no body.
export function addDeviceBindingRoutes (fastify: FastifyInstance, endpoints: DeviceBindingEndpoints): void {
  const prefix = fastify.prefix
  const path = endpoints.binding.settings.path
  if (prefix !== '' && !path.startsWith(`${prefix}/`)) {
    throw new FST_LOGIN_INVALID_OPTION('deviceBinding.path', `must be under '${prefix}', the prefix of the scope fastify-login is registered in, since its routes are added there`)
  }
  const options = { bodyLimit: 1 }
  fastify.post(endpoints.binding.registerPath.slice(prefix.length), options, endpoints.register)
  fastify.post(endpoints.binding.refreshPath.slice(prefix.length), options, endpoints.refresh)
}
