/**
 * The agent's CNI attachments on disk: one JSON file, rewritten whole on every change through a
 * temporary file and a rename, so an agent that dies at any point leaves the old file or the new one,
 * never half of one. A restarted agent reads it and plugs its pods in again (their TAPs are persistent);
 * DEL and GC of a pod from before the restart find what to release (its IPAM configuration and CNI_PATH
 * are kept with it).
 *
 * No fsync: what the file describes — TAPs inside pod namespaces — lives in the kernel and does not
 * outlive the machine, so the file has to survive the agent, which the page cache does, not a power cut.
 * After one, the pods it names are gone with their namespaces (the runtime DELs or GCs them) and a file
 * left unreadable is set aside by `CniService.restore`. Two fsyncs cost every ADD and DEL 2-16 ms here
 * (the bench's cni.add.seq.agent.save), more than the rest of the agent's own work.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CniResult } from './cni-spec.js';
import { writeFileAtomic } from './fs.js';

export interface CniAttachment {
  containerId: string;
  ifname: string;
  /** CNI_NETNS at ADD. */
  netns: string;
  /** The network's name (GC is per network). */
  network: string;
  /** The bridge port (a pod of the node). */
  port: string;
  mac: string;
  mtu: number;
  ip4: string | null;
  ip6: string | null;
  /** The network configuration and CNI_PATH and CNI_ARGS of the ADD: DEL after a restart releases the address with them. */
  config: Record<string, unknown>;
  path: string;
  args: string;
  result: CniResult;
}

const FILE = 'attachments.json';
const FORMAT = 1;

/** The file of the attachments in `dir`. */
export function attachmentsFile(dir: string): string {
  return join(dir, FILE);
}

/** Reads the attachments kept in `dir` (none when there is no file yet). */
export function loadAttachments(dir: string): CniAttachment[] {
  let text: string;
  try {
    text = readFileSync(attachmentsFile(dir), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const doc = JSON.parse(text) as { format?: unknown; attachments?: unknown };
  if (doc.format !== FORMAT || !Array.isArray(doc.attachments)) throw new Error(`${attachmentsFile(dir)}: not a seine attachments file (format ${FORMAT})`);
  return doc.attachments as CniAttachment[];
}

/** Writes the attachments atomically (a temporary file, then a rename over the old one; no fsync: see above). */
export function saveAttachments(dir: string, list: readonly CniAttachment[]): void {
  const file = attachmentsFile(dir);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileAtomic(file, `${JSON.stringify({ format: FORMAT, attachments: list }, null, 1)}\n`, { mode: 0o600 });
}
