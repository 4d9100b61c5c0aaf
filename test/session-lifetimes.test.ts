import { test } from 'tap'
import { memoryStore } from '../lib/index'
import type { FastifyLoginOptions } from '../types/index'
import { build, clock, cookieJar } from './helpers'

// SECURITY.md, "Session lifetimes and NIST SP 800-63B": the settings it gives
// for AAL2 and AAL3 end a login at the overall and the inactivity timeout,
// with a store and without; confirmLogin keeps the login's lifetime;
// cookieRefreshEachRequest leaves a remembered login no overall timeout.

const HOUR = 60 * 60
const LEVELS: Array<[string, FastifyLoginOptions, number, number]> = [
  ['AAL2', { idleTimeout: HOUR }, 24 * HOUR, HOUR],
  ['AAL3', { sessionDuration: 12 * HOUR, idleTimeout: 15 * 60 }, 12 * HOUR, 15 * 60]
]

for (const [level, options, overall, inactivity] of LEVELS) {
  for (const store of [false, true]) {
    test(`${level} settings ${store ? 'with' : 'without'} a store: ended after ${inactivity} s unused, and ${overall} s after the login however active`, async (t) => {
      const time = clock(t)
      const { app } = await build({ ...options, ...(store ? { store: memoryStore() } : {}) })
      const me = async (cookies: Record<string, string>): Promise<number> => {
        const response = await app.inject({ url: '/me', cookies })
        Object.assign(cookies, cookieJar(response))
        return response.statusCode
      }
      const idle = cookieJar(await app.inject('/login/1?remember=0'))
      time.advance(inactivity - 1)
      t.equal(await me(idle), 200, 'used just within the inactivity timeout')
      time.advance(inactivity)
      t.equal(await me(idle), 401, 'unused for the inactivity timeout: ended')

      const active = cookieJar(await app.inject('/login/1?remember=0'))
      const step = Math.floor(inactivity / 2)
      let elapsed = 0
      const statuses = new Set<number>()
      while (elapsed + step < overall) {
        time.advance(step)
        elapsed += step
        statuses.add(await me(active))
      }
      t.same([...statuses], [200], `used every ${step} s, it lived ${elapsed} s`)
      time.advance(overall - elapsed)
      t.equal(await me(active), 401, 'at the overall timeout: ended, however active')
    })
  }
}

test('confirmLogin makes a login fresh again and keeps its lifetime; loginUser starts a new one', async (t) => {
  const time = clock(t)
  const { app } = await build()
  app.get('/confirm', { onRequest: app.loginManager.loginRequired }, (request, reply) => {
    app.loginManager.confirmLogin(request, reply)
    return app.loginManager.loginInfo(request)
  })
  app.get('/info', { onRequest: app.loginManager.loginRequired }, (request) => app.loginManager.loginInfo(request))
  const cookies = cookieJar(await app.inject('/login/1?remember=0'))
  const before = (await app.inject({ url: '/info', cookies })).json()
  time.advance(2 * HOUR)
  const confirmed = await app.inject({ url: '/confirm', cookies })
  t.match(confirmed.json(), { fresh: true, issuedAt: before.issuedAt, expiresAt: before.expiresAt }, 'fresh, the same lifetime')
  const again = cookieJar(await app.inject({ url: '/login/1?remember=0', cookies: { ...cookies, ...cookieJar(confirmed) } }))
  t.equal((await app.inject({ url: '/info', cookies: again })).json().expiresAt, before.expiresAt + 2 * HOUR, 'a new login: a new overall timeout')
})

test('cookieRefreshEachRequest: a remembered login in use never reaches an overall timeout', async (t) => {
  const time = clock(t)
  const { app } = await build({ cookieRefreshEachRequest: true, cookieDuration: HOUR })
  const cookies = cookieJar(await app.inject('/login/1?remember=1'))
  // Every half hour for a day.
  for (let visit = 0; visit < 48; visit++) {
    time.advance(HOUR / 2)
    Object.assign(cookies, cookieJar(await app.inject({ url: '/me', cookies })))
  }
  t.equal((await app.inject({ url: '/me', cookies })).statusCode, 200, 'a day past its hour-long lifetime, still logged in: why SECURITY.md says to leave it off')
})
