import { randomBytes } from 'node:crypto'
import type { LoginRecord, LoginStore, LoginStoreListener, Revocation } from '../../types/index'
import { nowInSeconds } from '../clock'

// How many records a memory store keeps, expired ones not yet swept
// included: for the tests, which must see what is freed.
export const kKeptRecords = Symbol('fastify-login.kept-records')

// A login created looks at this many records for expired ones: more than the
// one it adds, so the sweep goes round every record, however many there are,
// with bounded work per login and no timer.
const SWEEP_PER_CREATE = 4

// Logins kept in this process's memory: for tests and single-instance apps.
// Synchronous, so `request.currentUser` stays synchronous. Expired logins are
// dropped when they are next looked at, when a user's logins are listed, and
// by the sweep of each login created.
export function memoryStore (): LoginStore {
  const records = new Map<string, LoginRecord>()
  const byUser = new Map<string, Set<string>>()
  // Ended logins until they would have expired, for a registration that
  // subscribes after they ended (another realm of the app, started later).
  const ended = new Map<string, Revocation>()
  let pruneAt = 64
  const realms = new Map<string, string>()
  const listeners: LoginStoreListener[] = []
  // The sweep's round: the login ids kept when it began, and how far it got.
  // Ids, not an iterator of the Map: a live iterator would hold on to the
  // records deleted since it was made until it moved on.
  let round: string[] = []
  let next = 0

  function live (loginId: string): LoginRecord | null {
    const record = records.get(loginId)
    if (record === undefined) return null
    if (record.expiresAt > nowInSeconds()) return record
    remove(record)
    return null
  }

  function owned (loginId: string, userId: string): LoginRecord | null {
    const record = live(loginId)
    return record === null || record.userId !== userId ? null : record
  }

  function remove (record: LoginRecord): void {
    records.delete(record.loginId)
    const ids = byUser.get(record.userId)
    ids?.delete(record.loginId)
    if (ids?.size === 0) byUser.delete(record.userId)
  }

  // Expired logins of users nobody looks at again would stay for ever.
  function sweep (): void {
    const now = nowInSeconds()
    for (let i = 0; i < SWEEP_PER_CREATE; i++) {
      if (next === round.length) {
        // A new round, over the records kept now: its cost, spread over the
        // logins created while it lasts, is a few ids each.
        round = [...records.keys()]
        next = 0
        if (round.length === 0) return
      }
      const record = records.get(round[next++])
      if (record !== undefined && record.expiresAt <= now) remove(record)
    }
  }

  // Every listener hears of it before `delete` returns: the store proves
  // what it heard once, with `heard(Infinity)`.
  function revoked (gone: LoginRecord[]): void {
    if (gone.length === 0) return
    const revocations = gone.map((record) => ({ loginId: record.loginId, userId: record.userId, expiresAt: record.expiresAt }))
    // Expired ones go each time the list doubles: linear work, amortised.
    if (ended.size >= pruneAt) {
      const now = nowInSeconds()
      for (const [loginId, revocation] of ended) if (revocation.expiresAt <= now) ended.delete(loginId)
      pruneAt = Math.max(64, ended.size * 2)
    }
    for (const revocation of revocations) ended.set(revocation.loginId, revocation)
    for (const listener of listeners) listener.revoked(revocations)
  }

  const store: LoginStore & { readonly [kKeptRecords]: number } = {
    get [kKeptRecords] () {
      return records.size
    },
    create (record) {
      sweep()
      // A copy: the caller's object must not change what is stored.
      records.set(record.loginId, { ...record })
      let ids = byUser.get(record.userId)
      if (ids === undefined) byUser.set(record.userId, ids = new Set())
      ids.add(record.loginId)
    },
    get (loginId, userId) {
      const record = owned(loginId, userId)
      return record === null ? null : { ...record }
    },
    touch (loginId, lastSeenAt, userId, expiresAt) {
      const record = owned(loginId, userId)
      if (record === null) return
      if (lastSeenAt > record.lastSeenAt) record.lastSeenAt = lastSeenAt
      if (expiresAt !== undefined && expiresAt > record.expiresAt) record.expiresAt = expiresAt
    },
    delete (loginId, userId) {
      const record = owned(loginId, userId)
      if (record === null) return false
      remove(record)
      revoked([record])
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
      const gone: LoginRecord[] = []
      for (const loginId of [...byUser.get(userId) ?? []]) {
        const record = live(loginId)
        if (record === null || loginId === exceptLoginId) continue
        remove(record)
        gone.push(record)
      }
      revoked(gone)
      return gone.length
    },
    advanceGeneration (loginId, userId, generation, usedAt, cookie) {
      const record = owned(loginId, userId)
      if (record === null || generation <= record.generation) return false
      record.generation = generation
      record.generationUsedAt = usedAt
      record.generationCookie = cookie ?? null
      return true
    },
    bind (loginId, userId, deviceKey, deviceSession) {
      const record = owned(loginId, userId)
      if (record === null || (record.deviceKey ?? null) !== null) return false
      record.deviceKey = deviceKey
      record.deviceSession = deviceSession
      return true
    },
    useChallenge (loginId, userId, issuedAt) {
      const record = owned(loginId, userId)
      if (record === null || issuedAt <= record.deviceChallengeAt) return false
      record.deviceChallengeAt = issuedAt
      return true
    },
    realm (tags) {
      const id = tags.map((tag) => realms.get(tag)).find((known) => known !== undefined) ?? randomBytes(12).toString('base64url')
      for (const tag of tags) realms.set(tag, id)
      return id
    },
    // One process: every revocation is heard, and always will be.
    subscribe (listener) {
      listeners.push(listener)
      const now = nowInSeconds()
      const known = [...ended.values()].filter((revocation) => revocation.expiresAt > now)
      if (known.length > 0) listener.revoked(known)
      listener.listening(true)
      listener.heard(Infinity)
    }
  }
  return store
}
