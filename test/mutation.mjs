// Runs StrykerJS through its API, for Node 20: `stryker run` (npm run mutation) refuses to start
// below Node 22, but the mutation run itself works there. Same arguments as `stryker run`'s
// `--mutate`; the rest comes from stryker.config.mjs.
//   node test/mutation.mjs --mutate src/delivery/hub.ts
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const core = resolve('node_modules/@stryker-mutator/core/dist/src/stryker.js')
const { Stryker } = await import(pathToFileURL(core).href)
const argv = process.argv.slice(2)
const i = argv.findIndex((a) => a === '--mutate' || a === '-m')
const options = i === -1 ? {} : { mutate: argv[i + 1].split(',') }
await new Stryker(options).runMutationTest()
