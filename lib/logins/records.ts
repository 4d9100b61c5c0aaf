import type { LoginConfig, LoginRecord, LoginStore } from '../../types/index'
import { TwoGenerations } from '../cache'
import { nowInSeconds } from '../clock'
import { FST_LOGIN_STORE_FAILED } from '../errors'
import { andThen, isThenable, type MaybePromise } from '../state'
import type { AccountToken } from '../cookies/token'

// Server-side login records, through the app's store. A login this process
// has seen alive recently is answered from a bounded cache, so a guarded
// request of a known login costs no store round trip; the cache is trusted
// only while the store can tell us about revocations made anywhere (or, for
// a store that cannot, for `storeCacheWindow` seconds).

// How long a user agent may be in a record.
const MAX_USER_AGENT = 512

interface Cached {
  record: LoginRecord
  // When it was read from the store (for stores that cannot report revocations).
  readAt: number
}

export class LoginRecords {
  #store: LoginStore
  #config: LoginConfig
  #cache = new TwoGenerations<Cached>(10000)
  // Trusted only while revocations are heard: false until the store says so.
  #listening = false
  // Bumped by every invalidation: a store read that began before one must
  // not put what it read into the cache (it may be what was just revoked).
  #epoch = 0
  #asynchronous = false

  constructor (store: LoginStore, config: LoginConfig) {
    this.#store = store
    this.#config = config
  }

  // At `ready`: hear revocations from other instances, if the store can tell.
  async listen (): Promise<void> {
    if (typeof this.#store.subscribe !== 'function') return
    await this.#store.subscribe({
      revoked: (loginIds) => {
        this.#epoch++
        for (const loginId of loginIds) this.#cache.delete(loginId)
      },
      listening: (listening) => {
        // Whatever was cached may have been revoked while we were deaf.
        this.#epoch++
        this.#cache.clear()
        this.#listening = listening
      }
    })
  }

  async close (): Promise<void> {
    if (typeof this.#store.close === 'function') await this.#store.close()
  }

  create (account: AccountToken, userAgent: string | undefined, ip: string): MaybePromise<void> {
    const record: LoginRecord = {
      loginId: account.loginId,
      userId: account.id,
      createdAt: account.issuedAt,
      lastSeenAt: account.issuedAt,
      expiresAt: account.expiresAt,
      remembered: account.remember,
      userAgent: (userAgent ?? '').slice(0, MAX_USER_AGENT),
      ip
    }
    return this.#call('create', () => this.#store.create(record))
  }

  // The live record of a login cookie, or null: gone, expired, idle for too
  // long, or another user's. Touches it (at most about once a minute).
  check (account: AccountToken): MaybePromise<LoginRecord | null> {
    const now = nowInSeconds()
    const cached = this.#cache.get(account.loginId)
    // Idle by this process's last sight of it: another instance may have
    // seen it since, so the store decides.
    if (cached !== undefined && this.#trusts(cached, now) && !this.#idle(cached.record, now)) return this.#alive(account, cached, now)
    const epoch = this.#epoch
    const read = this.#call('get', () => this.#store.get(account.loginId, account.id))
    if (isThenable(read)) this.#asynchronous = true
    return andThen(read, (record) => {
      if (record === null || record === undefined) return null
      const entry = { record: { ...record }, readAt: now }
      if (epoch === this.#epoch && (this.#listening || this.#config.storeCacheWindow > 0)) this.#cache.set(account.loginId, entry)
      return this.#alive(account, entry, now)
    })
  }

  delete (userId: string, loginId: string): MaybePromise<boolean> {
    this.#forget(loginId)
    return andThen(this.#call('delete', () => this.#store.delete(loginId, userId)), (existed) => {
      // Again: a read that raced the delete may have cached it meanwhile.
      this.#forget(loginId)
      return existed
    })
  }

  deleteAll (userId: string, exceptLoginId?: string): MaybePromise<number> {
    this.#forgetUser(userId, exceptLoginId)
    return andThen(this.#call('deleteAll', () => this.#store.deleteAll(userId, exceptLoginId)), (count) => {
      this.#forgetUser(userId, exceptLoginId)
      return count
    })
  }

  list (userId: string): MaybePromise<LoginRecord[]> {
    return this.#call('list', () => this.#store.list(userId))
  }

  // An asynchronous store answers asynchronously from the cache too: code
  // that reads `currentUser` without a guard must fail the same way on every
  // request, not only on those the cache could not answer.
  #answer<T> (value: T): MaybePromise<T> {
    return this.#asynchronous ? Promise.resolve(value) : value
  }

  #trusts (cached: Cached, now: number): boolean {
    return this.#listening || now - cached.readAt < this.#config.storeCacheWindow
  }

  #alive (account: AccountToken, cached: Cached, now: number): MaybePromise<LoginRecord | null> {
    const { record } = cached
    if (record.userId !== account.id || now >= record.expiresAt || this.#idle(record, now)) {
      this.#cache.delete(account.loginId)
      return this.#answer(null)
    }
    if (now - record.lastSeenAt < touchInterval(this.#config.idleTimeout)) return this.#answer(record)
    // Written at most about once a minute per login, not on every request;
    // remembered here only once the store has it.
    return andThen(this.#call('touch', () => this.#store.touch(record.loginId, now, record.userId)), () => {
      record.lastSeenAt = now
      return record
    })
  }

  #idle (record: LoginRecord, now: number): boolean {
    const idle = this.#config.idleTimeout
    return idle !== null && now - record.lastSeenAt >= idle
  }

  #forget (loginId: string): void {
    this.#epoch++
    this.#cache.delete(loginId)
  }

  #forgetUser (userId: string, exceptLoginId: string | undefined): void {
    this.#epoch++
    for (const [loginId, cached] of this.#cache.entries()) {
      if (cached.record.userId === userId && loginId !== exceptLoginId) this.#cache.delete(loginId)
    }
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
    return Promise.resolve(result).catch((error: unknown) => { throw storeFailed(method, error) })
  }
}

// How often the last use of a login is written: about once a minute, or a
// tenth of the idle timeout when that is shorter.
export function touchInterval (idleTimeout: number | null): number {
  return idleTimeout === null ? 60 : Math.min(60, Math.max(1, Math.floor(idleTimeout / 10)))
}

// What the store said stays in `cause` (logged), never in the answer: a
// Redis error names internal addresses.
function storeFailed (method: string, error: unknown): Error {
  const failure = new FST_LOGIN_STORE_FAILED(method)
  failure.cause = error
  return failure
}
