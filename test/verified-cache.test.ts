import { test } from 'tap'
import { Signer } from '@fastify/cookie'
import { encodeAccount, LoginIds, VerifiedAccounts, type AccountToken } from '../lib/token'

const signer = new Signer(['a-secret-of-at-least-32-characters!!'])
const NOW = 1_000_000

function cookie (id: string, expiresAt: number): string {
  const token: AccountToken = { id, issuedAt: NOW, expiresAt, loginId: 'A'.repeat(16), remember: true, client: '' }
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
