'use strict'

// Unit tests cover the TypeScript sources in lib/. The package tests load the
// compiled dist/ as a consumer would (packed, or installed from git); they
// check the export shape, not coverage, and so does the test of the code
// blocks of README.md and docs/. The tests of the pages' links and of the
// test log load no source at all.
// The example's test covers the example app (which loads dist/, covered by
// the unit tests through lib/).
const EXAMPLE = ['app.js', 'attempts.js', 'db.js', 'flash.js', 'flow-state.js', 'forms.js', 'login-store.js', 'oidc.js', 'passkeys.js', 'passwords.js', 'server.js', 'site.js'].map((file) => `example/${file}`)

module.exports = (testFile) => {
  if (['package.test.ts', 'git-install.test.ts', 'readme.test.ts', 'docs.test.ts', 'unit-log.test.ts'].some((name) => testFile.endsWith(name))) return null
  if (testFile.endsWith('example.test.ts')) return EXAMPLE
  return []
}
