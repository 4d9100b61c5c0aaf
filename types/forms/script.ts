// A script (no import or export at the top), as an app's global declarations
// file: its user class is named `User`, and its `declare module` augments
// the package all the same. Inside that block the package's exports come
// before the script's names: the package exports no `User` (its type is
// `LoginUser`), so `user: User` is the app's class, not a circular reference
// to the package's own type (TS2456).
declare const login: typeof import('fastify-login')

declare class User extends login.UserMixin {
  id: string
  name: string
}

declare module 'fastify-login' {
  interface LoginTypes {
    user: User
  }
}

declare const scriptApp: import('fastify').FastifyInstance
scriptApp.get('/name', { config: { login: 'required' } }, (request) => {
  const user: User = request.currentUser
  const declared: import('fastify-login').LoginUser = user
  return declared.name
})
