import createError from '@fastify/error'

// Every error the plugin raises has a stable code so apps can match on it,
// and a message that says how to fix the cause.

export const FST_LOGIN_NO_SECRET = createError(
  'FST_LOGIN_NO_SECRET',
  'fastify-login: no secret to sign cookies with. Pass `secret` (at least 32 characters) to the plugin, or register @fastify/cookie with a `secret` before it.'
)

export const FST_LOGIN_WEAK_SECRET = createError(
  'FST_LOGIN_WEAK_SECRET',
  'fastify-login: `secret` %s. Use at least 32 random characters, for example `crypto.randomBytes(32).toString(\'base64\')`.'
)

export const FST_LOGIN_INVALID_OPTION = createError(
  'FST_LOGIN_INVALID_OPTION',
  'fastify-login: option `%s` %s.'
)

export const FST_LOGIN_NO_USER_LOADER = createError(
  'FST_LOGIN_NO_USER_LOADER',
  'fastify-login: no user loader. Pass `userLoader` (or `requestLoader`) to the plugin, or call `app.loginManager.userLoader(fn)` before `ready()`.'
)

export const FST_LOGIN_USER_NOT_LOADED = createError(
  'FST_LOGIN_USER_NOT_LOADED',
  'fastify-login: `request.currentUser` was read before the asynchronous user loader finished. Add a login guard to the route (`onRequest: app.loginManager.loginRequired`), or `config: { login: \'optional\' }` to a page that anyone may see, or `await request.loadUser()` first.',
  500
)

export const FST_LOGIN_NO_USER_ID = createError(
  'FST_LOGIN_NO_USER_ID',
  'fastify-login: No `id` attribute. Override `getId` or set the `id` attribute.',
  500
)

export const FST_LOGIN_NOT_LOGGED_IN = createError(
  'FST_LOGIN_NOT_LOGGED_IN',
  'fastify-login: %s needs a user logged in with the login cookie. Guard the route with `loginRequired` first.',
  500
)

export const FST_LOGIN_NOT_A_COOKIE_LOGIN = createError(
  'FST_LOGIN_NOT_A_COOKIE_LOGIN',
  'fastify-login: %s needs a login made with the login cookie, but this request\'s user came from the `requestLoader` (a bearer token, an API key), which makes no login to confirm or end. Call it only for cookie logins: `app.loginManager.loginInfo(request)?.source === \'cookie\'`.',
  500
)

export const FST_LOGIN_COOKIE_NEEDS_USER_LOADER = createError(
  'FST_LOGIN_COOKIE_NEEDS_USER_LOADER',
  'fastify-login: %s issues a login cookie, and only a `userLoader` can turn that cookie back into a user; this app has none (a `requestLoader` reads the request, never the cookie). Pass `userLoader` to the plugin, or call `app.loginManager.userLoader(fn)`.',
  500
)

export const FST_LOGIN_UNAUTHORIZED = createError(
  'FST_LOGIN_UNAUTHORIZED',
  'fastify-login: %s found nobody logged in: %s.',
  401
)

export const FST_LOGIN_INVALID_USER = createError(
  'FST_LOGIN_INVALID_USER',
  'fastify-login: invalid user: %s.',
  500
)

export const FST_LOGIN_NO_STORE = createError(
  'FST_LOGIN_NO_STORE',
  'fastify-login: %s needs a login store: logins are stateless without one. Pass `store` to the plugin, for example `store: memoryStore()` for one process or `store: redisStore({ client })` for many.',
  500
)

export const FST_LOGIN_STORE_CANNOT = createError(
  'FST_LOGIN_STORE_CANNOT',
  'fastify-login: %s needs the login store to have a `%s` method, and this store has none. Use memoryStore() or redisStore({ client }), add the method to your store (see docs/logins.md, "Writing a store"), or turn the option off.'
)

export const FST_LOGIN_STORE_FAILED = createError(
  'FST_LOGIN_STORE_FAILED',
  'fastify-login: the login store failed in `%s`. The request cannot be answered until the store works again; the cause is logged with this error.',
  503
)

export const FST_LOGIN_STORE_CORRUPT = createError(
  'FST_LOGIN_STORE_CORRUPT',
  'fastify-login: redisStore found %s at key `%s`, which is not a login record. Delete the key, or fix what wrote it.',
  500
)

export const FST_LOGIN_STORE_SUBSCRIBE_FAILED = createError(
  'FST_LOGIN_STORE_SUBSCRIBE_FAILED',
  'fastify-login: redisStore could not subscribe to `%s`: %s. Without it this instance would not hear of logins ended on other instances, so `ready` fails: check that Redis is reachable and that its user may SUBSCRIBE to that channel (docs/redis-store.md, "Permissions").',
  500
)

export const FST_LOGIN_STORE_CLOSED = createError(
  'FST_LOGIN_STORE_CLOSED',
  'fastify-login: redisStore was closed before it could subscribe to `%s`: the app was closed while it was starting.',
  500
)

export const FST_LOGIN_NOT_AWAITED = createError(
  'FST_LOGIN_NOT_AWAITED',
  'fastify-login: %s finished after the reply was sent, so its cookies could not be written. With an asynchronous store it returns a promise: `await` it before the handler returns.',
  500
)

// Device binding's endpoints answer the browser with these. Messages name
// what was wrong, never a token or a key.
export const FST_LOGIN_BINDING_MALFORMED = createError(
  'FST_LOGIN_BINDING_MALFORMED',
  'fastify-login: device binding: %s.',
  400
)

export const FST_LOGIN_BINDING_REFUSED = createError(
  'FST_LOGIN_BINDING_REFUSED',
  'fastify-login: device binding refused: %s.',
  401
)

export const FST_LOGIN_BINDING_CONFLICT = createError(
  'FST_LOGIN_BINDING_CONFLICT',
  'fastify-login: device binding refused: this login is already bound to a key, or has ended. Log in again to bind a new one.',
  409
)
