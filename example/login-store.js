'use strict'

// fastify-login's `LoginStore` over better-sqlite3: one row per login, in a
// table next to the students. Every method answers synchronously, so
// `request.currentUser` stays synchronous too. It is a complete store for one
// process: copy it for your own database. (Several processes on one file
// would also need `subscribe`, to hear about revocations made by the others.)
//
// Times are seconds since the epoch. `user_id` is what `getId()` returns;
// `method` how the user signed in ('password', 'passkey', 'oidc'), or NULL.
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS logins (
    login_id     TEXT    PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    remembered   INTEGER NOT NULL CHECK (remembered IN (0, 1)),
    user_agent   TEXT    NOT NULL,
    ip           TEXT    NOT NULL,
    method       TEXT
  ) STRICT;
  CREATE INDEX IF NOT EXISTS logins_of_user ON logins (user_id, created_at);
`

const COLUMNS = `login_id AS loginId, user_id AS userId, created_at AS createdAt, last_seen_at AS lastSeenAt,
  expires_at AS expiresAt, remembered, user_agent AS userAgent, ip, method`

function nowInSeconds () {
  return Math.floor(Date.now() / 1000)
}

// SQLite has no booleans: 0 and 1 come back as numbers.
function record (row) {
  return row === undefined ? null : { ...row, remembered: row.remembered === 1 }
}

function sqliteLoginStore (db) {
  db.exec(SCHEMA)
  // A table made before logins had a method gets the column.
  if (!db.pragma('table_info(logins)').some((column) => column.name === 'method')) {
    db.exec('ALTER TABLE logins ADD COLUMN method TEXT')
  }
  const statements = {
    insert: db.prepare(`INSERT INTO logins (login_id, user_id, created_at, last_seen_at, expires_at, remembered, user_agent, ip, method)
      VALUES (@loginId, @userId, @createdAt, @lastSeenAt, @expiresAt, @remembered, @userAgent, @ip, @method)`),
    // Expired logins are deleted as new ones come: the table cannot grow without end.
    deleteExpired: db.prepare('DELETE FROM logins WHERE expires_at <= ?'),
    get: db.prepare(`SELECT ${COLUMNS} FROM logins WHERE login_id = ? AND user_id = ? AND expires_at > ?`),
    touch: db.prepare('UPDATE logins SET last_seen_at = ? WHERE login_id = ? AND user_id = ?'),
    delete: db.prepare('DELETE FROM logins WHERE login_id = ? AND user_id = ?'),
    list: db.prepare(`SELECT ${COLUMNS} FROM logins WHERE user_id = ? AND expires_at > ? ORDER BY created_at DESC, rowid DESC`),
    deleteAll: db.prepare('DELETE FROM logins WHERE user_id = ? AND login_id IS NOT ?')
  }

  return {
    create (login) {
      statements.deleteExpired.run(nowInSeconds())
      statements.insert.run({ ...login, remembered: login.remembered ? 1 : 0, method: login.method ?? null })
    },
    get: (loginId, userId) => record(statements.get.get(loginId, userId, nowInSeconds())),
    touch (loginId, lastSeenAt, userId) {
      statements.touch.run(lastSeenAt, loginId, userId)
    },
    delete: (loginId, userId) => statements.delete.run(loginId, userId).changes === 1,
    list: (userId) => statements.list.all(userId, nowInSeconds()).map(record),
    // Without an exception, `login_id IS NOT NULL` holds for every row: all go.
    deleteAll: (userId, exceptLoginId) => statements.deleteAll.run(userId, exceptLoginId ?? null).changes
  }
}

module.exports = { sqliteLoginStore }
