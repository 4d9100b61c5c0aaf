import { before, test } from 'tap'
import fc from 'fast-check'
import { cookieValues, readLoginCookies } from '../lib/cookies/header'
import { loadCookieParser, parseCookieHeader } from './helpers'

before(loadCookieParser)

// The login cookies are read from the header without parsing all of it:
// what they read must be what @fastify/cookie's parser reads.

// Names of every kind: prefixes of each other, with dots, inherited names.
const NAMES: Array<[string, string]> = [['account', 'fresh'], ['a', 'ab'], ['ab', 'a'], ['__proto__', 'constructor'], ['a.b', 'a'], ['remember_token', '_fresh']]
const PIECES = ['account', 'fresh', 'accounts', 'xaccount', 'account_fresh', 'a', 'ab', 'a.b', '__proto__', 'constructor', 'remember_token', '_fresh', '=', ';', ' ', '\t', '"', '%', '%22', '%41', '%E0%A4%A', 'a2.MQ', '.', 'x']
const header = fc.array(fc.oneof(fc.constantFrom(...PIECES), fc.string({ maxLength: 3 })), { maxLength: 30 }).map((pieces) => pieces.join(''))

// What the parser makes of each pair named `name`, in order (it keeps only
// the first: the others are read pair by pair).
function parsedValues (value: string, name: string): string[] {
  return value.split(';')
    .filter((pair) => pair.includes('=') && pair.slice(0, pair.indexOf('=')).trim() === name)
    .map((pair) => parseCookieHeader(pair)[name] as string)
}

test('the login cookies read as the parser reads them, and a name sent twice is seen', async (t) => {
  fc.assert(fc.property(header, fc.constantFrom(...NAMES), (value, [account, fresh]) => {
    const sent = readLoginCookies(value, account, fresh)
    const parsed = parseCookieHeader(value)
    const accounts = parsedValues(value, account)
    const freshes = parsedValues(value, fresh)
    const distinct = new Set(accounts).size
    return sent.account === (Object.hasOwn(parsed, account) ? parsed[account] : undefined) &&
      sent.isFresh === (Object.hasOwn(parsed, fresh) ? parsed[fresh] : undefined) &&
      sent.account === accounts[0] && sent.isFresh === freshes[0] &&
      sent.duplicated === (accounts.length > 1 || freshes.length > 1) &&
      cookieValues(value, account).length === distinct
  }), { numRuns: 5000 })
  t.same(readLoginCookies(undefined, 'account', 'fresh'), { account: undefined, isFresh: undefined, duplicated: false })
  t.same(readLoginCookies('x=1; account = a%41 ;fresh=b', 'account', 'fresh'), { account: 'aA', isFresh: 'b', duplicated: false })
  t.same(readLoginCookies('v=account=x; account_fresh=y', 'account', 'fresh'), { account: undefined, isFresh: undefined, duplicated: false }, 'a name inside a value, or a longer name, is not the cookie')
  t.same(readLoginCookies('account=%E0%A4%A; account=b', 'account', 'fresh'), { account: '%E0%A4%A', isFresh: undefined, duplicated: true }, 'broken escapes stay as they came')
})

test('a logout reads the distinct values under the name, quoted or not, unquoted before decoding', async (t) => {
  t.same(cookieValues('account="q"; account=r; account="', 'account'), ['q', 'r', '"'])
  t.same(cookieValues('account=%22abc%22; account="%41"', 'account'), ['"abc"', 'A'], 'an encoded quote is part of the value')
  t.same(cookieValues('x=1', 'account'), [])
  t.same(cookieValues('account=a; account="a"; account=b; account=c', 'account', 2), ['a', 'b'], 'each value once, the first `limit` of them')
})
