import http from 'node:http'
import { type JWK, type JWTPayload, type KeyObject, type CryptoKey, SignJWT } from 'jose'
import { listen } from './http.js'

/** Now, in seconds since the epoch (the unit of `exp`, `nbf` and `iat`). */
export const nowSec = (): number => Math.floor(Date.now() / 1000)

/** What `signToken` puts in a JWT. Claims left out are absent from the token. */
export interface TokenOptions {
  /** An HMAC secret (text or bytes) or a private key. */
  key: string | Uint8Array | KeyObject | CryptoKey
  /** @default 'HS256' */
  alg?: string | undefined
  kid?: string | undefined
  sub?: string | undefined
  /** Seconds since the epoch, or a jose time span from now such as `'1h'`. */
  exp?: number | string | undefined
  /** Sets `iat` to now. */
  iat?: boolean | undefined
  nbf?: number | undefined
  iss?: string | undefined
  aud?: string | undefined
  /** The payload's other claims. */
  claims?: JWTPayload | undefined
}

/**
 * Signs a JWT with jose.
 * @example await signToken({ key: SECRET, sub: 'alice', exp: '10m', claims: { groups: ['staff'] } })
 */
export function signToken(o: TokenOptions): Promise<string> {
  const jwt = new SignJWT(o.claims ?? {})
  const alg = o.alg ?? 'HS256'
  jwt.setProtectedHeader(o.kid === undefined ? { alg } : { alg, kid: o.kid })
  if (o.sub !== undefined) jwt.setSubject(o.sub)
  if (o.iat) jwt.setIssuedAt()
  if (o.exp !== undefined) jwt.setExpirationTime(o.exp)
  if (o.nbf !== undefined) jwt.setNotBefore(o.nbf)
  if (o.iss !== undefined) jwt.setIssuer(o.iss)
  if (o.aud !== undefined) jwt.setAudience(o.aud)
  return jwt.sign(typeof o.key === 'string' ? new TextEncoder().encode(o.key) : o.key)
}

/** A JWKS endpoint on 127.0.0.1 serving `keys`; other paths answer 404. */
export interface JwksServer {
  /** `http://127.0.0.1:PORT/.well-known/jwks.json` */
  url: string
  /** Requests it has answered, the 404s included. */
  readonly requests: number
  close(): Promise<void>
}

/** Serves `keys` at `/.well-known/jwks.json`. */
export async function serveJwks(keys: JWK[]): Promise<JwksServer> {
  let requests = 0
  const body = JSON.stringify({ keys })
  const listening = await listen(
    http.createServer((req, res) => {
      requests++
      if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end()
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(body)
    }),
  )
  return {
    url: `${listening.base}/.well-known/jwks.json`,
    get requests() {
      return requests
    },
    close: () => listening.close(),
  }
}
