import { test } from 'tap'
import Fastify, { type FastifyReply } from 'fastify'
import fastifyView from '@fastify/view'
import fastifyView11 from '@fastify/view11'
import ejs from 'ejs'
import handlebars from 'handlebars'
import nunjucks from 'nunjucks'
import pug from 'pug'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fastifyLogin from '../lib/index'
import { loginCookies, SECRET, User, userStore } from './helpers'

// `currentUser` in the templates of four engines through @fastify/view, in
// both registration orders, with the locals left alone or replaced by the
// app in a preHandler (as @fastify/view's README does).
const root = mkdtempSync(join(tmpdir(), 'fastify-login-templates-'))
const engines = {
  ejs: { engine: { ejs }, file: 'page.ejs', source: "<%= currentUser.isAuthenticated ? 'in:' + currentUser.name : 'anonymous' %> <%= title %>" },
  nunjucks: { engine: { nunjucks }, file: 'page.njk', source: '{% if currentUser.isAuthenticated %}in:{{ currentUser.name }}{% else %}anonymous{% endif %} {{ title }}' },
  pug: { engine: { pug }, file: 'page.pug', source: "| #{currentUser.isAuthenticated ? 'in:' + currentUser.name : 'anonymous'} #{title}" },
  handlebars: { engine: { handlebars }, file: 'page.hbs', source: '{{#if currentUser.isAuthenticated}}in:{{currentUser.name}}{{else}}anonymous{{/if}} {{title}}' }
}
for (const { file, source } of Object.values(engines)) writeFileSync(join(root, file), source)

type Locals = 'untouched' | 'replaced'

async function pageApp (name: keyof typeof engines, viewFirst: boolean, locals: Locals, view: typeof fastifyView = fastifyView) {
  const { engine, file } = engines[name]
  const users = userStore()
  const app = Fastify()
  const registerView = async (): Promise<void> => { await app.register(view, { engine, root }) }
  if (viewFirst) await registerView()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => users.get(id) })
  if (!viewFirst) await registerView()
  app.get<{ Params: { id: string } }>('/login/:id', (request, reply) => {
    app.loginManager.loginUser(request, reply, users.get(request.params.id) as User)
    return 'ok'
  })
  app.get('/page', {
    preHandler: (_request, reply, done) => {
      if (locals === 'replaced') (reply as FastifyReply & { locals: object }).locals = { title: 'page' }
      done()
    }
  }, async (_request, reply) => {
    const html = await reply.viewAsync(file, locals === 'replaced' ? {} : { title: 'page' })
    return reply.type('text/html').send(html.trim())
  })
  return app
}

for (const name of Object.keys(engines) as Array<keyof typeof engines>) {
  for (const viewFirst of [false, true]) {
    for (const locals of ['untouched', 'replaced'] as Locals[]) {
      const order = viewFirst ? '@fastify/view first' : 'fastify-login first'
      test(`${name}: currentUser in the template (${order}, locals ${locals})`, async (t) => {
        const app = await pageApp(name, viewFirst, locals)
        t.teardown(() => app.close())
        const anonymous = await app.inject('/page')
        t.equal(anonymous.statusCode, 200)
        t.equal(anonymous.body, 'anonymous page')
        const cookies = await loginCookies(app, '1')
        const loggedIn = await app.inject({ url: '/page', cookies })
        t.equal(loggedIn.statusCode, 200)
        t.equal(loggedIn.body, 'in:ann page', 'the logged-in user, isAuthenticated and name included')
      })
    }
  }
}

test('@fastify/view 11 too, in both orders, with replaced locals', async (t) => {
  for (const viewFirst of [false, true]) {
    const app = await pageApp('ejs', viewFirst, 'replaced', fastifyView11 as unknown as typeof fastifyView)
    const cookies = await loginCookies(app, '2')
    t.equal((await app.inject({ url: '/page', cookies })).body, 'in:bob page')
    t.equal((await app.inject('/page')).body, 'anonymous page')
    await app.close()
  }
})

test('the template user is the user: its methods, its class, its own fields', async (t) => {
  const users = userStore()
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => users.get(id) })
  await app.register(fastifyView, { engine: { ejs }, root })
  writeFileSync(join(root, 'methods.ejs'), '<%= currentUser.getId() %> <%= currentUser instanceof User %> <%= Object.keys(currentUser).includes("name") %> <%= currentUser.equals(user) %>')
  app.get('/methods', (_request, reply) => reply.viewAsync('methods.ejs', { User, user: users.get('2') }))
  const cookies = await app.loginManager.cookiesFor(users.get('2') as User)
  t.equal((await app.inject({ url: '/methods', cookies })).body, '2 true true true')
  await app.close()
})

test('Handlebars still refuses the prototype methods of the user', async (t) => {
  const app = await pageApp('handlebars', false, 'untouched')
  writeFileSync(join(root, 'methods.hbs'), '[{{currentUser.getId}}|{{currentUser.toString}}|{{currentUser.isActive}}]')
  app.get('/hbs-methods', (_request, reply) => reply.viewAsync('methods.hbs', {}))
  const cookies = await loginCookies(app, '1')
  t.equal((await app.inject({ url: '/hbs-methods', cookies })).body, '[||true]')
  await app.close()
})

for (const viewFirst of [false, true]) {
  // (With fastify-login first, null stands for locals not made yet: reading
  // them again makes new ones.)
  test(`locals with a currentUser of their own are kept as they are (${viewFirst ? '@fastify/view' : 'fastify-login'} first)`, async (t) => {
    const app = await pageApp('ejs', viewFirst, 'untouched')
    app.get('/own', (_request, reply) => {
      const withLocals = reply as FastifyReply & { locals: unknown }
      withLocals.locals = null
      const nulled = withLocals.locals
      withLocals.locals = { currentUser: 'the app\'s own' }
      return { nulled: nulled === null ? null : Object.keys(nulled as object), own: (withLocals.locals as { currentUser: string }).currentUser }
    })
    const cookies = await loginCookies(app, '1')
    t.same((await app.inject({ url: '/own', cookies })).json(), { nulled: viewFirst ? null : ['currentUser'], own: 'the app\'s own' })
    await app.close()
  })
}

test('teardown', async () => { rmSync(root, { recursive: true, force: true }) })
