/**
 * A page checked in a real browser: Debian's headless Chromium loads a file and reports what went wrong
 * in it — console errors, uncaught exceptions, log errors, and every request other than the page itself
 * (a self-contained page makes none) — and takes a screenshot.
 *
 * Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: it reads commands
 * on fd 3 and writes on fd 4, NUL-terminated JSON), which needs no WebSocket (Node 20 has none built in)
 * and no port. Every wait is bounded; on any failure the browser's process group is killed.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inflateSync } from 'node:zlib';
import type { Readable, Writable } from 'node:stream';

export const CHROMIUM = '/usr/bin/chromium';
export const haveChromium = existsSync(CHROMIUM);

export interface PageCheck {
  /** Console errors, uncaught exceptions and error log entries, as text. */
  errors: string[];
  /** URLs requested other than the page's own. */
  requests: string[];
  /** The values of the expressions asked for, evaluated after the load event. */
  values: unknown[];
  png: Buffer;
}

type Msg = {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
};

/** Loads `file` in headless Chromium at `width`×`height`, evaluates `exprs`, takes a screenshot. */
export async function checkPage(file: string, exprs: string[] = [], opts: { width?: number; height?: number; timeoutMs?: number } = {}): Promise<PageCheck> {
  return (await checkPages([file], exprs, opts))[0]!;
}

/** `checkPage` for several files, one after the other in one browser (what each page did is its own). */
export async function checkPages(
  files: string[],
  exprs: string[] = [],
  opts: { width?: number; height?: number; timeoutMs?: number } = {},
): Promise<PageCheck[]> {
  const width = opts.width ?? 1280,
    height = opts.height ?? 2400;
  const dir = mkdtempSync(join(tmpdir(), 'seine-chromium-'));
  const child = spawn(
    CHROMIUM,
    [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      `--user-data-dir=${dir}`,
      '--remote-debugging-pipe',
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-extensions',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--window-size=${width},${height}`,
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], detached: true },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 20000) stderr += d.toString();
  });
  const toChrome = child.stdio[3] as Writable;
  const fromChrome = child.stdio[4] as Readable;
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const pending = new Map<number, { res: (m: Msg) => void; rej: (e: Error) => void }>();
  const listeners: Array<(m: Msg) => void> = [];
  let buf = '';
  fromChrome.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    for (let i = buf.indexOf('\0'); i >= 0; i = buf.indexOf('\0')) {
      const m = JSON.parse(buf.slice(0, i)) as Msg;
      buf = buf.slice(i + 1);
      if (m.id !== undefined) {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (m.error !== undefined) p?.rej(new Error(m.error.message));
        else p?.res(m);
      } else for (const l of listeners) l(m);
    }
  });
  let next = 1;
  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Msg> =>
    new Promise((res, rej) => {
      const id = next++;
      pending.set(id, { res, rej });
      toChrome.write(JSON.stringify({ id, method, params, ...(sessionId !== undefined ? { sessionId } : {}) }) + '\0');
    });
  const kill = (): void => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`chromium: no answer within ${timeoutMs} ms; its stderr:\n${stderr.slice(-3000)}`)), timeoutMs);
  });
  const early = exited.then(() => {
    throw new Error(`chromium exited early; its stderr:\n${stderr.slice(-3000)}`);
  });
  let url = '';
  let errors: string[] = [];
  let requests: string[] = [];
  let loaded: () => void = () => {};
  const work = async (): Promise<PageCheck[]> => {
    const { result: created } = await send('Target.createTarget', { url: 'about:blank' });
    const { result: attached } = await send('Target.attachToTarget', { targetId: created!.targetId, flatten: true });
    const sid = attached!.sessionId as string;
    listeners.push((m) => {
      if (m.sessionId !== sid) return;
      const p = m.params ?? {};
      if (m.method === 'Runtime.exceptionThrown') {
        const d = p.exceptionDetails as { text?: string; exception?: { description?: string } };
        errors.push(`exception: ${d.exception?.description ?? d.text ?? '?'}`);
      } else if (m.method === 'Runtime.consoleAPICalled' && (p.type === 'error' || p.type === 'assert')) {
        const args = (p.args as Array<{ value?: unknown; description?: string }>).map((a) => String(a.value ?? a.description ?? ''));
        errors.push(`console.${String(p.type)}: ${args.join(' ')}`);
      } else if (m.method === 'Log.entryAdded') {
        const e = p.entry as { level: string; text: string; url?: string };
        if (e.level === 'error') errors.push(`log: ${e.text}${e.url !== undefined ? ` (${e.url})` : ''}`);
      } else if (m.method === 'Network.requestWillBeSent') {
        const r = (p.request as { url: string }).url;
        if (r !== url && !r.startsWith('data:') && r !== 'about:blank') requests.push(r);
      } else if (m.method === 'Page.loadEventFired') loaded();
    });
    for (const d of ['Runtime.enable', 'Log.enable', 'Network.enable', 'Page.enable']) await send(d, {}, sid);
    await send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false }, sid);
    const out: PageCheck[] = [];
    for (const file of files) {
      url = pathToFileURL(file).href;
      errors = [];
      requests = [];
      const load = new Promise<void>((res) => {
        loaded = res;
      });
      await send('Page.navigate', { url }, sid);
      await load;
      const values: unknown[] = [];
      for (const expression of exprs) {
        const { result } = await send('Runtime.evaluate', { expression, returnByValue: true }, sid);
        const r = result as { result: { value?: unknown }; exceptionDetails?: { text: string } };
        if (r.exceptionDetails !== undefined) throw new Error(`${file}: evaluating ${expression}: ${r.exceptionDetails.text}`);
        values.push(r.result.value);
      }
      const { result: shot } = await send('Page.captureScreenshot', { format: 'png' }, sid);
      out.push({ errors, requests, values, png: Buffer.from(shot!.data as string, 'base64') });
    }
    await send('Browser.close');
    return out;
  };
  try {
    const r = await Promise.race([work(), timeout, early]);
    await Promise.race([exited, new Promise((res) => setTimeout(res, 5000))]);
    return r;
  } finally {
    clearTimeout(timer);
    kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What a PNG's pixels hold: its size, distinct colours, and the fraction of pixels that are not (near) white. */
export function pngStats(png: Buffer): { width: number; height: number; colours: number; nonWhite: number } {
  if (png.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let off = 8;
  let width = 0,
    height = 0,
    depth = 0,
    type = 0;
  const idat: Buffer[] = [];
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const kind = png.toString('latin1', off + 4, off + 8);
    const body = png.subarray(off + 8, off + 8 + len);
    if (kind === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      depth = body[8]!;
      type = body[9]!;
      if (body[12] !== 0) throw new Error('interlaced PNG');
    } else if (kind === 'IDAT') idat.push(body);
    else if (kind === 'IEND') break;
    off += 12 + len;
  }
  const bpp = type === 6 ? 4 : type === 2 ? 3 : 0;
  if (depth !== 8 || bpp === 0) throw new Error(`PNG colour type ${type} depth ${depth} not handled`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const cur = Buffer.alloc(stride),
    prev = Buffer.alloc(stride);
  const colours = new Set<number>();
  let nonWhite = 0;
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? cur[i - bpp]! : 0;
      const b = prev[i]!;
      const c = i >= bpp ? prev[i - bpp]! : 0;
      let v = line[i]!;
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a),
          pb = Math.abs(p - b),
          pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      cur[i] = v & 0xff;
    }
    for (let x = 0; x < width; x++) {
      const r = cur[x * bpp]!,
        g = cur[x * bpp + 1]!,
        b = cur[x * bpp + 2]!;
      colours.add((r << 16) | (g << 8) | b);
      if (r < 240 || g < 240 || b < 240) nonWhite++;
    }
    cur.copy(prev);
  }
  return { width, height, colours: colours.size, nonWhite: nonWhite / (width * height) };
}
