'use strict'

// The portal's database: one SQLite file through better-sqlite3, whose calls
// are synchronous. That is what lets the user loader be synchronous too, so
// every template can read `currentUser` without awaiting anything.
const { createHash, randomBytes } = require('node:crypto')
const Database = require('better-sqlite3')
const { sqliteLoginStore } = require('./login-store')

// `session_version` is the alternative id: it is part of every login cookie,
// and bumping it logs out every cookie issued before (see app.js).
// `revoked_by` says why the version was last bumped ('password' or
// 'everywhere'), so a device logged out by it can be told why.
// `api_token_hash` is the SHA-256 of the student's API token: the token itself
// is shown once and never stored; it works until `api_token_expires_at`
// (seconds since the epoch; a token made before there was an expiry has none,
// and no longer works).
//
// Each step of MIGRATIONS runs once, in order; `PRAGMA user_version` counts
// the steps a database file has had, so a file made by an older version of
// the portal is brought up to date when it is opened.
const MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS students (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE COLLATE NOCASE CHECK (length(name) BETWEEN 1 AND 64),
    grade           INTEGER NOT NULL CHECK (grade BETWEEN 1 AND 12),
    password_hash   TEXT    NOT NULL,
    session_version INTEGER NOT NULL DEFAULT 1,
    api_token_hash  TEXT    UNIQUE,
    created_at      TEXT    NOT NULL DEFAULT (datetime('now'))
  ) STRICT`,
  `ALTER TABLE students ADD COLUMN revoked_by TEXT CHECK (revoked_by IN ('password', 'everywhere'));
   ALTER TABLE students ADD COLUMN api_token_expires_at INTEGER`
]

// How long an API token works.
const API_TOKEN_DAYS = 30

const COLUMNS = `id, name, grade, password_hash AS passwordHash, session_version AS sessionVersion,
  revoked_by AS revokedBy, api_token_expires_at AS apiTokenExpiresAt`

// API tokens are 32 random bytes: a plain SHA-256 is enough to store them (a
// slow, salted hash is for passwords, which people choose). The prefix makes
// a leaked token easy to recognise.
const TOKEN_PREFIX = 'portal_'

function hashApiToken (token) {
  return createHash('sha256').update(token).digest('base64url')
}

function nowInSeconds () {
  return Math.floor(Date.now() / 1000)
}

function migrate (db) {
  const done = db.pragma('user_version', { simple: true })
  for (let step = done; step < MIGRATIONS.length; step++) {
    // A step and its count commit together, or not at all.
    db.transaction(() => {
      db.exec(MIGRATIONS[step])
      db.pragma(`user_version = ${step + 1}`)
    })()
  }
}

function openDatabase (filename) {
  const db = new Database(filename)
  db.pragma('journal_mode = WAL')
  migrate(db)

  const statements = {
    byId: db.prepare(`SELECT ${COLUMNS} FROM students WHERE id = ?`),
    byName: db.prepare(`SELECT ${COLUMNS} FROM students WHERE name = ?`),
    byApiToken: db.prepare(`SELECT ${COLUMNS} FROM students WHERE api_token_hash = ? AND api_token_expires_at > ?`),
    // A taken name inserts nothing and returns no row: no race between a
    // check and the insert.
    insert: db.prepare(`INSERT INTO students (name, grade, password_hash) VALUES (?, ?, ?)
      ON CONFLICT (name) DO NOTHING RETURNING ${COLUMNS}`),
    setPassword: db.prepare(`UPDATE students SET password_hash = ?, session_version = session_version + 1,
      revoked_by = 'password', api_token_hash = NULL, api_token_expires_at = NULL WHERE id = ? RETURNING ${COLUMNS}`),
    revokeSessions: db.prepare(`UPDATE students SET session_version = session_version + 1,
      revoked_by = 'everywhere', api_token_hash = NULL, api_token_expires_at = NULL WHERE id = ? RETURNING ${COLUMNS}`),
    setApiToken: db.prepare('UPDATE students SET api_token_hash = ?, api_token_expires_at = ? WHERE id = ?')
  }
  const row = (value) => value ?? null

  return {
    studentById: (id) => row(statements.byId.get(id)),
    studentByName: (name) => row(statements.byName.get(name)),
    studentByApiToken: (token) => row(statements.byApiToken.get(hashApiToken(token), nowInSeconds())),

    // Returns the new student, or null when the name is taken.
    createStudent: ({ name, grade, passwordHash }) => row(statements.insert.get(name, grade, passwordHash)),

    // Both log out every other device (new session version) and revoke the
    // API token; they return the updated student.
    changePassword: (id, passwordHash) => row(statements.setPassword.get(passwordHash, id)),
    revokeSessions: (id) => row(statements.revokeSessions.get(id)),

    // Replaces the student's API token; returns the new token (the only time
    // it exists in clear) and when it expires.
    createApiToken (id) {
      const token = TOKEN_PREFIX + randomBytes(32).toString('base64url')
      const expiresAt = nowInSeconds() + API_TOKEN_DAYS * 24 * 60 * 60
      statements.setApiToken.run(hashApiToken(token), expiresAt, id)
      return { token, expiresAt }
    },

    // The logins, for fastify-login's `store` option (login-store.js).
    logins: sqliteLoginStore(db),

    close: () => db.close()
  }
}

module.exports = { openDatabase, hashApiToken, TOKEN_PREFIX, API_TOKEN_DAYS }
