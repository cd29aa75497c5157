/**
 * The members of rooms in join order (merged across the shards' lists), kept
 * from one ordered walk to the next while the room does not change, so that
 * fetchSockets(room), socketsJoin and the like on an unchanged room read one
 * contiguous array instead of following every shard's linked list again (a
 * cache miss per member). Main thread only.
 *
 * Validity is checked, not signalled: an entry holds the room's size and
 * the highest join sequence among its members (the tail of some shard's
 * list, since lists are in join order). Join sequences are global and never
 * reused (a renumbering of them clears the cache), so any join after the entry was made (into this room, or into a
 * room created again under its id), if it is still there, raises that
 * maximum; and without one, the member set can only have shrunk, which the
 * size shows. Equal (size, max sequence) thus means an identical member
 * set, and the order (by join sequence) is then identical too. The lists' stale marks (`LIST_RUN`) would not do: a join
 * into an empty or short list leaves its mark unchanged (`NONE`).
 *
 * Entries are handed out as they are, never written after they are stored:
 * a caller may keep reading one while its callbacks change the room (the
 * change only makes the entry invalid for the next walk).
 */
import type { RoomTable } from "./room-table";
import { LIST_TAIL, NONE, roomListOffset } from "./shared-tables";
import type { TableBuffers } from "./table-buffers";

/** Rooms smaller than this are merged afresh each time: a few reads, not worth an entry. */
export const MIN_CACHED_MEMBERS = 4;
/** Cached members kept at least (the bound grows with the memberships beyond this). */
const MIN_BUDGET = 1 << 16;

interface OrderedRoom {
  size: number;
  maxJoinSeq: number;
  slots: Int32Array;
}

export class OrderedRoomCache {
  private readonly buffers: TableBuffers;
  private readonly rooms: RoomTable;
  private readonly entries = new Map<number, OrderedRoom>();
  /** Members held by `entries`, valid or not. */
  private held = 0;

  constructor(buffers: TableBuffers, rooms: RoomTable) {
    this.buffers = buffers;
    this.rooms = rooms;
  }

  /** The members of `roomId` in join order if the stored copy is still exact, else undefined. Do not write to it. */
  lookUp(roomId: number, joinSeqs: Uint32Array): Int32Array | undefined {
    const entry = this.entries.get(roomId);
    if (entry === undefined) return undefined;
    if (entry.size !== this.rooms.sizeOf(roomId) || entry.maxJoinSeq !== this.maxJoinSeqOf(roomId, joinSeqs)) return undefined;
    return entry.slots;
  }

  /**
   * Keeps `slots` (all the members of `roomId`, in join order; owned by the
   * cache from now on) for the next walks. `memberships` bounds how many
   * members all entries hold together: past it, every entry is dropped.
   */
  store(roomId: number, slots: Int32Array, joinSeqs: Uint32Array, memberships: number): void {
    if (slots.length < MIN_CACHED_MEMBERS) return;
    const previous = this.entries.get(roomId);
    if (previous !== undefined) this.held -= previous.slots.length;
    if (this.held + slots.length > Math.max(MIN_BUDGET, memberships)) {
      this.entries.clear();
      this.held = 0;
    }
    this.entries.set(roomId, {
      size: slots.length,
      maxJoinSeq: this.maxJoinSeqOf(roomId, joinSeqs),
      slots,
    });
    this.held += slots.length;
  }

  /** Drops every entry. */
  clear(): void {
    this.entries.clear();
    this.held = 0;
  }

  /** The join sequence of the last member to join `roomId` still in it (0 when empty). */
  private maxJoinSeqOf(roomId: number, joinSeqs: Uint32Array): number {
    const { roomLists, rooms, shardCount } = this.buffers.view;
    let max = 0;
    for (let shard = 0; shard < shardCount; shard++) {
      const tail = rooms[roomListOffset(roomLists, roomId, shard) + LIST_TAIL];
      if (tail !== NONE && joinSeqs[tail] > max) max = joinSeqs[tail];
    }
    return max;
  }
}
