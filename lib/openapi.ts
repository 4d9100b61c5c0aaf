import type { FastifyInstance } from 'fastify'
import type { LoginConfig, LoginRouteConfig } from '../types/index'

// OpenAPI documents made by @fastify/swagger: a route that `config.login`
// guards ('required', 'fresh') needs the login cookie, and its operation
// says so, with a security scheme for that cookie. @fastify/swagger has no
// way for a plugin to add a scheme to the document (fastify/fastify#4472),
// and refuses a requirement that names a scheme it does not have: a route's
// own transform (`config.swaggerTransform`), the documented way to add to
// one endpoint, is the one place that sees the document in time. Nothing
// is done in a scope without @fastify/swagger.

export const SCHEME = 'fastifyLogin'

type Schema = Record<string, unknown>
interface Document {
  components?: { securitySchemes?: Record<string, unknown> }
}
interface TransformArgs {
  schema?: Schema
  url: string
  route: unknown
  // Set for OpenAPI 3 documents; Swagger 2.0 ones get `swaggerObject`.
  openapiObject?: Document
}
interface TransformResult {
  schema?: Schema
  url?: string
}
export type SwaggerTransform = (args: TransformArgs) => TransformResult

export class OpenApiDocs {
  #cookieName: string
  // The app's global `transform`: @fastify/swagger calls a route's own
  // transform instead of it, so ours calls it for the guarded routes.
  global: SwaggerTransform | null = null

  constructor (config: LoginConfig) {
    this.#cookieName = config.cookieName.account
  }

  // Asked when a route with `config.login` is declared, in its scope.
  documents (instance: FastifyInstance, login: LoginRouteConfig): boolean {
    const mode = typeof login === 'string' ? login : login.mode
    return (mode === 'required' || mode === 'fresh') && instance.hasPlugin('@fastify/swagger')
  }

  // The transform of a guarded route, around the one it had (false: none).
  transform (own: SwaggerTransform | false | undefined): SwaggerTransform {
    return (args) => {
      const inner = own === undefined ? this.global : own === false ? null : own
      const result = inner === null ? {} : inner(args)
      const document = args.openapiObject
      // Swagger 2.0 has no apiKey in a cookie: its documents stay as they were.
      if (document === undefined) return result
      this.#declareScheme(document)
      const schema = result.schema ?? args.schema ?? {}
      // A route's own requirement is kept as it wrote it.
      if (schema.security !== undefined) return result
      return { ...result, schema: { ...schema, security: [{ [SCHEME]: [] }] } }
    }
  }

  // Once per document; a scheme of that name the app declared itself stays.
  #declareScheme (document: Document): void {
    const components = document.components ??= {}
    if (components.securitySchemes?.[SCHEME] !== undefined) return
    // A copy: the object may be the app's own swagger options.
    components.securitySchemes = { ...components.securitySchemes, [SCHEME]: { type: 'apiKey', in: 'cookie', name: this.#cookieName } }
  }
}
