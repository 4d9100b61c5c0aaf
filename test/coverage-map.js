'use strict'

// Unit tests cover the TypeScript sources in lib/. The package test loads the
// compiled dist/ as a consumer would; it checks the export shape, not coverage.
module.exports = (testFile) => testFile.endsWith('package.test.ts') ? null : []
