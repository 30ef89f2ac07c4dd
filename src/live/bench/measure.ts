/**
 * `seine bench live`, the measurements in one lab that is up: iperf3 TCP pod to pod (1 and 4 streams),
 * UDP at full offered rate with 64- and 1400-byte payloads from our sendmmsg generator, counted by our
 * recvmmsg sink (udpgen.ts), ping RTT, and the CPU time the datapath spent per GB during the 1-stream
 * TCP runs.
 *
 * The tools run in the pods' namespaces; the iperf3 server and the UDP sink are lab processes
 * (`lab.spawn`), so taking the lab down stops them. Every client has a timeout of its duration plus a
 * margin.
 */
import { readFileSync } from 'node:fs';
import { controlRequest } from '../control.js';
import type { MetricsSnapshot } from '../metrics.js';
import { sleep } from '../sleep.js';
import { CommandError, runInNetns, type RunResult } from '../lab/netns.js';
import { processAlive, type LabHandle } from '../lab/state.js';
import { UDP_METHOD, UDPGEN_SCRIPT, type UdpSendReport, type UdpSinkReport } from './udpgen.js';
import {
  parseIperfTcp,
  parsePingRtts,
  parseProcStat,
  procCpuTicks,
  spreadOf,
  type BenchResult,
  type Datapath,
  type EspSetup,
  type MachineCpu,
  type Metric,
  type Spread,
} from './results.js';

export const IPERF_PORT = 5201;
/** The UDP sink's port (apart from iperf3's, whose server also takes UDP on its own). */
const UDPGEN_PORT = 5202;
/** UDP payloads measured; the large one is cut to the pod MTU less IPv4 and UDP headers when ESP leaves less. */
const UDP_SMALL = 64;
const UDP_LARGE = 1400;

export interface BenchTarget {
  lab: LabHandle;
  datapath: Datapath;
  esp: EspSetup;
  client: { ns: string };
  server: { ns: string; ip: string; node: string };
  podMtu: number;
  /**
   * Whose CPU time counts as the datapath's: the processes of these roles in the lab's state (agents,
   * ovs-vswitchd), or the machine's kernel time from /proc/stat (the kernel datapath has no process).
   */
  cpu: { roles: string[] } | 'kernel';
  /**
   * seine only: the agents' control sockets. Their `stats` carry the heap meter (live/heap.ts), read
   * around the 1-stream TCP runs for the bytes of JavaScript heap allocated per frame the agents moved.
   */
  controls?: readonly string[];
}

export interface MeasureOptions {
  durationS: number;
  runs: number;
  pings: number;
  /** Progress lines (stderr). */
  say: (line: string) => void;
  /** Clock ticks per second of /proc times (USER_HZ). */
  clkTck: number;
}

/** The stdout of a command, also when it exited non-zero (iperf3 -J prints its error as JSON). */
async function output(ns: string, argv: string[], timeoutMs: number): Promise<string> {
  let r: RunResult;
  try {
    r = await runInNetns(ns, argv, { timeoutMs });
  } catch (e) {
    if (e instanceof CommandError && !e.timedOut && e.stdout.trim() !== '') return e.stdout;
    throw e;
  }
  return r.stdout;
}

/** Starts the iperf3 server in the server pod and waits until it listens. */
export async function startIperfServer(t: BenchTarget): Promise<void> {
  t.lab.spawn(t.server.ns, ['iperf3', '-s', '-p', String(IPERF_PORT)], { role: 'iperf3-server', node: t.server.node }).child.unref();
  const until = Date.now() + 10_000;
  for (;;) {
    const ss = await runInNetns(t.server.ns, ['ss', '-Hltn', `sport = :${IPERF_PORT}`]).catch(() => ({ stdout: '' }));
    if (ss.stdout.includes(`:${IPERF_PORT}`)) return;
    if (Date.now() > until) throw new Error(`iperf3 -s did not listen on port ${IPERF_PORT} in ${t.server.ns} within 10 s`);
    await sleep(100);
  }
}

/** The lab's first check: the client pod pings the server pod (a few tries while the datapath settles). */
export async function verifyPing(t: BenchTarget, name: string): Promise<void> {
  let last = '';
  for (let i = 0; i < 10; i++) {
    try {
      await runInNetns(t.client.ns, ['ping', '-n', '-c', '1', '-W', '1', t.server.ip], { timeoutMs: 5000 });
      return;
    } catch (e) {
      last = (e as Error).message;
    }
  }
  throw new Error(`lab ${name}: the client pod cannot ping the server pod ${t.server.ip} (10 tries; last: ${last})`);
}

function cpuTicksOf(t: BenchTarget): number | MachineCpu {
  if (t.cpu === 'kernel') return parseProcStat(readFileSync('/proc/stat', 'latin1'));
  const roles = new Set(t.cpu.roles);
  let sum = 0;
  for (const p of t.lab.state().processes) {
    if (!roles.has(p.role) || !processAlive(p.pid, p.startTime)) continue;
    try {
      sum += procCpuTicks(readFileSync(`/proc/${p.pid}/stat`, 'latin1')) ?? 0;
    } catch {
      /* gone since */
    }
  }
  return sum;
}

const machineBusy = (): number => parseProcStat(readFileSync('/proc/stat', 'latin1')).busy;

async function iperf(t: BenchTarget, args: string[], o: MeasureOptions): Promise<string> {
  return output(
    t.client.ns,
    ['iperf3', '-c', t.server.ip, '-p', String(IPERF_PORT), '-t', String(o.durationS), '-J', '--connect-timeout', '3000', ...args],
    (o.durationS + 20) * 1000,
  );
}

/** Runs `f`, and once more after a pause when it fails (a UDP flood can starve iperf3's control connection). */
async function twice<T>(what: string, f: () => Promise<T>, say: (l: string) => void): Promise<T> {
  try {
    return await f();
  } catch (e) {
    say(`  ${what} failed (${(e as Error).message.split('\n')[0]}); once more`);
    await sleep(1000);
    return f();
  }
}

/** What one UDP run gives: delivered and offered kpps, and the generator's and sink's CPU (cores busy). */
interface UdpFigures {
  kpps: number;
  offeredKpps: number;
  sent: number;
  received: number;
  waits: number;
  senderCores: number;
  sinkCores: number;
}

/**
 * One UDP run: the sink starts in the server pod and says it is bound, the sender blasts `len`-byte
 * datagrams for the duration from the client pod, then after a pause for what is still in flight the
 * sink is told to stop (its stdin closes) and reports its count. Delivered pps = received / the send
 * window.
 */
async function udpRun(t: BenchTarget, len: number, o: MeasureOptions): Promise<UdpFigures> {
  const { child } = t.lab.spawn(
    t.server.ns,
    [process.execPath, UDPGEN_SCRIPT, 'sink', '--port', String(UDPGEN_PORT), '--len', String(len), '--max-seconds', String(o.durationS + 60)],
    { role: 'udp-sink', node: t.server.node, stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines: string[] = [];
  let buf = '',
    waiter: (() => void) | null = null;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    waiter?.();
  });
  const exited = new Promise<void>((res) =>
    child.once('close', () => {
      waiter?.();
      res();
    }),
  );
  const line = async (k: number, ms: number): Promise<string> => {
    const until = Date.now() + ms;
    while (lines.length <= k) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > until)
        throw new Error(`the UDP sink in ${t.server.ns} ${child.exitCode !== null ? `exited (${child.exitCode})` : 'did not answer'}`);
      await new Promise<void>((res) => {
        waiter = res;
        setTimeout(res, 100);
      });
    }
    return lines[k]!;
  };
  try {
    await line(0, 10_000);
    const sendOut = await runInNetns(
      t.client.ns,
      [process.execPath, UDPGEN_SCRIPT, 'send', '--to', t.server.ip, '--port', String(UDPGEN_PORT), '--len', String(len), '--seconds', String(o.durationS)],
      { timeoutMs: (o.durationS + 20) * 1000 },
    );
    const s = JSON.parse(sendOut.stdout) as UdpSendReport;
    await sleep(300); // what the datapath still holds arrives, or is lost
    child.stdin!.end();
    const r = JSON.parse(await line(1, 10_000)) as UdpSinkReport;
    if (r.received <= 0) throw new Error(`no datagram delivered (${s.sent} sent)`);
    return {
      kpps: r.received / s.seconds / 1e3,
      offeredKpps: s.sent / s.seconds / 1e3,
      sent: s.sent,
      received: r.received,
      waits: s.waits,
      senderCores: s.cpu_s / s.seconds,
      sinkCores: r.cpu_s / s.seconds,
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  }
}

/** The agents' heap allocated (bytes) and frames moved (every live device's reads and writes), summed. */
async function agentHeap(controls: readonly string[]): Promise<{ bytes: number; frames: number }> {
  let bytes = 0;
  let frames = 0;
  for (const c of controls) {
    const s = (await controlRequest(c, { op: 'stats' }, 5000))['snapshot'] as MetricsSnapshot;
    bytes += s.heap.allocatedBytes;
    for (const d of s.devices) frames += d.rxPackets + d.txPackets;
  }
  return { bytes, frames };
}

/** Every measurement of one lab, `runs` times each (interleaved, so a slow moment of the machine spreads over all figures). */
export async function measure(t: BenchTarget, o: MeasureOptions): Promise<BenchResult> {
  const xs: Record<Metric | 'machine_cpu_s_per_gb', number[]> = {
    tcp_gbps: [],
    tcp4_gbps: [],
    udp64_kpps: [],
    udp1400_kpps: [],
    rtt_ms: [],
    cpu_s_per_gb: [],
    machine_cpu_s_per_gb: [],
  };
  const heapPerFrame: number[] = [];
  const offered: Record<'udp64_kpps' | 'udp1400_kpps', number[]> = { udp64_kpps: [], udp1400_kpps: [] };
  const toolCores: Record<'udp64_kpps' | 'udp1400_kpps', { sender: number[]; sink: number[] }> = {
    udp64_kpps: { sender: [], sink: [] },
    udp1400_kpps: { sender: [], sink: [] },
  };
  const large = Math.min(UDP_LARGE, t.podMtu - 28);
  for (let k = 0; k < o.runs; k++) {
    const tag = `run ${k + 1}/${o.runs}`;
    const tcp1 = await twice(
      'TCP 1 stream',
      async () => {
        const h0 = t.controls !== undefined ? await agentHeap(t.controls) : null;
        const c0 = cpuTicksOf(t),
          m0 = machineBusy();
        const r = parseIperfTcp(await iperf(t, [], o));
        const c1 = cpuTicksOf(t),
          m1 = machineBusy();
        const h1 = t.controls !== undefined ? await agentHeap(t.controls) : null;
        const dp = typeof c0 === 'number' ? (c1 as number) - c0 : (c1 as MachineCpu).kernel - c0.kernel;
        const heap = h0 !== null && h1 !== null && h1.frames > h0.frames ? (h1.bytes - h0.bytes) / (h1.frames - h0.frames) : null;
        return { r, cpuS: dp / o.clkTck, machineS: (m1 - m0) / o.clkTck, heap };
      },
      o.say,
    );
    if (tcp1.heap !== null) heapPerFrame.push(tcp1.heap);
    xs.tcp_gbps.push(tcp1.r.gbps);
    xs.cpu_s_per_gb.push(tcp1.cpuS / (tcp1.r.bytes / 1e9));
    xs.machine_cpu_s_per_gb.push(tcp1.machineS / (tcp1.r.bytes / 1e9));
    o.say(
      `  ${tag}: TCP 1 stream ${tcp1.r.gbps.toFixed(3)} Gbit/s, datapath CPU ${tcp1.cpuS.toFixed(2)} s${tcp1.heap !== null ? `, agents' heap ${tcp1.heap.toFixed(2)} B allocated per frame` : ''}`,
    );
    const tcp4 = await twice('TCP 4 streams', async () => parseIperfTcp(await iperf(t, ['-P', '4'], o)), o.say);
    xs.tcp4_gbps.push(tcp4.gbps);
    o.say(`  ${tag}: TCP 4 streams ${tcp4.gbps.toFixed(3)} Gbit/s`);
    for (const [len, key] of [
      [UDP_SMALL, 'udp64_kpps'],
      [large, 'udp1400_kpps'],
    ] as const) {
      const u = await twice(`UDP ${len} B`, () => udpRun(t, len, o), o.say);
      xs[key].push(u.kpps);
      offered[key].push(u.offeredKpps);
      toolCores[key].sender.push(u.senderCores);
      toolCores[key].sink.push(u.sinkCores);
      o.say(
        `  ${tag}: UDP ${len}-byte payload ${u.kpps.toFixed(1)} kpps delivered of ${u.offeredKpps.toFixed(1)} offered (${u.received} of ${u.sent}; sender ${u.senderCores.toFixed(2)} cores, ${u.waits} waits on a full socket buffer; sink ${u.sinkCores.toFixed(2)} cores)`,
      );
      await sleep(500); // let the flood's backlog drain before the next measurement
    }
  }
  const pingOut = await output(t.client.ns, ['ping', '-n', '-c', String(o.pings), '-i', '0.05', '-W', '1', t.server.ip], (o.pings * 0.05 + 10) * 1000);
  xs.rtt_ms = parsePingRtts(pingOut);
  o.say(`  ping: median ${spreadOf(xs.rtt_ms).median.toFixed(3)} ms over ${xs.rtt_ms.length} echoes`);
  const spread = {} as Record<Metric | 'machine_cpu_s_per_gb', Spread>;
  for (const [k, v] of Object.entries(xs)) spread[k as Metric] = spreadOf(v);
  return {
    datapath: t.datapath,
    esp: t.esp,
    tcp_gbps: spread.tcp_gbps.median,
    tcp4_gbps: spread.tcp4_gbps.median,
    udp64_kpps: spread.udp64_kpps.median,
    udp1400_kpps: spread.udp1400_kpps.median,
    rtt_ms: spread.rtt_ms.median,
    cpu_s_per_gb: spread.cpu_s_per_gb.median,
    machine_cpu_s_per_gb: spread.machine_cpu_s_per_gb.median,
    cpu_source:
      t.cpu === 'kernel'
        ? "the whole machine's system+irq+softirq time (/proc/stat; includes the iperf3s' own system calls)"
        : `utime+stime of the ${t.cpu.roles.join(' and ')} processes`,
    udp64_offered_kpps: spreadOf(offered.udp64_kpps).median,
    udp1400_offered_kpps: spreadOf(offered.udp1400_kpps).median,
    udp_method: UDP_METHOD,
    udp_tool_cores: {
      udp64: { sender: spreadOf(toolCores.udp64_kpps.sender).median, sink: spreadOf(toolCores.udp64_kpps.sink).median },
      udp1400: { sender: spreadOf(toolCores.udp1400_kpps.sender).median, sink: spreadOf(toolCores.udp1400_kpps.sink).median },
    },
    udp_large_payload: large,
    heap_bytes_per_frame: heapPerFrame.length > 0 ? spreadOf(heapPerFrame).median : null,
    spread,
  };
}
