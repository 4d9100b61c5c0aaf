'use strict'

// Limits password guessing and sign-up floods with @fastify/rate-limit's
// counters (`createRateLimit`): the routes decide what counts, so that only
// what costs or risks something is counted.
//
// Passwords (log-in, re-authentication, password change) and passkeys
// (passkeys.js: an answer that does not verify): failures are counted per
// client address and per account name (a passkey answer names no account
// until its passkey is found: then per address only); once either has
// PASSWORD_FAILURES in the window, every attempt through it is refused (429
// and Retry-After) before any password is hashed. Successes never count: a
// student who logs in ten times a day, or a class behind one school address,
// is not slowed down by its own logins. The trade-offs (docs/example.md):
// - by name: five wrong guesses at "Ada" from anywhere lock "Ada" out for up
//   to 15 minutes, for her too. That is the price of stopping a guesser who
//   spreads over many addresses; the lock ends by itself.
// - by address: students behind one address (a school's NAT) share its
//   five failures.
// - a check holds a place on each key while it runs, taken before the
//   counters are read: a burst of concurrent guesses gets no more checks
//   than the failures left, and the rest a 429, whatever their password. A
//   failure is counted before its place is given back; a success gives it
//   back uncounted.
//
// Sign-ups: each one that gets as far as hashing its password counts, per
// address, created or refused for a taken name.
const PASSWORD_FAILURES = 5
const PASSWORD_WINDOW_MS = 15 * 60 * 1000
const SIGN_UPS = 10
const SIGN_UP_WINDOW_MS = 60 * 60 * 1000

// Account names as the database compares them: case-insensitive.
function nameKey (name) {
  return `name:${name.toLowerCase()}`
}

function addressKey (request) {
  return `address:${request.ip}`
}

function createAttemptLimits (app) {
  // createRateLimit reads its key from the request: the decorator holds what
  // this request is about to try.
  app.decorateRequest('attemptKey', null)
  function limiter (max, timeWindow) {
    const limit = app.createRateLimit({ max, timeWindow, keyGenerator: (request) => request.attemptKey })
    return async (request, key, increment) => {
      request.attemptKey = key
      return limit(request, { increment })
    }
  }
  const passwordFailures = limiter(PASSWORD_FAILURES, PASSWORD_WINDOW_MS)
  const signUps = limiter(SIGN_UPS, SIGN_UP_WINDOW_MS)

  // Null when every key may go on, else the seconds until all of them may.
  // `places`: how many checks each key has under way, this one included;
  // each of them may still become a failure.
  async function refusal (limit, request, keys, places = keys.map(() => 1)) {
    let retryAfter = null
    for (const [i, key] of keys.entries()) {
      const { remaining, ttlInSeconds } = await limit(request, key, false)
      // Refused by checks under way alone, the wait is theirs: a second.
      if (places[i] > remaining) retryAfter = Math.max(retryAfter ?? 0, ttlInSeconds, 1)
    }
    return retryAfter
  }

  async function count (limit, request, keys) {
    for (const key of keys) await limit(request, key, true)
  }

  // Password checks under way, per key.
  const running = new Map()
  function hold (keys) {
    return keys.map((key) => {
      const places = (running.get(key) ?? 0) + 1
      running.set(key, places)
      return places
    })
  }
  function giveBack (keys) {
    for (const key of keys) {
      const places = running.get(key) - 1
      if (places === 0) running.delete(key)
      else running.set(key, places)
    }
  }

  // Runs `check` (a password check: true when it matches) if the limits let
  // it: `{ retryAfter }` in seconds when they do not, else `{ matches }`.
  async function checkPassword (request, name, check) {
    const keys = passwordKeys(request, name)
    // Taken before anything is awaited: concurrent checks see each other.
    const places = hold(keys)
    try {
      const retryAfter = await refusal(passwordFailures, request, keys, places)
      if (retryAfter !== null) return { retryAfter, matches: false }
      const matches = await check()
      if (!matches) await count(passwordFailures, request, keys)
      return { retryAfter: null, matches }
    } finally {
      giveBack(keys)
    }
  }

  // A passkey answer names no account until its passkey is found: then per address only.
  const passwordKeys = (request, name) => name === null ? [addressKey(request)] : [addressKey(request), nameKey(name)]
  return {
    checkPassword,
    signUpRefusal: (request) => refusal(signUps, request, [addressKey(request)]),
    signedUp: (request) => count(signUps, request, [addressKey(request)])
  }
}

module.exports = { createAttemptLimits, PASSWORD_FAILURES, PASSWORD_WINDOW_MS, SIGN_UPS, SIGN_UP_WINDOW_MS }
