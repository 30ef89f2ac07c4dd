/**
 * The agent's configuration file: what `seine lab up` writes parses back to the same node, and every
 * mistake is refused with the file, the key and what was expected (no root needed).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError, loadAgentConfig, loadPeers, parseAgentConfig } from '../../src/live/config.js';
import { nodeConfigsFromScenario } from '../../src/node/config.js';
import { parseScenario } from '../../src/scenario/scenario.js';

const DIR = mkdtempSync(join(tmpdir(), 'seine-agentcfg-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

const scenario = parseScenario(
  [
    'name: cfg',
    'tunnel: { type: geneve, options: [{ class: 0x0102, type: 0x80, data: "0000000a" }] }',
    'encryption: { cipher: chacha20-poly1305, secret: s3cret }',
    'nodes:',
    '  - { name: node1, podCIDR: 10.244.1.0/24, pods: [{ name: a }, { name: b, vlan: 10 }] }',
    '  - { name: node2, podCIDR: [10.244.2.0/24, "fd00:2::/64"], pods: [{ name: c }] }',
  ].join('\n'),
  'cfg.yaml',
);
const node1 = nodeConfigsFromScenario(scenario, { stacks: 'all' })[0]!;
const FILE = join(DIR, 'node1.yaml');
const base = {
  node: node1,
  netns: 'seine-cfg-node1',
  pods: { a: { netns: 'seine-cfg-node1-a', ifname: 'eth0' }, b: { netns: 'seine-cfg-node1-b' } },
  control: 'node1.sock',
  metrics: '127.0.0.1:0',
  underlayMtu: 1500,
};

function refused(doc: unknown, key: RegExp | string, expected?: RegExp): void {
  const text = typeof doc === 'string' ? doc : stringify(doc);
  assert.throws(
    () => parseAgentConfig(text, FILE),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.ok(e.message.startsWith(`${FILE}: `), e.message);
      if (typeof key === 'string') assert.ok(e.message.includes(key), `${e.message} names ${key}`);
      else assert.match(e.message, key);
      if (expected !== undefined) assert.match(e.message, expected);
      return true;
    },
  );
}

test('agent config: what seine lab up writes parses back to the same node; defaults and relative paths', () => {
  const c = parseAgentConfig(stringify(base), FILE);
  assert.deepEqual(c.node, node1);
  assert.equal(c.control, join(DIR, 'node1.sock'));
  assert.equal(c.pods['b']!.ifname, 'eth0');
  assert.equal(c.hostTap, 'seine-gw0');
  // Offloads on by default, with fewer (64 KiB) buffers; off, the 4096 small ones.
  assert.equal(c.offloads, true);
  assert.equal(c.buffers, 1024);
  const off = parseAgentConfig(stringify({ ...base, offloads: false }), FILE);
  assert.equal(off.offloads, false);
  assert.equal(off.buffers, 4096);
  assert.equal(c.peersFile, null);
  // A lab's pods keep the simulator's NoRoute; a CNI node's config asks for the way through its stack.
  assert.equal(c.defaultToHost, false);
  assert.equal(parseAgentConfig(stringify({ ...base, defaultToHost: true }), FILE).defaultToHost, true);
});

test("agent config: a peer file replaces node.peers and skips this node's own entry", () => {
  const peers = join(DIR, 'peers.yaml');
  writeFileSync(
    peers,
    stringify({
      peers: [
        { name: 'node1', underlayIp: '172.18.0.2', underlayMac: '02:02:00:00:00:01' },
        { name: 'node9', underlayIp: '172.18.0.9', underlayMac: '02:02:00:00:00:09', podCIDRs: ['10.244.9.0/24'] },
      ],
    }),
  );
  const c = parseAgentConfig(stringify({ ...base, peers: 'peers.yaml' }), FILE);
  assert.deepEqual(
    c.node.peers.map((p) => p.name),
    ['node9'],
  );
  assert.deepEqual(c.node.peers[0]!.vnis, []);
  assert.deepEqual(
    loadPeers(peers, 'node9').map((p) => p.name),
    ['node1'],
  );
});

test('agent config: each mistake names the file, the key and what was expected', () => {
  refused({ ...base, contrl: 'x' }, 'contrl: unknown key');
  refused({ ...base, control: undefined }, 'control: missing');
  refused({ ...base, node: { ...node1, underlayMac: 'nope' } }, 'node.underlayMac', /expected a MAC/);
  refused({ ...base, node: { ...node1, mode: 'bridge' } }, 'node.mode', /one of routed, l2/);
  refused({ ...base, node: { ...node1, gateway: null } }, 'node.gateway', /routed mode needs a gateway/);
  refused({ ...base, node: { ...node1, pods: [{ ...node1.pods[0]!, mtu: 70000 }] } }, 'node.pods[0].mtu', /576-65535/);
  refused({ ...base, node: { ...node1, pods: [{ ...node1.pods[0]!, ip4: '10.244.1' }] } }, 'node.pods[0].ip4', /address/);
  refused(
    { ...base, node: { ...node1, tunnel: { ...node1.tunnel, options: [{ class: 1, type: 2, data: 'abc' }] } } },
    'node.tunnel.options[0].data',
    /multiple of 4 bytes/,
  );
  refused({ ...base, node: { ...node1, esp: { cipher: 'rot13', secret: { passphrase: 'x' } } } }, 'node.esp.cipher');
  refused({ ...base, node: { ...node1, esp: { cipher: 'aes-gcm-128', secret: {} } } }, 'node.esp.secret', /passphrase/);
  refused({ ...base, node: { ...node1, peers: [node1.peers[0], node1.peers[0]] } }, 'listed twice');
  refused({ ...base, pods: { a: base.pods.a } }, 'pods.b: missing');
  refused({ ...base, pods: { ...base.pods, zz: { netns: 'x' } } }, 'pods.zz: unknown key');
  refused({ ...base, pods: { ...base.pods, a: { netns: 'x', ifname: 'a-very-long-interface' } } }, 'pods.a.ifname', /15 characters/);
  refused({ ...base, hostTap: 'seine-gateway-zero' }, 'hostTap');
  refused({ ...base, buffers: 10 }, 'buffers', /256-/);
  refused({ ...base, offloads: 'yes' }, 'offloads', /true or false/);
  refused({ ...base, defaultToHost: 1 }, 'defaultToHost', /true or false/);
  refused({ ...base, defaultToHost: true, node: { ...node1, stack: null } }, 'defaultToHost', /needs node.stack/);
  refused('node: [unclosed', 'not valid YAML');
  refused('- a list', /expected a mapping/);
});

test('agent config: files that are missing, not regular or too large are refused with their name', () => {
  assert.throws(() => loadAgentConfig(join(DIR, 'absent.yaml')), /absent\.yaml: cannot read the agent configuration: no such file/);
  const d = join(DIR, 'adir');
  mkdirSync(d);
  assert.throws(() => loadAgentConfig(d), /adir: the agent configuration is not a regular file/);
  const big = join(DIR, 'big.yaml');
  writeFileSync(big, Buffer.alloc(5 << 20, 0x20));
  assert.throws(() => loadAgentConfig(big), /big\.yaml: the agent configuration is \d+ bytes; a configuration file is at most/);
  assert.throws(() => parseAgentConfig(stringify({ ...base, peers: 'nowhere.yaml' }), FILE), /nowhere\.yaml: cannot read the peer file: no such file/);
});

test('agent config: a GRE node — kind gre parses back, greKey false kept, greKey not a boolean refused', () => {
  const gre = { ...node1, tunnel: { ...node1.tunnel, kind: 'gre', options: [], knownOptions: [] } };
  assert.equal(parseAgentConfig(stringify({ ...base, node: gre }), FILE).node.tunnel.kind, 'gre');
  const noKey = parseAgentConfig(stringify({ ...base, node: { ...gre, tunnel: { ...gre.tunnel, greKey: false } } }), FILE);
  assert.equal(noKey.node.tunnel.greKey, false);
  refused({ ...base, node: { ...gre, tunnel: { ...gre.tunnel, greKey: 'no' } } }, 'node.tunnel.greKey');
  refused({ ...base, node: { ...gre, tunnel: { ...gre.tunnel, kind: 'ipip' } } }, 'node.tunnel.kind', /vxlan, geneve, gre/);
});
