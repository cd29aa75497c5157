/**
 * Where each room's list headers live in the `rooms` table (layout:
 * `shared-tables.ts`): a header in every shard, or, for a socket's own-id
 * room, one header in that socket's shard only (the room has no member
 * elsewhere; 16 bytes instead of 16 per shard, for a room nearly every
 * socket has). Headers are handed out from the `rooms` table, reused through
 * two free lists (single headers, blocks of one per shard). Main thread only.
 */
import { IntStack } from "./compact-containers";
import {
  EVERY_SHARD,
  LIST_COUNT,
  LIST_HEAD,
  LIST_RUN,
  LIST_TAIL,
  LISTS_AT,
  LISTS_ONLY_SHARD,
  NONE,
  ROOM_LISTS_STRIDE,
  ROOM_SHARD_STRIDE,
  roomListOffset,
} from "./shared-tables";
import type { TableBuffers } from "./table-buffers";

/** Writes an empty list header at `at`. */
export function emptyHeader(rooms: Int32Array, at: number): void {
  rooms[at + LIST_HEAD] = NONE;
  rooms[at + LIST_TAIL] = NONE;
  rooms[at + LIST_COUNT] = 0;
  rooms[at + LIST_RUN] = NONE;
}

export class RoomLists {
  private readonly buffers: TableBuffers;
  /** Room ids below this have headers (ids are handed out in order, then reused). */
  private placedIds = 0;
  /** Offset of the first header never handed out (the `EMPTY_LIST` one is taken). */
  private highWater = ROOM_SHARD_STRIDE;
  private readonly freeSingles = new IntStack();
  private readonly freeBlocks = new IntStack();

  constructor(buffers: TableBuffers) {
    this.buffers = buffers;
  }

  /**
   * Gives the (new, empty) room `roomId` empty lists: in `onlyShard` alone,
   * or in every shard (`EVERY_SHARD`). An id used before keeps its headers if
   * they are of that kind.
   */
  place(roomId: number, onlyShard: number): void {
    const at = roomId * ROOM_LISTS_STRIDE;
    if (roomId < this.placedIds) {
      const lists = this.buffers.view.roomLists;
      const wasOnly = lists[at + LISTS_ONLY_SHARD];
      if ((wasOnly === EVERY_SHARD) === (onlyShard === EVERY_SHARD)) {
        lists[at + LISTS_ONLY_SHARD] = onlyShard;
        this.emptyAll(roomId);
        return;
      }
      this.release(lists[at + LISTS_AT], wasOnly);
    } else {
      this.placedIds = roomId + 1;
    }
    const first = this.take(onlyShard === EVERY_SHARD ? this.buffers.shardCount : 1);
    const lists = this.buffers.view.roomLists;
    lists[at + LISTS_AT] = first;
    lists[at + LISTS_ONLY_SHARD] = onlyShard;
    this.emptyAll(roomId);
  }

  /**
   * The offset of the header of `roomId`'s list in `shard`, for a join: a
   * room with one list elsewhere is first given a list in every shard (the
   * `rooms` table may grow: read the view again afterwards).
   */
  listForJoin(roomId: number, shard: number): number {
    const at = roomId * ROOM_LISTS_STRIDE;
    const onlyShard = this.buffers.view.roomLists[at + LISTS_ONLY_SHARD];
    if (onlyShard !== EVERY_SHARD && onlyShard !== shard) this.spread(roomId, onlyShard);
    return roomListOffset(this.buffers.view.roomLists, roomId, shard);
  }

  clear(): void {
    this.placedIds = 0;
    this.highWater = ROOM_SHARD_STRIDE;
    this.freeSingles.clear();
    this.freeBlocks.clear();
  }

  /** Moves the one list of `roomId` (in `onlyShard`) into a block with a list in every shard. */
  private spread(roomId: number, onlyShard: number): void {
    const block = this.take(this.buffers.shardCount);
    const { roomLists, rooms } = this.buffers.view;
    const at = roomId * ROOM_LISTS_STRIDE;
    const single = roomLists[at + LISTS_AT];
    for (let shard = 0; shard < this.buffers.shardCount; shard++) emptyHeader(rooms, block + shard * ROOM_SHARD_STRIDE);
    const moved = block + onlyShard * ROOM_SHARD_STRIDE;
    rooms[moved + LIST_HEAD] = rooms[single + LIST_HEAD];
    rooms[moved + LIST_TAIL] = rooms[single + LIST_TAIL];
    rooms[moved + LIST_COUNT] = rooms[single + LIST_COUNT];
    // Not its run: the run cache knows runs by header offset, and would not drop one here.
    roomLists[at + LISTS_AT] = block;
    roomLists[at + LISTS_ONLY_SHARD] = EVERY_SHARD;
    this.release(single, onlyShard);
  }

  private emptyAll(roomId: number): void {
    const { roomLists, rooms } = this.buffers.view;
    const at = roomId * ROOM_LISTS_STRIDE;
    const count = roomLists[at + LISTS_ONLY_SHARD] === EVERY_SHARD ? this.buffers.shardCount : 1;
    for (let i = 0; i < count; i++) emptyHeader(rooms, roomLists[at + LISTS_AT] + i * ROOM_SHARD_STRIDE);
  }

  /** Offset of `headers` consecutive free headers (1 or shardCount). */
  private take(headers: number): number {
    const reused = headers === 1 ? this.freeSingles.pop() : this.freeBlocks.pop();
    if (reused !== NONE) return reused;
    const first = this.highWater;
    this.highWater += headers * ROOM_SHARD_STRIDE;
    while (this.highWater > this.buffers.view.rooms.length) this.buffers.grow("rooms");
    return first;
  }

  private release(first: number, onlyShard: number): void {
    if (onlyShard === EVERY_SHARD) this.freeBlocks.push(first);
    else this.freeSingles.push(first);
  }
}
