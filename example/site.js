'use strict'

// Where the portal is served: the origin a WebAuthn ceremony and an OpenID
// provider's redirect must name. With PUBLIC_URL, that one and no other.
// Without, the address a browser used to reach this server on loopback
// (`localhost` or 127.0.0.1, at the port it listens on), and nothing else:
// the Host header is the client's word, and a page on another port of
// localhost, which shares the relying-party id `localhost`, must not have
// its passkey answers taken as the portal's.
const { isIP } = require('node:net')

const LOOPBACK = new Set(['localhost', '127.0.0.1'])

// `scheme`: 'https' when the server serves https itself (EXAMPLE_HTTPS).
function createSite (app, publicUrl, scheme) {
  const fixed = publicUrl === null ? null : new URL(publicUrl).origin
  // The port the server listens on (80 for `inject`, which has none).
  const port = () => app.server.address()?.port ?? 80

  function origin (request) {
    if (fixed !== null) return fixed
    const address = `${request.protocol}://${request.host}`
    const url = URL.canParse(address) ? new URL(address) : null
    return LOOPBACK.has(url?.hostname) && Number(url.port || 80) === port() ? url.origin : null
  }

  return {
    origin,
    // Where to send a browser that came by another address.
    home: () => fixed ?? `${scheme}://localhost:${port()}`,
    // WebAuthn's relying party: the origin's host name. Browsers refuse IP
    // addresses there, so 127.0.0.1 has none.
    relyingParty (request) {
      const site = origin(request)
      const { hostname } = new URL(site ?? 'http://0.0.0.0')
      return isIP(hostname) === 0 ? { id: hostname, origin: site } : null
    }
  }
}

module.exports = { createSite }
