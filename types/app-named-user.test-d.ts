// An app whose own classes are named `User` and `AnonymousUser`, declared the
// way docs/typescript.md shows, in a module (a file with imports).
//
// Run: npx tsd --files types/app-named-user.test-d.ts
// (Its own run: tsd puts all files of a run into one program, and one
// `LoginTypes` augmentation would reach the others.)
//
// Inside `declare module 'fastify-login' { … }` the package's own exports come
// before the file's names: had the package exported a type named `User`,
// `user: User` would mean the package's `User`, which is read from
// `LoginTypes.user` itself (TS2456, "circularly references itself"). The
// package's names start with `Login` (`LoginUser`, `LoginAnonymousUser`,
// `LoginCurrentUser`) so that the names apps give their classes stay theirs.

import Fastify from 'fastify'
import { expectType } from 'tsd'
import fastifyLogin, {
  AnonymousUserMixin,
  UserMixin,
  type LoginAnonymousUser,
  type LoginCurrentUser,
  type LoginUser
} from 'fastify-login'

class User extends UserMixin {
  constructor (public id: string, public name: string) {
    super()
  }
}

class AnonymousUser extends AnonymousUserMixin {
  readonly name = 'Guest'
}

declare module 'fastify-login' {
  interface LoginTypes {
    user: User
    anonymousUser: AnonymousUser
  }
}

expectType<User>({} as LoginUser)
expectType<AnonymousUser>({} as LoginAnonymousUser)
expectType<User | AnonymousUser>({} as LoginCurrentUser)

const app = Fastify()
app.register(fastifyLogin, {
  secret: 'a-secret-of-at-least-thirty-two-characters',
  userLoader: (id) => new User(id, 'Ada'),
  anonymousUser: AnonymousUser
})
app.get('/', (request) => {
  expectType<User | AnonymousUser>(request.currentUser)
  return request.currentUser.name
})
app.get('/me', { config: { login: 'required' } }, (request) => {
  expectType<User>(request.currentUser)
  return request.currentUser.id
})
