/** Width the help fits in: no line is longer, so an 80-column terminal never wraps it. */
export const USAGE_WIDTH = 79
/** Where descriptions start: after the longest flag (`--max-user-connections N`). */
const TEXT_COLUMN = 28
/** Where the `env …` line of a flag starts. */
const ENV_COLUMN = TEXT_COLUMN + 2

/** `words` in lines of at most `width` characters, each word kept whole. */
function pack(words: string[], width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of words) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else line = line === '' ? word : `${line} ${word}`
  }
  if (line !== '') lines.push(line)
  return lines
}

/** `text` in lines of at most `width` characters, broken between words. */
const wrap = (text: string, width: number): string[] =>
  pack(
    text.split(/\s+/).filter((w) => w !== ''),
    width,
  )

/** A paragraph, wrapped. */
const paragraph = (text: string): string => wrap(text, USAGE_WIDTH).join('\n')

/** One flag: its description beside it, then the environment variable and default below. */
function flag(name: string, text: string, env?: string): string {
  const head = `  ${name}`.padEnd(TEXT_COLUMN)
  const body = wrap(text, USAGE_WIDTH - TEXT_COLUMN)
  const lines =
    head.length > TEXT_COLUMN
      ? [head.trimEnd(), ...body.map((l) => ' '.repeat(TEXT_COLUMN) + l)]
      : body.map((l, i) => (i === 0 ? head : ' '.repeat(TEXT_COLUMN)) + l)
  if (env !== undefined) {
    // Broken between clauses (`env X,` / `default Y`), never inside a variable's name or value.
    const clauses = env.split(/(?<=,) /)
    for (const l of pack(clauses, USAGE_WIDTH - ENV_COLUMN)) lines.push(' '.repeat(ENV_COLUMN) + l)
  }
  return lines.join('\n')
}

/** The help text of `wsfacility --help`. */
export const USAGE = [
  'Usage: wsfacility [options]',
  '',
  paragraph(
    "Runs a WebSocket broker for backends that only publish to Redis (a Django app using ws4redis's " +
      'RedisPublisher, a worker). Browsers connect to /ws/<facility>?subscribe-broadcast&...; ' +
      'anyone publishes on the channels broadcast:<facility>, user:<name>:<facility>, ...',
  ),
  '',
  paragraph(
    'Options (each may also come from the environment variable shown, or from the config ' +
      'file under its name in camelCase: --max-user-connections is maxUserConnections; a flag ' +
      'wins over its variable, a variable over the file):',
  ),
  flag(
    '--config FILE',
    'read settings from this JSON file, and the facilities: {"facilities": {"chat": ' +
      '{"history": {"size": 100, "ttl": 300}}, "room/{id}": {...}}} (see docs/config.md)',
    'env WSFACILITY_CONFIG',
  ),
  flag(
    '--check-config',
    'check the settings (flags, variables and file), print them as JSON with secrets ' +
      'redacted, and exit: 0 when they are good, 2 when not',
  ),
  flag('--port N', 'port to listen on; 0 picks a free one', 'env PORT, default 8000'),
  flag('--host HOST', 'address to bind', 'env HOST, default 127.0.0.1'),
  flag(
    '--redis URL',
    'redis:// or rediss:// URL; without it, messages stay in this process (in-memory engine)',
    'env REDIS_URL',
  ),
  flag(
    '--redis-cluster URLS',
    'a Redis Cluster instead: comma-separated root node URLs; channels use sharded pub/sub, so ' +
      'publishers must SPUBLISH',
    'env WSFACILITY_REDIS_CLUSTER',
  ),
  flag(
    '--cluster-plain-publish',
    "on a cluster, also receive plain PUBLISHes (ws4redis's Django publisher, redis-cli), not " +
      'only SPUBLISH: one more connection per process; Redis Cluster sends every plain PUBLISH ' +
      'to every node, so prefer SPUBLISH where publishers can',
    'env WSFACILITY_CLUSTER_PLAIN_PUBLISH=1, default off',
  ),
  flag(
    '--workers N',
    'run N worker processes sharing the port (node:cluster); needs --redis or --redis-cluster',
    'env WSFACILITY_WORKERS, default 1',
  ),
  flag(
    '--prefix NAME',
    'channel prefix: ws4redis gives ws4redis:broadcast:<facility>',
    'env WSFACILITY_PREFIX or WS4REDIS_PREFIX, default none',
  ),
  flag(
    '--expire SECONDS',
    "store each message this server's clients publish (publish-* flags) under its channel's key " +
      "for this long; 0 stores nothing. New clients get each channel's stored message replayed, " +
      "whoever stored it (ws4redis's SETEX, wsfacility's publishers with expire > 0); a plain " +
      'PUBLISH stores nothing, so it is never replayed',
    'env WSFACILITY_EXPIRE, default 0',
  ),
  flag(
    '--history-size N',
    'keep the last N messages of each channel, with offsets, so that clients recover what they ' +
      'missed while reconnecting and the server catches up after Redis hiccups (needs ' +
      '--history-ttl; clients see offsets with --format json)',
    'env WSFACILITY_HISTORY_SIZE, default off',
  ),
  flag(
    '--history-ttl SECONDS',
    "how long a channel's history lives after its last publish",
    'env WSFACILITY_HISTORY_TTL',
  ),
  flag(
    '--format raw|binary|json',
    'wire format of every facility: raw (ws4redis, messages as they were published: text ' +
      'frames, binary frames for bytes that are not UTF-8), binary (every message a binary ' +
      'frame) or json (the {"type":"data",...} envelope)',
    'env WSFACILITY_FORMAT, default raw',
  ),
  flag(
    '--heartbeat TEXT',
    'a text clients send to keep alive: answered with the same text, never published. A value ' +
      'starting with "-" needs the = form: --heartbeat=--heartbeat--',
    'env WSFACILITY_HEARTBEAT, default none',
  ),
  flag(
    '--client-publish LIST',
    'audiences clients may publish to (publish-* flags), comma-separated from ' +
      'broadcast,group,user,session; empty for none',
    'env WSFACILITY_CLIENT_PUBLISH, default session,user',
  ),
  flag('--path PATH', 'path prefix of WebSocket URLs', 'env WSFACILITY_PATH, default /ws/'),
  flag(
    '--metrics',
    'serve Prometheus metrics at GET /metrics (they name facilities and show load: keep that ' +
      'route internal)',
    'env WSFACILITY_METRICS=1, default off',
  ),
  flag(
    '--presence',
    'track who is online, across every process of the cluster',
    'env WSFACILITY_PRESENCE=1, default off',
  ),
  flag(
    '--api-key LIST',
    'turn on the HTTP server API, taking these keys (comma-separated while rotating) as ' +
      'Authorization: apikey KEY',
    'env WSFACILITY_API_KEY, default off',
  ),
  flag(
    '--admin',
    'serve the dashboard at /admin/ (needs --admin-password or --api-key)',
    'env WSFACILITY_ADMIN=1, default off',
  ),
  flag(
    '--admin-password SECRET',
    "the dashboard's password; without it, an API key logs in",
    'env WSFACILITY_ADMIN_PASSWORD',
  ),
  flag('-h, --help', 'print this help and exit'),
  '',
  paragraph('Limits (0 = unlimited; see the README\'s "Limits and security"):'),
  flag(
    '--publish-rate N',
    'messages per second one client may send (over it: json facilities answer rate_limited, ' +
      'raw ones close 1008)',
    'env WSFACILITY_PUBLISH_RATE, default 20',
  ),
  flag(
    '--publish-burst N',
    "messages a client may send at once, default one second's worth",
    'env WSFACILITY_PUBLISH_BURST',
  ),
  flag(
    '--write-delay MS',
    "milliseconds a client's frames wait to go out in one write (fewer system calls for " +
      'clients with many messages each, at up to that much latency; up to 10000)',
    'env WSFACILITY_WRITE_DELAY, default 0',
  ),
  flag(
    '--max-connections N',
    'connections this process accepts (over it: 503)',
    'env WSFACILITY_MAX_CONNECTIONS, default 0',
  ),
  flag(
    '--max-user-connections N',
    'connections of one user this process accepts (over it: 429)',
    'env WSFACILITY_MAX_USER_CONNECTIONS, default 0',
  ),
  flag(
    '--max-payload BYTES',
    'largest client message (over it: close 1009)',
    'env WSFACILITY_MAX_PAYLOAD, default 1048576',
  ),
  flag(
    '--handshake-timeout MS',
    'how long identity and Redis work of one upgrade may take (over it: 503)',
    'env WSFACILITY_HANDSHAKE_TIMEOUT, default 10000',
  ),
  flag(
    '--origins LIST',
    "comma-separated origins (https://app.example.com) allowed besides the server's own host; " +
      'set, every connection is checked, unset only cookie-authenticated ones (403)',
    'env WSFACILITY_ORIGINS, default none',
  ),
  flag(
    '--refusals MODE',
    'how refusals reach clients: http (a status before the upgrade), close (accept, then close ' +
      'with 4000 + status and the reason, which browsers can read) or auto (close for clients ' +
      'offering the wsfacility subprotocol, as wsfacility/client does; http for others)',
    'env WSFACILITY_REFUSALS, default auto',
  ),
  '',
  paragraph(
    'Identity (without it every client is anonymous: broadcast channels only). Secrets given as ' +
      'flags show in the process list; prefer the environment variables.',
  ),
  flag(
    '--jwt-secret SECRET',
    'accept JWTs signed with this HMAC secret (HS256/384/512), sent as ?token=, Authorization: ' +
      'Bearer or subprotocol bearer.<jwt>; sub is the user, groups the groups, sid the session key',
    'env WSFACILITY_JWT_SECRET',
  ),
  flag(
    '--jwks-url URL',
    'accept JWTs signed with a key of this http(s) JWKS document (picked by kid; RS*, PS*, ES*, ' +
      'EdDSA); not with --jwt-secret',
    'env WSFACILITY_JWKS_URL',
  ),
  flag(
    '--jwt-issuer ISS',
    'require this iss claim (needs --jwt-secret or --jwks-url)',
    'env WSFACILITY_JWT_ISSUER',
  ),
  flag(
    '--jwt-audience AUD',
    'require this aud claim (needs --jwt-secret or --jwks-url)',
    'env WSFACILITY_JWT_AUDIENCE',
  ),
  flag(
    '--session-secret LIST',
    'read express-session cookies signed with this secret (comma-separated when rotating: all ' +
      'verify) and load their sessions as connect-redis stores them in --redis (needed)',
    'env WSFACILITY_SESSION_SECRET',
  ),
  flag(
    '--session-cookie NAME',
    'name of the session cookie (needs --session-secret)',
    'env WSFACILITY_SESSION_COOKIE, default connect.sid',
  ),
  flag(
    '--session-prefix P',
    "connect-redis's key prefix (needs --session-secret)",
    'env WSFACILITY_SESSION_PREFIX, default sess:',
  ),
  flag(
    '--require-auth',
    'refuse clients without a user with 401 (needs a JWT or session option)',
    'env WSFACILITY_REQUIRE_AUTH=1, default off',
  ),
  '',
  paragraph(
    'GET /health answers {"status":"ok","redis":"ready"} (503 and "unavailable" while Redis is ' +
      'unreachable); plain HTTP requests under the WebSocket path get 426. SIGTERM or SIGINT ' +
      'closes clients with 1001 and exits.',
  ),
].join('\n')
