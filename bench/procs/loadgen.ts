/** Child process: a LoadGenerator driven by the bench over IPC. */
import { serve } from '../ipc.js'
import { LoadGenerator, type Protocol } from '../loadgen.js'

let gen: LoadGenerator | null = null

serve({
  init: (a) => {
    gen = new LoadGenerator({
      port: a.port as number,
      protocol: a.protocol as Protocol,
      sampleEvery: a.sampleEvery as number,
      track: a.track === true,
    })
  },
  connect: (a) => {
    const paths = a.paths as string[]
    const auths = (a.auths as (object | null)[] | undefined) ?? []
    return gen!.connect(
      paths.length,
      (i) => paths[i]!,
      (i) => auths[i] ?? null,
      (a.concurrency as number | undefined) ?? 100,
    )
  },
  reset: () => gen!.reset(),
  stats: (a) => gen!.stats(a.latency === true),
  close: () => gen!.closeAll(),
  reconnect: (a) =>
    gen!.reconnect(a.path as string, a.recover === true, (a.concurrency as number) ?? 100),
  recovery: () => gen!.recoveryStats(),
})
