import { test } from 'tap'
import { PROOF_WINDOW_MS, Revocations } from '../lib/logins/revocations'

// The ended logins a process heard of (lib/logins/revocations.ts): kept until
// they would have expired, forgotten a slice at a time, trusted only with a
// proof no older than PROOF_WINDOW_MS.

test('ended logins are kept until they would have expired, and swept a slice at a time', async (t) => {
  const list = new Revocations()
  for (let i = 0; i < 10; i++) list.add({ loginId: `l${i}`, userId: 'u', expiresAt: i < 6 ? 100 : 200 })
  list.add({ loginId: 'l9', userId: 'u', expiresAt: 150 })
  t.ok(list.has('l9'), 'an earlier expiry does not shorten a known one')
  list.sweep(150, 4)
  t.same([0, 1, 2, 3, 4, 5].map((i) => list.has(`l${i}`)), [false, false, false, false, true, true], 'the first slice')
  list.sweep(150, 4)
  t.same([4, 5, 6].map((i) => list.has(`l${i}`)), [false, false, true], 'the next slice goes on where it stopped')
  list.sweep(150, 100)
  list.sweep(250, 100)
  t.same([6, 7, 8, 9].map((i) => list.has(`l${i}`)), [false, false, false, false], 'round again, once they expired')
})

test('trusted only while listening, with a proof younger than the window', async (t) => {
  const realNow = performance.now
  t.teardown(() => { performance.now = realNow })
  let now = 5000
  performance.now = () => now
  const list = new Revocations()
  list.heard(now)
  t.notOk(list.trusted(), 'not listening yet')
  list.listening(true)
  t.ok(list.trusted())
  now += PROOF_WINDOW_MS
  t.notOk(list.trusted(), `a proof ${PROOF_WINDOW_MS} ms old is too old`)
  list.heard(now - 1)
  list.heard(now - 50)
  t.ok(list.trusted(), 'an older proof arriving late does not undo a newer one')
  list.listening(false)
  list.listening(true)
  t.notOk(list.trusted(), 'a proof from before a drop proves nothing after it')
  list.heard(Infinity)
  list.listening(false)
  list.listening(true)
  now += 1e9
  t.ok(list.trusted(), 'a store of this process proves once, for good')
  list.trustSince(20)
  list.trustSince(10)
  t.equal(list.trustedSince, 20, 'only ever later')
})
