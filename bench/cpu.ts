/**
 * CPU clocks for the benchmark (Linux; elsewhere they report NaN).
 *
 * - Process CPU: user + system time of every thread (getrusage via
 *   `process.cpuUsage()`). The kernel brings the calling thread's runtime up
 *   to date for this call, so it is exact to the microsecond.
 * - Main-thread CPU: process CPU minus the CPU of every other thread of the
 *   process (shard workers, V8's GC and compiler helpers, libuv), each read
 *   from /proc/self/task/<tid>/schedstat.
 *
 * Why not read the main thread's own /proc/thread-self/schedstat? The kernel
 * folds a *running* thread's time into that counter only at a scheduler tick
 * or a context switch, so reading it from the thread itself is up to a tick
 * (ms) stale, and forcing a context switch first (a short Atomics.wait) does
 * not reliably switch on a loaded machine. The other threads' counters are
 * exact while they sleep, which is nearly always at the moments we read them
 * (between ops); a thread running at that moment is at most one tick behind,
 * an error that averages out over many reads.
 *
 * Unlike wall time and `performance.eventLoopUtilization()` (which counts
 * every synchronous stretch, Atomics.wait included, as busy), main-thread CPU
 * does not advance while the main thread sleeps in Atomics.wait or is
 * preempted by other processes.
 */
import { closeSync, openSync, readdirSync, readSync } from "node:fs";

const buf = Buffer.alloc(128);

function readSchedstat(fd: number): number {
  let len: number;
  try {
    len = readSync(fd, buf, 0, buf.length, 0);
  } catch {
    return NaN; // the thread exited
  }
  let value = 0;
  let i = 0;
  for (; i < len; i++) {
    const c = buf[i];
    if (c < 48 || c > 57) break;
    value = value * 10 + (c - 48);
  }
  return i === 0 ? NaN : value;
}

/** User + system nanoseconds of the whole process (all threads). */
export function processCpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

export interface CpuSample {
  /** All threads, ns. */
  readonly process: number;
  /** Main thread, ns (NaN where /proc is unavailable). */
  readonly main: number;
  /**
   * Threads that did not exist at `markBaseline()` (in the sharded runner:
   * the shard workers), ns; 0 without a baseline, NaN where /proc is unavailable.
   */
  readonly added: number;
}

/** Thread ids of this process, the main thread included (empty where /proc is unavailable). */
export function threadIds(): string[] {
  try {
    return readdirSync("/proc/self/task");
  } catch {
    return [];
  }
}

/** Samples process and main-thread CPU; `refresh()` picks up threads started since. */
export class CpuClock {
  private fds: number[] = [];
  /** Last good reading per thread, used if a thread exits between reads. */
  private last: number[] = [];
  /** Per fd: whether its thread started after the baseline. */
  private isAdded: boolean[] = [];
  private baseline: Set<string> | undefined;
  private available = true;

  /**
   * Remembers the threads alive now; threads that appear later (and are
   * picked up by `refresh()`) are reported apart as `added`. Node names every
   * thread "node", so starting the shard workers after the baseline is the
   * only way to tell them from V8's and libuv's helper threads.
   */
  markBaseline(): void {
    this.baseline = new Set(threadIds());
    this.refresh();
  }

  /** Threads started since the baseline that are still alive. */
  get addedThreadCount(): number {
    return this.isAdded.filter((x) => x).length;
  }

  constructor() {
    this.refresh();
  }

  /** Re-lists the process's threads (all but the main one). */
  refresh(): void {
    for (const fd of this.fds) closeSync(fd);
    this.fds = [];
    this.last = [];
    this.isAdded = [];
    try {
      const main = String(process.pid);
      for (const tid of readdirSync("/proc/self/task")) {
        if (tid === main) continue;
        try {
          const fd = openSync(`/proc/self/task/${tid}/schedstat`, "r");
          this.fds.push(fd);
          this.last.push(readSchedstat(fd));
          this.isAdded.push(this.baseline !== undefined && !this.baseline.has(tid));
        } catch {
          // the thread exited meanwhile
        }
      }
      this.available = this.fds.length > 0 && this.last.every((x) => !Number.isNaN(x));
    } catch {
      this.available = false;
    }
  }

  get threadCount(): number {
    return this.fds.length + 1;
  }

  get mainThreadAvailable(): boolean {
    return this.available;
  }

  sample(): CpuSample {
    const processNs = processCpuNs();
    if (!this.available) return { process: processNs, main: NaN, added: NaN };
    let others = 0;
    let added = 0;
    for (let i = 0; i < this.fds.length; i++) {
      const value = readSchedstat(this.fds[i]);
      if (!Number.isNaN(value)) this.last[i] = value;
      others += this.last[i];
      if (this.isAdded[i]) added += this.last[i];
    }
    return { process: processNs, main: processNs - others, added };
  }
}
