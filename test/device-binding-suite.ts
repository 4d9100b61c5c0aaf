import type { Test } from 'tap'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import fastifyLogin from '../lib/index'
import type { LoginRecord, LoginStore } from '../types/index'
import { challengeOf, DbscBrowser, HTTPS, offerOf, type Algorithm } from './dbsc-client'
import { clock, SECRET, setCookieHeaders, User, userStore } from './helpers'

// Device binding's protocol through `app.inject`, the same for every store:
// test/device-binding.test.ts runs it with memoryStore, and
// test/device-binding-redis.test.ts with redisStore, where one instance
// issues what another checks (challenges are signed, not stored).

export interface Instances {
  // Issues the login and the challenges.
  issuer: FastifyInstance
  // Checks the registration and the proofs.
  verifier: FastifyInstance
  bound: LoginRecord[]
  missing: string[]
}

export type MakeStore = (t: Test) => Promise<LoginStore> | LoginStore

// A small app: /login/:id logs in, /me is guarded (its loginInfo), /who is
// not, /logout and /confirm do what they say, /devices lists the user's logins.
export async function bindingApp (t: Test, store: LoginStore, options: Record<string, unknown> = {}, events?: { bound: LoginRecord[], missing: string[] }): Promise<FastifyInstance> {
  const users = userStore()
  const app = Fastify({ trustProxy: true })
  await app.register(fastifyLogin, {
    secret: SECRET,
    store,
    userLoader: (id) => users.get(id),
    deviceBinding: true,
    ...options
  })
  if (events !== undefined) {
    app.loginManager.on('loginBound', (_request, record) => { events.bound.push(record) })
    app.loginManager.on('boundProofMissing', (request) => { events.missing.push(request.url) })
  }
  app.get<{ Params: { id: string } }>('/login/:id', async (request, reply) => {
    await app.loginManager.loginUser(request, reply, users.get(request.params.id) as User)
    return 'in'
  })
  app.get('/me', { config: { login: 'required' } }, (request) => app.loginManager.loginInfo(request))
  app.get('/who', async (request) => ({ id: (await request.loadUser()).getId() }))
  app.get('/logout', async (request, reply) => {
    await app.loginManager.logoutUser(request, reply)
    return 'out'
  })
  app.get('/confirm', { config: { login: 'required' } }, async (request, reply) => {
    await app.loginManager.confirmLogin(request, reply)
    return app.loginManager.loginInfo(request)
  })
  app.get('/devices', async () => await app.loginManager.listLogins('1'))
  await app.ready()
  t.teardown(() => app.close())
  return app
}

// A browser logged in as user 1 and bound, the instances, and what the
// login's response offered.
export async function boundBrowser (instances: Instances, { alg = 'ES256', quoted = false }: { alg?: Algorithm, quoted?: boolean } = {}): Promise<{ browser: DbscBrowser, registration: LightMyRequestResponse }> {
  const browser = new DbscBrowser({ alg, quoted })
  const offer = offerOf(await browser.get(instances.issuer, '/login/1'))
  if (offer === null) throw new Error('no offer')
  const registration = await browser.register(instances.verifier, offer)
  if (registration.statusCode !== 200) throw new Error(`registration: ${registration.statusCode} ${registration.body}`)
  return { browser, registration }
}

function cookieNames (response: LightMyRequestResponse): string[] {
  return setCookieHeaders(response).map((line) => line.slice(0, line.indexOf('=')))
}

// Refused: a 4xx that is not a challenge, sets no cookie, and names the
// problem in a JSON body (no token, no key).
function refused (t: Test, response: LightMyRequestResponse, status: number, message: RegExp, what: string): void {
  t.equal(response.statusCode, status, `${what}: ${status}`)
  t.same(cookieNames(response), [], `${what}: no cookie`)
  t.equal(response.headers['secure-session-challenge'], undefined, `${what}: no challenge`)
  t.match(response.json(), { statusCode: status, message }, what)
  t.notMatch(response.body, /eyJ/, `${what}: the answer holds no token`)
}

export function protocolSuite (t: Test, name: string, instances: (t: Test) => Promise<Instances>): void {
  t.test(`${name}: a login over https is offered binding (ES256, then RS256; never none); over http it is not`, async (t) => {
    const { issuer } = await instances(t)
    const browser = new DbscBrowser()
    const offer = offerOf(await browser.get(issuer, '/login/1'))
    t.same(offer?.algorithms, ['ES256', 'RS256'])
    t.equal(offer?.path, '/device-binding/register')
    t.match(browser.jar.account, /\.[rs]p\.\./, 'the account cookie is flagged pending')
    const plain = await issuer.inject('/login/1')
    t.equal(plain.headers['secure-session-registration'], undefined, 'no offer over http')
    t.notMatch(setCookieHeaders(plain)[0], /\.[rs]p\.\./, 'nor the flag')
  })

  for (const [alg, quoted] of [['ES256', false], ['RS256', false], ['ES256', true], ['RS256', true]] as const) {
    t.test(`${name}: registration with ${alg}, headers ${quoted ? 'quoted (the spec)' : 'bare (Chrome 156)'}, then refreshes`, async (t) => {
      const setup = await instances(t)
      const { browser, registration } = await boundBrowser(setup, { alg, quoted })
      const config = registration.json()
      t.match(config, {
        session_identifier: /^[A-Za-z0-9_-]{22}$/,
        refresh_url: '/device-binding/refresh',
        scope: { include_site: false },
        credentials: [{ type: 'cookie', name: 'bound', attributes: 'Path=/; HttpOnly; Secure; SameSite=Lax' }]
      })
      const lines = setCookieHeaders(registration)
      t.match(lines.find((line) => line.startsWith('account=')), /\.[rs]b\.\..*; Secure/, 'the account cookie, flagged bound')
      t.match(lines.find((line) => line.startsWith('bound=')), /^bound=b1\.[A-Za-z0-9_-]{22}\.[0-9a-z]+\.[^;]+; Max-Age=600; Path=\/; Expires=[^;]+; HttpOnly; Secure; SameSite=Lax$/,
        'the bound cookie: Max-Age credentialDuration, the attributes the config names')
      t.equal(registration.headers['cache-control'], 'no-store')
      t.equal(setup.bound.length, 1, 'loginBound')
      const records = (await setup.verifier.inject('/devices')).json() as LoginRecord[]
      t.same(records.map((record) => record.bound), [true], 'listLogins: bound')
      t.equal(JSON.parse(records[0].deviceKey as string).kty, alg === 'ES256' ? 'EC' : 'RSA', 'the record keeps the public key')
      t.same(setup.bound[0].loginId, records[0].loginId)
      t.match((await browser.get(setup.issuer, '/me')).json(), { bound: true, source: 'cookie' }, 'loginInfo().bound')

      for (let round = 1; round <= 2; round++) {
        const before = browser.jar.bound
        const asked = await browser.post(setup.issuer, '/device-binding/refresh', { 'sec-secure-session-id': browser.item(browser.session as string) })
        t.equal(asked.statusCode, 403, `round ${round}: no proof: 403`)
        t.match(asked.headers['secure-session-challenge'], new RegExp(`^"c1\\.[^"]+";id="${browser.session as string}"$`), 'a quoted challenge, for this session')
        t.same(cookieNames(asked), [], 'and no cookie')
        t.equal(asked.json().code, 'FST_LOGIN_BINDING_CHALLENGE')
        const proven = await browser.post(setup.verifier, '/device-binding/refresh', {
          'sec-secure-session-id': browser.item(browser.session as string),
          'secure-session-response': browser.item(browser.token(challengeOf(asked)))
        })
        t.equal(proven.statusCode, 200, `round ${round}: the proof, checked by the other instance`)
        t.same(cookieNames(proven), ['bound'], 'a new bound cookie, and only that')
        t.equal(proven.json().session_identifier, browser.session, 'the same session')
        t.ok(browser.jar.bound !== undefined && before !== undefined)
        t.equal((await browser.get(setup.verifier, '/me')).statusCode, 200)
      }
    })
  }

  t.test(`${name}: what registration refuses, with a clear 4xx and no cookie`, async (t) => {
    const setup = await instances(t)
    const { issuer, verifier } = setup
    const time = clock(t)
    const fresh = async (alg: Algorithm = 'ES256'): Promise<{ browser: DbscBrowser, challenge: string }> => {
      const browser = new DbscBrowser({ alg })
      const offer = offerOf(await browser.get(issuer, '/login/1'))
      return { browser, challenge: offer?.challenge as string }
    }
    const register = async (browser: DbscBrowser, headers: Record<string, string>): Promise<LightMyRequestResponse> => await browser.post(verifier, '/device-binding/register', headers)
    const tokenOf = (browser: DbscBrowser, challenge: string, options = {}): string => browser.token(challenge, { jwk: true, ...options })

    let { browser, challenge } = await fresh()
    refused(t, await register(browser, {}), 400, /`Secure-Session-Response` header is missing/, 'no proof')
    for (const [token, what] of [
      ['not a token', 'not a token'],
      ['a.b', 'two parts'],
      ['a.b.c.d', 'four parts'],
      [`"${tokenOf(browser, challenge)}`, 'an unclosed quote'],
      ['x'.repeat(5000), 'a huge header'],
      [`${tokenOf(browser, challenge)}\u00e9`, 'a character that is no base64url']
    ]) {
      refused(t, await register(browser, { 'secure-session-response': token }), 400, /is not a JSON web token/, what)
    }
    const part = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
    const signature = tokenOf(browser, challenge).split('.')[2]
    for (const [token, message, what] of [
      [`${part('{')}.${part({ jti: challenge })}.${signature}`, /header is not a JSON object/, 'a header that is no JSON'],
      [`${part([1])}.${part({ jti: challenge })}.${signature}`, /header is not a JSON object/, 'a header that is an array'],
      [`${part({ alg: 'ES256', typ: 'dbsc+jwt' })}.${part('null')}.${signature}`, /payload is not a JSON object/, 'a payload that is null'],
      [`${part({ alg: 'ES256', typ: 'dbsc+jwt' })}.A.${signature}`, /payload is not base64url/, 'a payload of one character'],
      [`${part({ alg: 'ES256', typ: 'dbsc+jwt' })}.${part({ jti: challenge })}.A`, /signature is not base64url/, 'a signature of one character']
    ]) {
      refused(t, await register(browser, { 'secure-session-response': token as string }), 400, message as RegExp, what as string)
    }
    for (const [options, message, what] of [
      [{ header: { typ: 'JWT' } }, /`typ` is not "dbsc\+jwt"/, 'another typ'],
      [{ header: { alg: 'none' } }, /`alg` is not ES256 or RS256/, 'alg none'],
      [{ header: { alg: 'HS256' } }, /`alg` is not ES256 or RS256/, 'alg HS256'],
      [{ header: { crit: ['exp'] } }, /`crit` header/, 'a crit header'],
      [{ payload: { jti: 42 } }, /no challenge \(`jti`\)/, 'a jti that is no string'],
      [{ payload: { jti: 'x'.repeat(300) } }, /no challenge \(`jti`\)/, 'a jti too long'],
      [{ jwk: false }, /has no key \(`jwk`\)/, 'no key'],
      [{ header: { jwk: { kty: 'RSA', n: 'AQAB', e: 'AQAB' } } }, /ES256 key \(`jwk`\) must be an EC key on P-256/, 'an RSA key for ES256'],
      [{ header: { jwk: { kty: 'EC', crv: 'P-384', x: 'A'.repeat(43), y: 'A'.repeat(43) } } }, /on P-256/, 'another curve'],
      [{ header: { jwk: { kty: 'EC', crv: 'P-256', x: 'A'.repeat(43), y: 'A'.repeat(43) } } }, /not a valid public key/, 'a point off the curve']
    ] as const) {
      refused(t, await register(browser, { 'secure-session-response': tokenOf(browser, challenge, options) }), 400, message, what)
    }
    const rsa = await fresh('RS256')
    for (const [jwk, what] of [
      [{ kty: 'EC', crv: 'P-256', x: 'A'.repeat(43), y: 'A'.repeat(43) }, 'an EC key for RS256'],
      [{ kty: 'RSA', n: 'A'.repeat(171), e: 'AQAB' }, 'a 1024-bit RSA key'],
      [{ kty: 'RSA', n: `A${'x'.repeat(341)}`, e: '' }, 'no exponent']
    ] as const) {
      refused(t, await register(rsa.browser, { 'secure-session-response': tokenOf(rsa.browser, rsa.challenge, { header: { jwk } }) }), 400, /RS256 key \(`jwk`\) must be an RSA key of 2048 to 4096 bits/, what)
    }
    refused(t, await register(rsa.browser, { 'secure-session-response': tokenOf(rsa.browser, rsa.challenge, { header: { jwk: { ...rsa.browser.jwk, n: `g${rsa.browser.jwk.n.slice(1)}` } } }) }), 401,
      /signature does not verify with the key/, 'a key the signature is not of')
    const other = new DbscBrowser()
    refused(t, await register(browser, { 'secure-session-response': `${tokenOf(browser, challenge).split('.').slice(0, 2).join('.')}.${tokenOf(other, challenge).split('.')[2]}` }), 401,
      /signature does not verify/, 'another key\'s signature')
    refused(t, await register(browser, { 'secure-session-response': tokenOf(browser, `${challenge.slice(0, -2)}AA`) }), 401, /does not sign a registration challenge of this app/, 'a forged challenge')
    refused(t, await register(browser, { 'secure-session-response': tokenOf(browser, 'r1.x') }), 401, /does not sign a registration challenge/, 'an unsigned challenge')

    // The challenge names the login it was offered to: another login's cookie, or none, will not do.
    const second = await fresh()
    refused(t, await register(second.browser, { 'secure-session-response': tokenOf(second.browser, challenge) }), 401, /does not carry the account cookie of the login the challenge was offered to/, 'the challenge of another login')
    refused(t, await new DbscBrowser().post(verifier, '/device-binding/register', { 'secure-session-response': tokenOf(browser, challenge) }), 401, /account cookie of the login/, 'no account cookie')
    const plain = await verifier.inject({ method: 'POST', url: '/device-binding/register', cookies: browser.jar, headers: { 'secure-session-response': tokenOf(browser, challenge) } })
    refused(t, plain, 400, /runs over https only/, 'over http')

    // Once bound, never again, whatever the key.
    t.equal((await register(browser, { 'secure-session-response': tokenOf(browser, challenge) })).statusCode, 200, 'the right one')
    const bound = browser.jar
    const again = new DbscBrowser({ jar: bound })
    refused(t, await register(again, { 'secure-session-response': tokenOf(again, challenge) }), 409, /already bound to a key/, 'a second registration of a bound login, with another key')
    const pending = new DbscBrowser({ jar: { ...second.browser.jar } })
    t.equal((await register(second.browser, { 'secure-session-response': tokenOf(second.browser, second.challenge) })).statusCode, 200)
    refused(t, await register(pending, { 'secure-session-response': tokenOf(pending, second.challenge) }), 409, /already bound/, 'a copy of the pending cookie, registering another key')

    // A registration whose answer never reached the browser: it tries again
    // with the same key and its cookies still pending, and gets the same
    // session, while the challenge lives, but no bound cookie (a replayed
    // request would get one too): its refresh, signed, brings it. The login
    // is bound once.
    const third = await fresh()
    const lost = third.browser.copy({ keepKey: true })
    const tooLate = third.browser.copy({ keepKey: true })
    const answered = await register(third.browser, { 'secure-session-response': tokenOf(third.browser, third.challenge) })
    t.equal(answered.statusCode, 200, 'a registration whose answer is lost')
    const retried = await register(lost, { 'secure-session-response': tokenOf(lost, third.challenge) })
    t.equal(retried.statusCode, 200, 'tried again with the same key: 200')
    t.same(retried.json(), answered.json(), 'the same session, the same answer')
    t.same(cookieNames(retried), ['account'], 'the account cookie, bound; no bound cookie')
    t.equal((await lost.get(verifier, '/me')).statusCode, 401, 'which alone opens nothing')
    lost.session = retried.json().session_identifier
    lost.refreshPath = retried.json().refresh_url
    t.equal((await lost.refresh(issuer, verifier)).statusCode, 200, 'the refresh, signed with the key')
    t.match((await lost.get(verifier, '/me')).json(), { bound: true }, 'brings the bound cookie')
    time.advance(30)
    refused(t, await register(tooLate, { 'secure-session-response': tokenOf(tooLate, third.challenge) }), 401, /registration challenge expired/, 'tried again once the challenge expired')

    // Challenges are short-lived.
    ;({ browser, challenge } = await fresh())
    time.advance(30)
    refused(t, await register(browser, { 'secure-session-response': tokenOf(browser, challenge) }), 401, /registration challenge expired/, 'an expired challenge')
    t.equal(setup.bound.length, 3, 'three logins bound, each once (loginBound)')
  })

  t.test(`${name}: what a refresh refuses, with a clear 4xx and no cookie`, async (t) => {
    const setup = await instances(t)
    const { issuer, verifier } = setup
    const time = clock(t)
    const { browser } = await boundBrowser(setup)
    const session = browser.session as string
    const ask = async (from: DbscBrowser = browser, id = session): Promise<string> => challengeOf(await from.post(issuer, '/device-binding/refresh', { 'sec-secure-session-id': id }))
    const prove = async (from: DbscBrowser, headers: Record<string, string>): Promise<LightMyRequestResponse> => await from.post(verifier, '/device-binding/refresh', { 'sec-secure-session-id': session, ...headers })

    refused(t, await browser.post(verifier, '/device-binding/refresh'), 400, /`Sec-Secure-Session-Id` header is missing or not a session id/, 'no session id')
    refused(t, await verifier.inject({ method: 'POST', url: '/device-binding/refresh', cookies: browser.jar, headers: { 'sec-secure-session-id': session } }), 400, /runs over https only/, 'over http')
    for (const id of ['', '"unclosed', 'spaces inside', 'x'.repeat(65), '"é"']) {
      refused(t, await browser.post(verifier, '/device-binding/refresh', { 'sec-secure-session-id': id }), 400, /`Sec-Secure-Session-Id`/, `session id ${JSON.stringify(id.slice(0, 10))}`)
    }
    refused(t, await new DbscBrowser().post(verifier, '/device-binding/refresh', { 'sec-secure-session-id': session }), 401, /no account cookie of a live login/, 'no account cookie')

    let challenge = await ask()
    refused(t, await prove(browser, { 'secure-session-response': 'x'.repeat(5000) }), 400, /not a JSON web token/, 'a huge proof')
    refused(t, await prove(browser, { 'secure-session-response': browser.token(challenge, { header: { alg: 'none' } }) }), 400, /`alg`/, 'alg none')
    refused(t, await prove(browser, { 'secure-session-response': browser.token(challenge, { header: { alg: 'RS256' } }) }), 401, /does not verify with the login's key/, 'another algorithm than the key\'s')
    refused(t, await prove(browser, { 'secure-session-response': browser.token(`${challenge.slice(0, -2)}AA`) }), 401, /does not sign a refresh challenge of this app/, 'a forged challenge')
    const registration = offerOf(await new DbscBrowser().get(issuer, '/login/1'))?.challenge as string
    refused(t, await prove(browser, { 'secure-session-response': browser.token(registration) }), 401, /refresh challenge/, 'a registration challenge')
    const thief = new DbscBrowser({ jar: browser.jar })
    refused(t, await prove(thief, { 'secure-session-response': thief.token(challenge) }), 401, /does not verify with the login's key/, 'a proof made with another key')
    const [head, body] = browser.token(challenge).split('.')
    refused(t, await prove(browser, { 'secure-session-response': `${head}.${body}.${'A'.repeat(86)}` }), 401, /does not verify/, 'a wrong signature')
    refused(t, await prove(browser, { 'secure-session-response': `${head}.${body}.${browser.token(challenge).split('.')[2].slice(0, 40)}` }), 401, /does not verify/, 'a short signature')
    refused(t, await prove(browser, { 'sec-secure-session-id': 'another-session', 'secure-session-response': browser.token(challenge) }), 401, /no login bound in this session/, 'another session id')

    // Another login of the same user: its challenge does not prove this one.
    const { browser: other } = await boundBrowser(setup)
    const theirs = await ask(other, other.session as string)
    refused(t, await prove(browser, { 'secure-session-response': browser.token(theirs) }), 401, /issued to another login/, 'another login\'s challenge')
    refused(t, await other.post(verifier, '/device-binding/refresh', { 'sec-secure-session-id': other.session as string, 'secure-session-response': browser.token(challenge) }), 401, /issued to another login/, 'a proof for another login')

    // A challenge works once; a late one is answered with a new one.
    const proof = browser.token(challenge)
    t.equal((await prove(browser, { 'secure-session-response': proof })).statusCode, 200, 'the proof')
    time.advance(1)
    const replayed = await prove(browser, { 'secure-session-response': proof })
    t.equal(replayed.statusCode, 403, 'the same proof again: 403')
    t.same(cookieNames(replayed), [], 'no cookie')
    t.match(replayed.json().message, /was used already/)
    t.not(challengeOf(replayed), challenge, 'with a new challenge')
    challenge = await ask()
    time.advance(30)
    const late = await prove(browser, { 'secure-session-response': browser.token(challenge) })
    t.equal(late.statusCode, 403, 'a challenge 30 s old: 403')
    t.same(cookieNames(late), [])
    t.match(late.json().message, /expired/)
    t.equal((await prove(browser, { 'secure-session-response': browser.token(challengeOf(late)) })).statusCode, 200, 'the new challenge works')

    // A login that ended: nothing to refresh.
    challenge = await ask()
    await browser.get(issuer, '/logout')
    const ended = new DbscBrowser({ jar: thief.jar })
    // The instance that ended it knows at once; another one within 100 ms,
    // and the proof, which reads the record, is refused either way.
    refused(t, await ended.post(issuer, '/device-binding/refresh', { 'sec-secure-session-id': session }), 401, /no account cookie of a live login/, 'a logged-out login, asking for a challenge')
    refused(t, await ended.post(verifier, '/device-binding/refresh', { 'sec-secure-session-id': session, 'secure-session-response': browser.token(challenge) }), 401, /live login|no login bound/, 'a logged-out login, with a proof')
  })

  t.test(`${name}: a bound login needs its bound cookie; a copy of its account cookie is anonymous and ends nothing`, async (t) => {
    const setup = await instances(t)
    const { browser } = await boundBrowser(setup)
    const copy = new DbscBrowser({ jar: { account: browser.jar.account } })
    const refusedCopy = await copy.get(setup.verifier, '/me')
    t.equal(refusedCopy.statusCode, 401, 'the account cookie alone: anonymous')
    t.same(cookieNames(refusedCopy), [], 'nothing cleared')
    t.same(setup.missing, ['/me'], 'boundProofMissing')
    t.same((await copy.get(setup.verifier, '/who')).json(), { id: null }, 'unguarded pages too')
    t.equal((await copy.get(setup.verifier, '/me', { 'secure-session-skipped': `server_error;session_identifier="${browser.session as string}"` })).statusCode, 401, 'Secure-Session-Skipped is no proof')
    await copy.get(setup.verifier, '/logout')
    await copy.get(setup.verifier, '/login/2')
    t.equal((await browser.get(setup.issuer, '/me')).statusCode, 200, 'its logout, and a login over it, ended nothing: the browser goes on')
    t.equal(((await setup.issuer.inject('/devices')).json() as unknown[]).length, 1)
    const wrong = new DbscBrowser({ jar: { account: browser.jar.account, bound: `${browser.jar.bound.slice(0, -3)}AAA` } })
    t.equal((await wrong.get(setup.issuer, '/me')).statusCode, 401, 'a forged bound cookie: anonymous')
  })
}

// Helpers for the tests of one store: what the fake browser of another
// file's tests needs, re-exported.
export { challengeOf, DbscBrowser, HTTPS, offerOf, refused, cookieNames }
