import fp = require('fastify-plugin')
import type PublicTypes = require('../types/index')
import mixins = require('./mixins')
import pluginModule = require('./plugin')
import memory = require('./stores/memory')
import redis = require('./stores/redis')

// No `export` statement here: TypeScript would mark the module with
// `__esModule`, and a bundler that sees it beside `default` may give ESM code
// the wrong default import (publint warns of it). `export =` is a plain
// `module.exports =`.
const fastifyLogin = Object.assign(fp(pluginModule.plugin, {
  fastify: '5.x',
  name: 'fastify-login'
}), {
  UserMixin: mixins.UserMixin,
  AnonymousUserMixin: mixins.AnonymousUserMixin,
  memoryStore: memory.memoryStore,
  redisStore: redis.redisStore
})

// The export shape of the official plugins: `require('fastify-login')` is the
// plugin itself, with `default` and the named exports hanging off it. Typed
// against the published declarations (types/index.d.ts): the two cannot drift
// apart.
const publicApi: typeof PublicTypes = Object.assign(fastifyLogin, { default: fastifyLogin, fastifyLogin })
export = publicApi

// Node's ESM loader learns the named exports of a CommonJS module by reading
// its source for `exports.name =` lines, and TypeScript writes `export =` as
// one `module.exports =` at the very end: these lines are for the loader (the
// values it then reads come from publicApi itself).
module.exports.default = publicApi
module.exports.fastifyLogin = publicApi
module.exports.UserMixin = mixins.UserMixin
module.exports.AnonymousUserMixin = mixins.AnonymousUserMixin
module.exports.memoryStore = memory.memoryStore
module.exports.redisStore = redis.redisStore
