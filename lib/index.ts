import fp from 'fastify-plugin'
import type * as PublicTypes from '../types/index'
import { AnonymousUserMixin, UserMixin } from './mixins'
import { plugin } from './plugin'

const fastifyLogin = fp(plugin, {
  fastify: '5.x',
  name: 'fastify-login'
})

// The implementation must match the published declarations (types/index.d.ts).
const checkPlugin: typeof PublicTypes.fastifyLogin = fastifyLogin
const checkClasses: Pick<typeof PublicTypes, 'UserMixin' | 'AnonymousUserMixin'> = { UserMixin, AnonymousUserMixin }
void checkPlugin
void checkClasses

export default fastifyLogin
export { fastifyLogin, UserMixin, AnonymousUserMixin }

// The export shape of the official plugins: `require('fastify-login')` is the
// plugin itself, with `default` and the named exports hanging off it. Node's
// ESM loader finds the named exports from the `exports.X =` lines above.
module.exports = Object.assign(fastifyLogin, exports)
