/**
 * Super-frames end to end on the live datapath (issue 13): two seine nodes (l2, one pod each on VNI 42,
 * TAPs with TSO), a TCP transfer of 32 MiB from pod A to pod B over VXLAN and Geneve, each without ESP
 * and with ESP (AES-GCM-128; over IP, and for Geneve in UDP too), checked byte for byte: the sender hashes what it writes, the receiver
 * what it reads (SHA-256, a small node program in each pod's namespace), and the two must agree.
 *
 * On the way: node A's pod hands its TAP super-frames, the bridge segments them for the tunnel and the
 * tunnel socket sends each super-frame's segments with one UDP_SEGMENT send (plaintext and ESP in UDP;
 * ESP over IP goes by the raw socket's batched send); node B's socket takes UDP_GRO (the underlay veth has GRO on),
 * splits what the kernel coalesced, decapsulates, and its TAP coalesces the TCP segments into
 * super-frames for pod B. The agents' counters must show every one of those steps (> 0).
 *
 * The underlay: one veth pair between the nodes. Node A's end has transmit checksum offload off
 * (`ethtool -K eth0 tx off`) so that what the capture sees is what a NIC would put on the wire, the
 * kernel's software GSO included: tshark (IP, UDP and, in plaintext, the inner TCP checksums) finds no
 * bad checksum and no malformed frame among node A's datagrams, and none is larger than the underlay
 * MTU. (Node B's end coalesces with GRO; its received frames are not the wire's and are filtered out.)
 *
 * Over plain VXLAN, USO too (where the kernel takes it): a pod's UDP_SEGMENT sends reach the TAP as UDP
 * super-frames, and the bridge cuts them into their datagrams, which arrive whole.
 *
 * On one node, the same transfer between two pods goes through the bridge as super-frames, whole.
 *
 * Root only (skipped, loudly, otherwise); everything is removed in `after`, pass or fail.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { DeviceSample, MetricsSnapshot } from '../../src/live/metrics.js';
import { podMtu } from '../../src/mtu/overhead.js';
import { nodeConfigsFromScenario, type ClusterTopology, type NodeConfig } from '../../src/node/config.js';
import { hashClient, hashServer, twoNodeConfigs } from './topo.js';
import { SYSTEM_PYTHON } from '../helpers.js';
import { liveSkip, requireCommand, Rig, startAgent, tsharkFaults, tsharkFields, waitFor } from './rig.js';

const SKIP = liveSkip('test/live/superframe.test.ts');
const rigs: Rig[] = [];
after(async () => {
  for (const r of rigs) await r.cleanup();
});

const VNI = 42;
const UNDER_A = '172.31.43.1';
const UNDER_B = '172.31.43.2';
const POD_A = '10.43.0.1';
const POD_B = '10.43.0.2';
const PORT = 7777;
const BYTES = 32 << 20;

const SERVER = hashServer(PORT);
const CLIENT = hashClient(PORT, 0x9e3779b9);

type Esp = null | 'ip' | 'udp';

function nodes(kind: 'vxlan' | 'geneve', esp: Esp, mtu: number): [NodeConfig, NodeConfig] {
  return twoNodeConfigs({
    tunnel: kind,
    vni: VNI,
    podMtu: mtu,
    encryption: esp !== null ? { cipher: 'aes-gcm-128', udpEncap: esp === 'udp', secret: 'superframe-test' } : null,
    nodes: [
      { name: 'a', underlayIp: UNDER_A, pod: 'pa', podIp4: POD_A },
      { name: 'b', underlayIp: UNDER_B, pod: 'pb', podIp4: POD_B },
    ],
  });
}

/** UDP with USO: 50 sends of 20 datagrams of 1000 bytes each (UDP_SEGMENT), datagram k numbered in its first 4 bytes. */
const USO_SENDER = `
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(17, 103, 1000)  # SOL_UDP, UDP_SEGMENT
for m in range(50):
    s.sendto(b"".join(struct.pack("!I", k) + bytes(((k * 7 + i) & 0xff) for i in range(996)) for k in range(m * 20, m * 20 + 20)), (sys.argv[1], 9999))
    time.sleep(0.005)
`;

/** Counts the datagrams that arrive whole and as sent (and those that do not), until 2 s pass without one. */
const USO_RECEIVER = `
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((sys.argv[1], 9999)); s.settimeout(2)
print("listening", flush=True)
good = bad = 0
try:
    while True:
        b = s.recv(65535)
        k = struct.unpack("!I", b[:4])[0] if len(b) >= 4 else -1
        if len(b) == 1000 and b[4:] == bytes(((k * 7 + i) & 0xff) for i in range(996)): good += 1
        else: bad += 1
except socket.timeout: pass
print("good", good, "bad", bad, flush=True)
`;

/** The receiver's report (the line with its hash), once it has printed one. */
async function received(srv: { output(): string }): Promise<{ bytes: number; sha256: string }> {
  await waitFor('the receiver to report', async () => (/"sha256"/.test(srv.output()) ? true : undefined), 20_000, 100);
  return JSON.parse(
    srv
      .output()
      .split('\n')
      .find((l) => l.includes('sha256'))!,
  ) as { bytes: number; sha256: string };
}

const device = (s: MetricsSnapshot, name: string): DeviceSample => s.devices.find((d) => d.device === name)!;

describe('live super-frames: TSO pods, TCP across two nodes, exact bytes', { skip: SKIP }, () => {
  test('one node: 32 MiB pod → pod through the bridge, super-frames whole (never segmented), same SHA-256 at both ends', { timeout: 60_000 }, async (t) => {
    const rig = new Rig('sf1');
    rigs.push(rig);
    try {
      const pod = (name: string, ip4: string): ClusterTopology['nodes'][number]['pods'][number] => ({
        name,
        node: 'a',
        ip4,
        ip6: null,
        vlan: null,
        vni: VNI,
        mtu: 1450,
      });
      const topo: ClusterTopology = {
        tunnel: { type: 'vxlan', mode: 'l2', vni: VNI, options: [], fragmentPolicy: 'outer', icmpTooBig: true, mssClamp: true },
        encryption: null,
        podMtu: 1450,
        nodes: [{ name: 'a', podCIDR4: null, podCIDR6: null, gateway4: null, gateway6: null, underlayIp: UNDER_A, pods: [pod('pa', POD_A), pod('pb', POD_B)] }],
      };
      const node = nodeConfigsFromScenario(topo)[0]!;
      const a = await rig.addNetns('a');
      const pa = await rig.addNetns('pa');
      const pb = await rig.addNetns('pb');
      const agent = await startAgent(rig, { ns: a, node, pods: { pa: { netns: pa, ifname: 'eth0' }, pb: { netns: pb, ifname: 'eth0' } } });
      await waitFor(
        'a first ping',
        async () => ((await rig.run(pa, ['ping', '-c', '1', '-W', '1', POD_B]).catch(() => null)) !== null ? true : undefined),
        15_000,
        200,
      );
      const srv = rig.spawn(pb, 'receiver', [process.execPath, '-e', SERVER, POD_B]);
      await srv.waitForOutput(/listening/, 10_000);
      const sent = JSON.parse((await rig.run(pa, [process.execPath, '-e', CLIENT, POD_B, String(BYTES)], 60_000)).stdout.trim()) as {
        bytes: number;
        sha256: string;
      };
      assert.deepEqual(await received(srv), sent, 'the receiver read exactly the bytes the sender wrote');
      const s = await agent.stats();
      const from = device(s, 'pa');
      const to = device(s, 'pb');
      t.diagnostic(`pod A handed over ${from.rxSuper} super-frames; pod B was written ${to.txSuper}; the bridge segmented ${s.gso['superFrames']}`);
      assert.ok(from.rxSuper > 0 && to.txSuper > 0, 'super-frames in from one TAP and out to the other');
      assert.equal(s.gso['superFrames'], 0, 'none segmented: a TAP with TSO takes them whole');
    } finally {
      await rig.cleanup();
    }
  });

  const variants: Array<['vxlan' | 'geneve', Esp]> = [
    ['vxlan', null],
    ['vxlan', 'ip'],
    ['geneve', null],
    ['geneve', 'ip'],
    ['geneve', 'udp'],
  ];
  for (const [kind, esp] of variants) {
    test(`${kind}${esp === 'ip' ? ' + ESP (aes-gcm-128)' : esp === 'udp' ? ' + ESP in UDP (aes-gcm-128)' : ''}: 32 MiB pod → pod, same SHA-256 at both ends, segmented and coalesced, a clean underlay`, {
      timeout: 120_000,
    }, async (t) => {
      for (const [c, p] of [
        ['ethtool', 'ethtool'],
        ['tcpdump', 'tcpdump'],
        ['tshark', 'tshark'],
      ] as const)
        requireCommand(c, p);
      const rig = new Rig('sf');
      rigs.push(rig);
      try {
        const mtu = podMtu(1500, { tunnel: kind, underlay: 4, esp: esp !== null ? { cipher: 'aes-gcm-128', udpEncap: esp === 'udp' } : null });
        const [na, nb] = nodes(kind, esp, mtu);
        const a = await rig.addNetns('a');
        const b = await rig.addNetns('b');
        const pa = await rig.addNetns('pa');
        const pb = await rig.addNetns('pb');
        await rig.veth({ ns: a, name: 'eth0' }, { ns: b, name: 'eth0' }, 1500);
        await rig.run(a, ['ip', 'addr', 'add', `${UNDER_A}/24`, 'dev', 'eth0']);
        await rig.run(b, ['ip', 'addr', 'add', `${UNDER_B}/24`, 'dev', 'eth0']);
        // A: what leaves is what a NIC would send (checksums complete, GSO done in software); B: GRO.
        await rig.run(a, ['ethtool', '-K', 'eth0', 'tx', 'off']);
        await rig.run(b, ['ethtool', '-K', 'eth0', 'gro', 'on']);
        const agentA = await startAgent(rig, { ns: a, node: na, pods: { pa: { netns: pa, ifname: 'eth0' } } });
        const agentB = await startAgent(rig, { ns: b, node: nb, pods: { pb: { netns: pb, ifname: 'eth0' } } });
        const st = await agentA.request('status');
        const off = st['offloads'] as { enabled: boolean; taps: Record<string, { tso: boolean }>; udpGso: boolean; udpGro: boolean };
        assert.equal(off.enabled, true);
        assert.equal(off.taps['pa']?.tso, true, `TSO on the pod's TAP: ${JSON.stringify(off)}`);
        const pool = st['pool'] as { buffers: number; bufferBytes: number; memoryBytes: number };
        assert.ok(pool.bufferBytes > 65536 && pool.memoryBytes === pool.buffers * pool.bufferBytes, `pool: ${JSON.stringify(pool)}`);
        const tso = (await rig.run(pa, ['ethtool', '-k', 'eth0'])).stdout;
        assert.match(tso, /tcp-segmentation-offload: on/, 'the pod sees TSO on its interface');

        await waitFor(
          'a first ping across',
          async () => ((await rig.run(pa, ['ping', '-c', '1', '-W', '1', POD_B]).catch(() => null)) !== null ? true : undefined),
          15_000,
          200,
        );
        // The first 6,000 frames from A (about 8 MiB of the transfer, hundreds of segmented super-frames):
        // the whole 32 MiB (~24,000 frames) made tshark's passes run past their minute on 2 busy cores.
        const cap = await rig.capture(a, 'eth0', 'underlay-a', ['src', 'host', UNDER_A], 6000);
        const srv = rig.spawn(pb, 'receiver', [process.execPath, '-e', SERVER, POD_B]);
        await srv.waitForOutput(/listening/, 10_000);
        const sent = JSON.parse((await rig.run(pa, [process.execPath, '-e', CLIENT, POD_B, String(BYTES)], 60_000)).stdout.trim()) as {
          bytes: number;
          sha256: string;
        };
        const got = await received(srv);
        assert.equal(sent.bytes, BYTES);
        assert.deepEqual(got, sent, 'the receiver read exactly the bytes the sender wrote');
        await cap.proc.stop();

        const sa = await agentA.stats();
        const sb = await agentB.stats();
        const ua = device(sa, 'underlay');
        const ub = device(sb, 'underlay');
        t.diagnostic(
          `A: bridge segmented ${sa.gso['superFrames']} super-frames into ${sa.gso['segments']}; socket sent ${ua.txSuper} UDP_SEGMENT sends of ${ua.txSuperSegments} datagrams. B: socket took ${ub.rxSuper} GRO'd datagrams holding ${ub.rxSuperSegments}; TAP coalesced ${sb.gso['coalesced']} super-frames from ${sb.gso['coalescedSegments']} segments`,
        );
        assert.ok(device(sa, 'pa').rxSuper > 0, 'pod A handed over super-frames');
        assert.ok(sa.gso['superFrames']! > 0 && sa.gso['segments']! > sa.gso['superFrames']!, `A segmented super-frames: ${JSON.stringify(sa.gso)}`);
        assert.ok(sb.gso['coalesced']! > 0 && sb.gso['coalescedSegments']! > sb.gso['coalesced']!, `B coalesced segments: ${JSON.stringify(sb.gso)}`);
        assert.ok(device(sb, 'pb').txSuper > 0, 'B wrote super-frames to its pod');
        if (esp !== 'ip') {
          // ESP over IP leaves by the raw socket (no UDP GSO) and arrives on it (no UDP GRO); ESP in UDP
          // (port 4500) has both, as plain VXLAN and Geneve do.
          assert.ok(ua.txSuper > 0 && ua.txSuperSegments > ua.txSuper, `A's UDP_SEGMENT sends: ${ua.txSuper} of ${ua.txSuperSegments}`);
          assert.ok(ub.rxSuper > 0 && ub.rxSuperSegments > ub.rxSuper, `B's GRO'd datagrams: ${ub.rxSuper} holding ${ub.rxSuperSegments}`);
        }
        for (const [n, s] of [
          ['A', sa],
          ['B', sb],
        ] as const) {
          // From the agents' start on (the SAs agreed, the ping, the transfer): ESP's announcements are
          // consumed by the SA database, counted as EspControl, and nothing else is dropped.
          for (const p of s.ports)
            assert.deepEqual(
              Object.keys(p.drops).filter((r) => r !== 'EspControl'),
              [],
              `no drops on ${n}'s port ${p.port}: ${JSON.stringify(p.drops)}`,
            );
        }

        // The wire: node A's datagrams (or ESP packets), each within the MTU, every checksum good.
        const proto = esp !== null ? 'esp' : kind;
        const frames = await tsharkFields(cap.file, proto, ['frame.len']);
        assert.ok(frames.length > 1000, `${frames.length} ${proto} frames from A`);
        const largest = Math.max(...frames.map(([l]) => Number(l)));
        assert.ok(largest <= 1514, `largest frame ${largest} bytes (underlay MTU 1500)`);
        const faults = await tsharkFaults(cap.file, { tcpChecksums: esp === null, decodeAs: [`tcp.port==${PORT},data`] });
        assert.deepEqual(faults.slice(0, 10), [], `${faults.length} frames with a bad checksum or malformed`);
        if (esp === null) {
          const inner = await tsharkFields(cap.file, `${kind} && tcp.dstport == ${PORT}`, ['tcp.len']);
          assert.ok(inner.length > 1000 && inner.every(([l]) => Number(l) <= mtu - 40), `inner TCP segments within MSS ${mtu - 40}`);
        }
        t.diagnostic(`${frames.length} ${proto} frames from A, largest ${largest} bytes, tshark finds no fault`);
        if (kind === 'vxlan' && esp === null) {
          // USO, where the kernel takes it (Linux 6.2+): a UDP super-frame is cut into its datagrams.
          const off2 = (await agentA.request('status'))['offloads'] as { taps: Record<string, { uso: boolean }> };
          if (off2.taps['pa']?.uso !== true) t.diagnostic('USO not taken by this kernel: the UDP part is skipped');
          else {
            const before = (await agentA.stats()).gso['superFrames']!;
            const rx = rig.spawn(pb, 'uso-receiver', [SYSTEM_PYTHON, '-c', USO_RECEIVER, POD_B]);
            await rx.waitForOutput(/listening/, 10_000);
            await rig.run(pa, [SYSTEM_PYTHON, '-c', USO_SENDER, POD_B], 30_000);
            await rx.waitForOutput(/good \d+ bad \d+/, 15_000);
            const [, good, bad] = /good (\d+) bad (\d+)/.exec(rx.output())!.map(Number);
            const u = (await agentA.stats()).gso;
            t.diagnostic(`USO: ${u['superFrames']! - before} UDP super-frames segmented; ${good} of 1000 datagrams arrived as sent, ${bad} otherwise`);
            assert.ok(u['superFrames']! - before >= 25, `UDP super-frames segmented: ${u['superFrames']! - before}`);
            assert.equal(bad, 0, 'every datagram that arrived is one that was sent, whole');
            // UDP may lose some on a busy machine; what arrives must be most of it.
            assert.ok(good! >= 900, `${good} of 1000 datagrams arrived`);
          }
        }
      } finally {
        await rig.cleanup();
      }
    });
  }
});
