// An app whose own user class is named `CurrentUser`: like
// app-named-user.test-d.ts, the package's `LoginCurrentUser` leaves the name
// to the app inside `declare module 'fastify-login'`.
//
// Run: npx tsd --files types/app-named-current-user.test-d.ts

import Fastify from 'fastify'
import { expectType } from 'tsd'
import fastifyLogin, { AnonymousUserMixin, UserMixin, type LoginCurrentUser, type LoginUser } from 'fastify-login'

class CurrentUser extends UserMixin {
  constructor (public id: string) {
    super()
  }
}

declare module 'fastify-login' {
  interface LoginTypes {
    user: CurrentUser
  }
}

expectType<CurrentUser>({} as LoginUser)
expectType<CurrentUser | AnonymousUserMixin>({} as LoginCurrentUser)

const app = Fastify()
app.register(fastifyLogin, { userLoader: (id) => new CurrentUser(id) })
app.get('/me', { config: { login: 'fresh' } }, (request) => {
  expectType<CurrentUser>(request.currentUser)
  return request.currentUser.id
})
