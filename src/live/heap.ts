/**
 * What the agent's JavaScript heap took in allocations since it started: the figure behind "the live
 * path allocates nothing per packet". V8 has no running total of bytes allocated, so the meter keeps a
 * `GCProfiler` running and adds up, over every collection, what the heap had grown to before it since
 * the previous one left it (what was allocated in between, freed or not), plus the growth since the last
 * collection. Reading it stops and restarts the profiler (its statistics come only with `stop`), which
 * costs microseconds and is done once per `stats` request, not per packet.
 *
 * `seine bench live` divides the growth during a transfer by the frames the agent moved in it. A
 * constant background (timers, the control socket, metrics) is included; a per-packet allocation would
 * show as bytes per frame, a leak-free batch path as a fraction of a byte.
 */
import { GCProfiler } from 'node:v8';

export interface HeapReading {
  /** Bytes allocated on the JavaScript heap since the meter started. */
  allocatedBytes: number;
  /** Garbage collections since the meter started. */
  gcs: number;
  /** Bytes in use now. */
  usedBytes: number;
}

export class HeapMeter {
  private prof = new GCProfiler();
  private allocated = 0;
  private gcs = 0;
  /** Heap in use when the running profiler started, or after the last collection it saw. */
  private last: number;

  constructor() {
    this.last = process.memoryUsage().heapUsed;
    this.prof.start();
  }

  read(): HeapReading {
    const stats = this.prof.stop();
    const now = process.memoryUsage().heapUsed;
    this.prof = new GCProfiler();
    this.prof.start();
    for (const s of stats?.statistics ?? []) {
      this.allocated += Math.max(0, s.beforeGC.heapStatistics.usedHeapSize - this.last);
      this.last = s.afterGC.heapStatistics.usedHeapSize;
      this.gcs++;
    }
    this.allocated += Math.max(0, now - this.last);
    this.last = now;
    return { allocatedBytes: this.allocated, gcs: this.gcs, usedBytes: now };
  }

  stop(): void {
    this.prof.stop();
  }
}
