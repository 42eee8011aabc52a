/** The dashboard's pages and stylesheet (served as they are: no build step). */

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const head = (title: string, extra = ''): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="stylesheet" href="/admin/style.css">${extra}
</head>`

/** The login form; `error` is shown above it. */
export function loginPage(error: string | null): string {
  return `${head('wsfacility admin: log in')}
<body class="login">
<form method="post" action="/admin/login">
  <h1>wsfacility</h1>
  ${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
  <label>Password or API key <input type="password" name="password" autocomplete="current-password" required autofocus></label>
  <button type="submit">Log in</button>
</form>
</body>
</html>`
}

/** The dashboard; its script (/admin/app.js) fills it from /admin/api/. */
export const DASHBOARD_PAGE = `${head(
  'wsfacility admin',
  '\n<link rel="stylesheet" href="/admin/uplot.css">\n<script src="/admin/uplot.js"></script>\n<script type="module" src="/admin/app.js"></script>',
)}
<body>
<header>
  <h1>wsfacility</h1>
  <span>Redis: <strong id="redis" data-metric="redis">…</strong></span>
  <form method="post" action="/admin/logout"><button type="submit">Log out</button></form>
</header>
<main>
  <section class="figures">
    <div><span class="figure" data-metric="connections" id="connections">…</span> connections</div>
    <div><span class="figure" data-metric="nodes" id="nodes">…</span> nodes</div>
    <div><span class="figure" data-metric="channels" id="channels">…</span> channels</div>
    <div><span class="figure" data-metric="online" id="online">…</span> users online</div>
    <div><span class="figure" data-metric="messages-in" id="rate-in">…</span> messages/s in</div>
    <div><span class="figure" data-metric="messages-out" id="rate-out">…</span> deliveries/s out</div>
  </section>
  <section><h2>Connections</h2><div class="chart" id="chart-connections"></div></section>
  <section><h2>Messages per second</h2><div class="chart" id="chart-messages"></div></section>
  <section class="tables">
    <div><h2>Nodes</h2><table id="node-table"><thead><tr><th>node</th><th>connections</th><th>channels</th><th>per facility</th><th>up</th></tr></thead><tbody></tbody></table></div>
    <div><h2>Top channels</h2><table id="channel-table"><thead><tr><th>channel</th><th>connections</th></tr></thead><tbody></tbody></table></div>
    <div><h2>Who is online</h2><table id="online-table"><thead><tr><th>user</th><th>connections</th></tr></thead><tbody></tbody></table><p id="presence-note" class="note"></p></div>
  </section>
  <section class="forms">
    <form id="publish-form">
      <h2>Publish</h2>
      <label>Facility <input name="facility" required></label>
      <label>To <select name="audience"><option value="broadcast">everyone (broadcast)</option><option value="users">users</option><option value="groups">groups</option><option value="sessions">sessions</option></select></label>
      <label>Names (comma-separated) <input name="names"></label>
      <label>Message <textarea name="data" rows="3" required></textarea></label>
      <button type="submit">Publish</button>
      <output id="publish-result" role="status"></output>
    </form>
    <form id="disconnect-form">
      <h2>Disconnect</h2>
      <label>User or connection id <input name="target" required></label>
      <label>As <select name="kind"><option value="user">user (every connection)</option><option value="connection">connection id</option></select></label>
      <button type="submit">Disconnect</button>
      <output id="disconnect-result" role="status"></output>
    </form>
  </section>
</main>
</body>
</html>`

/** The stylesheet of both pages. */
export const STYLE = `
:root { font-family: system-ui, sans-serif; color: #1d2330; background: #f5f6f8; }
body { margin: 0; }
header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.2rem; background: #1d2330; color: #fff; }
header h1 { font-size: 1.1rem; margin: 0 auto 0 0; }
header button { background: none; color: #fff; border: 1px solid #fff6; }
main { padding: 1rem 1.2rem; display: grid; gap: 1rem; }
section { background: #fff; border-radius: 6px; padding: .8rem 1rem; box-shadow: 0 1px 2px #0002; }
h2 { font-size: .95rem; margin: 0 0 .5rem; }
.figures { display: flex; flex-wrap: wrap; gap: 2rem; }
.figure { font-size: 1.8rem; font-weight: 600; display: block; }
.tables, .forms { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 1.5rem; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { text-align: left; padding: .2rem .4rem; border-bottom: 1px solid #e3e5ea; }
form label { display: block; margin: .4rem 0; font-size: .85rem; }
input, select, textarea { display: block; width: 100%; box-sizing: border-box; padding: .3rem; font: inherit; }
button { padding: .35rem .9rem; font: inherit; cursor: pointer; }
output { display: block; margin-top: .4rem; font-size: .85rem; }
.note, .error { color: #a33; font-size: .85rem; }
.login form { max-width: 20rem; margin: 15vh auto; background: #fff; padding: 1.5rem; border-radius: 6px; box-shadow: 0 1px 3px #0003; }
.chart { min-height: 200px; }
`
