/**
 * The dashboard's script, served as /admin/app.js: polls /admin/api/info (every second) and
 * /admin/api/presence, draws the series with uPlot (served from the package as /admin/uplot.js),
 * and posts the publish and disconnect forms. Plain browser JavaScript, no build step.
 */
export const APP_SCRIPT = String.raw`
const WINDOW = 300 // seconds of history kept in the charts
const api = (path, body) =>
  fetch('/admin/api/' + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: Object.assign({ 'x-wsfacility-admin': '1' }, body === undefined ? {} : { 'content-type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  }).then(async (res) => {
    if (res.status === 401) location.href = '/admin/'
    const json = await res.json().catch(() => ({}))
    return { status: res.status, body: json }
  })

const text = (id, value) => { document.getElementById(id).textContent = String(value) }
const rows = (id, list) => {
  const body = document.querySelector('#' + id + ' tbody')
  body.replaceChildren(...list.map((cells) => {
    const tr = document.createElement('tr')
    for (const c of cells) { const td = document.createElement('td'); td.textContent = String(c); tr.append(td) }
    return tr
  }))
}

function chart(id, series) {
  const el = document.getElementById(id)
  const opts = {
    width: Math.max(el.clientWidth, 300), height: 200,
    series: [{}].concat(series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2 }))),
    axes: [{}, { size: 60 }],
    scales: { x: { time: true } },
  }
  const plot = new uPlot(opts, [[]].concat(series.map(() => [])), el)
  window.addEventListener('resize', () => plot.setSize({ width: Math.max(el.clientWidth, 300), height: 200 }))
  return plot
}

const COLORS = ['#2b6cb0', '#c05621', '#2f855a', '#6b46c1', '#b83280', '#718096']
const connections = { times: [], total: [], perFacility: new Map(), plot: null, facilities: [] }
const messages = { times: [], in: [], out: [], plot: null, last: null }

function drawConnections(now, info) {
  const c = connections
  const facilities = {}
  for (const n of info.nodes) for (const [f, k] of Object.entries(n.facilities)) facilities[f] = (facilities[f] || 0) + k
  const names = Object.keys(facilities).sort()
  const known = c.facilities.join('\0')
  for (const f of names) if (!c.perFacility.has(f)) c.perFacility.set(f, c.times.map(() => 0))
  c.times.push(now); c.total.push(info.connections)
  for (const [f, list] of c.perFacility) list.push(facilities[f] || 0)
  while (c.times.length && c.times[0] < now - WINDOW) { c.times.shift(); c.total.shift(); for (const l of c.perFacility.values()) l.shift() }
  const shown = [...c.perFacility.keys()].sort().slice(0, COLORS.length - 1)
  if (!c.plot || shown.join('\0') !== known) {
    if (c.plot) c.plot.destroy()
    c.facilities = shown
    c.plot = chart('chart-connections', [{ label: 'total', stroke: '#1d2330' }].concat(shown.map((f, i) => ({ label: f, stroke: COLORS[i] }))))
  }
  c.plot.setData([c.times, c.total].concat(c.facilities.map((f) => c.perFacility.get(f))))
}

function drawMessages(now, info) {
  const m = messages
  const totals = { messages: 0, deliveries: 0 }
  for (const n of info.nodes) { totals.messages += n.messages; totals.deliveries += n.deliveries }
  if (m.last) {
    const dt = Math.max(now - m.last.at, 0.001)
    const rateIn = Math.max(0, (totals.messages - m.last.messages) / dt)
    const rateOut = Math.max(0, (totals.deliveries - m.last.deliveries) / dt)
    m.times.push(now); m.in.push(rateIn); m.out.push(rateOut)
    while (m.times.length && m.times[0] < now - WINDOW) { m.times.shift(); m.in.shift(); m.out.shift() }
    text('rate-in', rateIn.toFixed(1)); text('rate-out', rateOut.toFixed(1))
  }
  m.last = Object.assign({ at: now }, totals)
  if (!m.plot) m.plot = chart('chart-messages', [{ label: 'in', stroke: COLORS[0] }, { label: 'out', stroke: COLORS[1] }])
  m.plot.setData([m.times, m.in, m.out])
}

async function refreshInfo() {
  const { status, body } = await api('info')
  if (status !== 200) { text('redis', 'unavailable'); return }
  const now = Date.now() / 1000
  text('redis', body.redis); text('connections', body.connections); text('nodes', body.nodes.length); text('channels', body.channels)
  rows('node-table', body.nodes.map((n) => [n.id, n.connections, n.channels,
    Object.entries(n.facilities).map(([f, k]) => f + ': ' + k).join(', '), n.uptime + ' s']))
  const top = new Map()
  for (const n of body.nodes) for (const t of n.top) top.set(t.channel, (top.get(t.channel) || 0) + t.connections)
  rows('channel-table', [...top].sort((a, b) => b[1] - a[1]).slice(0, 10))
  drawConnections(now, body)
  drawMessages(now, body)
}

async function refreshPresence() {
  const { status, body } = await api('presence')
  if (status === 409) { text('online', '–'); text('presence-note', body.error); rows('online-table', []); return }
  if (status !== 200) return
  text('online', body.online); text('presence-note', '')
  rows('online-table', body.users.map((u) => [u.user, u.connections]))
}

document.getElementById('publish-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const form = new FormData(event.target)
  const audience = form.get('audience')
  const body = { facility: form.get('facility'), data: form.get('data') }
  if (audience === 'broadcast') body.broadcast = true
  else body[audience] = String(form.get('names')).split(',').map((s) => s.trim()).filter(Boolean)
  const res = await api('publish', body)
  text('publish-result', res.status === 200 ? 'Delivered to ' + res.body.receivers + ' connection(s)' : 'Refused: ' + res.body.error)
})

document.getElementById('disconnect-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const form = new FormData(event.target)
  const res = await api('disconnect', { [form.get('kind')]: String(form.get('target')).trim() })
  text('disconnect-result', res.status === 200 ? (res.body.disconnected ? 'Disconnected' : 'No such connection') : 'Refused: ' + res.body.error)
})

const loop = (fn, ms) => { const run = () => fn().catch(() => {}).finally(() => setTimeout(run, ms)); run() }
loop(refreshInfo, 1000)
loop(refreshPresence, 2000)
`
