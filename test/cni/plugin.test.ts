/**
 * The plugin front end without an agent or root: VERSION, each validation error with the spec's code and
 * a message naming what is wrong, what it asks the agent, how it prints a result in the configuration's
 * version, the codes for an unreachable agent (11, and 50 from STATUS); the built plugin run as a
 * runtime runs it (environment and stdin, error object on stdout, non-zero exit); what `seine install-cni`
 * writes; and that the plugin's start-up path loads none of the heavy modules.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bundleText, MODULE_MARK, PLUGIN_BUNDLE } from '../../src/cni/bundle.js';
import { AgentUnreachable } from '../../src/cni/client.js';
import { type AgentAsk, runPlugin } from '../../src/cni/plugin.js';
import type { CniResult } from '../../src/live/cni-spec.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PLUGIN = join(ROOT, 'dist', 'src', 'cni', 'main.js');
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');

const CONF = { cniVersion: '1.1.0', name: 'seine', type: 'seine', agentSocket: '/run/test/agent.sock', ipam: { type: 'host-local', subnet: '10.244.1.0/24' } };
const ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc123', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
const RESULT: CniResult = {
  cniVersion: '1.1.0',
  interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1450, sandbox: '/var/run/netns/x' }],
  ips: [{ address: '10.244.1.2/24', gateway: '10.244.1.1', interface: 0 }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }],
  dns: {},
};

const never: AgentAsk = () => Promise.reject(new Error('the agent must not be asked'));

async function error(
  env: Record<string, string | undefined>,
  stdin: string,
  ask: AgentAsk = never,
): Promise<{ code: number; msg: string; cniVersion: string }> {
  const r = await runPlugin(env, stdin, ask);
  assert.equal(r.code, 1, r.stdout);
  const o = JSON.parse(r.stdout) as { code: number; msg: string; cniVersion: string };
  assert.equal(typeof o.msg, 'string');
  return o;
}

test('VERSION answers 0.4.0, 1.0.0 and 1.1.0, in the version asked', async () => {
  const r = await runPlugin({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}', never);
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.stdout), { cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
  const old = await runPlugin({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.3.1"}', never);
  assert.equal((JSON.parse(old.stdout) as { cniVersion: string }).cniVersion, '1.1.0');
});

test('errors carry the spec codes and name what is wrong: 1, 4, 6, 7', async () => {
  const s = JSON.stringify(CONF);
  let e = await error(ENV, '{"cniVersion": ');
  assert.equal(e.code, 6);
  assert.match(e.msg, /not JSON/);
  e = await error(ENV, '[1]');
  assert.equal(e.code, 6);
  e = await error(ENV, JSON.stringify({ ...CONF, cniVersion: '0.3.1' }));
  assert.deepEqual([e.code, e.cniVersion], [1, '1.1.0']);
  assert.match(e.msg, /"0\.3\.1" is not supported/);
  for (const [bad, re] of [
    [{ type: 'bridge' }, /^type: must be "seine"/],
    [{ name: '-x' }, /^name:/],
    [{ ipam: 'host-local' }, /^ipam:/],
    [{ ipam: {} }, /^ipam:/],
    [{ agentSocket: 'relative.sock' }, /^agentSocket: must be an absolute path/],
    [{ runtimeConfig: [] }, /^runtimeConfig: must be an object/],
    [{ cniVersion: undefined }, /^cniVersion: missing/],
  ] as const) {
    e = await error(ENV, JSON.stringify({ ...CONF, ...bad }));
    assert.equal(e.code, 7, JSON.stringify(bad));
    assert.match(e.msg, re);
  }
  // Code 7 answers in the configuration's own version.
  e = await error(ENV, JSON.stringify({ ...CONF, cniVersion: '0.4.0', type: 'x' }));
  assert.equal(e.cniVersion, '0.4.0');
  for (const [env, re] of [
    [{ ...ENV, CNI_NETNS: undefined }, /CNI_NETNS is missing: ADD needs it/],
    [{ ...ENV, CNI_NETNS: 'x' }, /CNI_NETNS "x" is not a path/],
    [{ ...ENV, CNI_CONTAINERID: '' }, /CNI_CONTAINERID is missing/],
    [{ ...ENV, CNI_CONTAINERID: 'a b' }, /CNI_CONTAINERID "a b" is not a container ID/],
    [{ ...ENV, CNI_IFNAME: 'a-very-long-interface' }, /CNI_IFNAME .* 1 to 15 characters/],
    [{ ...ENV, CNI_IFNAME: 'a/b' }, /CNI_IFNAME/],
    [{ ...ENV, CNI_PATH: undefined }, /CNI_PATH is missing/],
    [{ ...ENV, CNI_COMMAND: 'FROB' }, /CNI_COMMAND "FROB" is not a command/],
    [{ ...ENV, CNI_COMMAND: undefined }, /CNI_COMMAND is missing/],
  ] as const) {
    e = await error(env, s);
    assert.equal(e.code, 4, JSON.stringify(env));
    assert.match(e.msg, re);
  }
  // DEL needs no CNI_NETNS (the namespace may be gone); GC's lists are checked.
  const del = await runPlugin({ ...ENV, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }, s, () => Promise.resolve({ ok: true }));
  assert.deepEqual(del, { stdout: '', code: 0 });
  e = await error({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, JSON.stringify({ ...CONF, 'cni.dev/valid-attachments': [{ containerID: 1 }] }));
  assert.equal(e.code, 7);
  assert.match(e.msg, /cni\.dev\/valid-attachments\[0\]/);
});

test('asks the agent at the configured socket with the command, the CNI_* variables and the configuration; prints the result in the asked version', async () => {
  let asked: { path: string; req: Record<string, unknown> } | null = null;
  const ask: AgentAsk = (path, req) => {
    asked = { path, req };
    return Promise.resolve({ ok: true, result: RESULT });
  };
  const conf = { ...CONF, runtimeConfig: { portMappings: [] }, prevResult: { ips: [] } };
  const r = await runPlugin({ ...ENV, CNI_ARGS: 'K8S_POD_NAME=p' }, JSON.stringify(conf), ask);
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.stdout), RESULT);
  assert.ok(asked !== null);
  const a = asked as { path: string; req: Record<string, unknown> };
  assert.equal(a.path, '/run/test/agent.sock');
  assert.deepEqual(a.req, {
    op: 'cni',
    command: 'ADD',
    containerId: 'abc123',
    netns: '/var/run/netns/x',
    ifname: 'eth0',
    args: 'K8S_POD_NAME=p',
    path: '/opt/cni/bin',
    config: conf,
  });
  const r4 = await runPlugin(ENV, JSON.stringify({ ...CONF, cniVersion: '0.4.0' }), ask);
  const j4 = JSON.parse(r4.stdout) as { cniVersion: string; interfaces: Array<{ mtu?: number }>; ips: Array<{ version: string }> };
  assert.equal(j4.cniVersion, '0.4.0');
  assert.equal(j4.ips[0]!.version, '4');
  assert.equal(j4.interfaces[0]!.mtu, undefined);
  const r1 = await runPlugin(ENV, JSON.stringify({ ...CONF, cniVersion: '1.0.0' }), ask);
  assert.equal((JSON.parse(r1.stdout) as { interfaces: Array<{ mtu?: number }> }).interfaces[0]!.mtu, undefined);
  // The agent's CNI error is printed as is; an agent refusing the op is an I/O failure.
  const e = await error(ENV, JSON.stringify(CONF), () => Promise.resolve({ ok: true, cniError: { code: 100, msg: 'twice' } }));
  assert.deepEqual([e.code, e.msg], [100, 'twice']);
  const e2 = await error(ENV, JSON.stringify(CONF), () => Promise.resolve({ ok: false, error: 'unknown op "cni"' }));
  assert.equal(e2.code, 5);
  assert.match(e2.msg, /unknown op "cni"/);
});

test('an unreachable agent: 11 (try again later), and 50 from STATUS', async () => {
  const down: AgentAsk = () => Promise.reject(new AgentUnreachable('no seine agent listening at /run/test/agent.sock'));
  const e = await error(ENV, JSON.stringify(CONF), down);
  assert.equal(e.code, 11);
  assert.match(e.msg, /no seine agent listening/);
  const s = await error({ CNI_COMMAND: 'STATUS' }, JSON.stringify(CONF), down);
  assert.equal(s.code, 50);
});

test('the built plugin as a runtime runs it: stdin and environment in, error object on stdout, exit 1; a missing socket is 11', () => {
  // Both forms: the ESM entry and the one-file bundle the launcher runs.
  for (const file of [PLUGIN, PLUGIN_BUNDLE]) runsAsAPlugin(file);
});

function runsAsAPlugin(file: string): void {
  const run = (env: Record<string, string>, stdin: string) =>
    spawnSync(process.execPath, [file], { env: { PATH: process.env['PATH'], ...env }, input: stdin, encoding: 'utf8' });
  const v = run({ CNI_COMMAND: 'VERSION' }, '');
  assert.equal(v.status, 0);
  assert.deepEqual((JSON.parse(v.stdout) as { supportedVersions: string[] }).supportedVersions, ['0.4.0', '1.0.0', '1.1.0']);
  const bad = run(ENV, 'nope');
  assert.equal(bad.status, 1);
  assert.equal((JSON.parse(bad.stdout) as { code: number }).code, 6);
  const dir = mkdtempSync(join(tmpdir(), 'seine-cni-'));
  try {
    const down = run(ENV, JSON.stringify({ ...CONF, agentSocket: join(dir, 'none.sock') }));
    assert.equal(down.status, 1);
    assert.equal((JSON.parse(down.stdout) as { code: number }).code, 11);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("the plugin's start-up loads only its own small modules (no yaml, prom-client, datapath or agent)", () => {
  // The import graph of the built entry, followed file by file; a dynamic import( would escape it, so none is allowed.
  const seen = new Set<string>();
  const walk = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    assert.doesNotMatch(text, /\bimport\(/, `${file} imports dynamically`);
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*from\s+['"]([^'"]+)['"]/gm)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) walk(join(file, '..', spec));
      else seen.add(spec);
    }
  };
  walk(PLUGIN);
  const files = [...seen].map((f) => f.replace(`${ROOT}dist/`, ''));
  assert.deepEqual(
    files.sort(),
    ['node:fs', 'node:net', 'node:tty', 'src/cni/client.js', 'src/cni/main.js', 'src/cni/plugin.js', 'src/live/cni-spec.js', 'src/live/request.js'].sort(),
  );
  // The bundle the launcher runs holds that graph and nothing else: its modules, and Node's built-ins for the rest.
  const bundle = readFileSync(PLUGIN_BUNDLE, 'utf8');
  const held = [...bundle.matchAll(new RegExp(`^${MODULE_MARK}(\\S+)$`, 'gm'))].map((m) => m[1]!);
  const required = new Set([...bundle.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]!));
  for (const id of held) required.delete(id);
  assert.deepEqual([...held, ...required].sort(), files.sort());
  assert.doesNotMatch(bundle, /\bimport\(/);
});

test('the bundle step refuses what one CommonJS file cannot hold: a package, a top-level await', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'seine-bundle-'));
  try {
    writeFileSync(join(dir, 'pkg.js'), "import { parse } from 'yaml';\nexport const p = parse;\n");
    await assert.rejects(bundleText(join(dir, 'pkg.js')), /imports yaml: the plugin's start-up path takes Node's built-ins only/);
    writeFileSync(join(dir, 'dep.js'), 'export const x = 1;\n');
    writeFileSync(join(dir, 'tla.js'), "import { x } from './dep.js';\nconst y = await Promise.resolve(x);\nexport { y };\n");
    await assert.rejects(bundleText(join(dir, 'tla.js')), /tla\.js does not run as CommonJS/);
    // And what it can: the modules run once each, in the bundle's own scope.
    writeFileSync(join(dir, 'dep.js'), 'globalThis.loads = (globalThis.loads ?? 0) + 1;\nexport const x = 1;\n');
    writeFileSync(
      join(dir, 'ok.js'),
      "import { x } from './dep.js';\nimport { y as z } from './dep2.js';\nprocess.stdout.write(String(x + z) + ' ' + globalThis.loads);\n",
    );
    writeFileSync(join(dir, 'dep2.js'), "import { x } from './dep.js';\nexport const y = x + 40;\n");
    writeFileSync(join(dir, 'ok.cjs'), await bundleText(join(dir, 'ok.js')));
    const r = spawnSync(process.execPath, [join(dir, 'ok.cjs')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '42 1');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('install-cni writes an executable launcher and the conflist (host-local over the podCIDR, portmap chained)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'seine-install-'));
  try {
    const bin = join(dir, 'bin');
    const conf = join(dir, 'net.d');
    const r = spawnSync(
      process.execPath,
      [MAIN, 'install-cni', '--pod-cidr', '10.244.7.0/24', '--bin-dir', bin, '--conf-dir', conf, '--agent-socket', '/run/x.sock'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const plugin = join(bin, 'seine');
    assert.equal(statSync(plugin).mode & 0o777, 0o755);
    const list = JSON.parse(readFileSync(join(conf, '10-seine.conflist'), 'utf8')) as {
      cniVersion: string;
      name: string;
      plugins: Array<Record<string, unknown>>;
    };
    assert.equal(list.cniVersion, '1.0.0');
    assert.equal(list.name, 'seine');
    assert.deepEqual(list.plugins[0], {
      type: 'seine',
      agentSocket: '/run/x.sock',
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.7.0/24', gateway: '10.244.7.1' }]] },
    });
    assert.deepEqual(list.plugins[1], { type: 'portmap', capabilities: { portMappings: true }, snat: true });
    // The launcher runs the plugin: the one-file bundle.
    assert.match(readFileSync(plugin, 'utf8'), /dist\/src\/cni\/main\.cjs' "\$@"$/m);
    const v = spawnSync(plugin, [], { env: { PATH: process.env['PATH'], CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"0.4.0"}', encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    assert.equal((JSON.parse(v.stdout) as { cniVersion: string }).cniVersion, '0.4.0');
    const bad = spawnSync(process.execPath, [MAIN, 'install-cni', '--pod-cidr', 'fd00::/64', '--bin-dir', bin, '--conf-dir', conf], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /an IPv4 podCIDR is needed/);
    // A conflist that cannot be replaced (a directory in its place): said in words, no temporary file left behind.
    const blocked = join(dir, 'blocked');
    mkdirSync(join(blocked, '10-seine.conflist'), { recursive: true });
    const no = spawnSync(process.execPath, [MAIN, 'install-cni', '--pod-cidr', '10.244.7.0/24', '--bin-dir', bin, '--conf-dir', blocked], { encoding: 'utf8' });
    assert.notEqual(no.status, 0);
    assert.match(no.stderr, /install-cni: cannot write '.*10-seine\.conflist': is a directory/);
    assert.deepEqual(readdirSync(blocked), ['10-seine.conflist']);
    assert.deepEqual(readdirSync(bin), ['seine']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
