/**
 * `seine bench overhead`: the encapsulation-overhead study (study/overhead.ts) from the command line —
 * the sweep, every cell analytic and measured on the simulated datapath, the TCP goodput sweep, and the
 * outputs (study/overhead-output.ts): a table, `--json` on stdout, and with `--out DIR` the files
 * overhead.csv, overhead.json and the SVG plots.
 *
 * The files are written into a temporary directory inside DIR and renamed into place only when all of
 * them are complete (overhead.json last, a previous run's outputs removed first): an interrupted or
 * failed run leaves no output that looks finished. DIR is made and tried before the sweep starts, so an
 * unwritable one is refused at once.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CaptureError } from '../capture/index.js';
import { FileRefused } from '../scenario/file.js';
import { loadReplay } from '../scenario/replay.js';
import { didYouMean } from '../scenario/scenario.js';
import {
  type Cell,
  configs,
  DEFAULT_SIZES,
  distributionOf,
  ENCAPSULATIONS,
  ENCRYPTIONS,
  FAMILIES,
  IMIX_POINT,
  MAX_SIZE,
  MIN_SIZE,
  type SizePoint,
  sizePoint,
  type TcpPoint,
  sweep,
  TCP_DEFAULTS,
  tcpSweep,
  UNDERLAY_MTUS,
} from '../study/overhead.js';
import { DEFINITIONS, formatReadmeTable, formatTable, type OverheadReport, README_SIZES, plots, summarize, toCsv } from '../study/overhead-output.js';
import { type Args, CliError, type Command, helpHint, type RunIo } from './command.js';
import { fsErrorText } from '../live/fs.js';
import { makeDir } from './files.js';
import { progressBar } from './run.js';

export const BENCH_OVERHEAD: Command = {
  name: 'bench overhead',
  operands: '',
  summary:
    'The encapsulation-overhead study: sizes × encapsulation × ESP × underlay, each cell computed and measured on the simulated datapath (they must agree), TCP goodput against MTU and loss; a table, JSON, and with --out DIR overhead.csv, overhead.json and SVG plots.',
  about: `The encapsulation-overhead study: inner packet sizes × encapsulation × encryption × underlay (IPv4/IPv6,
MTU), per cell the largest pod MTU, wire bytes per payload byte and goodput efficiency (without and
with the Ethernet preamble, FCS and inter-frame gap), and packets per message (fragmentation). Every
cell is computed from seine's overhead arithmetic and measured by sending real packets through the
simulated datapath (two nodes built by the node builder; the underlay capture read back); the two must
agree exactly. Then TCP goodput in the simulator against underlay MTU and loss. Simulated: no root, no
network, the same figures on any machine.`,
  options: {
    sizes: { type: 'string', arg: 'LIST', help: `inner IPv4 packet sizes in ${MIN_SIZE}-${MAX_SIZE} and/or imix (default ${DEFAULT_SIZES.join(',')},imix)` },
    pcap: {
      type: 'string',
      arg: 'FILE',
      help: `the IP packet sizes of a pcap or pcapng as one more size point, a distribution (alone unless --sizes is given too); sizes under ${MIN_SIZE} count as ${MIN_SIZE}`,
    },
    encap: { type: 'string', arg: 'LIST', help: `${ENCAPSULATIONS.map((e) => e.name).join(', ')} (default all)` },
    esp: { type: 'string', arg: 'LIST', help: `${ENCRYPTIONS.map((e) => e.name).join(', ')} (default all; none is no ESP)` },
    family: { type: 'string', arg: 'LIST', help: 'underlay IP versions (default 4,6)' },
    mtu: { type: 'string', arg: 'LIST', help: `underlay MTUs (default ${UNDERLAY_MTUS.join(',')})` },
    json: { type: 'boolean', help: 'print the whole report as one JSON object instead of the table' },
    markdown: { type: 'boolean', help: `print per underlay the README's table (the sizes of ${README_SIZES.join(', ')} that were swept)` },
    out: { type: 'string', arg: 'DIR', help: 'write overhead.csv, overhead.json and the SVG plots into DIR (made if missing)' },
    'no-tcp': { type: 'boolean', help: 'leave out the TCP goodput sweep' },
    'no-progress': { type: 'boolean', help: 'no progress bar on stderr' },
  },
  footer: `exit status: 0 every measured cell equals the arithmetic, 1 one does not, 2 a wrong option or input
(an unknown name, a damaged or empty capture, an output directory that cannot be written)`,
  run: (a, io) => overheadCommand(a, io),
};

/** The files a run writes into --out (what a later run replaces or removes). */
const OUTPUT_FILE = /^(overhead\.(csv|json)|efficiency-[a-z0-9-]+\.svg|tcp-goodput\.svg)$/;

/** The project's root: this file runs as dist/src/cli/overhead.js. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function commit(): string | null {
  try {
    return execFileSync('git', ['-C', ROOT, 'describe', '--always', '--dirty', '--abbrev=10'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return null;
  }
}

function names<T extends { name: string }>(v: string | undefined, all: readonly T[], opt: string): T[] {
  if (v === undefined) return [...all];
  const out: T[] = [];
  for (const x of v.split(',').map((s) => s.trim())) {
    const found = all.find((e) => e.name === x);
    if (found === undefined) {
      const hint = didYouMean(
        x,
        all.map((e) => e.name),
      );
      throw new CliError(
        `bench overhead: ${opt}: unknown name "${x}"${hint !== null ? ` (did you mean "${hint}"?)` : ''}; known: ${all.map((e) => e.name).join(', ')}`,
      );
    }
    if (!out.includes(found)) out.push(found);
  }
  return out;
}

function ints(v: string | undefined, def: readonly number[], opt: string, ok: (n: number) => boolean, what: string): number[] {
  if (v === undefined) return [...def];
  return [
    ...new Set(
      v.split(',').map((s) => {
        const n = Number(s.trim());
        if (s.trim() === '' || !Number.isInteger(n) || !ok(n)) throw new CliError(`bench overhead: ${opt}: "${s.trim()}" is not ${what}`);
        return n;
      }),
    ),
  ];
}

function sizePoints(v: string | undefined): SizePoint[] {
  const items = v === undefined ? [...DEFAULT_SIZES.map(String), 'imix'] : v.split(',').map((s) => s.trim());
  const out: SizePoint[] = [];
  for (const s of items) {
    const label = s.toLowerCase();
    if (out.some((p) => p.label === label)) continue;
    if (label === 'imix') out.push(IMIX_POINT);
    else {
      const n = Number(s);
      if (s === '' || !Number.isInteger(n) || n < MIN_SIZE || n > MAX_SIZE)
        throw new CliError(`bench overhead: --sizes: "${s}" is not an IP packet size in ${MIN_SIZE}-${MAX_SIZE} or imix`);
      out.push(sizePoint(n));
    }
  }
  return out;
}

function pcapPoint(file: string): { point: SizePoint; info: NonNullable<OverheadReport['pcap']> } {
  let t: ReturnType<typeof loadReplay>;
  try {
    t = loadReplay({ path: file });
  } catch (e) {
    if (e instanceof CaptureError) throw new CliError(`bench overhead: --pcap ${file}: a damaged capture: ${e.message}`);
    if (e instanceof FileRefused) throw new CliError(`bench overhead: --pcap ${file}: ${e.message}`);
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code === 'string')
      throw new CliError(`bench overhead: --pcap ${file}: cannot read it (${err.code === 'ENOENT' ? 'no such file' : err.code})`);
    throw e;
  }
  if (t.ipLengths.length === 0)
    throw new CliError(
      `bench overhead: --pcap ${file}: no IP packets in it${t.skipped > 0 ? ` (${t.skipped} records of other kinds)` : ' (an empty capture)'}`,
    );
  const d = distributionOf(t.ipLengths);
  return { point: d.point, info: { file, packets: d.packets, distinctSizes: d.point.dist.length, clamped: d.clamped } };
}

/** Makes DIR and a temporary directory in it (proving DIR writable before the sweep). */
function prepareOut(dir: string): string {
  const why = makeDir(dir);
  if (why !== null) throw new CliError(`bench overhead: --out ${dir}: cannot write there (${why})`);
  try {
    return mkdtempSync(join(dir, '.overhead-partial-'));
  } catch (e) {
    throw new CliError(`bench overhead: --out ${dir}: cannot write there (${fsErrorText(e)})`);
  }
}

async function overheadCommand(a: Args, io: RunIo): Promise<number> {
  if (a.operands.length > 0) throw new CliError(`bench overhead: no operands (got '${a.operands[0]}'; ${helpHint('bench overhead')})`);
  const str = (k: string): string | undefined => a.str(k);
  const encaps = names(str('encap'), ENCAPSULATIONS, '--encap');
  const encryptions = names(str('esp'), ENCRYPTIONS, '--esp');
  const families = ints(str('family'), FAMILIES, '--family', (n) => n === 4 || n === 6, '4 or 6') as (4 | 6)[];
  const mtus = ints(str('mtu'), UNDERLAY_MTUS, '--mtu', (n) => n >= 1280 && n <= 65535, 'an underlay MTU in 1280-65535');
  const pcapFile = str('pcap');
  const pcap = pcapFile === undefined ? null : pcapPoint(pcapFile);
  const points = pcap !== null && str('sizes') === undefined ? [] : sizePoints(str('sizes'));
  if (pcap !== null) points.push(pcap.point);
  const cs = configs({ encaps, encryptions, families, mtus });
  if (cs.length === 0) throw new CliError('bench overhead: nothing to sweep (encapsulation none has no ESP cells: add --esp none or a tunnel)');
  const outDir = str('out') === undefined ? null : resolve(str('out')!);
  // The handlers are in place before the temporary directory exists: a Ctrl-C the moment it appears
  // (a test sends one then) must find them, or the default action kills the process and leaves it.
  let tmp: string | null = null;
  const cleanup = (): void => {
    if (tmp !== null) rmSync(tmp, { recursive: true, force: true });
  };
  const onSignal = (): void => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    tmp = outDir === null ? null : prepareOut(outDir);
    const progress = !a.has('no-progress');
    const bar = progressBar({ ...io, tty: io.tty && progress }, 'bench overhead');
    const withTcp = !a.has('no-tcp');
    // A TCP transfer takes about as long as a config of the sweep.
    const tcpSteps = withTcp ? TCP_DEFAULTS.mtus.length * TCP_DEFAULTS.losses.length * TCP_DEFAULTS.seeds.length : 0;
    const total = cs.length + tcpSteps;
    // One config (or TCP point) at a time, yielding to the event loop in between: Ctrl-C and SIGTERM
    // reach their handler (which removes the temporary directory) within one step.
    const step = (): Promise<void> => new Promise((r) => setImmediate(r));
    const cells: Cell[] = [];
    for (const c of cs) {
      cells.push(...sweep({ configs: [c], points }));
      bar.tick(cells.length / points.length / total);
      await step();
    }
    let tcpPoints: TcpPoint[] | null = null;
    if (withTcp) {
      tcpPoints = [];
      for (const mtu of TCP_DEFAULTS.mtus)
        for (const loss of TCP_DEFAULTS.losses) {
          tcpPoints.push(...tcpSweep({ ...TCP_DEFAULTS, mtus: [mtu], losses: [loss] }));
          bar.tick((cs.length + tcpPoints.length * TCP_DEFAULTS.seeds.length) / total);
          await step();
        }
    }
    bar.done();
    const excluded =
      encaps.some((e) => e.tunnel === null) && encryptions.some((e) => e.esp !== null) ? ["none with ESP: seine's ESP protects the tunnel between nodes"] : [];
    const { mtus: _m, losses: _l, ...tcpParams } = TCP_DEFAULTS;
    const report: OverheadReport = {
      study: 'seine bench overhead',
      definitions: DEFINITIONS,
      axes: {
        encapsulations: encaps.map((e) => e.name),
        encryptions: encryptions.map((e) => e.name),
        families,
        underlayMtus: mtus,
        sizes: points.map((p) => p.label),
      },
      excluded,
      pcap: pcap?.info ?? null,
      cells,
      summary: summarize(cells),
      tcp:
        tcpPoints === null
          ? null
          : { parameters: { ...tcpParams, window: 'NewReno, fixed 64 KiB window, no SACK, no delayed ACK', inner: 'IPv4' }, points: tcpPoints },
    };
    if (a.has('json')) io.out(JSON.stringify(report));
    else if (a.has('markdown')) {
      for (const u of [...new Set(cells.map((c) => `${c.family}|${c.underlayMtu}`))]) {
        const [fam, mtu] = u.split('|').map(Number) as [number, number];
        io.out(`IPv${fam} underlay, MTU ${mtu}: goodput efficiency on the wire\n`);
        io.out(formatReadmeTable(cells.filter((c) => c.family === fam && c.underlayMtu === mtu)) + '\n');
      }
    } else io.out(formatTable(report));
    if (outDir !== null && tmp !== null) {
      const files: Array<[string, string]> = [
        ['overhead.csv', toCsv(cells)],
        ...plots(cells, points, report.tcp, commit()).map((p): [string, string] => [p.file, p.svg]),
      ];
      files.push(['overhead.json', JSON.stringify(report, null, 1) + '\n']);
      try {
        for (const [name, text] of files) writeFileSync(join(tmp, name), text);
        // A previous run's outputs go first, overhead.json before all: until this run's overhead.json is
        // renamed in (last), DIR holds no set of files that looks complete, and none of another run's.
        const written = new Set(files.map(([n]) => n));
        rmSync(join(outDir, 'overhead.json'), { force: true });
        for (const old of readdirSync(outDir)) if (OUTPUT_FILE.test(old) && !written.has(old)) rmSync(join(outDir, old), { force: true });
        for (const [name] of files) renameSync(join(tmp, name), join(outDir, name));
      } catch (e) {
        throw new CliError(`bench overhead: --out ${outDir}: cannot write there (${fsErrorText(e)})`);
      }
      io.err(`wrote ${files.map(([n]) => n).join(', ')} into ${outDir}\n`);
    }
    return report.summary.disagree === 0 ? 0 : 1;
  } finally {
    cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
