import type {
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler
} from 'fastify'

// The one place that teaches Fastify about fastify-login's decorators.
declare module 'fastify' {
  interface FastifyInstance {
    loginManager: fastifyLogin.LoginManager
  }

  interface FastifyRequest {
    /**
     * The logged-in user, or the anonymous user. Resolved on first read and
     * cached for the request. With an asynchronous user loader, a guard or
     * `await request.loadUser()` must run first.
     */
    readonly currentUser: fastifyLogin.CurrentUser
    /** Resolves `currentUser` (once per request) and returns it. */
    loadUser (): Promise<fastifyLogin.CurrentUser>
    /** True only while the login was made in this browser session. */
    readonly isFresh: boolean
  }
}

type FastifyLogin = FastifyPluginAsync<fastifyLogin.FastifyLoginOptions>

declare namespace fastifyLogin {
  /**
   * Apps declare their user type once, here:
   *
   * ```ts
   * declare module 'fastify-login' {
   *   interface LoginTypes { user: Student }
   * }
   * ```
   */
  export interface LoginTypes {}

  /** The app's user type (`UserMixin` until the app declares its own). */
  export type User = LoginTypes extends { user: infer U } ? U : UserMixin
  /** The logged-out user's type. */
  export type AnonymousUser = LoginTypes extends { anonymousUser: infer A } ? A : AnonymousUserMixin
  /** What `request.currentUser` holds; `isAuthenticated` tells them apart. */
  export type CurrentUser = User | AnonymousUser

  export type MaybePromise<T> = T | Promise<T>
  export type UserLoader = (id: string, request: FastifyRequest) => MaybePromise<User | null | undefined>
  /** Answers a request that a guard refused; may send the reply or return a payload. */
  export type GuardHandler = (request: FastifyRequest, reply: FastifyReply) => unknown
  /** A route guard: use as `onRequest` or `preHandler`, or with `addHook` on a scope. */
  export type Guard = onRequestHookHandler
  export type Message = string | ((request: FastifyRequest) => string)

  export interface CookieNames {
    account: string
    isFresh: string
  }

  export interface CookieRememberMe {
    account: boolean
    isFresh: boolean
  }

  export type Secret = string | Buffer

  export interface FastifyLoginOptions {
    /** Signs the cookies. The first signs, all verify (key rotation). Strings: 32+ characters. */
    secret?: Secret | Secret[]
    userLoader?: UserLoader
    cookieName?: Partial<CookieNames>
    cookieRememberMe?: Partial<CookieRememberMe>
    /** Seconds a login lasts, enforced on the server too. Default: 60 days. */
    cookieDuration?: number
    /** `'auto'` (default) sets Secure on https requests. */
    cookieSecure?: boolean | 'auto'
    cookieHttpOnly?: boolean
    cookieSameSite?: 'lax' | 'strict' | 'none'
    cookiePath?: string
    cookieDomain?: string
    loginRequiredRoute?: string | null
    loginRequiredMessage?: Message
    loginProhibitedRoute?: string | null
    loginProhibitedMessage?: Message
    /** A class, or a factory function, for the logged-out user. */
    anonymousUser?: (new () => AnonymousUser) | (() => AnonymousUser)
  }

  /** The resolved options, as `app.loginManager.config` shows them (never the secret). */
  export interface LoginConfig {
    readonly cookieName: Readonly<CookieNames>
    readonly cookieRememberMe: Readonly<CookieRememberMe>
    readonly cookieDuration: number
    readonly cookieSecure: boolean | 'auto'
    readonly cookieHttpOnly: boolean
    readonly cookieSameSite: 'lax' | 'strict' | 'none'
    readonly cookiePath: string
    readonly cookieDomain: string | undefined
    readonly loginRequiredRoute: string | null
    readonly loginRequiredMessage: Message
    readonly loginProhibitedRoute: string | null
    readonly loginProhibitedMessage: Message
    readonly anonymousUser: (new () => AnonymousUser) | (() => AnonymousUser)
  }

  export interface LoginUserOptions {
    /** Make the account cookie outlive the browser session. Default: `cookieRememberMe.account`. */
    remember?: boolean
  }

  export interface LoginManager {
    readonly config: LoginConfig
    userLoader (loader: UserLoader): this
    unauthorizedHandler (handler: GuardHandler): this
    authorizedHandler (handler: GuardHandler): this
    /** Lets only logged-in users through. */
    readonly loginRequired: Guard
    /** Lets only anonymous users through (log-in and sign-up pages). */
    readonly loginProhibited: Guard
    loginUser (request: FastifyRequest, reply: FastifyReply, user: User, options?: LoginUserOptions): boolean
    logoutUser (request: FastifyRequest, reply: FastifyReply): void
  }

  export class UserMixin {
    id?: unknown
    get isActive (): boolean
    get isAuthenticated (): true
    get isAnonymous (): false
    getId (): string
    equals (other: unknown): boolean
  }

  export class AnonymousUserMixin {
    get isActive (): false
    get isAuthenticated (): false
    get isAnonymous (): true
    getId (): null
  }

  export const fastifyLogin: FastifyLogin
  export { fastifyLogin as default }
}

declare function fastifyLogin (...params: Parameters<FastifyLogin>): ReturnType<FastifyLogin>
export = fastifyLogin
