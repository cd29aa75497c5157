import { availableParallelism } from "node:os";
import type { ResourceLimits } from "node:worker_threads";
import { InvalidOptionError } from "./errors";
import { MAX_SHARDS } from "./protocol";

/** Options of {@link createAdapter}. Every field is optional. */
export interface ShardedAdapterOptions {
  /**
   * Worker threads per `createAdapter()` result; membership is split into
   * `workers + 1` shards (one share is the main thread's). Default: one less
   * than the cores (at least 1, at most 4).
   */
  workers?: number;
  /**
   * A broadcast (or fetch, socketsJoin...) whose rooms and except-rooms hold at
   * least this many memberships in all is answered by the shard workers in
   * parallel with the main thread; smaller ones are answered on the main
   * thread from shared memory, with no round-trip. Default: 100000.
   */
  offloadThreshold?: number;
  /**
   * Milliseconds the main thread waits for a worker that claimed a share of
   * a broadcast and has not finished it (it died or is stuck) before it
   * computes the broadcast itself. Default: 500.
   */
  workerTimeout?: number;
  /** Passed to each worker thread (see `node:worker_threads`). */
  resourceLimits?: ResourceLimits;
}

/** {@link ShardedAdapterOptions} with every default filled in. */
export interface ResolvedOptions {
  readonly workers: number;
  readonly offloadThreshold: number;
  readonly workerTimeout: number;
  readonly resourceLimits: ResourceLimits | undefined;
}

/**
 * Waking a worker thread costs 0.1 to 2 ms on a busy 2-core machine (measured
 * with a bare Atomics.wait loop), about what the main thread needs to select
 * 10k to 100k memberships from the shared tables itself; below this, asking
 * the workers only adds a wait.
 */
const DEFAULT_OFFLOAD_THRESHOLD = 100_000;

/** Most workers accepted: more threads than this only compete for the same cores. */
export function maxWorkers(): number {
  return Math.min(MAX_SHARDS - 1, Math.max(4, 2 * availableParallelism()));
}

function defaultWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

function integerIn(option: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
    throw new InvalidOptionError(option, value, range);
  }
  return value;
}

/** Validates `options`; throws {@link InvalidOptionError} naming the first bad one. */
export function resolveOptions(options: ShardedAdapterOptions | undefined): ResolvedOptions {
  if (options === undefined || options === null) options = {};
  if (typeof options !== "object") throw new InvalidOptionError("options", options, "an object");
  const known = new Set(["workers", "offloadThreshold", "workerTimeout", "resourceLimits"]);
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw new InvalidOptionError(key, (options as Record<string, unknown>)[key], `one of ${[...known].join(", ")} (unknown option)`);
  }
  const cap = maxWorkers();
  const workers = integerIn("workers", options.workers, 1, cap, defaultWorkers());
  const offloadThreshold = integerIn("offloadThreshold", options.offloadThreshold, 0, Number.MAX_SAFE_INTEGER, DEFAULT_OFFLOAD_THRESHOLD);
  const workerTimeout = integerIn("workerTimeout", options.workerTimeout, 1, 600_000, 500);
  const resourceLimits = options.resourceLimits;
  if (resourceLimits !== undefined && (typeof resourceLimits !== "object" || resourceLimits === null)) {
    throw new InvalidOptionError("resourceLimits", resourceLimits, "an object (see worker_threads ResourceLimits)");
  }
  return { workers, offloadThreshold, workerTimeout, resourceLimits };
}
