import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifySwagger from '@fastify/swagger'
import fastifyLogin from '../lib/index'
import { build, loginCookies, SECRET, userStore } from './helpers'

// With @fastify/swagger, the operations of routes that `config.login`
// guards ('required', 'fresh') require the login cookie, declared as a
// security scheme of the document; other routes require nothing.

type Operation = { security?: unknown, summary?: string, tags?: string[] }
interface Document {
  paths: Record<string, Record<string, Operation>>
  components: { securitySchemes?: Record<string, unknown> }
}

const SCHEME = { type: 'apiKey', in: 'cookie', name: 'account' }

function routes (app: FastifyInstance): void {
  app.get('/profile', { config: { login: 'required' } }, () => 'profile')
  app.post('/password', { config: { login: 'fresh' } }, () => 'changed')
  app.get('/admin', { config: { login: { mode: 'required', route: '/admin/login' } } }, () => 'admin')
  app.get('/confirm', { config: { login: { mode: 'fresh', message: 'Again, please.' } } }, () => 'confirm')
  app.get('/login', { config: { login: 'prohibited' } }, () => 'form')
  app.get('/home', { config: { login: 'optional' } }, () => 'home')
  app.get('/public', () => 'public')
  app.get('/guarded-by-hook', { onRequest: app.loginManager.loginRequired }, () => 'not declared')
  // The route's own requirement stays as it wrote it.
  app.get('/reports', { config: { login: 'required' }, schema: { security: [{ bearer: [] }], tags: ['reports'] } as object }, () => 'reports')
  // Its own transform still runs; `false` (no transform at all) is kept too.
  app.get('/summarized', {
    config: { login: 'required', swaggerTransform: ({ schema, url }: { schema: object, url: string }) => ({ schema: { ...schema, summary: `own ${url}` }, url }) }
  } as object, () => 'summarized')
  app.get('/untransformed', { config: { login: 'required', swaggerTransform: false } } as object, () => 'untransformed')
}

const SWAGGER = {
  openapi: {
    info: { title: 'portal', version: '1.0.0' },
    components: { securitySchemes: { bearer: { type: 'http' as const, scheme: 'bearer' } } }
  }
}

async function documented (order: 'before' | 'after'): Promise<Document> {
  const users = userStore()
  const app = Fastify()
  if (order === 'before') await app.register(fastifySwagger, SWAGGER)
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => users.get(id) })
  if (order === 'after') await app.register(fastifySwagger, SWAGGER)
  routes(app)
  await app.ready()
  return app.swagger() as unknown as Document
}

for (const order of ['before', 'after'] as const) {
  test(`@fastify/swagger registered ${order} fastify-login: guarded routes require the login cookie`, async (t) => {
    const document = await documented(order)
    const { paths } = document
    t.same(document.components.securitySchemes, { bearer: { type: 'http', scheme: 'bearer' }, fastifyLogin: SCHEME }, 'the cookie is a security scheme, beside the app\'s own')
    for (const [path, method] of [['/profile', 'get'], ['/password', 'post'], ['/admin', 'get'], ['/confirm', 'get'], ['/summarized', 'get'], ['/untransformed', 'get']]) {
      t.same(paths[path][method].security, [{ fastifyLogin: [] }], `${method.toUpperCase()} ${path} requires it`)
    }
    for (const path of ['/login', '/home', '/public', '/guarded-by-hook']) {
      t.equal(paths[path].get.security, undefined, `GET ${path} requires nothing`)
    }
    t.same(paths['/reports'].get.security, [{ bearer: [] }], 'a route\'s own requirement is kept')
    t.same(paths['/reports'].get.tags, ['reports'])
    t.equal(paths['/summarized'].get.summary, 'own /summarized', 'a route\'s own transform still runs')
  })
}

test('the scheme names the cookie; a scheme the app declared under that name stays', async (t) => {
  const app = Fastify()
  await app.register(fastifySwagger, { openapi: { info: { title: 'x', version: '1' } } })
  await app.register(fastifyLogin, { secret: SECRET, userLoader: () => null, cookieName: { account: '__Host-who', isFresh: '__Host-recent' }, cookieSecure: true })
  app.get('/me', { config: { login: 'required' } }, () => 'me')
  await app.ready()
  const document = app.swagger() as unknown as Document
  t.same(document.components.securitySchemes, { fastifyLogin: { type: 'apiKey', in: 'cookie', name: '__Host-who' } }, 'a document without schemes of its own gets one')
  t.same(app.swagger(), document, 'the same document on the next call')

  const declared = Fastify()
  const own = { type: 'apiKey' as const, in: 'cookie', name: 'account', description: 'the app\'s words' }
  await declared.register(fastifySwagger, { openapi: { info: { title: 'x', version: '1' }, components: { securitySchemes: { fastifyLogin: own } } } })
  await declared.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
  declared.get('/me', { config: { login: 'required' } }, () => 'me')
  await declared.ready()
  t.same((declared.swagger() as unknown as Document).components.securitySchemes, { fastifyLogin: own })
})

test('a global transform, handed to app.loginManager.swaggerTransform, runs for the guarded routes too', async (t) => {
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
  const summarize = ({ schema, url }: { schema?: object, url: string }): { schema: object, url: string } => ({ schema: { ...schema, summary: `global ${url}` }, url })
  t.equal(app.loginManager.swaggerTransform(summarize), summarize, 'it gives the transform back, for swagger\'s options')
  t.throws(() => app.loginManager.swaggerTransform('summarize' as never), { code: 'FST_LOGIN_INVALID_OPTION', message: /`swaggerTransform` must be a function/ })
  await app.register(fastifySwagger, { openapi: { info: { title: 'x', version: '1' } }, transform: summarize })
  app.get('/me', { config: { login: 'required' } }, () => 'me')
  app.get('/public', () => 'public')
  await app.ready()
  const { paths } = app.swagger() as unknown as Document
  t.equal(paths['/me'].get.summary, 'global /me')
  t.same(paths['/me'].get.security, [{ fastifyLogin: [] }])
  t.equal(paths['/public'].get.summary, 'global /public')
})

test('Swagger 2.0 documents, which have no cookie schemes, are left as they were', async (t) => {
  const app = Fastify()
  await app.register(fastifySwagger, { swagger: { info: { title: 'x', version: '1' } } })
  await app.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
  app.get('/me', { config: { login: 'required' } }, () => 'me')
  await app.ready()
  const document = app.swagger() as unknown as { paths: Record<string, Record<string, Operation>>, securityDefinitions?: unknown }
  t.equal(document.paths['/me'].get.security, undefined)
  t.equal(document.securityDefinitions, undefined)
})

test('without @fastify/swagger, the routes are left as they were', async (t) => {
  const { app } = await build()
  app.get('/config', { config: { login: 'required' } }, (request) => Object.keys(request.routeOptions.config))
  const cookies = await loginCookies(app, '1')
  t.notOk(((await app.inject({ url: '/config', cookies })).json() as string[]).includes('swaggerTransform'), 'no transform added')
})
