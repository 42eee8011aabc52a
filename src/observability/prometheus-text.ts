/** Labels of one sample, e.g. `{ facility: 'chat' }`. */
export type Labels = Readonly<Record<string, string | number>>

/** One sample of a metric family. */
export interface Sample {
  labels?: Labels
  value: number
  /** Appended to the family name (`_bucket`, `_sum`, `_count` of a histogram). */
  suffix?: string
}

/** One metric family of the exposition: name, type, help and samples. */
export interface Family {
  name: string
  type: 'counter' | 'gauge' | 'histogram'
  help: string
  samples: readonly Sample[]
}

/** The Content-Type of the Prometheus text exposition format 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

// Label values escape backslash, double quote and newline; help texts backslash and newline.
const escapeLabel = (v: string): string =>
  v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
const escapeHelp = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Infinity) return '+Inf'
  if (value === -Infinity) return '-Inf'
  return String(value)
}

function formatLabels(labels: Labels | undefined): string {
  const entries = Object.entries(labels ?? {})
  if (entries.length === 0) return ''
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(String(v))}"`).join(',')}}`
}

/** Renders metric families in the Prometheus text exposition format. */
export function formatPrometheus(families: readonly Family[]): string {
  const lines: string[] = []
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`)
    for (const s of f.samples) {
      lines.push(`${f.name}${s.suffix ?? ''}${formatLabels(s.labels)} ${formatValue(s.value)}`)
    }
  }
  return `${lines.join('\n')}\n`
}

/** A cumulative histogram with fixed upper bounds (Prometheus `le` buckets). */
export class Histogram {
  readonly #bounds: readonly number[]
  readonly #counts: number[]
  #sum = 0
  #count = 0

  constructor(bounds: readonly number[]) {
    this.#bounds = [...bounds].sort((a, b) => a - b)
    this.#counts = this.#bounds.map(() => 0)
  }

  /** Records one observation. */
  observe(value: number): void {
    this.#sum += value
    this.#count++
    const i = this.#bounds.findIndex((b) => value <= b)
    if (i !== -1) this.#counts[i]!++
  }

  /** Number of observations so far. */
  get count(): number {
    return this.#count
  }

  /** The `_bucket` (cumulative, ending with `+Inf`), `_sum` and `_count` samples. */
  samples(): Sample[] {
    let cumulative = 0
    const buckets: Sample[] = this.#bounds.map((le, i) => {
      cumulative += this.#counts[i]!
      return { suffix: '_bucket', labels: { le: formatValue(le) }, value: cumulative }
    })
    buckets.push({ suffix: '_bucket', labels: { le: '+Inf' }, value: this.#count })
    return [
      ...buckets,
      { suffix: '_sum', value: this.#sum },
      { suffix: '_count', value: this.#count },
    ]
  }
}
