import { test } from 'tap'
import { Signer } from '@fastify/cookie'
import { ClientCheck } from '../lib/client-check'
import { LoginIds } from '../lib/login-ids'
import { hmacTag } from '../lib/signing'
import { encodeAccount, encodeFresh, readFresh, type AccountToken } from '../lib/token'
import { VerifiedAccounts, VerifiedCookies } from '../lib/verified-cookies'

const signer = new Signer(['a-secret-of-at-least-32-characters!!'])
const NOW = 1_000_000

function cookie (id: string, expiresAt: number): string {
  const token: AccountToken = { id, issuedAt: NOW, expiresAt, lastSeenAt: NOW, loginId: 'A'.repeat(16), remember: true, client: '' }
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

test('a verified account cookie is checked once, and its expiry on every read', async (t) => {
  const cache = new VerifiedAccounts(10)
  const hmac = counting()
  const raw = cookie('1', NOW + 10)
  t.equal(cache.read(hmac, raw, NOW)?.token.id, '1')
  t.equal(cache.read(hmac, raw, NOW + 9)?.token.id, '1')
  t.equal(hmac.calls, 1, 'the second read is a hit')
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
  cache.read(hmac, a, NOW)
  cache.read(hmac, b, NOW) // current: a b
  cache.read(hmac, c, NOW) // current: c, previous: a b
  t.equal(hmac.calls, 3)
  t.equal(cache.read(hmac, a, NOW)?.token.id, 'a', 'found in the previous generation')
  t.equal(hmac.calls, 3, 'without a new check')
  cache.read(hmac, d, NOW) // a moved up: current c a is full; now current: d, previous: c a
  t.equal(cache.read(hmac, b, NOW)?.token.id, 'b')
  t.equal(hmac.calls, 5, 'b was dropped with its generation and checked again')
})

test('login ids come from a refilled pool: every one distinct, 96 bits, across refills', async (t) => {
  const ids = new LoginIds()
  const seen = new Set<string>()
  // 256 ids per fill: this crosses three refills.
  for (let i = 0; i < 1000; i++) seen.add(ids.next())
  t.equal(seen.size, 1000, 'no id repeats, within or across fills')
  t.ok([...seen].every((id) => /^[A-Za-z0-9_-]{16}$/.test(id)), '16 base64url characters: 12 random bytes')
  const other = new LoginIds()
  t.notOk(seen.has(other.next()), 'another manager\'s pool is its own')
})

test('fresh cookies are verified once too; tampered ones never kept', async (t) => {
  const cache = new VerifiedCookies(10, readFresh)
  const hmac = counting()
  const raw = signer.sign(encodeFresh({ loginId: 'B'.repeat(16), issuedAt: NOW }))
  t.equal(cache.read(hmac, raw, NOW)?.token.loginId, 'B'.repeat(16))
  t.equal(cache.read(hmac, raw, NOW)?.token.issuedAt, NOW)
  t.equal(hmac.calls, 1, 'the second read is a hit')
  const tampered = raw.replace('f1.B', 'f1.C')
  t.equal(cache.read(hmac, tampered, NOW), null)
  t.equal(cache.read(hmac, tampered, NOW), null)
  t.equal(hmac.calls, 3, 'a tampered cookie is checked every time')
})

test('client checks: a match is remembered for that tag and client only', async (t) => {
  let calls = 0
  const key = Buffer.alloc(32, 7)
  const clients = new ClientCheck([key], (k, message) => {
    calls++
    return hmacTag(k, message)
  })
  const tag = hmacTag(key, 'Firefox\n192.0.2.1')
  t.equal(clients.tag('Firefox', '192.0.2.1'), tag, 'the tag is the HMAC of user agent and address')
  calls = 0
  t.ok(clients.check(tag, 'Firefox', '192.0.2.1'))
  t.ok(clients.check(tag, 'Firefox', '192.0.2.1'))
  t.equal(calls, 1, 'the second check is a hit')
  t.equal(clients.check(tag, 'Chrome', '192.0.2.1'), null, 'another user agent does not match, after a hit')
  t.equal(clients.check(tag, 'Firefox', '192.0.2.2'), null, 'nor another address')
  t.equal(clients.check(tag, 'Chrome', '192.0.2.1'), null)
  t.equal(calls, 4, 'misses are checked every time')
  t.equal(clients.check('', 'Firefox', '192.0.2.1'), null, 'a login without a tag matches no client')
  t.equal(calls, 4, 'without an HMAC')

  const huge = 'x'.repeat(600)
  const hugeTag = hmacTag(key, `${huge}\n192.0.2.1`)
  t.ok(clients.check(hugeTag, huge, '192.0.2.1'))
  t.ok(clients.check(hugeTag, huge, '192.0.2.1'))
  t.equal(calls, 6, 'a huge user agent is checked each time, never kept')
})

test('client checks during a rotation: an old key still matches, and says to re-tag', async (t) => {
  const [current, old] = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)]
  const clients = new ClientCheck([current, old])
  t.same(clients.check(hmacTag(old, 'Firefox\n192.0.2.1'), 'Firefox', '192.0.2.1'), { renew: true })
  t.same(clients.check(hmacTag(current, 'Firefox\n192.0.2.1'), 'Firefox', '192.0.2.1'), { renew: false })
  t.equal(clients.check(hmacTag(Buffer.alloc(32, 3), 'Firefox\n192.0.2.1'), 'Firefox', '192.0.2.1'), null, 'another key does not')
})
