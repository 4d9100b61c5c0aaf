import { test } from 'tap'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { build, loginCookies } from './helpers'

// `refreshRoute` is where freshLoginRequired sends a login that is not fresh.
// A page there that refuses logged-in users (loginProhibited) sends them away
// again, for ever: the plugin says so, once.

function logged (): { stream: Writable, warnings: () => string[] } {
  const lines: string[] = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      lines.push(String(chunk))
      callback()
    }
  })
  return { stream, warnings: () => lines.map((line) => JSON.parse(line)).filter((entry) => entry.level === 40).map((entry) => entry.msg) }
}

const WARNING = /`refreshRoute` \(\/reauthenticate\) is guarded by `loginProhibited`, which refuses logged-in users.*Guard that page with `loginRequired` instead/

async function appWith (declare: (app: FastifyInstance) => void, refreshRoute = '/reauthenticate?from=guard'): Promise<{ app: FastifyInstance, warnings: () => string[] }> {
  const { stream, warnings } = logged()
  const { app } = await build({ refreshRoute }, { logger: { level: 'warn', stream } })
  declare(app)
  await app.ready()
  return { app, warnings }
}

test('a refreshRoute guarded by loginProhibited is reported when the route is declared, once', async (t) => {
  const declarations: Record<string, (app: FastifyInstance) => void> = {
    "config: { login: 'prohibited' }": (app) => {
      app.get('/reauthenticate', { config: { login: 'prohibited' } }, () => 'form')
      app.post('/reauthenticate', { config: { login: { mode: 'prohibited', route: '/' } } }, () => 'posted')
    },
    'onRequest: loginProhibited': (app) => {
      app.get('/reauthenticate', { onRequest: [app.loginManager.crossOriginProtection, app.loginManager.loginProhibited] }, () => 'form')
    },
    "preHandler: guard({ mode: 'prohibited' })": (app) => {
      app.get('/reauthenticate', { preHandler: app.loginManager.guard({ mode: 'prohibited', message: 'Log out first.' }) }, () => 'form')
    }
  }
  for (const [label, declare] of Object.entries(declarations)) {
    const { warnings } = await appWith(declare)
    t.equal(warnings().length, 1, `${label}: one warning`)
    t.match(warnings()[0], WARNING, label)
  }
})

test('no warning where the refresh page lets logged-in users in, or names no route of the app', async (t) => {
  const declarations: Record<string, [(app: FastifyInstance) => void, string?]> = {
    'loginRequired, as it should be': [(app) => { app.get('/reauthenticate', { config: { login: 'required' } }, () => 'form') }],
    'another page under loginProhibited': [(app) => { app.get('/login', { onRequest: app.loginManager.loginProhibited }, () => 'form') }],
    'no guard at all': [(app) => { app.get('/reauthenticate', () => 'form') }],
    'a refreshRoute on another site': [(app) => { app.get('/reauthenticate', { config: { login: 'prohibited' } }, () => 'form') }, 'https://auth.example.com/reauthenticate']
  }
  for (const [label, [declare, refreshRoute]] of Object.entries(declarations)) {
    const { warnings } = await appWith(declare, refreshRoute)
    t.same(warnings(), [], label)
  }
})

test('a scope\'s loginProhibited hook, unseen on its routes: reported the first time it refuses a user there', async (t) => {
  const { app, warnings } = await appWith((app) => {
    app.register(async (guests) => {
      guests.addHook('onRequest', guests.loginManager.loginProhibited)
      guests.get('/reauthenticate', () => 'form')
      guests.get('/signup', () => 'form')
    })
  })
  t.same(warnings(), [], 'nothing to see when the route is declared')
  const cookies = await loginCookies(app, '1')
  t.equal((await app.inject({ url: '/signup', cookies })).statusCode, 403)
  t.same(warnings(), [], 'refused elsewhere: nothing to say')
  t.equal((await app.inject('/reauthenticate')).statusCode, 200)
  t.same(warnings(), [], 'an anonymous visitor passes')
  t.equal((await app.inject({ url: '/reauthenticate', cookies })).statusCode, 403)
  t.equal(warnings().length, 1)
  t.match(warnings()[0], WARNING)
  await app.inject({ url: '/reauthenticate', cookies })
  t.equal(warnings().length, 1, 'once')
})
