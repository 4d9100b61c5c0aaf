'use strict'

// The portal's database: one SQLite file through better-sqlite3, whose calls
// are synchronous. That is what lets the user loader be synchronous too, so
// every template can read `currentUser` without awaiting anything.
const { createHash, randomBytes } = require('node:crypto')
const Database = require('better-sqlite3')

// `session_version` is the alternative id: it is part of every login cookie,
// and bumping it logs out every cookie issued before (see app.js).
// `api_token_hash` is the SHA-256 of the student's API token: the token itself
// is shown once and never stored.
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS students (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE COLLATE NOCASE CHECK (length(name) BETWEEN 1 AND 64),
    grade           INTEGER NOT NULL CHECK (grade BETWEEN 1 AND 12),
    password_hash   TEXT    NOT NULL,
    session_version INTEGER NOT NULL DEFAULT 1,
    api_token_hash  TEXT    UNIQUE,
    created_at      TEXT    NOT NULL DEFAULT (datetime('now'))
  ) STRICT
`

const COLUMNS = 'id, name, grade, password_hash AS passwordHash, session_version AS sessionVersion'

// API tokens are 32 random bytes: a plain SHA-256 is enough to store them (a
// slow, salted hash is for passwords, which people choose). The prefix makes
// a leaked token easy to recognise.
const TOKEN_PREFIX = 'portal_'

function hashApiToken (token) {
  return createHash('sha256').update(token).digest('base64url')
}

function openDatabase (filename) {
  const db = new Database(filename)
  db.pragma('journal_mode = WAL')
  db.exec(SCHEMA)

  const statements = {
    byId: db.prepare(`SELECT ${COLUMNS} FROM students WHERE id = ?`),
    byName: db.prepare(`SELECT ${COLUMNS} FROM students WHERE name = ?`),
    byApiToken: db.prepare(`SELECT ${COLUMNS} FROM students WHERE api_token_hash = ?`),
    // A taken name inserts nothing and returns no row: no race between a
    // check and the insert.
    insert: db.prepare(`INSERT INTO students (name, grade, password_hash) VALUES (?, ?, ?)
      ON CONFLICT (name) DO NOTHING RETURNING ${COLUMNS}`),
    setPassword: db.prepare(`UPDATE students SET password_hash = ?, session_version = session_version + 1,
      api_token_hash = NULL WHERE id = ? RETURNING ${COLUMNS}`),
    revokeSessions: db.prepare(`UPDATE students SET session_version = session_version + 1,
      api_token_hash = NULL WHERE id = ? RETURNING ${COLUMNS}`),
    setApiToken: db.prepare('UPDATE students SET api_token_hash = ? WHERE id = ?')
  }
  const row = (value) => value ?? null

  return {
    studentById: (id) => row(statements.byId.get(id)),
    studentByName: (name) => row(statements.byName.get(name)),
    studentByApiToken: (token) => row(statements.byApiToken.get(hashApiToken(token))),

    // Returns the new student, or null when the name is taken.
    createStudent: ({ name, grade, passwordHash }) => row(statements.insert.get(name, grade, passwordHash)),

    // Both log out every other device (new session version) and revoke the
    // API token; they return the updated student.
    changePassword: (id, passwordHash) => row(statements.setPassword.get(passwordHash, id)),
    revokeSessions: (id) => row(statements.revokeSessions.get(id)),

    // Replaces the student's API token; returns the new token, the only time it exists in clear.
    createApiToken (id) {
      const token = TOKEN_PREFIX + randomBytes(32).toString('base64url')
      statements.setApiToken.run(hashApiToken(token), id)
      return token
    },

    close: () => db.close()
  }
}

module.exports = { openDatabase, hashApiToken, TOKEN_PREFIX }
