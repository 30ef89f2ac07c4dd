/**
 * File-system helpers for every layer that writes files (live/, cli/): a failure said in words, not as an
 * errno code, and a file replaced whole.
 */
import { chmodSync, rmSync, writeFileSync, renameSync } from 'node:fs';

/** Why a file-system call failed, in words (the path is the caller's to name). */
export function fsErrorText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EEXIST':
      return 'exists and is not a directory';
    case 'ENOTDIR':
      return 'a part of the path is a file, not a directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EDQUOT':
      return 'over the disk quota';
    case 'EISDIR':
      return 'is a directory';
    case 'ENAMETOOLONG':
      return 'the path is too long';
    default:
      return err.message ?? String(e);
  }
}

/** A file `writeFileAtomic` could not write: `why` in words (fsErrorText). */
export class FileWriteError extends Error {
  override readonly name = 'FileWriteError';
  constructor(
    readonly file: string,
    readonly why: string,
  ) {
    super(`cannot write '${file}': ${why}`);
  }
}

export interface AtomicWriteOptions {
  /** The file's mode, exactly (set after the write: the umask does not narrow it). Default: 0o666 less the umask. */
  mode?: number;
  /** Reads the written temporary file before it replaces `file`, and refuses it by throwing. */
  check?: (tmp: string) => void;
}

/**
 * Replaces `file` whole: writes `data` into a temporary file beside it (a rename is atomic only within
 * one file system), then renames that over `file`, so a reader finds the old file or the new one, never
 * half of one. On any failure the temporary file is removed: a file-system failure is thrown as a
 * `FileWriteError`, what `check` throws goes on as it is.
 *
 * No fsync: the rename is atomic against a process that dies, not against a power cut (where the new
 * name may come back with no data). No caller needs more: each says why where it calls this.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): void {
  const tmp = `${file}.${process.pid}.tmp`;
  let checking = false;
  try {
    // writeFileSync loops until every byte is written (one writeSync may write fewer).
    writeFileSync(tmp, data, opts.mode !== undefined ? { mode: opts.mode } : {});
    if (opts.mode !== undefined) chmodSync(tmp, opts.mode);
    if (opts.check !== undefined) {
      checking = true;
      opts.check(tmp);
      checking = false;
    }
    renameSync(tmp, file);
  } catch (e) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // Not ours to remove (a directory of that name was there first): the failure below says enough.
    }
    if (checking) throw e;
    throw new FileWriteError(file, fsErrorText(e));
  }
}
