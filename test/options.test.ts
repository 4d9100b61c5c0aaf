import { test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Fastify from 'fastify'
import ts from 'typescript'
import fastifyLogin from '../lib/index'
import { OPTIONS, type Option } from '../lib/options/table'
import { SECRET } from './helpers'

const loader = (): null => null

async function registering (options: Record<string, unknown>): Promise<void> {
  const app = Fastify()
  app.register(fastifyLogin, { secret: SECRET, userLoader: loader, ...options } as never)
  await app.ready()
}

test('a misspelt option fails at register, naming the option it is close to', async (t) => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ idleTimout: 900 }, 'fastify-login: option `idleTimout` is unknown: did you mean `idleTimeout`? (a misspelt option is refused, since it would silently keep the default).'],
    [{ IdleTimeout: 900 }, 'did you mean `idleTimeout`?'],
    [{ sesionProtection: 'strong' }, 'did you mean `sessionProtection`?'],
    [{ cookeiSecure: true }, 'did you mean `cookieSecure`?'],
    [{ cookieName: { acount: 'admin' } }, 'option `cookieName.acount` is unknown: did you mean `cookieName.account`?'],
    [{ cookieRememberMe: { isfresh: true } }, 'option `cookieRememberMe.isfresh` is unknown: did you mean `cookieRememberMe.isFresh`?'],
    [{ storeCacheWindows: 5 }, 'did you mean `storeCacheWindow`?'],
    [{ maxAge: 60 }, 'option `maxAge` is unknown: the README\'s Options table lists the options'],
    [{ cookieName: { session: 'sid' } }, 'option `cookieName.session` is unknown: `cookieName` takes `account` and `isFresh`']
  ]
  for (const [options, message] of cases) {
    const error = await registering(options).then(() => null, (error: Error & { code?: string }) => error)
    t.equal(error?.code, 'FST_LOGIN_INVALID_OPTION', JSON.stringify(options))
    t.ok(error?.message.includes(message), `${JSON.stringify(options)}: ${error?.message}`)
  }
})

test('an object-valued option given anything but an object fails at register', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ cookieName: 'admin' }, /`cookieName` must be an object such as \{ account: 'account', isFresh: 'fresh', bound: 'bound' \}, not a string/],
    [{ cookieName: ['admin'] }, /`cookieName` must be an object .* not an array/],
    [{ cookieRememberMe: false }, /`cookieRememberMe` must be an object such as \{ account: false, isFresh: false \}, not a boolean/]
  ]
  for (const [options, message] of cases) {
    await t.rejects(registering(options), { code: 'FST_LOGIN_INVALID_OPTION', message }, JSON.stringify(options))
  }
})

test('every option the plugin documents is known, and so are the options of Fastify\'s register', async (t) => {
  const app = Fastify()
  await app.register(fastifyLogin, {
    secret: SECRET,
    userLoader: loader,
    requestLoader: loader,
    store: fastifyLogin.memoryStore(),
    anonymousUser: fastifyLogin.AnonymousUserMixin,
    trustedOrigins: ['https://app.example.com'],
    logLevel: 'warn',
    prefix: '/ignored'
  } as never)
  await t.resolves(async () => { await app.ready() })
  // null and undefined take the default where null means nothing else.
  const defaults = Fastify()
  await defaults.register(fastifyLogin, { secret: SECRET, userLoader: loader, cookieDuration: null, cookieName: { account: null, isFresh: undefined } } as never)
  t.equal(defaults.loginManager.config.cookieDuration, 60 * 24 * 60 * 60)
  t.same(defaults.loginManager.config.cookieName, { account: 'account', isFresh: 'fresh', bound: 'bound' })
})

// The names types/index.d.ts declares in an interface of the fastifyLogin namespace.
function declaredKeys (name: string): string[] {
  const file = join(__dirname, '..', 'types', 'index.d.ts')
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
  let found: ts.InterfaceDeclaration | undefined
  const visit = (node: ts.Node): void => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === name) found = node
    ts.forEachChild(node, visit)
  }
  visit(source)
  if (found === undefined) throw new Error(`types/index.d.ts declares no interface ${name}`)
  return found.members.map((member) => (member.name as ts.Identifier).text).sort()
}

test('the option table and types/index.d.ts name the same options', async (t) => {
  const table = Object.keys(OPTIONS).sort()
  // anonymousUser is declared beside the interface, required once the app types its anonymous user.
  t.same(table, [...declaredKeys('FastifyLoginBaseOptions'), 'anonymousUser'].sort(), 'every option of FastifyLoginBaseOptions has its entry, and no entry is undeclared')
  const shown = Object.entries(OPTIONS).filter(([, option]) => 'check' in option).map(([name]) => name).sort()
  t.same(shown, declaredKeys('LoginConfig'), 'the entries with a default and a check are the keys of LoginConfig')
  t.same(Object.keys((OPTIONS.cookieName as Option<unknown>).fields ?? {}).sort(), declaredKeys('CookieNames'))
  t.same(Object.keys((OPTIONS.cookieRememberMe as Option<unknown>).fields ?? {}).sort(), declaredKeys('CookieRememberMe'))
})
