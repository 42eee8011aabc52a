import { InvalidArgumentError } from '../src/index.js'

/**
 * The JSON text a built-in facility publishes for `data`. Always JSON, so a client gets back
 * exactly the value: a string stays a string even when it looks like JSON.
 */
export function jsonText(data: unknown): string {
  let text: string | undefined
  try {
    text = JSON.stringify(data)
  } catch (err) {
    throw new InvalidArgumentError(`data cannot be sent as JSON: ${String(err)}`)
  }
  if (text === undefined) throw new InvalidArgumentError('data cannot be sent as JSON')
  return text
}
