import { createHash, randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import type { LoginRecord, LoginStore, LoginStoreListener, RedisStoreOptions, Revocation } from '../../types/index'
import { nowInSeconds } from '../clock'
import { FST_LOGIN_INVALID_OPTION, FST_LOGIN_STORE_CORRUPT } from '../errors'
import { Subscriber } from './redis-subscriber'

// Logins kept in Redis (standalone or Cluster), so every instance sees them
// and can end them. The app's own ioredis client does the work: this file
// only imports ioredis' types, never ioredis itself.
//
// Key layout, for prefix P and user id U (T = base64url of U's UTF-8 bytes):
//   P{u:T}:login:<loginId>   a hash: the record; expires at its expiresAt
//   P{u:T}:logins            a sorted set: the user's login ids scored by
//                            expiresAt; expires with the last of them
//   Pended                   a sorted set: every ended login ("<loginId>
//                            <U>") scored by when it would have expired; read
//                            by an instance as it subscribes
//   Pepoch                   "<random>:<created at>": gone or changed means
//                            Redis lost its data, and the ended logins with it
//   P{realms}:<tag>          the realm id a realm tag names
//   Prevoked                 the channel every ending is published on, by
//                            the node that holds Pended
// The `{...}` hash tag puts a user's keys on one Cluster slot, so a script
// over them works there; base64url keeps braces in an id from breaking
// the tag, and the `u:` keeps an empty id from making an empty tag (which
// Redis would ignore, hashing the whole key).

const DEFAULT_PREFIX = 'fastify-login:'
const FIELDS = ['loginId', 'userId', 'createdAt', 'lastSeenAt', 'expiresAt', 'remembered', 'userAgent', 'ip', 'method', 'authenticatedAt', 'generation', 'generationUsedAt', 'realm', 'deviceKey', 'deviceSession', 'deviceChallengeAt'] as const
// Fields a record written before they existed lacks (withDefaults in records.ts fills them).
const LATER_FIELDS = new Set<string>(['method', 'authenticatedAt', 'generation', 'generationUsedAt', 'realm', 'deviceKey', 'deviceSession', 'deviceChallengeAt'])
const NUMBERS = ['createdAt', 'lastSeenAt', 'expiresAt', 'authenticatedAt', 'generation', 'generationUsedAt', 'deviceChallengeAt'] as const
const SECONDS = /^\d{1,15}$/

// KEYS: record, index. ARGV: expiresAt, login id, then the record's fields
// and values. Record and index entry in one step: a record missing from the
// index could be neither listed nor revoked. The index expires with its
// latest login: NX gives a new index its expiry, GT only ever extends it (GT
// alone does nothing on a key that has no expiry yet).
const CREATE = `
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIREAT', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIREAT', KEYS[2], ARGV[1], 'NX')
redis.call('EXPIREAT', KEYS[2], ARGV[1], 'GT')`

// KEYS: record, index. ARGV: login id, lastSeenAt, expiresAt or ''. Moves
// lastSeenAt (and a sliding expiry, with the keys' expiry) forward only, and
// only while the record exists: a touch racing a logout must not bring the
// login back (HSET on a missing key would create a record without expiry).
const TOUCH = `
local seen = redis.call('HGET', KEYS[1], 'lastSeenAt')
if not seen then return end
if tonumber(ARGV[2]) > tonumber(seen) then redis.call('HSET', KEYS[1], 'lastSeenAt', ARGV[2]) end
if ARGV[3] ~= '' and tonumber(ARGV[3]) > tonumber(redis.call('HGET', KEYS[1], 'expiresAt')) then
  redis.call('HSET', KEYS[1], 'expiresAt', ARGV[3])
  redis.call('EXPIREAT', KEYS[1], ARGV[3])
  redis.call('ZADD', KEYS[2], 'GT', ARGV[3], ARGV[1])
  redis.call('EXPIREAT', KEYS[2], ARGV[3], 'GT')
end`

// KEYS: the ended set. ARGV: channel, message, now, then each login's
// expiry and "<loginId> <userId>". Into the ended set and onto the channel
// in one step, on the node that holds the set: on a Cluster, the node every
// subscriber listens on (redis-subscriber.ts), so that the PING proving what
// a subscriber heard goes where every ending is published. Ended logins that
// would have expired by now are no longer needed.
const ENDED = `
for i = 4, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('PUBLISH', ARGV[1], ARGV[2])`

// KEYS: index, record key prefix (a key too, so a client `keyPrefix`
// applies to it as to the others). ARGV: login ids. Deletes exactly those
// logins, and counts the ones that existed.
const DELETE = `
local gone = 0
for _, id in ipairs(ARGV) do
  gone = gone + redis.call('DEL', KEYS[2] .. id)
  redis.call('ZREM', KEYS[1], id)
end
return gone`

// KEYS: index, record key prefix. The index forgets expired logins by score
// and logins whose record is gone otherwise (evicted, deleted by hand), so it
// never grows past the user's live logins.
const LIST = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. redis.call('TIME')[1])
local records = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local record = redis.call('HGETALL', KEYS[2] .. id)
  if #record == 0 then redis.call('ZREM', KEYS[1], id) else records[#records + 1] = { id, record } end
end
return records`

// KEYS: record. ARGV: generation, used at, which cookie was used ('' for
// none: a caller that does not say, read back as null). Only forward, only
// if the login exists; generationCookie is written by this script only (a
// new record has none).
const ADVANCE = `
local generation = redis.call('HGET', KEYS[1], 'generation')
if not redis.call('HGET', KEYS[1], 'loginId') then return 0 end
if generation and tonumber(ARGV[1]) <= tonumber(generation) then return 0 end
redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'generationUsedAt', ARGV[2], 'generationCookie', ARGV[3])
return 1`

// KEYS: record. ARGV: device key, session id. A login is bound once: only
// if it exists and has no key (an empty field is none).
const BIND = `
if not redis.call('HGET', KEYS[1], 'loginId') then return 0 end
local key = redis.call('HGET', KEYS[1], 'deviceKey')
if key and key ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'deviceKey', ARGV[1], 'deviceSession', ARGV[2])
return 1`

// KEYS: record. ARGV: the challenge's issue time (ms). Each challenge once:
// only forward, only if the login exists.
const USE_CHALLENGE = `
if not redis.call('HGET', KEYS[1], 'loginId') then return 0 end
local used = redis.call('HGET', KEYS[1], 'deviceChallengeAt')
if used and tonumber(ARGV[1]) <= tonumber(used) then return 0 end
redis.call('HSET', KEYS[1], 'deviceChallengeAt', ARGV[1])
return 1`

// KEYS: the realm tags' keys. ARGV: a new id, for when none is known. The
// id one tag knows is registered under the others (a secret added for
// rotation joins the realm the old one found).
const REALM = `
local id = nil
for _, key in ipairs(KEYS) do
  id = redis.call('GET', key)
  if id then break end
end
if not id then id = ARGV[1] end
for _, key in ipairs(KEYS) do redis.call('SET', key, id, 'NX') end
return id`

type Client = Redis | Cluster

// A Lua script sent by its SHA1 (EVALSHA), and once in full on a server that
// does not know it yet: one round trip, without the script's text.
class Script {
  #source: string
  #sha: string

  constructor (source: string) {
    this.#source = source
    this.#sha = createHash('sha1').update(source).digest('hex')
  }

  async run (client: Client, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    try {
      return await client.evalsha(this.#sha, keys.length, ...keys, ...args)
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error
      return await client.eval(this.#source, keys.length, ...keys, ...args)
    }
  }
}

const SCRIPTS = {
  create: new Script(CREATE),
  touch: new Script(TOUCH),
  ended: new Script(ENDED),
  delete: new Script(DELETE),
  list: new Script(LIST),
  advance: new Script(ADVANCE),
  realm: new Script(REALM),
  bind: new Script(BIND),
  useChallenge: new Script(USE_CHALLENGE)
}

export function redisStore (options: RedisStoreOptions): LoginStore {
  const { client, prefix } = validate(options)
  const keys = {
    channel: `${prefix}revoked`,
    ended: `${prefix}ended`,
    epoch: `${prefix}epoch`
  }

  function userKeys (userId: string): { index: string, recordPrefix: string } {
    const tag = `${prefix}{u:${Buffer.from(userId, 'utf8').toString('base64url')}}:`
    return { index: `${tag}logins`, recordPrefix: `${tag}login:` }
  }

  // Ends logins: first into the ended set and published, then deleted. In
  // that order, a crash between the two leaves a login refused everywhere
  // but still recorded, never deleted but unknown to an instance that
  // starts later. Two steps, as the ended set is on another Cluster slot.
  async function end (userId: string, logins: Array<[loginId: string, expiresAt: number]>): Promise<number> {
    if (logins.length === 0) return 0
    const { index, recordPrefix } = userKeys(userId)
    const message = JSON.stringify(logins.map(([loginId, expiresAt]) => [loginId, userId, expiresAt]))
    const members = logins.flatMap(([loginId, expiresAt]) => [expiresAt, `${loginId} ${userId}`])
    await SCRIPTS.ended.run(client, [keys.ended], [keys.channel, message, nowInSeconds(), ...members])
    return await SCRIPTS.delete.run(client, [index, recordPrefix], logins.map(([loginId]) => loginId)) as number
  }

  async function list (userId: string): Promise<LoginRecord[]> {
    const { index, recordPrefix } = userKeys(userId)
    const found = await SCRIPTS.list.run(client, [index, recordPrefix], []) as Array<[string, string[]]>
    return found
      .map(([loginId, flat]) => fromHash(pairs(flat), recordPrefix + loginId, loginId, userId) as LoginRecord)
      .sort((a, b) => b.createdAt - a.createdAt)
  }

  // One per subscribe(): a store object shared by two registrations of the
  // plugin gives each its own, and close() stops them all (each listener
  // then hears `listening(false)` and stops trusting what it heard).
  const subscribers = new Set<Subscriber>()

  return {
    async create (record) {
      const { index, recordPrefix } = userKeys(record.userId)
      const fields = FIELDS.flatMap((field) => [field, toField(record, field)])
      await SCRIPTS.create.run(client, [recordPrefix + record.loginId, index], [record.expiresAt, record.loginId, ...fields])
    },
    async get (loginId, userId) {
      const key = userKeys(userId).recordPrefix + loginId
      return fromHash(await client.hgetall(key), key, loginId, userId)
    },
    async touch (loginId, lastSeenAt, userId, expiresAt) {
      const { index, recordPrefix } = userKeys(userId)
      await SCRIPTS.touch.run(client, [recordPrefix + loginId, index], [loginId, lastSeenAt, expiresAt ?? ''])
    },
    async delete (loginId, userId) {
      const expiresAt = await client.hget(userKeys(userId).recordPrefix + loginId, 'expiresAt')
      if (expiresAt === null) return false
      return await end(userId, [[loginId, Number(expiresAt)]]) === 1
    },
    list,
    async deleteAll (userId, exceptLoginId) {
      const logins = (await list(userId)).filter((record) => record.loginId !== exceptLoginId)
      return await end(userId, logins.map((record) => [record.loginId, record.expiresAt]))
    },
    async advanceGeneration (loginId, userId, generation, usedAt, cookie) {
      return await SCRIPTS.advance.run(client, [userKeys(userId).recordPrefix + loginId], [generation, usedAt, cookie ?? '']) === 1
    },
    async bind (loginId, userId, deviceKey, deviceSession) {
      return await SCRIPTS.bind.run(client, [userKeys(userId).recordPrefix + loginId], [deviceKey, deviceSession]) === 1
    },
    async useChallenge (loginId, userId, issuedAt) {
      return await SCRIPTS.useChallenge.run(client, [userKeys(userId).recordPrefix + loginId], [issuedAt]) === 1
    },
    async realm (tags) {
      return await SCRIPTS.realm.run(client, tags.map((tag) => `${prefix}{realms}:${tag}`), [randomBytes(12).toString('base64url')]) as string
    },
    async subscribe (listener) {
      const subscriber = new Subscriber(client, keys.channel, {
        // On a Cluster: listen where every ending is published.
        hub: keys.ended,
        // Before the plugin may trust what it hears: everything ended before
        // the subscription, and whether Redis still has it.
        catchUp: async () => {
          await catchUp(client, keys, listener)
        },
        listener
      })
      subscribers.add(subscriber)
      await subscriber.start()
      await warnAboutSettings(client, listener)
    },
    async close () {
      await Promise.all([...subscribers].map(async (subscriber) => await subscriber.stop()))
      subscribers.clear()
    }
  }
}

// Since when the ended set is whole (the epoch), then every ended login in
// it that has not expired, a slice at a time (ZSCAN returns every member
// present for the whole scan; one added meanwhile is heard on the channel).
async function catchUp (client: Client, keys: { ended: string, epoch: string }, listener: LoginStoreListener): Promise<void> {
  let epoch = await client.get(keys.epoch)
  if (epoch === null) {
    await client.set(keys.epoch, `${randomBytes(9).toString('base64url')}:${nowInSeconds()}`, 'NX')
    epoch = await client.get(keys.epoch)
  }
  const since = Number(epoch?.slice(epoch.indexOf(':') + 1))
  if (!Number.isSafeInteger(since)) throw new FST_LOGIN_STORE_CORRUPT(`${JSON.stringify(epoch)}`, keys.epoch)
  listener.trustedSince(since)
  const now = nowInSeconds()
  let cursor = '0'
  do {
    const [next, flat] = await client.zscan(keys.ended, cursor, 'COUNT', 5000)
    cursor = next
    const revocations: Revocation[] = []
    for (let i = 0; i < flat.length; i += 2) {
      const expiresAt = Number(flat[i + 1])
      const space = flat[i].indexOf(' ')
      if (expiresAt > now && space !== -1) revocations.push({ loginId: flat[i].slice(0, space), userId: flat[i].slice(space + 1), expiresAt })
    }
    if (revocations.length > 0) listener.revoked(revocations)
  } while (cursor !== '0')
}

// Settings of the server that would break the store's promises, where the
// server lets us read them (managed services often do not: then nothing is said).
async function warnAboutSettings (client: Client, listener: LoginStoreListener): Promise<void> {
  let settings: Record<string, string>
  try {
    settings = pairs(await client.config('GET', 'maxmemory-policy') as string[])
    Object.assign(settings, pairs(await client.config('GET', 'appendonly') as string[]))
  } catch {
    return
  }
  const policy = settings['maxmemory-policy']
  // A volatile-* policy is no safer: records and user indexes expire, so
  // they are the very keys it evicts.
  if (policy !== undefined && policy !== 'noeviction') {
    listener.warn?.(`redisStore: Redis evicts keys (maxmemory-policy ${policy}): an evicted user index makes "log out every device" end nothing, an evicted login record hides a login that still works, and an evicted ended-logins set lets ended logins back in. Set maxmemory-policy to noeviction (see docs/redis-store.md, "Settings the promises need").`)
  }
  if (settings.appendonly === 'no') {
    listener.warn?.('redisStore: Redis has no append-only file (appendonly no): a crash brings back logins that were ended since the last snapshot. Set appendonly yes (see docs/redis-store.md, "Settings the promises need").')
  }
}

function validate (options: RedisStoreOptions): { client: Client, prefix: string } {
  const { client, prefix = DEFAULT_PREFIX } = options ?? {}
  // `redisStore(client)`, the braces forgotten: the client itself came.
  if (isClient(options)) {
    throw new FST_LOGIN_INVALID_OPTION('client', 'must be given inside an object: `redisStore` takes `{ client }`, as in `redisStore({ client: redis })`, and was given the client itself')
  }
  if (!isClient(client)) {
    throw new FST_LOGIN_INVALID_OPTION('client', 'must be an ioredis client (`new Redis()` or `new Redis.Cluster()`, or `app.redis` from @fastify/redis)')
  }
  if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
    throw new FST_LOGIN_INVALID_OPTION('prefix', 'must be a string without `{` or `}` (the store puts its own Cluster hash tag after it)')
  }
  // A replica lags its master: a login just ended could still read as live,
  // and a catch-up could miss endings made just before it subscribed.
  const { scaleReads, role }: { scaleReads?: unknown, role?: unknown } = { ...(client as { options?: object }).options }
  if ((scaleReads !== undefined && scaleReads !== 'master') || role === 'slave') {
    throw new FST_LOGIN_INVALID_OPTION('client', `must read from masters: it reads from replicas (${role === 'slave' ? "role: 'slave'" : `scaleReads: ${JSON.stringify(scaleReads)}`}), which lag, so a login ended a moment ago could still read as live. Give redisStore a client with the default scaleReads ('master') and role ('master'), such as a duplicate() of yours with those options`)
  }
  return { client: client as Client, prefix }
}

function toField (record: LoginRecord, field: typeof FIELDS[number]): string | number {
  if (field === 'remembered') return Number(record.remembered)
  // A login without a method, a device key or a session keeps an empty
  // one: none of them is ever empty.
  return record[field] ?? ''
}

function isClient (value: unknown): value is Client {
  const candidate = value as Partial<Client> | null | undefined
  return typeof candidate?.duplicate === 'function' && typeof candidate.eval === 'function' && typeof candidate.hgetall === 'function'
}

// What HGETALL answered, as a record: null for a missing key (HGETALL answers
// `{}`), an error for anything else that is not a whole record, since a value
// we cannot read must never become a login, nor look like "no login". The
// key is derived from both ids, so a record naming other ids was written
// under the wrong key: never hand out another user's login.
function fromHash (hash: Record<string, string>, key: string, loginId: string, userId: string): LoginRecord | null {
  if (Object.keys(hash).length === 0) return null
  const missing = FIELDS.find((field) => typeof hash[field] !== 'string' && !LATER_FIELDS.has(field))
  if (missing !== undefined) throw new FST_LOGIN_STORE_CORRUPT(`a hash without \`${missing}\``, key)
  for (const field of NUMBERS) {
    if (hash[field] !== undefined && !SECONDS.test(hash[field])) throw new FST_LOGIN_STORE_CORRUPT(`\`${field}\` = ${JSON.stringify(hash[field])}`, key)
  }
  if (hash.remembered !== '1' && hash.remembered !== '0') {
    throw new FST_LOGIN_STORE_CORRUPT(`\`remembered\` = ${JSON.stringify(hash.remembered)}`, key)
  }
  if (hash.loginId !== loginId || hash.userId !== userId) {
    throw new FST_LOGIN_STORE_CORRUPT(`the login ${JSON.stringify(hash.loginId)} of user ${JSON.stringify(hash.userId)}`, key)
  }
  const createdAt = Number(hash.createdAt)
  return {
    loginId: hash.loginId,
    userId: hash.userId,
    createdAt,
    lastSeenAt: Number(hash.lastSeenAt),
    expiresAt: Number(hash.expiresAt),
    remembered: hash.remembered === '1',
    userAgent: hash.userAgent,
    ip: hash.ip,
    method: hash.method === undefined || hash.method === '' ? null : hash.method,
    authenticatedAt: hash.authenticatedAt === undefined ? createdAt : Number(hash.authenticatedAt),
    generation: hash.generation === undefined ? 0 : Number(hash.generation),
    generationUsedAt: hash.generationUsedAt === undefined ? createdAt : Number(hash.generationUsedAt),
    generationCookie: emptyIsNull(hash.generationCookie),
    // Written before realms: records.ts reads it as the realm's own until it expires.
    realm: hash.realm ?? '',
    deviceKey: emptyIsNull(hash.deviceKey),
    deviceSession: emptyIsNull(hash.deviceSession),
    deviceChallengeAt: hash.deviceChallengeAt === undefined ? 0 : Number(hash.deviceChallengeAt),
    bound: emptyIsNull(hash.deviceKey) !== null
  }
}

function emptyIsNull (value: string | undefined): string | null {
  return value === undefined || value === '' ? null : value
}

// A script answers HGETALL (and CONFIG GET) as a flat [field, value, ...] list.
function pairs (flat: string[]): Record<string, string> {
  const hash: Record<string, string> = {}
  for (let i = 0; i < flat.length; i += 2) hash[flat[i]] = flat[i + 1]
  return hash
}
