/**
 * The CNI plugin driven exactly as the spec says (CNI_* variables, the network configuration on stdin)
 * against two live nodes: ADD's result and what it did in the kernel (checked with `ip`, and by pings
 * to the gateway, the node's own stack and a pod on the other node across the tunnel), each error path
 * (ADD twice, DEL twice, DEL without ADD, DEL after the namespace is gone, CHECK after a manual change,
 * agent down → 11, bad JSON → 6, invalid config → 7, unsupported version → 1, no CNI_NETNS → 4), GC under
 * both list names, STATUS, and an agent restarted with its pods (CHECK passes, traffic flows).
 *
 * Root only: without root every test skips and says so.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { allocated, type CniNode, cni, cniLab, seineNetConf, startCniAgent } from '../cni/rig.js';
import { liveSkip, Rig } from './rig.js';

const SKIP = liveSkip('test/live/cni.test.ts');

describe('CNI commands against live agents', { skip: SKIP, timeout: 300_000 }, () => {
  const rig = new Rig('cni');
  let n1: CniNode;
  let n2: CniNode;
  let net: string;
  after(() => rig.cleanup());
  before(async () => {
    const nodes = await cniLab(rig, 2);
    n1 = nodes[0]!;
    n2 = nodes[1]!;
    net = `seine-${rig.tag}`;
  });

  let seq = 0;
  const pod = async (): Promise<{ id: string; ns: string; path: string }> => {
    seq++;
    const ns = await rig.addNetns(`p${seq}`);
    return { id: `c${rig.tag}x${seq}`, ns, path: `/run/netns/${ns}` };
  };
  const add = (n: CniNode, p: { id: string; path: string }, conf = seineNetConf(n)) =>
    cni(n, { command: 'ADD', containerId: p.id, netns: p.path, ifname: 'eth0' }, conf);
  const del = (n: CniNode, p: { id: string; path?: string }, conf = seineNetConf(n)) =>
    cni(n, { command: 'DEL', containerId: p.id, ifname: 'eth0', ...(p.path !== undefined ? { netns: p.path } : {}) }, conf);
  const check = (n: CniNode, p: { id: string; path: string }, prevResult: unknown) =>
    cni(n, { command: 'CHECK', containerId: p.id, netns: p.path, ifname: 'eth0' }, seineNetConf(n, { prevResult }));
  const ipJ = async (ns: string, args: string[]): Promise<Array<Record<string, unknown>>> =>
    JSON.parse((await rig.run(ns, ['ip', '-j', ...args])).stdout || '[]') as Array<Record<string, unknown>>;
  const ping = (ns: string, to: string): Promise<boolean> =>
    rig.run(ns, ['ping', '-c', '1', '-W', '2', to], 10_000).then(
      () => true,
      () => false,
    );
  const pingSoon = async (ns: string, to: string): Promise<boolean> => {
    for (let i = 0; i < 5; i++) if (await ping(ns, to)) return true;
    return false;
  };

  test('ADD: a spec result; the TAP, address, route and MTU in the namespace; pings to the gateway, the node and across the tunnel', async () => {
    const a = await pod();
    const r = await add(n1, a);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const res = r.json as {
      cniVersion: string;
      interfaces: Array<Record<string, unknown>>;
      ips: Array<Record<string, unknown>>;
      routes: unknown[];
      dns: unknown;
    };
    assert.equal(res.cniVersion, seineNetConf(n1)['cniVersion']);
    assert.equal(res.interfaces.length, 1);
    const itf = res.interfaces[0]!;
    assert.equal(itf['name'], 'eth0');
    assert.equal(itf['sandbox'], a.path);
    assert.match(String(itf['mac']), /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    // 1.0.0 has no mtu on interfaces (1.1.0's does: below).
    assert.equal(itf['mtu'], undefined);
    assert.equal(res.ips.length, 1);
    const ip = res.ips[0]!;
    assert.match(String(ip['address']), /^10\.244\.1\.\d+\/24$/);
    assert.equal(ip['gateway'], n1.gateway);
    assert.equal(ip['interface'], 0);
    assert.deepEqual(res.routes, [{ dst: '0.0.0.0/0', gw: n1.gateway }]);
    assert.deepEqual(res.dns, {});
    // The kernel's view of the pod.
    const [link] = await ipJ(a.ns, ['addr', 'show', 'dev', 'eth0']);
    assert.ok(link !== undefined);
    assert.equal(link['mtu'], 1450, 'pod MTU = 1500 − VXLAN 50');
    assert.equal(link['address'], itf['mac']);
    assert.ok(((link['addr_info'] as Array<{ local: string; prefixlen: number }>) ?? []).some((x) => `${x.local}/${x.prefixlen}` === ip['address']));
    const details = await ipJ(a.ns, ['-d', 'link', 'show', 'dev', 'eth0']);
    assert.equal((details[0]!['linkinfo'] as { info_kind: string }).info_kind, 'tun');
    const routes = await ipJ(a.ns, ['route', 'show', 'default']);
    assert.deepEqual(
      routes.map((x) => [x['gateway'], x['dev']]),
      [[n1.gateway, 'eth0']],
    );
    assert.deepEqual(allocated(n1, net), [String(ip['address']).split('/')[0]]);
    // Traffic: the gateway, the node's own stack (its neighbour was added), a pod on node2 across VXLAN.
    const podIp = String(ip['address']).split('/')[0]!;
    assert.ok(await pingSoon(a.ns, n1.gateway), 'pod → its gateway');
    assert.ok(await pingSoon(n1.ns, podIp), 'node1 stack → pod');
    const b = await pod();
    const rb = await add(n2, b);
    assert.equal(rb.code, 0, rb.stdout);
    const bIp = String((rb.json as { ips: Array<{ address: string }> }).ips[0]!.address).split('/')[0]!;
    assert.match(bIp, /^10\.244\.2\./);
    assert.ok(await pingSoon(a.ns, bIp), 'pod on node1 → pod on node2 across the tunnel');
    assert.ok(await pingSoon(b.ns, n2.gateway), 'pod on node2 → its gateway');
    // The agent has the port.
    const st = JSON.parse(readFileSync(join(n1.cniState, 'attachments.json'), 'utf8')) as { attachments: Array<{ containerId: string; ip4: string }> };
    assert.deepEqual(
      st.attachments.map((x) => [x.containerId, x.ip4]),
      [[a.id, podIp]],
    );
    // CHECK passes on what ADD made, with the runtime's prevResult.
    const c = await check(n1, a, r.json);
    assert.equal(c.code, 0, c.stdout);
    assert.equal(c.stdout, '');
    for (const p of [a]) assert.equal((await del(n1, p)).code, 0);
    assert.equal((await del(n2, b)).code, 0);
  });

  test('cniVersion honoured: 1.1.0 puts the MTU on the interface; 0.4.0 tags each IP with its version', async () => {
    const p = await pod();
    const r = await add(n1, p, seineNetConf(n1, { cniVersion: '1.1.0' }));
    assert.equal(r.code, 0, r.stdout);
    const j = r.json as { cniVersion: string; interfaces: Array<{ mtu?: number }>; ips: Array<{ version?: string }> };
    assert.equal(j.cniVersion, '1.1.0');
    assert.equal(j.interfaces[0]!.mtu, 1450);
    assert.equal(j.ips[0]!.version, undefined);
    assert.equal((await del(n1, p, seineNetConf(n1, { cniVersion: '1.1.0' }))).code, 0);
    const q = await pod();
    const r4 = await add(n1, q, seineNetConf(n1, { cniVersion: '0.4.0' }));
    assert.equal(r4.code, 0, r4.stdout);
    const j4 = r4.json as { cniVersion: string; interfaces: Array<{ mtu?: number }>; ips: Array<{ version?: string }> };
    assert.equal(j4.cniVersion, '0.4.0');
    assert.equal(j4.ips[0]!.version, '4');
    assert.equal(j4.interfaces[0]!.mtu, undefined);
    assert.equal((await del(n1, q, seineNetConf(n1, { cniVersion: '0.4.0' }))).code, 0);
  });

  test('ADD twice is refused (code 100) and leaves the first attachment and its one address as they were', async () => {
    const p = await pod();
    const first = await add(n1, p);
    assert.equal(first.code, 0);
    const before = allocated(n1, net);
    const again = await add(n1, p);
    assert.equal(again.code, 1);
    assert.equal(again.json?.['code'], 100);
    assert.match(String(again.json?.['msg']), /already has interface eth0.*ADD twice/);
    assert.deepEqual(allocated(n1, net), before, 'no second address was taken');
    assert.equal((await check(n1, p, first.json)).code, 0);
    assert.ok(await pingSoon(p.ns, n1.gateway));
    assert.equal((await del(n1, p)).code, 0);
  });

  test('DEL: frees the address and removes the TAP; DEL twice and DEL without ADD succeed', async () => {
    const p = await pod();
    const r = await add(n1, p);
    const addr = String((r.json as { ips: Array<{ address: string }> }).ips[0]!.address).split('/')[0]!;
    assert.ok(allocated(n1, net).includes(addr));
    const d1 = await del(n1, p);
    assert.equal(d1.code, 0, d1.stdout);
    assert.equal(d1.stdout, '');
    assert.ok(!allocated(n1, net).includes(addr), 'host-local released it');
    assert.deepEqual(await ipJ(p.ns, ['link', 'show', 'dev', 'eth0']).catch(() => []), [], 'the TAP is gone');
    assert.equal((await del(n1, p)).code, 0, 'DEL twice');
    assert.equal((await del(n1, { id: `never${rig.tag}`, path: p.path })).code, 0, 'DEL without ADD');
    assert.equal((await del(n1, { id: `never2${rig.tag}` })).code, 0, 'DEL without ADD or CNI_NETNS');
    // The same address can be handed out again.
    const q = await pod();
    const again = await add(n1, q);
    assert.equal(again.code, 0);
    assert.equal((await del(n1, q)).code, 0);
  });

  test('DEL after the namespace is gone succeeds and frees the address and the port', async () => {
    const p = await pod();
    const r = await add(n1, p);
    const addr = String((r.json as { ips: Array<{ address: string }> }).ips[0]!.address).split('/')[0]!;
    await rig.run(null, ['ip', 'netns', 'del', p.ns]);
    assert.equal(existsSync(p.path), false);
    const d = await del(n1, p);
    assert.equal(d.code, 0, d.stdout);
    assert.ok(!allocated(n1, net).includes(addr));
    const st = JSON.parse(readFileSync(join(n1.cniState, 'attachments.json'), 'utf8')) as { attachments: Array<{ containerId: string }> };
    assert.ok(!st.attachments.some((x) => x.containerId === p.id));
    // The agent goes on serving.
    const q = await pod();
    assert.equal((await add(n1, q)).code, 0);
    assert.ok(await pingSoon(q.ns, n1.gateway));
    assert.equal((await del(n1, q)).code, 0);
  });

  test('CHECK after a manual change fails naming it (MTU, address, route); CHECK of no attachment is code 3', async () => {
    const p = await pod();
    const r = await add(n1, p);
    const addr = String((r.json as { ips: Array<{ address: string }> }).ips[0]!.address);
    await rig.run(p.ns, ['ip', 'link', 'set', 'eth0', 'mtu', '1400']);
    const c1 = await check(n1, p, r.json);
    assert.equal(c1.code, 1);
    assert.equal(c1.json?.['code'], 101);
    assert.match(String(c1.json?.['msg']), /eth0 MTU is 1400, expected 1450/);
    await rig.run(p.ns, ['ip', 'link', 'set', 'eth0', 'mtu', '1450']);
    await rig.run(p.ns, ['ip', 'addr', 'del', addr, 'dev', 'eth0']);
    const c2 = await check(n1, p, r.json);
    assert.equal(c2.json?.['code'], 101);
    assert.match(String(c2.json?.['msg']), new RegExp(`address ${addr.replaceAll('.', '\\.')} is missing on eth0`));
    assert.match(String(c2.json?.['msg']), /default route via 10\.244\.1\.1 dev eth0 is missing/, 'the route went with the address');
    assert.doesNotMatch(String(c2.json?.['msg']), /MTU/);
    const c3 = await check(n1, { id: `none${rig.tag}`, path: p.path }, r.json);
    assert.equal(c3.json?.['code'], 3);
    assert.equal((await del(n1, p)).code, 0);
  });

  test('GC removes the attachments not in cni.dev/valid-attachments (and the older cni.dev/attachments)', async () => {
    const keep = await pod();
    const drop1 = await pod();
    const drop2 = await pod();
    const addrOf = (r: { json: Record<string, unknown> | null }): string =>
      String((r.json as { ips: Array<{ address: string }> }).ips[0]!.address).split('/')[0]!;
    const rk = await add(n1, keep);
    const r1 = await add(n1, drop1);
    const r2 = await add(n1, drop2);
    const valid = [{ containerID: keep.id, ifname: 'eth0' }];
    const g1 = await cni(
      n1,
      { command: 'GC' },
      seineNetConf(n1, { cniVersion: '1.1.0', 'cni.dev/valid-attachments': [...valid, { containerID: drop2.id, ifname: 'eth0' }] }),
    );
    assert.equal(g1.code, 0, g1.stdout);
    assert.ok(!allocated(n1, net).includes(addrOf(r1)));
    assert.ok(allocated(n1, net).includes(addrOf(r2)));
    assert.deepEqual(await ipJ(drop1.ns, ['link', 'show', 'dev', 'eth0']).catch(() => []), []);
    const g2 = await cni(n1, { command: 'GC' }, seineNetConf(n1, { cniVersion: '1.1.0', 'cni.dev/attachments': valid }));
    assert.equal(g2.code, 0, g2.stdout);
    assert.ok(!allocated(n1, net).includes(addrOf(r2)));
    assert.ok(allocated(n1, net).includes(addrOf(rk)));
    assert.equal((await check(n1, keep, rk.json)).code, 0);
    // Another network's GC touches nothing of this one.
    const g3 = await cni(n1, { command: 'GC' }, seineNetConf(n1, { name: 'other', 'cni.dev/valid-attachments': [] }));
    assert.equal(g3.code, 0);
    assert.ok(allocated(n1, net).includes(addrOf(rk)));
    assert.equal((await del(n1, keep)).code, 0);
  });

  test('STATUS: 0 with the agent up, 50 when the IPAM plugin is missing or the agent is down; errors 1, 4, 6, 7 from the plugin', async () => {
    const s = await cni(n1, { command: 'STATUS' }, seineNetConf(n1, { cniVersion: '1.1.0' }));
    assert.equal(s.code, 0, s.stdout);
    const s2 = await cni(n1, { command: 'STATUS' }, seineNetConf(n1, { cniVersion: '1.1.0', ipam: { type: 'no-such-ipam' } }));
    assert.equal(s2.json?.['code'], 50);
    assert.match(String(s2.json?.['msg']), /no-such-ipam/);
    const p = await pod();
    const env = { containerId: p.id, netns: p.path, ifname: 'eth0' };
    const bad = await cni(n1, { command: 'ADD', ...env }, '{"cniVersion": "1.0.0", ');
    assert.deepEqual([bad.code, bad.json?.['code']], [1, 6]);
    const inv = await cni(n1, { command: 'ADD', ...env }, seineNetConf(n1, { type: 'bridge' }));
    assert.deepEqual([inv.code, inv.json?.['code']], [1, 7]);
    assert.match(String(inv.json?.['msg']), /type: must be "seine"/);
    const ver = await cni(n1, { command: 'ADD', ...env }, seineNetConf(n1, { cniVersion: '0.3.1' }));
    assert.deepEqual([ver.code, ver.json?.['code']], [1, 1]);
    assert.match(String(ver.json?.['msg']), /0\.3\.1/);
    const nons = await cni(n1, { command: 'ADD', containerId: p.id, ifname: 'eth0' }, seineNetConf(n1));
    assert.deepEqual([nons.code, nons.json?.['code']], [1, 4]);
    assert.match(String(nons.json?.['msg']), /CNI_NETNS/);
    const missing = await cni(n1, { command: 'ADD', ...env }, seineNetConf(n1, { ipam: { type: 'no-such-ipam' } }));
    assert.equal(missing.code, 1);
    assert.match(String(missing.json?.['msg']), /no-such-ipam.*not found in CNI_PATH/);
    assert.deepEqual(await ipJ(p.ns, ['link', 'show', 'dev', 'eth0']).catch(() => []), [], 'nothing was plugged in');
  });

  test('a restarted agent knows its pods: CHECK passes and traffic flows again; with the agent down the plugin says 11 and STATUS 50', async () => {
    const p = await pod();
    const r = await add(n1, p);
    assert.equal(r.code, 0);
    await n1.agent!.stop();
    const down = await add(n1, await pod());
    assert.deepEqual([down.code, down.json?.['code']], [1, 11]);
    assert.match(String(down.json?.['msg']), /no seine agent listening/);
    const st = await cni(n1, { command: 'STATUS' }, seineNetConf(n1));
    assert.equal(st.json?.['code'], 50);
    await startCniAgent(rig, n1);
    const c = await check(n1, p, r.json);
    assert.equal(c.code, 0, c.stdout);
    assert.ok(await pingSoon(p.ns, n1.gateway), 'the pod reaches its gateway through the new agent');
    assert.equal((await del(n1, p)).code, 0);
  });
  test('an unreadable attachments file does not keep the agent down: it is set aside and the agent serves', async () => {
    await n1.agent!.stop();
    writeFileSync(join(n1.cniState, 'attachments.json'), '{"format": 1, "attach');
    await startCniAgent(rig, n1);
    assert.ok(readdirSync(n1.cniState).some((f) => f.startsWith('attachments.json.unreadable-')));
    assert.match(n1.agent!.output(), /attachments file is unreadable/);
    const p = await pod();
    assert.equal((await add(n1, p)).code, 0);
    assert.equal((await del(n1, p)).code, 0);
  });
});
