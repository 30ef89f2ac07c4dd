/**
 * One request on the agent's control socket: a line of JSON out, the first line back parsed. Both the
 * CLI's control client (live/control.ts) and the CNI plugin (cni/client.ts) send it; it loads nothing
 * but `node:net`, so the plugin's start-up stays Node's. `fail` makes the error each caller throws when
 * the agent cannot be reached, does not answer in time, or answers with no readable line.
 */
import { createConnection } from 'node:net';

export function requestLine(path: string, req: object, timeoutMs: number, fail: (what: string) => Error): Promise<Record<string, unknown>> {
  return new Promise((res, rej) => {
    const c = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      rej(fail(`no answer from the seine agent at ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.once('connect', () => c.write(`${JSON.stringify(req)}\n`));
    c.on('data', (d: string) => {
      buf += d;
    });
    c.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      rej(
        fail(
          e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? `no seine agent listening at ${path} (is it running?)` : `seine agent at ${path}: ${e.message}`,
        ),
      );
    });
    c.once('end', () => {
      clearTimeout(timer);
      try {
        res(JSON.parse(buf.split('\n')[0] ?? '') as Record<string, unknown>);
      } catch {
        rej(fail(`the seine agent at ${path} sent no readable answer`));
      }
    });
  });
}
