// Typos in option names (`redsi`, `onConect`) fail loudly. Pure, no imports: the client uses it,
// and so do the broker, facility and publisher options on the server.

/** Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  )
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1)
      }
      d[i]![j] = best
    }
  }
  return d[a.length]![b.length]!
}

/** The known name `key` was probably meant to be, or null when none is close. */
export function closestKey(key: string, known: readonly string[]): string | null {
  const wanted = key.toLowerCase()
  // One edit for short names, two from five characters on; case never counts.
  const allowed = wanted.length < 5 ? 1 : 2
  let best: string | null = null
  let bestDistance = allowed + 1
  for (const name of known) {
    const d = distance(wanted, name.toLowerCase())
    if (d < bestDistance) {
      best = name
      bestDistance = d
    }
  }
  return best
}

/**
 * A message naming the first own key of `value` that `known` does not list, with the likely
 * intended one; null when every key is known. `where` prefixes the names (`'reconnect.'`).
 * @example unknownKeyMessage({ redsi: 'redis://…' }, ['redis']) // 'unknown option "redsi" (did you mean "redis"?)'
 */
export function unknownKeyMessage(
  value: object,
  known: readonly string[],
  what = 'option',
  where = '',
): string | null {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue
    const close = closestKey(key, known)
    const hint = close === null ? '' : ` (did you mean "${where}${close}"?)`
    return `unknown ${what} "${where}${key}"${hint}`
  }
  return null
}
