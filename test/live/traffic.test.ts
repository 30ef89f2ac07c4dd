/**
 * `seine run --live`'s tools, without running them (no root): the command lines built from a scenario's
 * flows, and what ping's, iperf3's and ss's output mean in the report's terms (real outputs of the
 * versions the live tests use: iputils 20221126, iperf 3.12, iproute2's ss).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  iperfDatagramOf,
  iperfUdpClientArgv,
  lastProbeLine,
  parseIperfUdp,
  parsePing,
  parseSsTcpInfo,
  pingArgv,
  sendable,
  udpStreams,
} from '../../src/live/lab/traffic.js';
import { parseScenario, type TrafficSpec } from '../../src/scenario/scenario.js';

const flow = (line: string): TrafficSpec =>
  parseScenario(
    `name: t
nodes:
  - { name: n1, podCIDR: 10.0.1.0/24, pods: [{ name: a }, { name: b }] }
traffic:
  - ${line}
`,
    't.yaml',
  ).traffic[0]!;

test('ping: the command line of a flow (IP size less 28, DF, interval in seconds, identifier)', () => {
  const t = flow('{ type: ping, from: n1/a, to: n1/b, size: 1400, df: true, count: 5, interval: 100ms }');
  assert.deepEqual(pingArgv({ dst: '10.0.1.3', family: 4, count: t.count, intervalNs: t.intervalNs, ipSize: t.sizes[0]!, df: t.df, ident: 7, waitS: 2 }), [
    'ping',
    '-n',
    '-4',
    '-c',
    '5',
    '-i',
    '0.1',
    '-s',
    '1372',
    '-M',
    'do',
    '-e',
    '7',
    '-W',
    '2',
    '10.0.1.3',
  ]);
  assert.deepEqual(pingArgv({ dst: 'fd00::2', family: 6, count: 1, intervalNs: 2e6, ipSize: 104, df: false, ident: 1, waitS: 2 }).slice(2, 11), [
    '-6',
    '-c',
    '1',
    '-i',
    '0.002',
    '-s',
    '56',
    '-M',
    'dont',
  ]);
});

test('ping: replies, RTTs, duplicates and the summary', () => {
  const out = `PING 10.244.2.10 (10.244.2.10) 56(84) bytes of data.
64 bytes from 10.244.2.10: icmp_seq=1 ttl=62 time=13.6 ms
64 bytes from 10.244.2.10: icmp_seq=2 ttl=62 time=1.63 ms
64 bytes from 10.244.2.10: icmp_seq=2 ttl=62 time=1.70 ms (DUP!)
64 bytes from 10.244.2.10: icmp_seq=3 ttl=62 time=0.078 ms

--- 10.244.2.10 ping statistics ---
4 packets transmitted, 3 received, +1 duplicates, 25% packet loss, time 403ms
rtt min/avg/max/mdev = 0.078/5.1/13.6/5.100 ms
`;
  const p = parsePing(out, '');
  assert.equal(p.transmitted, 4);
  assert.equal(p.received, 3);
  assert.equal(p.duplicates, 1);
  assert.deepEqual(p.rttsNs, [13_600_000, 1_630_000, 78_000]);
  assert.deepEqual(p.icmp, ['echo-reply']);
  assert.equal(p.localTooBig, 0);
});

test('ping: frag-needed from the gateway, then the kernel refusing what it knows is too big', () => {
  const p = parsePing(
    `PING 10.244.2.2 (10.244.2.2) 1444(1472) bytes of data.
From 10.244.1.1 icmp_seq=1 Frag needed and DF set (mtu = 1450)

--- 10.244.2.2 ping statistics ---
3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 205ms
`,
    'ping: local error: message too long, mtu=1450\nping: local error: message too long, mtu=1450\n',
    '10.244.1.2',
  );
  assert.equal(p.transmitted, 3);
  assert.equal(p.received, 0);
  assert.equal(p.localTooBig, 2);
  assert.deepEqual(p.icmp, ['frag-needed']);
  assert.equal(p.mtu, 1450);
});

test("ping: the sender's own unreachable (no ARP answer) is not ICMP seen; others' are; IPv6 too big", () => {
  const own = parsePing(
    'From 10.0.0.11 icmp_seq=1 Destination Host Unreachable\n\n2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1ms\n',
    '',
    '10.0.0.11',
  );
  assert.deepEqual(own.icmp, []);
  const other = parsePing('From 10.244.1.1 icmp_seq=1 Destination Net Unreachable\nFrom 10.244.1.1 icmp_seq=2 Time to live exceeded\n', '', '10.244.1.2');
  assert.deepEqual(other.icmp, ['dest-unreachable', 'time-exceeded']);
  assert.equal(other.transmitted, 0, 'no summary: nothing said it was sent');
  const v6 = parsePing(
    'From fd00:10:244:1::1 icmp_seq=1 Packet too big: mtu=1430\n64 bytes from fd00:10:244:2::10: icmp_seq=2 ttl=62 time=1.23 ms\n\n2 packets transmitted, 1 received, +1 errors, 50% packet loss, time 1ms\n',
    '',
    'fd00:10:244:1::2',
  );
  assert.deepEqual(v6.icmp, ['echo-reply', 'packet-too-big']);
  assert.equal(v6.mtu, 1430);
});

test('udp: one iperf3 stream per size, sizes cycled as the simulator does, each at its share of the rate', () => {
  const t = flow('{ type: udp, from: n1/a, to: n1/b, count: 1000, rate: 100Mbit, sizes: imix }');
  const st = udpStreams(t);
  assert.deepEqual(
    st.map((x) => [x.ipSize, x.payload, x.count]),
    [
      [64, 36, 585],
      [576, 548, 332],
      [1500, 1472, 83],
    ],
  );
  // The flow's packet rate, split by count, gives the datagrams per second of each stream.
  const pps = 1e9 / t.intervalNs;
  for (const x of st) assert.ok(Math.abs(x.bitrate / (x.payload * 8) - (pps * x.count) / 1000) < 1);
  assert.deepEqual(iperfUdpClientArgv({ dst: '10.0.1.3', port: 5201, family: 4, stream: st[0]!, cport: 10001, df: true, connectTimeoutMs: 3000 }), [
    'iperf3',
    '-c',
    '10.0.1.3',
    '-p',
    '5201',
    '-4',
    '-u',
    '-b',
    String(st[0]!.bitrate),
    '-l',
    '36',
    '-k',
    '585',
    '--cport',
    '10001',
    '--connect-timeout',
    '3000',
    '-J',
    '--dont-fragment',
  ]);
  const tiny = udpStreams(flow('{ type: udp, from: n1/a, to: n1/b, count: 3, size: 30 }'));
  assert.equal(tiny[0]!.payload, 16, "iperf3's smallest datagram");
});

test("udp: iperf3's JSON: sent by the client, received = the server's highest sequence number less the gaps", () => {
  const o = parseIperfUdp(
    JSON.stringify({
      start: {},
      end: {
        sum_sent: { seconds: 0.16414, bytes: 164400, packets: 300, lost_packets: 0, jitter_ms: 0, sender: true },
        sum_received: { seconds: 0.164798, bytes: 163852, packets: 299, lost_packets: 4, jitter_ms: 0.0717, sender: false },
      },
    }),
  );
  assert.deepEqual({ sent: o.sent, received: o.received, lost: o.lost, seconds: o.seconds }, { sent: 300, received: 295, lost: 4, seconds: 0.16414 });
  assert.ok(Math.abs(o.jitterNs! - 71_700) < 1e-6);
  assert.equal(parseIperfUdp('{"error":"unable to connect to server: Connection refused"}').error, 'unable to connect to server: Connection refused');
  assert.throws(() => parseIperfUdp('iperf3: error'));
});

test("udp: iperf3's datagrams on the wire: ports, sequence number, send time; IPv4 and IPv6, first fragments only", () => {
  const udpPayload = (seq: number): number[] => [0, 0, 0, 5, 0, 0, 0x03, 0xe8, (seq >>> 24) & 255, (seq >>> 16) & 255, (seq >>> 8) & 255, seq & 255];
  const eth = (et: number): number[] => [...new Array<number>(12).fill(0), et >> 8, et & 255];
  const v4 = (frag: number): Uint8Array =>
    Uint8Array.from([
      ...eth(0x0800),
      0x45,
      0,
      0,
      40,
      0,
      1,
      frag >> 8,
      frag & 255,
      64,
      17,
      0,
      0,
      10,
      0,
      1,
      2,
      10,
      0,
      1,
      3,
      0x27,
      0x11,
      0x14,
      0x51,
      0,
      20,
      0,
      0,
      ...udpPayload(42),
    ]);
  assert.deepEqual(iperfDatagramOf(v4(0x2000)), { sport: 10001, dport: 5201, seq: 42, sentNs: 5e9 + 1e6 });
  assert.equal(iperfDatagramOf(v4(0x0010)), null, 'a later fragment has no UDP header');
  const v6 = Uint8Array.from([
    ...eth(0x86dd),
    0x60,
    0,
    0,
    0,
    0,
    28,
    44,
    64,
    ...new Array<number>(32).fill(1),
    17,
    0,
    0,
    1,
    0,
    0,
    0,
    9,
    0x27,
    0x11,
    0x14,
    0x51,
    0,
    20,
    0,
    0,
    ...udpPayload(7),
  ]);
  assert.deepEqual(iperfDatagramOf(v6), { sport: 10001, dport: 5201, seq: 7, sentNs: 5e9 + 1e6 });
  assert.equal(iperfDatagramOf(Uint8Array.from(eth(0x0806))), null);
});

test("tcp: the sender's TCP_INFO as ss prints it, and the probe's last line", () => {
  const ss = `ESTAB 0      0      10.244.1.3:20008 10.244.2.10:5408
\t bbr wscale:10,10 rto:228 rtt:26.529/2.429 ato:40 mss:1398 pmtu:1450 rcvmss:536 advmss:1398 cwnd:461 bytes_sent:2001398 bytes_retrans:1398 bytes_acked:2000001 bytes_received:18 segs_out:1437 segs_in:436 data_segs_out:1434 data_segs_in:1 send 406059040bps retrans:0/1 dsack_dups:1 minrtt:0.981 snd_wnd:1077248
`;
  assert.deepEqual(parseSsTcpInfo(ss), {
    state: 'established',
    mss: 1398,
    pmtu: 1450,
    retransmits: 1,
    bytesSent: 2001398,
    bytesAcked: 2000001,
    bytesRetrans: 1398,
    dataSegsOut: 1434,
    segsOut: 1437,
    rttNs: 26_529_000,
    minRttNs: 981_000,
  });
  assert.equal(parseSsTcpInfo('').mss, null);
  assert.equal(lastProbeLine('{"event":"listening","port":1}\nnoise\n{"event":"done","delivered":5}\n')?.delivered, 5);
  assert.equal(lastProbeLine('garbage'), null);
});

test('sendable: a ping or UDP flow sends what starts before the scenario ends, as the simulator does', () => {
  const t = flow('{ type: ping, from: n1/a, to: n1/b, count: 100, interval: 100ms, start: 500ms }');
  assert.equal(sendable(t, 2e9), 16, '0.5 s, 0.6 s, … 2.0 s');
  assert.equal(sendable(t, 100e9), 100);
  assert.equal(sendable(t, 0.4e9), 0);
});
