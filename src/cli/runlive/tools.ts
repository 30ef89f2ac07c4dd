/**
 * `seine run --live`'s processes and clocks: the tools it starts inside the lab's namespaces, each with a
 * time limit (recorded by the lab, so that `lab down` stops any left over), and the clocks their
 * outputs are compared on.
 */
import type { ChildProcess, StdioOptions } from 'node:child_process';
import type { LabHandle } from '../../live/lab/index.js';
import { epochNs } from '../../live/sleep.js';

/**
 * This machine's wall clock less its monotonic clock (ns): turns a CLOCK_MONOTONIC time (iperf3's
 * datagram stamps) into one comparable with the agents' capture times (the wall clock, as Node's
 * performance.timeOrigin + now(), like ours). Both clocks are shared by every namespace.
 */
export const MONO_TO_EPOCH_NS = epochNs() - Number(process.hrtime.bigint());

export interface ToolResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Could not be started at all. */
  spawnError: string | null;
}

export interface Started {
  child: ChildProcess | null;
  result: Promise<ToolResult>;
}

/** Starts tools inside the lab's namespaces (recorded by the lab, so `lab down` stops leftovers), each with a time limit. */
export class Tools {
  private readonly running = new Set<ChildProcess>();
  aborted = false;

  constructor(private readonly lab: LabHandle) {}

  start(
    ns: string,
    argv: string[],
    o: { role: string; node: string | null; timeoutMs: number; soft?: NodeJS.Signals; onStdout?: (chunk: string) => void },
  ): Started {
    if (this.aborted)
      return {
        child: null,
        result: Promise.resolve({ code: null, signal: null, stdout: '', stderr: '', timedOut: false, spawnError: 'the run was interrupted' }),
      };
    let child: ChildProcess;
    try {
      const stdio: StdioOptions = ['ignore', 'pipe', 'pipe'];
      child = this.lab.spawn(ns, argv, { role: o.role, node: o.node, stdio }).child;
    } catch (e) {
      return { child: null, result: Promise.resolve({ code: null, signal: null, stdout: '', stderr: '', timedOut: false, spawnError: (e as Error).message }) };
    }
    this.running.add(child);
    let stdout = '',
      stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      o.onStdout?.(d);
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    let timedOut = false;
    const kill = (sig: NodeJS.Signals): void => {
      try {
        child.kill(sig);
      } catch {
        /* gone */
      }
    };
    const timer = setTimeout(
      () => {
        timedOut = true;
        if (o.soft !== undefined) {
          kill(o.soft);
          setTimeout(() => kill('SIGKILL'), 1000).unref();
        } else kill('SIGKILL');
      },
      Math.max(1, o.timeoutMs),
    );
    const result = new Promise<ToolResult>((res) => {
      child.once('error', (e) => {
        clearTimeout(timer);
        this.running.delete(child);
        res({ code: null, signal: null, stdout, stderr, timedOut, spawnError: e.message });
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        this.running.delete(child);
        res({ code, signal, stdout, stderr, timedOut, spawnError: null });
      });
    });
    return { child, result };
  }

  run(ns: string, argv: string[], o: { role: string; node: string | null; timeoutMs: number; soft?: NodeJS.Signals }): Promise<ToolResult> {
    return this.start(ns, argv, o).result;
  }

  /** Stops every tool still running (an interrupted run). */
  killAll(): void {
    this.aborted = true;
    for (const c of this.running) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

export function toolProblem(what: string, r: ToolResult): string {
  if (r.spawnError !== null) return `${what} could not run: ${r.spawnError}`;
  const said = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-2).join(' / ').slice(0, 300);
  return `${what} ${r.timedOut ? 'reached its time limit' : r.signal !== null ? `was killed by ${r.signal}` : `exited with status ${r.code}`}${said !== '' ? `: ${said}` : ''}`;
}
