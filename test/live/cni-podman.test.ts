/**
 * A real CNI client: Debian's podman with its CNI backend, run inside each live node's namespace with the
 * conflist `seine install-cni` wrote, starts busybox-static containers on two nodes. They get addresses
 * from host-local, ping each other across the tunnel and reach their gateway; `podman rm` runs DEL and
 * the address is free again. portmap, chained after seine, publishes a container's port (`-p`) that a
 * client on the other node reaches; bandwidth chained after seine lets ADD and DEL through.
 *
 * Root only: without root every test skips and says so.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { allocated, CNI_BIN, type CniNode, cniLab } from '../cni/rig.js';
import { SYSTEM_PYTHON } from '../helpers.js';
import { liveSkip, Rig, requireCommand, sleep } from './rig.js';

const SKIP = liveSkip('test/live/cni-podman.test.ts');

/** An HTTP GET printing the body (the system's Python: busybox-static's wget crashes resolving on the host). */
function httpGet(url: string, timeoutS: number): string[] {
  return [
    SYSTEM_PYTHON,
    '-c',
    `import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(${JSON.stringify(url)}, timeout=${timeoutS}).read().decode())`,
  ];
}

describe('podman with seine as its CNI network', { skip: SKIP, timeout: 600_000 }, () => {
  const rig = new Rig('cpm');
  let nodes: CniNode[] = [];
  let rootfs = '';
  let net = '';
  after(async () => {
    // Containers first (their DELs need the agents), then the rig.
    for (const n of nodes) await podman(n, ['rm', '-a', '-f', '-t', '0'], 60_000).catch(() => undefined);
    await rig.cleanup();
  });
  before(async () => {
    requireCommand('podman', 'podman');
    requireCommand('runc', 'runc');
    nodes = await cniLab(rig, 2);
    net = `seine-${rig.tag}`;
    // A rootfs of busybox-static alone: its applets as links, and the directories podman mounts over.
    rootfs = join(rig.dir, 'rootfs');
    for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'www', 'run']) mkdirSync(join(rootfs, d), { recursive: true });
    writeFileSync(join(rootfs, 'bin', 'busybox'), readFileSync('/bin/busybox'));
    chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
    for (const a of ['sh', 'sleep', 'ping', 'ip', 'nc', 'httpd', 'wget', 'cat', 'ifconfig']) symlinkSync('busybox', join(rootfs, 'bin', a));
    writeFileSync(join(rootfs, 'www', 'index.html'), `hello from seine ${rig.tag}\n`);
    for (const n of nodes) {
      // podman finds the plugins through containers.conf: the rig's seine first, the reference plugins after.
      writeFileSync(
        join(rig.dir, `${n.name}-containers.conf`),
        `[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["${n.binDir}", "${CNI_BIN}"]\nnetwork_config_dir = "${n.confDir}"\n[engine]\nevents_logger = "file"\n`,
      );
    }
  });

  function podman(n: CniNode, args: string[], timeoutMs = 120_000): Promise<{ stdout: string; stderr: string }> {
    const base = join(rig.dir, `podman-${n.name}`);
    // nsenter, not `ip netns exec`: that one gives podman a mount namespace of its own whose mounts do not
    // propagate back, and the bind mount podman makes of each container's namespace (/run/netns/netns-…)
    // would then be an empty file to the agent.
    return rig.run(
      null,
      [
        'nsenter',
        `--net=/run/netns/${n.ns}`,
        'podman',
        '--root',
        join(base, 'root'),
        '--runroot',
        join(base, 'run'),
        '--tmpdir',
        join(base, 'tmp'),
        '--runtime',
        'runc',
        '--network-backend',
        'cni',
        '--network-config-dir',
        n.confDir,
        '--cgroup-manager',
        'cgroupfs',
        '--storage-driver',
        'vfs',
        '--events-backend',
        'file',
        ...args,
      ],
      timeoutMs,
      { ...process.env, CONTAINERS_CONF: join(rig.dir, `${n.name}-containers.conf`) },
    );
  }

  const RUN_FLAGS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', '--cap-add', 'NET_RAW'];

  async function runContainer(n: CniNode, name: string, cmd: string, extra: string[] = [], network = net): Promise<string> {
    await podman(n, ['run', '-d', '--name', name, '--network', network, ...RUN_FLAGS, ...extra, '--rootfs', rootfs, '/bin/sh', '-c', cmd]);
    return ipOf(n, name);
  }

  async function ipOf(n: CniNode, name: string): Promise<string> {
    const r = await podman(n, ['exec', name, '/bin/ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    const m = /inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(r.stdout);
    assert.ok(m !== null, `no IPv4 address on ${name}'s eth0: ${r.stdout}`);
    return m[1]!;
  }

  async function pingFrom(n: CniNode, name: string, to: string): Promise<boolean> {
    for (let i = 0; i < 5; i++) {
      const ok = await podman(n, ['exec', name, '/bin/ping', '-c', '1', '-W', '2', to], 15_000).then(
        () => true,
        () => false,
      );
      if (ok) return true;
    }
    return false;
  }

  test('containers on two nodes get host-local addresses, ping across the tunnel and their gateway; podman rm frees the address', async () => {
    const a = `a${rig.tag}`;
    const b = `b${rig.tag}`;
    const ipA = await runContainer(nodes[0]!, a, 'sleep 600');
    const ipB = await runContainer(nodes[1]!, b, 'sleep 600');
    assert.match(ipA, /^10\.244\.1\.\d+$/);
    assert.match(ipB, /^10\.244\.2\.\d+$/);
    assert.deepEqual(allocated(nodes[0]!, net), [ipA], "host-local's allocation on node1");
    assert.deepEqual(allocated(nodes[1]!, net), [ipB]);
    const mtu = await podman(nodes[0]!, ['exec', a, '/bin/cat', '/sys/class/net/eth0/mtu']);
    assert.equal(mtu.stdout.trim(), '1450');
    assert.ok(await pingFrom(nodes[0]!, a, nodes[0]!.gateway), 'a → its gateway');
    assert.ok(await pingFrom(nodes[0]!, a, ipB), 'a (node1) → b (node2) across the tunnel');
    assert.ok(await pingFrom(nodes[1]!, b, ipA), 'b (node2) → a (node1)');
    await podman(nodes[0]!, ['rm', '-f', '-t', '0', a]);
    assert.deepEqual(allocated(nodes[0]!, net), [], 'DEL released the address');
    const st = JSON.parse(readFileSync(join(nodes[0]!.cniState, 'attachments.json'), 'utf8')) as { attachments: unknown[] };
    assert.equal(st.attachments.length, 0);
    // The next container gets an address (host-local hands them out in turn) and the only one held is its.
    const a2 = `a2${rig.tag}`;
    const ipA2 = await runContainer(nodes[0]!, a2, 'sleep 600');
    assert.deepEqual(allocated(nodes[0]!, net), [ipA2]);
    assert.ok(await pingFrom(nodes[0]!, a2, ipB));
    await podman(nodes[0]!, ['rm', '-f', '-t', '0', a2]);
    await podman(nodes[1]!, ['rm', '-f', '-t', '0', b]);
    assert.deepEqual(allocated(nodes[1]!, net), []);
  });

  test('portmap chained after seine: a port published with -p reaches the container from the other node', async () => {
    const w = `w${rig.tag}`;
    await runContainer(nodes[0]!, w, 'httpd -f -p 80 -h /www', ['-p', '18080:80']);
    let body = '';
    let why = '';
    for (let i = 0; i < 10 && body === ''; i++) {
      body = await rig.run(nodes[1]!.ns, httpGet(`http://${nodes[0]!.underlayIp}:18080/index.html`, 3), 15_000).then(
        (r) => r.stdout,
        (e: unknown) => {
          why = String(e).slice(-300);
          return '';
        },
      );
      if (body === '') await sleep(300);
    }
    const nat = body === '' ? (await rig.run(nodes[0]!.ns, ['iptables-save', '-t', 'nat'])).stdout : '';
    assert.equal(body, `hello from seine ${rig.tag}\n`, `${why}\n${nat}`);
    await podman(nodes[0]!, ['rm', '-f', '-t', '0', w]);
    // portmap's DEL took its rules away: the port is closed again.
    const after = await rig.run(nodes[1]!.ns, httpGet(`http://${nodes[0]!.underlayIp}:18080/index.html`, 2), 15_000).then(
      () => 'open',
      () => 'closed',
    );
    assert.equal(after, 'closed');
  });

  test('bandwidth chained after seine (and portmap): ADD and DEL go through', async () => {
    const n = nodes[0]!;
    const list = JSON.parse(readFileSync(join(n.confDir, '10-seine.conflist'), 'utf8')) as { name: string; plugins: unknown[] };
    const name = `${list.name}-bw`;
    writeFileSync(
      join(n.confDir, '20-seine-bw.conflist'),
      JSON.stringify({ ...list, name, plugins: [...list.plugins, { type: 'bandwidth', capabilities: { bandwidth: true } }] }, null, 2),
    );
    const c = `bw${rig.tag}`;
    const ip = await runContainer(n, c, 'sleep 600', [], name);
    assert.deepEqual(allocated(n, name), [ip]);
    assert.ok(await pingFrom(n, c, n.gateway));
    await podman(n, ['rm', '-f', '-t', '0', c]);
    assert.deepEqual(allocated(n, name), []);
  });
});
