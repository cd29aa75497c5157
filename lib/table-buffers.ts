/**
 * The SharedArrayBuffers of one namespace's tables (layout: `shared-tables.ts`)
 * and typed views over them, on the main thread. A SharedArrayBuffer never
 * shrinks: growing a table doubles it, in place when its buffer is growable
 * (`growable-buffers.ts`), else into a new buffer twice as big; either way the
 * workers get it with their next task, and views over it are made again.
 */
import { EMPTY_LIST, NODE_STRIDE, ROOM_LISTS_STRIDE, ROOM_SHARD_STRIDE, SOCKET_STRIDE, viewTables, type SharedTables, type TablesView } from "./shared-tables";
import { doubledTableBuffer, newTableBuffer } from "./growable-buffers";
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
  const rooms = newTableBuffer(capacities.rooms * shardCount * ROOM_SHARD_STRIDE * 4);
  emptyHeader(new Int32Array(rooms, 0, rooms.byteLength >> 2), EMPTY_LIST);
  return {
    shardCount,
    nodes: newTableBuffer(capacities.nodes * NODE_STRIDE * 4),
    roomLists: newTableBuffer(capacities.rooms * ROOM_LISTS_STRIDE * 4),
    rooms,
    sockets: newTableBuffer(capacities.slots * SOCKET_STRIDE * 4),
    runs: newTableBuffer(capacities.runs * 4),
  };
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
    this.tablesValue = { ...this.tablesValue, [table]: doubledTableBuffer(this.tablesValue[table]) };
    this.viewValue = viewTables(this.tablesValue);
  }

  /** A new, empty runs arena of `entries` (the run cache has dropped every run of the old one). */
  replaceRuns(entries: number): void {
    this.tablesValue = { ...this.tablesValue, runs: newTableBuffer(entries * 4) };
    this.viewValue = viewTables(this.tablesValue);
  }

  /** Fresh buffers at the initial capacities. */
  reset(): void {
    this.tablesValue = newTables(this.shardCount, INITIAL_CAPACITIES);
    this.viewValue = viewTables(this.tablesValue);
  }
}
