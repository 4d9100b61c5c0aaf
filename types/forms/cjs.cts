// CommonJS under `module: nodenext`: require, and a namespace import.
import Fastify = require('fastify')
import fastifyLogin = require('fastify-login')
import * as namespace from 'fastify-login'

const options = { secret: 'a secret of at least thirty-two characters', userLoader: () => null }
const app = Fastify()
app.register(fastifyLogin, options)
app.register(fastifyLogin.default, options)
app.register(fastifyLogin.fastifyLogin, options)
app.register(namespace.default, options)
// @ts-expect-error: not an option
app.register(fastifyLogin, { ...options, secrets: 'typo' })

class Member extends fastifyLogin.UserMixin {
  id = '1'
}
const classes: Array<typeof fastifyLogin.UserMixin> = [fastifyLogin.UserMixin, fastifyLogin.default.UserMixin, namespace.UserMixin, Member]
const anonymous: Array<typeof fastifyLogin.AnonymousUserMixin> = [fastifyLogin.AnonymousUserMixin, namespace.AnonymousUserMixin]
const manager: fastifyLogin.LoginManager = app.loginManager
export = { classes, anonymous, manager }
