import { chromium, type Browser, type BrowserContext } from 'playwright-core'

// Debian's Chromium, headless, as every browser test starts it.

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
// No sandbox (the tests may run as root), and nothing that reaches out to
// Google's services in the middle of a test.
export const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

export async function launchChromium (args: string[] = []): Promise<Browser> {
  return await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...FLAGS, ...args] })
}

type StorageState = Awaited<ReturnType<BrowserContext['storageState']>>

// A desktop window on the portal; a step that waits longer than 10 s has failed.
export async function desktopContext (browser: Browser, origin: string, storageState?: StorageState): Promise<BrowserContext> {
  const context = await browser.newContext({ baseURL: origin, viewport: { width: 900, height: 640 }, storageState })
  context.setDefaultTimeout(10000)
  return context
}
