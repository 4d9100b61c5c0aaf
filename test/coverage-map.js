'use strict'

// Unit tests cover the TypeScript sources in lib/. The package test loads the
// compiled dist/ as a consumer would; it checks the export shape, not coverage,
// and so does the test of the code blocks of README.md and docs/.
// The example's test covers the example app (which loads dist/, covered by
// the unit tests through lib/).
const EXAMPLE = ['app.js', 'attempts.js', 'db.js', 'flash.js', 'flow-state.js', 'forms.js', 'login-store.js', 'oidc.js', 'passkeys.js', 'passwords.js', 'server.js', 'site.js'].map((file) => `example/${file}`)

module.exports = (testFile) => {
  if (testFile.endsWith('package.test.ts') || testFile.endsWith('readme.test.ts')) return null
  if (testFile.endsWith('example.test.ts')) return EXAMPLE
  return []
}
