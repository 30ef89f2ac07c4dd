/**
 * scapy as the independent encoder: every catalogue frame is described field by field (values only,
 * never lengths or checksums), built by scapy's layer classes in test/peers/scapy_build.py, and must
 * be byte-identical to what `compose` writes. Where the format leaves no freedom, two encoders that
 * agree on every byte agree on every length, checksum, flag position and padding rule too.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { before, test } from 'node:test';
import { hex, ipv4ToString, macToString } from '../../src/wire/bytes.js';
import type { Layer } from '../../src/wire/stack.js';
import { compose } from '../../src/wire/stack.js';
import { requireScapy, run, SYSTEM_PYTHON } from '../helpers.js';
import { CATALOGUE } from './catalogue.js';

/** The compiled test runs from dist/test/peers; the script stays in the source tree. */
const SCRIPT = fileURLToPath(new URL('../../../test/peers/scapy_build.py', import.meta.url));

/**
 * Catalogue frames not compared, by name, with the reason. Only for a frame scapy cannot express with
 * its layer classes, or whose bytes the format leaves free; every entry must name a catalogue frame.
 */
const EXCLUDED: Record<string, string> = {};

/** One layer as JSON: numbers stay numbers, byte arrays and IPv6 addresses become hex, MACs aa:bb:.. */
function describe(l: Layer): Record<string, unknown> {
  switch (l.kind) {
    case 'eth':
      return { kind: l.kind, dst: macToString(l.repr.dst), src: macToString(l.repr.src), vlans: l.repr.vlans, etherType: l.repr.etherType };
    case 'arp': {
      const r = l.repr;
      return {
        kind: l.kind,
        operation: r.operation,
        senderMac: macToString(r.senderMac),
        senderIp: ipv4ToString(r.senderIp),
        targetMac: macToString(r.targetMac),
        targetIp: ipv4ToString(r.targetIp),
      };
    }
    case 'ipv4': {
      const r = l.repr;
      return {
        kind: l.kind,
        src: ipv4ToString(r.src),
        dst: ipv4ToString(r.dst),
        protocol: r.protocol,
        ttl: r.ttl,
        dscp: r.dscp,
        ecn: r.ecn,
        ident: r.ident,
        dontFrag: r.dontFrag,
        moreFrags: r.moreFrags,
        fragOffset: r.fragOffset,
        options: hex(r.options),
      };
    }
    case 'ipv6': {
      const r = l.repr;
      return {
        kind: l.kind,
        src: hex(r.src),
        dst: hex(r.dst),
        nextHeader: r.nextHeader,
        hopLimit: r.hopLimit,
        trafficClass: r.trafficClass,
        flowLabel: r.flowLabel,
      };
    }
    case 'ipv6ext':
      return { kind: l.kind, headerType: l.repr.headerType, nextHeader: l.repr.nextHeader, data: hex(l.repr.data) };
    case 'ipv6frag':
      return { kind: l.kind, ...l.repr };
    case 'icmpv4':
      return { kind: l.kind, repr: { ...l.repr, data: hex(l.repr.data) } };
    case 'icmpv6': {
      const r = l.repr;
      switch (r.kind) {
        case 'neighborSolicit':
          return {
            kind: l.kind,
            repr: { kind: r.kind, target: hex(r.target), sourceLinkAddr: r.sourceLinkAddr === null ? null : macToString(r.sourceLinkAddr) },
          };
        case 'neighborAdvert':
          return { kind: l.kind, repr: { ...r, target: hex(r.target), targetLinkAddr: r.targetLinkAddr === null ? null : macToString(r.targetLinkAddr) } };
        default:
          return { kind: l.kind, repr: { ...r, data: hex(r.data) } };
      }
    }
    case 'udp':
      return { kind: l.kind, srcPort: l.repr.srcPort, dstPort: l.repr.dstPort, zeroChecksum: l.zeroChecksum };
    case 'tcp':
      return { kind: l.kind, ...l.repr, options: l.repr.options.map((o) => (o.kind === 'unknown' ? { ...o, data: hex(o.data) } : o)) };
    case 'vxlan':
      return { kind: l.kind, vni: l.repr.vni };
    case 'geneve':
      return { kind: l.kind, ...l.repr, options: l.repr.options.map((o) => ({ class: o.class, type: o.type, data: hex(o.data) })) };
    case 'gre':
      return { kind: l.kind, ...l.repr };
    case 'esp':
      return { kind: l.kind, spi: l.repr.spi, seq: l.repr.seq };
    case 'data':
      return { kind: l.kind, bytes: hex(l.bytes) };
  }
}

type Built = { name: string; hex?: string; error?: string };

function scapyBuild(frames: { name: string; layers: readonly Layer[] }[]): Built[] {
  const input = JSON.stringify(frames.map((f) => ({ name: f.name, layers: f.layers.map(describe) })));
  return JSON.parse(run(SYSTEM_PYTHON, [SCRIPT], input)) as Built[];
}

/** Index of the first byte where the two hex strings differ, or -1. */
function firstDiff(a: string, b: string): number {
  const n = Math.min(a.length, b.length) >> 1;
  for (let i = 0; i < n; i++) if (a.slice(2 * i, 2 * i + 2) !== b.slice(2 * i, 2 * i + 2)) return i;
  return a.length === b.length ? -1 : n;
}

let built: Built[] = [];

before(() => {
  requireScapy();
  built = scapyBuild(CATALOGUE);
});

test('scapy: the exclusion list is small and names real frames', () => {
  const names = new Set(CATALOGUE.map((f) => f.name));
  for (const n of Object.keys(EXCLUDED)) assert.ok(names.has(n), `excluded frame ${JSON.stringify(n)} is not in the catalogue`);
  assert.ok(Object.keys(EXCLUDED).length <= 3, `too many exclusions: ${Object.keys(EXCLUDED).join(', ')}`);
  assert.ok(CATALOGUE.length - Object.keys(EXCLUDED).length >= 20, 'too few frames compared');
});

test('scapy: builds every catalogue frame byte-identical to compose', () => {
  assert.equal(built.length, CATALOGUE.length);
  const failures: string[] = [];
  CATALOGUE.forEach((f, i) => {
    if (f.name in EXCLUDED) return;
    const b = built[i]!;
    assert.equal(b.name, f.name);
    if (b.error !== undefined || b.hex === undefined) {
      failures.push(`${f.name}: scapy could not build it: ${b.error ?? 'no output'}`);
      return;
    }
    const ours = hex(compose(f.layers));
    const at = firstDiff(ours, b.hex);
    if (at >= 0)
      failures.push(`${f.name}: first difference at byte ${at} (ours ${ours.length / 2} bytes, scapy ${b.hex.length / 2})\n  seine ${ours}\n  scapy ${b.hex}`);
  });
  assert.deepEqual(failures, []);
});

test('scapy: the comparison sees a one-field change (a different VXLAN VNI on our side only)', () => {
  const i = CATALOGUE.findIndex((f) => f.layers.some((l) => l.kind === 'vxlan'));
  assert.ok(i >= 0);
  const f = CATALOGUE[i]!;
  const theirs = built[i]!.hex;
  assert.ok(theirs !== undefined, `scapy could not build ${f.name}`);
  const vx = f.layers.findIndex((l) => l.kind === 'vxlan');
  const changed = f.layers.map((l) => (l.kind === 'vxlan' ? { kind: l.kind, repr: { vni: l.repr.vni ^ 1 } } : l));
  const ours = hex(compose(changed));
  assert.notEqual(ours, theirs);
  // The VNI is bytes 4-6 of the VXLAN header: only its last byte changed, nothing else did.
  const vniLast = hex(compose(f.layers.slice(0, vx))).length / 2 + 6;
  assert.equal(firstDiff(ours, theirs), vniLast);
  assert.equal(firstDiff(ours.slice(2 * (vniLast + 1)), theirs.slice(2 * (vniLast + 1))), -1);
});
