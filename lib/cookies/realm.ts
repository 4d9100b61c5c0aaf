// A realm is one login area of an app (a customer area, an admin area): its
// cookies are signed with a key of its own (signing.ts), and with a store its
// logins are its own (logins/records.ts, `realm`). It is named by the `realm` option,
// or by where its cookies live: another name, path or domain is another area.

// The realm of the default cookies, whose key is the one cookies were signed
// with before realms existed: upgrading logs nobody out.
export const DEFAULT_REALM = 'account fresh / '

export function defaultRealm (names: { account: string, isFresh: string }, path: string, domain: string | undefined): string {
  return `${names.account} ${names.isFresh} ${path} ${domain ?? ''}`
}
