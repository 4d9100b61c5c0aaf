import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRateLimit from '@fastify/rate-limit'
import fastifyLogin from '../lib/index'
import { SECRET } from './helpers'

// SECURITY.md: @fastify/rate-limit registered before fastify-login counts
// the requests the guards refuse, for every form a guard takes on a route;
// a scope-wide guard runs before any route hook, and the rate limit's hook
// must then be scope-wide too.

const LIMITED = [401, 401, 401, 429, 429]

async function app (rateLimit: Record<string, unknown> = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(fastifyRateLimit, { max: 3, timeWindow: 60_000, ...rateLimit })
  await app.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
  return app
}

async function statuses (app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<number[]> {
  const answers: number[] = []
  for (let i = 0; i < 5; i++) answers.push((await app.inject({ url, headers })).statusCode)
  return answers
}

test('every form of a route\'s guard: the requests it refuses are counted by a rate limit registered before', async (t) => {
  const own = (_request: unknown, _reply: unknown, done: () => void): void => { done() }
  const forms: Array<[string, (server: FastifyInstance) => Record<string, unknown>]> = [
    ['config.login', () => ({ config: { login: 'required' } })],
    ['onRequest: loginRequired', (server) => ({ onRequest: server.loginManager.loginRequired })],
    ['onRequest: [crossOriginProtection, loginRequired]', (server) => ({ onRequest: [server.loginManager.crossOriginProtection, server.loginManager.loginRequired] })],
    ['onRequest: [loginRequired, a hook of the app]', (server) => ({ onRequest: [server.loginManager.loginRequired, own] })],
    ['onRequest: guard({ ... })', (server) => ({ onRequest: server.loginManager.guard({ mode: 'required', message: 'members only' }) })],
    ['preHandler: loginRequired', (server) => ({ preHandler: server.loginManager.loginRequired })]
  ]
  for (const [form, options] of forms) {
    const server = await app()
    server.get('/', options(server), () => 'ok')
    t.same(await statuses(server, '/'), LIMITED, `${form}: the 4th anonymous request is limited, not refused again`)
  }
  const server = await app()
  server.post('/transfer', { onRequest: server.loginManager.crossOriginProtection }, () => 'ok')
  const refused: number[] = []
  for (let i = 0; i < 5; i++) refused.push((await server.inject({ method: 'POST', url: '/transfer', headers: { 'sec-fetch-site': 'cross-site' } })).statusCode)
  t.same(refused, [403, 403, 403, 429, 429], 'crossOriginProtection\'s refusals are counted too')
})

test('a rate limit in preValidation or preHandler counts the refusals of a guard in the same stage', async (t) => {
  for (const hook of ['preValidation', 'preHandler']) {
    const server = await app({ hook })
    server.get('/', { [hook]: server.loginManager.loginRequired }, () => 'ok')
    t.same(await statuses(server, '/'), LIMITED, hook)
  }
})

test('the route\'s other hooks keep their order, and the app\'s array is not changed', async (t) => {
  const server = await app()
  const order: string[] = []
  const first = (_request: unknown, _reply: unknown, done: () => void): void => { order.push('first'); done() }
  server.get('/a', { onRequest: [first, server.loginManager.crossOriginProtection, server.loginManager.loginRequired] }, () => 'a')
  t.same(await statuses(server, '/a'), LIMITED)
  t.same(order, ['first', 'first', 'first', 'first', 'first'], 'the app\'s hook, then the rate limit, then the guards')
  const unlimited = await app({ global: false })
  const shared = [unlimited.loginManager.loginRequired, first]
  unlimited.get('/b', { onRequest: shared }, () => 'b')
  unlimited.get('/c', { onRequest: shared }, () => 'c')
  t.same(shared, [unlimited.loginManager.loginRequired, first], 'an array of the app, perhaps shared between routes, is never reordered in place')
})

test('a scope-wide guard runs before every route hook: the rate limit\'s hook must be scope-wide too', async (t) => {
  const unlimited = await app()
  unlimited.addHook('onRequest', unlimited.loginManager.loginRequired)
  unlimited.get('/scope', () => 'ok')
  t.same(await statuses(unlimited, '/scope'), [401, 401, 401, 401, 401], 'the route\'s rate-limit hook comes too late')

  // The fix SECURITY.md gives: the rate limit as a scope-wide hook, before the guard.
  const limited = await app({ global: false })
  limited.addHook('onRequest', limited.rateLimit({ max: 3, timeWindow: 60_000 }))
  limited.addHook('onRequest', limited.loginManager.loginRequired)
  limited.get('/scope', () => 'ok')
  t.same(await statuses(limited, '/scope'), LIMITED)
})
