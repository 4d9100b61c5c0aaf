// oidc-provider (panva) ships no types; the tests use its constructor, its
// Koa callback and plain configuration objects only.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http'
  export default class Provider {
    constructor (issuer: string, configuration: object)
    callback (): (request: IncomingMessage, response: ServerResponse) => void
  }
}
