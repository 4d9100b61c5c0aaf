'use strict'

// Passkeys (WebAuthn) with @simplewebauthn/server: a student adds one on the
// profile, then signs in with it instead of a name and a password (a
// discoverable credential: the authenticator knows whose it is), and
// confirms a login with it on /reauthenticate. The browser's half is
// public/passkeys.js. Each ceremony takes two requests:
// 1. POST …/options answers the JSON for navigator.credentials, and keeps
//    its challenge in the flow cookie (flow-state.js), bound to the ceremony
//    and, once logged in, to the student;
// 2. the page posts the authenticator's signed answer as a form field, with
//    its CSRF token, and gets a page back: a redirect, or the form with why.
const {
  generateRegistrationOptions,
  verifyRegistrationResponse,
  generateAuthenticationOptions,
  verifyAuthenticationResponse
} = require('@simplewebauthn/server')
const { field } = require('./forms')
const { REFUSALS } = require('./flow-state')

// The browser's timeout for a ceremony; the flow cookie lives as long.
const CEREMONY_SECONDS = 300
// No passkey answer is anywhere near this long; a longer field is refused unread.
const MAX_ANSWER = 16 * 1024

const NOT_ACCEPTED = 'That passkey was not accepted.'

function passkeyRoutes (app, portal) {
  const { db, flows, site, csrf, render, flash, attempts, tooManyAttempts, renewCsrfSecret, Student } = portal
  const { loginRequired, loginProhibited, freshLoginRequired } = app.loginManager

  // The options of a ceremony, or a JSON 400 where passkeys cannot work.
  function ceremony (makeOptions) {
    return async (request, reply) => {
      const party = site.relyingParty(request)
      if (party === null) {
        return reply.code(400).send({ message: `Passkeys work only at the portal's name: open ${site.home()}.` })
      }
      const { flow, data, options } = await makeOptions(request, party)
      flows.passkey.start(reply, flow, options.challenge, data)
      return options
    }
  }

  // The authenticator's answer, as public/passkeys.js posts it; null for anything else.
  function answerOf (request) {
    const json = field(request.body, 'credential')
    if (json.length > MAX_ANSWER) return null
    try {
      const answer = JSON.parse(json)
      return typeof answer?.id === 'string' && typeof answer.response === 'object' ? answer : null
    } catch {
      return null
    }
  }

  // Checks a sign-in answer against the stored passkey; on success its
  // counter moves on. Malformed answers throw inside the library: refused.
  async function verifiedAssertion (request, answer, passkey, challenge) {
    const party = site.relyingParty(request)
    try {
      const { verified, authenticationInfo } = await verifyAuthenticationResponse({
        response: answer,
        expectedChallenge: challenge,
        expectedOrigin: party.origin,
        expectedRPID: party.id,
        credential: passkey,
        requireUserVerification: true
      })
      if (verified) db.passkeyUsed(passkey.id, authenticationInfo.newCounter)
      return verified
    } catch (error) {
      request.log.info({ err: error }, 'passkey answer refused')
      return false
    }
  }

  // A sign-in or re-authentication answer: the passkey's owner when it
  // verifies, else why not. `user`: the student a re-authentication was
  // started by, who must be the one logged in now and own the passkey.
  // Failures count against the address and the owner's name, with the same
  // limits as wrong passwords (attempts.js).
  async function signIn (request, reply, flowName, user) {
    const flow = flows.passkey.take(request, reply, flowName)
    if (flow.refused !== undefined) return { statusCode: 400, message: flow.refused }
    if (flow.data.user !== user) return { statusCode: 400, message: REFUSALS.missing }
    const answer = answerOf(request)
    const passkey = answer === null ? null : db.passkey(answer.id)
    const owner = passkey === null ? null : db.studentById(passkey.studentId)
    // The user handle, when the answer has one, names the same student.
    const handle = answer?.response.userHandle
    const { retryAfter, matches } = await attempts.checkPassword(request, owner?.name ?? null, async () =>
      owner !== null && (handle === undefined || handle === owner.webauthnUserId) &&
      (user === undefined || new Student(owner).getId() === user) &&
      await verifiedAssertion(request, answer, passkey, flow.id))
    if (retryAfter !== null) return { retryAfter }
    if (!matches) return { statusCode: 401, message: NOT_ACCEPTED }
    return { owner }
  }

  // Sign in with a passkey, from the log-in page: no name, no password.
  app.post('/login/passkey/options', { onRequest: loginProhibited, preHandler: csrf }, ceremony(async (request, party) => ({
    flow: 'passkey-login',
    options: await generateAuthenticationOptions({ rpID: party.id, userVerification: 'required', timeout: CEREMONY_SECONDS * 1000 })
  })))

  app.post('/login/passkey', { onRequest: loginProhibited, preHandler: csrf }, async (request, reply) => {
    const remember = field(request.body, 'remember') === 'yes'
    const next = app.loginManager.nextUrl(request, '')
    const outcome = await signIn(request, reply, 'passkey-login')
    if (outcome.retryAfter !== undefined) return tooManyAttempts(reply, outcome.retryAfter, 'Too many refused sign-ins.')
    if (outcome.owner === undefined) {
      return render(reply, 'login', { title: 'Log in', values: { remember }, next, errors: [outcome.message] }, outcome.statusCode)
    }
    await app.loginManager.loginUser(request, reply, new Student(outcome.owner), { remember, method: 'passkey' })
    renewCsrfSecret(request, reply)
    return reply.redirect(app.loginManager.nextUrl(request, '/profile'), 303)
  })

  // Re-authenticate with one of the student's own passkeys.
  app.post('/reauthenticate/passkey/options', { onRequest: loginRequired, preHandler: csrf }, ceremony(async (request, party) => ({
    flow: 'passkey-reauth',
    data: { user: request.currentUser.getId() },
    options: await generateAuthenticationOptions({
      rpID: party.id,
      allowCredentials: db.passkeysOf(request.currentUser.id).map(({ id, transports }) => ({ id, transports })),
      userVerification: 'required',
      timeout: CEREMONY_SECONDS * 1000
    })
  })))

  app.post('/reauthenticate/passkey', { onRequest: loginRequired, preHandler: csrf }, async (request, reply) => {
    const outcome = await signIn(request, reply, 'passkey-reauth', request.currentUser.getId())
    if (outcome.retryAfter !== undefined) return tooManyAttempts(reply, outcome.retryAfter, 'Too many refused sign-ins.')
    if (outcome.owner === undefined) return portal.renderReauthenticate(request, reply, [outcome.message], outcome.statusCode)
    await app.loginManager.confirmLogin(request, reply, { method: 'passkey' })
    return reply.redirect(app.loginManager.nextUrl(request, '/profile'), 303)
  })

  // Adding a passkey adds a way into the account: it needs a fresh login,
  // like the password change (a stolen, remembered cookie must not plant the
  // thief's own passkey).
  app.post('/passkeys/options', { onRequest: freshLoginRequired, preHandler: csrf }, ceremony(async (request, party) => {
    const student = request.currentUser
    return {
      flow: 'passkey-register',
      data: { user: student.getId() },
      options: await generateRegistrationOptions({
        rpName: 'Student portal',
        rpID: party.id,
        userName: student.name,
        userID: Buffer.from(db.webauthnUserId(student.id), 'base64url'),
        attestationType: 'none',
        // The authenticator is told which of its passkeys are already here.
        excludeCredentials: db.passkeysOf(student.id).map(({ id, transports }) => ({ id, transports })),
        authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
        timeout: CEREMONY_SECONDS * 1000
      })
    }
  }))

  app.post('/passkeys', { onRequest: freshLoginRequired, preHandler: csrf }, async (request, reply) => {
    const student = request.currentUser
    const refuse = (statusCode, message) => portal.renderProfile(request, reply, [message], statusCode)
    const flow = flows.passkey.take(request, reply, 'passkey-register')
    if (flow.refused !== undefined) return refuse(400, flow.refused)
    if (flow.data.user !== student.getId()) return refuse(400, REFUSALS.missing)
    const party = site.relyingParty(request)
    let credential
    try {
      const { verified, registrationInfo } = await verifyRegistrationResponse({
        response: answerOf(request),
        expectedChallenge: flow.id,
        expectedOrigin: party.origin,
        expectedRPID: party.id,
        requireUserVerification: true
      })
      credential = verified ? registrationInfo.credential : null
    } catch (error) {
      request.log.info({ err: error }, 'passkey registration refused')
      credential = null
    }
    if (credential === null) return refuse(400, `${NOT_ACCEPTED} Try again.`)
    const { id, publicKey, counter, transports = [] } = credential
    if (!db.addPasskey({ id, studentId: student.id, publicKey, counter, transports })) {
      return refuse(409, 'That passkey is already registered.')
    }
    flash.set(reply, 'passkey-added')
    return reply.redirect('/profile', 303)
  })

  app.post('/passkeys/delete', { onRequest: freshLoginRequired, preHandler: csrf }, (request, reply) => {
    const deleted = db.deletePasskey(field(request.body, 'passkey'), request.currentUser.id)
    flash.set(reply, deleted ? 'passkey-removed' : 'passkey-already-gone')
    return reply.redirect('/profile', 303)
  })
}

module.exports = { passkeyRoutes, CEREMONY_SECONDS }
