/**
 * Captures against independent implementations: text2pcap, editcap and tshark (Wireshark's wiretap code)
 * and tcpdump (libpcap's). Files they write are read by our reader; files we write are read by them.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileSink, PcapngWriter, PcapWriter, readCapture, type CaptureFile, type CaptureRecord } from '../../src/capture/index.js';
import { fromHex, requireTool, run } from '../helpers.js';
import { concat, withTempDir } from './util.js';

interface Pkt {
  /** Nanoseconds since the epoch. */
  ts: bigint;
  data: Uint8Array;
}

// Ethernet frames: an ARP request, a short frame, and an IPv4/UDP datagram long enough to span many dump lines.
const ETH: Pkt[] = [
  { ts: 1_700_000_000_123_456_789n, data: fromHex('ffffffffffff 020000000001 0806 0001 0800 0604 0001 020000000001 0a000001 000000000000 0a000002') },
  { ts: 1_700_000_001_000_000_001n, data: fromHex('020000000002 020000000001 88b5 01') },
  {
    ts: 1_700_000_002_999_999_999n,
    data: fromHex(
      '020000000002 020000000001 0800' +
        '4500 0054 1234 4000 4011 0000 0a000001 0a000002' + // IPv4, UDP
        'c000 12b5 0040 0000' +
        Array.from({ length: 56 }, (_, i) => (i * 13 + 7).toString(16).padStart(2, '0').slice(-2)).join(''),
    ),
  },
];
// Raw IPv4 packets (LINKTYPE_RAW).
const RAW: Pkt[] = [
  { ts: 86_400_000_000_017n, data: fromHex('4500 0014 0001 0000 4011 0000 0a000001 0a000002') },
  { ts: 86_401_500_000_000n, data: fromHex('4500 0018 0002 0000 4001 0000 0a000002 0a000001 0800f7ff 0000') },
];

/** text2pcap's hex dump: a time line, then `offset  hex bytes` lines of 16. */
function hexDump(pkts: Pkt[]): string {
  let s = '';
  for (const p of pkts) {
    const sec = p.ts / 1_000_000_000n;
    const ns = (p.ts % 1_000_000_000n).toString().padStart(9, '0');
    const d = new Date(Number(sec) * 1000).toISOString(); // 2023-11-14T22:13:20.000Z
    s += `${d.slice(0, 10)} ${d.slice(11, 19)}.${ns}\n`;
    for (let o = 0; o < p.data.length; o += 16) {
      const line = Array.from(p.data.subarray(o, o + 16), (x) => x.toString(16).padStart(2, '0')).join(' ');
      s += `${o.toString(16).padStart(4, '0')}  ${line}\n`;
    }
    s += '\n';
  }
  return s;
}

function text2pcap(dir: string, pkts: Pkt[], out: string, args: string[]): string {
  requireTool('text2pcap', 'wireshark-common');
  const input = join(dir, `${out}.txt`);
  writeFileSync(input, hexDump(pkts));
  const path = join(dir, out);
  execFileSync('text2pcap', ['-q', '-t', '%Y-%m-%d %H:%M:%S.%f', ...args, input, path], { env: { ...process.env, TZ: 'UTC' }, stdio: 'pipe' });
  return path;
}

async function readAll(path: string): Promise<{ file: CaptureFile; records: CaptureRecord[] }> {
  const file = readCapture(path, { chunkBytes: 13 }); // small reads: records straddle chunks
  const records: CaptureRecord[] = [];
  for await (const r of file) records.push(r);
  return { file, records };
}

function expected(pkts: Pkt[], linkType: number, res: 'ns' | 'us', ifIndex = 0): CaptureRecord[] {
  return pkts.map((p) => ({ ifIndex, linkType, timestampNs: res === 'ns' ? p.ts : p.ts - (p.ts % 1000n), data: p.data, origLen: p.data.length }));
}

/** Writes `pkts` with our writer and returns the path. */
function ourPcap(dir: string, name: string, pkts: Pkt[], opts: ConstructorParameters<typeof PcapWriter>[1] = {}): string {
  const path = join(dir, name);
  const f = new FileSink(path);
  const w = new PcapWriter(f.write, opts);
  for (const p of pkts) w.writePacket(0, p.ts, p.data);
  f.close();
  return path;
}

test('text2pcap pcap (µs) and nsecpcap: read correctly, and byte-identical to what our writer makes', async () => {
  await withTempDir(async (dir) => {
    const us = text2pcap(dir, ETH, 'us.pcap', ['-F', 'pcap']);
    const a = await readAll(us);
    assert.equal(a.file.format, 'pcap');
    assert.deepEqual(a.records, expected(ETH, 1, 'us'));
    assert.deepEqual(a.file.interfaces, [{ name: '', linkType: 1, snaplen: 262144 }]);
    assert.deepEqual(readFileSync(ourPcap(dir, 'ours-us.pcap', ETH, { resolution: 'us' })), readFileSync(us));

    const ns = text2pcap(dir, ETH, 'ns.pcap', ['-F', 'nsecpcap']);
    assert.deepEqual((await readAll(ns)).records, expected(ETH, 1, 'ns'));
    assert.deepEqual(readFileSync(ourPcap(dir, 'ours-ns.pcap', ETH)), readFileSync(ns));

    const raw = text2pcap(dir, RAW, 'raw.pcap', ['-F', 'nsecpcap', '-l', '101']);
    assert.deepEqual((await readAll(raw)).records, expected(RAW, 101, 'ns'));
  });
});

test('text2pcap pcapng: interface name, ns timestamps, its SHB options; after the SHB, byte-identical to ours', async () => {
  await withTempDir(async (dir) => {
    const path = text2pcap(dir, ETH, 't.pcapng', ['-N', 'veth-pod1']);
    const { file, records } = await readAll(path);
    assert.equal(file.format, 'pcapng');
    assert.deepEqual(records, expected(ETH, 1, 'ns'));
    assert.deepEqual(file.interfaces, [{ name: 'veth-pod1', linkType: 1, snaplen: 262144 }]);
    assert.match(file.section?.userAppl ?? '', /^Text2pcap/);
    assert.equal(typeof file.section?.os, 'string');

    const chunks: Uint8Array[] = [];
    const w = new PcapngWriter((c) => chunks.push(c));
    w.addInterface('veth-pod1');
    for (const p of ETH) w.writePacket(0, p.ts, p.data);
    const theirs = new Uint8Array(readFileSync(path));
    const shbLen = new DataView(theirs.buffer, theirs.byteOffset).getUint32(4, true);
    assert.deepEqual(theirs.subarray(shbLen), concat(chunks.slice(1)));
  });
});

test('tcpdump (libpcap) rewrites our pcap and pcapng; we read its output', async () => {
  requireTool('tcpdump', 'tcpdump');
  await withTempDir(async (dir) => {
    const ours = ourPcap(dir, 'ours.pcap', ETH);
    const us = join(dir, 'td-us.pcap');
    run('tcpdump', ['-r', ours, '-w', us]);
    assert.deepEqual((await readAll(us)).records, expected(ETH, 1, 'us')); // libpcap writes µs by default
    const ns = join(dir, 'td-ns.pcap');
    run('tcpdump', ['--time-stamp-precision=nano', '-r', ours, '-w', ns]);
    assert.deepEqual(readFileSync(ns).subarray(0, 4), Buffer.from('4d3cb2a1', 'hex'));
    assert.deepEqual((await readAll(ns)).records, expected(ETH, 1, 'ns'));

    // libpcap reading our pcapng, both byte orders. It takes one link type per file, and more than one
    // LINKTYPE_RAW interface fails ("type 101 different from the type of the first interface": the first
    // IDB's link type is mapped to DLT_RAW, the next ones are not), so: two Ethernet interfaces, or one raw.
    for (const littleEndian of [true, false]) {
      for (const [linkType, pkts, ifaces] of [
        [1, ETH, 2],
        [101, RAW, 1],
      ] as const) {
        const ng = join(dir, `ours-${littleEndian}-${linkType}.pcapng`);
        const f = new FileSink(ng);
        const w = new PcapngWriter(f.write, { littleEndian });
        for (let i = 0; i < ifaces; i++) w.addInterface(`if${i}`, linkType);
        pkts.forEach((p, i) => w.writePacket(i % ifaces, p.ts, p.data));
        f.close();
        const out = join(dir, `td-${littleEndian}-${linkType}.pcap`);
        run('tcpdump', ['--time-stamp-precision=nano', '-r', ng, '-w', out]);
        const { file, records } = await readAll(out);
        assert.deepEqual(records, expected(pkts, linkType, 'ns'));
        assert.equal(file.interfaces[0]?.linkType, linkType);
      }
    }
  });
});

test("editcap -F pcapng (Wireshark's pcapng writer, with its own SHB options) is read correctly", async () => {
  requireTool('editcap', 'wireshark-common');
  await withTempDir(async (dir) => {
    for (const [fmt, res] of [
      ['pcap', 'us'],
      ['nsecpcap', 'ns'],
    ] as const) {
      const src = text2pcap(dir, ETH, `${fmt}.src`, ['-F', fmt]);
      const out = join(dir, `${fmt}.pcapng`);
      run('editcap', ['-F', 'pcapng', src, out]);
      const { file, records } = await readAll(out);
      assert.deepEqual(records, expected(ETH, 1, res));
      assert.equal(file.interfaces.length, 1);
      assert.equal(file.interfaces[0]?.linkType, 1);
      assert.match(file.section?.userAppl ?? '', /^Editcap/);
    }
    // And back: editcap turning our multi-interface pcapng into one pcapng of its own.
    const ours = join(dir, 'ours.pcapng');
    const f = new FileSink(ours);
    const w = new PcapngWriter(f.write);
    w.addInterface('eth0');
    w.addInterface('eth1');
    ETH.forEach((p, i) => w.writePacket(i % 2, p.ts, p.data));
    f.close();
    const re = join(dir, 're.pcapng');
    run('editcap', ['-F', 'pcapng', ours, re]);
    const { file, records } = await readAll(re);
    assert.deepEqual(
      records,
      ETH.map((p, i) => ({ ...expected([p], 1, 'ns')[0]!, ifIndex: i % 2 })),
    );
    assert.deepEqual(
      file.interfaces.map((i) => i.name),
      ['eth0', 'eth1'],
    );
  });
});

/** `frame.time_epoch` as tshark prints a nanosecond timestamp. */
function epoch(ts: bigint): string {
  return `${ts / 1_000_000_000n}.${(ts % 1_000_000_000n).toString().padStart(9, '0')}`;
}

function tsharkFields(path: string, fields: string[]): string[][] {
  requireTool('tshark', 'tshark');
  const out = run('tshark', ['-r', path, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])]);
  return out
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => l.split('\t'));
}

test('tshark reads our pcapng: interface names, link types, ns timestamps, lengths, both byte orders', async () => {
  await withTempDir(async (dir) => {
    for (const littleEndian of [true, false]) {
      const path = join(dir, `ours-${littleEndian}.pcapng`);
      const f = new FileSink(path);
      const w = new PcapngWriter(f.write, { littleEndian });
      const names = ['antrea-gw0', 'pod vétérinaire', 'tun0'];
      w.addInterface(names[0]!);
      w.addInterface(names[1]!, 1, 20); // snaplen cuts the long frame
      w.addInterface(names[2]!, 101);
      const rows: string[][] = [];
      ETH.forEach((p, i) => {
        w.writePacket(i % 2, p.ts, p.data);
        const capLen = i % 2 === 1 ? Math.min(20, p.data.length) : p.data.length;
        rows.push([names[i % 2]!, epoch(p.ts), String(p.data.length), String(capLen), i === 0 ? '10.0.0.2' : '']);
      });
      for (const p of RAW) {
        w.writePacket(2, p.ts, p.data);
        rows.push([names[2]!, epoch(p.ts), String(p.data.length), String(p.data.length), '']);
      }
      w.writePacket(0, 2n ** 64n - 1n, ETH[1]!.data, 1000); // the last nanosecond pcapng can hold, origLen > captured
      rows.push([names[0]!, epoch(2n ** 64n - 1n), '1000', String(ETH[1]!.data.length), '']);
      f.close();
      const got = tsharkFields(path, ['frame.interface_name', 'frame.time_epoch', 'frame.len', 'frame.cap_len', 'arp.dst.proto_ipv4']);
      assert.deepEqual(got, rows);
      // tshark sees the raw IP packets as IP.
      const ipDst = tsharkFields(path, ['ip.dst'])
        .slice(3, 5)
        .map((r) => r[0]);
      assert.deepEqual(ipDst, ['10.0.0.2', '10.0.0.1']);
    }
  });
});

test('tshark reads our pcap: nanosecond and microsecond, both byte orders', async () => {
  await withTempDir(async (dir) => {
    for (const resolution of ['ns', 'us'] as const) {
      for (const littleEndian of [true, false]) {
        const path = ourPcap(dir, `${resolution}-${littleEndian}.pcap`, ETH, { resolution, littleEndian });
        const got = tsharkFields(path, ['frame.time_epoch', 'frame.len', 'frame.cap_len']);
        const rows = expected(ETH, 1, resolution).map((r) => [epoch(r.timestampNs), String(r.origLen), String(r.data.length)]);
        assert.deepEqual(got, rows, `${resolution} ${littleEndian ? 'LE' : 'BE'}`);
      }
    }
  });
});
