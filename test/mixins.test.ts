import { test } from 'tap'
import { AnonymousUserMixin, UserMixin } from '../lib/index'
import { User } from './helpers'

test('UserMixin: active, authenticated, not anonymous; getId() is the id as a string', async (t) => {
  const user = new User(12, 'ann')
  t.equal(user.isAuthenticated, true)
  t.equal(user.isAnonymous, false)
  t.equal(new UserMixin().isActive, true)
  t.equal(user.getId(), '12')
  t.equal(new User('abc', 'x').getId(), 'abc')
})

test('UserMixin.getId() throws the design\'s error when there is no id', async (t) => {
  t.throws(() => new UserMixin().getId(), { code: 'FST_LOGIN_NO_USER_ID', message: /No `id` attribute\. Override `getId` or set the `id` attribute/ })
  const nulled = new User(1, 'x')
  nulled.id = null as never
  t.throws(() => nulled.getId(), { code: 'FST_LOGIN_NO_USER_ID' })
})

test('UserMixin.equals() compares ids, with users, plain objects and getId() objects', async (t) => {
  const ann = new User(1, 'ann')
  t.ok(ann.equals(new User(1, 'another name')))
  t.ok(ann.equals(new User('1', 'string id')), 'ids compare as strings')
  t.notOk(ann.equals(new User(2, 'ann')))
  t.ok(ann.equals({ id: 1 }))
  t.ok(ann.equals({ getId: () => '1' }))
  t.notOk(ann.equals({ name: 'no id' }))
  t.notOk(ann.equals(null))
  t.notOk(ann.equals('1'))
  t.notOk(ann.equals(new AnonymousUserMixin()))
})

test('AnonymousUserMixin is the opposite', async (t) => {
  const anonymous = new AnonymousUserMixin()
  t.equal(anonymous.isAuthenticated, false)
  t.equal(anonymous.isActive, false)
  t.equal(anonymous.isAnonymous, true)
  t.equal(anonymous.getId(), null)
})
