/**
 * `run` (lab/netns.ts) without fork: the same promise — stdout and stderr as text, a CommandError for a
 * non-zero exit, a signal, a timeout or a program that could not start — over the native addon's
 * `spawnFast`. Node's child_process forks, and fork copies the parent's page tables, so an exec from an
 * agent whose packet pool keeps hundreds of MiB resident costs several times more (measured by
 * bench/spawn.ts). The agent's per-request execs (the CNI's IPAM plugin) come here; tests and labs
 * keep `run`.
 *
 * The pipes are read and written through net.Socket over their fds (libuv pipe handles: no thread pool),
 * and the exit is waited for on the child's pidfd through the addon's poll (a 2 ms timer where the kernel
 * has no pidfd). libuv reaps only the children it started, so this module reaps its own: every child is
 * waited for, after SIGKILL when it overstays its time.
 */
import { Socket } from 'node:net';
import { constants } from 'node:os';
import { CommandError, COMMAND_TIMEOUT_MS, type RunOptions, type RunResult } from './lab/netns.js';
import { loadNative, POLL, type Native, type SpawnedFast } from './native.js';

type Exit = NonNullable<ReturnType<Native['reap']>>;

/** Signal numbers to names (SIGKILL), as child_process reports them. */
const SIGNAL_NAMES = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

/** The child's exit, waited for on its pidfd (or polled every 2 ms without one). */
function exited(native: Native, c: SpawnedFast): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      let got: Exit | null;
      try {
        got = native.reap(c.pid);
      } catch (e) {
        reject(e);
        return true;
      }
      if (got !== null) resolve(got);
      return got !== null;
    };
    if (check()) return;
    if (c.pidfd < 0) {
      const t = setInterval(() => check() && clearInterval(t), 2);
      return;
    }
    const id = native.pollStart(c.pidfd, POLL.READABLE, () => {
      if (check()) native.pollStop(id);
    });
  });
}

/** The text a pipe carries until its end (or until it is destroyed). */
function drain(fd: number): { text: () => string; done: Promise<void>; socket: Socket } {
  let text = '';
  const socket = new Socket({ fd, readable: true, writable: false });
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    text += d;
  });
  const done = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => socket.destroy());
  return { text: () => text, done, socket };
}

/** Runs `argv[0]` (a path: no PATH search) with the rest as arguments through `spawnFast`; as `run` resolves and rejects. */
export async function runFast(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file] = argv;
  if (file === undefined) throw new Error('runFast: empty command');
  const native = loadNative();
  const envp: string[] = [];
  for (const [k, v] of Object.entries(opts.env ?? process.env)) if (v !== undefined) envp.push(`${k}=${v}`);
  let c: SpawnedFast;
  try {
    c = native.spawnFast(file, argv, envp);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) throw e;
    throw new CommandError(argv, code, null, '', '');
  }
  const stdin = new Socket({ fd: c.stdin, readable: false, writable: true });
  // A child that exits without reading its input makes the write fail with EPIPE: its exit status says what happened.
  stdin.on('error', () => stdin.destroy());
  stdin.end(opts.input ?? '');
  const out = drain(c.stdout);
  const err = drain(c.stderr);
  let timedOut = false;
  let exit: Exit | null = null;
  const timer = setTimeout(() => {
    timedOut = true;
    // Not reaped yet, so the pid is still this child's.
    if (exit === null) process.kill(c.pid, 'SIGKILL');
    // A grandchild may hold the pipes open: stop reading them.
    out.socket.destroy();
    err.socket.destroy();
  }, opts.timeoutMs ?? COMMAND_TIMEOUT_MS);
  try {
    exit = await exited(native, c);
  } catch (e) {
    // No exit to wait for (waitpid failed): the timer must not signal a pid that may be another's by then.
    clearTimeout(timer);
    out.socket.destroy();
    err.socket.destroy();
    throw e;
  } finally {
    if (c.pidfd >= 0) native.close(c.pidfd);
  }
  await Promise.all([out.done, err.done]);
  clearTimeout(timer);
  if (exit.code === 0 && !timedOut) return { stdout: out.text(), stderr: err.text() };
  const signal = exit.signal === null ? null : (SIGNAL_NAMES.get(exit.signal) ?? String(exit.signal));
  throw new CommandError(argv, exit.code, signal, out.text(), err.text(), timedOut);
}
