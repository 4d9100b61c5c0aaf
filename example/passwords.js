'use strict'

// Password storage with node:crypto alone: scrypt, a random salt per password,
// and a constant-time comparison. The stored string names its parameters, so
// they can be raised later without breaking existing hashes:
//
//   scrypt$<N>$<r>$<p>$<salt, base64>$<key, base64>
//
// scrypt is slow on purpose (about 40 ms and 16 MiB here), so a flood of
// log-in attempts could starve the real users: at most HASH_SLOTS run at once,
// at most HASH_QUEUE more wait, and anything beyond is refused at once with
// PasswordChecksBusy (the app answers 503) instead of queueing without end.
const { randomBytes, scrypt, timingSafeEqual } = require('node:crypto')
const { promisify } = require('node:util')

const scryptAsync = promisify(scrypt)

const COST = { N: 16384, r: 8, p: 1 }
const SALT_BYTES = 16
const KEY_BYTES = 32
const MAX_MEMORY = 64 * 1024 * 1024
// libuv runs scrypt on its thread pool, 4 threads by default: more at once
// would only queue there, out of sight, and delay file system work too.
const HASH_SLOTS = 4
const HASH_QUEUE = 32

class PasswordChecksBusy extends Error {
  constructor () {
    super('Too many password checks are waiting; try again in a moment.')
    this.statusCode = 503
    this.code = 'PORTAL_PASSWORDS_BUSY'
  }
}

// How many scrypt computations ran, and the most that ran at once: the tests
// read these to check the cap and that start-up built the dummy hash.
const stats = { hashes: 0, running: 0, mostRunning: 0 }
const waiting = []

async function inSlot (work) {
  if (stats.running >= HASH_SLOTS) {
    if (waiting.length >= HASH_QUEUE) throw new PasswordChecksBusy()
    await new Promise((resolve) => waiting.push(resolve))
  }
  stats.running++
  stats.mostRunning = Math.max(stats.mostRunning, stats.running)
  stats.hashes++
  try {
    return await work()
  } finally {
    stats.running--
    // Hand the slot to the next in line, if any.
    waiting.shift()?.()
  }
}

// The same password typed on two keyboards may arrive in two Unicode forms.
function passwordBytes (password) {
  return Buffer.from(password.normalize('NFC'), 'utf8')
}

async function hashPassword (password) {
  const salt = randomBytes(SALT_BYTES)
  const key = await inSlot(() => scryptAsync(passwordBytes(password), salt, KEY_BYTES, { ...COST, maxmem: MAX_MEMORY }))
  return ['scrypt', COST.N, COST.r, COST.p, salt.toString('base64'), key.toString('base64')].join('$')
}

async function verifyPassword (password, stored) {
  const parts = stored.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false
  const [N, r, p] = parts.slice(1, 4).map(Number)
  const salt = Buffer.from(parts[4], 'base64')
  const expected = Buffer.from(parts[5], 'base64')
  const key = await inSlot(() => scryptAsync(passwordBytes(password), salt, expected.length, { N, r, p, maxmem: MAX_MEMORY }))
  return timingSafeEqual(key, expected)
}

// A hash that no password matches: checking a password for an unknown name
// costs as much as for a known one, so response times do not tell which names
// exist. Built at start-up (buildApp awaits it): built on the first unknown
// name, it would make that one answer twice as slow, and give it away.
let dummyHash = null
async function prepareDummyHash () {
  dummyHash ??= hashPassword(randomBytes(16).toString('hex'))
  await dummyHash
}

async function verifyAgainstNobody (password) {
  await prepareDummyHash()
  await verifyPassword(password, await dummyHash)
  return false
}

// A student who signed in through an OpenID provider may have no password
// (null): no password matches, and checking takes as long as for any other.
async function passwordMatches (password, stored) {
  return stored === null ? verifyAgainstNobody(password) : verifyPassword(password, stored)
}

module.exports = { hashPassword, verifyPassword, passwordMatches, verifyAgainstNobody, prepareDummyHash, PasswordChecksBusy, stats, HASH_SLOTS, HASH_QUEUE }
