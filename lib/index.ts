import fp from 'fastify-plugin'
import type * as PublicTypes from '../types/index'
import * as mixins from './mixins'
import { plugin } from './plugin'
import { memoryStore as inMemory } from './stores/memory'
import { redisStore as inRedis } from './stores/redis'

// Plain `exports.X =` assignments (no re-export getters): Node's ESM loader
// reads the named exports of this CommonJS module from them.
export const fastifyLogin = fp(plugin, {
  fastify: '5.x',
  name: 'fastify-login'
})
export const UserMixin = mixins.UserMixin
export const AnonymousUserMixin = mixins.AnonymousUserMixin
export const memoryStore = inMemory
export const redisStore = inRedis
export default fastifyLogin

// Typed against the published declarations (types/index.d.ts): the two cannot drift apart.
const publicApi: Pick<typeof PublicTypes, 'default' | 'fastifyLogin' | 'UserMixin' | 'AnonymousUserMixin' | 'memoryStore' | 'redisStore'> = {
  default: fastifyLogin,
  fastifyLogin,
  UserMixin,
  AnonymousUserMixin,
  memoryStore,
  redisStore
}

// The export shape of the official plugins: `require('fastify-login')` is the
// plugin itself, with `default` and the named exports hanging off it.
module.exports = Object.assign(fastifyLogin, publicApi)
