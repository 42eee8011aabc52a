import { createHash } from 'node:crypto'

// SHA-256 (FIPS 180-4) on 32-bit words, for HMAC (RFC 2104) over the ASCII signing input of a
// JWT. node:crypto's createHmac builds a native object per call: ~2 µs per token in a loop, and
// a JWT storm (bench/profile-connect.ts) spent ~5 µs per connection more with it than with this
// (~0.8 µs in a loop, nothing allocated).

/** The round constants (the cube roots of the first 64 primes, fractional parts, 32 bits). */
// prettier-ignore
const K = Int32Array.of(
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
)

/** The initial hash value. */
// prettier-ignore
const IV = Int32Array.of(
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
)

const BLOCK = 64

/** The message schedule: the block being hashed in words 0–15, expanded into 16–63. */
const W = new Int32Array(64)

/** Hashes the block in W[0..16) into the state `h`. */
function compress(h: Int32Array): void {
  for (let i = 16; i < 64; i++) {
    const x = W[i - 15]!
    const y = W[i - 2]!
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10)
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0
  }
  let a = h[0]!
  let b = h[1]!
  let c = h[2]!
  let d = h[3]!
  let e = h[4]!
  let f = h[5]!
  let g = h[6]!
  let k = h[7]!
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
    const t1 = (k + S1 + ((e & f) ^ (~e & g)) + K[i]! + W[i]!) | 0
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0
    k = g
    g = f
    f = e
    e = (d + t1) | 0
    d = c
    c = b
    b = a
    a = (t1 + t2) | 0
  }
  h[0] = (h[0]! + a) | 0
  h[1] = (h[1]! + b) | 0
  h[2] = (h[2]! + c) | 0
  h[3] = (h[3]! + d) | 0
  h[4] = (h[4]! + e) | 0
  h[5] = (h[5]! + f) | 0
  h[6] = (h[6]! + g) | 0
  h[7] = (h[7]! + k) | 0
}

/** Writes the final block's length field: the whole message's length in bits, big-endian. */
function setLength(bytes: number): void {
  const bits = bytes * 8
  W[14] = Math.floor(bits / 0x1_0000_0000)
  W[15] = bits | 0
}

/**
 * Finishes into `out` the hash whose first 64 bytes are already in `start`, over the rest of the
 * message: `text`, one byte per character (every character must be below 256).
 */
function finishLatin1(start: Int32Array, text: string, out: Int32Array): void {
  out.set(start)
  const n = text.length
  const whole = n - (n % BLOCK)
  let p = 0
  while (p < whole) {
    for (let i = 0; i < 16; i++, p += 4) {
      W[i] =
        (text.charCodeAt(p) << 24) |
        (text.charCodeAt(p + 1) << 16) |
        (text.charCodeAt(p + 2) << 8) |
        text.charCodeAt(p + 3)
    }
    compress(out)
  }
  W.fill(0, 0, 16)
  const rest = n - p
  for (let j = 0; j < rest; j++) W[j >> 2]! |= text.charCodeAt(p + j) << (24 - 8 * (j & 3))
  W[rest >> 2]! |= 0x80 << (24 - 8 * (rest & 3))
  // No room left for the length: it goes in a block of its own.
  if (rest >= BLOCK - 8) {
    compress(out)
    W.fill(0, 0, 16)
  }
  setLength(BLOCK + n)
  compress(out)
}

/** The state after hashing one 64-byte block: the key XOR `pad`. */
function padState(key: Uint8Array, pad: number): Int32Array {
  for (let i = 0; i < 16; i++) {
    const at = 4 * i
    W[i] =
      (((key[at] ?? 0) ^ pad) << 24) |
      (((key[at + 1] ?? 0) ^ pad) << 16) |
      (((key[at + 2] ?? 0) ^ pad) << 8) |
      ((key[at + 3] ?? 0) ^ pad)
  }
  const h = IV.slice()
  compress(h)
  return h
}

/**
 * An HMAC-SHA-256 key, its inner and outer pad states computed once: each check then hashes only
 * the message. Not reentrant (one shared schedule), which JavaScript's one thread makes safe.
 */
export class HmacSha256 {
  readonly #inner: Int32Array
  readonly #outer: Int32Array
  readonly #digest = new Int32Array(8)
  readonly #mac = new Int32Array(8)

  constructor(secret: Uint8Array) {
    // RFC 2104: a key longer than the block is hashed first.
    const key = secret.length > BLOCK ? createHash('sha256').update(secret).digest() : secret
    this.#inner = padState(key, 0x36)
    this.#outer = padState(key, 0x5c)
  }

  /**
   * True when `mac` is the HMAC of `text` (one byte per character, each below 256: a JWT's
   * base64url signing input). Compares all 32 bytes whatever differs (no early exit).
   */
  verifies(text: string, mac: Uint8Array): boolean {
    if (mac.length !== 32) return false
    const digest = this.#digest
    finishLatin1(this.#inner, text, digest)
    const out = this.#mac
    out.set(this.#outer)
    W.set(digest)
    W[8] = 0x80 << 24
    W.fill(0, 9, 14)
    setLength(BLOCK + 32)
    compress(out)
    let diff = 0
    for (let i = 0; i < 8; i++) {
      const at = 4 * i
      const word = (mac[at]! << 24) | (mac[at + 1]! << 16) | (mac[at + 2]! << 8) | mac[at + 3]!
      diff |= word ^ out[i]!
    }
    return diff === 0
  }
}
