'use strict'

// The portal's database: one SQLite file through better-sqlite3, whose calls
// are synchronous. That is what lets the user loader be synchronous too, so
// every template can read `currentUser` without awaiting anything.
const { createHash, randomBytes } = require('node:crypto')
const Database = require('better-sqlite3')
const { sqliteLoginStore } = require('./login-store')
const { createFlowState } = require('./flow-state')

// `session_version` is the alternative id: it is part of every login cookie,
// and bumping it logs out every cookie issued before (see app.js).
// `revoked_by` says why the version was last bumped ('password' or
// 'everywhere'), so a device logged out by it can be told why.
// `api_token_hash` is the SHA-256 of the student's API token: the token itself
// is shown once and never stored; it works until `api_token_expires_at`
// (seconds since the epoch; a token made before there was an expiry has none,
// and no longer works).
//
// Step 3 (passkeys and OpenID Connect): a student who signed in through an
// OpenID provider has no password until they choose one, and no grade, so
// both columns accept NULL; SQLite cannot change a column's constraints, so
// the table is copied. `webauthn_user_id` is the random user handle the
// student's passkeys carry (never the row id: it reveals nothing). Passkeys
// and the provider accounts are rows of their own, gone with the student.
// The copy's ids are AUTOINCREMENT: a deleted student's id is never given to
// a new one, so nothing that still names the old id (a log line, a cookie
// made before the store knew it) can ever mean somebody else.
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
   ALTER TABLE students ADD COLUMN api_token_expires_at INTEGER`,
  `CREATE TABLE students_v3 (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    name                 TEXT    NOT NULL UNIQUE COLLATE NOCASE CHECK (length(name) BETWEEN 1 AND 64),
    grade                INTEGER CHECK (grade BETWEEN 1 AND 12),
    password_hash        TEXT,
    session_version      INTEGER NOT NULL DEFAULT 1,
    api_token_hash       TEXT    UNIQUE,
    created_at           TEXT    NOT NULL DEFAULT (datetime('now')),
    revoked_by           TEXT    CHECK (revoked_by IN ('password', 'everywhere')),
    api_token_expires_at INTEGER,
    webauthn_user_id     TEXT    UNIQUE
  ) STRICT;
  INSERT INTO students_v3 (id, name, grade, password_hash, session_version, api_token_hash, created_at, revoked_by, api_token_expires_at)
    SELECT id, name, grade, password_hash, session_version, api_token_hash, created_at, revoked_by, api_token_expires_at FROM students;
  DROP TABLE students;
  ALTER TABLE students_v3 RENAME TO students;
  CREATE TABLE passkeys (
    credential_id TEXT    PRIMARY KEY,
    student_id    INTEGER NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    public_key    BLOB    NOT NULL,
    counter       INTEGER NOT NULL,
    transports    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
  ) STRICT;
  CREATE INDEX passkeys_of_student ON passkeys (student_id, created_at);
  CREATE TABLE oidc_accounts (
    issuer     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    student_id INTEGER NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    PRIMARY KEY (issuer, subject)
  ) STRICT`
]

// Names are at most this long (forms.js checks it first).
const NAME_LIMIT = 64

// How long an API token works.
const API_TOKEN_DAYS = 30

const COLUMNS = `id, name, grade, password_hash AS passwordHash, session_version AS sessionVersion,
  revoked_by AS revokedBy, api_token_expires_at AS apiTokenExpiresAt, webauthn_user_id AS webauthnUserId`

const PASSKEY_COLUMNS = `credential_id AS id, student_id AS studentId, public_key AS publicKey, counter,
  transports, created_at AS createdAt, last_used_at AS lastUsedAt`

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
    setApiToken: db.prepare('UPDATE students SET api_token_hash = ?, api_token_expires_at = ? WHERE id = ?'),
    setWebauthnUserId: db.prepare(`UPDATE students SET webauthn_user_id = coalesce(webauthn_user_id, ?) WHERE id = ?
      RETURNING webauthn_user_id AS webauthnUserId`),
    deleteStudent: db.prepare('DELETE FROM students WHERE id = ?'),
    passkey: db.prepare(`SELECT ${PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = ?`),
    passkeysOf: db.prepare(`SELECT ${PASSKEY_COLUMNS} FROM passkeys WHERE student_id = ? ORDER BY created_at, rowid`),
    insertPasskey: db.prepare(`INSERT INTO passkeys (credential_id, student_id, public_key, counter, transports, created_at)
      VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (credential_id) DO NOTHING`),
    usePasskey: db.prepare('UPDATE passkeys SET counter = ?, last_used_at = ? WHERE credential_id = ?'),
    deletePasskey: db.prepare('DELETE FROM passkeys WHERE credential_id = ? AND student_id = ?'),
    byOidcAccount: db.prepare(`SELECT ${COLUMNS} FROM students
      WHERE id = (SELECT student_id FROM oidc_accounts WHERE issuer = ? AND subject = ?)`),
    insertNameless: db.prepare(`INSERT INTO students (name) VALUES (?) ON CONFLICT (name) DO NOTHING RETURNING ${COLUMNS}`),
    insertOidcAccount: db.prepare('INSERT INTO oidc_accounts (issuer, subject, student_id) VALUES (?, ?, ?)')
  }
  const row = (value) => value ?? null
  const passkey = (value) => value === undefined ? null : { ...value, transports: JSON.parse(value.transports) }

  // A student made by an OpenID provider's first sign-in: the provider's
  // name, or the first free one of "Name 2", "Name 3"… (cut to fit the
  // limit), linked to the provider's subject, in one transaction.
  const createOidcStudent = db.transaction((issuer, subject, name) => {
    let created
    for (let number = 1; created === undefined; number++) {
      const suffix = number === 1 ? '' : ` ${number}`
      created = statements.insertNameless.get(name.slice(0, NAME_LIMIT - suffix.length).trimEnd() + suffix)
    }
    statements.insertOidcAccount.run(issuer, subject, created.id)
    return created
  })

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

    // The random user handle of the student's passkeys, made on the first one.
    webauthnUserId: (id) => statements.setWebauthnUserId.get(randomBytes(32).toString('base64url'), id).webauthnUserId,
    passkey: (credentialId) => passkey(statements.passkey.get(credentialId)),
    passkeysOf: (studentId) => statements.passkeysOf.all(studentId).map(passkey),
    // False when that credential is already registered (to anyone).
    addPasskey: ({ id, studentId, publicKey, counter, transports }) =>
      statements.insertPasskey.run(id, studentId, publicKey, counter, JSON.stringify(transports), nowInSeconds()).changes === 1,
    passkeyUsed (credentialId, counter) {
      statements.usePasskey.run(counter, nowInSeconds(), credentialId)
    },
    deletePasskey: (credentialId, studentId) => statements.deletePasskey.run(credentialId, studentId).changes === 1,

    // The student an OpenID provider's subject signs in as, or null.
    studentByOidcAccount: (issuer, subject) => row(statements.byOidcAccount.get(issuer, subject)),
    createOidcStudent: (issuer, subject, name) => createOidcStudent(issuer, subject, name),

    // The student, their passkeys and provider accounts (their logins are
    // the app's to end).
    deleteStudent (id) {
      statements.deleteStudent.run(id)
    },

    // The logins, for fastify-login's `store` option (login-store.js).
    logins: sqliteLoginStore(db),
    // The state of a passkey or OpenID Connect sign-in (flow-state.js).
    flowState: (options) => createFlowState(db, options),

    close: () => db.close()
  }
}

module.exports = { openDatabase, hashApiToken, TOKEN_PREFIX, API_TOKEN_DAYS }
