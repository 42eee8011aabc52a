import { FLAG_ORDER } from '../channels/naming.js'
import type { IncomingMessage } from 'node:http'
import { HttpError } from '../errors.js'
import type { FacilityContext } from '../facility/definition.js'
import type { FacilitySettings } from '../facility/settings.js'
import type { AllowedChannelsHook } from '../broker/options.js'
import type { ParsedRequest } from './parse-url.js'
import type { Flags } from '../channels/redis-subscriber.js'

/**
 * Decides a connection's flags before the upgrade: the facility's allowed audiences (403 beyond
 * them), its auto-subscriptions, its `authorize` checks (any false → 403), then the broker's
 * `allowedChannels` hook, which may only narrow.
 */
export function decideFlags(
  parsed: ParsedRequest,
  settings: FacilitySettings,
  allowedChannels: AllowedChannelsHook | undefined,
  context: FacilityContext,
): Flags | Promise<Flags> {
  const { mayPublish, maySubscribe, autoSubscribe: auto } = settings
  const refusedPublish = parsed.publish.filter((a) => !mayPublish.includes(a))
  if (refusedPublish.length > 0) {
    throw new HttpError(403, `clients may not publish to ${refusedPublish.join(', ')}`)
  }
  const refusedSubscribe = parsed.subscribe.filter((a) => !maySubscribe.includes(a))
  if (refusedSubscribe.length > 0) {
    throw new HttpError(403, `clients may not subscribe to ${refusedSubscribe.join(', ')}`)
  }
  const flags: Flags = {
    // Subscriptions keep this order whatever the order of the flags in the URL.
    subscribe: FLAG_ORDER.filter((a) => parsed.subscribe.includes(a) || auto.includes(a)),
    publish: parsed.publish,
  }
  // No hook to ask: decided now, without a turn of the event loop (most upgrades).
  if (settings.authorize.length === 0 && !allowedChannels) return flags
  return askHooks(flags, settings, allowedChannels, context)
}

/** The facility's authorize checks, then the allowedChannels hook, on the flags the URL asked. */
async function askHooks(
  asked: Flags,
  settings: FacilitySettings,
  allowedChannels: AllowedChannelsHook | undefined,
  context: FacilityContext,
): Promise<Flags> {
  let flags = asked
  for (const check of settings.authorize) {
    let allowed: boolean
    try {
      allowed = await check(context)
    } catch (err) {
      if (err instanceof HttpError) throw err
      throw new HttpError(403, 'not authorized')
    }
    if (allowed !== true) throw new HttpError(403, 'not authorized')
  }
  if (allowedChannels) flags = await narrow(allowedChannels, context.request, flags, context)
  return flags
}

async function narrow(
  hook: AllowedChannelsHook,
  req: IncomingMessage,
  flags: Flags,
  context: FacilityContext,
): Promise<Flags> {
  let answer: Awaited<ReturnType<typeof hook>>
  try {
    answer = await hook(req, { ...flags, facility: context.facility, identity: context.identity })
  } catch (err) {
    if (err instanceof HttpError) throw err
    throw new HttpError(403, err instanceof Error ? err.message : 'channels not allowed')
  }
  if (answer === false) throw new HttpError(403, 'channels not allowed')
  if (answer && typeof answer === 'object') {
    return {
      subscribe: flags.subscribe.filter((a) => answer.subscribe?.includes(a) ?? true),
      publish: flags.publish.filter((a) => answer.publish?.includes(a) ?? true),
    }
  }
  return flags
}
