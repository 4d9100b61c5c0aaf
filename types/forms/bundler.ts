// A bundler's resolution (`module: preserve`): the default, named and
// namespace imports, and members read off the default import.
import Fastify from 'fastify'
import fastifyLogin, { fastifyLogin as named, AnonymousUserMixin, UserMixin, type LoginManager } from 'fastify-login'
import * as namespace from 'fastify-login'

const options = { secret: 'a secret of at least thirty-two characters', userLoader: () => null }
const app = Fastify()
await app.register(fastifyLogin, options)
await app.register(named, options)
await app.register(namespace.default, options)
// @ts-expect-error: not an option
await app.register(fastifyLogin, { ...options, secrets: 'typo' })

class Member extends fastifyLogin.UserMixin {
  id = '1'
}
const classes: Array<typeof UserMixin> = [UserMixin, fastifyLogin.UserMixin, named.UserMixin, namespace.UserMixin, namespace.default.UserMixin, Member]
const anonymous: Array<typeof AnonymousUserMixin> = [AnonymousUserMixin, fastifyLogin.AnonymousUserMixin, namespace.AnonymousUserMixin]
const manager: LoginManager = app.loginManager
export { classes, anonymous, manager }
