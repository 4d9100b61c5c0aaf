import { before, test } from 'tap'
import fc from 'fast-check'
import { cookieValues, readLoginCookies } from '../lib/cookie-header'
import { loadCookieParser, parseCookieHeader } from './helpers'

before(loadCookieParser)

// The login cookies are read from the header without parsing all of it:
// what they read must be what @fastify/cookie's parser reads.
const PIECES = ['account', 'fresh', 'accounts', 'xaccount', 'account_fresh', '=', ';', ' ', '\t', '"', '%', '%41', '%E0%A4%A', 'a2.MQ', '.', 'x']
const header = fc.array(fc.oneof(fc.constantFrom(...PIECES), fc.string({ maxLength: 3 })), { maxLength: 30 }).map((pieces) => pieces.join(''))

test('the login cookies read as the parser reads them, and a name sent twice is seen', async (t) => {
  fc.assert(fc.property(header, (value) => {
    const sent = readLoginCookies(value, 'account', 'fresh')
    const parsed = parseCookieHeader(value)
    const pairs = (name: string): number => value.split(';').filter((pair) => new RegExp(`^[ \\t]*${name}[ \\t]*=`).test(pair)).length
    return sent.account === (Object.hasOwn(parsed, 'account') ? parsed.account : undefined) &&
      sent.isFresh === (Object.hasOwn(parsed, 'fresh') ? parsed.fresh : undefined) &&
      sent.duplicated === (pairs('account') > 1 || pairs('fresh') > 1) &&
      cookieValues(value, 'account').length === pairs('account')
  }), { numRuns: 5000 })
  t.same(readLoginCookies(undefined, 'account', 'fresh'), { account: undefined, isFresh: undefined, duplicated: false })
  t.same(readLoginCookies('x=1; account = a%41 ;fresh=b', 'account', 'fresh'), { account: 'aA', isFresh: 'b', duplicated: false })
  t.same(readLoginCookies('v=account=x; account_fresh=y', 'account', 'fresh'), { account: undefined, isFresh: undefined, duplicated: false }, 'a name inside a value, or a longer name, is not the cookie')
  t.same(readLoginCookies('account=%E0%A4%A; account=b', 'account', 'fresh'), { account: '%E0%A4%A', isFresh: undefined, duplicated: true }, 'broken escapes stay as they came')
  t.same(cookieValues('account="q"; account=r; account="', 'account'), ['q', 'r', '"'], 'a logout reads quoted values too')
})
