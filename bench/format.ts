/** Number and table formatting shared by the bench's reports (report.ts, targets.ts). */

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

export function table(head: string[], rows: string[][]): string {
  const lines = [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`)
  return lines.join('\n')
}

/** How a target line ends. */
export const mark = (ok: boolean): string => (ok ? 'met' : 'NOT met')
