import type { LoginConfig, LoginRecord } from '../../types/index'
import type { AccountToken } from '../cookies/token'

// What checking a login with a store decided: whether it is alive, and what a
// guard should change in the account cookie it re-issues (a rotation, the
// first use of a rotated cookie recorded, the last use moved on).
export interface Verdict {
  readonly alive: boolean
  readonly next: Partial<AccountToken> | null
  // The record, when one was read: for the events that name it.
  readonly record: LoginRecord | null
  // Two parties held the login, which is now ended everywhere (rotation).
  readonly reused: boolean
  // Device binding: the request did not prove the login's key. Refused,
  // and the login not ended: it may be a copy of the cookie.
  readonly unproven: boolean
}

export const ALIVE: Verdict = Object.freeze({ alive: true, next: null, record: null, reused: false, unproven: false })
export const ENDED: Verdict = Object.freeze({ alive: false, next: null, record: null, reused: false, unproven: false })
export const UNPROVEN: Verdict = Object.freeze({ alive: false, next: null, record: null, reused: false, unproven: true })

export function alive (next: Partial<AccountToken> | null, record: LoginRecord | null = null): Verdict {
  return { alive: true, next, record, reused: false, unproven: false }
}

// How often the last use of a login is written: about once a minute, or a
// tenth of the idle timeout when that is shorter.
export function touchInterval (idleTimeout: number | null): number {
  return idleTimeout === null ? 60 : Math.min(60, Math.max(1, Math.floor(idleTimeout / 10)))
}

// The record of a login as the store has it, against its cookie, by the
// plugin's own rules: whatever the store answers, a record of another user,
// another realm, past its expiry or idle for too long is no login.
export function recordIsLive (record: LoginRecord, token: AccountToken, realm: string, config: LoginConfig, now: number): boolean {
  if (record.loginId !== token.loginId || record.userId !== token.id) return false
  if (record.realm !== realm && record.realm !== LEGACY_REALM) return false
  if (now >= record.expiresAt) return false
  const idle = config.idleTimeout
  return idle === null || now - Math.max(record.lastSeenAt, token.lastSeenAt) < idle
}

// Records written before realms have none: they are read as this realm's
// until they expire (60 days at most), so an upgrade logs nobody out.
export const LEGACY_REALM = ''

// Rotation, on a record read because the cookie is `every` old (or a store
// without the fast path): see docs/design/login-validity.md.
//  - the record knows a newer generation that this cookie cannot be a late
//    copy of (below): two parties hold the login (the caller ends it);
//  - a newer one this browser may still be catching up with: parallel
//    requests, two tabs, a slow response: this one gets the newer generation;
//  - the same generation, but another cookie of it (below): two parties
//    each rotated their own copy (the caller ends it);
//  - the cookie is the newest and `every` old: the next generation, marked
//    unconfirmed, with no write (a response that never arrives changes nothing).
export type Rotation = 'reused' | Partial<AccountToken> | null

export function rotate (token: AccountToken, record: LoginRecord, config: LoginConfig, now: number): Rotation {
  const rotation = config.rotation
  if (record.generation > token.generation) {
    if (rotation !== false && superseded(token, record, rotation.grace, now)) return 'reused'
    return { generation: record.generation, rotatedAt: now, unconfirmed: false }
  }
  if (rotation !== false && sibling(token, record, rotation.grace)) return 'reused'
  if (rotation !== false && now - token.rotatedAt >= rotation.every) {
    return { generation: token.generation + 1, rotatedAt: now, unconfirmed: true }
  }
  return null
}

// Whether a rotated cookie not yet known to be recorded is another cookie of
// the record's generation than the one whose use was recorded. Cookies of
// one generation issued within `grace` of each other come from one browser's
// parallel requests (each rotates, the browser keeps one); further apart,
// each of two copies was rotated on its own visit, and the second visit came
// after the first copy's rotation had been used: taking turns, which the
// generations alone do not tell. A record of an older store has no cookie.
function sibling (token: AccountToken, record: LoginRecord, grace: number): boolean {
  if (!token.unconfirmed || record.generation !== token.generation || typeof record.generationCookie !== 'string') return false
  const [generation, issuedAt] = record.generationCookie.split(' ')
  // Another generation's: a store of an older version (a rolling deploy)
  // moved the generation on without it. Not a word on this one.
  if (generation !== String(record.generation)) return false
  return Math.abs(token.rotatedAt - Number(issuedAt)) > grace
}

// Which cookie of a login's generations a rotated one is, as the record keeps
// it (`generationCookie`): its generation, and when it was issued. Two copies
// each rotated on their own visit share the generation, not this.
export function cookieOf (token: AccountToken): string {
  return `${token.generation} ${token.rotatedAt}`
}

// Whether an older generation than the record's comes from another party.
// The browser that moved on may still send the one just before, within
// `grace` of the newer one's first use (requests sent before it), or later
// if a response re-issued the older one just before the rotation (its last
// use moved on) and reached the browser after the newer one was first used:
// such a cookie's last use is within `grace` before that first use. Two or
// more generations behind, the next one was replaced in its turn, `every`
// after it was issued at the soonest: no browser still sends this one.
function superseded (token: AccountToken, record: LoginRecord, grace: number, now: number): boolean {
  if (record.generation > token.generation + 1) return true
  return now - record.generationUsedAt > grace && record.generationUsedAt - token.lastSeenAt > grace
}
