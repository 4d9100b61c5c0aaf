'use strict'

// Reading and checking form fields. Every check returns a message, or null
// when the value is fine; a form collects the messages of all its fields and
// shows them at once.

// Field limits, checked before anything touches the database. The database
// checks the name and the grade again (see db.js).
const LIMITS = { name: 64, passwordMin: 8, passwordMax: 128, gradeMin: 1, gradeMax: 12 }

// A form field as a string: missing fields and repeated ones (arrays) are ''.
function field (body, name) {
  const value = body?.[name]
  return typeof value === 'string' ? value : ''
}

// What a form may show again in its fields: never a value over its limit (a
// megabyte of name would come back in the page).
function echo (value, max) {
  return value.length > max ? '' : value
}

// Control characters, and the invisible ones that make two names look alike
// or reorder what is shown: format characters (zero-width spaces and joiners,
// bidi overrides and isolates), separators other than the plain space,
// private-use and unassigned code points.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}]|[^\S ]/u
// Latin, Cyrillic and Greek share letters that look the same ("Аda" with a
// Cyrillic А is not "Ada"): one name may use one of the three, never two.
const LOOK_ALIKE_SCRIPTS = [/\p{Script=Latin}/u, /\p{Script=Cyrillic}/u, /\p{Script=Greek}/u]

// Names are compared and stored in NFC, trimmed: the same name typed on two
// keyboards is one name.
function normalizeName (name) {
  return name.normalize('NFC').trim()
}

function checkName (name) {
  if (name === '') return 'Please enter your name.'
  if (name.length > LIMITS.name) return `Names are at most ${LIMITS.name} characters long.`
  if (INVISIBLE.test(name)) return 'Names cannot contain control characters or invisible characters.'
  const scripts = LOOK_ALIKE_SCRIPTS.filter((script) => script.test(name))
  if (scripts.length > 1) return 'Names cannot mix Latin, Cyrillic and Greek letters.'
  return null
}

function checkGrade (grade) {
  const number = /^\d{1,2}$/.test(grade) ? Number(grade) : NaN
  return number >= LIMITS.gradeMin && number <= LIMITS.gradeMax
    ? null
    : `Please choose a grade from ${LIMITS.gradeMin} to ${LIMITS.gradeMax}.`
}

function checkNewPassword (password) {
  if (password === '') return 'Please choose a password.'
  if (password.length < LIMITS.passwordMin) return `Passwords need at least ${LIMITS.passwordMin} characters.`
  if (password.length > LIMITS.passwordMax) return `Passwords are at most ${LIMITS.passwordMax} characters long.`
  return null
}

// For the log-in forms: present and not absurdly long, nothing more (the
// rules for new passwords may have changed since the password was chosen).
function checkPresent (label, value, max) {
  if (value === '') return `Please enter your ${label}.`
  if (value.length > max) return `That ${label} is too long (at most ${max} characters).`
  return null
}

// The messages of the checks that failed, in the order of the form's fields.
function problems (...messages) {
  return messages.filter((message) => message !== null)
}

module.exports = { LIMITS, field, echo, normalizeName, checkName, checkGrade, checkNewPassword, checkPresent, problems }
