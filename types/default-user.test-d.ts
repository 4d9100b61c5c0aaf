// An app that declares no user type: no `LoginTypes` augmentation.
//
// Run: npx tsd --files types/default-user.test-d.ts
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
  type LoginManager,
  type LoginUser
} from '..'

expectType<UserMixin>({} as LoginUser)
expectType<AnonymousUserMixin>({} as LoginAnonymousUser)
expectType<UserMixin | AnonymousUserMixin>({} as LoginCurrentUser)

// Any UserMixin will do for the loader and for loginUser.
class Member extends UserMixin {
  constructor (public id: string) {
    super()
  }
}

const app = Fastify()
app.register(fastifyLogin, {
  secret: 'a-secret-of-at-least-thirty-two-characters',
  userLoader: (id) => new Member(id)
})
expectAssignable<FastifyLoginOptions>({ userLoader: () => new UserMixin() })
expectAssignable<FastifyLoginOptions>({ userLoader: async (id: string) => new Member(id) })
expectAssignable<FastifyLoginOptions>({ userLoader: async () => null })
expectAssignable<FastifyLoginOptions>({ anonymousUser: AnonymousUserMixin })
expectAssignable<FastifyLoginOptions>({ anonymousUser: () => new AnonymousUserMixin() })
expectNotAssignable<FastifyLoginOptions>({ userLoader: () => 42 })
expectNotAssignable<FastifyLoginOptions>({ userLoader: () => new AnonymousUserMixin() })
expectNotAssignable<FastifyLoginOptions>({ anonymousUser: Member })
expectType<LoginManager>(app.loginManager.userLoader(async (id) => new Member(id)))
expectError(app.loginManager.userLoader(() => 'user'))

app.post('/login', async (request, reply) => {
  expectType<boolean>(await app.loginManager.loginUser(request, reply, new Member('1'), { remember: false }))
  expectType<boolean>(await app.loginManager.loginUser(request, reply, new UserMixin()))
  expectError(app.loginManager.loginUser(request, reply, new AnonymousUserMixin()))
  expectError(app.loginManager.loginUser(request, reply, { id: '1' }))
  return 'ok'
})

declare const request: FastifyRequest
expectType<UserMixin | AnonymousUserMixin>(request.currentUser)
expectType<UserMixin | AnonymousUserMixin>(await request.loadUser())
expectType<boolean>(request.isFresh)
// In a function of its own: even a rejected assignment narrows the reference.
Fastify().get('/', async (request) => {
  expectError(request.currentUser = new UserMixin())
  return 'ok'
})
// Nothing app-specific exists until the app declares its user type.
expectError(request.currentUser.name)

if (request.currentUser.isAuthenticated) {
  expectType<UserMixin>(request.currentUser)
  expectType<string>(request.currentUser.getId())
  expectType<boolean>(request.currentUser.equals(new Member('1')))
  expectError(request.currentUser.name)
} else {
  expectType<AnonymousUserMixin>(request.currentUser)
  expectType<null>(request.currentUser.getId())
  expectError(request.currentUser.equals(new Member('1')))
}
