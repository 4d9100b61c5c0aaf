'use strict'

// Password storage with node:crypto alone: scrypt, a random salt per password,
// and a constant-time comparison. The stored string names its parameters, so
// they can be raised later without breaking existing hashes:
//
//   scrypt$<N>$<r>$<p>$<salt, base64>$<key, base64>
const { randomBytes, scrypt, timingSafeEqual } = require('node:crypto')
const { promisify } = require('node:util')

const scryptAsync = promisify(scrypt)

const COST = { N: 16384, r: 8, p: 1 }
const SALT_BYTES = 16
const KEY_BYTES = 32
const MAX_MEMORY = 64 * 1024 * 1024

// The same password typed on two keyboards may arrive in two Unicode forms.
function passwordBytes (password) {
  return Buffer.from(password.normalize('NFC'), 'utf8')
}

async function hashPassword (password) {
  const salt = randomBytes(SALT_BYTES)
  const key = await scryptAsync(passwordBytes(password), salt, KEY_BYTES, { ...COST, maxmem: MAX_MEMORY })
  return ['scrypt', COST.N, COST.r, COST.p, salt.toString('base64'), key.toString('base64')].join('$')
}

async function verifyPassword (password, stored) {
  const parts = stored.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false
  const [N, r, p] = parts.slice(1, 4).map(Number)
  const salt = Buffer.from(parts[4], 'base64')
  const expected = Buffer.from(parts[5], 'base64')
  const key = await scryptAsync(passwordBytes(password), salt, expected.length, { N, r, p, maxmem: MAX_MEMORY })
  return timingSafeEqual(key, expected)
}

// A hash that no password matches, made once: checking a password for an
// unknown name costs as much as for a known one, so response times do not
// tell which names exist.
let dummyHash = null
async function verifyAgainstNobody (password) {
  dummyHash ??= hashPassword(randomBytes(16).toString('hex'))
  await verifyPassword(password, await dummyHash)
  return false
}

module.exports = { hashPassword, verifyPassword, verifyAgainstNobody }
