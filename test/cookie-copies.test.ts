import { test } from 'tap'
import { createRequire } from 'node:module'
import Fastify from 'fastify'
import fastifyLogin from '../lib/index'
import { cookieJar, SECRET, User } from './helpers'

// An app's @fastify/cookie can be another copy of the package than the one
// fastify-login imports: another version, or the copy another plugin brings
// along. Each copy loads its cookie functions on its own first registration,
// so fastify-login must use the app's instance, not its own module. Alone in
// this file, so that fastify-login's own copy is never registered here.
function anotherCopyOfCookie (): typeof import('@fastify/cookie') {
  const load = createRequire(__filename)
  const entry = load.resolve('@fastify/cookie')
  const signer = load.resolve('@fastify/cookie/signer')
  const cached = { entry: load.cache[entry], signer: load.cache[signer] }
  delete load.cache[entry]
  delete load.cache[signer]
  try {
    return load('@fastify/cookie')
  } finally {
    load.cache[entry] = cached.entry
    load.cache[signer] = cached.signer
  }
}

test('with another copy of @fastify/cookie in the app, logins are written and read', async (t) => {
  const otherCookie = anotherCopyOfCookie()
  t.not(otherCookie, (await import('@fastify/cookie')).default, 'really another copy')
  for (const hook of ['onRequest', false] as const) {
    const app = Fastify()
    await app.register(otherCookie, { hook })
    await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => new User(id, 'x') })
    app.get('/login', (request, reply) => {
      app.loginManager.loginUser(request, reply, new User(7, 'x'))
      return 'ok'
    })
    app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => request.currentUser.getId())
    const login = await app.inject('/login')
    t.equal(login.statusCode, 200, `hook ${hook}: the login is written`)
    const me = await app.inject({ url: '/me', cookies: cookieJar(login) })
    t.equal(me.body, '7', `hook ${hook}: and read back`)
  }
})
