'use strict'

// fastify-login's `LoginStore` over better-sqlite3: one row per login, in a
// table next to the students. Every method answers synchronously, so
// `request.currentUser` stays synchronous too. It is a complete store for one
// process, with the fast path: the plugin hears every ended login before
// `delete` returns, so it checks a login without reading its row. Copy it for
// your own database. (Several processes on one file would need a way to tell
// each other about ended logins: see redisStore.)
//
// Times are seconds since the epoch. `user_id` is what `getId()` returns.
const { randomBytes } = require('node:crypto')

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS logins (
    login_id     TEXT    PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    remembered   INTEGER NOT NULL CHECK (remembered IN (0, 1)),
    user_agent   TEXT    NOT NULL,
    ip           TEXT    NOT NULL
  ) STRICT;
  CREATE INDEX IF NOT EXISTS logins_of_user ON logins (user_id, created_at);
  CREATE TABLE IF NOT EXISTS ended_logins (
    login_id   TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE IF NOT EXISTS login_realms (
    tag   TEXT PRIMARY KEY,
    realm TEXT NOT NULL
  ) STRICT;
`

// Columns added since the first version of the table: an older database file
// gets them on open.
const ADDED_COLUMNS = [
  ['method', 'TEXT'],
  ['authenticated_at', 'INTEGER'],
  ['generation', 'INTEGER NOT NULL DEFAULT 0'],
  ['generation_used_at', 'INTEGER'],
  // Which cookie of that generation was used (rotation tells a copy rotated
  // on its own by it).
  ['generation_cookie', 'TEXT'],
  ['realm', 'TEXT'],
  // Device binding: the browser's public key (a JSON web key), its session
  // id, and the issue time (ms) of the newest refresh challenge it used.
  ['device_key', 'TEXT'],
  ['device_session', 'TEXT'],
  ['device_challenge_at', 'INTEGER NOT NULL DEFAULT 0']
]

const COLUMNS = `login_id AS loginId, user_id AS userId, created_at AS createdAt, last_seen_at AS lastSeenAt,
  expires_at AS expiresAt, remembered, user_agent AS userAgent, ip, method,
  authenticated_at AS authenticatedAt, generation, generation_used_at AS generationUsedAt,
  generation_cookie AS generationCookie, realm,
  device_key AS deviceKey, device_session AS deviceSession, device_challenge_at AS deviceChallengeAt`

function nowInSeconds () {
  return Math.floor(Date.now() / 1000)
}

// SQLite has no booleans: 0 and 1 come back as numbers. A row from before the
// added columns has nulls there, which the plugin reads as their defaults.
function record (row) {
  if (row === undefined) return null
  const { authenticatedAt, generationUsedAt, generationCookie, realm, ...rest } = row
  return {
    ...rest,
    remembered: row.remembered === 1,
    bound: row.deviceKey !== null,
    ...(authenticatedAt === null ? {} : { authenticatedAt }),
    ...(generationUsedAt === null ? {} : { generationUsedAt }),
    ...(generationCookie === null ? {} : { generationCookie }),
    ...(realm === null ? {} : { realm })
  }
}

function sqliteLoginStore (db) {
  db.exec(SCHEMA)
  const present = new Set(db.prepare('SELECT name FROM pragma_table_info(\'logins\')').all().map((column) => column.name))
  for (const [name, type] of ADDED_COLUMNS) {
    if (!present.has(name)) db.exec(`ALTER TABLE logins ADD COLUMN ${name} ${type}`)
  }
  const statements = {
    insert: db.prepare(`INSERT INTO logins (login_id, user_id, created_at, last_seen_at, expires_at, remembered, user_agent, ip,
      method, authenticated_at, generation, generation_used_at, generation_cookie, realm, device_key, device_session, device_challenge_at)
      VALUES (@loginId, @userId, @createdAt, @lastSeenAt, @expiresAt, @remembered, @userAgent, @ip,
      @method, @authenticatedAt, @generation, @generationUsedAt, @generationCookie, @realm, @deviceKey, @deviceSession, @deviceChallengeAt)`),
    // Expired logins are deleted as new ones come: the tables cannot grow without end.
    deleteExpired: db.prepare('DELETE FROM logins WHERE expires_at <= ?'),
    forgetEnded: db.prepare('DELETE FROM ended_logins WHERE expires_at <= ?'),
    get: db.prepare(`SELECT ${COLUMNS} FROM logins WHERE login_id = ? AND user_id = ? AND expires_at > ?`),
    // Forward only: a late touch never moves the last use or the expiry back.
    touch: db.prepare(`UPDATE logins SET last_seen_at = MAX(last_seen_at, @lastSeenAt), expires_at = MAX(expires_at, COALESCE(@expiresAt, 0))
      WHERE login_id = @loginId AND user_id = @userId`),
    advance: db.prepare(`UPDATE logins SET generation = @generation, generation_used_at = @usedAt, generation_cookie = @cookie
      WHERE login_id = @loginId AND user_id = @userId AND generation < @generation`),
    // A login is bound once, to one key; each refresh challenge works once.
    bind: db.prepare(`UPDATE logins SET device_key = @deviceKey, device_session = @deviceSession
      WHERE login_id = @loginId AND user_id = @userId AND device_key IS NULL`),
    useChallenge: db.prepare(`UPDATE logins SET device_challenge_at = @issuedAt
      WHERE login_id = @loginId AND user_id = @userId AND device_challenge_at < @issuedAt`),
    delete: db.prepare('DELETE FROM logins WHERE login_id = ? AND user_id = ? RETURNING expires_at AS expiresAt'),
    ended: db.prepare('INSERT OR REPLACE INTO ended_logins (login_id, user_id, expires_at) VALUES (?, ?, ?)'),
    allEnded: db.prepare('SELECT login_id AS loginId, user_id AS userId, expires_at AS expiresAt FROM ended_logins WHERE expires_at > ?'),
    list: db.prepare(`SELECT ${COLUMNS} FROM logins WHERE user_id = ? AND expires_at > ? ORDER BY created_at DESC, rowid DESC`),
    realmOf: db.prepare('SELECT realm FROM login_realms WHERE tag = ?'),
    register: db.prepare('INSERT OR IGNORE INTO login_realms (tag, realm) VALUES (?, ?)')
  }
  const listeners = []

  return {
    create (login) {
      statements.deleteExpired.run(nowInSeconds())
      // A record from a fastify-login that predates a field has none: NULL.
      statements.insert.run({
        method: null,
        authenticatedAt: null,
        generation: 0,
        deviceKey: null,
        deviceSession: null,
        deviceChallengeAt: 0,
        generationUsedAt: null,
        generationCookie: null,
        realm: null,
        ...login,
        remembered: login.remembered ? 1 : 0
      })
    },
    get: (loginId, userId) => record(statements.get.get(loginId, userId, nowInSeconds())),
    touch (loginId, lastSeenAt, userId, expiresAt) {
      statements.touch.run({ loginId, userId, lastSeenAt, expiresAt: expiresAt ?? null })
    },
    // The ended login is kept until it would have expired, so the plugin
    // (and a restart of it) can refuse its cookie without reading this table.
    delete (loginId, userId) {
      const deleted = db.transaction(() => {
        const row = statements.delete.get(loginId, userId)
        if (row !== undefined) statements.ended.run(loginId, userId, row.expiresAt)
        return row
      })()
      if (deleted === undefined) return false
      statements.forgetEnded.run(nowInSeconds())
      for (const listener of listeners) listener.revoked([{ loginId, userId, expiresAt: deleted.expiresAt }])
      return true
    },
    list: (userId) => statements.list.all(userId, nowInSeconds()).map(record),
    advanceGeneration: (loginId, userId, generation, usedAt, cookie) => statements.advance.run({ loginId, userId, generation, usedAt, cookie: cookie ?? null }).changes === 1,
    bind: (loginId, userId, deviceKey, deviceSession) => statements.bind.run({ loginId, userId, deviceKey, deviceSession }).changes === 1,
    useChallenge: (loginId, userId, issuedAt) => statements.useChallenge.run({ loginId, userId, issuedAt }).changes === 1,
    // Which realm id a tag of the app's secret names: two apps on one file
    // never see each other's logins.
    realm (tags) {
      return db.transaction(() => {
        const known = tags.map((tag) => statements.realmOf.get(tag)?.realm).find((realm) => realm !== undefined)
        const realm = known ?? randomBytes(12).toString('base64url')
        for (const tag of tags) statements.register.run(tag, realm)
        return realm
      })()
    },
    // One process: every ending is reported before `delete` returns.
    subscribe (listener) {
      listeners.push(listener)
      const ended = statements.allEnded.all(nowInSeconds())
      if (ended.length > 0) listener.revoked(ended)
      listener.listening(true)
      listener.heard(Infinity)
    }
  }
}

module.exports = { sqliteLoginStore }
