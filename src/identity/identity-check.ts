import { assertId } from '../channels/naming.js'
import { HttpError, InvalidArgumentError } from '../errors.js'
import type { Identity } from './identity.js'

/**
 * Returns `identity` when every one of its strings can name a channel; else throws HttpError 401
 * (`WSF_IDENTITY_INVALID`). A validly signed token or a stored session may still carry a lone
 * surrogate, which Redis would turn into U+FFFD (so two ids would share channels and presence):
 * that is a credential the broker cannot honour, not a server error.
 */
export function checkIdentity(identity: Identity): Identity {
  try {
    if (identity.user !== null) assertId('user', identity.user)
    for (const group of identity.groups) assertId('group', group)
    if (identity.sessionKey !== null) assertId('session key', identity.sessionKey)
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err
    throw new HttpError(
      401,
      `identity contains an invalid string (${err.message})`,
      'WSF_IDENTITY_INVALID',
    )
  }
  return identity
}
