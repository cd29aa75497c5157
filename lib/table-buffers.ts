/**
 * The SharedArrayBuffers of one namespace's tables (layout: `shared-tables.ts`)
 * and typed views over them, on the main thread. A SharedArrayBuffer never
 * shrinks: growing a table doubles it, in place when its buffer is growable
 * (see `doubled`), else into a new buffer twice as big; either way the workers
 * get it with their next task, and views over it are made again.
 */
import { EMPTY_LIST, NODE_STRIDE, ROOM_LISTS_STRIDE, ROOM_SHARD_STRIDE, SOCKET_STRIDE, viewTables, type SharedTables, type TablesView } from "./shared-tables";
import { emptyHeader } from "./room-lists";

/** Capacities the tables start with (and start again with after `reset`). */
export const INITIAL_SLOTS = 64;
export const INITIAL_ROOMS = 64;
export const INITIAL_NODES = 256;
/** Entries of the runs arena to start with (see `run-cache.ts`). */
export const INITIAL_RUNS = 4096;

/** Records each table has room for (runs: entries of the runs arena). */
export interface TableCapacities {
  readonly slots: number;
  readonly rooms: number;
  readonly nodes: number;
  readonly runs: number;
}

const INITIAL_CAPACITIES: TableCapacities = { slots: INITIAL_SLOTS, rooms: INITIAL_ROOMS, nodes: INITIAL_NODES, runs: INITIAL_RUNS };

function newTables(shardCount: number, capacities: TableCapacities): SharedTables {
  const rooms = new SharedArrayBuffer(capacities.rooms * shardCount * ROOM_SHARD_STRIDE * 4);
  emptyHeader(new Int32Array(rooms), EMPTY_LIST);
  return {
    shardCount,
    nodes: new SharedArrayBuffer(capacities.nodes * NODE_STRIDE * 4),
    roomLists: new SharedArrayBuffer(capacities.rooms * ROOM_LISTS_STRIDE * 4),
    rooms,
    sockets: new SharedArrayBuffer(capacities.slots * SOCKET_STRIDE * 4),
    runs: new SharedArrayBuffer(capacities.runs * 4),
  };
}

/**
 * From this size on, a table's buffer is growable: V8 reserves its maximum
 * length as address space (its own mmap, not malloc's) and grows it in place,
 * so growing copies nothing, frees nothing, and pages past what was written
 * stay non-resident. Below it, a plain buffer from malloc (a few KiB, where
 * a mapping of its own would cost more than it saves).
 *
 * Why not malloc's buffers all the way: glibc raises its mmap threshold to the
 * size of each large chunk freed (up to 32 MiB), so once the retired copies of
 * a doubled table were freed, the next tables of up to that size came from
 * the main arena, where `calloc` writes a reused chunk in full and freed
 * chunks stay resident: ~10 B per membership above the tables' own at
 * N=100k K=10 (measured with `bench/rss-breakdown.ts`).
 */
const GROWABLE_FROM_BYTES = 256 * 1024;
/** A growable buffer reserves this many times its length (address space only)... */
const RESERVE_FACTOR = 64;
/** ...up to this (a SharedArrayBuffer's largest length in Node.js 20). */
const MAX_RESERVE_BYTES = 2 ** 32;

function doubled(old: SharedArrayBuffer): SharedArrayBuffer {
  const length = old.byteLength * 2;
  if (old.growable && length <= old.maxByteLength) {
    old.grow(length);
    return old;
  }
  const grown =
    length < GROWABLE_FROM_BYTES
      ? new SharedArrayBuffer(length)
      : new SharedArrayBuffer(length, { maxByteLength: Math.max(length, Math.min(length * RESERVE_FACTOR, MAX_RESERVE_BYTES)) });
  new Int32Array(grown).set(new Int32Array(old));
  return grown;
}

export class TableBuffers {
  readonly shardCount: number;
  private tablesValue: SharedTables;
  private viewValue: TablesView;

  /** `capacities`: for a table whose size is known up front (the calibration's); a namespace's starts small and grows. */
  constructor(shardCount: number, capacities: TableCapacities = INITIAL_CAPACITIES) {
    this.shardCount = shardCount;
    this.tablesValue = newTables(shardCount, capacities);
    this.viewValue = viewTables(this.tablesValue);
  }

  /** The current buffers, as sent to a worker. */
  get tables(): SharedTables {
    return this.tablesValue;
  }

  /** Views over the current buffers; replaced on growth, so read it again after any write that may grow. */
  get view(): TablesView {
    return this.viewValue;
  }

  get bytes(): number {
    const t = this.tablesValue;
    return t.nodes.byteLength + t.roomLists.byteLength + t.rooms.byteLength + t.sockets.byteLength + t.runs.byteLength;
  }

  /** Doubles one table, keeping its content. */
  grow(table: "nodes" | "roomLists" | "rooms" | "sockets"): void {
    this.tablesValue = { ...this.tablesValue, [table]: doubled(this.tablesValue[table]) };
    this.viewValue = viewTables(this.tablesValue);
  }

  /** A new, empty runs arena of `entries` (the run cache has dropped every run of the old one). */
  replaceRuns(entries: number): void {
    this.tablesValue = { ...this.tablesValue, runs: new SharedArrayBuffer(entries * 4) };
    this.viewValue = viewTables(this.tablesValue);
  }

  /** Fresh buffers at the initial capacities. */
  reset(): void {
    this.tablesValue = newTables(this.shardCount, INITIAL_CAPACITIES);
    this.viewValue = viewTables(this.tablesValue);
  }
}
