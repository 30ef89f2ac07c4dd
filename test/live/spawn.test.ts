/**
 * spawn.ts's runFast over the addon's spawnFast/reap against real programs: what the child reads, writes,
 * sees (argv, environment, file descriptors, signal state) and how it ends, compared with what the
 * kernel shows in /proc — no zombie of ours left, no descriptor leaked, a child past its time killed.
 * Needs the native addon (Linux), not root.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { runIpam } from '../../src/live/cni-ipam.js';
import { CniError } from '../../src/live/cni-spec.js';
import { CommandError, run } from '../../src/live/lab/netns.js';
import { loadNative, nativeUnavailable } from '../../src/live/native.js';
import { runFast } from '../../src/live/spawn.js';
import { sleep } from '../../src/live/sleep.js';

const SKIP = nativeUnavailable() === null ? false : `SKIPPED: ${nativeUnavailable()}`;

/** This process's children as the kernel lists them: pid and state (R, S, Z, …). */
function children(): Array<{ pid: number; state: string }> {
  const out: Array<{ pid: number; state: string }> = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after its last ')'.
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(ppid) === process.pid) out.push({ pid: Number(d), state: state! });
  }
  return out;
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

async function failure(p: Promise<unknown>): Promise<CommandError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CommandError, `a CommandError, not ${String(e)}`);
    return e;
  }
  assert.fail('it resolved');
}

describe('runFast (posix_spawn through the native addon)', { skip: SKIP }, () => {
  test('stdin round trip, stdout and stderr apart, argv verbatim, only the given environment', async () => {
    const r = await runFast(['/bin/sh', '-c', 'cat; printf "%s|" "$@" >&2; env', 'sh', 'a b', "'q'", ''], {
      input: 'line 1\nline 2\n',
      env: { SEINE_X: 'x y=z', LANG: 'C' },
    });
    const [echoed, ...envLines] = r.stdout.split(/(?<=line 2\n)/);
    assert.equal(echoed, 'line 1\nline 2\n');
    assert.equal(r.stderr, "a b|'q'||");
    const env = (envLines.join('') ?? '').split('\n').filter((l) => l !== '' && !l.startsWith('PWD=') && !l.startsWith('SHLVL=') && !l.startsWith('_='));
    assert.deepEqual(env.sort(), ['LANG=C', 'SEINE_X=x y=z']);
  });

  test('a MiB each way: stdin written past the pipe buffer, stdout read to its end', async () => {
    const input = 'abcdefghij'.repeat(1 << 17).slice(0, 1 << 20);
    const r = await runFast(['/bin/cat'], { input });
    assert.equal(r.stdout.length, input.length);
    assert.equal(r.stdout, input);
  });

  test('the child starts with 0, 1 and 2 and no descriptor of ours, no signal blocked or ignored (Node ignores SIGPIPE)', async () => {
    const fds = await runFast(['/bin/ls', '/proc/self/fd'], {});
    // ls's own directory descriptor is the fourth; a descriptor this process inherited without O_CLOEXEC
    // (02000000 in fdinfo's octal flags) goes on to any child, Node's spawn's too.
    const inherited = readdirSync('/proc/self/fd').filter((fd) => {
      // (readdir's own descriptor is closed by now: no fdinfo)
      const info = existsSync(`/proc/self/fdinfo/${fd}`) ? readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8') : '';
      const flags = /^flags:\s+([0-7]+)$/m.exec(info)?.[1];
      return flags !== undefined && (Number.parseInt(flags, 8) & 0o2000000) === 0;
    });
    const want = [...new Set(['0', '1', '2', '3', ...inherited])].sort();
    assert.deepEqual(
      fds.stdout
        .split('\n')
        .filter((l) => l !== '')
        .sort(),
      want,
    );
    const status = (await runFast(['/bin/cat', '/proc/self/status'])).stdout;
    assert.match(status, /^SigBlk:\s+0+$/m);
    // Signals 1-31 at their default; glibc's posix_spawn leaves its own two (32, 33: thread cancellation
    // and set*id) ignored, which glibc takes back in every program it starts.
    const ign = BigInt(`0x${/^SigIgn:\s+([0-9a-f]+)$/m.exec(status)?.[1] ?? 'ffffffff'}`);
    assert.equal(ign & 0x7fff_ffffn, 0n, `SigIgn ${ign.toString(16)}`);
  });

  test('a non-zero exit rejects with its code and what it said; a signal with its name', async () => {
    const e = await failure(runFast(['/bin/sh', '-c', 'echo out; echo oops >&2; exit 3']));
    assert.equal(e.code, 3);
    assert.equal(e.signal, null);
    assert.equal(e.stdout, 'out\n');
    assert.equal(e.stderr, 'oops\n');
    assert.match(e.message, /exit code 3: oops/);
    const s = await failure(runFast(['/bin/sh', '-c', 'kill -TERM $$']));
    assert.equal(s.code, null);
    assert.equal(s.signal, 'SIGTERM');
  });

  test('a missing binary: a clear error, no child, no descriptor left', async () => {
    const fds = openFds();
    const e = await failure(runFast(['/nonexistent/seine-ipam']));
    assert.equal(e.code, 'ENOENT');
    assert.match(e.message, /^\/nonexistent\/seine-ipam: could not run \(ENOENT\)/);
    assert.throws(() => loadNative().spawnFast('/nonexistent/seine-ipam', ['x'], []), {
      code: 'ENOENT',
      message: /^spawnFast \/nonexistent\/seine-ipam: posix_spawn: ENOENT$/,
    });
    assert.throws(() => loadNative().spawnFast('/etc/passwd', ['x'], []), { code: 'EACCES' });
    assert.throws(() => loadNative().spawnFast('/bin/true', ['x', 'a\0b'], []), TypeError);
    assert.equal(openFds(), fds);
    assert.deepEqual(children(), []);
  });

  test('past its time the child is killed (SIGKILL) and reaped', async () => {
    const t0 = performance.now();
    const e = await failure(runFast(['/bin/sleep', '30'], { timeoutMs: 200 }));
    assert.ok(e.timedOut);
    assert.equal(e.signal, 'SIGKILL');
    assert.ok(performance.now() - t0 < 10_000, 'it did not wait for sleep');
    assert.deepEqual(children(), []);
  });

  test('a grandchild holding the pipes after the child exited: the time limit still ends the wait', async () => {
    const e = await failure(runFast(['/bin/sh', '-c', 'sleep 3 & echo started'], { timeoutMs: 300 }));
    // The child itself exited 0; the output could not be read to its end in time.
    assert.ok(e.timedOut);
    assert.equal(e.stdout, 'started\n');
    assert.deepEqual(children(), []);
  });

  test('many at once: every answer its own, no zombie, no descriptor leaked', async () => {
    const fds = openFds();
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => runFast(['/bin/sh', '-c', `cat; echo ${i}`], { input: `in${i}\n` })));
    rs.forEach((r, i) => assert.equal(r.stdout, `in${i}\n${i}\n`));
    const zombies = children().filter((c) => c.state === 'Z');
    assert.deepEqual(zombies, []);
    assert.deepEqual(children(), []);
    assert.equal(openFds(), fds);
  });

  test('spawnFast: every descriptor it returns (the pidfd and our pipe ends) is O_CLOEXEC', async () => {
    const n = loadNative();
    const c = n.spawnFast('/bin/true', ['true'], []);
    const fds = [c.pidfd, c.stdin, c.stdout, c.stderr].filter((fd) => fd >= 0);
    try {
      assert.ok(fds.length >= 3);
      for (const fd of fds) {
        const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
        assert.ok(flags !== undefined && (Number.parseInt(flags, 8) & 0o2000000) !== 0, `fd ${fd} flags ${flags}`);
      }
    } finally {
      for (const fd of fds) n.close(fd);
      for (let i = 0; n.reap(c.pid) === null && i < 500; i++) await sleep(2);
    }
  });

  test('reap: null while the child runs, its status once ended, ECHILD for a pid not ours', async () => {
    const n = loadNative();
    const c = n.spawnFast('/bin/sleep', ['sleep', '30'], []);
    for (const fd of [c.stdin, c.stdout, c.stderr]) n.close(fd);
    assert.equal(n.reap(c.pid), null);
    assert.ok(existsSync(`/proc/${c.pid}`));
    process.kill(c.pid, 'SIGKILL');
    let got = n.reap(c.pid);
    for (let i = 0; got === null && i < 500; i++) {
      await sleep(2);
      got = n.reap(c.pid);
    }
    assert.deepEqual(got, { code: null, signal: 9 });
    if (c.pidfd >= 0) n.close(c.pidfd);
    assert.throws(() => n.reap(c.pid), { code: 'ECHILD' });
    assert.throws(() => n.reap(1), { code: 'ECHILD' });
  });

  test('host-local through runIpam: an address, then its own error object (code and message) when the range is spent', {
    skip: existsSync('/usr/lib/cni/host-local') ? false : 'SKIPPED: no /usr/lib/cni/host-local',
  }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'seine-spawn-'));
    try {
      // A /30 holds .1 (the gateway) and .2: one pod.
      const config = { cniVersion: '1.0.0', name: 'spawn-test', type: 'seine', ipam: { type: 'host-local', ranges: [[{ subnet: '10.250.7.0/30' }]], dataDir } };
      const call = (containerId: string) => ({
        command: 'ADD' as const,
        containerId,
        netns: '/var/run/netns/none',
        ifname: 'eth0',
        args: '',
        path: '/usr/lib/cni',
        config,
      });
      const first = await runIpam(call('spawn-a'));
      assert.deepEqual(first?.ips, [{ address: '10.250.7.2/30', gateway: '10.250.7.1' }]);
      await assert.rejects(runIpam(call('spawn-b')), (e: unknown) => {
        assert.ok(e instanceof CniError);
        assert.equal(e.code, 999, "host-local's own code (its generic one), not seine's default 5");
        assert.match(e.message, /^IPAM host-local ADD: .*no IP addresses available/);
        return true;
      });
      assert.deepEqual(children(), []);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

// A command that exits without reading its stdin (host-local VERSION does) closes the pipe under the
// writer: that EPIPE once escaped `run` as an unhandled 'error' event and ended the process.
describe('a command that does not read its stdin', () => {
  const input = 'x'.repeat(1 << 20);
  test('run resolves with the exit status, not an EPIPE', async () => {
    assert.deepEqual(await run(['/bin/true'], { input }), { stdout: '', stderr: '' });
    await assert.rejects(run(['/bin/false'], { input }), (e: unknown) => e instanceof CommandError && /exit code 1/.test(e.message));
  });
  test('runFast resolves with the exit status, not an EPIPE', { skip: SKIP }, async () => {
    assert.equal((await runFast(['/bin/true'], { input })).stdout, '');
    await assert.rejects(runFast(['/bin/false'], { input }), (e: unknown) => e instanceof CommandError);
  });
});
