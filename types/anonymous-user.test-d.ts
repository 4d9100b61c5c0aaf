// An app that declares its own anonymous user (and keeps the default user).
//
// Run: npx tsd --files types/anonymous-user.test-d.ts
// (A plain `npx tsd` compiles types/index.test-d.ts only, whose augmentation
// would leak in here: tsd puts all files of a run into one program.)

import Fastify, { type FastifyRequest } from 'fastify'
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import fastifyLogin, {
  UserMixin,
  AnonymousUserMixin,
  type LoginAnonymousUser,
  type LoginCurrentUser,
  type FastifyLoginOptions,
  type LoginConfig,
  type LoginUser
} from '..'

class Guest extends AnonymousUserMixin {
  readonly name = 'Guest'
  readonly locale: string = 'en'
}

declare module '..' {
  interface LoginTypes {
    anonymousUser: Guest
  }
}

expectType<UserMixin>({} as LoginUser)
expectType<Guest>({} as LoginAnonymousUser)
expectType<UserMixin | Guest>({} as LoginCurrentUser)

// The option must now produce a Guest: the class, or a factory.
Fastify().register(fastifyLogin, {
  secret: 'a-secret-of-at-least-thirty-two-characters',
  userLoader: () => new UserMixin(),
  anonymousUser: Guest
})
expectAssignable<FastifyLoginOptions>({ anonymousUser: () => new Guest() })
// Declared, it is required: the default AnonymousUserMixin would not be a Guest.
expectError(Fastify().register(fastifyLogin, { secret: 'a-secret-of-at-least-thirty-two-characters' }))
expectNotAssignable<FastifyLoginOptions>({ anonymousUser: AnonymousUserMixin })
expectNotAssignable<FastifyLoginOptions>({ anonymousUser: () => new AnonymousUserMixin() })
expectType<LoginConfig['anonymousUser']>(Fastify().loginManager.config.anonymousUser)
expectAssignable<LoginConfig['anonymousUser']>(Guest)

declare const request: FastifyRequest
expectType<UserMixin | Guest>(request.currentUser)
expectType<UserMixin | Guest>(await request.loadUser())
expectError(request.currentUser.locale)

if (request.currentUser.isAuthenticated) {
  expectType<UserMixin>(request.currentUser)
  expectError(request.currentUser.locale)
} else {
  expectType<Guest>(request.currentUser)
  expectType<'Guest'>(request.currentUser.name)
  expectType<string>(request.currentUser.locale)
}

if (request.currentUser.isAnonymous) {
  expectType<Guest>(request.currentUser)
}
