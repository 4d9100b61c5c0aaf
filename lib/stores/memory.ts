import type { LoginRecord, LoginStore, LoginStoreListener } from '../../types/index'
import { nowInSeconds } from '../clock'

// Logins kept in this process's memory: for tests and single-instance apps.
// Synchronous, so `request.currentUser` stays synchronous. Expired logins are
// dropped when they are next looked at, and when a user's logins are listed.
export function memoryStore (): LoginStore {
  const records = new Map<string, LoginRecord>()
  const byUser = new Map<string, Set<string>>()
  const listeners: LoginStoreListener[] = []

  function live (loginId: string): LoginRecord | null {
    const record = records.get(loginId)
    if (record === undefined) return null
    if (record.expiresAt > nowInSeconds()) return record
    remove(record)
    return null
  }

  function remove (record: LoginRecord): void {
    records.delete(record.loginId)
    const ids = byUser.get(record.userId)
    ids?.delete(record.loginId)
    if (ids?.size === 0) byUser.delete(record.userId)
  }

  function revoked (loginIds: string[]): void {
    if (loginIds.length === 0) return
    for (const listener of listeners) listener.revoked(loginIds)
  }

  return {
    create (record) {
      // A copy: the caller's object must not change what is stored.
      records.set(record.loginId, { ...record })
      let ids = byUser.get(record.userId)
      if (ids === undefined) byUser.set(record.userId, ids = new Set())
      ids.add(record.loginId)
    },
    get (loginId, userId) {
      const record = live(loginId)
      return record === null || record.userId !== userId ? null : { ...record }
    },
    touch (loginId, lastSeenAt, userId) {
      const record = live(loginId)
      if (record !== null && record.userId === userId) record.lastSeenAt = lastSeenAt
    },
    delete (loginId, userId) {
      const record = live(loginId)
      if (record === null || record.userId !== userId) return false
      remove(record)
      revoked([loginId])
      return true
    },
    list (userId) {
      const ids = [...byUser.get(userId) ?? []]
      return ids.map(live)
        .filter((record): record is LoginRecord => record !== null)
        .map((record) => ({ ...record }))
        .sort((a, b) => b.createdAt - a.createdAt)
    },
    deleteAll (userId, exceptLoginId) {
      const gone: string[] = []
      for (const loginId of [...byUser.get(userId) ?? []]) {
        const record = live(loginId)
        if (record === null || loginId === exceptLoginId) continue
        remove(record)
        gone.push(loginId)
      }
      revoked(gone)
      return gone.length
    },
    // One process: every revocation is heard, and always will be.
    subscribe (listener) {
      listeners.push(listener)
      listener.listening(true)
    }
  }
}
