/**
 * Waiting in the live world (labs, the agent's tools, benches, the CLI). Core code never waits: it is
 * handed the time. A negative wait is no wait (a deadline already past). With `unref` the wait does not
 * keep the process alive: a time limit raced against something else.
 */
export const sleep = (ms: number, opts?: { unref?: boolean }): Promise<void> =>
  new Promise((r) => {
    const t = setTimeout(r, Math.max(0, ms));
    if (opts?.unref === true) t.unref();
  });

/** The wall clock in nanoseconds (Node's performance.timeOrigin + now()): the clock captures and tools' outputs are compared on. */
export const epochNs = (): number => (performance.timeOrigin + performance.now()) * 1e6;
