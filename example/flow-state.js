'use strict'

// The per-visitor state of a sign-in that takes a round trip: a WebAuthn
// challenge between the options and the signed answer, the PKCE verifier,
// `state` and `nonce` between the redirect to an OpenID provider and its
// callback. fastify-login keeps no such state, so it lives in a short-lived
// cookie signed by @fastify/cookie, and each value is:
// - bound to its flow: the flow's name is inside the signed value, so a
//   registration challenge cannot finish a sign-in, nor an OIDC state a
//   passkey sign-in;
// - one-shot: the value's id (the challenge, the OIDC state) is written to a
//   table when it is used, until it expires, so a replayed value, or a copy
//   of the cookie, is refused even within its lifetime;
// - short-lived: its expiry is inside the signed value too (the browser's
//   Max-Age is only a courtesy).
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS used_flow_states (
    id         TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL
  ) STRICT
`

// Why a flow's state was refused, for the page to say.
const REFUSALS = {
  missing: 'This sign-in did not start in this browser, or it was already finished. Start again.',
  expired: 'This sign-in took too long. Start again.',
  used: 'This sign-in was already used. Start again.'
}

function nowInSeconds () {
  return Math.floor(Date.now() / 1000)
}

// `name`: the cookie. `sameSite`: 'strict' for a flow that stays on the site
// (WebAuthn), 'lax' for one that comes back from another site by a top-level
// GET (an OIDC callback: a Strict cookie would not be sent with it).
// `lifetime`: seconds.
function createFlowState (db, { name, sameSite, secure, lifetime }) {
  db.exec(SCHEMA)
  const statements = {
    use: db.prepare('INSERT INTO used_flow_states (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING'),
    // Used ids are kept while their state could still be presented.
    deleteExpired: db.prepare('DELETE FROM used_flow_states WHERE expires_at <= ?')
  }
  const options = { path: '/', httpOnly: true, sameSite, secure, signed: true }

  return {
    // Starts a flow: `id` is its random, unguessable value; `data` rides along.
    start (reply, flow, id, data = {}) {
      const state = { flow, id, expiresAt: nowInSeconds() + lifetime, data }
      reply.setCookie(name, Buffer.from(JSON.stringify(state)).toString('base64url'), { ...options, maxAge: lifetime })
    },

    // Ends the flow whatever happens (the cookie is cleared): `{ id, data }`,
    // or `{ refused }` with a sentence for the page.
    take (request, reply, flow) {
      const cookie = request.cookies[name]
      if (cookie === undefined) return { refused: REFUSALS.missing }
      reply.clearCookie(name, { path: '/', secure })
      const state = parse(request.unsignCookie(cookie))
      if (state?.flow !== flow) return { refused: REFUSALS.missing }
      const now = nowInSeconds()
      if (!(state.expiresAt > now)) return { refused: REFUSALS.expired }
      statements.deleteExpired.run(now)
      if (statements.use.run(state.id, state.expiresAt).changes === 0) return { refused: REFUSALS.used }
      return { id: state.id, data: state.data }
    }
  }
}

// A signed value is ours, but parse it as carefully as any input.
function parse ({ valid, value }) {
  if (!valid) return null
  try {
    const state = JSON.parse(Buffer.from(value, 'base64url').toString())
    return typeof state?.id === 'string' && typeof state.data === 'object' ? state : null
  } catch {
    return null
  }
}

module.exports = { createFlowState, REFUSALS }
