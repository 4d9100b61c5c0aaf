// What a project that installed fastify-login runs, to see that the package
// works as installed: by test/package.test.ts (a packed tarball) and
// test/git-install.test.ts (an install from the git repository).

// CommonJS: the plugin logs a user in and guards a route. Prints its findings as JSON.
export const consumerScript = `
const Fastify = require('fastify')
const fastifyLogin = require('fastify-login')
const { UserMixin, AnonymousUserMixin } = fastifyLogin
class User extends UserMixin { constructor (id) { super(); this.id = id } }
async function main () {
  const app = Fastify()
  await app.register(fastifyLogin, { secret: 'a-consumer-secret-of-at-least-32-chars', userLoader: (id) => new User(id) })
  app.get('/login', (request, reply) => { app.loginManager.loginUser(request, reply, new User(3)); return 'ok' })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => request.currentUser.getId())
  const login = await app.inject('/login')
  const cookies = Object.fromEntries(login.cookies.map((c) => [c.name, c.value]))
  const me = await app.inject({ url: '/me', cookies })
  const anonymous = await app.inject('/me')
  console.log(JSON.stringify({
    shape: [typeof fastifyLogin, fastifyLogin.default === fastifyLogin, fastifyLogin.fastifyLogin === fastifyLogin, typeof AnonymousUserMixin],
    me: me.body,
    anonymous: anonymous.statusCode
  }))
}
main()
`

// ESM: the default and named imports.
export const esmScript = `
import fastifyLogin, { fastifyLogin as named, UserMixin, AnonymousUserMixin, memoryStore, redisStore } from 'fastify-login'
console.log(JSON.stringify([typeof fastifyLogin, named === fastifyLogin, typeof UserMixin, new AnonymousUserMixin().isAnonymous, typeof memoryStore, typeof redisStore]))
`

// The expected findings of consumerScript and esmScript.
export const consumerFindings = { shape: ['function', true, true, 'function'], me: '3', anonymous: 401 }
export const esmFindings = ['function', true, 'function', true, 'function', 'function']

// TypeScript, strict, with the app's user type declared: compiled with
// \`tsc --noEmit\` against the installed types.
export const typescriptConsumer = `import Fastify from 'fastify'
import fastifyLogin, { UserMixin, type LoginInfo } from 'fastify-login'

class User extends UserMixin {
  constructor (public id: string, public name: string) {
    super()
  }
}

declare module 'fastify-login' {
  interface LoginTypes { user: User }
}

const app = Fastify()
await app.register(fastifyLogin, { secret: 'a-consumer-secret-of-at-least-32-chars', userLoader: (id) => new User(id, 'Ada') })
app.get('/me', { config: { login: 'required' } }, (request) => {
  const info: LoginInfo = app.loginManager.loginInfo(request)
  return { name: request.currentUser.name, remembered: info.remembered }
})
`

export const typescriptConfig = {
  compilerOptions: {
    strict: true,
    exactOptionalPropertyTypes: true,
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'es2022',
    types: ['node'],
    noEmit: true
  },
  files: ['consumer.mts']
}
