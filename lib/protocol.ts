/**
 * The messages between the main thread and the shard workers, and the
 * control block they synchronise on. Both sides import this module.
 *
 * A big broadcast is answered cooperatively: the main thread posts one
 * {@link CollectTask} per worker (through piscina, over the worker's
 * MessagePort), then claims shards itself from the same counter. Whoever
 * claims shard `s` writes its recipients into the result region of `s` and
 * counts it done. The main thread sleeps in `Atomics.wait` only for shards a
 * worker has claimed and not finished, so a slow or cold worker never makes a
 * broadcast wait: the main thread simply takes its shards.
 *
 * ```
 *  control (Int32Array)                results (Int32Array, resultStride per shard)
 *  ┌───────┬──────┐                    ┌───────┬──────────────┬───────┬─────
 *  │ claim │ done │                    │ count │ slots...     │ count │ ...
 *  └───────┴──────┘                    └───────┴──────────────┴───────┴─────
 *   claim = (seq << CLAIM_SHARD_BITS) | next shard to claim      shard 0       shard 1
 * ```
 *
 * The query's sequence number shares the claim word with the shard counter,
 * so a late worker still holding an earlier query cannot claim a shard of the
 * current one: its compare-and-swap fails on the sequence bits.
 */
import type { RecipientQuery, SharedTables } from "./shared-tables";

export const CONTROL_CLAIM = 0;
export const CONTROL_DONE = 1;
export const CONTROL_LENGTH = 2;

export const CLAIM_SHARD_BITS = 8;
/** Upper bound on shards (workers + 1), from the claim word's layout. */
export const MAX_SHARDS = (1 << CLAIM_SHARD_BITS) - 1;
const CLAIM_SHARD_MASK = (1 << CLAIM_SHARD_BITS) - 1;
const CLAIM_SEQ_MASK = (1 << (31 - CLAIM_SHARD_BITS)) - 1;

/** The task a worker runs: help answer query `seq`. */
export interface CollectTask {
  readonly seq: number;
  readonly tables: SharedTables;
  readonly control: SharedArrayBuffer;
  readonly results: SharedArrayBuffer;
  readonly resultStride: number;
  readonly everyone: boolean;
  readonly rooms: Int32Array;
  readonly except: Int32Array;
  readonly slotHighWater: number;
}

/** What a worker's task resolves with: how many shards it answered. */
export type CollectTaskResult = number;

/**
 * A task the worker answers at once (with 0): the pool's calibration posts
 * one per worker and waits for the answers, so that its probes find the
 * workers started (see `calibration.ts`).
 */
export interface ReadyTask {
  readonly ready: true;
}

/**
 * A task that warms a worker's code up before the pool's calibration times
 * it (see `calibration.ts`): the worker answers the query over every shard
 * `passes` times on its own, into a buffer of its own, and reports its
 * fastest pass. Nothing is shared back but the time: no control block, and
 * the main thread does not wait for it.
 */
export interface WarmUpTask {
  readonly warmUp: true;
  readonly tables: SharedTables;
  readonly everyone: boolean;
  readonly rooms: Int32Array;
  readonly except: Int32Array;
  readonly slotHighWater: number;
  readonly passes: number;
}

/** What a warm-up task resolves with: which worker ran it, and its own time for the query. */
export interface WarmUpResult {
  readonly threadId: number;
  /** The worker's fastest pass over every shard, ns (its own clock: waking it and posting are not in it). */
  readonly passNs: number;
}

/**
 * What a cooperative answer needs of the tables it reads: a namespace's
 * `MembershipIndex`, or the calibration's probe table.
 */
export interface CooperativeTables {
  readonly shardCount: number;
  /** Slots the shared tables have room for; bounds every shard's answer. */
  readonly slotCapacity: number;
  /** The current shared buffers, as sent to the workers. */
  readonly tables: SharedTables;
  /** Gives runs to the query's lists walked again unchanged (before the tables are handed out). */
  prepareRuns(query: RecipientQuery): void;
  /** Answers one shard on this thread into `out` from `offset` on; returns the new end. */
  collectShardInto(shard: number, query: RecipientQuery, out: Int32Array, offset: number): number;
}

export function nextSeq(seq: number): number {
  return (seq + 1) & CLAIM_SEQ_MASK;
}

/** Opens the control block for query `seq`: no shard claimed, none done. */
export function resetControl(control: Int32Array, seq: number): void {
  Atomics.store(control, CONTROL_DONE, 0);
  Atomics.store(control, CONTROL_CLAIM, seq << CLAIM_SHARD_BITS);
}

/**
 * Claims the next unanswered shard of query `seq`, or returns -1 when all are
 * claimed or the control block has moved on to another query.
 */
export function claimShard(control: Int32Array, seq: number, shardCount: number): number {
  for (;;) {
    const word = Atomics.load(control, CONTROL_CLAIM);
    if (word >>> CLAIM_SHARD_BITS !== seq) return -1;
    const shard = word & CLAIM_SHARD_MASK;
    if (shard >= shardCount) return -1;
    if (Atomics.compareExchange(control, CONTROL_CLAIM, word, word + 1) === word) return shard;
  }
}

/** Counts a shard's answer as written and wakes a waiting main thread. */
export function markShardDone(control: Int32Array): void {
  Atomics.add(control, CONTROL_DONE, 1);
  Atomics.notify(control, CONTROL_DONE);
}
