import type { FastifyBaseLogger } from 'fastify'
import type { LoginConfig, LoginRecord, LoginStore, Revocation } from '../../types/index'
import { TwoGenerations } from '../cache'
import { nowInSeconds } from '../clock'
import { MAX_LIFETIME, type AccountToken } from '../cookies/token'
import { FST_LOGIN_STORE_FAILED } from '../errors'
import { andThen, isThenable, type MaybePromise } from '../state'
import { Revocations } from './revocations'
import { OFFER_WINDOW } from '../binding/challenges'
import { ALIVE, alive, cookieOf, ENDED, recordIsLive, rotate, touchInterval, UNPROVEN, type Verdict } from './verdict'

// Server-side login records, through the app's store, checked by the plugin's
// own rules: the store's answers are never trusted for ownership or liveness
// (verdict.ts). A request learns that its login is still valid in one of two
// ways (docs/design/login-validity.md):
//  - the fast path: a store that reports every revocation, and proves it
//    heard them, lets this process keep the ended logins (revocations.ts); a
//    login whose cookie verifies and is not among them is alive, with no
//    store read;
//  - otherwise, and whenever the cookie asks for more than a lookup can say
//    (a rotation due, an idle timeout to check, no fresh proof), its record
//    is read. Only a store without `subscribe` may have what it read reused,
//    for `storeCacheWindow` seconds.

// How long a user agent may be in a record.
const MAX_USER_AGENT = 512
// Expired revocations forgotten per second, at most: a slice at a time.
const SWEEP_BUDGET = 20_000

interface Cached {
  record: LoginRecord
  readAt: number
}

export type LoginRevokedListener = (loginId: string, userId: string) => void

export class LoginRecords {
  readonly revocations = new Revocations()
  #store: LoginStore
  #config: LoginConfig
  #realmTags: readonly string[]
  #realm: MaybePromise<string> | null = null
  #onRevoked: LoginRevokedListener
  #log: FastifyBaseLogger
  // Stores without `subscribe`: records reused for `storeCacheWindow`.
  #window = new TwoGenerations<Cached>(10000)
  // Bumped by every invalidation: a store read that began before one must
  // not put what it read into the window cache.
  #epoch = 0
  // What this process wrote lately, so that a client that ignores the
  // re-issued cookie (or sends it on unguarded pages) does not write again:
  // when it last wrote each login's last use, and which rotated cookie it
  // knows to be the one recorded as used (cookieOf).
  #touched = new TwoGenerations<number>(10000)
  #confirmed = new TwoGenerations<string>(10000)
  #asynchronous = false
  #sweeper: NodeJS.Timeout | undefined

  constructor (store: LoginStore, config: LoginConfig, realmTags: readonly string[], log: FastifyBaseLogger, onRevoked: LoginRevokedListener) {
    this.#store = store
    this.#config = config
    this.#realmTags = realmTags
    this.#log = log
    this.#onRevoked = onRevoked
    // A store that cannot tell of endings elsewhere: only this process's own.
    this.#caughtUp = typeof store.subscribe !== 'function'
  }

  // Whether a store answered with a promise: `currentUser` must then be
  // resolved by a guard first, on every request alike (resolution.ts).
  get asynchronous (): boolean {
    return this.#asynchronous
  }

  // At `ready`: which realm id the store knows this registration by, then
  // hear revocations, if the store can tell.
  async listen (): Promise<void> {
    if (typeof this.#store.subscribe !== 'function') {
      await this.realm()
      return
    }
    const revocations = this.revocations
    // Not through #call: this runs at `ready`, where the store's own error
    // (redisStore's FST_LOGIN_STORE_SUBSCRIBE_FAILED, say) is the clear one,
    // and no request waits on it.
    const subscribed = this.#store.subscribe({
      revoked: (ended) => {
        for (const one of ended) this.#heard(typeof one === 'string' ? { loginId: one, userId: '', expiresAt: nowInSeconds() + MAX_LIFETIME } : one)
      },
      listening: (listening) => {
        this.#caughtUp ||= listening
        // Whatever was heard before, revocations may have been missed since.
        this.#epoch++
        revocations.listening(listening)
      },
      heard: (at) => revocations.heard(at),
      trustedSince: (since) => revocations.trustSince(since),
      warn: (message) => this.#warn(message)
    })
    await subscribed
    this.#sweeper = setInterval(() => revocations.sweep(nowInSeconds(), SWEEP_BUDGET), 1000).unref()
    await this.realm()
  }

  // Whether the store has said it listens, once: from then on, every login
  // heard of as ended is told to the app (`loginRevoked`).
  #caughtUp: boolean

  // Once per message: a store reports its server's settings on every reconnection.
  #warned = new Set<string>()
  #warn (message: string): void {
    if (this.#warned.has(message)) return
    this.#warned.add(message)
    this.#log.warn(`fastify-login: ${message}`)
  }

  async close (): Promise<void> {
    clearInterval(this.#sweeper)
    if (typeof this.#store.close === 'function') await this.#store.close()
  }

  // The id the store keeps this realm's logins under. A store that can tell
  // realms of other apps apart (`realm`) is asked, under a tag of each
  // secret; another store gets the realm's name.
  realm (): MaybePromise<string> {
    if (this.#realm === null) {
      const store = this.#store
      this.#realm = typeof store.realm === 'function'
        ? andThen(this.#call('realm', () => (store.realm as NonNullable<LoginStore['realm']>)(this.#realmTags)), (id) => {
          this.#realm = id
          return id
        })
        : `name:${this.#config.realm}`
    }
    return this.#realm
  }

  // `device`: a login that takes the place of a bound one keeps its binding
  // (confirmLogin).
  create (account: AccountToken, userAgent: string | undefined, ip: string, createdAt = account.issuedAt, device: LoginRecord | null = null): MaybePromise<LoginRecord> {
    return andThen(this.realm(), (realm) => {
      const record: LoginRecord = {
        loginId: account.loginId,
        userId: account.id,
        createdAt,
        lastSeenAt: account.lastSeenAt,
        expiresAt: account.expiresAt,
        remembered: account.remember,
        userAgent: (userAgent ?? '').slice(0, MAX_USER_AGENT),
        ip,
        method: account.method,
        authenticatedAt: account.authenticatedAt,
        generation: account.generation,
        generationUsedAt: account.rotatedAt,
        // Set by advanceGeneration only: a store that predates the field never
        // pairs it with a generation it did not record.
        generationCookie: null,
        realm,
        deviceKey: device?.deviceKey ?? null,
        deviceSession: device?.deviceSession ?? null,
        deviceChallengeAt: device?.deviceChallengeAt ?? 0,
        bound: device?.bound ?? false
      }
      return andThen(this.#call('create', () => this.#store.create({ ...record })), () => record)
    })
  }

  // Is the login of this verified cookie alive? The fast path when the
  // revocations can be trusted and the cookie asks for nothing else; its
  // record otherwise.
  check (token: AccountToken, now: number): MaybePromise<Verdict> {
    const revocations = this.revocations
    if (revocations.has(token.loginId)) return ENDED
    const config = this.#config
    const idle = config.idleTimeout
    const rotation = config.rotation
    const fast = revocations.trusted() &&
      token.issuedAt >= revocations.trustedSince &&
      (rotation === false || now - token.rotatedAt < rotation.every) &&
      (idle === null || now - token.lastSeenAt < idle) &&
      !this.#offerLapsed(token, now) &&
      // A rotated cookie's first use in this process: its record says
      // whether it is the cookie of that generation that was used, or
      // another one, issued to another party (verdict.ts, `rotate`).
      (!token.unconfirmed || this.#confirmed.get(token.loginId) === cookieOf(token))
    if (!fast) return this.#read(token, now)
    let next: Partial<AccountToken> | null = null
    let write: MaybePromise<Slid>
    if (token.unconfirmed) next = { unconfirmed: false }
    if (now - token.lastSeenAt >= touchInterval(idle)) {
      next = { ...next, lastSeenAt: now }
      write = andThen(write, () => this.#touch(token, now))
    }
    if (next === null) return ALIVE
    return withSlide(next, write)
  }

  // The record decides: read (or reused from the window cache), checked, and
  // the rotation and the last use written where due.
  #read (token: AccountToken, now: number): MaybePromise<Verdict> {
    // Whether the offer lapsed is decided once a login, and for good (the
    // cookie is re-issued as never bound): on the record as the store has
    // it now, never on one reused from the window cache.
    const lapsed = this.#offerLapsed(token, now)
    // So is a rotation: a record reused from the window would rotate a
    // cookie again (a slow response put the older one back), or pass another
    // party's copy of a generation recorded since.
    const every = this.#config.rotation === false ? Infinity : this.#config.rotation.every
    const rotating = (token.unconfirmed && this.#confirmed.get(token.loginId) !== cookieOf(token)) || now - token.rotatedAt >= every
    return andThen(this.#fetch(token, now, lapsed || rotating), (record) => andThen(this.realm(), (realm) => {
      if (record === null || !recordIsLive(record, token, realm, this.#config, now)) return ENDED
      // Offered device binding a while ago and bound since, or said to be
      // never bound though its record has a key: this cookie is a copy,
      // which proves nothing and may end nothing (not even as a reused
      // generation).
      if ((lapsed || token.binding === 'none') && record.deviceKey !== null) return UNPROVEN
      const rotation = rotate(token, record, this.#config, now)
      if (rotation === 'reused') {
        // Said once: requests of the older copy on several instances (or in
        // parallel on one) all read the record, but only one ends it.
        return andThen(this.end(record.userId, record.loginId, record.expiresAt), (ended): Verdict => ended ? { alive: false, next: null, record, reused: true, unproven: false } : ENDED)
      }
      let next: Partial<AccountToken> | null = rotation
      // The first use of a rotated cookie, not yet in the record.
      let write: MaybePromise<Slid> = token.generation > record.generation ? this.#confirm(token, now) : undefined
      // Recorded already, as this cookie: the fast path may take it from now on.
      if (token.unconfirmed && token.generation === record.generation) this.#confirmed.set(token.loginId, cookieOf(token))
      if (token.unconfirmed && next === null) next = { unconfirmed: false }
      // Never bound: a browser without device binding. Its cookie is
      // re-issued without the offer.
      if (lapsed) next = { ...next, binding: 'none' }
      if (now - token.lastSeenAt >= touchInterval(this.#config.idleTimeout)) {
        next = { ...next, lastSeenAt: now }
        if (now - record.lastSeenAt >= touchInterval(this.#config.idleTimeout)) write = andThen(write, (confirmed) => andThen(this.#touch(token, now), (slid) => merged(confirmed, slid)))
      }
      return withSlide(next, write, record)
    }))
  }

  // A login offered device binding a while ago, whose cookie still says so.
  #offerLapsed (token: AccountToken, now: number): boolean {
    return token.binding === 'pending' && this.#config.deviceBinding !== false && now - token.authenticatedAt >= OFFER_WINDOW
  }

  #fetch (token: AccountToken, now: number, fresh = false): MaybePromise<LoginRecord | null> {
    const windowed = !fresh && typeof this.#store.subscribe !== 'function' && this.#config.storeCacheWindow > 0
    if (windowed) {
      const cached = this.#window.get(token.loginId)
      if (cached !== undefined && now - cached.readAt < this.#config.storeCacheWindow) return cached.record
    }
    const epoch = this.#epoch
    return andThen(this.#get(token.loginId, token.id), (record) => {
      if (record !== null && windowed && epoch === this.#epoch) this.#window.set(token.loginId, { record, readAt: now })
      return record
    })
  }

  // One record, as the store has it (a copy: nothing the store keeps is ours to change).
  #get (loginId: string, userId: string): MaybePromise<LoginRecord | null> {
    return andThen(this.#call('get', () => this.#store.get(loginId, userId)), (record) => record === null || record === undefined ? null : withDefaults(record))
  }

  // The live record of one login of the user, in this realm, or null: what
  // the plugin lets a caller end or see (whatever the store's own rules).
  own (userId: string, loginId: string): MaybePromise<LoginRecord | null> {
    const now = nowInSeconds()
    return andThen(this.#get(loginId, userId), (record) => andThen(this.realm(), (realm) => {
      return record !== null && this.#isOwnLive(record, userId, realm, now) ? record : null
    }))
  }

  // The user's live logins in this realm, newest first.
  list (userId: string): MaybePromise<LoginRecord[]> {
    const now = nowInSeconds()
    return andThen(this.#call('list', () => this.#store.list(userId)), (records) => andThen(this.realm(), (realm) => records
      .map(withDefaults)
      .filter((record) => this.#isOwnLive(record, userId, realm, now))
      .sort((a, b) => b.createdAt - a.createdAt)))
  }

  #isOwnLive (record: LoginRecord, userId: string, realm: string, now: number): boolean {
    if (record.userId !== userId || (record.realm !== realm && record.realm !== '')) return false
    if (now >= record.expiresAt || this.revocations.has(record.loginId)) return false
    const idle = this.#config.idleTimeout
    return idle === null || now - record.lastSeenAt < idle
  }

  // Ends a login: once the store has deleted it (and told every instance),
  // this process refuses it too, whether or not it hears its own message. A
  // store that fails ends nothing, here or elsewhere: the caller's request
  // is a 503, and the user can try again.
  end (userId: string, loginId: string, expiresAt = nowInSeconds() + MAX_LIFETIME): MaybePromise<boolean> {
    // A read under way must not put the login into the window cache.
    this.#epoch++
    return andThen(this.#call('delete', () => this.#store.delete(loginId, userId)), (existed) => {
      this.#heard({ loginId, userId, expiresAt })
      return existed
    })
  }

  #heard (revocation: Revocation): void {
    this.#epoch++
    this.#window.delete(revocation.loginId)
    const known = this.revocations.has(revocation.loginId)
    this.revocations.add(revocation)
    // Not for the logins that ended before this process first listened (a
    // million of them, perhaps, read back at `ready`): nothing of this
    // process can be open for them. Those heard after, or caught up on after
    // a reconnection, may have sockets open.
    if (!known && this.#caughtUp) {
      try {
        this.#onRevoked(revocation.loginId, revocation.userId)
      } catch (error) {
        this.#log.error({ err: error }, 'fastify-login: a \'loginRevoked\' listener failed')
      }
    }
  }

  // Device binding: the key a browser registered for the login (once), and
  // the refresh challenges it used (each once).
  bind (loginId: string, userId: string, deviceKey: string, deviceSession: string): MaybePromise<boolean> {
    return this.#call('bind', () => (this.#store.bind as NonNullable<LoginStore['bind']>)(loginId, userId, deviceKey, deviceSession))
  }

  useChallenge (loginId: string, userId: string, issuedAt: number): MaybePromise<boolean> {
    return this.#call('useChallenge', () => (this.#store.useChallenge as NonNullable<LoginStore['useChallenge']>)(loginId, userId, issuedAt))
  }

  // Records the first use of a rotated cookie (one conditional write, once
  // per process and cookie). Refused, another request recorded the
  // generation between the read and the write, perhaps with another copy's
  // cookie: this one stays unconfirmed, and its next request reads the
  // record and is judged (verdict.ts, `sibling`).
  #confirm (token: AccountToken, now: number): MaybePromise<Slid> {
    const store = this.#store
    if (typeof store.advanceGeneration !== 'function') return undefined
    const cookie = cookieOf(token)
    return andThen(this.#call('advanceGeneration', () => (store.advanceGeneration as NonNullable<LoginStore['advanceGeneration']>)(token.loginId, token.id, token.generation, now, cookie)), (advanced) => {
      this.#window.delete(token.loginId)
      // A confirmed cookie meets an older record only on a stale read (a
      // window cache of another instance's rotation): nothing to judge.
      if (advanced === false) return token.unconfirmed ? STILL_UNCONFIRMED : undefined
      this.#confirmed.set(token.loginId, cookie)
      return undefined
    })
  }

  // The last use (and a sliding expiry), at most about once a minute a
  // login per process; remembered only once the store has it. A sliding
  // cookie's new times go with the write, never without it: a cookie that
  // outlived its record would outlive the memory of its login's ending too
  // (an ended login is remembered until its record would have expired).
  #touch (token: AccountToken, now: number): MaybePromise<Slid> {
    const interval = touchInterval(this.#config.idleTimeout)
    const last = this.#touched.get(token.loginId)
    if (last !== undefined && now - last < interval) return undefined
    const slide = this.#config.cookieRefreshEachRequest && token.remember
    const expiresAt = now + (token.expiresAt - token.issuedAt)
    return andThen(this.#call('touch', () => this.#store.touch(token.loginId, now, token.id, slide ? expiresAt : undefined)), () => {
      this.#touched.set(token.loginId, now)
      return slide ? { issuedAt: now, expiresAt } : undefined
    })
  }

  // A store that fails is a server error that names the store, never a logout.
  #call<T> (method: string, call: () => MaybePromise<T>): MaybePromise<T> {
    let result: MaybePromise<T>
    try {
      result = call()
    } catch (error) {
      throw storeFailed(method, error)
    }
    if (!isThenable<T>(result)) return result
    this.#asynchronous = true
    return Promise.resolve(result).catch((error: unknown) => { throw storeFailed(method, error) })
  }
}

// The new times of a sliding cookie, when its record's expiry was moved.
type Slid = Partial<AccountToken> | undefined

const STILL_UNCONFIRMED: Partial<AccountToken> = Object.freeze({ unconfirmed: true })

function merged (first: Slid, second: Slid): Slid {
  return first === undefined ? second : { ...first, ...second }
}

function withSlide (next: Partial<AccountToken> | null, write: MaybePromise<Slid>, record: LoginRecord | null = null): MaybePromise<Verdict> {
  if (write === undefined) return alive(next, record)
  return andThen(write, (slid) => alive(slid === undefined ? next : { ...next, ...slid }, record))
}

// A record as the plugin reads it: fields added since a store was written
// (or since the record was) take the values they would have had.
function withDefaults (record: LoginRecord): LoginRecord {
  const deviceKey = record.deviceKey ?? null
  return {
    ...record,
    method: record.method ?? null,
    authenticatedAt: record.authenticatedAt ?? record.createdAt,
    generation: record.generation ?? 0,
    generationUsedAt: record.generationUsedAt ?? record.createdAt,
    generationCookie: record.generationCookie ?? null,
    realm: record.realm ?? '',
    deviceKey,
    deviceSession: record.deviceSession ?? null,
    deviceChallengeAt: record.deviceChallengeAt ?? 0,
    // Whatever the store kept: the key decides.
    bound: deviceKey !== null
  }
}

// What the store said stays in `cause` (logged), never in the answer: a
// Redis error names internal addresses.
function storeFailed (method: string, error: unknown): Error {
  const failure = new FST_LOGIN_STORE_FAILED(method)
  failure.cause = error
  return failure
}
