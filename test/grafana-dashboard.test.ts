import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { createBroker } from '../src/index.js'

// docs/grafana-dashboard.json: a Grafana 10 dashboard model whose every query names a metric the
// broker really serves, so a renamed metric breaks this test before it breaks a dashboard.

interface Target {
  expr: string
  datasource: { type: string; uid: string }
}
interface Panel {
  type: string
  title: string
  datasource?: { type: string; uid: string }
  targets?: Target[]
  gridPos: { x: number; y: number; w: number; h: number }
}
interface Dashboard {
  schemaVersion: number
  uid: string
  panels: Panel[]
  templating: { list: { name: string; type: string; query: unknown }[] }
}

const dashboard = JSON.parse(
  readFileSync(new URL('../docs/grafana-dashboard.json', import.meta.url), 'utf8'),
) as Dashboard
const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, t })))

/** Names of the metrics a PromQL expression reads (functions and keywords are not followed by `{`
 * or used bare with our prefixes, so every `wsfacility_…`, `process_…`, `nodejs_…` word counts). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b(?:wsfacility|process|nodejs)_[a-z_]+\b/g)].map((m) => m[0])
}

describe('docs/grafana-dashboard.json', () => {
  it('is a Grafana 10 dashboard with a Prometheus data source variable that every panel uses', () => {
    assert.ok(dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`)
    assert.equal(dashboard.uid, 'wsfacility')
    const ds = dashboard.templating.list.find((v) => v.type === 'datasource')
    assert.deepEqual([ds?.name, ds?.query], ['datasource', 'prometheus'])
    assert.ok(queries.length >= 10)
    for (const { panel, t } of queries) {
      assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, panel.title)
      assert.deepEqual(t.datasource, panel.datasource, panel.title)
    }
    // Panels sit in Grafana's 24-column grid.
    for (const p of dashboard.panels) assert.ok(p.gridPos.x + p.gridPos.w <= 24, p.title)
  })

  it('queries only metrics the broker serves, and every one an operator needs', async () => {
    const broker = createBroker({})
    try {
      const text = await broker.metrics()
      // Sample names (histograms: name_bucket, name_sum, name_count).
      const served = new Set(
        text
          .split('\n')
          .filter((l) => l !== '' && !l.startsWith('#'))
          .map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0]),
      )
      const typed = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!))
      const queried = new Set(queries.flatMap(({ t }) => metricNames(t.expr)))
      for (const name of queried) {
        assert.ok(served.has(name) || typed.has(name), `${name} is not in the broker's /metrics`)
      }
      for (const needed of [
        'wsfacility_connections',
        'wsfacility_messages_in_total',
        'wsfacility_messages_out_total',
        'wsfacility_upgrades_refused_total',
        'wsfacility_publish_duration_seconds_bucket',
        'wsfacility_dropped_frames_total',
        'wsfacility_slow_consumer_closes_total',
        'wsfacility_redis_up',
      ]) {
        assert.ok(queried.has(needed), `no panel queries ${needed}`)
      }
    } finally {
      await broker.close()
    }
  })
})
