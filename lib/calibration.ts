/**
 * The default `offloadThreshold`, calibrated when a pool starts: where asking
 * the workers starts to pay on this machine, from two measurements.
 *
 * - Wake latency L: from the main thread posting a task to a worker starting
 *   it (the worker was idle, as between broadcasts). Measured in the workers,
 *   one-way, several times; the median is kept.
 * - Cost per membership c of selecting recipients from the shared tables,
 *   timed by a worker over a table it builds (lists whose nodes are scattered
 *   through a few MB, so the walk misses the cache as in a big table: the
 *   regime where offloading matters).
 *
 * Alone, the main thread takes c·M for a query of M memberships. With the
 * workers, it takes its own share, c·M/S (S = workers + 1 shards), and the
 * workers' shares are done after L + c·M/S; a worker that is late costs
 * little, since the main thread then claims that shard itself. So offloading
 * pays once L + c·M/S < c·M, i.e. M > L / (c·(1 − 1/S)).
 *
 * The formula assumes the workers run in parallel with the main thread: on
 * a machine whose cores are all busy they do not, and only a larger
 * explicit `offloadThreshold` helps (`make bench` measures the real crossover).
 * Bounded to [MIN_CALIBRATED_THRESHOLD, MAX_CALIBRATED_THRESHOLD]: a tiny or
 * huge measurement (a machine paused mid-measurement) cannot make every
 * broadcast wait for the workers, nor stop the workers from ever helping.
 */
import {
  collectShard,
  EVERY_SHARD,
  LIST_COUNT,
  LIST_HEAD,
  LIST_RUN,
  LIST_TAIL,
  LISTS_AT,
  LISTS_ONLY_SHARD,
  NODE_ROOM_NEXT,
  NODE_SLOT,
  NODE_STRIDE,
  NONE,
  RecipientMarks,
  ROOM_LISTS_STRIDE,
  ROOM_SHARD_STRIDE,
  SOCKET_STRIDE,
} from "./shared-tables";

/** The threshold before calibration has run (and when it cannot). */
export const UNCALIBRATED_THRESHOLD = 100_000;
export const MIN_CALIBRATED_THRESHOLD = 10_000;
export const MAX_CALIBRATED_THRESHOLD = 1_000_000;

/** A worker's answer to a calibration task. */
export interface CalibrationSample {
  /** Ns from the main thread posting the task to the worker running it. */
  readonly wakeNs: number;
  /** Ns per membership of collectShard over a cold-ish table; NaN when not asked for. */
  readonly nsPerMembership: number;
}

/** What a pool's calibration measured and chose. */
export interface Calibration {
  readonly wakeNs: number;
  readonly nsPerMembership: number;
  readonly threshold: number;
}

/** A clock comparable across the threads of a process, in ns: CLOCK_MONOTONIC (performance.now() counts from each thread's start). */
export function crossThreadNowNs(): number {
  return Number(process.hrtime.bigint());
}

export function thresholdFrom(wakeNs: number, nsPerMembership: number, shardCount: number): number {
  const saved = nsPerMembership * (1 - 1 / shardCount);
  const raw = Math.max(0, wakeNs) / saved;
  if (!Number.isFinite(raw)) return UNCALIBRATED_THRESHOLD;
  return Math.round(Math.min(MAX_CALIBRATED_THRESHOLD, Math.max(MIN_CALIBRATED_THRESHOLD, raw)));
}

const MEMBERS = 1 << 17;
const ROOM_SIZE = 128;
const SLOTS = 1 << 15;

/**
 * Times collectShard per membership over a one-shard table of MEMBERS
 * memberships in rooms of ROOM_SIZE, the nodes of each room scattered at
 * random (3 MB of nodes: beyond a core's own caches), as joins and leaves
 * leave them in a real table. Takes a few tens of ms, in a worker.
 */
export function measureCollectCost(): number {
  const nodes = new Int32Array(MEMBERS * NODE_STRIDE);
  const roomCount = MEMBERS / ROOM_SIZE;
  const rooms = new Int32Array(roomCount * ROOM_SHARD_STRIDE);
  const sockets = new Int32Array(SLOTS * SOCKET_STRIDE);
  // A random order of the nodes, cut into rooms: each room's list hops across the arena.
  const order = new Int32Array(MEMBERS);
  for (let i = 0; i < MEMBERS; i++) order[i] = i;
  let seed = 0x2545f491;
  for (let i = MEMBERS - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) | 0;
    const j = (seed >>> 1) % (i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (let room = 0; room < roomCount; room++) {
    const first = room * ROOM_SIZE;
    for (let i = 0; i < ROOM_SIZE; i++) {
      const node = order[first + i];
      nodes[node * NODE_STRIDE + NODE_SLOT] = (first + i) % SLOTS;
      nodes[node * NODE_STRIDE + NODE_ROOM_NEXT] = i + 1 < ROOM_SIZE ? order[first + i + 1] : NONE;
    }
    rooms[room * ROOM_SHARD_STRIDE + LIST_HEAD] = order[first];
    rooms[room * ROOM_SHARD_STRIDE + LIST_TAIL] = order[first + ROOM_SIZE - 1];
    rooms[room * ROOM_SHARD_STRIDE + LIST_COUNT] = ROOM_SIZE;
    rooms[room * ROOM_SHARD_STRIDE + LIST_RUN] = NONE; // lists walked node by node: the cost of a cold broadcast
  }
  // Every room with its one list (one shard) at room * ROOM_SHARD_STRIDE.
  const roomLists = new Int32Array(roomCount * ROOM_LISTS_STRIDE);
  for (let room = 0; room < roomCount; room++) {
    roomLists[room * ROOM_LISTS_STRIDE + LISTS_AT] = room * ROOM_SHARD_STRIDE;
    roomLists[room * ROOM_LISTS_STRIDE + LISTS_ONLY_SHARD] = EVERY_SHARD;
  }
  const view = { shardCount: 1, nodes, roomLists, rooms, sockets, runs: new Int32Array(0) };
  const all = new Int32Array(roomCount);
  for (let i = 0; i < roomCount; i++) all[i] = i;
  // Unions of a quarter of the rooms at a time: each walk starts cold.
  const quarter = roomCount / 4;
  const marks = new RecipientMarks();
  const out = new Int32Array(SLOTS);
  const times: number[] = [];
  for (let round = 0; round < 6; round++) {
    const part = all.subarray((round % 4) * quarter, ((round % 4) + 1) * quarter);
    const query = { everyone: false, rooms: part, except: new Int32Array(0), slotHighWater: SLOTS };
    const t0 = process.hrtime.bigint();
    collectShard(view, 0, query, marks, out, 0);
    times.push(Number(process.hrtime.bigint() - t0) / (quarter * ROOM_SIZE));
  }
  // The first rounds warm up the JIT. Of the rest, the fastest: another
  // thread or process preempting the worker only ever adds time.
  return Math.min(...times.slice(3));
}
