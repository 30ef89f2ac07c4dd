/**
 * Waiting in the live world (labs, the agent's tools, benches, the CLI). Core code never waits: it is
 * handed the time. A negative wait is no wait (a deadline already past).
 */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
