import { before, test } from 'tap'
import fc from 'fast-check'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifyLogin from '../lib/index'
import { build, cookieJar, loadCookieParser, parseCookieHeader, OTHER_SECRET, SECRET, setCookieHeaders, User } from './helpers'

before(loadCookieParser)

// The tampering matrix: what an attacker can do with cookies they hold.
// Every cookie here is issued by the plugin itself (never signed by hand), so
// the matrix holds whatever the signing scheme is.

const DAY = 24 * 60 * 60

// An app from helpers, plus /fresh behind freshLoginRequired.
async function tamperApp (options = {}) {
  const built = await build(options)
  built.app.get('/fresh', { onRequest: built.app.loginManager.freshLoginRequired }, () => 'fresh')
  return built
}

// A Cookie header for these cookies. Values are percent-encoded, which the
// server's parser decodes back to exactly the same value.
function header (cookies: Record<string, string>): string {
  return Object.entries(cookies).map(([name, value]) => `${name}=${encodeURIComponent(value)}`).join('; ')
}

// Issues cookies as of `secondsAgo` seconds in the past, through the plugin.
async function issuedAt (app: FastifyInstance, user: User, secondsAgo: number, options: { duration?: number, remember?: boolean } = {}): Promise<Record<string, string>> {
  const realNow = Date.now
  Date.now = () => realNow() - secondsAgo * 1000
  try {
    return await app.loginManager.cookiesFor(user, options)
  } finally {
    Date.now = realNow
  }
}

// Sends requests in batches; returns the labels of those `isAccepted` says got in.
async function sweep<T> (items: T[], send: (item: T) => Promise<boolean>, label: (item: T) => string): Promise<string[]> {
  const accepted: string[] = []
  for (let start = 0; start < items.length; start += 256) {
    const batch = items.slice(start, start + 256)
    const results = await Promise.all(batch.map(send))
    results.forEach((ok, i) => { if (ok) accepted.push(label(batch[i])) })
  }
  return accepted
}

interface Mutation {
  at: number
  byte: number | null // null: the byte is deleted
  value: string
}

// Every replacement of one character by each of the 256 byte values, and
// every deletion of one character.
function singleByteChanges (value: string, bytes: number[]): Mutation[] {
  const mutations: Mutation[] = []
  for (let at = 0; at < value.length; at++) {
    for (const byte of bytes) {
      if (byte !== value.charCodeAt(at)) mutations.push({ at, byte, value: value.slice(0, at) + String.fromCharCode(byte) + value.slice(at + 1) })
    }
    mutations.push({ at, byte: null, value: value.slice(0, at) + value.slice(at + 1) })
  }
  return mutations
}

const ALL_BYTES = Array.from({ length: 256 }, (_, i) => i)
// Raw in a header: what an HTTP parser lets through (Node refuses other
// controls). The printable ASCII ones, and a few latin-1 bytes: every byte
// value already went through the value sweep, percent-encoded.
const HEADER_BYTES = [0x09, ...ALL_BYTES.filter((b) => b >= 0x20 && b < 0x7f), 0x80, 0xa0, 0xc3, 0xe2, 0xff]
// Raw header changes that the value sweep does not already cover: bytes that
// are not sent as themselves in a value (anything encodeURIComponent would
// escape), and any byte inside a %XX escape. Those the parser reads back as
// the original value are set aside.
function headerChanges (name: string, wire: string, value: string): { changes: Mutation[], equivalent: Mutation[] } {
  const escapes = new Set<number>()
  for (const match of wire.matchAll(/%[0-9A-Fa-f]{2}/g)) for (let i = 0; i < 3; i++) escapes.add((match.index ?? 0) + i)
  const changes: Mutation[] = []
  const equivalent: Mutation[] = []
  for (const m of singleByteChanges(wire, HEADER_BYTES)) {
    if (m.byte !== null && !escapes.has(m.at) && encodeURIComponent(String.fromCharCode(m.byte)) === String.fromCharCode(m.byte)) continue
    if (parseCookieHeader(`${name}=${m.value}`)[name] === value) equivalent.push(m)
    else changes.push(m)
  }
  return { changes, equivalent }
}

const describe = (m: Mutation): string => `${m.at}:${m.byte === null ? 'deleted' : m.byte.toString(16)}`

test('every single-byte change of a valid account cookie is rejected', async (t) => {
  const { app, loaderCalls } = await tamperApp()
  const response = await app.inject('/login/1')
  const cookies = cookieJar(response)
  const { account, fresh } = cookies
  t.equal((await app.inject({ url: '/me', headers: { cookie: header(cookies) } })).statusCode, 200, 'the untouched cookie works')
  loaderCalls.length = 0
  let answers = 0
  const probe = async (cookie: string): Promise<boolean> => {
    const reply = await app.inject({ url: '/me', headers: { cookie } })
    answers++
    if (reply.statusCode !== 401 && reply.statusCode !== 200) throw new Error(`answered ${reply.statusCode}`)
    if (setCookieHeaders(reply).length > 0) throw new Error('a refused cookie got a Set-Cookie')
    return reply.statusCode === 200
  }

  // The cookie's value: each of its characters replaced by each byte value, or deleted.
  const changes = singleByteChanges(account, ALL_BYTES)
  const accepted = await sweep(changes, (m) => probe(`account=${encodeURIComponent(m.value)}; fresh=${encodeURIComponent(fresh)}`), describe)
  t.same(accepted, [], `none of the ${changes.length} changes of the ${account.length}-character value is accepted`)

  // The bytes of the header itself, sent raw: what the server's cookie parser
  // does with separators, quotes, spaces, '%' and non-ASCII bytes. Raw
  // letters and digits were covered above; a change that the parser decodes
  // to the very same value is the same cookie, not a forgery.
  const wire = setCookieHeaders(response)[0].split(';')[0].slice('account='.length)
  t.equal(parseCookieHeader(`account=${wire}`).account, account, 'the Set-Cookie value reads back as the cookie')
  const { changes: wireChanges, equivalent } = headerChanges('account', wire, account)
  const acceptedOnWire = await sweep(wireChanges, (m) => probe(`account=${m.value}; fresh=${encodeURIComponent(fresh)}`), describe)
  t.same(acceptedOnWire, [], `none of the ${wireChanges.length} raw header changes is accepted (${equivalent.length} read back as the same value)`)
  t.same(loaderCalls, [], `the user loader was never asked about any of the ${answers} changed cookies`)
})

test('every single-byte change of a valid fresh cookie is rejected: the login stays, its freshness does not', async (t) => {
  const { app } = await tamperApp()
  const response = await app.inject('/login/1')
  const { account, fresh } = cookieJar(response)
  t.equal((await app.inject({ url: '/fresh', headers: { cookie: header({ account, fresh }) } })).statusCode, 200, 'the untouched pair is fresh')
  // /me is loginRequired and answers request.isFresh, as freshLoginRequired reads it.
  const probe = async (cookie: string): Promise<boolean> => {
    const me = await app.inject({ url: '/me', headers: { cookie } })
    if (me.statusCode !== 200 || me.json().name !== 'ann') throw new Error(`a bad fresh cookie changed the login: ${me.statusCode} ${me.body}`)
    if (setCookieHeaders(me).length > 0) throw new Error('a Set-Cookie')
    return me.json().fresh !== false
  }
  const changes = singleByteChanges(fresh, ALL_BYTES)
  t.same(await sweep(changes, (m) => probe(`account=${encodeURIComponent(account)}; fresh=${encodeURIComponent(m.value)}`), describe), [],
    `none of the ${changes.length} changes of the ${fresh.length}-character value is fresh`)
  const wire = setCookieHeaders(response)[1].split(';')[0].slice('fresh='.length)
  const { changes: wireChanges, equivalent } = headerChanges('fresh', wire, fresh)
  t.same(await sweep(wireChanges, (m) => probe(`account=${encodeURIComponent(account)}; fresh=${m.value}`), describe), [],
    `none of the ${wireChanges.length} raw header changes is fresh (${equivalent.length} read back as the same value)`)
  const guarded = await app.inject({ url: '/fresh', headers: { cookie: `account=${encodeURIComponent(account)}; fresh=${encodeURIComponent(changes[0].value)}` } })
  t.equal(guarded.statusCode, 401, 'and freshLoginRequired refuses a changed one')
})

test('a signature from another secret is rejected, for both cookies; listing that secret accepts and re-signs it', async (t) => {
  const { app, loaderCalls } = await tamperApp()
  const ann = new User(1, 'ann')
  const mine = await app.loginManager.cookiesFor(ann)

  await fc.assert(fc.asyncProperty(fc.string({ unit: 'grapheme', minLength: 32, maxLength: 64 }).filter((secret) => secret !== SECRET), async (secret) => {
    const other = await tamperApp({ secret })
    const theirs = await other.app.loginManager.cookiesFor(ann)
    // Their account cookie alone, theirs with our fresh cookie, ours with their fresh cookie.
    const account = await app.inject({ url: '/who', headers: { cookie: header({ account: theirs.account, fresh: mine.fresh }) } })
    if (account.json().authenticated !== false) throw new Error('a foreign account cookie was accepted')
    const fresh = await app.inject({ url: '/fresh', headers: { cookie: header({ account: mine.account, fresh: theirs.fresh }) } })
    if (fresh.statusCode !== 401) throw new Error('a foreign fresh cookie was accepted')
    // Listed second, their secret is trusted again, and its cookies move to ours.
    const rotating = await tamperApp({ secret: [SECRET, secret] })
    const renewed = await rotating.app.inject({ url: '/fresh', headers: { cookie: header(theirs) } })
    if (renewed.statusCode !== 200 || setCookieHeaders(renewed).length !== 2) throw new Error(`rotation: ${renewed.statusCode}`)
    const resigned = cookieJar(renewed)
    if ((await app.inject({ url: '/fresh', headers: { cookie: header(resigned) } })).statusCode !== 200) throw new Error('the re-signed cookies are not ours')
  }), { numRuns: 25 })
  t.pass('25 random secrets')

  // Signatures moved between cookies: ann's signature on bob's payload, the
  // account signature on the fresh payload, and back.
  const bob = await app.loginManager.cookiesFor(new User(2, 'bob'))
  const split = (value: string): [string, string] => [value.slice(0, value.lastIndexOf('.')), value.slice(value.lastIndexOf('.') + 1)]
  const transplants: Record<string, Record<string, string>> = {
    'ann\'s signature on bob\'s account payload': { account: `${split(bob.account)[0]}.${split(mine.account)[1]}` },
    'the fresh signature on the account payload': { account: `${split(mine.account)[0]}.${split(mine.fresh)[1]}` },
    'the account cookie as the fresh cookie': { account: mine.account, fresh: mine.account },
    'the fresh cookie as the account cookie': { account: mine.fresh, fresh: mine.fresh },
    'the other secret\'s signature of the same payload': { account: `${split(mine.account)[0]}.${split((await issuedAt((await tamperApp({ secret: OTHER_SECRET })).app, ann, 0)).account)[1]}` }
  }
  loaderCalls.length = 0
  for (const [name, cookies] of Object.entries(transplants)) {
    const response = await app.inject({ url: '/fresh', headers: { cookie: header(cookies) } })
    t.equal(response.statusCode, 401, name)
  }
  t.same(loaderCalls, ['1'], 'only the genuine account cookie reached the user loader')
})

test('fresh cookies swapped between users, logins and instances are never fresh', async (t) => {
  const a = await tamperApp()
  const b = await tamperApp()
  const logins: Array<{ user: string, account: string, fresh: string }> = []
  for (const id of ['1', '2', '3']) {
    for (const [app, remember] of [[a.app, '1'], [b.app, '0']] as const) {
      // User 3 is inactive: loginUser refuses it, so force it through cookiesFor.
      const cookies = id === '3' ? await app.loginManager.cookiesFor(a.users.get('3') as User) : cookieJar(await app.inject(`/login/${id}?remember=${remember}`))
      logins.push({ user: id, account: cookies.account, fresh: cookies.fresh })
    }
  }
  const wrong: string[] = []
  let pairs = 0
  for (const [i, owner] of logins.entries()) {
    for (const [j, donor] of logins.entries()) {
      for (const app of [a.app, b.app]) {
        const cookie = header({ account: owner.account, fresh: donor.fresh })
        const [guarded, who] = await Promise.all([app.inject({ url: '/fresh', headers: { cookie } }), app.inject({ url: '/who', headers: { cookie } })])
        pairs++
        const body = who.json()
        if (body.id !== owner.user) wrong.push(`${i}/${j}: logged in as ${body.id}`)
        if ((guarded.statusCode === 200) !== (i === j) || body.fresh !== (i === j)) wrong.push(`${i}/${j}: fresh ${body.fresh}, /fresh ${guarded.statusCode}`)
      }
    }
  }
  t.same(wrong, [], `${pairs} account/fresh pairs on two instances sharing the secret: only a login's own fresh cookie is fresh`)
})

test('an expired account cookie is rejected even with a valid signature, on every path that could revive it', async (t) => {
  // Freshness has a lifetime of its own (freshDuration); here only the login's counts.
  const plain = await tamperApp({ freshDuration: null })
  const rotating = await tamperApp({ secret: [SECRET, OTHER_SECRET], freshDuration: null })
  const sliding = await tamperApp({ cookieRefreshEachRequest: true, freshDuration: null })
  const issuer = await tamperApp({ secret: OTHER_SECRET })
  const ann = new User(1, 'ann')
  const apps = [plain, rotating, sliding]

  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 60, max: 400 * DAY }), // the login's duration
    fc.integer({ min: 0, max: 10 * 365 * DAY }), // how long ago it expired
    fc.boolean(), // signed with the secret being rotated out
    async (duration, expiredFor, old) => {
      const cookies = await issuedAt(old ? issuer.app : plain.app, ann, duration + expiredFor, { duration })
      for (const { app, loaderCalls } of apps) {
        loaderCalls.length = 0
        const cookie = header(cookies)
        const [me, fresh, who] = await Promise.all([
          app.inject({ url: '/me', headers: { cookie } }),
          app.inject({ url: '/fresh', headers: { cookie } }),
          app.inject({ url: '/who', headers: { cookie } })
        ])
        if (me.statusCode !== 401 || fresh.statusCode !== 401 || who.json().authenticated !== false) throw new Error(`accepted: ${me.statusCode} ${fresh.statusCode} ${who.body}`)
        if ([me, fresh, who].some((response) => setCookieHeaders(response).length > 0)) throw new Error('an expired cookie was re-signed or slid')
        if (loaderCalls.length > 0) throw new Error('the loader was asked')
      }
    }), { numRuns: 150 })
  t.pass('expired cookies: 150 runs on a plain, a rotating and a sliding app')

  // The same cookies just before their end are accepted (30 s of margin: no timing flake).
  await fc.assert(fc.asyncProperty(fc.integer({ min: 60, max: 400 * DAY }), fc.integer({ min: 30, max: 59 }), async (duration, left) => {
    const cookies = await issuedAt(plain.app, ann, duration - left, { duration })
    const response = await plain.app.inject({ url: '/fresh', headers: { cookie: header(cookies) } })
    if (response.statusCode !== 200) throw new Error(`${left} s before its end: ${response.statusCode}`)
  }), { numRuns: 50 })
  t.pass('the last minute of a login still works: 50 runs')

  const atTheSecond = await issuedAt(plain.app, ann, 3600, { duration: 3600 })
  t.equal((await plain.app.inject({ url: '/me', headers: { cookie: header(atTheSecond) } })).statusCode, 401, 'a cookie is refused from the very second it expires')
})

test('a login issued without session protection carries no client tag, and protected instances do not trust it', async (t) => {
  const off = await tamperApp({ sessionProtection: false })
  const cookies = cookieJar(await off.app.inject('/login/1'))
  t.equal(cookies.account.split('.')[11], '', 'no client tag in the token')
  t.same((await off.app.inject({ url: '/me', cookies })).json(), { name: 'ann', fresh: true }, 'fine where protection is off')
  const basic = await tamperApp()
  t.same((await basic.app.inject({ url: '/me', cookies })).json(), { name: 'ann', fresh: false }, "'basic': logged in, never fresh")
  t.equal((await basic.app.inject({ url: '/fresh', cookies })).statusCode, 401, "'basic': freshLoginRequired asks again")
  const strong = await tamperApp({ sessionProtection: 'strong' })
  const refused = await strong.app.inject({ url: '/me', cookies })
  t.equal(refused.statusCode, 401, "'strong': anonymous")
  t.same((refused.cookies as Array<{ name: string, maxAge?: number }>).map((cookie) => [cookie.name, cookie.maxAge]), [['account', 0], ['fresh', 0]], "'strong': and expired")
})

// Found with this issue: the plugin signed with the bare secret, so a value an
// app signed with the same secret through @fastify/cookie was a login cookie
// for any user id, with any expiry. The key is now derived from the secret.
test('a value the app signed with the same secret cannot pass for a login cookie', async (t) => {
  const app = Fastify()
  await app.register(fastifyCookie, { secret: SECRET })
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => new User(id, `user ${id}`) })
  // An ordinary feature: remember where to go back to, in a signed cookie.
  app.get<{ Querystring: { to: string } }>('/remember', (request, reply) => {
    reply.setCookie('returnTo', request.query.to, { signed: true })
    return 'ok'
  })
  app.get('/who', (request) => ({ id: request.currentUser.getId() }))
  // An account token for user 1, issued at 0, expiring in the year 115 million.
  const forged = cookieJar(await app.inject({ url: '/remember', query: { to: 'a1.MQ.0.zzzzzzzzzz.AAAAAAAAAAAAAAAA.r.' } })).returnTo
  t.same((await app.inject({ url: '/who', cookies: { account: forged } })).json(), { id: null }, 'the app\'s signed value logs no one in')
})
