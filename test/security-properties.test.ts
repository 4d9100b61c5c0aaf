import { before, test, type Test } from 'tap'
import fc from 'fast-check'
import type { FastifyInstance, FastifyRequest, LightMyRequestResponse } from 'fastify'
import { build, cookieJar, loadCookieParser, parseCookieHeader, setCookieHeaders } from './helpers'

before(loadCookieParser)

// Property-based checks of what an attacker controls: the Cookie header, the
// cookie values, the user ids an app logs in, and `next`. fast-check prints
// the seed and the shrunk counterexample of any failure; replay it with
// `fc.assert(..., { seed, path })`.

const RUNS = 300

// Runs one property; a failure carries fast-check's report (seed, path, counterexample).
async function holds<Ts> (t: Test, name: string, property: fc.IAsyncProperty<Ts>, numRuns = RUNS): Promise<void> {
  try {
    await fc.assert(property, { numRuns })
    t.pass(`${name} (${numRuns} runs)`)
  } catch (error) {
    t.fail(`${name}\n${(error as Error).message}`)
  }
}

interface Issued {
  id: string
  account: string
  fresh: string
}

// ---------------------------------------------------------------------------
// Cookie headers and values

// Pieces an attacker would try: separators, quotes, escapes (valid, broken and
// encoding separators or newlines), and any latin-1 character a real HTTP
// parser lets through (Node refuses other control characters before the app).
const HEADER_PIECES = [';', ',', '=', ' ', '\t', '"', '\\', '.', '%', '%25', '%3B', '%0A', '%0D', '%00', '%ZZ', '%FF', 'account', 'fresh', 'account=', 'fresh=', '__proto__=', 'constructor=']

function headerArbitrary (fragments: string[]): fc.Arbitrary<string> {
  const piece = fc.oneof(
    { arbitrary: fc.constantFrom(...HEADER_PIECES), weight: 4 },
    { arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)), weight: 4 },
    { arbitrary: fc.integer({ min: 0x80, max: 0xff }).map((code) => String.fromCharCode(code)), weight: 1 },
    { arbitrary: fc.constantFrom(...fragments), weight: 2 }
  )
  return fc.oneof(
    { arbitrary: fc.array(piece, { maxLength: 40 }).map((pieces) => pieces.join('')), weight: 8 },
    // Headers far beyond a cookie's 4 KB.
    { arbitrary: fc.tuple(fc.constantFrom('account=', 'fresh=', 'x='), fc.integer({ min: 4000, max: 9000 }), fc.constantFrom('a', '%', '.', '=')).map(([name, n, c]) => name + c.repeat(n)), weight: 1 }
  )
}

// Logs some users in and returns the cookies it issued, with pieces of them
// (raw and percent-encoded) for the header generator to splice in.
async function issue (app: FastifyInstance, ids: string[]): Promise<{ issued: Issued[], fragments: string[] }> {
  const issued: Issued[] = []
  for (const id of ids) {
    const cookies = cookieJar(await app.inject(`/login/${id}`))
    issued.push({ id, account: cookies.account, fresh: cookies.fresh })
  }
  const fragments: string[] = []
  for (const { account, fresh } of issued) {
    for (const value of [account, fresh]) {
      const encoded = encodeURIComponent(value)
      fragments.push(value, encoded, `account=${encoded}`, `fresh=${encoded}`, value.slice(0, value.lastIndexOf('.')), value.slice(value.lastIndexOf('.')))
    }
  }
  return { issued, fragments }
}

// Whether the header names a login cookie in more than one of its pairs
// (parsers trim blanks around a name).
function loginCookieRepeated (header: string): boolean {
  const pairs = header.split(';')
  return ['account', 'fresh'].some((name) => pairs.filter((pair) => new RegExp(`^[ \\t]*${name}[ \\t]*=`).test(pair)).length > 1)
}

// What the server makes of a Cookie header: checks the invariants and returns
// the id it authenticated, or null.
async function probe (app: FastifyInstance, issued: Issued[], header: string, loaderCalls: string[]): Promise<string | null> {
  const headers = header.length === 0 ? {} : { cookie: header }
  const who = await app.inject({ url: '/who', headers })
  if (who.statusCode !== 200) throw new Error(`/who answered ${who.statusCode}: ${who.body}`)
  const me = await app.inject({ url: '/me', headers })
  const guest = await app.inject({ url: '/guest', headers })
  const { authenticated, id, fresh } = who.json()
  if (setCookieHeaders(who).length > 0) throw new Error('a Set-Cookie without a login state change')
  // A guard expires the copies of a login cookie sent twice, never the real one (host-only, Path=/).
  for (const line of [...setCookieHeaders(me), ...setCookieHeaders(guest)]) {
    if (!loginCookieRepeated(header) || !/^(account|fresh)=; Max-Age=0; /.test(line) || /^[^;]*; Max-Age=0; Path=\/;/.test(line)) throw new Error(`a Set-Cookie without a login state change: ${line}`)
  }

  // The cookie the server read, with its own parser: the only way in is a cookie it issued, verbatim,
  // and sent once: a login cookie name sent twice is a planted cookie, and no login at all.
  const read = header.length === 0 ? {} : parseCookieHeader(header)
  const login = issued.find((one) => one.account === read.account)
  if (login === undefined || loginCookieRepeated(header)) {
    if (authenticated !== false || id !== null || fresh !== false) throw new Error(`authenticated as ${JSON.stringify(id)} without an issued cookie`)
    if (me.statusCode !== 401 || guest.statusCode !== 200) throw new Error(`guards: /me ${me.statusCode}, /guest ${guest.statusCode}`)
    if (loaderCalls.length > 0) throw new Error(`the loader was asked about ${JSON.stringify(loaderCalls)}`)
    return null
  }
  const expectFresh = read.fresh === login.fresh
  if (authenticated !== true || id !== login.id || fresh !== expectFresh) throw new Error(`expected ${login.id} (fresh ${expectFresh}), got ${who.body}`)
  if (me.statusCode !== 200 || guest.statusCode !== 403) throw new Error(`guards: /me ${me.statusCode}, /guest ${guest.statusCode}`)
  return id
}

test('arbitrary Cookie headers: never a 500, never a login without a cookie the server issued', async (t) => {
  const { app, loaderCalls } = await build()
  const { issued, fragments } = await issue(app, ['1', '2'])
  let authenticated = 0
  await holds(t, 'arbitrary headers', fc.asyncProperty(headerArbitrary(fragments), async (header) => {
    loaderCalls.length = 0
    if (await probe(app, issued, header, loaderCalls) !== null) authenticated++
  }), 500)

  // An issued cookie first, then anything at all: still exactly that login,
  // unless a login cookie name comes again.
  const otherName = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/).filter((name) => name !== 'account' && name !== 'fresh')
  const otherCookie = fc.tuple(otherName, fc.string({ unit: 'binary', maxLength: 30 })).map(([name, value]) => `${name}=${encodeURIComponent(value)}`)
  await holds(t, 'an issued cookie followed by arbitrary cookies and junk', fc.asyncProperty(
    fc.constantFrom(...issued), fc.boolean(), fc.array(otherCookie, { maxLength: 6 }), headerArbitrary(fragments),
    async (login, withFresh, others, junk) => {
      loaderCalls.length = 0
      const first = [`account=${encodeURIComponent(login.account)}`, ...(withFresh ? [`fresh=${encodeURIComponent(login.fresh)}`] : [])]
      const header = [...first, ...others].join('; ') + '; ' + junk
      const id = await probe(app, issued, header, loaderCalls)
      const expected = loginCookieRepeated(header) ? null : login.id
      if (id !== expected) throw new Error(`expected ${expected}, got ${id}`)
    }))
  t.comment(`${authenticated} of the arbitrary headers carried an issued cookie verbatim`)
})

test('arbitrary cookie values (unicode, ; , = newlines, 4 KB) and edited issued cookies are anonymous', async (t) => {
  const { app, loaderCalls } = await build()
  const { issued } = await issue(app, ['1', '2'])
  const value = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 60 }),
    fc.string({ unit: 'grapheme', maxLength: 60 }),
    fc.array(fc.constantFrom(';', ',', '=', '\n', '\r\n', '\u0000', '"', ' ', '.', 'a1', 'f1', 'MQ', 'AAAAAAAAAAAAAAAA', 'r', 's', '🎉'), { maxLength: 40 }).map((parts) => parts.join('')),
    fc.string({ unit: 'grapheme-ascii', minLength: 4000, maxLength: 4300 })
  )
  await holds(t, 'arbitrary values under the login cookie names', fc.asyncProperty(value, value, async (account, fresh) => {
    loaderCalls.length = 0
    const id = await probe(app, issued, `account=${encodeURIComponent(account)}; fresh=${encodeURIComponent(fresh)}`, loaderCalls)
    if (id !== null) throw new Error(`authenticated as ${id}`)
  }))

  // Up to four edits (replace, insert, delete) anywhere in an issued cookie.
  const edit = fc.record({ at: fc.nat(), kind: fc.constantFrom('replace', 'insert', 'delete'), char: fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 1 }) })
  await holds(t, 'edited issued account cookies', fc.asyncProperty(fc.constantFrom(...issued), fc.array(edit, { minLength: 1, maxLength: 4 }), async (login, edits) => {
    let edited = login.account
    for (const { at, kind, char } of edits) {
      const i = at % (edited.length + 1)
      edited = kind === 'insert' ? edited.slice(0, i) + char + edited.slice(i) : kind === 'replace' ? edited.slice(0, i) + char + edited.slice(i + 1) : edited.slice(0, i) + edited.slice(i + 1)
    }
    fc.pre(edited !== login.account)
    loaderCalls.length = 0
    const id = await probe(app, issued, `account=${encodeURIComponent(edited)}; fresh=${encodeURIComponent(login.fresh)}`, loaderCalls)
    if (id !== null) throw new Error(`an edited cookie authenticated as ${id}`)
  }))
})

// ---------------------------------------------------------------------------
// User ids

const MAX_COOKIE = 4096
// Fits in a browser with room to spare: the name and '=', and even each of the
// 43 signature characters percent-encoded to 3 bytes, still within 4096.
const SURELY_FITS = MAX_COOKIE - 'account='.length - 2 * 43

// The account cookie's length for an id. Only the id's base64url part depends
// on the id (lib/token.ts: a1.<id base64url>.<times, login id, flag, client
// tag>.<signature>); the rest is measured once on a one-byte id.
async function cookieLengths (app: FastifyInstance): Promise<(id: string) => number> {
  const probe = await app.loginManager.cookiesFor({ getId: () => 'x' } as never)
  // 'x' is 'eA' in base64url.
  const overhead = probe.account.length - 2
  return (id) => overhead + Math.ceil(Buffer.byteLength(id, 'utf8') * 4 / 3)
}

const SPECIAL = [';', ',', '=', '\n', '\r', '\u0000', '"', '\\', ' ', '.', '%', '\u2028', 'é', '🎉', '\ud800', '\udfff', 'a1.MQ']

const idArbitrary = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.array(fc.oneof(fc.constantFrom(...SPECIAL), fc.string({ maxLength: 3 })), { maxLength: 30 }).map((parts) => parts.join('')),
  // Any UTF-16 code unit: lone surrogates included.
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)), maxLength: 30 }),
  // Around the limit, in ASCII and in multi-byte characters, and 4 KB strings.
  fc.tuple(fc.integer({ min: 2900, max: 3100 }), fc.string({ unit: 'grapheme', maxLength: 8 })).map(([n, tail]) => 'x'.repeat(n) + tail),
  fc.tuple(fc.integer({ min: 700, max: 1100 }), fc.constantFrom('é', '日', '🎉', 'a')).map(([n, char]) => char.repeat(n)),
  fc.string({ unit: 'grapheme-ascii', minLength: 4000, maxLength: 4200 })
)

test('ids: those that fit round-trip exactly; too long or not well-formed are refused at login, never truncated', async (t) => {
  const { app } = await build()
  const pending = new Map<string, string>()
  const loaded: string[] = []
  app.loginManager.userLoader((id) => {
    loaded.push(id)
    return { getId: () => id, isAuthenticated: true, isActive: true, isAnonymous: false } as never
  })
  // The id goes through a server-side table: no transport mangles it on the way in.
  app.get<{ Params: { key: string } }>('/login-key/:key', (request, reply) => {
    const id = pending.get(request.params.key) as string
    app.loginManager.loginUser(request, reply, { getId: () => id } as never)
    return 'ok'
  })
  const predictedAccountLength = await cookieLengths(app)
  let key = 0
  const seen = { fit: 0, tooLong: 0, malformed: 0, empty: 0, nearLimit: 0 }
  await holds(t, 'id round trip', fc.asyncProperty(idArbitrary, async (id) => {
    const k = String(key++)
    pending.set(k, id)
    const login = await app.inject(`/login-key/${k}`)
    pending.delete(k)
    if (id === '') {
      seen.empty++
      if (login.statusCode !== 500 || login.json().code !== 'FST_LOGIN_NO_USER_ID') throw new Error(`empty id: ${login.statusCode} ${login.body}`)
      return
    }
    const predicted = predictedAccountLength(id)
    if (!id.isWellFormed()) seen.malformed++
    else if (predicted > MAX_COOKIE) seen.tooLong++
    else if (predicted > SURELY_FITS) seen.nearLimit++
    else seen.fit++
    const mustRefuse = !id.isWellFormed() || predicted > MAX_COOKIE
    const mustAccept = !mustRefuse && predicted <= SURELY_FITS
    await checkLogin(app, id, login, predicted, mustRefuse, mustAccept, loaded)
  }), 400)
  t.ok(seen.fit > 0 && seen.tooLong > 0 && seen.malformed > 0, `both sides of the limit were tried: ${JSON.stringify(seen)}`)
})

// One login attempt: refused with FST_LOGIN_INVALID_USER and no cookie, or
// accepted with a cookie that brings back exactly the id.
async function checkLogin (app: FastifyInstance, id: string, login: LightMyRequestResponse, predicted: number, mustRefuse: boolean, mustAccept: boolean, loaded: string[]): Promise<'accepted' | 'refused'> {
  if (login.statusCode !== 200) {
    if (mustAccept) throw new Error(`a ${predicted}-character cookie was refused: ${login.body.slice(0, 200)}`)
    if (login.statusCode !== 500 || login.json().code !== 'FST_LOGIN_INVALID_USER') throw new Error(`expected FST_LOGIN_INVALID_USER (cookie of ${predicted}), got ${login.statusCode} ${login.body.slice(0, 200)}`)
    if (setCookieHeaders(login).length !== 0) throw new Error('a refused login set a cookie')
    return 'refused'
  }
  if (mustRefuse) throw new Error(`a ${predicted}-character cookie (or a malformed id) was accepted`)
  const cookies = cookieJar(login)
  if (cookies.account.length !== predicted) throw new Error(`cookie of ${cookies.account.length}, predicted ${predicted}`)
  loaded.length = 0
  const who = await app.inject({ url: '/who', cookies })
  if (who.statusCode !== 200) throw new Error(`/who answered ${who.statusCode}`)
  const body = who.json()
  if (body.id !== id || body.authenticated !== true || body.fresh !== true) throw new Error(`came back as ${JSON.stringify(body).slice(0, 200)}`)
  if (loaded.length !== 1 || loaded[0] !== id) throw new Error('the loader did not get exactly the id')
  return 'accepted'
}

test('around the limit: every id accepted round-trips, every id refused is refused by code, nothing over 4096 passes', async (t) => {
  const { app } = await build()
  const loaded: string[] = []
  app.loginManager.userLoader((id) => {
    loaded.push(id)
    return { getId: () => id, isAuthenticated: true, isActive: true, isAnonymous: false } as never
  })
  app.get<{ Querystring: { n: string } }>('/login-n', (request, reply) => {
    app.loginManager.loginUser(request, reply, { id: 'x'.repeat(Number(request.query.n)) } as never)
    return 'ok'
  })
  const predictedAccountLength = await cookieLengths(app)
  const outcomes = { accepted: 0, refused: 0 }
  const errors: string[] = []
  for (let n = 2900; n <= 3010; n++) {
    const id = 'x'.repeat(n)
    const predicted = predictedAccountLength(id)
    try {
      outcomes[await checkLogin(app, id, await app.inject(`/login-n?n=${n}`), predicted, predicted > MAX_COOKIE, predicted <= SURELY_FITS, loaded)]++
    } catch (error) {
      errors.push(`${n}: ${(error as Error).message}`)
    }
  }
  t.same(errors, [], 'each length behaves')
  t.ok(outcomes.accepted > 0 && outcomes.refused > 0, `both outcomes seen: ${JSON.stringify(outcomes)}`)
})

// Found with this issue: the limit was checked on the signed value alone, but
// browsers count the name too; ids just under the limit got a Set-Cookie of up
// to 4102 bytes, which browsers drop without a word.
test('an account cookie that loginUser accepts fits in a browser: name + value on the wire at most 4096 bytes', async (t) => {
  const { app } = await build()
  app.get<{ Querystring: { n: string } }>('/login-n', (request, reply) => {
    app.loginManager.loginUser(request, reply, { id: 'x'.repeat(Number(request.query.n)) } as never)
    return 'ok'
  })
  let worst = 0
  // Three logins per length: the signature, hence its escapes, differs each time.
  for (let attempt = 0; attempt < 63; attempt++) {
    const response = await app.inject(`/login-n?n=${2980 + (attempt % 21)}`)
    if (response.statusCode !== 200) continue
    const header = setCookieHeaders(response)[0]
    const pair = header.slice(0, header.indexOf(';'))
    // Browsers count the name and the value (RFC 6265bis, Chrome and Firefox): the '=' is not counted.
    worst = Math.max(worst, pair.length - 1)
  }
  t.ok(worst <= MAX_COOKIE, `the longest accepted account cookie takes ${worst} bytes in the browser`)
})

// ---------------------------------------------------------------------------
// next

const SITE = 'https://good.example'

// Why a Location value would leave the site, or null when it stays. Checks
// the value and every further percent-decoding of it, as a browser would
// resolve it from two different pages.
function leavesSite (location: string): string | null {
  let layer = location
  for (let round = 0; round < 8; round++) {
    // Browsers drop leading C0 controls and spaces, and tabs and newlines anywhere.
    // eslint-disable-next-line no-control-regex
    const stripped = layer.replace(/^[\u0000-\u0020]+/, '').replace(/[\t\n\r]/g, '')
    if (!stripped.startsWith('/') || stripped.startsWith('//') || stripped.startsWith('/\\')) return `layer ${round} is not a local path: ${JSON.stringify(layer)}`
    for (const base of [`${SITE}/`, `${SITE}/a/b/c?q=1#f`]) {
      let url: URL
      try {
        url = new URL(layer, base)
      } catch {
        return `layer ${round} does not parse: ${JSON.stringify(layer)}`
      }
      if (url.origin !== SITE) return `layer ${round} resolves to ${url.href}`
      if (url.pathname.startsWith('//')) return `layer ${round} has the path ${url.pathname}`
    }
    let decoded: string
    try {
      decoded = decodeURIComponent(layer)
    } catch {
      decoded = layer.replace(/%([0-7][0-9A-Fa-f])/g, (_escape, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    }
    if (decoded === layer) return null
    layer = decoded
  }
  return null
}

const PREFIXES = ['', '', ' ', '\t', '\n', '\r\n', '\u0000', '\u000b', '\u00a0', '\u3000', '\ufeff', '\u2028', '%20', '%09', '%0a', '%00', '%2509', '%e3%80%80']
const SCHEMES = ['', '', '', 'javascript:', 'JaVaScRiPt:', 'java\tscript:', 'java%09script:', 'javascript%3a', '%6a%61%76%61script:', 'https:', 'http:', 'HTTPS:', 'data:', 'vbscript:', 'https%3a', 'https%253a']
const SLASHES = ['/', '/', '\\', '%2f', '%2F', '%5c', '%5C', '%252f', '%25252f', '%2525252F', '/./', '/../', '.', '%2e', '%2e%2e', '\t', '%09', '\u3000', '\uff0f', '%ef%bc%8f']
const HOSTS = ['evil.com', 'evil.com', '@evil.com', 'good.example@evil.com', 'evil.com%2f', '127.0.0.1', '[::1]', 'evil.com:443', '', 'alert(1)']
const TAILS = ['', '/x', '?next=//evil.com', '#//evil.com', '/..', '%2f..', '?a=1&b=%2F%2Fevil']

// Percent-encodes the characters a random mask picks, once or twice.
function scramble (value: string, mask: number[], twice: boolean): string {
  let out = ''
  for (let i = 0; i < value.length; i++) {
    const char = value[i]
    if ((mask[i % mask.length] ?? 0) % 3 === 0 && char.charCodeAt(0) < 0x80) {
      const escape = `%${char.charCodeAt(0).toString(16).padStart(2, '0')}`
      out += twice ? escape.replace('%', '%25') : escape
    } else {
      out += char
    }
  }
  return out
}

const hostileNext = fc.oneof(
  {
    arbitrary: fc.tuple(fc.constantFrom(...PREFIXES), fc.constantFrom(...SCHEMES), fc.array(fc.constantFrom(...SLASHES), { minLength: 0, maxLength: 4 }), fc.constantFrom(...HOSTS), fc.constantFrom(...TAILS), fc.array(fc.nat(8), { maxLength: 12 }), fc.boolean(), fc.boolean())
      .map(([prefix, scheme, slashes, host, tail, mask, encode, twice]) => {
        const raw = prefix + scheme + slashes.join('') + host + tail
        return encode ? scramble(raw, mask, twice) : raw
      }),
    weight: 6
  },
  // Starts like a local path, then anything: most of these pass, and each must stay local.
  {
    arbitrary: fc.array(fc.oneof(fc.constantFrom(...SLASHES, ...HOSTS, ...TAILS, ...SCHEMES), fc.stringMatching(/^[a-z0-9.%]{1,4}$/)), { maxLength: 6 })
      .map((pieces) => '/' + pieces.join('')),
    weight: 4
  },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 1 },
  { arbitrary: fc.string({ unit: fc.constantFrom('/', '\\', '%', '2', 'f', 'F', '5', 'c', '.', ':', 'e', ' ', '\t', '@', '?', '#'), maxLength: 24 }), weight: 2 },
  { arbitrary: fc.webUrl({ withQueryParameters: true, withFragments: true }), weight: 1 }
)

async function nextApp (): Promise<FastifyInstance> {
  const { app } = await build()
  const answer = (request: FastifyRequest): Record<string, unknown> => ({
    next: app.loginManager.nextUrl(request, '/home'),
    received: (request.query as Record<string, unknown>).next ?? (request.body as Record<string, unknown> | null)?.next
  })
  app.get('/next', answer)
  app.post('/next', answer)
  app.get('/go', (request, reply) => reply.redirect(app.loginManager.nextUrl(request, '/home'), 303))
  return app
}

test('the off-site oracle itself catches the classic open redirects', async (t) => {
  for (const bad of ['//evil.com', '///evil.com', '/\\evil.com', '\t//evil.com', 'https:evil.com', 'javascript:alert(1)', '/%2F%2Fevil.com', '/%252F%252Fevil.com', '/%5Cevil.com', '/a/..//evil.com', '/%2e%2e//evil.com', 'http://evil.com']) {
    t.not(leavesSite(bad), null, JSON.stringify(bad))
  }
  for (const good of ['/', '/a/b?c=d', '/a//b', '/search?q=//x', '/%E6%97%A5']) t.equal(leavesSite(good), null, JSON.stringify(good))
})

test('next: nothing generated leads off-site, through the query, a JSON body or a real redirect', async (t) => {
  const app = await nextApp()
  let accepted = 0
  await holds(t, 'hostile next values', fc.asyncProperty(hostileNext, async (value) => {
    const results: string[] = []
    if (value.isWellFormed()) {
      const viaQuery = await app.inject(`/next?next=${encodeURIComponent(value)}`)
      if (viaQuery.statusCode !== 200 || viaQuery.json().received !== value) throw new Error(`query: ${viaQuery.statusCode} ${viaQuery.body}`)
      results.push(viaQuery.json().next)
      const go = await app.inject(`/go?next=${encodeURIComponent(value)}`)
      if (go.statusCode !== 303) throw new Error(`redirect answered ${go.statusCode}: ${go.body}`)
      results.push(go.headers.location as string)
    }
    const viaJson = await app.inject({ method: 'POST', url: '/next', payload: { next: value } })
    if (viaJson.statusCode !== 200 || viaJson.json().received !== value) throw new Error(`JSON: ${viaJson.statusCode} ${viaJson.body}`)
    results.push(viaJson.json().next)
    if (new Set(results).size !== 1) throw new Error(`different answers: ${JSON.stringify(results)}`)
    const [result] = results
    if (result === '/home') return
    accepted++
    if (!/^[\u0021-\u007e]+$/.test(result)) throw new Error(`not a clean ASCII Location: ${JSON.stringify(result)}`)
    const why = leavesSite(result)
    if (why !== null) throw new Error(`${JSON.stringify(value)} gave ${JSON.stringify(result)}: ${why}`)
  }), 600)
  t.ok(accepted > 0, `${accepted} generated values were local paths and came back`)
})

test('next: local paths, with queries and non-ASCII characters, come back unchanged (non-ASCII percent-encoded)', async (t) => {
  const app = await nextApp()
  const segment = fc.oneof(
    fc.stringMatching(/^[A-Za-z0-9_~!$&'()*+,;=:@-][A-Za-z0-9._~!$&'()*+,;=:@-]{0,11}$/),
    fc.constantFrom('é', 'ü', '日本', '🎉', 'ß', '..', '.')
  )
  const query = fc.array(fc.tuple(fc.stringMatching(/^[A-Za-z0-9_-]{1,6}$/), fc.stringMatching(/^[A-Za-z0-9_./?:-]{0,8}$/)), { maxLength: 3 })
  const path = fc.tuple(fc.array(segment, { minLength: 0, maxLength: 5 }), query, fc.boolean())
    .map(([segments, pairs, slash]) => '/' + segments.join('/') + (slash && segments.length > 0 ? '/' : '') + (pairs.length > 0 ? '?' + pairs.map(([k, v]) => `${k}=${v}`).join('&') : ''))
  await holds(t, 'local paths', fc.asyncProperty(path, async (value) => {
    const response = await app.inject({ method: 'POST', url: '/next', payload: { next: value } })
    const { next } = response.json()
    // eslint-disable-next-line no-control-regex
    const expected = /^[\u0000-\u007f]*$/.test(value) ? value : encodeURI(value)
    if (next !== expected) throw new Error(`${JSON.stringify(value)} gave ${JSON.stringify(next)}`)
    if (decodeURI(next) !== value) throw new Error('does not decode back')
    if (leavesSite(next) !== null) throw new Error(leavesSite(next) as string)
  }))
})
