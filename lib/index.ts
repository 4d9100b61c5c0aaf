import fp from 'fastify-plugin'
import type * as PublicTypes from '../types/index'
import { AnonymousUserMixin, UserMixin } from './mixins'
import { plugin } from './plugin'

const fastifyLogin = fp(plugin, {
  fastify: '5.x',
  name: 'fastify-login'
})

// Typed against the published declarations (types/index.d.ts): the two cannot drift apart.
const publicApi: Pick<typeof PublicTypes, 'default' | 'fastifyLogin' | 'UserMixin' | 'AnonymousUserMixin'> = {
  default: fastifyLogin,
  fastifyLogin,
  UserMixin,
  AnonymousUserMixin
}

export default fastifyLogin
export { fastifyLogin, UserMixin, AnonymousUserMixin }

// The export shape of the official plugins: `require('fastify-login')` is the
// plugin itself, with `default` and the named exports hanging off it. Node's
// ESM loader finds the named exports from the `exports.X =` lines above.
module.exports = Object.assign(fastifyLogin, publicApi)
