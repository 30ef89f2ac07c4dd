/**
 * Two live agents (routed, Geneve) whose configurations list no peers: each takes the other from the
 * fake Kubernetes API's Nodes (test/live/k8s-api.ts) and a pod on one pings a pod on the other across
 * the tunnel. The Node of the far side deleted, the peer and its tunnel go (the ping fails); added back,
 * they return (it passes again). The agents run in this namespace, with their sockets and TAPs in the
 * nodes' namespaces (`netns`), so that they reach the fake API server on 127.0.0.1.
 *
 * Root only (skipped, loudly, otherwise); everything made is removed in `after`, pass or fail.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { nodeConfigsFromScenario, type ClusterTopology } from '../../src/node/config.js';
import { FakeKubeApi, fakeKubeconfig } from './k8s-api.js';
import { liveSkip, Rig, startAgent, waitFor, type RigAgent } from './rig.js';

const SKIP = liveSkip('test/live/k8s-agent.test.ts');
const rigs: Rig[] = [];
const apis: FakeKubeApi[] = [];
after(async () => {
  for (const a of apis) await a.close();
  for (const r of rigs) await r.cleanup();
});

const UNDER = ['172.31.44.1', '172.31.44.2'];
const CIDR = ['10.44.1.0/24', '10.44.2.0/24'];
const POD = ['10.44.1.2', '10.44.2.2'];
const NAMES = ['kube-n1', 'kube-n2'];

test('k8s agent: peers from the API server; a pod pings across; a Node deleted and added back takes its tunnel along', {
  skip: SKIP,
  timeout: 120_000,
}, async () => {
  const rig = new Rig('k8');
  rigs.push(rig);
  const api = new FakeKubeApi();
  apis.push(api);
  await api.listen();
  const kubeconfig = join(rig.dir, 'kubeconfig');
  writeFileSync(kubeconfig, fakeKubeconfig(api, 'agent-token'));
  const node = (i: number): ClusterTopology['nodes'][number] => ({
    name: NAMES[i]!,
    podCIDR4: CIDR[i]!,
    podCIDR6: null,
    gateway4: CIDR[i]!.replace(/0\/24$/, '1'),
    gateway6: null,
    underlayIp: UNDER[i]!,
    pods: [{ name: 'p', node: NAMES[i]!, ip4: POD[i]!, ip6: null, vlan: null, vni: null, mtu: 1400 }],
  });
  const cfgs = nodeConfigsFromScenario({
    tunnel: { type: 'geneve', mode: 'routed', vni: 7, options: [], fragmentPolicy: 'outer', icmpTooBig: true, mssClamp: true },
    encryption: null,
    podMtu: 1400,
    nodes: [node(0), node(1)],
  });
  const nodeNs = [await rig.addNetns('n1'), await rig.addNetns('n2')];
  const podNs = [await rig.addNetns('n1p'), await rig.addNetns('n2p')];
  await rig.veth({ ns: nodeNs[0]!, name: 'eth0' }, { ns: nodeNs[1]!, name: 'eth0' });
  for (let i = 0; i < 2; i++) {
    await rig.run(nodeNs[i]!, ['ip', 'addr', 'add', `${UNDER[i]}/24`, 'dev', 'eth0']);
    api.put({ name: NAMES[i]!, podCIDRs: [CIDR[i]!], internalIPs: [UNDER[i]!] });
  }
  // A Node that is no peer yet (no podCIDR): skipped, not fatal.
  api.put({ name: 'kube-n3', internalIPs: ['172.31.44.3'] });
  const agents: RigAgent[] = [];
  for (let i = 0; i < 2; i++) {
    agents.push(
      await startAgent(rig, {
        ns: null,
        node: { ...cfgs[i]!, peers: [] },
        pods: { p: { netns: podNs[i]!, ifname: 'eth0' } },
        metrics: '127.0.0.1:0',
        config: { netns: nodeNs[i], kubernetes: { kubeconfig, retrySeconds: 1 } },
      }),
    );
  }
  type Status = {
    metrics: string;
    peers: Array<{ name: string; underlayIp: string }>;
    peerSources: { kubernetes: { synced: boolean; resourceVersion: string; skipped: Record<string, string> } };
  };
  const status = async (i: number): Promise<Status> => (await agents[i]!.request('status')) as unknown as Status;
  const peersOf = async (i: number): Promise<string> => (await status(i)).peers.map((p) => `${p.name}@${p.underlayIp}`).join();
  for (let i = 0; i < 2; i++)
    await waitFor(`agent ${i + 1}'s peer from the API`, async () => ((await peersOf(i)) === `${NAMES[1 - i]}@${UNDER[1 - i]}` ? true : undefined), 20_000, 100);
  const s = await status(0);
  assert.equal(s.peerSources.kubernetes.synced, true);
  assert.equal(s.peerSources.kubernetes.resourceVersion, api.resourceVersion);
  assert.match(s.peerSources.kubernetes.skipped['kube-n3'] ?? '', /no spec\.podCIDR/);
  // The source's counters on the agent's Prometheus endpoint.
  const metrics = await (await fetch(`http://${s.metrics}/metrics`)).text();
  assert.match(metrics, /^seine_k8s_peers\{node="kube-n1"\} 1$/m);
  assert.match(metrics, /^seine_k8s_skipped_nodes\{node="kube-n1"\} 1$/m);
  assert.match(metrics, /^seine_k8s_lists_total\{node="kube-n1"\} 1$/m);

  const ping = async (count: number): Promise<number> => {
    const r = await rig.run(podNs[0]!, ['ping', '-n', '-c', String(count), '-i', '0.2', '-W', '1', POD[1]!], 5000 + count * 1500).catch((e: unknown) => ({
      stdout: (e as { stdout?: string }).stdout ?? '',
    }));
    return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
  };
  await waitFor('a first echo reply across the tunnel', async () => ((await ping(1)) === 1 ? true : undefined), 15_000, 200);
  assert.equal(await ping(3), 3);

  // The far Node deleted: node 1's peer and its route go; the pod's pings have nowhere to go.
  api.delete(NAMES[1]!);
  await waitFor('the peer removed', async () => ((await peersOf(0)) === '' ? true : undefined), 10_000, 100);
  assert.equal(await ping(2), 0);
  // Back (as a Node re-registering does): the peer and the tunnel return.
  api.put({ name: NAMES[1]!, podCIDRs: [CIDR[1]!], internalIPs: [UNDER[1]!] });
  await waitFor('the peer back', async () => ((await peersOf(0)) === `${NAMES[1]}@${UNDER[1]}` ? true : undefined), 10_000, 100);
  await waitFor('echo replies again', async () => ((await ping(1)) === 1 ? true : undefined), 15_000, 200);
  for (const a of agents) await a.stop();
});
