/**
 * The plugin's one request to the agent: a line of JSON over the agent's control socket (live/control.ts
 * speaks the same), one line back. Written here rather than imported so the plugin's start-up loads
 * nothing but `node:net`, and so it can tell "no agent" (try again later) from an agent's refusal.
 */
import { createConnection } from 'node:net';

/** The agent could not be reached, or did not answer in time. */
export class AgentUnreachable extends Error {
  override readonly name = 'AgentUnreachable';
}

/** Sends `req`; resolves with the reply object (whatever its `ok`), rejects with `AgentUnreachable`. */
export function askAgent(path: string, req: Record<string, unknown>, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((res, rej) => {
    const c = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      rej(new AgentUnreachable(`no answer from the seine agent at ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.once('connect', () => c.write(`${JSON.stringify(req)}\n`));
    c.on('data', (d: string) => {
      buf += d;
    });
    c.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      rej(
        new AgentUnreachable(
          e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? `no seine agent listening at ${path} (is it running?)` : `seine agent at ${path}: ${e.message}`,
        ),
      );
    });
    c.once('end', () => {
      clearTimeout(timer);
      try {
        res(JSON.parse(buf.split('\n')[0] ?? '') as Record<string, unknown>);
      } catch {
        rej(new AgentUnreachable(`the seine agent at ${path} closed the connection without an answer`));
      }
    });
  });
}
