'use strict'

// One-shot notices, as Flask's `flash()`: a redirect leaves a short code in a
// signed cookie, and the next page shows its text once and clears it. Only
// codes of this table can be shown, so no link, and no cookie planted by a
// neighbouring site, can make a page say anything else; a link cannot make it
// say anything at all (notices never come from the URL). A notice that names
// something (a device) is a function of it; what it names was put in the
// signed cookie by the server, and the page escapes it.
const NOTICES = {
  // The guards' reasons, on the log-in page.
  'login-required': null, // the plugin's loginRequiredMessage, see app.js
  'logged-out': 'You have been logged out.',
  'logged-out-everywhere': 'You were logged out: someone chose “Log out everywhere else” on another device. Log in again.',
  'password-changed-elsewhere': 'You were logged out: your password was changed on another device. Log in with the new password.',
  'login-ended': 'Your login on this device has ended: it was logged out from another device, or it expired. Log in again.',
  'device-not-proven': 'This browser could not prove that it is the one you logged in with: your login is bound to that browser. Log in again here, or go on in that browser.',
  'login-reused': (device) => `Your login on “${device}” was ended because it was used from two places: someone may have had a copy of it. Log in again, and if you did not expect this, change your password.`,
  // On the profile.
  'password-changed': 'Your password was changed. Every other device was logged out, and your API token was revoked.',
  'logged-out-others': 'Every other device was logged out, and your API token was revoked.',
  'passkey-added': 'Your passkey was added. You can now log in with it, without your password.',
  'passkey-removed': 'That passkey was removed: it no longer logs you in.',
  'passkey-already-gone': 'That passkey was already removed.',
  // On the home page.
  'account-deleted': 'Your account was deleted, and you were logged out everywhere.',
  // On "Your devices".
  'device-logged-out': 'That device was logged out.',
  'device-already-gone': 'That device was already logged out.',
  // On the re-authentication page: why the login is not fresh.
  'stale-remembered': 'You were remembered from an earlier visit. To continue, type your password again.',
  'stale-timeout': 'It has been a while since you typed your password. To continue, type it again.',
  'stale-client': 'Your browser or network changed since you logged in. To continue, type your password again.'
}

const MAX_AGE = 60 // seconds: long enough for a redirect, no longer
// What a notice names is cut to this length: the cookie stays small.
const MAX_DETAIL = 200

function createFlash ({ cookieName, secure, messages = {} }) {
  const texts = { ...NOTICES, ...messages }
  const options = { path: '/', httpOnly: true, sameSite: 'lax', secure, signed: true, maxAge: MAX_AGE }

  // The text of a code (with what it names, after the first ':'), or null.
  function text (value) {
    const code = value.split(':', 1)[0]
    if (!Object.hasOwn(texts, code)) return null
    const notice = texts[code]
    return typeof notice === 'function' ? notice(value.slice(code.length + 1)) : notice
  }

  return {
    set (reply, code, detail) {
      reply.setCookie(cookieName, detail === undefined ? code : `${code}:${detail.slice(0, MAX_DETAIL)}`, options)
    },

    // The notice this request carries, once: the cookie is cleared on the way out.
    take (request, reply) {
      const cookie = request.cookies[cookieName]
      if (cookie === undefined) return null
      reply.clearCookie(cookieName, { path: '/', secure })
      const { valid, value } = reply.unsignCookie(cookie)
      return valid ? text(value) : null
    },

    // A notice for the page being rendered, with no redirect in between.
    now (code, detail) {
      return text(`${code}:${detail.slice(0, MAX_DETAIL)}`)
    }
  }
}

module.exports = { createFlash, NOTICES }
