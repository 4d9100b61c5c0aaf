'use strict'

// "Sign in with …" through an OpenID provider, with openid-client (v6, an
// ES module: loaded with import() from this CommonJS app): the authorization
// code flow with PKCE, `state` and `nonce`. Between the redirect to the
// provider and its callback, the PKCE verifier and the nonce wait in the
// flow cookie (flow-state.js), under the `state`: SameSite=Lax, as the
// provider sends the browser back from another site, by a top-level GET
// (a Strict cookie would not come with it). The first sign-in creates a
// student linked to the provider's subject (`sub`, per issuer); later ones
// log that student in. Nothing links an account by name or e-mail: that
// would let anyone who registers a look-alike at the provider take it.
const { field, normalizeName, checkName } = require('./forms')

const CALLBACK = '/login/oidc/callback'
// Long enough to log in at the provider (and consent), no longer.
const FLOW_SECONDS = 600
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]'])

// Checked when the app is built: plain http only on this machine (tests,
// local development); anywhere else codes and tokens would cross the
// network in clear.
function checkIssuer (issuer) {
  const url = URL.canParse(issuer) ? new URL(issuer) : null
  if (url?.protocol === 'https:' || (url?.protocol === 'http:' && LOOPBACK.has(url.hostname))) return url
  throw new Error(`OIDC_ISSUER must be an https:// URL, or http:// on 127.0.0.1 or localhost for local development; ${JSON.stringify(issuer)} is not.`)
}

// The provider's name for the student, if it makes a valid name here, else
// 'Student'; db.createOidcStudent makes it unique.
function nameFrom (claims) {
  const names = [claims.name, claims.preferred_username, claims.given_name]
    .filter((name) => typeof name === 'string')
    .map(normalizeName)
  return names.find((name) => checkName(name) === null) ?? 'Student'
}

function oidcRoutes (app, portal, { issuer, clientId, clientSecret, name }) {
  const { db, flows, site, render, renewCsrfSecret, Student } = portal
  const issuerUrl = checkIssuer(issuer)
  const title = `Sign in with ${name}`

  // The provider's metadata, fetched on first use: a provider that is down
  // when the portal starts does not stop it. A failure is tried again next time.
  let discovery = null
  async function provider () {
    const client = await import('openid-client')
    discovery ??= client.discovery(issuerUrl, clientId, clientSecret, undefined, {
      execute: issuerUrl.protocol === 'http:' ? [client.allowInsecureRequests] : []
    })
    try {
      return { client, config: await discovery }
    } catch (error) {
      discovery = null
      throw error
    }
  }

  // A 503 page when the provider cannot be reached: never a logout, never a login.
  async function withProvider (request, reply, use) {
    let reached
    try {
      reached = await provider()
    } catch (error) {
      request.log.error({ err: error }, 'OpenID provider unreachable')
      return render(reply, 'error', { title, message: `${name} cannot be reached right now. Try again later, or log in with your password.` }, 503)
    }
    return use(reached)
  }

  const refuse = (reply, message) => render(reply, 'error', { title, message }, 400)

  app.get('/login/oidc', { onRequest: app.loginManager.loginProhibited }, async (request, reply) => {
    const origin = site.origin(request)
    if (origin === null) return refuse(reply, `Open the portal at ${site.home()} to sign in with ${name}.`)
    return withProvider(request, reply, async ({ client, config }) => {
      const verifier = client.randomPKCECodeVerifier()
      const state = client.randomState()
      const nonce = client.randomNonce()
      const redirectUri = `${origin}${CALLBACK}`
      flows.oidc.start(reply, 'oidc-login', state, { verifier, nonce, redirectUri, next: app.loginManager.nextUrl(request, '') })
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: 'openid profile',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce
      })
      return reply.redirect(url.href, 303)
    })
  })

  app.get(CALLBACK, { onRequest: app.loginManager.loginProhibited }, async (request, reply) => {
    const flow = flows.oidc.take(request, reply, 'oidc-login')
    if (flow.refused !== undefined) return refuse(reply, flow.refused)
    // Another browser's answer (login CSRF: the attacker's own code, to log
    // this browser in as the attacker) does not carry this browser's state.
    if (field(request.query, 'state') !== flow.id) return refuse(reply, `This answer from ${name} is not for the sign-in started in this browser. Start again.`)
    if (request.query.error !== undefined) return refuse(reply, `${name} did not sign you in. Start again, or log in with your password.`)
    return withProvider(request, reply, async ({ client, config }) => {
      let claims, profile
      try {
        const tokens = await client.authorizationCodeGrant(config, new URL(request.url, flow.data.redirectUri), {
          pkceCodeVerifier: flow.data.verifier,
          expectedState: flow.id,
          expectedNonce: flow.data.nonce,
          idTokenExpected: true
        })
        claims = tokens.claims()
        // The student's name, for a first sign-in: many providers keep it
        // out of the ID token, and give it here.
        profile = await client.fetchUserInfo(config, tokens.access_token, claims.sub)
      } catch (error) {
        request.log.warn({ err: error }, 'OpenID Connect callback refused')
        return refuse(reply, `${name} did not confirm this sign-in. Start again.`)
      }
      const row = db.studentByOidcAccount(claims.iss, claims.sub) ?? db.createOidcStudent(claims.iss, claims.sub, nameFrom(profile))
      await app.loginManager.loginUser(request, reply, new Student(row), { method: 'oidc' })
      renewCsrfSecret(request, reply)
      return reply.redirect(flow.data.next || '/profile', 303)
    })
  })
}

module.exports = { oidcRoutes, checkIssuer, nameFrom, CALLBACK, FLOW_SECONDS }
