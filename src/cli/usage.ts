/** The help text of `wsfacility --help`. */
export const USAGE = `Usage: wsfacility [options]

Runs a WebSocket broker for backends that only publish to Redis (a Django app using ws4redis's
RedisPublisher, a worker). Browsers connect to /ws/<facility>?subscribe-broadcast&...; anyone
publishes on the channels broadcast:<facility>, user:<name>:<facility>, ...

Options (each may also come from the environment variable shown; the flag wins):
  --port N               port to listen on; 0 picks a free one
                           env PORT, default 8000
  --host HOST            address to bind
                           env HOST, default 127.0.0.1
  --redis URL            redis:// or rediss:// URL; without it, messages stay in this
                         process (in-memory engine)
                           env REDIS_URL
  --redis-cluster URLS   a Redis Cluster instead: comma-separated root node URLs; channels
                         use sharded pub/sub, so publishers must SPUBLISH
                           env WSFACILITY_REDIS_CLUSTER
  --workers N            run N worker processes sharing the port (node:cluster); needs
                         --redis or --redis-cluster
                           env WSFACILITY_WORKERS, default 1
  --prefix NAME          channel prefix: ws4redis gives ws4redis:broadcast:<facility>
                           env WSFACILITY_PREFIX or WS4REDIS_PREFIX, default none
  --expire SECONDS       keep each channel's last message this long and replay it to
                         new clients; 0 turns it off
                           env WSFACILITY_EXPIRE, default 0
  --history-size N       keep the last N messages of each channel, with offsets, so that
                         clients recover what they missed while reconnecting and the
                         server catches up after Redis hiccups (needs --history-ttl;
                         clients see offsets with --format json)
                           env WSFACILITY_HISTORY_SIZE, default off
  --history-ttl SECONDS  how long a channel's history lives after its last publish
                           env WSFACILITY_HISTORY_TTL
  --format raw|json      wire format of every facility: raw (ws4redis, messages as they
                         were published) or json (the {"type":"data",...} envelope)
                           env WSFACILITY_FORMAT, default raw
  --heartbeat TEXT       a text clients send to keep alive: answered with the same
                         text, never published. A value starting with "-" needs the
                         = form: --heartbeat=--heartbeat--
                           env WSFACILITY_HEARTBEAT, default none
  --client-publish LIST  audiences clients may publish to (publish-* flags), comma-
                         separated from broadcast,group,user,session; empty for none
                           env WSFACILITY_CLIENT_PUBLISH, default session,user
  --path PATH            path prefix of WebSocket URLs
                           env WSFACILITY_PATH, default /ws/
  --metrics              serve Prometheus metrics at GET /metrics (they name facilities
                         and show load: keep that route internal)
                           env WSFACILITY_METRICS=1, default off
  -h, --help             print this help and exit

Limits (0 = unlimited; see the README's "Limits and security"):
  --publish-rate N       messages per second one client may send (over it: json
                         facilities answer rate_limited, raw ones close 1008)
                           env WSFACILITY_PUBLISH_RATE, default 20
  --publish-burst N      messages a client may send at once, default one second's worth
                           env WSFACILITY_PUBLISH_BURST
  --max-connections N    connections this process accepts (over it: 503)
                           env WSFACILITY_MAX_CONNECTIONS, default 0
  --max-user-connections N
                         connections of one user this process accepts (over it: 429)
                           env WSFACILITY_MAX_USER_CONNECTIONS, default 0
  --max-payload BYTES    largest client message (over it: close 1009)
                           env WSFACILITY_MAX_PAYLOAD, default 1048576
  --handshake-timeout MS how long identity and Redis work of one upgrade may take
                         (over it: 503)
                           env WSFACILITY_HANDSHAKE_TIMEOUT, default 10000
  --origins LIST         comma-separated origins (https://app.example.com) allowed
                         besides the server's own host; set, every connection is
                         checked, unset only cookie-authenticated ones (403)
                           env WSFACILITY_ORIGINS, default none
  --refusals MODE        how refusals reach clients: http (a status before the upgrade),
                         close (accept, then close with 4000 + status and the reason, which
                         browsers can read) or auto (close for clients offering the
                         wsfacility subprotocol, as wsfacility/client does; http for others)
                           env WSFACILITY_REFUSALS, default auto

Identity (without it every client is anonymous: broadcast channels only). Secrets given as
flags show in the process list; prefer the environment variables.
  --jwt-secret SECRET    accept JWTs signed with this HMAC secret (HS256/384/512), sent
                         as ?token=, Authorization: Bearer or subprotocol bearer.<jwt>;
                         sub is the user, groups the groups, sid the session key
                           env WSFACILITY_JWT_SECRET
  --jwks-url URL         accept JWTs signed with a key of this http(s) JWKS document
                         (picked by kid; RS*, PS*, ES*, EdDSA); not with --jwt-secret
                           env WSFACILITY_JWKS_URL
  --jwt-issuer ISS       require this iss claim (needs --jwt-secret or --jwks-url)
                           env WSFACILITY_JWT_ISSUER
  --jwt-audience AUD     require this aud claim (needs --jwt-secret or --jwks-url)
                           env WSFACILITY_JWT_AUDIENCE
  --session-secret LIST  read express-session cookies signed with this secret (comma-
                         separated when rotating: all verify) and load their sessions
                         as connect-redis stores them in --redis (needed)
                           env WSFACILITY_SESSION_SECRET
  --session-cookie NAME  name of the session cookie (needs --session-secret)
                           env WSFACILITY_SESSION_COOKIE, default connect.sid
  --session-prefix P     connect-redis's key prefix (needs --session-secret)
                           env WSFACILITY_SESSION_PREFIX, default sess:
  --require-auth         refuse clients without a user with 401 (needs a JWT or
                         session option)
                           env WSFACILITY_REQUIRE_AUTH=1, default off

GET /health answers {"status":"ok","redis":"ready"} (503 and "unavailable" while Redis is
unreachable); plain HTTP requests
under the WebSocket path get 426. SIGTERM or SIGINT closes clients with 1001 and exits.`
