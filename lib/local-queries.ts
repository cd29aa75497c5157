/**
 * Broadcast filters interned against the tables, and answered on the main
 * thread from shared memory (whole, or the main thread's share of a query
 * the workers help with). Recipients come in no particular order: this is
 * for broadcasts, whose order no client can observe (see `ordered-walk.ts`
 * for the rest).
 */
import type { Room } from "socket.io-adapter";
import type { RoomTable } from "./room-table";
import type { RunCache } from "./run-cache";
import { collectAlive, collectShard, collectUnion, endUnion, markExcluded, type RecipientMarks, type RecipientQuery, type TablesView } from "./shared-tables";
import type { SlotTable } from "./slot-table";
import type { TableBuffers } from "./table-buffers";

const EMPTY = new Int32Array(0);

/** A broadcast filter interned against the index, with the work it implies. */
export interface InternedQuery extends RecipientQuery {
  /** Memberships and slots the query will visit: decides where it runs. */
  readonly cost: number;
}

/**
 * Answers a query over every shard of `view` on this thread into `out` (the
 * caller has prepared its runs); returns the number of recipient slots.
 */
export function collectEveryShard(view: TablesView, query: RecipientQuery, marks: RecipientMarks, out: Int32Array): number {
  if (query.everyone) {
    // One pass in slot order rather than shard by shard (see mergeAscending).
    if (query.except.length === 0) return collectAlive(view.sockets, 0, 1, query.slotHighWater, undefined, out, 0);
    const bits = marks.begin(query.slotHighWater);
    for (let shard = 0; shard < view.shardCount; shard++) markExcluded(view, shard, query.except, bits);
    return collectAlive(view.sockets, 0, 1, query.slotHighWater, bits, out, 0);
  }
  let count = 0;
  if (query.rooms.length > 1 && query.except.length === 0) {
    // A union: every shard's recipients in one bitmap (the shards' slots are
    // disjoint), read once in slot order across the shards.
    const bits = marks.begin(query.slotHighWater);
    for (let shard = 0; shard < view.shardCount; shard++) count = collectUnion(view, shard, query.rooms, bits, out, count);
    return endUnion(marks, query.slotHighWater, out, 0, count);
  }
  for (let shard = 0; shard < view.shardCount; shard++) {
    count = collectShard(view, shard, query, marks, out, count);
  }
  return count;
}

export class LocalQueries {
  private readonly buffers: TableBuffers;
  private readonly slots: SlotTable;
  private readonly rooms: RoomTable;
  private readonly marks: RecipientMarks;
  private readonly runs: RunCache;
  private readonly memberships: () => number;
  private readonly singleRoomQuery: RecipientQuery = { everyone: false, rooms: new Int32Array(1), except: EMPTY, slotHighWater: 0 };
  private spareRecipients: Int32Array | undefined;

  constructor(buffers: TableBuffers, slots: SlotTable, rooms: RoomTable, marks: RecipientMarks, runs: RunCache, memberships: () => number) {
    this.buffers = buffers;
    this.slots = slots;
    this.rooms = rooms;
    this.marks = marks;
    this.runs = runs;
    this.memberships = memberships;
  }

  /**
   * Copies to runs the lists of the query's rooms walked again unchanged
   * (see `run-cache.ts`). Called before a query is answered, on this thread
   * alone or with the workers, never during one.
   */
  prepareRuns(query: RecipientQuery): void {
    this.runs.prepareQuery(query, this.memberships());
  }

  /**
   * Interns a broadcast filter. Unknown rooms are dropped: they have no
   * members. `rooms` empty means every socket, as in socket.io.
   */
  intern(rooms: ReadonlySet<Room>, except: ReadonlySet<Room> | undefined): InternedQuery {
    let cost = 0;
    const exceptIds = except && except.size > 0 ? this.internExisting(except) : EMPTY;
    for (let i = 0; i < exceptIds.length; i++) cost += this.rooms.sizeOf(exceptIds[i]);
    const slotHighWater = this.slots.highWater;
    if (rooms.size === 0) {
      // Everyone is one sequential pass over the socket table, no walk: cheaper
      // on this thread than waking the workers and merging their answers, so
      // only the except rooms' walks count (measured: bench "everyone").
      return { everyone: true, rooms: EMPTY, except: exceptIds, slotHighWater, cost };
    }
    const roomIds = this.internExisting(rooms);
    for (let i = 0; i < roomIds.length; i++) cost += this.rooms.sizeOf(roomIds[i]);
    return { everyone: false, rooms: roomIds, except: exceptIds, slotHighWater, cost };
  }

  /**
   * A buffer for one broadcast's recipients, big enough for every slot. The
   * same one is lent again once returned: a big broadcast allocates nothing
   * (allocating would grow external memory and bring on full GCs). A
   * broadcast made from inside a delivery callback gets a fresh buffer.
   */
  borrowRecipients(): Int32Array {
    const spare = this.spareRecipients;
    this.spareRecipients = undefined;
    const capacity = this.slots.capacity;
    return spare !== undefined && spare.length >= capacity ? spare : new Int32Array(capacity);
  }

  returnRecipients(buffer: Int32Array): void {
    if (this.spareRecipients === undefined || this.spareRecipients.length < buffer.length) this.spareRecipients = buffer;
  }

  /** Answers a query into `out`; returns the number of recipient slots. */
  collect(query: RecipientQuery, out: Int32Array): number {
    this.prepareRuns(query);
    return collectEveryShard(this.buffers.view, query, this.marks, out);
  }

  /**
   * The member slots of one room, shard by shard: the fast path of a
   * broadcast to one room with nothing excluded (a socket's own-id room on
   * every `socket.emit()` with connection state recovery), with no query to
   * build and no marks to set.
   */
  membersOf(roomId: number, out: Int32Array): number {
    this.singleRoomQuery.rooms[0] = roomId;
    return this.collect(this.singleRoomQuery, out);
  }

  /** Answers one shard (the main thread's share of a cooperative query: runs are left as they are). */
  collectShard(shard: number, query: RecipientQuery, out: Int32Array, offset: number): number {
    return collectShard(this.buffers.view, shard, query, this.marks, out, offset);
  }

  clear(): void {
    this.spareRecipients = undefined;
  }

  private internExisting(rooms: ReadonlySet<Room>): Int32Array {
    const ids = new Int32Array(rooms.size);
    let n = 0;
    for (const room of rooms) {
      const id = this.rooms.idOf(room);
      if (id !== undefined) ids[n++] = id;
    }
    return n === ids.length ? ids : ids.subarray(0, n);
  }
}
