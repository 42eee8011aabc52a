#!/usr/bin/env node
// The standalone server; see `wsfacility --help`. Needs the build in dist/ (npm run build).
import { run } from '../dist/src/cli/main.js'

run()
