import type { LoginConfig, LoginRecord, LoginUser } from '../../types/index'
import { FST_LOGIN_INVALID_OPTION } from '../errors'
import { andThen, type MaybePromise } from '../state'
import type { LoginRecords } from './records'

// A user's logins as devices: listed, ended one by one or all but one, and
// bounded in number. Only live logins of this realm count, whatever the store
// holds: the plugin lists them (records.ts filters), then ends each one, so a
// store keyed by login id alone cannot end another user's login, and one
// shared with another realm or app never has that one's logins ended.
export class Devices {
  #records: LoginRecords
  #config: LoginConfig

  constructor (records: LoginRecords, config: LoginConfig) {
    this.#records = records
    this.#config = config
  }

  list (userId: string): MaybePromise<LoginRecord[]> {
    return this.#records.list(userId)
  }

  // Only a live login of this very user ends (ASVS 7.4.5).
  revoke (userId: string, loginId: string): MaybePromise<boolean> {
    return andThen(this.#records.own(userId, loginId), (record) => {
      return record === null ? false : andThen(this.#records.end(userId, loginId, record.expiresAt), () => true)
    })
  }

  // Every live login of the user but `keep`; how many ended.
  revokeAll (userId: string, keep?: string): MaybePromise<number> {
    return andThen(this.#records.list(userId), (records) => {
      const ending = records.filter((record) => record.loginId !== keep)
      return andThen(this.#endEach(ending), () => ending.length)
    })
  }

  // After a login: past the user's limit, their least recently used logins
  // end (by last use, not age: the phone used daily stays, the laptop of last
  // month goes), never the new one. Returns what was ended.
  evict (user: LoginUser, userId: string, newLoginId: string): MaybePromise<LoginRecord[]> {
    const limit = this.#limitFor(user)
    return andThen(this.#records.list(userId), (records) => {
      if (records.length <= limit) return []
      const evicted = records
        .filter((record) => record.loginId !== newLoginId)
        .sort((a, b) => a.lastSeenAt - b.lastSeenAt || a.createdAt - b.createdAt)
        .slice(0, records.length - limit)
      return andThen(this.#endEach(evicted), () => evicted)
    })
  }

  #limitFor (user: LoginUser): number {
    const { maxLogins } = this.#config
    const limit = typeof maxLogins === 'function' ? maxLogins(user) : maxLogins
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new FST_LOGIN_INVALID_OPTION('maxLogins', `returned ${String(limit)} for a user: it must return a whole number of logins, at least 1`)
    }
    return limit
  }

  // One after another: a synchronous store stays synchronous, and a store
  // that fails stops the rest (the request is a 503; ended ones stay ended).
  #endEach (records: LoginRecord[]): MaybePromise<unknown> {
    return records.reduce<MaybePromise<unknown>>((previous, record) => andThen(previous, () => this.#records.end(record.userId, record.loginId, record.expiresAt)), undefined)
  }
}
