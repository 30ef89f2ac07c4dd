/**
 * The encapsulation-overhead study: for every cell of a reduced sweep the arithmetic and the packets
 * measured on the simulated datapath agree exactly; the figures meet the published constants (VXLAN and
 * Geneve 50 bytes over IPv4 and 70 over IPv6, GRE with a key 42, Antrea's 38-byte IPsec allowance an upper
 * bound of seine's exact AES-GCM ESP overhead); a few cells are checked against numbers worked out by
 * hand; and the SVG plots parse as XML — read by Python's xml.etree, not by us — and hold the series.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { tunnelOverhead } from '../../src/mtu/overhead.js';
import {
  analyticCell,
  analyticFrameLen,
  type Cell,
  type Config,
  configs,
  distributionOf,
  ENCAPSULATIONS,
  ENCRYPTIONS,
  IMIX_POINT,
  ipv4Fragments,
  MIN_SIZE,
  sizePoint,
  sweep,
  tcpSweep,
} from '../../src/study/overhead.js';
import { plots, summarize, toCsv } from '../../src/study/overhead-output.js';

const encap = (n: string) => ENCAPSULATIONS.find((e) => e.name === n)!;
const enc = (n: string) => ENCRYPTIONS.find((e) => e.name === n)!;
const cfg = (e: string, x: string, family: 4 | 6, mtu: number): Config => ({ encap: encap(e), encryption: enc(x), family, mtu });

const SIZES = [64, 576, 1400, 1500, 4000, 9000];
const POINTS = [...SIZES.map(sizePoint), IMIX_POINT];
/** The reduced sweep: every simulated encapsulation, plaintext and two ESP setups, both families, a 1500 underlay; VXLAN and none also at 9000. */
const REDUCED = [
  ...configs({
    encaps: ENCAPSULATIONS.filter((e) => e.simulated),
    encryptions: [enc('none'), enc('esp-aes-gcm'), enc('esp-chacha20-udp')],
    families: [4, 6],
    mtus: [1500],
  }),
  ...configs({ encaps: [encap('none'), encap('vxlan')], encryptions: [enc('none'), enc('esp-aes-gcm-udp')], families: [4, 6], mtus: [9000] }),
];
const cells = sweep({ configs: REDUCED, points: POINTS });
const cell = (e: string, x: string, family: 4 | 6, mtu: number, size: string): Cell => {
  const c = cells.find((k) => k.encap === e && k.encryption === x && k.family === family && k.underlayMtu === mtu && k.size === size);
  assert.ok(c !== undefined, `no cell ${e} ${x} IPv${family}/${mtu} ${size}`);
  return c;
};

test('overhead: every cell of the reduced sweep is measured on the simulated datapath and equals the arithmetic', () => {
  assert.equal(cells.length, REDUCED.length * POINTS.length);
  for (const c of cells) {
    assert.ok(c.measured !== null, `${c.encap} ${c.encryption} IPv${c.family}/${c.underlayMtu} ${c.size}: not measured (${c.note})`);
    assert.deepEqual(c.measured, c.analytic, `${c.encap} ${c.encryption} IPv${c.family}/${c.underlayMtu} ${c.size}`);
    assert.equal(c.agree, true);
  }
  assert.deepEqual(summarize(cells), { cells: cells.length, measured: cells.length, agree: cells.length, analyticOnly: 0, disagree: 0 });
});

test('overhead: measured cells worked out by hand', () => {
  // VXLAN over IPv4, a 1400-byte inner packet: 14 outer Ethernet + 20 IP + 8 UDP + 8 VXLAN + 14 inner Ethernet + 1400.
  const v = cell('vxlan', 'none', 4, 1500, '1400').measured!;
  assert.deepEqual(v.totals, { messages: 1, payloadBytes: 1372, frames: 1, wireBytesL2: 1464, wireBytesL1: 1488 });
  assert.equal(v.podMtu, 1450);
  // A 64-byte packet without an overlay: a 78-byte frame, 102 bytes on the wire with FCS, preamble and gap; 36 bytes of payload.
  assert.deepEqual(cell('none', 'none', 4, 1500, '64').measured!.totals, { messages: 1, payloadBytes: 36, frames: 1, wireBytesL2: 78, wireBytesL1: 102 });
  // 9000 bytes of IPv4 through a 1500 link: 8980 bytes of data in 1480-byte pieces, 7 fragments, 6 more IP headers.
  assert.deepEqual(ipv4Fragments(9000, 1500), [1500, 1500, 1500, 1500, 1500, 1500, 120]);
  const f = cell('none', 'none', 4, 1500, '9000').measured!;
  assert.equal(f.packetsPerMessage, 7);
  assert.equal(f.totals.wireBytesL2, 9000 + 6 * 20 + 7 * 14);
  // Through VXLAN, the pod's 1450-byte MTU leaves 1424-byte pieces: 7 fragments as well, each 50 + 14 bytes bigger.
  assert.equal(cell('vxlan', 'none', 4, 1500, '9000').measured!.totals.wireBytesL2, 9000 + 6 * 20 + 7 * (14 + 50));
  // Simple IMIX: 7 × 64, 4 × 576, 1 × 1500 bytes per 12 messages.
  const imix = cell('none', 'none', 4, 1500, 'imix').measured!.totals;
  assert.equal(imix.messages, 12);
  assert.equal(imix.payloadBytes, 7 * 36 + 4 * 548 + 1472);
  // The pod MTU of ESP with AES-GCM over a 1500 IPv4 underlay (the esp-encryption lab's figure).
  assert.equal(cell('vxlan', 'esp-aes-gcm', 4, 1500, '64').measured!.podMtu, 1416);
  // A 9000-byte message over a 9000-byte link without an overlay: one frame.
  assert.equal(cell('none', 'none', 4, 9000, '9000').measured!.packetsPerMessage, 1);
});

test('overhead: the published constants — VXLAN and Geneve 50 over IPv4 and 70 over IPv6, GRE with a key 42', () => {
  // One frame each: what the overlay added is the frame less the outer Ethernet header and the inner packet.
  const added = (e: string, fam: 4 | 6): number => cell(e, 'none', fam, 1500, '1400').measured!.totals.wireBytesL2 - 14 - 1400;
  for (const fam of [4, 6] as const) {
    for (const e of ['vxlan', 'geneve']) assert.equal(added(e, fam), fam === 4 ? 50 : 70, `${e} over IPv${fam}`);
    // GRE (RFC 2784 with RFC 2890's key): 4 bytes of header, 4 of key, no UDP.
    assert.equal(added('gre-key', fam), fam === 4 ? 42 : 62);
    assert.equal(added('gre', fam), fam === 4 ? 38 : 58);
  }
  assert.equal(tunnelOverhead({ tunnel: 'gre', underlay: 4, greKey: true }), 42);
  assert.equal(cell('gre-key', 'none', 4, 1500, '64').measured!.podMtu, 1458);
  assert.equal(cell('gre', 'none', 4, 1500, '64').measured!.podMtu, 1462);
});

test("overhead: Antrea's 38-byte IPsec allowance bounds seine's exact ESP overhead with AES-GCM over IP (not in UDP)", () => {
  for (const fam of [4, 6] as const) {
    for (const size of SIZES) {
      const plain = cell('geneve', 'none', fam, 1500, String(size)).measured!.totals;
      const esp = cell('geneve', 'esp-aes-gcm', fam, 1500, String(size)).measured!.totals;
      if (esp.frames !== plain.frames) continue; // the smaller pod MTU split it differently
      const perFrame = (esp.wireBytesL2 - plain.wireBytesL2) / esp.frames;
      // SPI 4 + sequence 4 + IV 8 + padding 0-3 + pad length and next header 2 + ICV 16 = 34-37.
      assert.ok(perFrame >= 34 && perFrame <= 38, `ESP AES-GCM over IPv${fam}, ${size} bytes: ${perFrame} bytes per frame`);
    }
  }
  // Every inner length, not only the sweep's: the arithmetic the measured cells agree with.
  const c = cfg('geneve', 'esp-aes-gcm', 4, 1500);
  const p = cfg('geneve', 'none', 4, 1500);
  const udp = cfg('geneve', 'esp-aes-gcm-udp', 4, 1500);
  let worstUdp = 0;
  for (let len = 28; len <= 1500; len++) {
    const espBytes = analyticFrameLen(c, len) - analyticFrameLen(p, len);
    assert.ok(espBytes <= 38, `${len}: ${espBytes}`);
    worstUdp = Math.max(worstUdp, analyticFrameLen(udp, len) - analyticFrameLen(p, len));
  }
  // ESP in UDP costs 8 bytes more, and then the allowance is short (45 > 38): worth knowing for NAT paths.
  assert.equal(worstUdp, 45);
});

test('overhead: an encapsulation the datapath cannot send is computed only, and says so', () => {
  const c: Config = { ...cfg('gre-key', 'none', 4, 1500), encap: { ...encap('gre-key'), simulated: false } };
  const [gcell] = sweep({ configs: [c], points: [sizePoint(1000)] });
  assert.equal(gcell!.measured, null);
  assert.equal(gcell!.agree, false);
  assert.match(gcell!.note!, /analytic only/);
  assert.deepEqual(gcell!.analytic, analyticCell(c, sizePoint(1000)));
  assert.deepEqual(summarize([gcell!]), { cells: 1, measured: 0, agree: 0, analyticOnly: 1, disagree: 0 });
});

test('overhead: a capture as a size distribution — distinct sizes weighted, small ones raised to the smallest message', () => {
  const d = distributionOf([40, 1500, 52, 1500, 576, 1500]);
  assert.equal(d.packets, 6);
  assert.equal(d.clamped, 1);
  assert.deepEqual(d.point.dist, [
    { size: MIN_SIZE, weight: 1 },
    { size: 52, weight: 1 },
    { size: 576, weight: 1 },
    { size: 1500, weight: 3 },
  ]);
});

test('overhead: the CSV has a row per cell with the analytic and measured totals', () => {
  const rows = toCsv(cells).trimEnd().split('\n');
  assert.equal(rows.length, cells.length + 1);
  const head = rows[0]!.split(',');
  const row = rows.find((r) => r.startsWith('vxlan,none,4,1500,1400,'))!.split(',');
  const at = (k: string): string => row[head.indexOf(k)]!;
  assert.equal(at('wire_bytes_l2'), '1464');
  assert.equal(at('measured_wire_bytes_l2'), '1464');
  assert.equal(at('pod_mtu'), '1450');
  assert.equal(at('agree'), 'true');
});

/** Parses SVGs with Python's XML parser and returns, per file, the series names and their points. */
function readSvgs(svgs: Record<string, string>): Record<string, { title: string; series: Record<string, Array<[number, number]>>; text: string }> {
  const py = `
import json, sys, xml.etree.ElementTree as ET
NS = '{http://www.w3.org/2000/svg}'
out = {}
for name, text in json.load(sys.stdin).items():
    root = ET.fromstring(text)
    series = {}
    for g in root.iter(NS + 'g'):
        if g.get('class') == 'series':
            series[g.get('data-series')] = [[float(c.get('data-x')), float(c.get('data-y'))] for c in g.iter(NS + 'circle')]
    out[name] = {'title': root.find(NS + 'title').text, 'series': series, 'text': ' '.join(t.text or '' for t in root.iter(NS + 'text'))}
print(json.dumps(out))
`;
  const r = spawnSync('/usr/bin/python3', ['-c', py], { input: JSON.stringify(svgs), encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as ReturnType<typeof readSvgs>;
}

test('overhead: the SVG plots parse as XML and hold the expected series, axes and caption', () => {
  const tcp = tcpSweep({ mtus: [1500, 9000], losses: [0, 0.01], bytes: 300_000, bandwidth: '1Gbit', latency: '100us', encap: 'vxlan', seeds: [1] });
  const out = plots(
    cells,
    POINTS,
    { parameters: { bytes: 300_000, bandwidth: '1Gbit', latency: '100us', encap: 'vxlan', seeds: [1], window: 'w', inner: 'IPv4' }, points: tcp },
    null,
  );
  const files = Object.fromEntries(out.map((p) => [p.file, p.svg]));
  assert.deepEqual(Object.keys(files).sort(), [
    'efficiency-esp-ipv4-1500.svg',
    'efficiency-esp-ipv4-9000.svg',
    'efficiency-esp-ipv6-1500.svg',
    'efficiency-esp-ipv6-9000.svg',
    'efficiency-ipv4-1500.svg',
    'efficiency-ipv4-9000.svg',
    'efficiency-ipv6-1500.svg',
    'efficiency-ipv6-9000.svg',
    'tcp-goodput.svg',
  ]);
  const svg = readSvgs(files);
  const e = svg['efficiency-ipv4-1500.svg']!;
  assert.match(e.title, /Goodput efficiency by encapsulation, IPv4 underlay, MTU 1500/);
  assert.deepEqual(Object.keys(e.series), ['none', 'vxlan', 'geneve', 'geneve+8', 'geneve+32', 'gre-key', 'gre']);
  for (const pts of Object.values(e.series))
    assert.deepEqual(
      pts.map((p) => p[0]),
      SIZES,
    ); // IMIX is no point on a size axis
  // A point is the cell's L1 efficiency in percent.
  const v1400 = e.series.vxlan!.find((p) => p[0] === 1400)![1];
  assert.ok(Math.abs(v1400 - (1372 / 1488) * 100) < 0.001, String(v1400));
  // Axes with units, a legend, the caption's parameters.
  assert.match(e.text, /inner IP packet size \(bytes\)/);
  assert.match(e.text, /goodput efficiency on the wire \(%\)/);
  assert.match(e.text, /preamble\+SFD 8/);
  assert.match(e.text, /vxlan 1450/);
  assert.deepEqual(Object.keys(svg['efficiency-esp-ipv6-1500.svg']!.series), ['none', 'esp-aes-gcm', 'esp-chacha20-udp']);
  const t = svg['tcp-goodput.svg']!;
  assert.deepEqual(Object.keys(t.series), ['loss 0%', 'loss 1%']);
  assert.deepEqual(
    t.series['loss 0%']!.map((p) => p[0]),
    [1500, 9000],
  );
  assert.match(t.text, /underlay MTU \(bytes\)/);
  assert.match(t.text, /goodput \(Mbit\/s\)/);
  // A clean path carries the transfer at close to the link's rate; larger frames carry more of it.
  const [g1500, g9000] = t.series['loss 0%']!.map((p) => p[1]);
  assert.ok(g1500! > 500 && g1500! < 1000 && g9000! > g1500!, `${g1500} ${g9000}`);
});

test("README: the overhead results table is the study's output", async () => {
  const { readFileSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const { README_SIZES, formatReadmeTable } = await import('../../src/study/overhead-output.js');
  const { README_CONFIGS } = await import('../../src/study/overhead.js');
  const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
  const points = README_SIZES.map((s) => (s === 'imix' ? IMIX_POINT : sizePoint(Number(s))));
  const table = formatReadmeTable(sweep({ configs: README_CONFIGS(), points }));
  assert.ok(readme.includes(table + '\n'), `README.md shows the table (regenerate it with seine bench overhead --readme):\n${table}`);
});

test("README: the plot in docs/overhead is the study's (every series and point)", async () => {
  const { readFileSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const { DEFAULT_SIZES } = await import('../../src/study/overhead.js');
  const file = fileURLToPath(new URL('../../../docs/overhead/efficiency-ipv4-1500.svg', import.meta.url));
  const points = DEFAULT_SIZES.map(sizePoint);
  const fresh = plots(sweep({ configs: configs({ encryptions: [enc('none')], families: [4], mtus: [1500] }), points }), points, null, null);
  const svg = readSvgs({ committed: readFileSync(file, 'utf8'), fresh: fresh.find((p) => p.file === 'efficiency-ipv4-1500.svg')!.svg });
  assert.ok(Object.keys(svg.fresh!.series).length === 7);
  assert.deepEqual(svg.committed!.series, svg.fresh!.series, 'regenerate it: seine bench overhead --family 4 --mtu 1500 --out DIR');
});
