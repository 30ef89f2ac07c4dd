/**
 * rtnetlink from the addon (live/rtnl.ts through `netlinkRoute`) against iproute2, the kernel's own
 * client: the same link, addresses, routes and neighbour made by `ip … replace` in one namespace and by
 * one RtnlBatch in another read back the same with `ip -j`. A refused request names itself and its errno;
 * a malformed buffer is refused before anything is sent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadNative, type Native } from '../../src/live/native.js';
import { applyRtnl, RtnlBatch } from '../../src/live/rtnl.js';
import { liveSkip, requireNative, Rig } from './rig.js';

const SKIP = liveSkip('rtnl.test.ts');

describe('rtnetlink requests against the kernel and iproute2', { skip: SKIP }, () => {
  const rig = new Rig('nl');
  let n: Native;
  let byIp = '';
  let byNl = '';
  const send = (ns: string | null, m: Uint8Array): number[] => n.netlinkRoute(ns, m);

  before(async () => {
    requireNative();
    n = loadNative();
    byIp = await rig.addNetns('ip');
    byNl = await rig.addNetns('nl');
    for (const ns of [byIp, byNl]) {
      await rig.run(ns, ['ip', 'link', 'set', 'lo', 'down']);
      await rig.run(ns, ['ip', 'tuntap', 'add', 't0', 'mode', 'tap']);
      // Up, as the agent leaves a pod's TAP (a gateway on a link that is down is refused).
      await rig.run(ns, ['ip', 'link', 'set', 't0', 'up']);
    }
  });
  after(() => rig.cleanup());

  /** What `ip -j` shows of a namespace, without what differs by nature (ifindex, MAC, lifetimes). */
  async function shown(ns: string): Promise<unknown> {
    const j = async (args: string[]): Promise<unknown[]> => JSON.parse((await rig.run(ns, ['ip', '-j', ...args])).stdout) as unknown[];
    type Link = { ifname: string; flags: string[]; addr_info: Array<Record<string, unknown>> };
    const links = (await j(['addr', 'show'])) as Link[];
    return {
      links: links.map((l) => ({
        ifname: l.ifname,
        flags: l.flags,
        addrs: l.addr_info.map(({ valid_life_time: _v, preferred_life_time: _p, ...a }) => a),
      })),
      routes4: await j(['-d', 'route', 'show', 'table', 'all']),
      routes6: await j(['-d', '-6', 'route', 'show', 'table', 'main']),
      neigh: await j(['neigh', 'show', 'nud', 'permanent']),
    };
  }

  test('a link up, IPv4 and IPv6 addresses, default routes and a static neighbour: the same as ip(8) makes them', async () => {
    for (const line of [
      'link set lo up',
      'addr replace 10.244.3.7/24 dev t0',
      'addr replace fd00:3::7/64 dev t0 nodad',
      'route replace default via 10.244.3.1 dev t0',
      'route replace ::/0 via fd00:3::1 dev t0',
      'route replace 10.99.0.0/16 via 10.244.3.9 dev t0',
      'neigh replace 10.244.3.9 lladdr 02:aa:bb:cc:dd:ee dev t0 nud permanent',
    ])
      await rig.run(byIp, ['ip', ...line.split(' ')]);
    const idx = n.linkIndex(byNl, 't0');
    assert.ok(idx > 0);
    const b = new RtnlBatch()
      .linkUp('lo')
      .addrReplace('10.244.3.7/24', idx)
      .addrReplace('fd00:3::7/64', idx)
      .routeReplace('0.0.0.0/0', '10.244.3.1', idx)
      .routeReplace('::/0', 'fd00:3::1', idx)
      .routeReplace('10.99.0.0/16', '10.244.3.9', idx)
      .neighReplace('10.244.3.9', Uint8Array.of(0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee), idx);
    applyRtnl(b, `/run/netns/${byNl}`, send);
    const want = await shown(byIp);
    assert.deepEqual(await shown(byNl), want);
    // Replace is idempotent, as `ip … replace` is: the batch again changes nothing.
    applyRtnl(b, byNl, send);
    assert.deepEqual(await shown(byNl), want);
    // And the neighbour goes as `ip neigh del` takes it.
    await rig.run(byIp, ['ip', 'neigh', 'del', '10.244.3.9', 'dev', 't0']);
    applyRtnl(new RtnlBatch().neighDel('10.244.3.9', idx), byNl, send);
    assert.deepEqual(await shown(byNl), await shown(byIp));
  });

  test('a refused request is named with its errno; the ones before it were done; a malformed buffer is refused before it is sent', () => {
    const idx = n.linkIndex(byNl, 't0');
    assert.throws(
      () => applyRtnl(new RtnlBatch().neighReplace('10.244.3.50', Uint8Array.of(2, 0, 0, 0, 0, 1), idx).linkUp('nosuch0'), byNl, send),
      /rtnetlink in .*: link set nosuch0 up: ENODEV/,
    );
    assert.deepEqual(send(byNl, new RtnlBatch().neighDel('10.244.3.50', idx).encode()), [0], 'the neighbour before the refused request was made');
    assert.deepEqual(send(byNl, new RtnlBatch().neighDel('10.244.3.50', idx).encode()), [2], 'ENOENT: already gone');
    const ok = new RtnlBatch().linkUp('lo').encode();
    assert.throws(() => send(byNl, ok.subarray(0, ok.length - 4)), RangeError);
    const noAck = ok.slice();
    noAck[6] = 0x01;
    assert.throws(() => send(byNl, noAck), RangeError);
    const badSeq = ok.slice();
    badSeq[8] = 7;
    assert.throws(() => send(byNl, badSeq), RangeError);
    assert.throws(() => send(byNl, new Uint8Array(0)), RangeError);
  });
});
