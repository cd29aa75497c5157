/**
 * The worker pool behind one `createAdapter()` result, shared by every
 * namespace that uses it. It owns the piscina pool and runs the cooperative
 * answer of big queries described in `protocol.ts`.
 */
import { join } from "node:path";
import type { Worker } from "node:worker_threads";
import createDebug from "debug";
import { Piscina } from "piscina";
import { calibrateOffload, UNCALIBRATED_THRESHOLD, type Calibration, type CalibrationPool } from "./calibration";
import type { ResolvedOptions } from "./options";
import {
  claimShard,
  CONTROL_DONE,
  CONTROL_LENGTH,
  markShardDone,
  nextSeq,
  resetControl,
  type CollectTask,
  type CollectTaskResult,
  type CooperativeTables,
  type ReadyTask,
  type WarmUpResult,
  type WarmUpTask,
} from "./protocol";
import { mergeAscending, type RecipientQuery } from "./shared-tables";

const debug = createDebug("socket.io-sharded-adapter:pool");

const WORKER_FILE = join(__dirname, "..", "workers", "shard-worker.js");

/** This many worker failures within FAILURE_WINDOW_MS put the pool in degraded mode. */
const FAILURE_LIMIT = 3;
const FAILURE_WINDOW_MS = 10_000;
/** How long a degraded pool answers everything on the main thread before trying workers again. */
const DEGRADED_COOLDOWN_MS = 30_000;
/** Collect tasks that may be posted to one worker before its earlier replies are read. */
const TASKS_IN_FLIGHT_PER_WORKER = 16;
/** Delay after a worker failure before checking that the pool is back to full strength. */
const HEALTH_CHECK_DELAY_MS = 500;
/**
 * Calibrations after the one at pool start, each this long after the one
 * before ended. At start the cores are often busy with the process's own
 * start-up, and the workers then seem to save nothing (measured: the start
 * value at the 1,000,000 maximum in 8 of 10 bench cells, the same
 * calibration a little later within 2x of the crossover in 7 of 8): the
 * threshold in effect is the median of all of them (see medianThreshold).
 */
export const FOLLOW_UP_CALIBRATIONS = 2;
export const FOLLOW_UP_DELAY_MS = 1_000;

/** Counters of one pool, for `adapter.stats()`. */
export interface PoolStats {
  readonly workers: number;
  /** Queries offered to the workers (answered cooperatively; the main thread takes the shards no worker claims). */
  readonly offloaded: number;
  /** Shards answered by a worker (the rest were taken by the main thread). */
  readonly shardsByWorkers: number;
  /** Queries the main thread had to recompute because a worker did not answer in time. */
  readonly timeouts: number;
  /** Workers that threw, exited or were killed (each replaced by a new one). */
  readonly workerFailures: number;
  /**
   * True while the pool answers every query on the main thread because
   * workers failed FAILURE_LIMIT times within FAILURE_WINDOW_MS.
   */
  readonly degraded: boolean;
  /** The offloadThreshold in effect: the option if given, else calibrated (see `calibration.ts`). */
  readonly offloadThreshold: number;
  /** What the latest of the pool's calibrations measured; undefined until one has run, or when the option was given. */
  readonly calibration: Calibration | undefined;
  /** The threshold each calibration so far chose, in order; the one in effect is their median. */
  readonly calibratedThresholds: readonly number[];
  /** True while calibrations are still to come (the one at start, then FOLLOW_UP_CALIBRATIONS more). */
  readonly calibrating: boolean;
}

/** The median of the calibrated thresholds; of two, the lower (the one that lets the workers help sooner). */
export function medianThreshold(thresholds: readonly number[]): number | undefined {
  if (thresholds.length === 0) return undefined;
  const sorted = [...thresholds].sort((a, b) => a - b);
  return sorted[(sorted.length - 1) >> 1];
}

export class ShardPool {
  readonly shardCount: number;
  private readonly options: ResolvedOptions;
  private piscina: Piscina | undefined;
  private users = 0;
  private closing: Promise<void> | undefined;
  private healthCheck: NodeJS.Timeout | undefined;
  private readonly watched = new WeakSet<Worker>();
  private readonly retired = new WeakSet<Worker>();

  private seq = 0;
  private control = new Int32Array(new SharedArrayBuffer(CONTROL_LENGTH * 4));
  private results = new Int32Array(new SharedArrayBuffer(4));

  private offloaded = 0;
  private shardsByWorkers = 0;
  private timeouts = 0;
  private workerFailures = 0;
  private recentFailures: number[] = [];
  private degradedUntil = 0;
  private calibration: Calibration | undefined;
  private calibrationStarted = false;
  private readonly calibratedThresholds: number[] = [];
  /** medianThreshold of calibratedThresholds, kept as they come: read on every broadcast, where a sort each time cost 0.3-0.5 µs. */
  private calibratedThreshold: number | undefined;
  private calibrating = false;
  private followUpCalibration: NodeJS.Timeout | undefined;

  constructor(options: ResolvedOptions) {
    this.options = options;
    // One share per worker plus one the main thread takes as soon as it has
    // posted the tasks, so that even a single worker splits the work.
    this.shardCount = options.workers + 1;
  }

  /** Registers one adapter; the first one starts the workers. */
  acquire(): void {
    this.users++;
    if (this.piscina === undefined) {
      this.piscina = this.startPiscina();
      debug("started %d workers", this.options.workers);
      if (this.options.offloadThreshold === undefined && !this.calibrationStarted) {
        this.calibrationStarted = true;
        this.startCalibration(this.piscina, FOLLOW_UP_CALIBRATIONS);
      }
    }
  }

  /**
   * Broadcasts (and except-filters) visiting at least this many memberships
   * are offered to the workers: the option when given, else the calibrated
   * value, else (until calibration ends) UNCALIBRATED_THRESHOLD.
   */
  get offloadThreshold(): number {
    return this.options.offloadThreshold ?? this.calibratedThreshold ?? UNCALIBRATED_THRESHOLD;
  }

  /** Runs a calibration in the background, then `followUps` more, FOLLOW_UP_DELAY_MS apart. */
  private startCalibration(piscina: Piscina, followUps: number): void {
    this.calibrating = true;
    this.calibrate(piscina)
      .then((done) => {
        if (done && followUps > 0 && this.piscina === piscina) {
          this.followUpCalibration = setTimeout(() => {
            this.followUpCalibration = undefined;
            this.startCalibration(piscina, followUps - 1);
          }, FOLLOW_UP_DELAY_MS).unref();
        } else {
          this.calibrating = false;
        }
      })
      .catch((err: unknown) => {
        this.calibrating = false;
        // A pool released mid-calibration (close()) rejects its tasks: the next pool calibrates, unless one already ended.
        this.calibrationStarted = this.calibratedThresholds.length > 0;
        debug("calibration failed, offloadThreshold stays %d: %O", this.offloadThreshold, err);
      });
  }

  /**
   * Times broadcasts on the main thread alone and with the workers, and adds
   * the threshold they give to those the one in effect is the median of
   * (see `calibration.ts`). Runs in the background, an event-loop turn
   * between probes; broadcasts meanwhile use the threshold in effect
   * (UNCALIBRATED_THRESHOLD before the first). False if the pool stopped.
   */
  private async calibrate(piscina: Piscina): Promise<boolean> {
    const calibration = await this.measureOffload(piscina, false);
    if (calibration === undefined) {
      this.calibrationStarted = this.calibratedThresholds.length > 0; // released meanwhile: the next pool calibrates
      return false;
    }
    this.calibration = calibration;
    this.calibratedThresholds.push(calibration.threshold);
    this.calibratedThreshold = medianThreshold(this.calibratedThresholds);
    debug(
      "calibrated: asking the workers costs %d µs, %s ns per membership alone, %s with the workers (a warm worker's own: %s, warm after %d rounds: %s): %d; offloadThreshold %d, the median of %j (main thread busy %s ms, at most %s ms at once)",
      Math.round(calibration.offloadCostNs / 1e3),
      calibration.aloneNsPerMembership.toFixed(1),
      calibration.offloadedNsPerMembership.toFixed(1),
      calibration.workerNsPerMembership.toFixed(1),
      calibration.warmUpRounds,
      calibration.workersWarm,
      calibration.threshold,
      this.offloadThreshold,
      this.calibratedThresholds,
      (calibration.mainThreadNs / 1e6).toFixed(1),
      (calibration.longestBlockNs / 1e6).toFixed(2),
    );
    return true;
  }

  /**
   * Runs the calibration's measurement again now, on a live pool, without
   * changing the threshold in effect (the bench compares it with the
   * crossover it measures); its probes count as offloaded queries.
   * Undefined when the pool is stopped.
   */
  async recalibrate(): Promise<Calibration | undefined> {
    return this.piscina === undefined ? undefined : this.measureOffload(this.piscina, true);
  }

  /** The calibration's measurement on `piscina`'s workers (see `calibration.ts`); `counted`: its probes in the statistics. */
  private async measureOffload(piscina: Piscina, counted: boolean): Promise<Calibration | undefined> {
    const ready: ReadyTask = { ready: true };
    await Promise.all(Array.from({ length: this.options.workers }, () => piscina.run(ready)));
    const resultsBefore = this.results.length;
    const hooks: CalibrationPool = {
      cooperate: (tables, query, out) => this.cooperate(tables, query, out, counted),
      warmUpWorkers: (tables, query, passes) => {
        const task: WarmUpTask = { warmUp: true, tables: tables.tables, everyone: query.everyone, rooms: query.rooms, except: query.except, slotHighWater: query.slotHighWater, passes };
        return Promise.all(Array.from({ length: this.options.workers }, (): Promise<WarmUpResult> => piscina.run(task)));
      },
      live: () => this.piscina === piscina,
    };
    const calibration = await calibrateOffload(this.shardCount, hooks);
    // The probes' result buffers are bigger than a small namespace needs: the next query grows them again if it must.
    if (this.results.length > resultsBefore) this.results = new Int32Array(new SharedArrayBuffer(resultsBefore * 4));
    return calibration;
  }

  private startPiscina(): Piscina {
    const piscina = new Piscina({
      filename: WORKER_FILE,
      minThreads: this.options.workers,
      maxThreads: this.options.workers,
      // A task counts as running until its reply is processed on the main
      // thread's event loop, which a synchronous burst of broadcasts never
      // reaches; with one task per worker, only the burst's first broadcast
      // would find a worker free. Workers run tasks one at a time anyway.
      concurrentTasksPerWorker: TASKS_IN_FLIGHT_PER_WORKER,
      idleTimeout: Infinity,
      resourceLimits: this.options.resourceLimits,
    });
    piscina.on("error", (err: unknown) => debug("worker error: %O", err));
    piscina.on("workerCreate", () => this.watchThreads(piscina));
    this.watchThreads(piscina);
    return piscina;
  }

  /**
   * Watches each worker thread's exit: one that we did not stop is a failure.
   * (piscina's own events miss a worker that dies before it is ready.)
   */
  private watchThreads(piscina: Piscina): void {
    for (const worker of piscina.threads) {
      if (this.watched.has(worker)) continue;
      this.watched.add(worker);
      worker.once("exit", (code: number) => {
        if (this.retired.has(worker)) return;
        this.onWorkerFailure(code);
        // piscina starts its replacement before this listener runs.
        if (this.piscina !== undefined) this.watchThreads(this.piscina);
        this.scheduleHealthCheck();
      });
    }
  }

  /** Stops a pool on purpose: the exits of its threads are not failures. */
  private retire(piscina: Piscina): Promise<void> {
    for (const worker of piscina.threads) this.retired.add(worker);
    return piscina.destroy();
  }

  /**
   * piscina stops replacing workers for good once one dies before it is
   * ready. Membership does not live in the pool, so a pool left short of
   * workers is simply swapped for a fresh one.
   */
  private scheduleHealthCheck(): void {
    if (this.healthCheck !== undefined) return;
    this.healthCheck = setTimeout(() => {
      this.healthCheck = undefined;
      const piscina = this.piscina;
      if (piscina === undefined || piscina.threads.length >= this.options.workers) return;
      debug("the pool is short of workers (%d of %d); starting a fresh pool", piscina.threads.length, this.options.workers);
      this.piscina = this.startPiscina();
      this.retire(piscina).catch((err: unknown) => debug("destroying the old pool: %O", err));
    }, HEALTH_CHECK_DELAY_MS);
    this.healthCheck.unref();
  }

  /** Unregisters one adapter; the last one stops the workers. */
  release(): Promise<void> {
    this.users = Math.max(0, this.users - 1);
    if (this.users > 0 || this.piscina === undefined) return this.closing ?? Promise.resolve();
    const piscina = this.piscina;
    this.piscina = undefined;
    clearTimeout(this.healthCheck);
    this.healthCheck = undefined;
    clearTimeout(this.followUpCalibration);
    this.followUpCalibration = undefined;
    this.calibrating = false;
    debug("stopping workers");
    this.closing = this.retire(piscina).then(() => {
      this.closing = undefined;
    });
    return this.closing;
  }

  /** Whether workers exist to share a query with, and have not been failing. */
  get running(): boolean {
    return this.piscina !== undefined && !this.isDegraded(performance.now());
  }

  /** The live worker threads (empty when the pool is stopped). */
  workerThreads(): readonly Worker[] {
    if (this.piscina === undefined) return [];
    this.watchThreads(this.piscina);
    return this.piscina.threads;
  }

  stats(): PoolStats {
    return {
      workers: this.piscina?.threads.length ?? 0,
      offloaded: this.offloaded,
      shardsByWorkers: this.shardsByWorkers,
      timeouts: this.timeouts,
      workerFailures: this.workerFailures,
      degraded: this.isDegraded(performance.now()),
      offloadThreshold: this.offloadThreshold,
      calibration: this.calibration,
      calibratedThresholds: [...this.calibratedThresholds],
      calibrating: this.calibrating,
    };
  }

  /** A worker exited while the pool was live: count it, log it once, maybe degrade. */
  private onWorkerFailure(exitCode: number): void {
    const now = performance.now();
    this.workerFailures++;
    this.recentFailures = this.recentFailures.filter((at) => now - at < FAILURE_WINDOW_MS);
    this.recentFailures.push(now);
    debug("worker exited with code %d (failure %d); replacing it, membership is unaffected", exitCode, this.workerFailures);
    if (this.recentFailures.length >= FAILURE_LIMIT && !this.isDegraded(now)) {
      this.degradedUntil = now + DEGRADED_COOLDOWN_MS;
      this.recentFailures = [];
      const message =
        `socket.io-sharded-adapter: ${FAILURE_LIMIT} worker failures within ${FAILURE_WINDOW_MS / 1000}s; ` +
        `answering every broadcast on the main thread for the next ${DEGRADED_COOLDOWN_MS / 1000}s`;
      debug(message);
      process.emitWarning(message, { code: "SHARDED_ADAPTER_DEGRADED" });
    }
  }

  private isDegraded(now: number): boolean {
    return now < this.degradedUntil;
  }

  /**
   * Answers `query` over `index` with the workers' help, copies the recipient
   * slots into `out` and returns their number, or `undefined` if a worker
   * failed to answer in time (the caller then answers on the main thread).
   */
  collect(index: CooperativeTables, query: RecipientQuery, out: Int32Array): number | undefined {
    return this.cooperate(index, query, out, true);
  }

  /** `collect`, counted in the pool's statistics or not (the calibration's probes are not broadcasts). */
  private cooperate(index: CooperativeTables, query: RecipientQuery, out: Int32Array, counted: boolean): number | undefined {
    const piscina = this.piscina;
    if (piscina === undefined) return undefined;
    const shardCount = index.shardCount;
    const resultStride = Math.ceil(index.slotCapacity / shardCount) + 1;
    if (this.results.length < resultStride * shardCount) {
      this.results = new Int32Array(new SharedArrayBuffer(resultStride * shardCount * 4 * 2));
    }
    // Before the tables are handed out: runs never change while a worker reads them.
    index.prepareRuns(query);
    const { control, results } = this;
    const seq = (this.seq = nextSeq(this.seq));
    resetControl(control, seq);
    if (counted) this.offloaded++;

    const task: CollectTask = {
      seq,
      tables: index.tables,
      control: control.buffer as SharedArrayBuffer,
      results: results.buffer as SharedArrayBuffer,
      resultStride,
      everyone: query.everyone,
      rooms: query.rooms,
      except: query.except,
      slotHighWater: query.slotHighWater,
    };
    // One task per worker; a task that would have to queue (workers starting,
    // or TASKS_IN_FLIGHT_PER_WORKER replies unread) would start too late to
    // help, and the main thread takes its shards instead.
    for (let i = 0; i < this.options.workers && piscina.queueSize === 0; i++) {
      piscina.run(task).then(
        (answered: CollectTaskResult) => {
          if (counted) this.shardsByWorkers += answered;
        },
        (err: unknown) => debug("collect task failed: %O", err),
      );
    }
    // run() may have started a worker to replace one that died.
    this.watchThreads(piscina);

    for (let shard = claimShard(control, seq, shardCount); shard !== -1; shard = claimShard(control, seq, shardCount)) {
      const start = shard * resultStride;
      results[start] = index.collectShardInto(shard, query, results, start + 1) - start - 1;
      markShardDone(control);
    }

    // Wait for shards the workers claimed; the clock restarts with each shard
    // finished, so only a worker that stops making progress (dead, stuck) trips it.
    let deadline = performance.now() + this.options.workerTimeout;
    for (let done = Atomics.load(control, CONTROL_DONE); done < shardCount; ) {
      const left = deadline - performance.now();
      if (left <= 0) return this.abandon(seq, counted);
      Atomics.wait(control, CONTROL_DONE, done, left);
      const now = Atomics.load(control, CONTROL_DONE);
      if (now !== done) deadline = performance.now() + this.options.workerTimeout;
      done = now;
    }

    const starts = new Int32Array(shardCount);
    const counts = new Int32Array(shardCount);
    for (let shard = 0; shard < shardCount; shard++) {
      starts[shard] = shard * resultStride + 1;
      counts[shard] = results[shard * resultStride];
    }
    // Everyone: each shard's answer is ascending; deliver in slot order.
    if (query.everyone) return mergeAscending(results, starts, counts, out);
    let n = 0;
    for (let shard = 0; shard < shardCount; shard++) {
      out.set(results.subarray(starts[shard], starts[shard] + counts[shard]), n);
      n += counts[shard];
    }
    return n;
  }

  /**
   * A worker claimed a shard and did not answer in time (it may have died).
   * Its late answer must not land in buffers a later query uses, so this
   * query's buffers are dropped for fresh ones.
   */
  private abandon(seq: number, counted: boolean): undefined {
    if (counted) this.timeouts++;
    debug("query %d: a worker did not answer within %dms; answering on the main thread", seq, this.options.workerTimeout);
    this.control = new Int32Array(new SharedArrayBuffer(CONTROL_LENGTH * 4));
    this.results = new Int32Array(new SharedArrayBuffer(this.results.byteLength));
    return undefined;
  }
}
