/**
 * Reading a file a scenario names (the scenario itself, a `replay:` capture) without trusting it to be a
 * file: the path is opened once, non-blocking (opening a FIFO for reading otherwise waits for a writer, for
 * ever), its type and size are taken with `fstat` on that descriptor (not a `stat` of the path, which another
 * process could swap between the check and the read), and at most `maxBytes` are read. A FIFO, a device
 * (`/dev/zero` never ends), a socket or a directory is refused before a byte is read.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';

/** Why a file was not read: `what` completes "expected a readable … file, got <what>". */
export class FileRefused extends Error {
  constructor(readonly what: string) {
    super(what);
    this.name = 'FileRefused';
  }
}

function kind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** The bytes of the regular file at `path`, at most `maxBytes` of them; anything else throws `FileRefused`. */
export function readRegularFile(path: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e: unknown) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new FileRefused(
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a directory' : code === 'EACCES' ? 'a file it may not read (EACCES)' : code,
    );
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FileRefused(kind(st));
    if (st.size > maxBytes) throw new FileRefused(`${st.size} bytes (at most ${maxBytes} are read)`);
    // One byte more than fstat said: a file that grows while it is read shows it.
    const buf = Buffer.allocUnsafe(st.size + 1);
    let n = 0;
    for (let k = 1; k > 0 && n < buf.length; n += k) k = readSync(fd, buf, n, buf.length - n, null);
    if (n > st.size) throw new FileRefused('a file that grew while it was read');
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}
