/**
 * Peers from the Kubernetes API (src/live/k8s.ts), against a fake API server that speaks the real
 * list/watch protocol for Nodes (test/live/k8s-api.ts): the peers follow Nodes added, changed (podCIDR,
 * InternalIP) and deleted; a bookmark moves the resourceVersion a restarted watch resumes from; a
 * watch broken for a while and then refused with 410 Gone (the history compacted meanwhile) makes the
 * informer relist, and the changes made while it was broken arrive (410 as an ERROR event, as the API
 * server sends it, and as an HTTP status). No root needed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { V1Node } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { stringify } from 'yaml';
import { ConfigError, parseAgentConfig } from '../../src/live/config.js';
import { KubePeerSource, peerFromNode } from '../../src/live/k8s.js';
import { Logger } from '../../src/live/log.js';
import type { NodePeerConfig } from '../../src/node/config.js';
import { FakeKubeApi, fakeKubeconfig } from './k8s-api.js';
import { waitFor, sleep } from './rig.js';

const DIR = mkdtempSync(join(tmpdir(), 'seine-k8s-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

const node = (name: string, spec: NonNullable<V1Node['spec']>, ips: string[]): V1Node => ({
  metadata: { name },
  spec,
  status: { addresses: [...ips.map((address) => ({ type: 'InternalIP', address })), { type: 'Hostname', address: name }] },
});

test('k8s: a Node as a peer — podCIDRs or podCIDR, the InternalIP of the underlay family; skipped with a reason otherwise', () => {
  const dual = node('n1', { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24', 'fd00:1::/64'] }, ['172.18.0.3', 'fc00::3']);
  assert.deepEqual(peerFromNode(dual, 4), {
    peer: { name: 'n1', underlayIp: '172.18.0.3', underlayMac: '02:02:ac:12:00:03', podCIDRs: ['10.244.1.0/24', 'fd00:1::/64'], vnis: [] },
  });
  const p6 = peerFromNode(dual, 6);
  assert.ok('peer' in p6 && p6.peer.underlayIp === 'fc00::3', JSON.stringify(p6));
  // A cluster without dual-stack allocation sets the single field only.
  const old = peerFromNode(node('n2', { podCIDR: '10.244.2.0/24' }, ['172.18.0.4']), 4);
  assert.ok('peer' in old && old.peer.podCIDRs.join() === '10.244.2.0/24', JSON.stringify(old));
  const skip = (n: V1Node, family: 4 | 6 = 4): string => {
    const r = peerFromNode(n, family);
    assert.ok('skip' in r, JSON.stringify(r));
    return r.skip;
  };
  assert.match(skip(node('n3', {}, ['172.18.0.5'])), /no spec\.podCIDR/);
  assert.match(skip(node('n4', { podCIDR: '10.244.4.0/24' }, [])), /no InternalIP/);
  assert.match(skip(node('n5', { podCIDR: '10.244.5.0/24' }, ['fc00::5'])), /no IPv4 InternalIP \(has fc00::5\)/);
  assert.match(skip(node('n6', { podCIDRs: ['10.244.6.0/33'] }, ['172.18.0.7'])), /10\.244\.6\.0\/33/);
  assert.match(skip({ spec: { podCIDR: '10.244.7.0/24' } }), /metadata\.name/);
});

test('k8s: agent config — the kubernetes section, its defaults, and its mistakes named with file and key', () => {
  const file = join(DIR, 'agent.yaml');
  writeFileSync(join(DIR, 'kubeconfig'), fakeKubeconfig({ url: 'https://127.0.0.1:1', tls: { cert: '', key: '' } }, 't'));
  const doc = (k: unknown, mode = 'routed'): string =>
    stringify({
      node: {
        name: 'kind-worker',
        mode,
        underlayIp: '172.18.0.2',
        underlayMac: '02:02:00:00:00:01',
        tunnel: { kind: 'geneve' },
        ...(mode === 'routed' ? { gateway: { mac: '02:01:00:00:00:01', ipv4: '10.244.1.1/24' } } : {}),
        pods: [],
      },
      control: 'agent.sock',
      kubernetes: k,
    });
  const c = parseAgentConfig(doc({}), file);
  assert.deepEqual(c.kubernetes, { kubeconfig: null, nodeName: 'kind-worker', resyncSeconds: 300, retrySeconds: 5 });
  const k = parseAgentConfig(doc({ kubeconfig: 'kubeconfig', nodeName: 'other', resyncSeconds: 30, retrySeconds: 1 }), file);
  assert.deepEqual(k.kubernetes, { kubeconfig: join(DIR, 'kubeconfig'), nodeName: 'other', resyncSeconds: 30, retrySeconds: 1 });
  assert.equal(parseAgentConfig(doc(null), file).kubernetes, null);
  const refused = (text: string, what: RegExp): void =>
    assert.throws(
      () => parseAgentConfig(text, file),
      (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${file}: `) && what.test(e.message),
    );
  refused(doc({ kubeconfig: 'nope' }), /kubernetes\.kubeconfig: .*nope is not a readable file/);
  refused(doc({ resync: 3 }), /kubernetes\.resync: unknown key/);
  refused(doc({ resyncSeconds: 0 }), /kubernetes\.resyncSeconds: expected an integer 1-86400/);
  refused(doc({}, 'l2'), /kubernetes: peers from Nodes need node\.mode routed/);
  refused(doc('yes'), /kubernetes: expected a mapping/);
});

test('k8s: the peers follow the Nodes through list, watch, bookmarks, a restarted watch and a 410 relist', async (t) => {
  const api = new FakeKubeApi();
  await api.listen();
  t.after(() => api.close());
  const kubeconfig = join(DIR, 'fake.kubeconfig');
  writeFileSync(kubeconfig, fakeKubeconfig(api, 'sekret-token'));
  api.put({ name: 'self', podCIDRs: ['10.244.0.0/24'], internalIPs: ['172.18.0.2'] });
  api.put({ name: 'n1', podCIDRs: ['10.244.1.0/24'], internalIPs: ['172.18.0.3'] });
  api.put({ name: 'n2', internalIPs: ['172.18.0.4'] }); // no podCIDR yet
  const logs: string[] = [];
  const log = new Logger({}, 'debug', (l) => logs.push(l));
  const handed: NodePeerConfig[][] = [];
  const src = new KubePeerSource(
    { kubeconfig, nodeName: 'self', resyncSeconds: 3600, retrySeconds: 1 },
    {
      family: 4,
      log,
      onPeers: async (p) => {
        handed.push(p);
      },
    },
  );
  t.after(() => src.stop());
  const shown = (): string =>
    `peers handed over: ${JSON.stringify(handed.at(-1)?.map((p) => [p.name, p.underlayIp, p.podCIDRs.join()]))}\nlogs:\n${logs.join('')}`;
  const peersAre = async (what: string, want: Array<[string, string, string]>): Promise<void> => {
    try {
      await waitFor(
        what,
        async () => {
          const last = handed.at(-1)?.map((p): [string, string, string] => [p.name, p.underlayIp, p.podCIDRs.join()]);
          return JSON.stringify(last) === JSON.stringify(want) ? true : undefined;
        },
        10_000,
        20,
      );
    } catch (e) {
      assert.fail(`${(e as Error).message}\n${shown()}`);
    }
  };

  await src.start();
  await peersAre('the first list', [['n1', '172.18.0.3', '10.244.1.0/24']]);
  let s = src.status();
  assert.equal(s.synced, true);
  assert.deepEqual(Object.keys(s.skipped), ['n2']);
  assert.match(s.skipped['n2']!, /no spec\.podCIDR/);
  assert.ok(logs.some((l) => l.includes('"msg":"kubernetes: Node skipped"') && l.includes('"node":"n2"')));
  // The credentials of the kubeconfig, on every request; a watch from the list's resourceVersion, with bookmarks.
  assert.ok(api.requests.length >= 2 && api.requests.every((r) => r.authorization === 'Bearer sekret-token'), JSON.stringify(api.requests));
  assert.equal(api.listRequests().length, 1);
  await waitFor('the watch', async () => (api.openWatches() === 1 ? true : undefined), 5000, 20);
  const w0 = api.watchRequests()[0]!;
  assert.equal(w0.query['resourceVersion'], '103');
  assert.equal(w0.query['allowWatchBookmarks'], 'true');
  assert.equal(s.resourceVersion, '103');

  api.put({ name: 'n3', podCIDRs: ['10.244.3.0/24'], internalIPs: ['172.18.0.5'] });
  await peersAre('Node n3 added', [
    ['n1', '172.18.0.3', '10.244.1.0/24'],
    ['n3', '172.18.0.5', '10.244.3.0/24'],
  ]);
  api.put({ name: 'n1', podCIDRs: ['10.244.11.0/24'], internalIPs: ['172.18.0.3'] });
  await peersAre('n1 podCIDR changed', [
    ['n1', '172.18.0.3', '10.244.11.0/24'],
    ['n3', '172.18.0.5', '10.244.3.0/24'],
  ]);
  api.put({ name: 'n3', podCIDRs: ['10.244.3.0/24'], internalIPs: ['172.18.0.15'] });
  await peersAre('n3 InternalIP changed', [
    ['n1', '172.18.0.3', '10.244.11.0/24'],
    ['n3', '172.18.0.15', '10.244.3.0/24'],
  ]);
  api.put({ name: 'n2', podCIDR: '10.244.2.0/24', internalIPs: ['172.18.0.4'] });
  await peersAre('n2 got its podCIDR', [
    ['n1', '172.18.0.3', '10.244.11.0/24'],
    ['n2', '172.18.0.4', '10.244.2.0/24'],
    ['n3', '172.18.0.15', '10.244.3.0/24'],
  ]);
  assert.deepEqual(src.status().skipped, {});
  api.delete('n3');
  await peersAre('n3 deleted', [
    ['n1', '172.18.0.3', '10.244.11.0/24'],
    ['n2', '172.18.0.4', '10.244.2.0/24'],
  ]);
  // A Node changed in what is no peer's business (a new resourceVersion, the same peer): nothing handed over.
  const before = handed.length;
  api.put({ name: 'n2', podCIDR: '10.244.2.0/24', internalIPs: ['172.18.0.4'] });
  api.put({ name: 'self', podCIDRs: ['10.244.0.0/24'], internalIPs: ['172.18.0.2'] });
  await waitFor('the events', async () => (src.status().resourceVersion === api.resourceVersion ? true : undefined), 5000, 20);
  await sleep(50);
  assert.equal(handed.length, before, 'unchanged peers are not handed over again');
  assert.equal(src.status().lists, 1, 'no relist so far');

  // A bookmark moves the resourceVersion on; a watch that ends (the API server's timeout) resumes from it, no relist.
  const bm = api.bookmark();
  await waitFor('the bookmark', async () => (src.status().resourceVersion === bm ? true : undefined), 5000, 20);
  api.endWatches();
  await waitFor('the watch restarted', async () => (api.openWatches() === 1 && api.watchRequests().length === 2 ? true : undefined), 5000, 20);
  assert.equal(api.watchRequests()[1]!.query['resourceVersion'], bm);
  s = src.status();
  assert.equal(s.lists, 1);
  assert.equal(s.watchRestarts, 1);
  api.put({ name: 'n4', podCIDRs: ['10.244.4.0/24'], internalIPs: ['172.18.0.6'] });
  await peersAre('n4 added through the restarted watch', [
    ['n1', '172.18.0.3', '10.244.11.0/24'],
    ['n2', '172.18.0.4', '10.244.2.0/24'],
    ['n4', '172.18.0.6', '10.244.4.0/24'],
  ]);

  // The watch breaks (the API server refuses it a while); meanwhile n1 moves, n2 goes, n5 comes, and the
  // history is compacted: the watch from the old resourceVersion then gets 410 Gone, and the informer relists.
  const rvBefore = src.status().resourceVersion;
  api.refuseWatches = true;
  api.endWatches();
  await waitFor('the refused watch reported', async () => (src.status().errors >= 1 ? true : undefined), 5000, 20);
  api.put({ name: 'n1', podCIDRs: ['10.244.11.0/24'], internalIPs: ['172.18.0.33'] });
  api.delete('n2');
  api.put({ name: 'n5', podCIDRs: ['10.244.5.0/24'], internalIPs: ['172.18.0.7'] });
  api.compact();
  const watchesBefore = api.watchRequests().length;
  api.refuseWatches = false;
  await peersAre('the relist after 410 Gone', [
    ['n1', '172.18.0.33', '10.244.11.0/24'],
    ['n4', '172.18.0.6', '10.244.4.0/24'],
    ['n5', '172.18.0.7', '10.244.5.0/24'],
  ]);
  const after410 = api.requests.slice(api.requests.indexOf(api.watchRequests()[watchesBefore]!));
  // The watch from the old resourceVersion (answered with the ERROR event), then a list, then a watch from the list's.
  assert.equal(after410[0]!.query['resourceVersion'], rvBefore);
  assert.equal(after410[1]!.query['watch'], undefined);
  await waitFor('the watch after the relist', async () => (api.openWatches() === 1 ? true : undefined), 5000, 20);
  assert.equal(api.watchRequests().at(-1)!.query['resourceVersion'], api.resourceVersion);
  s = src.status();
  assert.equal(s.lists, 2);
  assert.equal(s.relists, 1);
  assert.ok(s.errors >= 1);
  assert.match(s.lastError ?? '', /Service Unavailable|503/);
  assert.equal(s.resourceVersion, api.resourceVersion);
  assert.equal(s.nodes, 4);
  assert.equal(s.peers, 3);

  // 410 Gone as an HTTP status (proxies, older servers) relists too: n4 leaves and n6 comes while the watch is away.
  api.expiredAs = 'status';
  api.refuseWatches = true;
  const errorsBefore = s.errors;
  api.endWatches();
  await waitFor('the refused watch reported', async () => (src.status().errors > errorsBefore ? true : undefined), 5000, 20);
  api.delete('n4');
  api.put({ name: 'n6', podCIDRs: ['10.244.6.0/24'], internalIPs: ['172.18.0.8'] });
  api.compact();
  api.refuseWatches = false;
  await peersAre('the relist after an HTTP 410', [
    ['n1', '172.18.0.33', '10.244.11.0/24'],
    ['n5', '172.18.0.7', '10.244.5.0/24'],
    ['n6', '172.18.0.8', '10.244.6.0/24'],
  ]);
  s = src.status();
  assert.equal(s.relists, 2);
  assert.equal(s.lists, 3);

  // The counters reach Prometheus.
  const reg = new Registry();
  src.register(reg);
  const text = await reg.metrics();
  assert.match(text, /^seine_k8s_relists_total 2$/m);
  assert.match(text, /^seine_k8s_lists_total 3$/m);
  assert.match(text, new RegExp(`^seine_k8s_watch_restarts_total ${s.watchRestarts}$`, 'm'));
  assert.match(text, /^seine_k8s_peers 3$/m);
});

test('k8s: an unreachable API server is retried, not fatal; the peers arrive once it answers', async (t) => {
  const api = new FakeKubeApi();
  await api.listen();
  const port = new URL(api.url).port;
  await api.close();
  const kubeconfig = join(DIR, 'late.kubeconfig');
  writeFileSync(kubeconfig, fakeKubeconfig(api, 't'));
  const handed: NodePeerConfig[][] = [];
  const src = new KubePeerSource(
    { kubeconfig, nodeName: 'self', resyncSeconds: 1, retrySeconds: 1 },
    {
      family: 4,
      log: new Logger({}, 'error', () => undefined),
      onPeers: async (p) => {
        handed.push(p);
      },
    },
  );
  t.after(() => src.stop());
  await src.start();
  assert.ok(src.status().errors >= 1);
  assert.equal(src.status().synced, false);
  // The same port, now answering (a restarted API server).
  const late = new FakeKubeApi(api.tls);
  t.after(() => late.close());
  late.put({ name: 'n1', podCIDRs: ['10.244.1.0/24'], internalIPs: ['172.18.0.3'] });
  await late.listen(Number(port));
  await waitFor('the peers from the late API server', async () => (handed.at(-1)?.[0]?.name === 'n1' ? true : undefined), 10_000, 50);
  assert.equal(src.status().synced, true);
  // The resync hands the same peers over again, with nothing changed (a failed application gets another go).
  const n = handed.length;
  await waitFor('a resync', async () => (handed.length > n ? true : undefined), 5000, 50);
  assert.deepEqual(handed.at(-1), handed[n - 1]);
});

test('k8s: the agent loads the Kubernetes client only when configured (no static import on its start-up path)', () => {
  const dist = new URL('../../src/', import.meta.url);
  for (const f of ['live/agent.js', 'live/config.js', 'cli/agent.js', 'cli/main.js']) {
    const text = readFileSync(new URL(f, dist), 'utf8');
    assert.doesNotMatch(text, /^import .*(k8s(-node)?\.js|@kubernetes\/client-node)/m, f);
  }
  assert.match(readFileSync(new URL('live/agent.js', dist), 'utf8'), /await import\('\.\/k8s\.js'\)/);
});
