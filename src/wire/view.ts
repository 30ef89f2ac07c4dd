/**
 * What every header view shares: a window at `off` into `bytes`, re-pointed with `at` so that a
 * datapath keeps one view per layer and allocates nothing per packet.
 */
import { EMPTY } from './bytes.js';

export class WireView {
  constructor(
    public bytes: Uint8Array = EMPTY,
    public off = 0,
  ) {}

  /** Re-points the view without allocating. */
  at(bytes: Uint8Array, off: number): this {
    this.bytes = bytes;
    this.off = off;
    return this;
  }
}
