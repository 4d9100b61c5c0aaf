import { test } from 'tap'
import { Writable } from 'node:stream'
import { build, clock, loginCookies, OTHER_SECRET, SECRET, signToken, accountToken } from './helpers'
import { encodeAccount } from '../lib/cookies/token'

// An instance with another secret (one that fell back to a random secret
// when LOGIN_SECRET was missing, behind a balancer) takes the other
// instances' cookies for anonymous visitors: it must say why, without
// letting forged cookies flood the log.

const now = (): number => Math.floor(Date.now() / 1000)

function logLines (): { stream: Writable, warnings: () => Array<{ level: number, msg: string, reqId?: string }> } {
  const lines: string[] = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      lines.push(String(chunk))
      callback()
    }
  })
  return { stream, warnings: () => lines.map((line) => JSON.parse(line)).filter((entry) => entry.level === 40) }
}

test('a cookie signed with another secret is anonymous, and a warning names the cause, once a minute at most', async (t) => {
  const time = clock(t)
  const { stream, warnings } = logLines()
  const { app } = await build({}, { logger: { level: 'warn', stream } })
  const other = await build({ secret: OTHER_SECRET })
  const foreign = await loginCookies(other.app, '1')

  const response = await app.inject({ url: '/who', cookies: foreign })
  t.same(response.json(), { authenticated: false, id: null, fresh: false }, 'still anonymous')
  t.equal(warnings().length, 1, 'one warning')
  t.match(warnings()[0].msg, /signature that none of this instance's keys verifies.*a different `secret` on this instance.*a secret rotated out too early.*at most once a minute/)
  t.ok(warnings()[0].reqId, 'logged with the request')
  t.equal((await app.inject({ url: '/me', cookies: foreign })).statusCode, 401)

  for (let i = 0; i < 5; i++) await app.inject({ url: '/who', cookies: foreign })
  t.equal(warnings().length, 1, 'not again within the minute')
  time.advance(59)
  await app.inject({ url: '/who', cookies: foreign })
  t.equal(warnings().length, 1)
  time.advance(1)
  await app.inject({ url: '/who', cookies: foreign })
  t.equal(warnings().length, 2, 'again a minute later')

  // Once a minute per registration: another registration warns on its own.
  const second = await build({}, { logger: { level: 'warn', stream } })
  await second.app.inject({ url: '/who', cookies: foreign })
  t.equal(warnings().length, 3)
})

test('no warning for cookies that are not ours, expired, or valid', async (t) => {
  const time = clock(t)
  const { stream, warnings } = logLines()
  const { app } = await build({ secret: [SECRET, OTHER_SECRET] }, { logger: { level: 'warn', stream } })
  const own = await loginCookies(app, '1')
  const { account } = own
  const payload = account.slice(0, account.lastIndexOf('.'))
  const signature = account.slice(account.lastIndexOf('.') + 1)
  const expired = signToken(encodeAccount(accountToken({ issuedAt: now() - 100, expiresAt: now() - 10, remember: false })), 'yet another secret, long enough for the test')
  const cases: Record<string, string> = {
    'a valid cookie': account,
    'a cookie of the rotated-out secret still in the list': (await loginCookies((await build({ secret: OTHER_SECRET })).app, '1')).account,
    'no signature': payload,
    'a short signature': `${payload}.${signature.slice(1)}`,
    'a signature with other characters': `${payload}.${signature.slice(1)}!`,
    'not our payload': `something.else.${signature}`,
    'expired, whatever its signature': expired,
    oversized: `${payload}${'0'.repeat(5000)}.${signature}`,
    'the design\'s raw id': '1'
  }
  for (const [label, value] of Object.entries(cases)) {
    time.advance(60)
    await app.inject({ url: '/who', cookies: { account: value } })
    t.equal(warnings().length, 0, label)
  }
})
