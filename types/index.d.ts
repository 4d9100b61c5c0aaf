import type { EventEmitter } from 'node:events'
import type {
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  FastifySchema,
  FastifyTypeProviderDefault,
  HookHandlerDoneFunction,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerBase,
  RawServerDefault,
  RouteGenericInterface
} from 'fastify'

// The one place that teaches Fastify about fastify-login's decorators.
declare module 'fastify' {
  // Generic over the server, so that an http2 app gets guards and methods
  // for its own request and reply types. (An augmentation repeats every type
  // parameter of the interface, used or not.)
  /* eslint-disable @typescript-eslint/no-unused-vars */
  interface FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider> {
    loginManager: fastifyLogin.LoginManager<RawServer, RawRequest, RawReply>
  }

  // The type parameters are Fastify's own: ContextConfig is the route's
  // `config`, so a route declared with `config: { login: 'required' }` (or
  // 'fresh') has the app's user type as its `currentUser`. A route given its
  // types explicitly (`app.get<{ Params: … }>`) gets no inferred `config`
  // type: it names it there, as `Config`.
  interface FastifyRequest<RouteGeneric, RawServer, RawRequest, SchemaCompiler, TypeProvider, ContextConfig, Logger, RequestType> {
    /**
     * The logged-in user, or the anonymous user. Resolved on first read and
     * cached for the request. With an asynchronous user loader, a guard or
     * `await request.loadUser()` must run first. On a route declared with
     * `config: { login: 'required' }` or `'fresh'`, it is the app's user;
     * a route with explicit type arguments says so in them too:
     * `app.get<{ Params: …, Config: { login: 'required' } }>(…)`.
     */
    readonly currentUser: fastifyLogin.CurrentUserOf<ContextConfig, RouteGeneric>
    /** Resolves `currentUser` (once per request) and returns it. */
    loadUser (): Promise<fastifyLogin.CurrentUserOf<ContextConfig, RouteGeneric>>
    /** True only while the login was made in this browser session. */
    readonly isFresh: boolean
  }
  /* eslint-enable @typescript-eslint/no-unused-vars */

  interface RouteGenericInterface {
    /**
     * The route's `config` type, for a route whose types are given
     * explicitly (TypeScript then infers none of them, the config included):
     * `app.get<{ Params: …, Config: { login: 'required' } }>(…)` types
     * `request.currentUser` as the app's user, as `config: { login:
     * 'required' }` does on a route whose types are inferred.
     */
    Config?: FastifyContextConfig
  }

  interface FastifyContextConfig {
    /**
     * Guards the route: `'required'`, `'prohibited'` or `'fresh'`, or an
     * object that also overrides where to redirect and what to say; or
     * `'optional'`, which lets everyone through with `currentUser` resolved.
     */
    login?: fastifyLogin.LoginRouteConfig
  }
}

type FastifyLogin = FastifyPluginAsync<fastifyLogin.FastifyLoginOptions>

// `true` where the route's config type, inferred (`ContextConfig`) or given
// in its type arguments (`RouteGeneric['Config']`), says that only logged-in
// users reach it. (Not exported: a name of the package's would shadow an
// app's own inside `declare module 'fastify-login'`.)
type IsLoggedIn<ContextConfig, RouteGeneric> = [ContextConfig] extends [LoggedInConfig]
  ? true
  : RouteGeneric extends { Config: LoggedInConfig } ? true : false
interface LoggedInConfig {
  login: 'required' | 'fresh' | { mode: 'required' | 'fresh' }
}

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
  export type LoginUser = LoginTypes extends { user: infer U } ? U : UserMixin
  /** The logged-out user's type. */
  export type LoginAnonymousUser = LoginTypes extends { anonymousUser: infer A } ? A : AnonymousUserMixin
  /**
   * What `request.currentUser` holds; `isAuthenticated` tells them apart. It
   * is the app's user alone on a route whose config type says `login:
   * 'required'` or `'fresh'`: inferred from `config: { login: 'required' }`,
   * or, on a route whose types are given explicitly, named in them as
   * `app.get<{ Params: …, Config: { login: 'required' } }>(…)`.
   */
  export type LoginCurrentUser = LoginUser | LoginAnonymousUser
  /**
   * What `request.currentUser` holds on a route whose `config` is
   * `ContextConfig` and whose type arguments are `RouteGeneric`: the app's
   * user where the route's own guard lets only logged-in users through
   * (`login: 'required'` or `'fresh'`, in the config or in the type
   * arguments' `Config`), else `LoginCurrentUser`.
   */
  export type CurrentUserOf<ContextConfig, RouteGeneric = RouteGenericInterface> = IsLoggedIn<ContextConfig, RouteGeneric> extends true
    ? LoginUser
    : LoginCurrentUser
  /** What `loginInfo(request)` returns: never null where `currentUser` is the app's user. */
  export type LoginInfoOf<ContextConfig, RouteGeneric = RouteGenericInterface> = IsLoggedIn<ContextConfig, RouteGeneric> extends true
    ? LoginInfo
    : LoginInfo | null

  /** A request of any route of a server of type `RawServer`. */
  export type LoginRequest<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>
  > = FastifyRequest<RouteGenericInterface, RawServer, RawRequest>
  /** A reply of any route of a server of type `RawServer`. */
  export type LoginReply<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>
  > = FastifyReply<RouteGenericInterface, RawServer, RawRequest, RawReply>

  export type MaybePromise<T> = T | Promise<T>
  export type UserLoader = (id: string, request: FastifyRequest) => MaybePromise<LoginUser | null | undefined>
  /** Finds the user from the request itself (an API key, a bearer token); never sets cookies. */
  export type RequestLoader = (request: FastifyRequest) => MaybePromise<LoginUser | null | undefined>
  /** Answers a request that a guard refused; may send the reply or return a payload. */
  export type GuardHandler = (request: FastifyRequest, reply: FastifyReply) => unknown
  /**
   * A route guard: use as `onRequest` or `preHandler`, or with `addHook` on a
   * scope. Its request and reply are typed by their server alone: a full
   * `FastifyRequest` type here would make TypeScript infer the route's
   * `config` type from the guard (as unknown) instead of from the route's own
   * `config`, and `currentUser` would lose the user type on guarded routes.
   */
  export type Guard<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>
  > = (
    request: Pick<LoginRequest<RawServer, RawRequest>, 'raw'>,
    reply: Pick<LoginReply<RawServer, RawRequest, RawReply>, 'raw'>,
    done: HookHandlerDoneFunction
  ) => void
  /**
   * A check in @fastify/auth's shape: `done()` lets the request through,
   * `done(error)` refuses it, and @fastify/auth decides the answer.
   */
  export type AuthFunction<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>
  > = (
    request: LoginRequest<RawServer, RawRequest>,
    reply: LoginReply<RawServer, RawRequest, RawReply>,
    done: (error?: Error) => void
  ) => void
  export type Message = string | ((request: FastifyRequest) => string)

  export interface CookieNames {
    account: string
    isFresh: string
    /** Device binding's short-lived cookie (`deviceBinding`). Default `'bound'`. */
    bound: string
  }

  export interface CookieRememberMe {
    account: boolean
    isFresh: boolean
  }

  export type Secret = string | Buffer

  export type SessionProtection = 'basic' | 'strong' | false

  /**
   * `'optional'` refuses nobody: it resolves the user before the handler
   * (for asynchronous loaders) and adds `Vary: Cookie`, for pages that show
   * who is logged in.
   */
  export type GuardMode = 'required' | 'prohibited' | 'fresh' | 'optional'

  interface GuardOverrides {
    /** Where to redirect a refused request instead of the configured route. */
    route?: string | null
    /** What to answer a refused request instead of the configured message. */
    message?: Message
  }

  /** Step-up: what a fresh login must also meet on one route. */
  export interface FreshGuardOptions extends GuardOverrides {
    mode: 'fresh'
    /** Seconds since the last `loginUser` or `confirmLogin` (exactly `maxAge` passes). */
    maxAge?: number
    /** The `method` the user last proved who they were with must be one of these. */
    methods?: readonly string[]
  }

  export interface PlainGuardOptions extends GuardOverrides {
    mode: Exclude<GuardMode, 'fresh'>
  }

  export type GuardOptions = FreshGuardOptions | PlainGuardOptions

  /** What a route that refused a login as not fresh enough asked for (the `needsRefresh` event). */
  export interface FreshRequirement {
    maxAge: number | null
    methods: readonly string[] | null
  }

  export type LoginRouteConfig = GuardMode | GuardOptions

  /** A class, or a factory function, for the logged-out user. */
  export type AnonymousUserFactory = (new () => LoginAnonymousUser) | (() => LoginAnonymousUser)

  /** `anonymousUser` is required once the app declares `LoginTypes.anonymousUser`. */
  export type FastifyLoginOptions = FastifyLoginBaseOptions & (LoginTypes extends { anonymousUser: unknown }
    ? { anonymousUser: AnonymousUserFactory }
    : { anonymousUser?: AnonymousUserFactory })

  export interface FastifyLoginBaseOptions {
    /** Signs the cookies. The first signs, all verify (key rotation). Strings: 32+ characters. */
    secret?: Secret | readonly Secret[]
    userLoader?: UserLoader
    requestLoader?: RequestLoader
    cookieName?: Partial<CookieNames>
    /** Whether logins are remembered when `loginUser` is not told. Default: `{ account: false, isFresh: false }`. */
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
    /** Where `freshLoginRequired` redirects a login that is not fresh. */
    refreshRoute?: string | null
    needsRefreshMessage?: Message
    /** Query field that carries the original URL on redirects; `false` leaves it off. Default `'next'`. */
    nextField?: string | false
    /** Methods the guards let through, for CORS preflights. Default `['OPTIONS']`. */
    exemptMethods?: readonly string[]
    /** Binds a login to the client's user agent and IP. Default `'basic'`. */
    sessionProtection?: SessionProtection
    /** Re-issue a remembered login with a new expiry on each guarded request. Default `false`. */
    cookieRefreshEachRequest?: boolean
    /** Seconds a login that is not remembered lasts on the server. Default: 1 day. */
    sessionDuration?: number
    /** Seconds a fresh login stays fresh after it was made or confirmed; `null` for no limit. Default 3600. */
    freshDuration?: number | null
    /** Seconds without use after which a login is refused; `null` (default) for none. */
    idleTimeout?: number | null
    /** Where logins are recorded, so the server can end them. Default: none (stateless). */
    store?: LoginStore
    /**
     * For a store that cannot report revocations (no `subscribe`): seconds a
     * store read may be reused, and so how stale a revocation may be. Default 0.
     */
    storeCacheWindow?: number
    /** Origins besides the request's own that `crossOriginProtection` lets through. */
    trustedOrigins?: readonly string[]
    /**
     * The login area this registration is (an admin area, a customer area): its cookies open only
     * it, and with a store its logins are its own. Default: from the cookie names, path and domain.
     */
    realm?: string
    /**
     * With a store: live logins a user may have; logging in past it ends the user's least recently
     * used login (`loginEvicted`). A number, or `(user) => number`. Default 100.
     */
    maxLogins?: number | ((user: LoginUser) => number)
    /**
     * With a store: re-issue the account cookie of a login every `every` seconds, and end a login
     * whose older cookie comes back more than `grace` seconds after a newer one was first used,
     * when it can only be someone else's copy (docs/stolen-cookies.md).
     * Default with a store that can: `{ every: 600, grace: 60 }`; `false` turns it off.
     */
    rotation?: RotationOptions | false
    /**
     * With a store: bind each login made over https to a key of the browser that made it (Device
     * Bound Session Credentials, in Chrome): a copy of its cookies is worth nothing without the key.
     * Browsers without it log in as before. `true` for the defaults. Default `false`.
     */
    deviceBinding?: DeviceBindingOptions | boolean
  }

  export interface RotationOptions {
    every?: number
    grace?: number
  }

  export interface DeviceBindingOptions {
    /**
     * Where the plugin answers the browser's registration and refresh (`<path>/register`,
     * `<path>/refresh`), under `cookiePath`. Default: `cookiePath` + `device-binding`.
     */
    path?: string
    /**
     * Seconds the bound cookie lives: the browser proves it holds the key once per this time
     * (at most) while the login is used. Default 600; under 300 only for tests.
     */
    credentialDuration?: number
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
    readonly refreshRoute: string | null
    readonly needsRefreshMessage: Message
    readonly nextField: string | false
    readonly exemptMethods: readonly string[]
    readonly sessionProtection: SessionProtection
    readonly cookieRefreshEachRequest: boolean
    readonly sessionDuration: number
    readonly freshDuration: number | null
    readonly idleTimeout: number | null
    readonly storeCacheWindow: number
    readonly trustedOrigins: readonly string[]
    readonly realm: string
    readonly maxLogins: number | ((user: LoginUser) => number)
    readonly rotation: Readonly<Required<RotationOptions>> | false
    readonly deviceBinding: Readonly<Required<DeviceBindingOptions>> | false
    readonly anonymousUser: AnonymousUserFactory
  }

  export interface LoginUserOptions {
    /**
     * Make the account cookie outlive the browser session, for `cookieDuration`.
     * Default: `cookieRememberMe.account`, itself false: a browser-session login.
     */
    remember?: boolean
    /** Seconds this login lasts, instead of `cookieDuration`. */
    duration?: number
    /** Start the login fresh. Default `true`. */
    fresh?: boolean
    /** Log in a user whose `isActive` is false. Default `false`. */
    force?: boolean
    /**
     * How the user proved who they are (`'password'`, `'passkey'`, `'oidc'`…): 1 to 32 characters of
     * letters, digits, `_`, `:` and `-`. Kept in the cookie and the record. Default `null`.
     */
    method?: string | null
  }

  export interface ConfirmLoginOptions {
    /** How the user proved who they are again; without it, the login's method becomes `null`. */
    method?: string | null
  }

  /** How the current user logged in: `app.loginManager.loginInfo(request)`. */
  export interface LoginInfo {
    /** The login cookie, or the request loader (which sets no cookie). */
    source: 'cookie' | 'request'
    /** The login's id (as in `listLogins`); null for a user of the request loader. */
    loginId: string | null
    /** The login outlives the browser session. */
    remembered: boolean
    fresh: boolean
    /** Seconds since the epoch; null for a user of the request loader. */
    issuedAt: number | null
    expiresAt: number | null
    /** How the user last proved who they are (`loginUser` or `confirmLogin`'s `method`). */
    method: string | null
    /** When, in seconds since the epoch: the last `loginUser` or `confirmLogin` of this login. */
    authenticatedAt: number | null
    /** The login is bound to a key of its browser (`deviceBinding`), and this request proved it. */
    bound: boolean
  }

  export interface CookiesForOptions {
    remember?: boolean
    fresh?: boolean
    duration?: number
    /** The client the cookies are bound to (session protection); defaults match `app.inject`. */
    userAgent?: string
    ip?: string
  }

  /**
   * One login, as a store keeps it. Times are seconds since the epoch;
   * `userId` is the user's `getId()`; `userAgent` is cut to 512 characters.
   * A store keeps every field as it was given, and changes only what its
   * methods say.
   */
  export interface LoginRecord {
    loginId: string
    userId: string
    createdAt: number
    lastSeenAt: number
    expiresAt: number
    remembered: boolean
    userAgent: string
    ip: string
    /** How the user last proved who they are (`loginUser`/`confirmLogin`'s `method`), or null. */
    method: string | null
    /** The last `loginUser` or `confirmLogin` of this login. */
    authenticatedAt: number
    /** Rotation: the newest generation of the account cookie used so far, and when it was first used. */
    generation: number
    generationUsedAt: number
    /**
     * Rotation: which cookie of that generation was the one used, as the plugin names it (`advanceGeneration`'s
     * `cookie`), or null: another cookie of the same generation issued more than `rotation.grace` apart
     * comes from another party. Opaque to a store, which keeps it as given.
     */
    generationCookie?: string | null
    /** The login area (`realm`) the login belongs to, as the plugin names it in the store. */
    realm: string
    /**
     * Device binding: the public key the browser registered for this login (a JSON web key, as
     * JSON: `{"kty":"EC","crv":"P-256","x":…,"y":…}` or `{"kty":"RSA","n":…,"e":…}`), or null.
     */
    deviceKey: string | null
    /** Device binding: the id of the browser's bound session (not a secret), or null. */
    deviceSession: string | null
    /** Device binding: when (milliseconds since the epoch) the newest refresh challenge used was issued. */
    deviceChallengeAt: number
    /** The login is bound to its browser's key: the plugin sets it from `deviceKey`, a store need not keep it. */
    bound: boolean
  }

  /** A login that was ended, as a store reports it to every instance. */
  export interface Revocation {
    loginId: string
    userId: string
    /** When the login would have expired: it need not be remembered after that. */
    expiresAt: number
  }

  /** What a store tells the plugin about revocations made anywhere. */
  export interface LoginStoreListener {
    /** These logins were ended (on any instance). Login ids alone are accepted from older stores. */
    revoked (revocations: ReadonlyArray<Revocation | string>): void
    /**
     * `false`: revocations may be missed from now on (the connection that hears
     * them dropped), so cached logins must not be trusted. `true`: heard again;
     * anything cached before must be dropped.
     */
    listening (listening: boolean): void
    /**
     * Proof of hearing: every revocation completed anywhere before `at` (this process's
     * `performance.now()`) has been reported. `Infinity`: the store reports every revocation
     * before its `delete` returns (a store in this process's memory).
     */
    heard (at: number): void
    /**
     * The store lost revocations (a Redis that restarted without its data): every login issued
     * before `since` (seconds since the epoch) must be checked against its record.
     */
    trustedSince (since: number): void
    /** A setting of the store's server that breaks a promise (logged once by the plugin). */
    warn? (message: string): void
  }

  /**
   * Where logins are kept when the server must be able to end them. Every
   * method may answer with a value or a promise; a store that answers
   * synchronously keeps `request.currentUser` synchronous. The plugin passes
   * the user id along with the login id so stores can keep a user's logins
   * together (a Redis Cluster hash slot, a table partition).
   */
  export interface LoginStore {
    create (record: LoginRecord): MaybePromise<void>
    /** The record, or null when there is none (gone or expired). */
    get (loginId: string, userId: string): MaybePromise<LoginRecord | null | undefined>
    /** Moves `lastSeenAt`, and `expiresAt` when given, forward (never back), only if the login exists. */
    touch (loginId: string, lastSeenAt: number, userId: string, expiresAt?: number): MaybePromise<void>
    /** `true` if the login existed. */
    delete (loginId: string, userId: string): MaybePromise<boolean>
    /** The user's live logins, newest first. */
    list (userId: string): MaybePromise<LoginRecord[]>
    /**
     * Optional, unused since realms: deletes every login of the user but `exceptLoginId`. The plugin
     * lists and deletes one by one instead, so that only its own realm's logins are ended.
     */
    deleteAll? (userId: string, exceptLoginId?: string): MaybePromise<number>
    /**
     * Optional: report revocations made anywhere. Called once, at `ready`. A store that first
     * reports every ended login that has not expired (`revoked`), then `listening(true)`, then
     * proves what it heard (`heard`) at least every 100 ms, gives the plugin its fast path: a
     * login is checked against the ended logins this process heard of, without a store read.
     * Without `subscribe`, a login is read from the store on every request, or reused for
     * `storeCacheWindow` seconds.
     */
    subscribe? (listener: LoginStoreListener): MaybePromise<void>
    /**
     * Optional: records that generation `generation` of the login's cookie was used, first at
     * `usedAt`, by the cookie `cookie` (kept as `generationCookie`: set it, or clear it when not given),
     * if the record has an older generation (and then answers `true`). For `rotation`.
     */
    advanceGeneration? (loginId: string, userId: string, generation: number, usedAt: number, cookie?: string): MaybePromise<boolean>
    /**
     * Optional: the id of the realm registered under any of `tags` (registering the others under
     * it too), or a new random id registered under all of them. Lets two apps share a store.
     */
    realm? (tags: readonly string[]): MaybePromise<string>
    /**
     * Optional, for `deviceBinding`: keeps `deviceKey` and `deviceSession` in the record if the login
     * exists and has no key yet (and then answers `true`): a login is bound once, to one key.
     */
    bind? (loginId: string, userId: string, deviceKey: string, deviceSession: string): MaybePromise<boolean>
    /**
     * Optional, for `deviceBinding`: sets `deviceChallengeAt` to `issuedAt` if the login exists and its
     * `deviceChallengeAt` is older (and then answers `true`): each refresh challenge works once.
     */
    useChallenge? (loginId: string, userId: string, issuedAt: number): MaybePromise<boolean>
    /** Optional: called when the app closes (stop listening; never closes a client it was given). */
    close? (): MaybePromise<void>
  }

  export interface RedisStoreOptions {
    /** An ioredis `Redis` or `Cluster` client (what `@fastify/redis` decorates as `app.redis`). */
    client: unknown
    /** Prefix of every key and of the revocation channel. Default `'fastify-login:'`. */
    prefix?: string
  }

  /** The events of `app.loginManager` and their arguments. */
  export interface LoginEvents {
    login: [request: FastifyRequest, user: LoginUser]
    logout: [request: FastifyRequest, user: LoginUser]
    loginConfirmed: [request: FastifyRequest, user: LoginUser]
    unauthorized: [request: FastifyRequest]
    needsRefresh: [request: FastifyRequest, requirement: FreshRequirement]
    userLoadedFromCookie: [request: FastifyRequest, user: LoginUser]
    userLoadedFromRequest: [request: FastifyRequest, user: LoginUser]
    sessionProtected: [request: FastifyRequest]
    /** A login cookie came more than once (a cookie planted by another site): the request is anonymous. */
    duplicateCookie: [request: FastifyRequest]
    /** `crossOriginProtection` refused a request sent from another origin. */
    crossOriginRefused: [request: FastifyRequest]
    /** A login was ended, here or on another instance (close its WebSockets). No request: heard from the store. */
    loginRevoked: [loginId: string, userId: string]
    /** Logging in went past `maxLogins`: this least recently used login of the user was ended. */
    loginEvicted: [request: FastifyRequest, record: LoginRecord]
    /** Rotation: an older cookie came back after a newer one was used; the login was ended everywhere. */
    loginReuseDetected: [request: FastifyRequest, record: LoginRecord]
    /** Device binding: the browser registered its key; the login is bound to it from now on. */
    loginBound: [request: FastifyRequest, record: LoginRecord]
    /**
     * Device binding: the request sent the account cookie of a bound login without a valid bound
     * cookie (a copied cookie, or a browser that could not refresh it): it is anonymous, and the
     * login is not ended.
     */
    boundProofMissing: [request: FastifyRequest]
  }

  export interface LoginManager<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>
  > extends EventEmitter<LoginEvents> {
    readonly config: LoginConfig
    userLoader (loader: UserLoader): this
    requestLoader (loader: RequestLoader): this
    unauthorizedHandler (handler: GuardHandler): this
    authorizedHandler (handler: GuardHandler): this
    needsRefreshHandler (handler: GuardHandler): this
    /** Lets only logged-in users through. */
    readonly loginRequired: Guard<RawServer, RawRequest, RawReply>
    /** Lets only anonymous users through (log-in and sign-up pages). */
    readonly loginProhibited: Guard<RawServer, RawRequest, RawReply>
    /** Lets only users who logged in during this browser session through. */
    readonly freshLoginRequired: Guard<RawServer, RawRequest, RawReply>
    /** A guard with its own redirect route or message: for a scope's `addHook`. */
    guard (options: GuardOptions): Guard<RawServer, RawRequest, RawReply>
    /**
     * For @fastify/swagger's global `transform`: `transform: app.loginManager.swaggerTransform(jsonSchemaTransform)`.
     * Routes that `config.login` guards get a transform of their own (it adds
     * the login cookie's security requirement), which swagger calls instead
     * of the global one; handed over here, that one calls it too. Returns it.
     */
    swaggerTransform<T extends (...args: any[]) => unknown> (transform: T): T
    /**
     * The logged-in user, typed as the app's user. Throws
     * `FST_LOGIN_UNAUTHORIZED` (a 401) when nobody is logged in: for routes
     * that a guard lets only logged-in users through. With an asynchronous
     * user loader, a guard or `await request.loadUser()` must run first.
     */
    user (request: LoginRequest<RawServer, RawRequest>): LoginUser
    /**
     * Logs the user in: `true`, or `false` (and no cookie) for an inactive
     * user unless `force`. A promise when the store is asynchronous: `await` it.
     */
    loginUser (request: LoginRequest<RawServer, RawRequest>, reply: LoginReply<RawServer, RawRequest, RawReply>, user: LoginUser, options?: LoginUserOptions): MaybePromise<boolean>
    /** Expires the login cookies; with a store, ends the login on the server too. A promise with an asynchronous store. */
    logoutUser (request: LoginRequest<RawServer, RawRequest>, reply: LoginReply<RawServer, RawRequest, RawReply>): MaybePromise<void>
    /**
     * Makes the current login fresh again, after the user proved who they are again, as a new login
     * (a new login id and cookie; the old cookie is ended with a store). Needs a login made with the
     * cookie. A promise with an asynchronous store: `await` it.
     */
    confirmLogin (request: LoginRequest<RawServer, RawRequest>, reply: LoginReply<RawServer, RawRequest, RawReply>, options?: ConfirmLoginOptions): MaybePromise<void>
    /**
     * How the current user logged in; `null` for an anonymous visitor. Never
     * null on a route that lets only logged-in users through (`config: {
     * login: 'required' }` or `'fresh'`).
     */
    loginInfo<RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = unknown> (
      request: FastifyRequest<RouteGeneric, RawServer, RawRequest, FastifySchema, FastifyTypeProviderDefault, ContextConfig>
    ): LoginInfoOf<ContextConfig, RouteGeneric>
    /** The `next` field of the query or body when it is a path on this site, else `fallback`. */
    nextUrl (request: LoginRequest<RawServer, RawRequest>, fallback?: string): string
    /** The cookies a login would set, for `app.inject({ cookies })` in tests. */
    cookiesFor (user: LoginUser, options?: CookiesForOptions): Promise<Record<string, string>>
    /** Refuses (403) unsafe methods and WebSocket upgrades sent by a browser from another origin: for login, logout, other state-changing routes and WebSocket routes. */
    readonly crossOriginProtection: Guard<RawServer, RawRequest, RawReply>
    /**
     * For @fastify/auth: `app.auth([app.loginManager.authenticate, apiKey], { relation: 'or' })`.
     * Calls `done()` for a logged-in user, `done(error)` with a 401
     * `FST_LOGIN_UNAUTHORIZED` otherwise (a failing loader or store: its own
     * error); it never answers the request itself, unlike the guards.
     */
    readonly authenticate: AuthFunction<RawServer, RawRequest, RawReply>
    /** The user's live logins (a user object or its id), newest first. Needs `store`. */
    listLogins (user: LoginUser | string): Promise<LoginRecord[]>
    /** Ends one login of the user; `true` if it existed. Needs `store`. */
    revokeLogin (user: LoginUser | string, loginId: string): Promise<boolean>
    /** Ends every login of the request's user but the request's own; how many. Needs `store`. */
    revokeOtherLogins (request: LoginRequest<RawServer, RawRequest>): Promise<number>
    /** Ends every login of the user; how many. Needs `store`. */
    revokeAllLogins (user: LoginUser | string): Promise<number>
  }

  /** Give it an `id` (a field or a getter), or override `getId()`. */
  export class UserMixin {
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

  /** Logins in this process's memory: tests and single-instance apps. */
  export function memoryStore (): LoginStore
  /** Logins in Redis, through the ioredis client (or Cluster) the app gives. */
  export function redisStore (options: RedisStoreOptions): LoginStore

  /**
   * The plugin, as the default import and `fastifyLogin` give it: the classes
   * and stores hang off it too, so `fastifyLogin.UserMixin` works with every
   * import form.
   */
  export type FastifyLoginPlugin = FastifyLogin & {
    readonly UserMixin: typeof UserMixin
    readonly AnonymousUserMixin: typeof AnonymousUserMixin
    readonly memoryStore: typeof memoryStore
    readonly redisStore: typeof redisStore
  }

  export const fastifyLogin: FastifyLoginPlugin
  export { fastifyLogin as default }
}

declare function fastifyLogin (...params: Parameters<FastifyLogin>): ReturnType<FastifyLogin>
export = fastifyLogin
