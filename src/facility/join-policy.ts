import type { AllowedChannelsHook } from '../broker/options.js'
import { JoinRefusedError } from '../errors.js'
import type { Identity } from '../identity/identity.js'
import type { FacilityContext, JoinContext } from './definition.js'
import type { FacilitySettings } from './settings.js'

/** What deciding one live join needs to know. */
export interface JoinCheck {
  settings: FacilitySettings
  allowedChannels: AllowedChannelsHook | undefined
  /** The connection's hook context (kept when a hook will read it), null otherwise. */
  context: FacilityContext | null
  facility: string
  identity: Identity
  join: JoinContext
}

const refuse = (reason: string): never => {
  throw new JoinRefusedError(reason)
}

/**
 * Decides a live join as the upgrade decides a connection: the facility's `clientJoin` (for a
 * client's own join), its `subscribe` list, its `authorize` hooks (with `context.join` set), then
 * the broker's `allowedChannels` hook. Rejects with a JoinRefusedError.
 */
export async function checkJoin(check: JoinCheck): Promise<void> {
  const { settings, join, context } = check
  if (join.fromClient && !settings.clientJoin) refuse('this facility takes no joins from clients')
  if (!settings.maySubscribe.includes(join.audience)) {
    refuse(`clients may not subscribe to ${join.audience}`)
  }
  if (settings.authorize.length === 0 && !check.allowedChannels) return
  // Hooks are only kept with a context (owner.accept); without one there is none to ask.
  if (!context) return
  const asked: FacilityContext = { ...context, identity: check.identity, join }
  for (const hook of settings.authorize) {
    let allowed: boolean
    try {
      allowed = await hook(asked)
    } catch {
      allowed = false
    }
    if (allowed !== true) refuse('not authorized')
  }
  const hook = check.allowedChannels
  if (!hook) return
  let answer: Awaited<ReturnType<AllowedChannelsHook>>
  try {
    answer = await hook(context.request, {
      subscribe: [join.audience],
      publish: [],
      facility: check.facility,
      identity: check.identity,
      join,
    })
  } catch {
    answer = false
  }
  if (answer === false) refuse('channels not allowed')
  if (answer && typeof answer === 'object' && answer.subscribe?.includes(join.audience) === false)
    refuse('channels not allowed')
}
