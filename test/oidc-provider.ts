import { createServer, type Server } from 'node:http'
import type { Test } from 'tap'

// A real OpenID provider for the tests: panva's oidc-provider (an ES module,
// loaded with import()) on a free loopback port, with its own log-in and
// consent pages (devInteractions: any login name, any password). The
// account's subject is the login name; its `name` claim is looked up in
// `names` (else the login name itself). Never a mock: what is tested is what
// a provider does.

export const CLIENT_ID = 'student-portal'
export const CLIENT_SECRET = 'a-client-secret-for-the-tests-only'

export interface OidcProvider {
  /** http://127.0.0.1:<port>: another site than the portal's localhost. */
  readonly issuer: string
  /** Starts answering, for a client that may come back to these redirect URIs. */
  start (redirectUris: string[]): Promise<void>
}

export async function oidcProvider (t: Test, names: Record<string, string> = {}): Promise<OidcProvider> {
  // The port first: the portal needs the issuer before its own port is known.
  const server: Server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  quietWhileRunning(t)
  return {
    issuer,
    async start (redirectUris) {
      const { default: Provider } = await import('oidc-provider')
      const provider = new Provider(issuer, {
        clients: [{
          client_id: CLIENT_ID,
          client_secret: CLIENT_SECRET,
          redirect_uris: redirectUris,
          grant_types: ['authorization_code'],
          response_types: ['code']
        }],
        claims: { openid: ['sub'], profile: ['name'] },
        async findAccount (_context: unknown, sub: string) {
          return { accountId: sub, claims: async () => ({ sub, name: names[sub] ?? sub }) }
        },
        cookies: { keys: ['a-cookie-key-for-the-tests-only'] },
        features: { devInteractions: { enabled: true } }
      })
      server.on('request', provider.callback())
    }
  }
}

// A visitor at the provider, with fetch and a cookie jar of its own: follows
// its redirects, logs in as `login` on its log-in page, consents on its
// consent page (when asked), and returns the URL the provider sends the
// browser back to (the portal's callback, with `code` and `state`).
export async function signInAtProvider (authorizationUrl: string, login: string): Promise<URL> {
  const jar = new Map<string, string>()
  async function visit (url: URL, form?: Record<string, string>): Promise<Response> {
    const response = await fetch(url, {
      method: form === undefined ? 'GET' : 'POST',
      redirect: 'manual',
      headers: {
        cookie: [...jar].map(([name, value]) => `${name}=${value}`).join('; '),
        ...(form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' })
      },
      body: form === undefined ? undefined : new URLSearchParams(form)
    })
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';')
      jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1))
    }
    return response
  }
  let url = new URL(authorizationUrl)
  for (let step = 0; step < 10; step++) {
    const response = await visit(url)
    const location = response.headers.get('location')
    if (location !== null) {
      url = new URL(location, url)
      if (url.origin !== new URL(authorizationUrl).origin) return url
      continue
    }
    // One of its pages: a form to post, log-in or consent.
    const page = await response.text()
    const action = /<form[^>]*action="([^"]+)"/.exec(page)?.[1]
    if (action === undefined) throw new Error(`the provider answered ${response.status}: ${page.slice(0, 500)}`)
    const prompt = /name="prompt" value="(\w+)"/.exec(page)?.[1] as string
    const posted = await visit(new URL(action, url), prompt === 'login' ? { prompt, login, password: 'any password' } : { prompt })
    url = new URL(posted.headers.get('location') as string, url)
  }
  throw new Error('the provider never sent the browser back')
}

// The provider warns about its development settings (keys, an in-memory
// adapter, devInteractions, default lifetimes) on the console, as it should in
// a real deployment; here they are what the tests chose, and would bury the
// test log. Only its own lines are left out, and only while a test runs one.
function quietWhileRunning (t: Test): void {
  const { warn, info } = console
  const ours = (args: unknown[]): boolean => typeof args[0] === 'string' && args[0].includes('oidc-provider ')
  console.warn = (...args: unknown[]) => { if (!ours(args)) warn(...args) }
  console.info = (...args: unknown[]) => { if (!ours(args)) info(...args) }
  t.teardown(() => {
    console.warn = warn
    console.info = info
  })
}
