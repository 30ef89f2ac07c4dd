/**
 * ESP from the first packet on live nodes. Node A's agent starts and its pod pings pod B at once; node B
 * boots a little later (its agent starts 2.5 s after A's, and takes a moment of its own); the moment it
 * answers, pod A sends pod B 8 MiB over TCP — no ping to wait for, nothing to let settle. The SAs are
 * agreed while traffic is already on its way: packets wait for the announcements and then go (the echo
 * requests sent before node B ran included: a wait of 2 s dropped them, `EspNoSa`), a node sends under an
 * SA only once its peer holds the inbound side, and nothing is dropped — not `EspNoSa`, not
 * `EspUnknownSpi`, nothing but the announcements themselves (`EspControl`), counted from the agents'
 * start. ESP over IP (the announcements come by the UDP socket, the ESP packets by the raw one: two
 * sockets, read in whatever order) and ESP in UDP.
 *
 * Root only (skipped, loudly, otherwise); everything is removed in `after`, pass or fail.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { podMtu } from '../../src/mtu/overhead.js';
import type { NodeConfig } from '../../src/node/config.js';
import { hashClient, hashServer, twoNodeConfigs } from './topo.js';
import { liveSkip, Rig, sleep, startAgent, waitFor } from './rig.js';

const SKIP = liveSkip('test/live/esp-startup.test.ts');
const rigs: Rig[] = [];
after(async () => {
  for (const r of rigs) await r.cleanup();
});

const VNI = 47;
const UNDER_A = '172.31.47.1';
const UNDER_B = '172.31.47.2';
const POD_A = '10.47.0.1';
const POD_B = '10.47.0.2';
const PORT = 7747;
const BYTES = 8 << 20;

const SERVER = hashServer(PORT);
const CLIENT = hashClient(PORT, 0x2545f491);

function nodes(udpEncap: boolean): [NodeConfig, NodeConfig] {
  const mtu = podMtu(1500, { tunnel: 'vxlan', underlay: 4, esp: { cipher: 'aes-gcm-128', udpEncap } });
  return twoNodeConfigs({
    tunnel: 'vxlan',
    vni: VNI,
    podMtu: mtu,
    encryption: { cipher: 'aes-gcm-128', udpEncap, secret: 'esp-startup-test' },
    nodes: [
      { name: 'a', underlayIp: UNDER_A, pod: 'pa', podIp4: POD_A },
      { name: 'b', underlayIp: UNDER_B, pod: 'pb', podIp4: POD_B },
    ],
  });
}

describe('live ESP start-up: traffic at once after the agents start, nothing dropped', { skip: SKIP }, () => {
  for (const udpEncap of [false, true]) {
    test(`ESP ${udpEncap ? 'in UDP' : 'over IP'} (aes-gcm-128): a ping from before the peer started, 8 MiB of TCP the moment it did, same SHA-256 at both ends, no drop from the start on`, {
      timeout: 90_000,
    }, async (t) => {
      const rig = new Rig('es');
      rigs.push(rig);
      try {
        const [na, nb] = nodes(udpEncap);
        const a = await rig.addNetns('a');
        const b = await rig.addNetns('b');
        const pa = await rig.addNetns('pa');
        const pb = await rig.addNetns('pb');
        await rig.veth({ ns: a, name: 'eth0' }, { ns: b, name: 'eth0' }, 1500);
        await rig.run(a, ['ip', 'addr', 'add', `${UNDER_A}/24`, 'dev', 'eth0']);
        await rig.run(b, ['ip', 'addr', 'add', `${UNDER_B}/24`, 'dev', 'eth0']);
        const agentA = await startAgent(rig, { ns: a, node: na, pods: { pa: { netns: pa, ifname: 'eth0' } } });
        // Pod A pings at once, for 6 s: its ARP requests wait for node B, which is not there yet. (Pod A's
        // kernel gives up on the first ones after 3 s, as it would without ESP; the later ones are answered.)
        const ping = rig.run(pa, ['ping', '-c', '12', '-i', '0.5', '-W', '2', POD_B], 30_000).then(
          (r) => r.stdout,
          (e: unknown) => String(e),
        );
        await sleep(2500);
        const agentB = await startAgent(rig, { ns: b, node: nb, pods: { pb: { netns: pb, ifname: 'eth0' } } });
        // At once: the receiver starts and pod A sends.
        const srv = rig.spawn(pb, 'receiver', [process.execPath, '-e', SERVER, POD_B]);
        await srv.waitForOutput(/listening/, 10_000);
        const sent = JSON.parse((await rig.run(pa, [process.execPath, '-e', CLIENT, POD_B, String(BYTES)], 60_000)).stdout.trim()) as {
          bytes: number;
          sha256: string;
        };
        const pinged = await ping;
        const answered = Number(/ (\d+) received/.exec(pinged)?.[1] ?? 0);
        t.diagnostic(`ping: ${answered} of 12 answered`);
        assert.ok(answered >= 1, `echo requests answered once node B ran:\n${pinged}`);
        await waitFor('the receiver to report', async () => (/"sha256"/.test(srv.output()) ? true : undefined), 20_000, 100);
        const got = JSON.parse(
          srv
            .output()
            .split('\n')
            .find((l) => l.includes('sha256'))!,
        ) as { bytes: number; sha256: string };
        assert.equal(sent.bytes, BYTES);
        assert.deepEqual(got, sent, 'the receiver read exactly the bytes the sender wrote');
        for (const [n, ag] of [
          ['A', agentA],
          ['B', agentB],
        ] as const) {
          const s = await ag.stats();
          t.diagnostic(`${n}: ports ${JSON.stringify(s.ports.map((p) => [p.port, p.drops]))}, tunnel ${JSON.stringify(s.tunnel)}`);
          // From the agent's start on: the announcements are consumed (EspControl), nothing else is dropped.
          for (const p of s.ports) {
            const other = Object.keys(p.drops).filter((r) => r !== 'EspControl');
            assert.deepEqual(other, [], `no drops on ${n}'s port ${p.port} since the agent started: ${JSON.stringify(p.drops)}`);
          }
          assert.equal(s.bridge['heldForEsp'], 0, `nothing still waits on ${n}`);
        }
      } finally {
        await rig.cleanup();
      }
    });
  }
});
