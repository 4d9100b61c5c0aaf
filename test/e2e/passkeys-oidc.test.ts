import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core'
import { desktopContext, launchChromium } from './chromium'
import { oidcProvider, CLIENT_ID, CLIENT_SECRET } from '../oidc-provider'

// Passkeys and "Sign in with …" in Debian's Chromium, headless, one browser
// for every journey. Passkeys: a virtual authenticator of the DevTools
// protocol (ctap2, internal, resident keys, user verification), as a phone's
// or a laptop's built-in one. The portal is opened at http://localhost:PORT
// (WebAuthn refuses IP addresses); the OpenID provider (oidc-provider, with
// its own log-in and consent pages) runs on http://127.0.0.1:PORT, another
// site: its redirect back is cross-site, as with a real provider.
//
// Screenshots go to test/e2e/screenshots/; with DOCS_SCREENSHOTS=1 the ones
// the tutorial shows go to docs/ too.

const { buildApp } = require('../../example/app.js') as {
  buildApp (options: { databasePath: string, secret: string, oidc: object }): Promise<FastifyInstance>
}

const root = resolve(__dirname, '..', '..')
const screenshots = join(__dirname, 'screenshots')
const docsScreenshots = process.env.DOCS_SCREENSHOTS === '1' ? join(root, 'docs') : null
const PASSWORD = 'correct horse battery'

t.setTimeout(240000)

let browser: Browser
let app: FastifyInstance
let origin: string

t.before(async () => {
  mkdirSync(screenshots, { recursive: true })
  const dir = mkdtempSync(join(tmpdir(), 'portal-e2e-passkeys-'))
  const provider = await oidcProvider(t, { grace: 'Grace Hopper' })
  app = await buildApp({
    databasePath: join(dir, 'portal.sqlite'),
    secret: 'an-e2e-secret-that-is-long-enough-0123456789',
    oidc: { issuer: provider.issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, name: 'School ID' }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  origin = `http://localhost:${(app.server.address() as { port: number }).port}`
  await provider.start([`${origin}/login/oidc/callback`])
  browser = await launchChromium()
  t.teardown(async () => {
    await browser.close()
    await app.close()
    rmSync(dir, { recursive: true, force: true })
  })
})

async function newContext (storageState?: Awaited<ReturnType<BrowserContext['storageState']>>): Promise<BrowserContext> {
  return await desktopContext(browser, origin, storageState)
}

// A built-in authenticator for the page, holding `credentials` (from another
// page of the same person) if given.
async function authenticatorFor (page: Page, credentials: unknown[] = []): Promise<{ cdp: CDPSession, id: string }> {
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('WebAuthn.enable')
  const { authenticatorId: id } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true }
  })
  for (const credential of credentials) await cdp.send('WebAuthn.addCredential', { authenticatorId: id, credential: credential as never })
  return { cdp, id }
}

async function credentialsOf ({ cdp, id }: { cdp: CDPSession, id: string }): Promise<unknown[]> {
  return (await cdp.send('WebAuthn.getCredentials', { authenticatorId: id })).credentials
}

async function screenshot (page: Page, name: string, { docs = false } = {}): Promise<void> {
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true })
  if (docs && docsScreenshots !== null) await page.locator('body').screenshot({ path: join(docsScreenshots, `example-${name}.png`) })
}

async function navigation (page: Page): Promise<string> {
  return (await page.locator('header nav').innerText()).replace(/\s+/g, ' ').trim()
}

async function notice (page: Page): Promise<string> {
  return page.locator('.notice').innerText()
}

// Moves the portal's clock (it runs in this process); the browser's stays.
function advancePortalClock (ms: number): () => void {
  const realNow = Date.now
  Date.now = () => realNow() + ms
  return () => { Date.now = realNow }
}

t.test('passkeys: add one, log in with it, confirm with it after a restart, delete the account 5 minutes later', async (t) => {
  let context = await newContext()
  let page = await context.newPage()
  const authenticator = await authenticatorFor(page)

  await page.goto('/signup')
  await page.getByLabel('Name').fill('Katherine Johnson')
  await page.getByLabel('Grade').selectOption('12')
  await page.getByLabel('Password').fill(PASSWORD)
  await page.getByLabel('Remember me').check()
  await page.getByRole('button', { name: 'Sign up' }).click()
  await page.waitForURL('/profile')
  await page.getByRole('button', { name: 'Add a passkey' }).click()
  await page.locator('.notice').waitFor()
  t.equal(await notice(page), 'Your passkey was added. You can now log in with it, without your password.')
  t.match(await page.locator('ul.passkeys').innerText(), /Passkey added \d{4}-\d\d-\d\d \d\d:\d\d UTC/)
  t.equal((await credentialsOf(authenticator)).length, 1, 'the authenticator holds it')
  await screenshot(page, 'passkeys', { docs: true })

  // Log out, then in with the passkey alone: no name, no password.
  await page.getByRole('button', { name: 'Log out', exact: true }).click()
  await page.goto('/login')
  await screenshot(page, 'login', { docs: true })
  await page.getByLabel('Remember me').check()
  await page.getByRole('button', { name: 'Log in with a passkey' }).click()
  await page.waitForURL('/profile')
  t.equal(await navigation(page), 'Logged in as Katherine Johnson · Log out')
  await page.goto('/devices')
  t.match(await page.locator('.this-device').innerText(), /signed in with a passkey/)

  // The browser restarts: remembered, not fresh. The passkey confirms it.
  const credentials = await credentialsOf(authenticator)
  const state = await context.storageState()
  await context.close()
  context = await newContext({ cookies: state.cookies.filter((cookie) => cookie.expires > 0), origins: [] })
  page = await context.newPage()
  const restored = await authenticatorFor(page, credentials)
  await page.goto('/password')
  await page.waitForURL('/reauthenticate?next=%2Fpassword')
  await screenshot(page, 'reauthenticate-passkey')
  await page.getByRole('button', { name: 'Continue with a passkey' }).click()
  await page.waitForURL('/password')

  // Deleting the account: fine now, refused 6 minutes later, confirmed again.
  await page.goto('/delete-account')
  t.equal(await page.locator('h1').innerText(), 'Delete my account')
  const restore = advancePortalClock(6 * 60 * 1000)
  t.teardown(restore)
  await page.reload()
  await page.waitForURL(/\/reauthenticate\?/)
  const asked = new URL(page.url())
  t.equal(asked.searchParams.get('next'), '/delete-account')
  t.equal(asked.searchParams.get('methods'), 'passkey,password')
  t.match(await page.locator('main').innerText(), /This page needs your password or a passkey, entered in the last few minutes\./)
  await screenshot(page, 'reauthenticate-recent', { docs: true })
  await page.getByRole('button', { name: 'Continue with a passkey' }).click()
  await page.waitForURL('/delete-account')
  await screenshot(page, 'delete-account')
  await page.getByRole('button', { name: 'Delete my account' }).click()
  await page.waitForURL('/')
  t.equal(await notice(page), 'Your account was deleted, and you were logged out everywhere.')
  t.equal(await navigation(page), 'Log in · Sign up')
  restore()

  // The passkey is still on the authenticator, but logs nobody in.
  await page.goto('/login')
  await page.getByRole('button', { name: 'Log in with a passkey' }).click()
  await page.getByRole('alert').waitFor()
  t.equal(await page.getByRole('alert').innerText(), 'That passkey was not accepted.')
  t.equal((await credentialsOf(restored)).length, 1)
  await context.close()
})

t.test('passkeys: a cancelled ceremony says so, and the page stays usable', async (t) => {
  const context = await newContext()
  const page = await context.newPage()
  await authenticatorFor(page)
  await page.goto('/login')
  // The person closes the browser's passkey dialog: the request fails.
  await page.evaluate('navigator.credentials.get = () => Promise.reject(new DOMException("cancelled", "NotAllowedError"))')
  await page.getByRole('button', { name: 'Log in with a passkey' }).click()
  await page.locator('.passkey-status', { hasText: 'No passkey was used' }).waitFor()
  t.equal(await page.getByRole('button', { name: 'Log in with a passkey' }).isEnabled(), true)
  t.equal(new URL(page.url()).pathname, '/login')
  await context.close()
})

t.test('"Sign in with School ID": the provider\'s own pages, a cross-site way back, a new student', async (t) => {
  const context = await newContext()
  const page = await context.newPage()
  await page.goto('/login?next=%2Fdevices')
  await page.getByRole('link', { name: 'Sign in with School ID' }).click()
  // The provider, on another site: its log-in page, then its consent page.
  await page.waitForURL((url) => url.host !== new URL(origin).host)
  await page.locator('input[name="login"]').fill('grace')
  await page.locator('input[name="password"]').fill('any password')
  await page.locator('button[type="submit"]').click()
  await page.getByRole('button', { name: 'Continue' }).click()
  // Back at the portal: the Lax flow cookie came along with the cross-site redirect.
  await page.waitForURL('/devices')
  t.equal(await navigation(page), 'Logged in as Grace Hopper · Log out')
  t.match(await page.locator('.this-device').innerText(), /signed in with School ID/)
  const flow = (await context.cookies()).find((cookie) => cookie.name === 'oidc-flow')
  t.equal(flow, undefined, 'the flow cookie is gone: one use')
  await page.goto('/profile')
  t.match(await page.locator('dl').innerText(), /Grade\s+not set/)

  // The provider remembers her: signing in again is one click, same student.
  await page.getByRole('button', { name: 'Log out', exact: true }).click()
  await page.goto('/login')
  await page.getByRole('link', { name: 'Sign in with School ID' }).click()
  await page.waitForURL('/profile')
  t.equal(await navigation(page), 'Logged in as Grace Hopper · Log out')
  await context.close()
})
