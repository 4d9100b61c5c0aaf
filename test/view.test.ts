import { test } from 'tap'
import Fastify from 'fastify'
import fastifyView from '@fastify/view'
import ejs from 'ejs'
import { join } from 'node:path'
import fastifyLogin from '../lib/index'
import { loginCookies, SECRET, User, userStore } from './helpers'

const template = 'page.ejs'

async function pageApp (viewFirst: boolean, loader: (id: string) => unknown) {
  const app = Fastify()
  const users = userStore()
  const view = async () => { await app.register(fastifyView, { engine: { ejs }, root: join(__dirname, 'fixtures') }) }
  if (viewFirst) await view()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => loader(id) as never ?? users.get(id) })
  if (!viewFirst) await view()
  app.get<{ Params: { id: string } }>('/login/:id', (request, reply) => {
    app.loginManager.loginUser(request, reply, users.get(request.params.id) as User)
    return 'ok'
  })
  app.get('/page', (_request, reply) => reply.viewAsync(template, { title: 'Home' }).then((html) => reply.type('text/html').send(html)))
  app.get('/guarded-page', { onRequest: app.loginManager.loginRequired }, (_request, reply) => reply.viewAsync(template, { title: 'Profile' }).then((html) => reply.type('text/html').send(html)))
  app.get('/locals', (_request, reply) => {
    (reply as unknown as { locals: object }).locals = { title: 'replaced locals' }
    return reply.viewAsync('title.ejs', {})
  })
  return app
}

for (const viewFirst of [false, true]) {
  const order = viewFirst ? '@fastify/view registered first' : 'fastify-login registered first'
  test(`templates see currentUser (${order})`, async (t) => {
    const app = await pageApp(viewFirst, () => undefined)
    t.equal((await app.inject('/page')).body, 'Log in | Home')
    const cookies = await loginCookies(app, '2')
    t.equal((await app.inject({ url: '/page', cookies })).body, 'Logged in as bob | Home')
    t.equal((await app.inject('/locals')).body, 'replaced locals', 'reply.locals stays writable')
  })
}

test('with an async loader, a template on a guarded route sees the user', async (t) => {
  const users = userStore()
  const app = await pageApp(false, async (id) => users.get(id))
  const cookies = await loginCookies(app, '1')
  t.equal((await app.inject({ url: '/guarded-page', cookies })).body, 'Logged in as ann | Profile')
  const unguarded = await app.inject({ url: '/page', cookies })
  t.equal(unguarded.statusCode, 500, 'an unguarded page must load the user first')
  t.match(unguarded.json(), { code: 'FST_LOGIN_USER_NOT_LOADED' })
})

test('without @fastify/view, reply.locals still holds currentUser for other renderers', async (t) => {
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
  app.get('/locals', (_request, reply) => {
    const locals = (reply as unknown as { locals: { currentUser: User } }).locals
    return { keys: Object.keys(locals), anonymous: locals.currentUser.isAnonymous }
  })
  t.same((await app.inject('/locals')).json(), { keys: ['currentUser'], anonymous: true })
})
