/**
 * When the shard workers are warm enough to be timed (see `calibration.ts`).
 *
 * Just after a pool starts, a worker runs the selection code interpreted or
 * half-compiled, several times slower than once V8 has optimized it, and a
 * thread piscina is still starting answers nothing at all: timed then, the
 * workers look as if they saved nothing, and the calibration chose the
 * 1,000,000 maximum. So before anything is timed, every worker runs the
 * probe on its own (`WarmUpTask`) round after round and reports its own time
 * for it, on its own clock (waking it, posting and the main thread's load
 * are not in it), until that time has stopped falling.
 *
 * A worker is warm once it has reported at least WARM_UP_WINDOW + 1 times
 * and the fastest of its last WARM_UP_WINDOW reports is no more than
 * WARM_UP_FALL below the fastest of those before: fastest, because a worker
 * the OS preempts only ever reports more, never less. The workers are warm
 * when the last round was answered by as many distinct workers as the pool
 * has (piscina hands tasks to ready threads only, so a thread still starting
 * shows up as one missing) and each of them is warm. Bounded: after
 * MAX_WARM_UP_ROUNDS the calibration times whatever state the workers are in.
 */
import type { WarmUpResult } from "./protocol";

/** Reports compared against the ones before them. */
export const WARM_UP_WINDOW = 3;
/** A fall in the fastest report smaller than this (a fraction) is no fall. */
export const WARM_UP_FALL = 0.1;
/** Rounds after which the workers are timed warm or not. */
export const MAX_WARM_UP_ROUNDS = 40;

export class WorkerWarmUp {
  private readonly workers: number;
  /** Each thread's reports, in order. */
  private readonly reports = new Map<number, number[]>();
  private lastRound: readonly number[] = [];
  private roundCount = 0;

  /** For a pool of `workers` workers (at least 1). */
  constructor(workers: number) {
    if (!(Number.isInteger(workers) && workers >= 1)) throw new RangeError(`WorkerWarmUp: workers must be a positive integer, got ${workers}`);
    this.workers = workers;
  }

  /** Rounds recorded. */
  get rounds(): number {
    return this.roundCount;
  }

  /** Records one round: the reports of the warm-up tasks posted together. A report that is not a time is left out. */
  record(round: readonly WarmUpResult[]): void {
    this.roundCount++;
    const threads: number[] = [];
    for (const { threadId, passNs } of round) {
      if (!(Number.isFinite(passNs) && passNs >= 0)) continue;
      let reports = this.reports.get(threadId);
      if (reports === undefined) this.reports.set(threadId, (reports = []));
      reports.push(passNs);
      if (!threads.includes(threadId)) threads.push(threadId);
    }
    this.lastRound = threads;
  }

  /** Whether every worker of the last round is warm, and there were as many as the pool has. */
  get warm(): boolean {
    return this.lastRound.length >= this.workers && this.lastRound.every((threadId) => isWarm(this.reports.get(threadId) ?? []));
  }

  /** Whether to post another round: not warm yet, and under MAX_WARM_UP_ROUNDS. */
  get again(): boolean {
    return !this.warm && this.roundCount < MAX_WARM_UP_ROUNDS;
  }

  /** The fastest report of the last round's slowest worker, ns (NaN before any). */
  get passNs(): number {
    let slowest = NaN;
    for (const threadId of this.lastRound) {
      const fastest = Math.min(...(this.reports.get(threadId) ?? []));
      if (!(fastest <= slowest)) slowest = fastest;
    }
    return slowest;
  }
}

/** One thread's reports have stopped falling (see the module comment). */
export function isWarm(reports: readonly number[]): boolean {
  if (reports.length < WARM_UP_WINDOW + 1) return false;
  const split = reports.length - WARM_UP_WINDOW;
  const before = Math.min(...reports.slice(0, split));
  const recent = Math.min(...reports.slice(split));
  return recent >= before * (1 - WARM_UP_FALL);
}
