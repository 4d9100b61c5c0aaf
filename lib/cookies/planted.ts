// Where a copy of a login cookie planted by a same-site page can be, so
// that a response can expire it there. Browsers keep a cookie per (name,
// domain, path): a page on another port of the host can set one at another
// path, a sibling subdomain one for a parent domain, and the browser then
// sends it beside the real one, which makes every request anonymous (a
// login cookie sent twice is no login) for as long as the copy lives. The
// real cookie's own place is never among these: expiring it there would
// log the user out.

export interface Place {
  // null: host-only, no Domain attribute.
  readonly domain: string | null
  readonly path: string
}

// The paths of the request's own path and its parents, root first: those
// are the paths whose cookies this request carried. Deeper ones would only
// lengthen the response.
const MAX_PATHS = 8
// The parent domains, from the registrable one down.
const MAX_PARENTS = 3
// What may go into a Path attribute as it is.
const PATH_SAFE = /^[\x21-\x3a\x3c-\x7e]+$/
// A DNS name of at least two labels; an IP address has no parent domains.
const DNS_NAME = /^(?=.*[a-z-])[a-z0-9-]+(\.[a-z0-9-]+)+$/

export function plantedPlaces (url: string, hostname: string, cookiePath: string, cookieDomain: string | undefined): Place[] {
  const host = hostname.toLowerCase()
  const domains: Array<string | null> = [null]
  if (DNS_NAME.test(host)) {
    const labels = host.split('.')
    // From the registrable domain (two labels, the shortest a browser lets a
    // page set) down to the host itself.
    for (let count = 2; count < labels.length && count < 2 + MAX_PARENTS; count++) domains.push(labels.slice(-count).join('.'))
    domains.push(host)
  }
  // Browsers file a host-only cookie apart from one with Domain= the host
  // (Chromium, Firefox and WebKit key the second with a leading dot): each
  // is a place of its own. An apex site's real cookie is host-only, and a
  // sibling's copy lives at Domain= the apex.
  const realDomain = cookieDomain === undefined ? null : cookieDomain.toLowerCase().replace(/^\./, '')
  const places: Place[] = []
  for (const path of pathsOf(url)) {
    for (const domain of domains) {
      if (path === cookiePath && domain === realDomain) continue
      places.push({ domain, path })
    }
  }
  return places
}

// '/a/b/c' → '/', '/a', '/a/', '/a/b', '/a/b/', '/a/b/c': each path a cookie
// sent to that URL can have (RFC 6265, 5.1.4).
function pathsOf (url: string): string[] {
  const end = url.search(/[?#]/)
  const path = end === -1 ? url : url.slice(0, end)
  const paths = new Set(['/'])
  for (let at = path.indexOf('/', 1); paths.size < MAX_PATHS; at = path.indexOf('/', at + 1)) {
    if (at === -1) {
      paths.add(path)
      break
    }
    paths.add(path.slice(0, at))
    paths.add(path.slice(0, at + 1))
  }
  return [...paths].filter((candidate) => candidate.startsWith('/') && PATH_SAFE.test(candidate)).slice(0, MAX_PATHS)
}
