import { test } from 'tap'
import { createHmac, randomBytes } from 'node:crypto'
import { HmacKey } from '../lib/cookies/hmac'
import { referenceTag } from './helpers'

const reference = (key: Buffer, message: string): string => createHmac('sha256', key).update(message).digest('base64')

test('HmacKey: the RFC 4231 vectors whose message is text', async (t) => {
  // Test cases 1 and 2 of RFC 4231, HMAC-SHA-256.
  const vectors: Array<[Buffer, string, string]> = [
    [Buffer.alloc(20, 0x0b), 'Hi There', 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
    [Buffer.from('Jefe'), 'what do ya want for nothing?', '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843']
  ]
  for (const [key, message, hex] of vectors) t.equal(new HmacKey(key).base64(message), Buffer.from(hex, 'hex').toString('base64'))
})

test('HmacKey: byte for byte createHmac, whatever the message', async (t) => {
  const key = randomBytes(32)
  const ours = new HmacKey(key)
  const messages = [
    '',
    'a2.MQ.x',
    'é€😀 and a lone surrogate \ud800 here',
    'x'.repeat(55), 'x'.repeat(56), 'x'.repeat(64), 'x'.repeat(119), 'x'.repeat(120),
    '€'.repeat(4096),
    // Longer than the buffer holds: the slow way, the same MAC.
    '€'.repeat(4097),
    randomBytes(3000).toString('latin1')
  ]
  for (const message of messages) t.equal(ours.base64(message), reference(key, message), `${message.length} characters`)
  // The buffers are written over: a long message leaves nothing for a short one.
  t.equal(ours.base64('short'), reference(key, 'short'))
  t.equal(new HmacKey(Buffer.alloc(64, 7)).base64('a block-long key'), reference(Buffer.alloc(64, 7), 'a block-long key'))
  t.equal(new HmacKey(Buffer.alloc(0)).base64('no key'), reference(Buffer.alloc(0), 'no key'))
})

test('HmacKey: a tag is the first 16 bytes of the same HMAC, in base64url', async (t) => {
  const key = randomBytes(32)
  const ours = new HmacKey(key)
  // A user agent, one with a lone surrogate, and one too long for the buffer.
  for (const message of ['Firefox\n192.0.2.1', 'é\ud800\n::1', `${'x'.repeat(13000)}\n192.0.2.1`]) {
    t.equal(ours.tag(message), referenceTag(key, message), `${message.length} characters`)
  }
  // A long tag the fast way, then a short signature: the buffers are written over.
  t.equal(ours.tag('x'.repeat(4000)), referenceTag(key, 'x'.repeat(4000)))
  t.equal(ours.base64('short'), reference(key, 'short'), 'a tag leaves nothing behind for a signature')
})

test('HmacKey: keys longer than a block are refused, not hashed', async (t) => {
  t.throws(() => new HmacKey(Buffer.alloc(65)), RangeError)
})
