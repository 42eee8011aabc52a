import assert from 'node:assert/strict'
import { createHmac, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { HmacSha256 } from '../src/identity/hmac-sha256.js'

/** The HMAC node:crypto computes, of `text` read one byte per character. */
const reference = (key: Uint8Array, text: string) =>
  createHmac('sha256', key).update(Buffer.from(text, 'latin1')).digest()

/** `length` characters, each below 256, varied by `seed`. */
const text = (length: number, seed: number) =>
  Array.from({ length }, (_, i) => String.fromCharCode((i * 31 + seed * 7) % 256)).join('')

describe('HmacSha256', () => {
  it('matches the test vectors of RFC 4231 (cases 1, 2, 6 and 7)', () => {
    const cases: [Uint8Array, string, string][] = [
      [
        Buffer.alloc(20, 0x0b),
        'Hi There',
        'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
      ],
      [
        Buffer.from('Jefe'),
        'what do ya want for nothing?',
        '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
      ],
      [
        Buffer.alloc(131, 0xaa),
        'Test Using Larger Than Block-Size Key - Hash Key First',
        '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
      ],
      [
        Buffer.alloc(131, 0xaa),
        'This is a test using a larger than block-size key and a larger than block-size data. ' +
          'The key needs to be hashed before being used by the HMAC algorithm.',
        '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
      ],
    ]
    for (const [key, data, hex] of cases) {
      assert.equal(new HmacSha256(key).verifies(data, Buffer.from(hex, 'hex')), true, data)
    }
  })

  it('agrees with node:crypto for every message length across three blocks and keys around the block size', () => {
    for (const keyLength of [1, 32, 63, 64, 65, 200]) {
      const key = randomBytes(keyLength)
      const hmac = new HmacSha256(key)
      for (let length = 0; length <= 200; length++) {
        const data = text(length, keyLength)
        const mac = reference(key, data)
        assert.equal(hmac.verifies(data, mac), true, `key ${keyLength}, message ${length}`)
        // The same check again: nothing of the last one is left behind.
        assert.equal(hmac.verifies(data, mac), true)
      }
    }
  })

  it('refuses a MAC with any one bit changed, cut or lengthened, and the MAC of another key', () => {
    const key = randomBytes(32)
    const hmac = new HmacSha256(key)
    const data = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ'
    const mac = reference(key, data)
    for (let bit = 0; bit < 256; bit++) {
      const bent = Buffer.from(mac)
      bent[bit >> 3]! ^= 1 << (bit & 7)
      assert.equal(hmac.verifies(data, bent), false, `bit ${bit}`)
    }
    assert.equal(hmac.verifies(data, mac.subarray(0, 31)), false)
    assert.equal(hmac.verifies(data, Buffer.concat([mac, Buffer.alloc(1)])), false)
    assert.equal(hmac.verifies(data, reference(randomBytes(32), data)), false)
    assert.equal(hmac.verifies(`${data}x`, mac), false)
  })
})
