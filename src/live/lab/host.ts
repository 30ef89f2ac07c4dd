/**
 * What this machine offers a live lab, found without creating anything: the platform, whether we are
 * root, the tools on PATH, and the kernel's pieces (qdiscs, classifiers, veth, bridge…).
 *
 * A kernel piece is known present when it is built in or its module is installed (modules.builtin, the
 * module's file under /lib/modules, /sys/module, or the kernel's config: /proc/config.gz or
 * /boot/config-<release>), known absent when the config says "is not set" (or =m with no such module
 * installed), and unknown (null) when the machine says neither: then the lab is tried, and tc's own
 * error tears it down.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { release } from 'node:os';
import { delimiter, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { KernelFeature } from './plan.js';

/** Programs a lab and its tests run. */
export type LabTool = 'ip' | 'tc' | 'ping' | 'iperf3';
export const LAB_TOOLS: readonly LabTool[] = ['ip', 'tc', 'ping', 'iperf3'];
/** Debian's package for each tool. */
export const TOOL_PACKAGES: Record<LabTool, string> = { ip: 'iproute2', tc: 'iproute2', ping: 'iputils-ping', iperf3: 'iperf3' };

export interface KernelPiece {
  config: string;
  module: string | null;
  /** The module's file under /lib/modules/<release>/, without compression suffix. */
  path: string | null;
  what: string;
}

export const KERNEL_PIECES: Record<KernelFeature, KernelPiece> = {
  netns: { config: 'CONFIG_NET_NS', module: null, path: null, what: 'network namespaces' },
  veth: { config: 'CONFIG_VETH', module: 'veth', path: 'kernel/drivers/net/veth.ko', what: 'veth pairs' },
  bridge: { config: 'CONFIG_BRIDGE', module: 'bridge', path: 'kernel/net/bridge/bridge.ko', what: 'the Linux bridge' },
  ipv6: { config: 'CONFIG_IPV6', module: 'ipv6', path: 'kernel/net/ipv6/ipv6.ko', what: 'IPv6' },
  netem: { config: 'CONFIG_NET_SCH_NETEM', module: 'sch_netem', path: 'kernel/net/sched/sch_netem.ko', what: 'the netem qdisc (delay, jitter, loss)' },
  tbf: { config: 'CONFIG_NET_SCH_TBF', module: 'sch_tbf', path: 'kernel/net/sched/sch_tbf.ko', what: 'the tbf qdisc (bandwidth)' },
  htb: { config: 'CONFIG_NET_SCH_HTB', module: 'sch_htb', path: 'kernel/net/sched/sch_htb.ko', what: 'the htb qdisc (per-peer classes)' },
  u32: { config: 'CONFIG_NET_CLS_U32', module: 'cls_u32', path: 'kernel/net/sched/cls_u32.ko', what: 'the u32 classifier (per-peer classes)' },
  clsact: { config: 'CONFIG_NET_SCH_INGRESS', module: 'sch_ingress', path: 'kernel/net/sched/sch_ingress.ko', what: 'the clsact qdisc (filters on a port)' },
  bpf: { config: 'CONFIG_NET_CLS_BPF', module: 'cls_bpf', path: 'kernel/net/sched/cls_bpf.ko', what: 'the BPF classifier (drops by address and length)' },
};

export interface HostFacts {
  platform: string;
  root: boolean;
  /** Each tool's path, or null when it is not installed. */
  tools: Record<LabTool, string | null>;
  /** true: present; false: known absent; null: unknown. */
  kernel: Record<KernelFeature, boolean | null>;
  /** What the kernel answers came from (`/proc/config.gz`, `/lib/modules/…`), or null. */
  kernelSource: string | null;
  /** Whether tc's `normal.dist` table (netem jitter) is installed. */
  netemNormalDist: boolean;
}

function findTool(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const d of dirs) {
    if (d === '') continue;
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  return null;
}

function readConfig(rel: string): { text: string; source: string } | null {
  try {
    return { text: gunzipSync(readFileSync('/proc/config.gz')).toString('latin1'), source: '/proc/config.gz' };
  } catch {
    /* next */
  }
  const boot = `/boot/config-${rel}`;
  try {
    return { text: readFileSync(boot, 'latin1'), source: boot };
  } catch {
    return null;
  }
}

function normalDistInstalled(): boolean {
  const dirs = [process.env.TC_LIB_DIR, '/usr/lib/tc', '/usr/lib64/tc', '/usr/local/lib/tc', '/usr/share/tc'].filter((d): d is string => d !== undefined);
  try {
    for (const e of readdirSync('/usr/lib')) dirs.push(join('/usr/lib', e, 'tc'));
  } catch {
    /* none */
  }
  return dirs.some((d) => existsSync(join(d, 'normal.dist')));
}

/** Looks at this machine (reads files only). */
export function probeHost(): HostFacts {
  const rel = release();
  const linux = process.platform === 'linux';
  const modDir = `/lib/modules/${rel}`;
  const haveModDir = linux && existsSync(modDir);
  let builtin = '';
  if (haveModDir) {
    try {
      builtin = readFileSync(join(modDir, 'modules.builtin'), 'utf8');
    } catch {
      /* none */
    }
  }
  const config = linux ? readConfig(rel) : null;
  const moduleFile = (p: string): boolean => ['', '.xz', '.zst', '.gz'].some((z) => existsSync(join(modDir, p + z)));
  const sources = new Set<string>();
  const kernel = {} as Record<KernelFeature, boolean | null>;
  for (const [f, piece] of Object.entries(KERNEL_PIECES) as [KernelFeature, KernelPiece][]) {
    let v: boolean | null = null;
    if (!linux) v = false;
    else if (piece.module !== null && existsSync(`/sys/module/${piece.module}`)) v = true;
    else if (f === 'netns' && existsSync('/proc/self/ns/net')) v = true;
    else if (f === 'ipv6' && existsSync('/proc/sys/net/ipv6')) v = true;
    else if (haveModDir && piece.path !== null && (builtin.includes(piece.path) || moduleFile(piece.path))) {
      v = true;
      sources.add(modDir);
    } else if (config !== null) {
      const m = new RegExp(`^${piece.config}=(y|m)$`, 'm').exec(config.text);
      sources.add(config.source);
      if (m === null) v = false;
      else if (m[1] === 'y') v = true;
      else v = haveModDir ? false : null; // =m: present only if the module is installed
    } else if (haveModDir && piece.path !== null) {
      v = false;
      sources.add(modDir);
    }
    kernel[f] = v;
  }
  const tools = {} as Record<LabTool, string | null>;
  for (const t of LAB_TOOLS) tools[t] = findTool(t);
  return {
    platform: process.platform,
    root: typeof process.getuid === 'function' && process.getuid() === 0,
    tools,
    kernel,
    kernelSource: sources.size === 0 ? null : [...sources].join(', '),
    netemNormalDist: normalDistInstalled(),
  };
}
