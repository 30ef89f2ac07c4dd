/**
 * Writes every catalogue frame to a pcapng (interface "catalogue", 1 ms apart) — the sample capture
 * the README decodes: `node dist/test/peers/write-catalogue.js scenarios/captures/catalogue.pcapng`.
 */
import { FileSink, PcapngWriter } from '../../src/capture/index.js';
import { compose } from '../../src/wire/stack.js';
import { CATALOGUE } from './catalogue.js';

export function writeCatalogue(path: string): number {
  const sink = new FileSink(path);
  const w = new PcapngWriter((c) => sink.write(c));
  const ifx = w.addInterface('catalogue');
  CATALOGUE.forEach((f, i) => w.writePacket(ifx, 1_700_000_000_000_000_000n + BigInt(i) * 1_000_000n, compose(f.layers)));
  sink.close();
  return CATALOGUE.length;
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\/dist\//, '/dist/'))) {
  const path = process.argv[2];
  if (path === undefined) {
    process.stderr.write('usage: write-catalogue.js <out.pcapng>\n');
    process.exit(2);
  }
  process.stdout.write(`wrote ${writeCatalogue(path)} frames to ${path}\n`);
}
