/**
 * `seine mtu`: the overhead of each tunnel and the pod MTU it leaves, for given underlay MTUs (1500 and
 * 9000 by default). The README's table is this command's output, checked by a test.
 */
import { CliError, type Command, helpHint } from './command.js';
import { describeOverhead, ESP_CIPHERS, overheadFor, podMtu, type EspCipher, type OverheadSpec } from '../mtu/overhead.js';

/** The rows of the table: each tunnel over each underlay family, Geneve with an option, GRE without key, ESP per cipher (and over GRE). */
function mtuSpecs(): OverheadSpec[] {
  const specs: OverheadSpec[] = [];
  for (const underlay of [4, 6] as const) {
    specs.push(
      { tunnel: 'vxlan', underlay },
      { tunnel: 'geneve', underlay },
      { tunnel: 'geneve', underlay, geneveOptionBytes: 8 },
      { tunnel: 'gre', underlay },
      { tunnel: 'gre', underlay, greKey: false },
    );
    for (const cipher of Object.keys(ESP_CIPHERS) as EspCipher[]) specs.push({ tunnel: 'geneve', underlay, esp: { cipher } });
    specs.push({ tunnel: 'geneve', underlay, esp: { cipher: 'aes-gcm-128', udpEncap: true } });
    specs.push({ tunnel: 'geneve', underlay, espAllowance: 38 });
    specs.push({ tunnel: 'gre', underlay, esp: { cipher: 'aes-gcm-128' } });
  }
  return specs;
}

/** IPv6 needs every link to carry 1280-byte packets (RFC 8200 section 5): no IPv6 underlay below it. */
export const IPV6_MIN_MTU = 1280;

export interface MtuRow {
  tunnel: string;
  /** Overhead in bytes at the pod MTU of each underlay (ESP padding makes it depend on the length); null: no such underlay (IPv6 below 1280). */
  overhead: (number | null)[];
  podMtu: (number | null)[];
}

/** The rows for these underlay MTUs; an IPv6 underlay below 1280 has no figures, and a row with none at all is left out. */
function mtuTable(underlays: readonly number[]): MtuRow[] {
  const rows: MtuRow[] = [];
  for (const spec of mtuSpecs()) {
    const ok = underlays.map((u) => spec.underlay === 4 || u >= IPV6_MIN_MTU);
    if (!ok.includes(true)) continue;
    const pods = underlays.map((u, i) => (ok[i] ? podMtu(u, spec) : null));
    rows.push({ tunnel: describeOverhead(spec), overhead: pods.map((p) => (p === null ? null : overheadFor(spec, p))), podMtu: pods });
  }
  return rows;
}

/** The table as Markdown (what the README shows), with a note when an underlay is too small for IPv6. */
export function formatMtuTable(underlays: readonly number[]): string {
  const rows = mtuTable(underlays);
  const head = `| tunnel | ${underlays.map((u) => `overhead @${u} | pod MTU @${u}`).join(' | ')} |`;
  const rule = `|---|${underlays.map(() => '---:|---:').join('|')}|`;
  const cell = (v: number | null): string => (v === null ? 'n/a' : String(v));
  const lines = [head, rule, ...rows.map((r) => `| ${r.tunnel} | ${underlays.map((_, i) => `${cell(r.overhead[i]!)} | ${cell(r.podMtu[i]!)}`).join(' | ')} |`)];
  const small = underlays.filter((u) => u < IPV6_MIN_MTU);
  if (small.length > 0) lines.push('', `No IPv6 underlay at ${small.join(', ')}: IPv6 needs an MTU of at least ${IPV6_MIN_MTU} (RFC 8200 section 5).`);
  return lines.join('\n');
}

export const MTU: Command = {
  name: 'mtu',
  operands: '',
  summary:
    'The overhead of VXLAN, Geneve, GRE and ESP over IPv4 and IPv6 underlays and the pod MTU each leaves (the largest inner IP packet that fits, at most 65000), for 1500- and 9000-byte underlays or the ones given.',
  options: {
    underlay: { type: 'string', arg: 'N', multiple: true, help: 'an underlay MTU in 576-65535 (repeat for more; default 1500 and 9000)' },
    json: { type: 'boolean', help: 'the table as one JSON object' },
  },
  run: (a, io) => {
    if (a.operands.length > 0) throw new CliError(`mtu: no operands (got '${a.operands[0]}'; ${helpHint('mtu')})`);
    const underlays: number[] = [];
    for (const v of a.all('underlay')) {
      const n = Number(v);
      if (!/^\d+$/.test(v) || n < 576 || n > 65535) throw new CliError(`mtu: --underlay expects an MTU in 576-65535, got '${v}'`);
      underlays.push(n);
    }
    if (underlays.length === 0) underlays.push(1500, 9000);
    if (a.has('json')) io.out(JSON.stringify({ underlays, rows: mtuTable(underlays) }));
    else io.out(formatMtuTable(underlays));
    return 0;
  },
};
