import type { Cluster, Redis } from 'ioredis'
import type { LoginRecord, LoginStore, LoginStoreListener, RedisStoreOptions } from '../../types/index'
import { FST_LOGIN_INVALID_OPTION, FST_LOGIN_STORE_CLOSED, FST_LOGIN_STORE_CORRUPT, FST_LOGIN_STORE_SUBSCRIBE_FAILED } from '../errors'

// Logins kept in Redis (standalone or Cluster), so every instance sees them
// and can end them. The app's own ioredis client does the work: this file
// only imports ioredis' types, never ioredis itself.
//
// Key layout, for prefix P and user id U (T = base64url of U's UTF-8 bytes):
//   P{u:T}:login:<loginId>   a hash: the record; expires at its expiresAt
//   P{u:T}:logins            a sorted set: the user's login ids scored by
//                            expiresAt; expires with the last of them
//   Prevoked                 the channel every deletion is published on
// The `{...}` hash tag puts a user's keys on one Cluster slot, so a script
// over them works there; base64url keeps braces in an id from breaking
// the tag, and the `u:` keeps an empty id from making an empty tag (which
// Redis would ignore, hashing the whole key).

const DEFAULT_PREFIX = 'fastify-login:'
const FIELDS = ['loginId', 'userId', 'createdAt', 'lastSeenAt', 'expiresAt', 'remembered', 'userAgent', 'ip'] as const
const SECONDS = /^\d{1,15}$/
// How long to wait before the subscriber reconnects: doubling, at most 2 s.
const FIRST_RETRY_MS = 50
const LAST_RETRY_MS = 2000
// How often the subscriber PINGs: one unanswered beat later it is taken for
// dead, so a silent connection is noticed within two beats, not minutes.
const HEARTBEAT_MS = 1000

// KEYS: record, index. ARGV: expiresAt, login id, then the record's fields
// and values. Record and index entry in one step: a record missing from the
// index could be neither listed nor revoked by deleteAll. The index expires
// with its latest login: NX gives a new index its expiry, GT only ever
// extends it (GT alone does nothing on a key that has no expiry yet).
const CREATE = `
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIREAT', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIREAT', KEYS[2], ARGV[1], 'NX')
redis.call('EXPIREAT', KEYS[2], ARGV[1], 'GT')`

// Moves lastSeenAt forward only, and only while the record exists: a touch
// racing a logout must not bring the login back (HSET on a missing key would
// create a record without expiry).
const TOUCH = `
local seen = redis.call('HGET', KEYS[1], 'lastSeenAt')
if seen and tonumber(ARGV[1]) > tonumber(seen) then redis.call('HSET', KEYS[1], 'lastSeenAt', ARGV[1]) end`

// KEYS: record, index. ARGV: login id, channel. The record and its index entry
// go together, and the revocation is published only if there was a login.
const DELETE = `
local deleted = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if deleted == 1 then redis.call('PUBLISH', ARGV[2], cjson.encode({ ARGV[1] })) end
return deleted`

// KEYS: index, record key prefix (a key too, so a client `keyPrefix` applies
// to it as to the others). ARGV: the login id to keep (or ''), channel.
const DELETE_ALL = `
local gone = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if id ~= ARGV[1] then
    if redis.call('DEL', KEYS[2] .. id) == 1 then gone[#gone + 1] = id end
    redis.call('ZREM', KEYS[1], id)
  end
end
if #gone > 0 then redis.call('PUBLISH', ARGV[2], cjson.encode(gone)) end
return #gone`

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

type Client = Redis | Cluster

export function redisStore (options: RedisStoreOptions): LoginStore {
  const { client, prefix } = validate(options)
  const channel = `${prefix}revoked`

  function userKeys (userId: string): { index: string, recordPrefix: string } {
    const tag = `${prefix}{u:${Buffer.from(userId, 'utf8').toString('base64url')}}:`
    return { index: `${tag}logins`, recordPrefix: `${tag}login:` }
  }

  // One per subscribe(): a store object shared by two registrations of the
  // plugin gives each its own, and close() stops them all (each listener
  // then hears `listening(false)` and stops trusting its cache).
  const subscribers = new Set<Subscriber>()

  return {
    async create (record) {
      const { index, recordPrefix } = userKeys(record.userId)
      const fields = FIELDS.flatMap((field) => [field, field === 'remembered' ? Number(record.remembered) : record[field]])
      await client.eval(CREATE, 2, recordPrefix + record.loginId, index, record.expiresAt, record.loginId, ...fields)
    },
    async get (loginId, userId) {
      const key = userKeys(userId).recordPrefix + loginId
      return fromHash(await client.hgetall(key), key, loginId, userId)
    },
    async touch (loginId, lastSeenAt, userId) {
      await client.eval(TOUCH, 1, userKeys(userId).recordPrefix + loginId, lastSeenAt)
    },
    async delete (loginId, userId) {
      const { index, recordPrefix } = userKeys(userId)
      return await client.eval(DELETE, 2, recordPrefix + loginId, index, loginId, channel) === 1
    },
    async list (userId) {
      const { index, recordPrefix } = userKeys(userId)
      const found = await client.eval(LIST, 2, index, recordPrefix) as Array<[string, string[]]>
      return found
        .map(([loginId, flat]) => fromHash(pairs(flat), recordPrefix + loginId, loginId, userId) as LoginRecord)
        .sort((a, b) => b.createdAt - a.createdAt)
    },
    async deleteAll (userId, exceptLoginId) {
      const { index, recordPrefix } = userKeys(userId)
      return await client.eval(DELETE_ALL, 2, index, recordPrefix, exceptLoginId ?? '', channel) as number
    },
    async subscribe (listener) {
      const subscriber = new Subscriber(client, channel, listener)
      subscribers.add(subscriber)
      await subscriber.start()
    },
    async close () {
      await Promise.all([...subscribers].map(async (subscriber) => await subscriber.stop()))
      subscribers.clear()
    }
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
  return { client: client as Client, prefix }
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
  const missing = FIELDS.find((field) => typeof hash[field] !== 'string')
  if (missing !== undefined) throw new FST_LOGIN_STORE_CORRUPT(`a hash without \`${missing}\``, key)
  for (const field of ['createdAt', 'lastSeenAt', 'expiresAt'] as const) {
    if (!SECONDS.test(hash[field])) throw new FST_LOGIN_STORE_CORRUPT(`\`${field}\` = ${JSON.stringify(hash[field])}`, key)
  }
  if (hash.remembered !== '1' && hash.remembered !== '0') {
    throw new FST_LOGIN_STORE_CORRUPT(`\`remembered\` = ${JSON.stringify(hash.remembered)}`, key)
  }
  if (hash.loginId !== loginId || hash.userId !== userId) {
    throw new FST_LOGIN_STORE_CORRUPT(`the login ${JSON.stringify(hash.loginId)} of user ${JSON.stringify(hash.userId)}`, key)
  }
  return {
    loginId: hash.loginId,
    userId: hash.userId,
    createdAt: Number(hash.createdAt),
    lastSeenAt: Number(hash.lastSeenAt),
    expiresAt: Number(hash.expiresAt),
    remembered: hash.remembered === '1',
    userAgent: hash.userAgent,
    ip: hash.ip
  }
}

// A script answers HGETALL as a flat [field, value, ...] list.
function pairs (flat: string[]): Record<string, string> {
  const hash: Record<string, string> = {}
  for (let i = 0; i < flat.length; i += 2) hash[flat[i]] = flat[i + 1]
  return hash
}

// The connection that hears revocations. Pub/sub needs a connection of its
// own; this one is opened and reconnected here rather than by ioredis, so the
// listener hears exactly when revocations may have been missed (`false` as
// soon as the connection drops) and when they are heard again (`true` only
// once SUBSCRIBE is confirmed on the new connection). On a Cluster it is a
// plain connection to one master, rotating on failures: classic pub/sub is
// cluster-wide, and a Cluster's own subscriber reconnects without telling.
class Subscriber {
  #client: Client
  #channel: string
  #listener: LoginStoreListener
  #connection: Redis | null = null
  #listening = false
  #attempts = 0
  #retry: NodeJS.Timeout | undefined
  #heartbeat: NodeJS.Timeout | undefined
  #stopped = false
  // Why the last connection failed, for the error of a subscribe that could not.
  #lastError = new Error('the connection closed')
  #started: { resolve: () => void, reject: (error: Error) => void } | null = null

  constructor (client: Client, channel: string, listener: LoginStoreListener) {
    this.#client = client
    this.#channel = channel
    this.#listener = listener
  }

  // Resolves once the first SUBSCRIBE is confirmed; rejects if the first
  // connection fails, so a Redis that is not there fails the app's `ready`.
  async start (): Promise<void> {
    if (this.#client.isCluster && this.#client.status !== 'ready') await this.#client.ping()
    await new Promise<void>((resolve, reject) => {
      this.#started = { resolve, reject }
      this.#connect()
    })
  }

  async stop (): Promise<void> {
    // Whoever still listens must stop trusting what it cached.
    this.#setListening(false)
    this.#stopped = true
    clearTimeout(this.#retry)
    clearInterval(this.#heartbeat)
    // An app closed while still starting: its `ready` must not wait forever.
    this.#started?.reject(new FST_LOGIN_STORE_CLOSED(this.#channel))
    this.#started = null
    // Not QUIT: a frozen Redis would never answer it, and the app's close
    // would wait forever. Closing our end is all a subscriber needs.
    this.#connection?.disconnect()
    this.#connection = null
  }

  #connect (): void {
    const connection = this.#open()
    this.#connection = connection
    if (connection === null) return this.#ended()
    connection.on('error', (error: Error) => { this.#lastError = error })
    connection.on('message', (_channel: string, message: string) => this.#heard(message))
    connection.on('ready', () => {
      connection.subscribe(this.#channel).then(() => {
        this.#attempts = 0
        this.#beat(connection)
        this.#setListening(true)
      }, (error: Error) => {
        // Refused (an ACL, say): drop the connection and try again.
        this.#lastError = error
        connection.disconnect()
      })
    })
    connection.on('close', () => {
      clearInterval(this.#heartbeat)
      this.#setListening(false)
    })
    connection.once('end', () => this.#ended())
    connection.connect().catch(() => { /* 'end' follows, and handles it */ })
  }

  #open (): Redis | null {
    // No retries by ioredis (each attempt is a new connection, see #ended),
    // no resubscription behind our back, lazy so our handlers come first.
    const overrides = { lazyConnect: true, autoResubscribe: false, retryStrategy: () => null, connectionName: 'fastify-login:subscriber' }
    if (!this.#client.isCluster) return (this.#client as Redis).duplicate(overrides)
    // None while the Cluster has lost every node: try again later.
    const masters = (this.#client as Cluster).nodes('master')
    return masters.length === 0 ? null : masters[this.#attempts % masters.length].duplicate(overrides)
  }

  // A peer that is gone without closing the connection (a partition, a
  // frozen server) would otherwise look like one that has nothing to say.
  #beat (connection: Redis): void {
    let answered = true
    this.#heartbeat = setInterval(() => {
      if (!answered) {
        // Deaf now, not when ioredis gives up closing the socket politely.
        clearInterval(this.#heartbeat)
        this.#setListening(false)
        return connection.disconnect()
      }
      answered = false
      connection.ping().then(() => { answered = true }, () => { /* 'close' follows */ })
    }, HEARTBEAT_MS).unref()
  }

  #ended (): void {
    if (this.#stopped) return
    if (this.#started !== null) {
      const started = this.#started
      this.#started = null
      this.#stopped = true
      const failure = new FST_LOGIN_STORE_SUBSCRIBE_FAILED(this.#channel, this.#lastError.message)
      failure.cause = this.#lastError
      started.reject(failure)
      return
    }
    const delay = Math.min(FIRST_RETRY_MS * 2 ** this.#attempts, LAST_RETRY_MS)
    this.#attempts++
    // Unref'd, like the heartbeat: waiting for Redis alone keeps no process alive.
    this.#retry = setTimeout(() => this.#connect(), delay).unref()
  }

  #heard (message: string): void {
    let loginIds: unknown
    try { loginIds = JSON.parse(message) } catch {}
    if (Array.isArray(loginIds) && loginIds.every((id) => typeof id === 'string')) {
      this.#listener.revoked(loginIds)
      return
    }
    // Something we cannot read may have been a revocation: whatever is
    // cached can no longer be trusted, so have it dropped.
    this.#listener.listening(false)
    this.#listener.listening(true)
  }

  #setListening (listening: boolean): void {
    if (listening === this.#listening || this.#stopped) return
    this.#listening = listening
    this.#listener.listening(listening)
    if (listening && this.#started !== null) {
      this.#started.resolve()
      this.#started = null
    }
  }
}
