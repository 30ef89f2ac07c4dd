/**
 * Output directories and files of the `seine` commands (`run --pcap DIR`, `bench live --out DIR`): made
 * and checked before the work starts, so a bad path is refused in seconds instead of losing a run; a
 * failure said in words, not as an errno code.
 */
import { closeSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fsErrorText } from '../live/fs.js';

/**
 * Makes `dir` and any missing parents, one level at a time. Not `mkdir(…, { recursive: true })`: on a
 * path under /proc it never returns (the kernel answers ENOENT for the child while the parent exists,
 * and the recursive walk retries forever). Returns null, or why it cannot be made, in words.
 */
export function makeDir(dir: string): string | null {
  const missing: string[] = [];
  let p = resolve(dir);
  // Bounded by the path's depth: each step goes one level up, and the root always exists.
  for (;;) {
    let st: ReturnType<typeof statSync> | undefined;
    try {
      st = statSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return fsErrorText(e);
    }
    if (st !== undefined) {
      if (!st.isDirectory()) return missing.length === 0 ? 'exists and is not a directory' : `'${p}' is a file, not a directory`;
      break;
    }
    missing.push(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  const target = resolve(dir);
  const where = (m: string): string => (m === target ? '' : `cannot make '${m}': `);
  for (const m of missing.reverse()) {
    try {
      mkdirSync(m);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOENT with the parent there: a file system that takes no new directories (/proc, /sys).
      if (code === 'ENOENT') return `${where(m)}the file system there takes no new directories`;
      if (code !== 'EEXIST') return `${where(m)}${fsErrorText(e)}`;
    }
  }
  return null;
}

/**
 * Output files opened before the work that fills them: each is created (empty) now, so that a directory
 * that takes no files (read-only, /proc, no permission) is refused before the run, and written once the
 * bytes exist.
 */
export class OutputFiles {
  private readonly fds: number[] = [];
  /** Throws the reason in words (and closes what it opened) when a file cannot be created. */
  constructor(readonly paths: readonly string[]) {
    for (const p of paths) {
      try {
        this.fds.push(openSync(p, 'w'));
      } catch (e) {
        this.close();
        throw new Error(`cannot create '${p}': ${fsErrorText(e)}`);
      }
    }
  }
  /** Writes each file's bytes and closes it; returns null, or the first failure in words. */
  write(bytes: (i: number) => Uint8Array): string | null {
    let failure: string | null = null;
    this.fds.forEach((fd, i) => {
      if (failure !== null) return;
      try {
        const b = bytes(i);
        for (let off = 0; off < b.length; ) off += writeSync(fd, b, off, b.length - off);
      } catch (e) {
        failure = `cannot write '${this.paths[i]}': ${fsErrorText(e)}`;
      }
    });
    this.close();
    return failure;
  }
  close(): void {
    for (const fd of this.fds.splice(0)) {
      try {
        closeSync(fd);
      } catch {
        // Already closed or never usable: nothing more to say than the failure reported.
      }
    }
  }
}
