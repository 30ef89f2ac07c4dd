/**
 * CNI latency: the installed plugin (launcher → Node → the agent's socket → IPAM exec, TAP, addresses,
 * route → result) driven as a runtime drives it against a live agent: 100 ADDs one after the other, then
 * their 100 DELs, then 20 ADDs at once and their 20 DELs at once; p50 and p99 of each, and failures. The
 * targets: sequential ADD p50 ≤ 80 ms and p99 ≤ 200 ms, and no failure at all (concurrency included).
 * Also the plugin's start-up alone (VERSION, no agent) beside a bare `node -e 0`: the floor every
 * command pays.
 *
 * Needs root (namespaces, TAPs): without it the bench prints a loud SKIPPED line and reports nothing.
 * The measuring runs in a child process (`node dist/bench/cni.js --worker`): the harness's one-shot
 * benchmarks are synchronous, a live lab is not.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchEntry, OnceBench, OnceFigure } from './harness.js';

const SELF = fileURLToPath(import.meta.url);
const SEQUENTIAL = 100;
const CONCURRENT = 20;

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

function latencyBench(): OnceBench {
  return {
    name: 'cni.latency',
    once: true,
    run(): OnceFigure[] {
      if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
        process.stderr.write('\n*** SKIPPED — NOT ROOT: cni.latency needs root (network namespaces, TAPs, a live agent); no CNI figures ***\n\n');
        return [];
      }
      const r = spawnSync(process.execPath, [SELF, '--worker'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 15 * 60_000 });
      if (r.status !== 0) throw new Error(`cni.latency worker exited with ${r.status ?? r.signal}`);
      return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as OnceFigure[];
    },
  };
}

export function cniBenches(): BenchEntry[] {
  return [
    {
      name: 'cni.latency',
      make: latencyBench,
      figures: [
        'cni.add.seq.p50',
        'cni.add.seq.p99',
        'cni.add.seq.agent.p50',
        'cni.add.seq.agent.ipam.p50',
        'cni.add.seq.agent.plug.p50',
        'cni.add.seq.agent.save.p50',
        'cni.del.seq.p50',
        'cni.del.seq.p99',
        'cni.add.conc.p50',
        'cni.add.conc.p99',
        'cni.del.conc.p50',
        'cni.del.conc.p99',
        'cni.failures.seq',
        'cni.failures.conc',
        'cni.start.node',
        'cni.start.plugin',
      ],
    },
  ];
}

async function worker(): Promise<void> {
  const { Rig } = await import('../test/live/rig.js');
  const { cni, cniLab, execWith, seineNetConf } = await import('../test/cni/rig.js');
  const rig = new Rig('cbn');
  const figures: OnceFigure[] = [];
  const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
  try {
    const [n] = await cniLab(rig, 1);
    const node = n!;
    const conf = seineNetConf(node);
    // The runtime makes the namespaces before it calls the plugin: not part of the latency.
    const pods: Array<{ id: string; path: string }> = [];
    for (let i = 0; i < SEQUENTIAL + CONCURRENT; i++) {
      const ns = await rig.addNetns(`b${i}`);
      pods.push({ id: `bench${rig.tag}x${i}`, path: `/run/netns/${ns}` });
    }
    const add = async (p: { id: string; path: string }): Promise<{ ms: number; ok: boolean }> => {
      const t0 = process.hrtime.bigint();
      const r = await cni(node, { command: 'ADD', containerId: p.id, netns: p.path, ifname: 'eth0' }, conf);
      if (r.code !== 0) process.stderr.write(`cni bench: ADD ${p.id}: ${r.stdout}${r.stderr}\n`);
      return { ms: ms(t0), ok: r.code === 0 };
    };
    const del = async (p: { id: string; path: string }): Promise<{ ms: number; ok: boolean }> => {
      const t0 = process.hrtime.bigint();
      const r = await cni(node, { command: 'DEL', containerId: p.id, netns: p.path, ifname: 'eth0' }, conf);
      if (r.code !== 0) process.stderr.write(`cni bench: DEL ${p.id}: ${r.stdout}${r.stderr}\n`);
      return { ms: ms(t0), ok: r.code === 0 };
    };
    // Warm-up: the page cache, the IPAM plugin's VERSION (asked once per binary), the agent's JIT.
    for (const p of pods.slice(0, 3)) {
      await add(p);
      await del(p);
    }
    const seqAdd: number[] = [];
    const seqDel: number[] = [];
    let seqFail = 0;
    const seq = pods.slice(0, SEQUENTIAL);
    for (const p of seq) {
      const r = await add(p);
      seqAdd.push(r.ms);
      if (!r.ok) seqFail++;
    }
    for (const p of seq) {
      const r = await del(p);
      seqDel.push(r.ms);
      if (!r.ok) seqFail++;
    }
    // The agent's share of each sequential ADD (IPAM exec + TAP + kernel), from its log: what is left once
    // the plugin's Node has started.
    const agentMs: number[] = [];
    const steps: Array<{ ipam: number; plug: number; save: number }> = [];
    for (const line of node.agent!.output().split('\n')) {
      if (!line.includes('"cni: pod attached"')) continue;
      const m = (JSON.parse(line) as { ms?: { ipam: number; plug: number; save: number } }).ms;
      if (m !== undefined) {
        agentMs.push(m.ipam + m.plug + m.save);
        steps.push(m);
      }
    }
    const agentSeq = agentMs.slice(3, 3 + SEQUENTIAL);
    const stepSeq = steps.slice(3, 3 + SEQUENTIAL);
    const conc = pods.slice(SEQUENTIAL);
    const ca = await Promise.all(conc.map(add));
    const cd = await Promise.all(conc.map(del));
    const concFail = [...ca, ...cd].filter((x) => !x.ok).length;
    // The floor: Node's own start-up, then the plugin's (VERSION: no agent, no I/O).
    const startNode: number[] = [];
    const startPlugin: number[] = [];
    for (let i = 0; i < 20; i++) {
      let t0 = process.hrtime.bigint();
      await execWith([process.execPath, '-e', '0'], {}, '');
      startNode.push(ms(t0));
      t0 = process.hrtime.bigint();
      await execWith([join(node.binDir, 'seine')], { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.1.0"}');
      startPlugin.push(ms(t0));
    }
    const f = (name: string, what: string, value: number, unit: string, target?: number): OnceFigure => ({
      name,
      what,
      value: Math.round(value * 10) / 10,
      unit,
      ...(target !== undefined ? { target, atMost: true } : {}),
    });
    figures.push(
      f('cni.add.seq.p50', `ADD, ${SEQUENTIAL} one after the other: median (plugin start, IPAM exec, TAP, address, route, result)`, pct(seqAdd, 50), 'ms', 80),
      f('cni.add.seq.p99', 'ADD, sequential: 99th percentile', pct(seqAdd, 99), 'ms', 200),
      f('cni.add.seq.agent.p50', "ADD, sequential: the agent's part alone (IPAM exec, TAP, address, route, attachments file), median", pct(agentSeq, 50), 'ms'),
      f(
        'cni.add.seq.agent.ipam.p50',
        "ADD, sequential: the agent's IPAM exec (host-local), median",
        pct(
          stepSeq.map((x) => x.ipam),
          50,
        ),
        'ms',
      ),
      f(
        'cni.add.seq.agent.plug.p50',
        "ADD, sequential: the agent's TAP, bridge port, addresses and routes (no exec), median",
        pct(
          stepSeq.map((x) => x.plug),
          50,
        ),
        'ms',
      ),
      f(
        'cni.add.seq.agent.save.p50',
        "ADD, sequential: the agent's attachments file (written to a temporary file and renamed, not fsync'd), median",
        pct(
          stepSeq.map((x) => x.save),
          50,
        ),
        'ms',
      ),
      f('cni.del.seq.p50', `DEL, ${SEQUENTIAL} one after the other: median`, pct(seqDel, 50), 'ms'),
      f('cni.del.seq.p99', 'DEL, sequential: 99th percentile', pct(seqDel, 99), 'ms'),
      f(
        'cni.add.conc.p50',
        `ADD, ${CONCURRENT} at once: median (2 cores shared by all of them)`,
        pct(
          ca.map((x) => x.ms),
          50,
        ),
        'ms',
      ),
      f(
        'cni.add.conc.p99',
        `ADD, ${CONCURRENT} at once: 99th percentile`,
        pct(
          ca.map((x) => x.ms),
          99,
        ),
        'ms',
      ),
      f(
        'cni.del.conc.p50',
        `DEL, ${CONCURRENT} at once: median`,
        pct(
          cd.map((x) => x.ms),
          50,
        ),
        'ms',
      ),
      f(
        'cni.del.conc.p99',
        `DEL, ${CONCURRENT} at once: 99th percentile`,
        pct(
          cd.map((x) => x.ms),
          99,
        ),
        'ms',
      ),
      f('cni.failures.seq', `failed commands of the ${2 * SEQUENTIAL} sequential`, seqFail, 'commands', 0),
      f('cni.failures.conc', `failed commands of the ${2 * CONCURRENT} concurrent`, concFail, 'commands', 0),
      f('cni.start.node', 'a bare `node -e 0`, median of 20: the floor under every command', pct(startNode, 50), 'ms'),
      f('cni.start.plugin', 'the plugin answering VERSION (launcher + Node + its modules), median of 20', pct(startPlugin, 50), 'ms'),
    );
  } finally {
    await rig.cleanup();
  }
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

if (process.argv[2] === '--worker') await worker();
