import { test } from 'tap'
import { Signer } from '@fastify/cookie'
import { SeenOnce } from '../lib/cookies/admission'
import { ClientCheck } from '../lib/binding/client-check'
import { LoginIds } from '../lib/logins/login-ids'
import { HmacSigner } from '../lib/cookies/signing'
import { encodeAccount, encodeFresh, readAccount, readFresh, type AccountToken } from '../lib/cookies/token'
import { VerifiedAccounts, VerifiedCookies } from '../lib/cookies/verified'
import { accountToken, referenceTag } from './helpers'

const signer = new Signer(['a-secret-of-at-least-32-characters!!'])
const NOW = 1_000_000

function cookie (id: string, expiresAt: number): string {
  const token: AccountToken = accountToken({ id, issuedAt: NOW, expiresAt })
  return signer.sign(encodeAccount(token))
}

// Counts the HMAC checks the cache lets through.
function counting () {
  const counter = {
    calls: 0,
    sign: (value: string) => signer.sign(value),
    unsign: (value: string) => {
      counter.calls++
      return signer.unsign(value)
    }
  }
  return counter
}

test('a verified account cookie is kept on its second visit, and its expiry checked on every read', async (t) => {
  const cache = new VerifiedAccounts(10)
  const hmac = counting()
  const raw = cookie('1', NOW + 10)
  t.equal(cache.read(hmac, raw, NOW)?.token.id, '1')
  t.equal(hmac.calls, 1)
  t.equal(cache.read(hmac, raw, NOW)?.token.id, '1')
  t.equal(hmac.calls, 2, 'the first visit is only remembered: the second is checked and kept')
  t.equal(cache.read(hmac, raw, NOW + 9)?.token.id, '1')
  t.equal(hmac.calls, 2, 'the third read is a hit')
  t.equal(cache.read(hmac, raw, NOW + 10), null, 'expired, though cached')
  t.ok(Object.isFrozen(cache.read(hmac, raw, NOW)?.token), 'shared tokens are frozen')
})

test('only cookies that verify are kept: forged or expired ones are checked every time', async (t) => {
  const cache = new VerifiedAccounts(10)
  const hmac = counting()
  const raw = cookie('1', NOW + 10)
  const forged = raw.slice(0, -2) + (raw.endsWith('AA') ? 'BB' : 'AA')
  t.equal(cache.read(hmac, forged, NOW), null)
  t.equal(cache.read(hmac, forged, NOW), null)
  t.equal(cache.read(hmac, cookie('2', NOW - 1), NOW), null)
  t.equal(cache.read(hmac, undefined, NOW), null)
  t.equal(hmac.calls, 3, 'nothing refused was remembered; a missing cookie costs nothing')
})

test('the cache is bounded: two generations of `size`, the older dropped whole', async (t) => {
  const cache = new VerifiedAccounts(2)
  const hmac = counting()
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((id) => cookie(id, NOW + 10))
  // Each comes twice: the second visit admits it.
  const twice = (raw: string): void => { cache.read(hmac, raw, NOW); cache.read(hmac, raw, NOW) }
  twice(a)
  twice(b) // current: a b
  twice(c) // current: c, previous: a b
  t.equal(hmac.calls, 6)
  t.equal(cache.read(hmac, a, NOW)?.token.id, 'a', 'found in the previous generation')
  t.equal(hmac.calls, 6, 'without a new check')
  twice(d) // a moved up: current c a is full; now current: d, previous: c a
  t.equal(cache.read(hmac, b, NOW)?.token.id, 'b')
  t.equal(hmac.calls, 9, 'b was dropped with its generation and checked again')
})

test('admission: a cookie is taken on its second visit, one-off cookies never, forged ones never', async (t) => {
  const seen = new SeenOnce(4)
  t.notOk(seen.again('a2.x.signatureA'), 'a first visit is remembered, not admitted')
  t.ok(seen.again('a2.x.signatureA'), 'the second is admitted')
  // Far more one-off cookies than slots: they write over each other, and
  // the first one is forgotten.
  for (let i = 0; i < 64; i++) seen.again(`a2.x.one-off-${i}`)
  t.notOk(seen.again('a2.x.signatureA'), 'forgotten once its slot was taken')
  const cache = new VerifiedAccounts(10)
  const hmac = counting()
  const forged = cookie('1', NOW + 10).slice(0, -2) + 'zz'
  for (let i = 0; i < 3; i++) t.equal(cache.read(hmac, forged, NOW), null)
  t.equal(hmac.calls, 3, 'a cookie that does not verify is never admitted, however often it comes')
})

test('login ids come from a refilled pool: every one distinct, 128 bits, across refills', async (t) => {
  const ids = new LoginIds()
  const seen = new Set<string>()
  // 256 ids per fill: this crosses three refills.
  for (let i = 0; i < 1000; i++) seen.add(ids.next())
  t.equal(seen.size, 1000, 'no id repeats, within or across fills')
  t.ok([...seen].every((id) => /^[A-Za-z0-9_-]{22}$/.test(id)), '22 base64url characters: 16 random bytes (ASVS 7.2.3)')
  const other = new LoginIds()
  t.notOk(seen.has(other.next()), 'another manager\'s pool is its own')
})

test('fresh cookies are kept on their second visit too; tampered ones never kept', async (t) => {
  const cache = new VerifiedCookies(10, readFresh)
  const hmac = counting()
  const raw = signer.sign(encodeFresh({ loginId: 'B'.repeat(16), issuedAt: NOW }))
  t.equal(cache.read(hmac, raw, NOW)?.token.loginId, 'B'.repeat(16))
  t.equal(cache.read(hmac, raw, NOW)?.token.issuedAt, NOW)
  t.equal(cache.read(hmac, raw, NOW)?.token.issuedAt, NOW)
  t.equal(hmac.calls, 2, 'the third read is a hit')
  const tampered = raw.replace('f1.B', 'f1.C')
  for (let i = 0; i < 3; i++) t.equal(cache.read(hmac, tampered, NOW), null)
  t.equal(hmac.calls, 5, 'a tampered cookie is checked every time')
})

test('client checks: one HMAC per client, for its login and every tag it presents', async (t) => {
  let calls = 0
  const key = Buffer.alloc(32, 7)
  const clients = new ClientCheck([key], (k, message) => {
    calls++
    return k.tag(message)
  })
  const tag = referenceTag(key, 'Firefox\n192.0.2.1')
  t.equal(clients.tag('Firefox', '192.0.2.1'), tag, 'the tag is the HMAC of user agent and address')
  t.equal(clients.tag('Firefox', '192.0.2.1'), tag, 'the same client logging in again')
  t.equal(calls, 1, 'is tagged without another HMAC')
  calls = 0
  t.ok(clients.check(tag, 'Firefox', '192.0.2.1'))
  t.ok(clients.check(tag, 'Firefox', '192.0.2.1'))
  t.equal(calls, 0, 'its checks are hits')
  t.equal(clients.check(tag, 'Chrome', '192.0.2.1'), null, 'another user agent does not match, after a hit')
  t.equal(clients.check(tag, 'Firefox', '192.0.2.2'), null, 'nor another address')
  t.equal(clients.check(tag, 'Chrome', '192.0.2.1'), null, 'nor the same one again')
  t.equal(clients.check(referenceTag(Buffer.alloc(32, 8), 'Chrome\n192.0.2.1'), 'Chrome', '192.0.2.1'), null, 'nor a tag under another key')
  t.equal(clients.check(tag.slice(0, -1) + (tag.endsWith('A') ? 'B' : 'A'), 'Firefox', '192.0.2.1'), null, 'nor a tampered tag of a known client')
  t.equal(calls, 2, 'one HMAC per new client, however many tags it presents')
  t.equal(clients.check('', 'Firefox', '192.0.2.1'), null, 'a login without a tag matches no client')
  t.equal(calls, 2, 'without an HMAC')

  const huge = 'x'.repeat(600)
  const hugeTag = referenceTag(key, `${huge}\n192.0.2.1`)
  t.ok(clients.check(hugeTag, huge, '192.0.2.1'))
  t.ok(clients.check(hugeTag, huge, '192.0.2.1'))
  t.equal(calls, 4, 'a huge user agent is checked each time, never kept')
})

test('client checks during a rotation: an old key still matches, and says to re-tag', async (t) => {
  const [current, old] = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)]
  const clients = new ClientCheck([current, old])
  t.same(clients.check(referenceTag(old, 'Firefox\n192.0.2.1'), 'Firefox', '192.0.2.1'), { renew: true })
  t.same(clients.check(referenceTag(current, 'Firefox\n192.0.2.1'), 'Firefox', '192.0.2.1'), { renew: false })
  t.equal(clients.check(referenceTag(Buffer.alloc(32, 3), 'Firefox\n192.0.2.1'), 'Firefox', '192.0.2.1'), null, 'another key does not')
})

test('HmacSigner: the signatures of @fastify/cookie, both ways, and nothing else', async (t) => {
  const keys = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)]
  const ours = new HmacSigner(keys)
  const theirs = new Signer(keys)
  const signed = ours.sign('a2.MQ.x')
  t.equal(signed, theirs.sign('a2.MQ.x'), 'the same signature as @fastify/cookie')
  t.same(ours.unsign(signed), { valid: true, renew: false, value: 'a2.MQ.x' })
  t.same(ours.unsign(new Signer([keys[1]]).sign('a2.MQ.x')), { valid: true, renew: true, value: 'a2.MQ.x' }, 'an older key: valid, re-sign it')
  const signature = signed.slice(signed.lastIndexOf('.') + 1)
  const invalid = { valid: false, renew: false, value: null }
  t.same(ours.unsign('a2.MQ.y.' + signature), invalid, 'another value')
  t.same(ours.unsign(signed.slice(0, -1)), invalid, 'a signature cut short')
  t.same(ours.unsign(signed + 'A'), invalid, 'a signature too long')
  t.same(ours.unsign('a2MQx'), invalid, 'no signature at all')
  // In latin1, U+0141 would be the byte of 'A'.
  const last = signed.at(-1) as string
  const lookalike = String.fromCharCode(last.charCodeAt(0) + 0x100)
  t.same(ours.unsign(signed.slice(0, -1) + lookalike), invalid, 'a character outside ASCII is no byte of the signature')
  t.same(new HmacSigner([Buffer.alloc(32, 3)]).unsign(signed), invalid, 'another key')
})

test('account tokens: an id comes back only from its one canonical spelling, and only as UTF-8', async (t) => {
  const withId64 = (id64: string): string => {
    const payload = encodeAccount(accountToken({ issuedAt: NOW, expiresAt: NOW + 60 }))
    return signer.sign(payload.replace('a3.MQ.', `a3.${id64}.`))
  }
  const idOf = (id64: string): string | null => readAccount(signer, withId64(id64), NOW)?.token.id ?? null
  t.equal(idOf('MQ'), '1')
  t.equal(idOf('MTI'), '12')
  t.equal(idOf('MTIz'), '123')
  t.equal(idOf(Buffer.from('é🎉').toString('base64url')), 'é🎉', 'UTF-8 beyond ASCII')
  t.equal(idOf('MR'), null, 'bits set past the last byte (1 byte)')
  t.equal(idOf('MTJ'), null, 'bits set past the last byte (2 bytes)')
  t.equal(idOf('MTIzN'), null, 'a length no encoder makes')
  t.equal(idOf('_w'), null, 'bytes that are not UTF-8')
  t.equal(idOf('M+Q'), null, 'not base64url')
  t.equal(idOf(''), null, 'empty')
  t.equal(idOf('M\u0100'), null, 'a character outside ASCII, whose low byte is in the alphabet')
  // A decoder left to its defaults drops a leading byte order mark.
  for (const id of ['\uFEFFadmin', '\uFEFF\uFEFFx', 'é1', '1é']) {
    t.equal(idOf(Buffer.from(id).toString('base64url')), id, `${JSON.stringify(id)} comes back as it went in`)
  }
})

test('account tokens: each field of the one-pass parser refuses what the format does not allow', async (t) => {
  const issued = NOW.toString(36)
  const expires = (NOW + 60).toString(36)
  const old = 'A'.repeat(16)
  const login = 'A'.repeat(22)
  const times = `${issued}.${expires}.${issued}.${issued}.${issued}.0`
  const read = (payload: string): AccountToken | null => readAccount(signer, signer.sign(payload), NOW)?.token ?? null
  t.ok(read(`a3.MQ.${times}.${login}.r..`), 'a3 as written')
  t.match(read(`a3.MQ.${times}.${login}.rub.passkey:v2.`), { remember: true, unconfirmed: true, binding: 'bound', method: 'passkey:v2' }, 'a3 with every flag and a method')
  t.match(read(`a3.MQ.${times}.${login}.sp.oidc.AbC`), { remember: false, unconfirmed: false, binding: 'pending', method: 'oidc', client: 'AbC' })
  t.match(read(`a2.MQ.${issued}.${expires}.${issued}.${old}.r.`), { generation: 0, rotatedAt: NOW, authenticatedAt: NOW, method: null, binding: 'none' }, 'a2, the format before')
  t.ok(read(`a1.MQ.${issued}.${expires}.${old}.s.`), 'a1, the first format')
  const refused: Record<string, string> = {
    'another tag': `a4.MQ.${times}.${login}.r..`,
    'nothing after the id': 'a3.MQ',
    'no issue time': `a3.MQ..${expires}.${issued}.${issued}.${issued}.0.${login}.r..`,
    'an issue time of 11 digits': `a3.MQ.${'1'.repeat(11)}.${expires}.${issued}.${issued}.${issued}.0.${login}.r..`,
    'an upper-case time': `a3.MQ.${issued}.${expires.toUpperCase()}Z.${issued}.${issued}.${issued}.0.${login}.r..`,
    'a bad expiry': `a3.MQ.${issued}.-1.${issued}.${issued}.${issued}.0.${login}.r..`,
    'a bad last use': `a3.MQ.${issued}.${expires}.x_y.${issued}.${issued}.0.${login}.r..`,
    'a bad authentication time': `a3.MQ.${issued}.${expires}.${issued}..${issued}.0.${login}.r..`,
    'a bad rotation time': `a3.MQ.${issued}.${expires}.${issued}.${issued}.-.0.${login}.r..`,
    'a bad generation': `a3.MQ.${issued}.${expires}.${issued}.${issued}.${issued}..${login}.r..`,
    'a3 with a login id of a2': `a3.MQ.${times}.${old}.r..`,
    'a2 with a login id of a3': `a2.MQ.${issued}.${expires}.${issued}.${login}.r.`,
    'a2 without its last use': `a2.MQ.${issued}.${expires}.${old}.r.`,
    'a2 with a flag of two letters': `a2.MQ.${issued}.${expires}.${issued}.${old}.rr.`,
    'a short login id': `a3.MQ.${times}.${'A'.repeat(21)}.r..`,
    'a login id outside base64url': `a3.MQ.${times}.${'A'.repeat(21)}+.r..`,
    'another flag': `a3.MQ.${times}.${login}.x..`,
    'a flag twice': `a3.MQ.${times}.${login}.rr..`,
    'flags out of order': `a3.MQ.${times}.${login}.rbu..`,
    'two binding flags': `a3.MQ.${times}.${login}.rpb..`,
    'no method field': `a3.MQ.${times}.${login}.r.`,
    'a method with a space': `a3.MQ.${times}.${login}.r.pass key.`,
    'a method of 33 characters': `a3.MQ.${times}.${login}.r.${'m'.repeat(33)}.`,
    'a field too many': `a3.MQ.${times}.${login}.r...`,
    'a client of 129 characters': `a3.MQ.${times}.${login}.r..${'A'.repeat(129)}`,
    'an authentication in the future': `a3.MQ.${issued}.${expires}.${issued}.${(NOW + 61).toString(36)}.${issued}.0.${login}.r..`,
    'a rotation in the future': `a3.MQ.${issued}.${expires}.${issued}.${issued}.${(NOW + 61).toString(36)}.0.${login}.r..`
  }
  for (const [label, payload] of Object.entries(refused)) t.equal(read(payload), null, label)
  t.ok(read(`a3.MQ.${times}.${login}.r.${'m'.repeat(32)}.${'A'.repeat(128)}`), 'a method of 32 characters and a client of 128')
})
