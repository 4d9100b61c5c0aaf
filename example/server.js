'use strict'

// Runs the student portal: `npm run example`, then open the URL it prints.
//
//   EXAMPLE_DB    the SQLite file (default: example/data/portal.sqlite)
//   LOGIN_SECRET  signs the cookies, 32+ characters (default: a random secret
//                 kept next to the database, so logins survive restarts)
//   PORT          default 3000; the server listens on 127.0.0.1 only, and is
//                 opened at http://localhost:PORT (passkeys refuse IP addresses)
//   REDIS_URL     keep the logins in Redis (redis://host:port), so that several
//                 portals can share them; default: a table of the database
//   PUBLIC_URL    where students reach the portal, when that is not this plain
//                 http address: `https://…` behind a TLS proxy on this machine.
//                 The portal then trusts the proxy's X-Forwarded-* headers and
//                 sends Secure cookies named `__Host-…`. Passkeys and the
//                 OpenID provider are given this address too.
//   EXAMPLE_HTTPS `1`: serve https itself, on a self-signed certificate for
//                 localhost made on the first start (with the openssl command)
//                 and kept next to the database. Secure `__Host-…` cookies,
//                 and logins bound to the browser where it can (device binding).
//   OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET
//                 all three: "Sign in with …" through that OpenID provider,
//                 which must send the browser back to <portal>/login/oidc/callback.
//                 An https issuer, or http on 127.0.0.1 or localhost.
//   OIDC_NAME     what the button calls the provider (default: its host)
const { execFileSync } = require('node:child_process')
const { createHash, randomBytes, X509Certificate } = require('node:crypto')
const { existsSync, mkdirSync, readFileSync, writeFileSync } = require('node:fs')
const { dirname, join, resolve } = require('node:path')
const { redisStore } = require('..') // `require('fastify-login')` in your app
const { buildApp } = require('./app')
const { hashPassword } = require('./passwords')

const DEMO_STUDENT = { name: 'Ada', grade: 11, password: 'analytical-engine' }

function settings (env) {
  return {
    databasePath: resolve(env.EXAMPLE_DB ?? join(__dirname, 'data', 'portal.sqlite')),
    secret: env.LOGIN_SECRET,
    host: '127.0.0.1',
    port: Number(env.PORT ?? 3000),
    publicUrl: env.PUBLIC_URL ?? null,
    redisUrl: env.REDIS_URL ?? null,
    selfServedHttps: env.EXAMPLE_HTTPS === '1',
    oidc: oidcSettings(env)
  }
}

// Null unless all three variables are set.
function oidcSettings ({ OIDC_ISSUER: issuer, OIDC_CLIENT_ID: clientId, OIDC_CLIENT_SECRET: clientSecret, OIDC_NAME: name }) {
  if (!issuer || !clientId || !clientSecret) return null
  return { issuer, clientId, clientSecret, name: name ?? (URL.canParse(issuer) ? new URL(issuer).host : issuer) }
}

// A random secret made on the first start and read back on the next ones,
// readable by its owner only.
function secretIn (folder) {
  const file = join(folder, 'login-secret')
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('base64url'), { flag: 'wx', mode: 0o600 })
  return readFileSync(file, 'utf8').trim()
}

// A self-signed certificate for localhost, made on the first start and read
// back on the next ones, and the base64 SHA-256 of its public key: what
// Chromium's --ignore-certificate-errors-spki-list takes.
function certificateIn (folder) {
  const key = join(folder, 'tls-key.pem')
  const cert = join(folder, 'tls-cert.pem')
  if (!existsSync(cert)) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
      '-days', '365', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' })
  }
  const tls = { key: readFileSync(key), cert: readFileSync(cert) }
  const spki = createHash('sha256').update(new X509Certificate(tls.cert).publicKey.export({ type: 'spki', format: 'der' })).digest('base64')
  return { tls, file: cert, spki }
}

async function main () {
  const { databasePath, secret, host, port, publicUrl, redisUrl, selfServedHttps, oidc } = settings(process.env)
  const https = selfServedHttps || (publicUrl?.startsWith('https://') ?? false)
  mkdirSync(dirname(databasePath), { recursive: true })
  const certificate = selfServedHttps ? certificateIn(dirname(databasePath)) : null
  // ioredis only when asked for: it is an optional peer of fastify-login.
  const redis = redisUrl === null ? null : new (require('ioredis'))(redisUrl)
  const app = await buildApp({
    databasePath,
    secret: secret ?? secretIn(dirname(databasePath)),
    logger: true,
    https,
    tls: certificate?.tls ?? null,
    // Only a proxy on this machine may say what the client's address and protocol were.
    trustProxy: publicUrl === null ? false : '127.0.0.1',
    store: redis === null ? null : redisStore({ client: redis }),
    publicUrl,
    oidc
  })
  // The store never closes a client it was given: the app does, last.
  if (redis !== null) app.addHook('onClose', async () => { await redis.quit() })

  // The demo student is created once; it is left alone after that.
  const seeded = app.db.createStudent({ ...DEMO_STUDENT, passwordHash: await hashPassword(DEMO_STUDENT.password) })

  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => app.close())
  }
  await app.listen({ host, port })

  const scheme = certificate === null ? 'http' : 'https'
  // Opened by name: WebAuthn refuses IP addresses, and localhost is this machine.
  const local = `${scheme}://localhost:${app.server.address().port}`
  console.log(`
  Student portal: ${publicUrl ?? local}${publicUrl === null ? '' : `\n  Listening on:   ${scheme}://${host}:${app.server.address().port} (for the proxy)`}
  Demo student:   name "${DEMO_STUDENT.name}", password "${DEMO_STUDENT.password}"${seeded === null ? ' (unless you changed it)' : ''}
  Database:       ${databasePath}
  Logins kept in: ${redis === null ? 'the database' : redisUrl}
  Sign in with:   ${oidc === null ? 'a password or a passkey (set OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET for an OpenID provider)' : `a password, a passkey or ${oidc.name} (${oidc.issuer})`}
${certificate === null ? '' : trustHelp(certificate)}`)
}

// How to make a browser trust the certificate. Device binding needs a
// certificate the browser really trusts: clicking through the warning is
// not enough.
function trustHelp ({ file, spki }) {
  return `  Certificate:    ${file} (self-signed, for localhost)
  Open it in Chromium trusting the certificate, with device binding on
  (Chromium binds with software keys, without a TPM, only when told to):
    chromium --ignore-certificate-errors-spki-list=${spki} \\
      --enable-features=DeviceBoundSessions,EnableBoundSessionCredentialsSoftwareKeysForManualTesting
  Or add the certificate to your system's trusted certificates.
`
}

module.exports = { settings, DEMO_STUDENT }

if (require.main === module) {
  main().catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}
