import t from 'tap'
import type { Test } from 'tap'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { desktopContext, launchChromium } from './chromium'

// The example app in a real browser: Debian's Chromium, headless, driven by
// playwright-core (which never downloads a browser). The app listens on a free
// loopback port with a temporary database. Run with `npm run test:e2e`; it
// needs `npm run build` (the script does it) and /usr/bin/chromium.
//
// Screenshots of the key pages go to test/e2e/screenshots/ (git-ignored).
// With DOCS_SCREENSHOTS=1, the ones the README shows are written to docs/ too.

const { buildApp } = require('../../example/app.js') as {
  buildApp (options: { databasePath: string, secret: string }): Promise<FastifyInstance>
}

const root = resolve(__dirname, '..', '..')
const screenshots = join(__dirname, 'screenshots')
const docsScreenshots = process.env.DOCS_SCREENSHOTS === '1' ? join(root, 'docs') : null
const PASSWORD = 'correct horse battery'
const NEW_PASSWORD = 'staple tiger paperclip'

// A real browser is slow to start and to drive: more than tap's 30 s default.
t.setTimeout(240000)

let browser: Browser
let app: FastifyInstance
let origin: string

t.before(async () => {
  mkdirSync(screenshots, { recursive: true })
  if (docsScreenshots !== null) mkdirSync(docsScreenshots, { recursive: true })
  const dir = mkdtempSync(join(tmpdir(), 'portal-e2e-'))
  app = await buildApp({ databasePath: join(dir, 'portal.sqlite'), secret: 'an-e2e-secret-that-is-long-enough-0123456789' })
  await app.listen({ host: '127.0.0.1', port: 0 })
  origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
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

// Quitting and reopening the browser: a new context that holds only the
// persistent cookies (session cookies have `expires: -1`).
async function restart (context: BrowserContext): Promise<BrowserContext> {
  const state = await context.storageState()
  await context.close()
  return newContext({ cookies: state.cookies.filter((cookie) => cookie.expires > 0), origins: [] })
}

async function screenshot (page: Page, name: string, { docs = false } = {}): Promise<void> {
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true })
  if (docs && docsScreenshots !== null) await page.locator('body').screenshot({ path: join(docsScreenshots, `example-${name}.png`) })
}

async function navigation (page: Page): Promise<string> {
  return (await page.locator('header nav').innerText()).replace(/\s+/g, ' ').trim()
}

async function signUp (page: Page, name: string, grade: string, password = PASSWORD): Promise<void> {
  await page.goto('/signup')
  await page.getByLabel('Name').fill(name)
  await page.getByLabel('Grade').selectOption(grade)
  await page.getByLabel('Password').fill(password)
}

async function logIn (page: Page, name: string, password: string, { remember }: { remember: boolean }): Promise<void> {
  await page.getByLabel('Name').fill(name)
  await page.getByLabel('Password').fill(password)
  await page.getByLabel('Remember me').setChecked(remember)
  await page.getByRole('button', { name: 'Log in', exact: true }).click()
}

t.test('sign up, log out, log in with "remember me", restart, re-authenticate, change the password', async (t) => {
  let context = await newContext()
  let page = await context.newPage()

  await page.goto('/')
  t.equal(await navigation(page), 'Log in · Sign up')
  await screenshot(page, 'home')

  await signUp(page, 'Grace Hopper', '12')
  await screenshot(page, 'signup')
  await page.getByRole('button', { name: 'Sign up' }).click()
  await page.waitForURL('/profile')
  t.equal(await navigation(page), 'Logged in as Grace Hopper · Log out', 'the name is in the navigation')
  t.match(await page.locator('dl').innerText(), /Grade\s+12/)
  await screenshot(page, 'profile', { docs: true })

  await page.getByRole('button', { name: 'Log out', exact: true }).click()
  await page.waitForURL('/')
  t.equal(await navigation(page), 'Log in · Sign up', 'logged out')

  t.equal(await page.getByRole('status').innerText(), 'You have been logged out.')
  await page.goto('/profile')
  await page.waitForURL('/login?next=%2Fprofile')
  t.equal(await page.getByRole('status').innerText(), 'Please log in to see this page.', 'the log-in page says why')
  t.equal(await page.locator('#password-login input[name="next"]').inputValue(), '/profile', 'the login form keeps where to go back')
  await logIn(page, 'Grace Hopper', 'not my password', { remember: true })
  t.equal(await page.getByRole('alert').innerText(), 'Wrong name or password.')
  t.equal(await page.locator('#password-login input[name="next"]').inputValue(), '/profile', 'even after a wrong password')
  await screenshot(page, 'login-error')
  await logIn(page, 'Grace Hopper', PASSWORD, { remember: true })
  await page.waitForURL('/profile')
  t.match(await page.locator('dl').innerText(), /Fresh/)

  // The browser restarts: the remembered login stays, but it is not fresh.
  context = await restart(context)
  page = await context.newPage()
  await page.goto('/profile')
  t.equal(page.url(), `${origin}/profile`)
  t.equal(await navigation(page), 'Logged in as Grace Hopper · Log out', 'still logged in after the restart')
  t.match(await page.locator('dl').innerText(), /Remembered from an earlier visit/, 'but not fresh')
  await screenshot(page, 'profile-remembered')

  // Changing the password asks for the password again, then goes on.
  await page.getByRole('link', { name: 'Change your password' }).click()
  await page.waitForURL('/reauthenticate?next=%2Fpassword')
  t.match(await page.locator('main').innerText(), /You were remembered from an earlier visit/)
  t.equal(await page.locator('input[autocomplete="username"]').isVisible(), false, 'the name for password managers is not shown')
  t.equal(await page.locator('input[autocomplete="username"]').inputValue(), 'Grace Hopper')
  await screenshot(page, 'reauthenticate', { docs: true })
  await page.getByLabel('Password').fill('a wrong guess')
  await page.getByRole('button', { name: 'Continue' }).click()
  t.equal(await page.getByRole('alert').innerText(), 'Wrong password.')
  await page.getByLabel('Password').fill(PASSWORD)
  await page.getByRole('button', { name: 'Continue' }).click()
  await page.waitForURL('/password')
  await screenshot(page, 'password')
  await page.getByLabel('Current password').fill(PASSWORD)
  await page.getByLabel('New password', { exact: false }).first().fill(NEW_PASSWORD)
  await page.getByLabel('New password again').fill(NEW_PASSWORD)
  await page.getByRole('button', { name: 'Change password' }).click()
  await page.waitForURL('/profile')
  t.equal(await page.getByRole('status').innerText(), 'Your password was changed. Every other device was logged out, and your API token was revoked.')
  await screenshot(page, 'password-changed')

  // The new password works, the old one does not.
  await page.getByRole('button', { name: 'Log out', exact: true }).click()
  await page.goto('/login')
  await logIn(page, 'Grace Hopper', PASSWORD, { remember: false })
  t.equal(await page.getByRole('alert').innerText(), 'Wrong name or password.')
  await logIn(page, 'Grace Hopper', NEW_PASSWORD, { remember: false })
  await page.waitForURL('/profile')
  await context.close()
})

t.test('a login without "remember me" does not survive a browser restart', async (t) => {
  let context = await newContext()
  let page = await context.newPage()
  await signUp(page, 'Alan', '10')
  await page.getByRole('button', { name: 'Sign up' }).click()
  await page.waitForURL('/profile')
  t.equal(await navigation(page), 'Logged in as Alan · Log out')

  context = await restart(context)
  page = await context.newPage()
  await page.goto('/profile')
  await page.waitForURL('/login?next=%2Fprofile')
  t.equal(await navigation(page), 'Log in · Sign up')
  await context.close()
})

t.test('a tampered login cookie is logged out', async (t) => {
  const context = await newContext()
  const page = await context.newPage()
  await page.goto('/login')
  await logIn(page, 'Alan', PASSWORD, { remember: true })
  await page.waitForURL('/profile')

  const account = (await context.cookies()).find((cookie) => cookie.name === 'account')
  t.ok(account, 'the browser holds the login cookie')
  // Change the user id inside the signed value: the signature no longer fits.
  const [tag, id, ...rest] = account!.value.split('.')
  const forged = Buffer.from('1:1').toString('base64url')
  t.not(id, forged)
  await context.addCookies([{ ...account!, value: [tag, forged, ...rest].join('.') }])
  await page.reload()
  t.equal(await navigation(page), 'Log in · Sign up', 'the page shows a logged-out visitor')
  await page.goto('/profile')
  await page.waitForURL('/login?next=%2Fprofile')
  await context.close()
})

// Two browsers (a laptop and a phone), each logged in as Alan.
async function twoBrowsersAsAlan (remember: boolean): Promise<{ laptop: BrowserContext, phone: BrowserContext, laptopPage: Page, phonePage: Page }> {
  const laptop = await newContext()
  const phone = await newContext()
  const laptopPage = await laptop.newPage()
  const phonePage = await phone.newPage()
  for (const page of [laptopPage, phonePage]) {
    await page.goto('/login')
    await logIn(page, 'Alan', PASSWORD, { remember })
    await page.waitForURL('/profile')
  }
  return { laptop, phone, laptopPage, phonePage }
}

t.test('log out everywhere: the other browser is logged out and told why; an API token is shown once', async (t) => {
  const { laptop, phone, laptopPage, phonePage } = await twoBrowsersAsAlan(true)

  await laptopPage.getByRole('link', { name: 'Your API token' }).click()
  await laptopPage.getByRole('button', { name: 'Create an API token' }).click()
  await laptopPage.waitForURL('/api-token')
  const token = await laptopPage.locator('pre.token').innerText()
  t.match(token, /^portal_[A-Za-z0-9_-]{43}$/)
  t.match(await laptopPage.locator('.expiry').innerText(), /^Your API token works until \d{4}-\d\d-\d\d \d\d:\d\d UTC\.$/)
  await screenshot(laptopPage, 'api-token')
  await laptopPage.reload()
  t.equal(await laptopPage.locator('pre.token').count(), 0, 'a reload shows the token no more')
  const api = await fetch(`${origin}/api/me`, { headers: { authorization: `Bearer ${token}` } })
  t.same(await api.json(), { name: 'Alan', grade: 10 })

  await laptopPage.goto('/profile')
  await laptopPage.getByRole('link', { name: 'Log out everywhere else' }).click()
  await laptopPage.getByRole('button', { name: 'Log out everywhere else' }).click()
  await laptopPage.waitForURL('/profile')
  t.equal(await laptopPage.getByRole('status').innerText(), 'Every other device was logged out, and your API token was revoked.')
  t.equal(await navigation(laptopPage), 'Logged in as Alan · Log out', 'this browser stays logged in')

  await phonePage.reload()
  await phonePage.waitForURL('/login?next=%2Fprofile')
  t.equal(await navigation(phonePage), 'Log in · Sign up', 'the other browser is logged out')
  t.equal(await phonePage.getByRole('status').innerText(), 'You were logged out: someone chose “Log out everywhere else” on another device. Log in again.')
  await screenshot(phonePage, 'logged-out-elsewhere')
  t.equal((await fetch(`${origin}/api/me`, { headers: { authorization: `Bearer ${token}` } })).status, 401, 'the API token is revoked')
  await laptop.close()
  await phone.close()
})

t.test('"Create an API token" from a remembered login: re-authenticate, then the token page', async (t) => {
  let context = await newContext()
  let page = await context.newPage()
  await page.goto('/login')
  await logIn(page, 'Alan', PASSWORD, { remember: true })
  await page.waitForURL('/profile')
  context = await restart(context)
  page = await context.newPage()
  // The token page of a browser restored with its tabs: its button posts a stale form.
  await page.goto('/profile')
  await page.getByRole('link', { name: 'Your API token' }).click()
  await page.waitForURL('/reauthenticate?next=%2Fapi-token')
  await page.getByLabel('Password').fill(PASSWORD)
  await page.getByRole('button', { name: 'Continue' }).click()
  await page.waitForURL('/api-token')
  t.equal(await page.locator('h1').innerText(), 'Your API token', 'the journey ends on the token page, not a 404')
  await page.getByRole('button', { name: /Create a/ }).click()
  await page.waitForURL('/api-token')
  t.match(await page.locator('pre.token').innerText(), /^portal_/)

  // A form left open while the login went stale: its POST is refused, and still ends here.
  const stale = await restart(context)
  const stalePage = await stale.newPage()
  await stalePage.goto('/profile')
  // (a string: the tests are compiled without the DOM's types)
  await stalePage.evaluate(`(() => {
    const form = document.createElement('form')
    form.method = 'post'
    form.action = '/api-token'
    form.append(document.querySelector('input[name="_csrf"]').cloneNode())
    document.body.append(form)
    form.submit()
  })()`)
  await stalePage.waitForURL('/reauthenticate?next=%2Fapi-token')
  await stalePage.getByLabel('Password').fill(PASSWORD)
  await stalePage.getByRole('button', { name: 'Continue' }).click()
  await stalePage.waitForURL('/api-token')
  t.equal(await stalePage.locator('h1').innerText(), 'Your API token')
  await stale.close()
})

t.test('a narrow phone screen: long names wrap, nothing scrolls sideways', async (t) => {
  const context = await browser.newContext({ baseURL: origin, viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true })
  context.setDefaultTimeout(10000)
  const page = await context.newPage()
  // One long word, as some names are: it cannot wrap at a space.
  const longName = 'Wolfeschlegelsteinhausenbergerdorffvoralternwarengewissenhaft'
  await signUp(page, longName, '8')
  await page.getByRole('button', { name: 'Sign up' }).click()
  await page.waitForURL('/profile')
  for (const url of ['/profile', '/password', '/api-token', '/']) {
    await page.goto(url)
    // A phone zooms out to show a page wider than itself: measure against its 375 px.
    const width = await page.evaluate('document.documentElement.scrollWidth') as number
    t.ok(width <= 375, `${url}: the page is ${width}px wide on a 375px screen`)
  }
  await page.goto('/profile')
  const header = await page.locator('header').boundingBox()
  const brand = await page.locator('header .brand').boundingBox()
  t.ok(header!.height < 160, 'the header stays compact')
  t.ok(brand!.x >= 0 && brand!.x + brand!.width <= 375, 'the brand fits')
  await screenshot(page, 'profile-narrow', { docs: true })
  await context.close()
})

// An attacker's page on another port of 127.0.0.1: the same *site* as the
// portal, so its cookies reach the portal and SameSite does not stop its
// forms. It plants a CSRF secret of its own (one the portal signed for the
// attacker's own visit) with a longer Path, which the browser sends first,
// then posts a form with the token that goes with it.
interface Attack { path: string, fields: Record<string, string> }

async function attackerSite (t: Test): Promise<{ url: string, arm (attack: Attack): Promise<void> }> {
  let page = ''
  let cookie = ''
  const server: Server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'set-cookie': cookie })
    response.end(page)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`
  return {
    url,
    // The attacker's own visit to the portal gives a signed secret and its token.
    async arm ({ path, fields }) {
      const visit = await fetch(`${origin}/login`)
      const secret = visit.headers.getSetCookie().map((line) => line.split(';')[0]).find((pair) => pair.startsWith('_csrf=')) as string
      const token = /name="_csrf" value="([^"]+)"/.exec(await visit.text())?.[1] as string
      cookie = `${secret}; Path=${path}`
      const inputs = Object.entries({ _csrf: token, ...fields })
        .map(([name, value]) => `<input type="hidden" name="${name}" value="${value}">`).join('')
      page = `<!doctype html><form method="post" action="${origin}${path}">${inputs}</form><script>document.forms[0].submit()</script>`
    }
  }
}

t.test('cookie tossing from another port of 127.0.0.1: each attack fails', async (t) => {
  const evil = await attackerSite(t)
  const victim = await newContext()
  const page = await victim.newPage()
  await signUp(page, 'Victoria', '9')
  await page.getByRole('button', { name: 'Sign up' }).click()
  await page.waitForURL('/profile')
  const phone = await newContext()
  const phonePage = await phone.newPage()
  await phonePage.goto('/login')
  await logIn(phonePage, 'Victoria', PASSWORD, { remember: true })
  await phonePage.waitForURL('/profile')
  // The attacker's own account, for the login CSRF.
  const mallory = await newContext()
  const malloryPage = await mallory.newPage()
  await signUp(malloryPage, 'Mallory', '9')
  await malloryPage.getByRole('button', { name: 'Sign up' }).click()
  await malloryPage.waitForURL('/profile')
  await mallory.close()

  // 1. Change the victim's password (her login is fresh: she just signed up).
  await evil.arm({ path: '/password', fields: { password: 'owned by mallory', confirm: 'owned by mallory', current: '' } })
  await page.goto(evil.url)
  await page.waitForURL(`${origin}/password`)
  t.equal(await page.locator('body').innerText(), 'Cross-origin request refused.', 'password change refused')
  await screenshot(page, 'attack-refused')

  // 2. Log out every other device of the victim.
  await evil.arm({ path: '/logout-everywhere', fields: {} })
  await page.goto(evil.url)
  await page.waitForURL(`${origin}/logout-everywhere`)
  t.equal(await page.locator('body').innerText(), 'Cross-origin request refused.', 'log out everywhere refused')

  // 3. Login CSRF: log the victim's browser in as the attacker, to read
  // what she then types into "her" account.
  await page.goto('/profile')
  await page.getByRole('button', { name: 'Log out', exact: true }).click()
  await page.waitForURL('/')
  await evil.arm({ path: '/login', fields: { name: 'Mallory', password: PASSWORD } })
  await page.goto(evil.url)
  await page.waitForURL(`${origin}/login`)
  t.equal(await page.locator('body').innerText(), 'Cross-origin request refused.', 'login CSRF refused')
  await page.goto('/')
  t.equal(await navigation(page), 'Log in · Sign up', 'not logged in as the attacker')

  // Nothing happened: the phone is still logged in, the password still works.
  await phonePage.reload()
  t.equal(await navigation(phonePage), 'Logged in as Victoria · Log out', 'the other device is still logged in')
  await page.goto('/login')
  await logIn(page, 'Victoria', PASSWORD, { remember: false })
  await page.waitForURL('/profile')
  t.equal(await navigation(page), 'Logged in as Victoria · Log out', 'the password is unchanged')
  await victim.close()
  await phone.close()
})

t.test('your devices: log out the other browser from this one; it is logged out on its next page', async (t) => {
  const { laptop, phone, laptopPage, phonePage } = await twoBrowsersAsAlan(false)
  await laptopPage.getByRole('link', { name: 'Your devices' }).click()
  await laptopPage.waitForURL('/devices')
  const cards = laptopPage.locator('ul.devices > li')
  t.ok(await cards.count() >= 2, 'both browsers are listed')
  t.equal(await laptopPage.locator('.this-device').count(), 1, 'this one marked')
  t.match(await laptopPage.locator('.this-device').innerText(), /\(this device\)[\s\S]*Address\s+127\.0\.0\.1/)
  await screenshot(laptopPage, 'devices', { docs: true })
  const before = await laptopPage.getByRole('button', { name: 'Log out this device' }).count()

  await laptopPage.getByRole('button', { name: 'Log out this device' }).first().click()
  await laptopPage.waitForURL('/devices')
  t.equal(await laptopPage.getByRole('status').innerText(), 'That device was logged out.')
  t.equal(await laptopPage.getByRole('button', { name: 'Log out this device' }).count(), before - 1)

  await phonePage.reload()
  await phonePage.waitForURL('/login?next=%2Fprofile')
  t.equal(await navigation(phonePage), 'Log in · Sign up', 'the other browser is logged out')
  t.equal(await phonePage.getByRole('status').innerText(),
    'Your login on this device has ended: it was logged out from another device, or it expired. Log in again.')
  t.equal(await navigation(laptopPage), 'Logged in as Alan · Log out', 'this one is not')
  await laptop.close()
  await phone.close()
})
