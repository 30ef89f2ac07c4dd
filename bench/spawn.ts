/**
 * What fork costs a large process: a small program started from a process that holds ~300 MiB resident
 * (as the agent does with its packet pool), through Node's child_process (`run`, lab/netns.ts: libuv
 * forks, copying the parent's page tables) and through the addon's posix_spawn (`runFast`,
 * live/spawn.ts: CLONE_VM|CLONE_VFORK, nothing copied), alternately in one process, and their ratio.
 * The program is host-local VERSION (the agent's per-ADD exec) where /usr/lib/cni/host-local exists,
 * else /bin/true; the figures' text says which. native/README.md points here for the figure.
 *
 * Needs the native addon (without it: a loud SKIPPED line, no figures). The measuring runs in a child
 * process (`node dist/bench/spawn.js --worker`): the harness's one-shot benchmarks are synchronous, the
 * spawns are not, and the 300 MiB must not stay in the harness.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { median } from '../src/sim/latency.js';
import type { BenchEntry, OnceBench, OnceFigure } from './harness.js';

const SELF = fileURLToPath(import.meta.url);
/** The resident memory the spawning process holds (MiB), as an agent's pool of 64 KiB buffers does. */
const HELD_MIB = 300;
/** Spawns measured per way (after a warm-up of 3 each). */
const SPAWNS = 40;
const HOST_LOCAL = '/usr/lib/cni/host-local';

export function spawnBenches(): BenchEntry[] {
  return [{ name: 'spawn.fork', make: forkBench, figures: ['spawn.fork.child_process', 'spawn.fork.posix_spawn', 'spawn.fork.ratio'] }];
}

function forkBench(): OnceBench {
  return {
    name: 'spawn.fork',
    once: true,
    run(): OnceFigure[] {
      const r = spawnSync(process.execPath, [SELF, '--worker'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 5 * 60_000 });
      if (r.status !== 0) throw new Error(`spawn.fork worker exited with ${r.status ?? r.signal}`);
      return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as OnceFigure[];
    },
  };
}

async function worker(): Promise<OnceFigure[]> {
  const { nativeUnavailable } = await import('../src/live/native.js');
  const why = nativeUnavailable();
  if (why !== null) {
    process.stderr.write(`\n*** SKIPPED — NO NATIVE ADDON: spawn.fork compares child_process with the addon's posix_spawn (${why}); no figures ***\n\n`);
    return [];
  }
  const { run } = await import('../src/live/lab/netns.js');
  const { runFast } = await import('../src/live/spawn.js');
  // Resident, not just reserved: every page written, so fork has its page-table entries to copy.
  const held: Buffer[] = [];
  for (let i = 0; i < HELD_MIB; i++) {
    const b = Buffer.allocUnsafeSlow(1 << 20);
    for (let off = 0; off < b.length; off += 4096) b[off] = i & 0xff;
    held.push(b);
  }
  const hostLocal = existsSync(HOST_LOCAL);
  const argv = hostLocal ? [HOST_LOCAL] : ['/bin/true'];
  const opts = hostLocal ? { env: { CNI_COMMAND: 'VERSION', PATH: '/usr/bin:/bin' }, input: '{"cniVersion":"1.0.0"}' } : { env: { PATH: '/usr/bin:/bin' } };
  const program = hostLocal ? 'host-local VERSION' : '/bin/true (no /usr/lib/cni/host-local here)';
  const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
  const viaFork: number[] = [];
  const viaSpawn: number[] = [];
  // Alternately, so that the machine's noise falls on both alike.
  for (let i = 0; i < SPAWNS + 3; i++) {
    let t0 = process.hrtime.bigint();
    await run(argv, opts);
    if (i >= 3) viaFork.push(ms(t0));
    t0 = process.hrtime.bigint();
    await runFast(argv, opts);
    if (i >= 3) viaSpawn.push(ms(t0));
  }
  // Read after the spawns: the buffers stay alive (and resident) until every spawn is measured.
  const rss = Math.round(process.memoryUsage().rss / 2 ** 20);
  if (held.length !== HELD_MIB) throw new Error('the held memory went away');
  const fork = median(viaFork);
  const spawn = median(viaSpawn);
  const round = (x: number): number => Math.round(x * 100) / 100;
  return [
    {
      name: 'spawn.fork.child_process',
      what: `${program} through child_process from a process of ${rss} MiB resident, median of ${SPAWNS}`,
      value: round(fork),
      unit: 'ms',
    },
    {
      name: 'spawn.fork.posix_spawn',
      what: `${program} through the addon's posix_spawn (runFast), same process, median of ${SPAWNS}`,
      value: round(spawn),
      unit: 'ms',
    },
    { name: 'spawn.fork.ratio', what: 'child_process ÷ posix_spawn, measured in the same run', value: round(fork / spawn), unit: '×' },
  ];
}

if (process.argv[2] === '--worker') {
  worker().then(
    (figures) => {
      process.stdout.write(`${JSON.stringify(figures)}\n`);
      process.exit(0);
    },
    (e: unknown) => {
      process.stderr.write(`spawn.fork worker: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}
