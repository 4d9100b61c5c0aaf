import { test } from 'tap'
import type { Test } from 'tap'
import { redisStore } from '../lib/index'
import type { LoginRecord, LoginStore } from '../types/index'
import { bindingApp, protocolSuite, type Instances } from './device-binding-suite'
import { redisClient, startRedis } from './redis-server'

// Device binding's protocol with redisStore: a real redis-server, and two
// instances of the app, each with its own client. One issues the login and
// the challenges, the other checks the registration and the proofs: the
// challenges are signed, the keys and the used challenges are in Redis.

async function instances (t: Test): Promise<Instances> {
  const server = await startRedis(t)
  const events = { bound: [] as LoginRecord[], missing: [] as string[] }
  const store = (): LoginStore => redisStore({ client: redisClient(t, server.port) })
  return { issuer: await bindingApp(t, store(), {}, events), verifier: await bindingApp(t, store(), {}, events), ...events }
}

test('the protocol, with redisStore and two instances', async (t) => {
  protocolSuite(t, 'redisStore', instances)
})

test('redisStore: bind once, each challenge once, only for an existing login of the user', async (t) => {
  const server = await startRedis(t)
  const client = redisClient(t, server.port)
  const store = redisStore({ client })
  const now = Math.floor(Date.now() / 1000)
  const record: LoginRecord = { loginId: 'l1', userId: 'ann', createdAt: now, lastSeenAt: now, expiresAt: now + 60, remembered: false, userAgent: '', ip: '', method: null, authenticatedAt: now, generation: 0, generationUsedAt: now, realm: 'r', deviceKey: null, deviceSession: null, deviceChallengeAt: 0, bound: false }
  await store.create(record)
  t.equal(await store.bind?.('l1', 'bob', '{"k":1}', 's1'), false, 'not under another user')
  t.equal(await store.bind?.('nope', 'ann', '{"k":1}', 's1'), false, 'not a missing login')
  t.equal(await client.exists('fastify-login:{u:Ym9i}:login:l1'), 0, 'nor created')
  t.equal(await store.bind?.('l1', 'ann', '{"k":1}', 's1'), true)
  t.equal(await store.bind?.('l1', 'ann', '{"k":2}', 's2'), false, 'once')
  t.match(await store.get('l1', 'ann'), { deviceKey: '{"k":1}', deviceSession: 's1', deviceChallengeAt: 0, bound: true })
  t.equal(await store.useChallenge?.('l1', 'ann', 1000), true)
  t.equal(await store.useChallenge?.('l1', 'ann', 1000), false, 'each once')
  t.equal(await store.useChallenge?.('l1', 'ann', 999), false, 'never an older one')
  t.equal(await store.useChallenge?.('l1', 'bob', 2000), false, 'not under another user')
  t.equal(await store.useChallenge?.('nope', 'ann', 2000), false, 'not a missing login')
  t.equal((await store.get('l1', 'ann'))?.deviceChallengeAt, 1000)
  t.same((await store.list('ann')).map((login) => login.bound), [true], 'list shows it bound')
})
