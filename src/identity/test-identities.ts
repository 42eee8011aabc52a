import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { HttpError } from '../errors.js'
import { type Identity, normalizeIdentity } from './identity.js'

/** The header a socket or request of `wsfacility/testing` carries: one key of its registry. */
export const TEST_IDENTITY_HEADER = 'x-wsfacility-test-identity'

/**
 * Where `wsfacility/testing` hands its registry to the broker it creates. A unique symbol that no
 * entry of the package exports, holding an instance of a class none exports either: a broker made
 * by `createBroker`, `wsfacility()` or the CLI never has one, so it never reads the header.
 */
export const TEST_IDENTITIES: unique symbol = Symbol('wsfacility testing identities')

/**
 * The identities of one test broker, by random key. A key is 144 random bits, made for one test
 * socket or one `headers()` call: only the test that made it knows it, and only the broker that
 * holds this registry honours it.
 */
export class TestIdentities {
  readonly #byKey = new Map<string, Identity | null>()

  /** A new key for `identity`; null: the key only names the socket, the broker's own
   * authentication (JWT, session, `identify`) decides who it is. */
  issue(identity: Partial<Identity> | null): string {
    const key = randomBytes(18).toString('base64url')
    this.#byKey.set(key, identity === null ? null : normalizeIdentity(identity))
    return key
  }

  /** The key a request carries, or null. */
  keyOf(request: IncomingMessage): string | null {
    const value = request.headers[TEST_IDENTITY_HEADER]
    return typeof value === 'string' ? value : null
  }

  /**
   * The identity a request's key stands for; undefined when it carries none, or a key that leaves
   * the identity to the broker's authentication. An unknown key is a 401: a test that relies on an
   * identity must not silently become anonymous.
   */
  identityOf(request: IncomingMessage): Identity | undefined {
    if (request.headers[TEST_IDENTITY_HEADER] === undefined) return undefined
    const key = this.keyOf(request)
    if (key === null || !this.#byKey.has(key)) throw new HttpError(401, 'unknown test identity')
    return this.#byKey.get(key) ?? undefined
  }

  /** Forgets every key. */
  clear(): void {
    this.#byKey.clear()
  }
}

/** The registry `options` carry under TEST_IDENTITIES, or null (every broker but a test one). */
export function testIdentitiesOf(options: object): TestIdentities | null {
  const value: unknown = (options as { [TEST_IDENTITIES]?: unknown })[TEST_IDENTITIES]
  return value instanceof TestIdentities ? value : null
}
