/**
 * deploy/: the DaemonSet, RBAC, ConfigMap and Dockerfile agree with each other and with seine — names,
 * the service account and its rights, the mounts the CNI flow needs at the host's own paths, the commands
 * and their files — and the ConfigMap's template becomes an agent configuration the agent's own loader
 * takes, both through the renderer and through `seine k8s-config` against the fake API server. No
 * cluster is involved (none can run here): this checks the files, not a deployment.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { loadAgentConfig } from '../../src/live/config.js';
import { gatewayOf, nodeConfigFromTemplate } from '../../src/live/k8s-node.js';
import { FakeKubeApi, fakeKubeconfig } from './k8s-api.js';
import { MAIN_JS, ROOT, sleep } from './rig.js';

const DIR = mkdtempSync(join(tmpdir(), 'seine-k8sdeploy-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

// biome-ignore lint/suspicious/noExplicitAny: parsed manifests are walked key by key, and each step is asserted
type Obj = Record<string, any>;
const DEPLOY = join(ROOT, 'deploy');
const docs = (file: string): Obj[] => parseAllDocuments(readFileSync(join(DEPLOY, file), 'utf8')).map((d) => d.toJS() as Obj);
const rbac = docs('rbac.yaml');
const [cm] = docs('configmap.yaml') as [Obj];
const [ds] = docs('daemonset.yaml') as [Obj];
const byKind = (kind: string): Obj => {
  const d = rbac.find((x) => x['kind'] === kind);
  assert.ok(d !== undefined, `rbac.yaml has a ${kind}`);
  return d;
};
const pod = ds['spec']['template']['spec'] as Obj;
const init = (pod['initContainers'] as Obj[]).find((c) => c['name'] === 'install-cni')!;
const agent = (pod['containers'] as Obj[]).find((c) => c['name'] === 'agent')!;

test('deploy: RBAC — the DaemonSet runs as the service account the ClusterRole (get, list, watch nodes) is bound to', () => {
  const sa = byKind('ServiceAccount');
  const role = byKind('ClusterRole');
  const bind = byKind('ClusterRoleBinding');
  assert.equal(pod['serviceAccountName'], sa['metadata']['name']);
  assert.equal(ds['metadata']['namespace'], sa['metadata']['namespace']);
  assert.deepEqual(bind['roleRef'], { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role['metadata']['name'] });
  assert.deepEqual(bind['subjects'], [{ kind: 'ServiceAccount', name: sa['metadata']['name'], namespace: sa['metadata']['namespace'] }]);
  const nodes = (role['rules'] as Obj[]).find((r) => (r['resources'] as string[]).includes('nodes'));
  assert.ok(nodes !== undefined);
  assert.deepEqual(nodes['apiGroups'], ['']);
  assert.deepEqual([...(nodes['verbs'] as string[])].sort(), ['get', 'list', 'watch']);
  // Nothing more than that: the agent writes nothing to the API.
  assert.equal((role['rules'] as Obj[]).length, 1);
});

test('deploy: the DaemonSet — host network, privileged, the CNI paths mounted where the host has them', () => {
  assert.equal(ds['apiVersion'], 'apps/v1');
  assert.equal(ds['kind'], 'DaemonSet');
  assert.deepEqual(ds['spec']['selector']['matchLabels'], Object.fromEntries(Object.entries(ds['spec']['template']['metadata']['labels'])));
  assert.equal(pod['hostNetwork'], true);
  assert.equal(pod['dnsPolicy'], 'ClusterFirstWithHostNet');
  assert.ok(
    (pod['tolerations'] as Obj[]).some((t) => t['operator'] === 'Exists' && t['key'] === undefined),
    'runs on every node, tainted or not',
  );
  for (const c of [init, agent]) assert.equal(c['securityContext']['privileged'], true, `${c['name']} is privileged`);
  const vols = new Map((pod['volumes'] as Obj[]).map((v) => [v['name'] as string, v]));
  const mountsOf = (c: Obj): Map<string, Obj> => new Map((c['volumeMounts'] as Obj[]).map((m) => [m['mountPath'] as string, m]));
  // Every mount names a volume; a hostPath is mounted at its own path (the CNI plugin, the runtime and
  // host-local name these paths on the host: the agent must find the same files under the same names).
  for (const c of [init, agent])
    for (const m of mountsOf(c).values()) {
      const v = vols.get(m['name']);
      assert.ok(v !== undefined, `${c['name']} mounts volume ${m['name']}, which the pod has`);
      if (v['hostPath'] !== undefined) assert.equal(m['mountPath'], v['hostPath']['path'], `${m['name']} is mounted at the host's path`);
    }
  const agentMounts = mountsOf(agent);
  for (const p of ['/dev/net/tun', '/var/run/netns', '/opt/cni/bin', '/etc/cni/net.d', '/var/lib/cni', '/run/seine', '/var/lib/seine'])
    assert.ok(agentMounts.has(p), `the agent mounts ${p}`);
  assert.equal(vols.get(agentMounts.get('/dev/net/tun')!['name'])!['hostPath']['type'], 'CharDevice');
  // Namespaces the runtime makes after the agent started must appear in its mount.
  assert.equal(agentMounts.get('/var/run/netns')!['mountPropagation'], 'HostToContainer');
  const initMounts = mountsOf(init);
  for (const p of ['/opt/cni/bin', '/etc/cni/net.d', '/run/seine', '/opt/seine', '/etc/seine']) assert.ok(initMounts.has(p), `install-cni mounts ${p}`);
  // NODE_NAME from the downward API: k8s-config reads this node's Node by it.
  for (const c of [init, agent])
    assert.ok(
      (c['env'] as Obj[]).some((e) => e['name'] === 'NODE_NAME' && e['valueFrom']['fieldRef']['fieldPath'] === 'spec.nodeName'),
      `${c['name']} has NODE_NAME`,
    );
});

test('deploy: commands — k8s-config writes the file install-cni and the agent read; the paths are the image’s', () => {
  const script = (init['args'] as string[]).join('\n');
  const out = /k8s-config --template (\S+) --out (\S+)/.exec(script);
  assert.ok(out !== null, script);
  const [, template, written] = out;
  // The template is the ConfigMap's key, where the config volume is mounted.
  const cfgMount = (init['volumeMounts'] as Obj[]).find((m) => m['name'] === 'config')!;
  const cfgVol = (pod['volumes'] as Obj[]).find((v) => v['name'] === 'config')!;
  assert.equal(cfgVol['configMap']['name'], cm['metadata']['name']);
  assert.equal(cm['metadata']['namespace'], ds['metadata']['namespace']);
  assert.ok(template!.startsWith(`${cfgMount['mountPath']}/`));
  assert.ok(Object.keys(cm['data']).includes(template!.slice(cfgMount['mountPath'].length + 1)), `the ConfigMap has ${template}`);
  const install = /install-cni --config (\S+) --bin-dir (\S+) --conf-dir (\S+)/.exec(script);
  assert.ok(install !== null, script);
  assert.deepEqual(install.slice(1), [written, '/opt/cni/bin', '/etc/cni/net.d']);
  assert.deepEqual(agent['args'], ['agent', '--config', written]);
  // The written file lives on a volume both containers mount.
  const dir = written!.slice(0, written!.lastIndexOf('/'));
  for (const c of [init, agent])
    assert.ok(
      (c['volumeMounts'] as Obj[]).some((m) => m['mountPath'] === dir),
      `${c['name']} mounts ${dir}`,
    );
  // The Dockerfile: node:20-slim, the addon built, production dependencies only, seine at the paths the DaemonSet names.
  const df = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
  const froms = [...df.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  assert.ok(froms.length >= 1 && froms.every((f) => f === 'node:20-slim'), froms.join());
  assert.match(df, /npm ci --omit=dev/);
  assert.match(df, /node dist\/src\/cni\/bundle\.js/, 'the image holds the CNI plugin as the launcher runs it (the bundle step after tsc)');
  assert.match(df, /node native\/build\.mjs && test -f native\/build\/Release\/seine\.node/);
  assert.match(df, /^WORKDIR \/app$/m);
  assert.match(df, /^ENTRYPOINT \["node", "\/app\/dist\/src\/cli\/main\.js"\]$/m);
  assert.match(script, /cp \/usr\/local\/bin\/node \/opt\/seine\/node\.new/);
  assert.match(script, /cp -a \/app \/opt\/seine\/app\.new/);
  assert.match(script, /\/opt\/seine\/node \/opt\/seine\/app\/dist\/src\/cli\/main\.js/);
  for (const c of [init, agent]) assert.equal(c['image'], agent['image']);
  // The metrics port the container declares is the config's.
  const tpl = parse(cm['data']['agent.yaml'] as string) as Obj;
  assert.equal(String(tpl['metrics']).split(':')[1], String((agent['ports'] as Obj[])[0]!['containerPort']));
  assert.equal(dir, tpl['control'].slice(0, tpl['control'].lastIndexOf('/')), 'the control socket is on the host path the CNI plugin reaches');
});

const NODE = {
  metadata: { name: 'kind-worker', resourceVersion: '7' },
  spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] },
  status: {
    addresses: [
      { type: 'InternalIP', address: '172.18.0.3' },
      { type: 'InternalIP', address: 'fc00:f853:ccd:e793::3' },
      { type: 'Hostname', address: 'kind-worker' },
    ],
  },
};

test('deploy: the ConfigMap’s template, filled from a Node, passes the agent’s own config loader', () => {
  assert.equal(gatewayOf('10.244.1.0/24'), '10.244.1.1/24');
  assert.equal(gatewayOf('fd00:10:244:1::/64'), 'fd00:10:244:1::1/64');
  const tpl = parse(cm['data']['agent.yaml'] as string) as unknown;
  const file = join(DIR, 'agent.yaml');
  writeFileSync(file, JSON.stringify(nodeConfigFromTemplate(tpl, NODE, 'configmap agent.yaml')));
  const c = loadAgentConfig(file);
  assert.equal(c.node.name, 'kind-worker');
  assert.equal(c.node.mode, 'routed');
  assert.equal(c.node.underlayIp, '172.18.0.3');
  assert.equal(c.node.underlayMac, '02:02:ac:12:00:03');
  assert.deepEqual(
    { ipv4: c.node.gateway!.ipv4, ipv6: c.node.gateway!.ipv6, mac: c.node.gateway!.mac },
    { ipv4: '10.244.1.1/24', ipv6: 'fd00:10:244:1::1/64', mac: '02:01:ac:12:00:03' },
  );
  assert.equal(c.node.stack!.mac, '02:03:ac:12:00:03');
  assert.deepEqual(c.node.pods, []);
  assert.equal(c.netns, null, "the agent works in the host's namespace (hostNetwork)");
  assert.deepEqual(c.kubernetes, { kubeconfig: null, nodeName: 'kind-worker', resyncSeconds: 300, retrySeconds: 5 });
  // A Node without a podCIDR yet is refused with a reason (k8s-config waits and asks again).
  assert.throws(() => nodeConfigFromTemplate(tpl, { ...NODE, spec: {} }, 'cm'), /Node kind-worker has no spec\.podCIDR yet/);
  assert.throws(() => nodeConfigFromTemplate(tpl, { ...NODE, status: {} }, 'cm'), /Node kind-worker has no InternalIP/);
});

test('deploy: seine k8s-config reads this node’s Node from the API and writes the agent’s configuration, waiting for its podCIDR', async (t) => {
  const api = new FakeKubeApi();
  await api.listen();
  t.after(() => api.close());
  const kubeconfig = join(DIR, 'kubeconfig');
  writeFileSync(kubeconfig, fakeKubeconfig(api, 'tok'));
  const template = join(DIR, 'template.yaml');
  writeFileSync(template, cm['data']['agent.yaml'] as string);
  // The Node exists but has no podCIDR yet: k8s-config waits; its podCIDR comes a moment later.
  api.put({ name: 'kind-worker', internalIPs: ['172.18.0.3'] });
  api.put({ name: 'kind-worker2', podCIDRs: ['10.244.2.0/24'], internalIPs: ['172.18.0.4'] });
  const out = join(DIR, 'run', 'agent.yaml');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(DIR, 'run'));
  const child = spawn(process.execPath, [MAIN_JS, 'k8s-config', '--template', template, '--out', out, '--kubeconfig', kubeconfig, '--wait', '30'], {
    env: { ...process.env, NODE_NAME: 'kind-worker' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  t.after(() => child.kill());
  for (let i = 0; i < 300 && !err.includes('waiting'); i++) await sleep(50);
  assert.match(err, /waiting: .*Node kind-worker has no spec\.podCIDR yet/);
  api.put({ name: 'kind-worker', podCIDRs: ['10.244.1.0/24'], internalIPs: ['172.18.0.3'] });
  assert.equal(await exited, 0, err);
  const c = loadAgentConfig(out);
  assert.equal(c.node.name, 'kind-worker');
  assert.equal(c.node.gateway!.ipv4, '10.244.1.1/24');
  assert.equal(c.kubernetes!.nodeName, 'kind-worker');
  // It read its own Node by name, with the kubeconfig's credentials.
  const reads = api.requests.filter((r) => r.path === '/api/v1/nodes/kind-worker');
  assert.ok(reads.length >= 2, JSON.stringify(api.requests));
  assert.ok(reads.every((r) => r.authorization === 'Bearer tok'));
});
