/**
 * `seine mtu`: the overhead of each tunnel and the pod MTU it leaves, for given underlay MTUs (1500 and
 * 9000 by default). The README's table is this command's output, checked by a test.
 */
import { describeOverhead, ESP_CIPHERS, overheadFor, podMtu, type EspCipher, type OverheadSpec } from '../mtu/overhead.js';

/** The rows of the table: each tunnel over each underlay family, Geneve with an option, GRE without key, ESP per cipher (and over GRE). */
export function mtuSpecs(): OverheadSpec[] {
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

export interface MtuRow {
  tunnel: string;
  /** Overhead in bytes at the pod MTU of each underlay (ESP padding makes it depend on the length). */
  overhead: number[];
  podMtu: number[];
}

export function mtuTable(underlays: readonly number[]): MtuRow[] {
  return mtuSpecs().map((spec) => {
    const pods = underlays.map((u) => podMtu(u, spec));
    return { tunnel: describeOverhead(spec), overhead: pods.map((p) => overheadFor(spec, p)), podMtu: pods };
  });
}

/** The table as Markdown (what the README shows). */
export function formatMtuTable(underlays: readonly number[]): string {
  const rows = mtuTable(underlays);
  const head = `| tunnel | ${underlays.map((u) => `overhead @${u} | pod MTU @${u}`).join(' | ')} |`;
  const rule = `|---|${underlays.map(() => '---:|---:').join('|')}|`;
  return [head, rule, ...rows.map((r) => `| ${r.tunnel} | ${underlays.map((_, i) => `${r.overhead[i]} | ${r.podMtu[i]}`).join(' | ')} |`)].join('\n');
}
