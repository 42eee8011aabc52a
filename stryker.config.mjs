// Mutation testing of the delivery core (STYLE.md, "Tests that would notice"): each mutant of a
// module runs that module's unit tests, with the command runner.
//   npm run mutation                                   every core module, all their unit tests
//   npx stryker run --mutate src/delivery/hub.ts       one module, only its own unit tests
//   node test/mutation.mjs --mutate src/upgrade/upgrader.ts:200-260   lines of one (Node 20)
// Slow on 2 cores: run one module at a time.

/** Each core module and the unit tests that pin it. */
const CORE = {
  'src/delivery/hub.ts': ['test/delivery/hub.test.ts'],
  'src/delivery/run.ts': ['test/delivery/hub.test.ts'],
  'src/delivery/frame.ts': ['test/delivery/frame.test.ts'],
  'src/connection/outbound.ts': [
    'test/connection/outbound.test.ts',
    'test/connection/outbound-delay.test.ts',
  ],
  'src/connection/owner.ts': ['test/connection/owner.test.ts', 'test/upgrade/refusal.test.ts'],
  'src/connection/publishing.ts': ['test/connection/publishing.test.ts'],
  'src/connection/registry.ts': [
    'test/connection/registry.test.ts',
    'test/connection/owner.test.ts',
  ],
  'src/connection/inbound.ts': ['test/connection/inbound.test.ts'],
  'src/connection/flush-scheduler.ts': ['test/connection/flush-scheduler.test.ts'],
  'src/connection/publish-budget.ts': ['test/connection/publish-budget.test.ts'],
  'src/upgrade/upgrader.ts': [
    'test/upgrade/upgrader.test.ts',
    'test/upgrade/refusal.test.ts',
    'test/history/memory.test.ts',
  ],
  'src/history/channel-history.ts': ['test/history/channel-history.test.ts'],
  'src/history/wire.ts': ['test/history/wire.test.ts'],
  'src/history/recovery.ts': ['test/history/recovery.test.ts'],
  'src/upgrade/refusal.ts': ['test/upgrade/refusal.test.ts'],
  'src/upgrade/accept.ts': ['test/upgrade/accept.test.ts', 'test/upgrade/refusal.test.ts'],
  'src/engine/coalesce.ts': ['test/coalesce.test.ts'],
  'src/identity/hmac-jwt.ts': ['test/hmac-jwt.test.ts'],
  'src/identity/hmac-sha256.ts': ['test/hmac-sha256.test.ts', 'test/hmac-jwt.test.ts'],
  'src/upgrade/parse-url.ts': ['test/request.test.ts'],
  'src/channels/redis-subscriber.ts': ['test/subscriber.test.ts'],
  'src/engine/redis.ts': ['test/engine.test.ts', 'test/presence.test.ts', 'test/faults.test.ts'],
  'src/engine/redis-options.ts': ['test/redis-options.test.ts', 'test/cluster.test.ts'],
  'src/engine/redis-presence.ts': [
    'test/engine.test.ts',
    'test/presence.test.ts',
    'test/faults.test.ts',
  ],
  'src/cluster/presence.ts': [
    'test/presence.test.ts',
    'test/presence-facility.test.ts',
    'test/connection/owner.test.ts',
  ],
}

/** The module given with `--mutate` / `-m`, when it is exactly one core module. */
function selected(argv) {
  const i = argv.findIndex((a) => a === '--mutate' || a === '-m')
  const value = i === -1 ? argv.find((a) => a.startsWith('--mutate='))?.slice(9) : argv[i + 1]
  // A line range (`src/upgrade/upgrader.ts:200-260`) runs the same module's tests.
  const file = value?.replace(/:\d+(-\d+)?$/, '')
  return file !== undefined && file in CORE ? file : null
}

const one = selected(process.argv)
const tests = one ? CORE[one] : [...new Set(Object.values(CORE).flat())]

export default {
  $schema: './node_modules/@stryker-mutator/core/schema/stryker-schema.json',
  testRunner: 'command',
  commandRunner: {
    command: `node --import tsx --test --test-concurrency=1 --test-reporter=dot ${tests.join(' ')}`,
  },
  mutate: Object.keys(CORE),
  coverageAnalysis: 'off',
  concurrency: 2,
  timeoutMS: 8000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  // Under dist/, which ESLint, Prettier and git already leave alone.
  tempDirName: 'dist/.stryker-tmp',
  cleanTempDir: true,
}
