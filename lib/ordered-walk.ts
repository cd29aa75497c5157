/**
 * Walks of the membership in the in-memory adapter's order, where the order
 * is visible: a socket's rooms and a room's members in join order (live
 * iterators, with JS Set iterator semantics), and recipients of
 * fetchSockets, socketsJoin and the like in the order the in-memory adapter
 * would find them.
 */
import type { JoinSeqNumbering, JoinSeqTranslation, MemberLists } from "./member-lists";
import { OrderedRoomCache } from "./ordered-room-cache";
import type { RoomTable } from "./room-table";
import {
  LIST_COUNT,
  LIST_HEAD,
  LIST_TAIL,
  isMarked,
  markExcluded,
  NODE_ROOM,
  NODE_ROOM_NEXT,
  NODE_ROOM_PREV,
  NODE_SLOT,
  NODE_SOCK_NEXT,
  NODE_STRIDE,
  NONE,
  roomListOffset,
  SOCKET_STRIDE,
  type RecipientMarks,
  type RecipientQuery,
} from "./shared-tables";
import type { SlotTable } from "./slot-table";
import type { TableBuffers } from "./table-buffers";

/**
 * Where an iteration over one list stands: the node it last gave out, and
 * that node's successor then, with their join sequences in `numbering`
 * (fractional after a renumbering if the node has left: see
 * `JoinSeqTranslation`).
 */
interface ListCursor {
  last: number;
  lastSeq: number;
  next: number;
  nextSeq: number;
  numbering: JoinSeqNumbering;
}

function newCursor(numbering: JoinSeqNumbering): ListCursor {
  return { last: NONE, lastSeq: 0, next: NONE, nextSeq: 0, numbering };
}

export class OrderedWalks {
  private readonly buffers: TableBuffers;
  private readonly slots: SlotTable;
  private readonly rooms: RoomTable;
  private readonly members: MemberLists;
  private readonly marks: RecipientMarks;
  /** Scratch for roomInOrder: one room's members, shard by shard, with their join sequences. */
  private orderSlots = new Int32Array(0);
  private orderSeqs = new Uint32Array(0);

  /** Memberships in the index (bounds what the cached orders hold). */
  private readonly memberships: () => number;
  private readonly orderedRooms: OrderedRoomCache;

  constructor(buffers: TableBuffers, slots: SlotTable, rooms: RoomTable, members: MemberLists, marks: RecipientMarks, memberships: () => number) {
    this.buffers = buffers;
    this.slots = slots;
    this.rooms = rooms;
    this.members = members;
    this.marks = marks;
    this.memberships = memberships;
    this.orderedRooms = new OrderedRoomCache(buffers, rooms);
    // The cached orders were checked against join sequences of the old numbering.
    members.onRenumber(() => this.orderedRooms.clear());
  }

  /**
   * Room ids of `slot`, in join order. Like a JS Set iterator, it visits rooms
   * joined during the iteration and skips rooms left before it reaches them;
   * it ends if the socket leaves (its slot's generation changes).
   */
  *socketRoomIds(slot: number): IterableIterator<number> {
    const generation = this.slots.generation(slot);
    const head = () => this.buffers.view.sockets[slot * SOCKET_STRIDE + LIST_HEAD];
    const cursor = newCursor(this.members.joinSeqNumbering);
    for (;;) {
      if (this.slots.generation(slot) !== generation) return;
      const node = this.peek(cursor, head, NODE_SOCK_NEXT);
      if (node === NONE) return;
      this.advance(cursor, node, NODE_SOCK_NEXT);
      yield this.buffers.view.nodes[node * NODE_STRIDE + NODE_ROOM];
    }
  }

  /**
   * Slots of `roomId` in join order, merged across the shards' lists. Like a
   * JS Set iterator, it visits sockets that join during the iteration and
   * skips those that leave before it reaches them.
   */
  *roomSlots(roomId: number): IterableIterator<number> {
    const generation = this.rooms.generation(roomId);
    const shardCount = this.buffers.shardCount;
    // Looked up at each step: a join from another shard can move a list's header (`room-lists.ts`).
    const heads = Array.from({ length: shardCount }, (_, shard) => () => {
      const view = this.buffers.view;
      return view.rooms[roomListOffset(view.roomLists, roomId, shard) + LIST_HEAD];
    });
    const cursors = heads.map(() => newCursor(this.members.joinSeqNumbering));
    for (;;) {
      if (this.rooms.generation(roomId) !== generation) return;
      const seqs = this.members.joinSeqs;
      let best = NONE;
      let bestShard = 0;
      for (let shard = 0; shard < shardCount; shard++) {
        const node = this.peek(cursors[shard], heads[shard], NODE_ROOM_NEXT);
        if (node !== NONE && (best === NONE || seqs[node] < seqs[best])) {
          best = node;
          bestShard = shard;
        }
      }
      if (best === NONE) return;
      this.advance(cursors[bestShard], best, NODE_ROOM_NEXT);
      yield this.buffers.view.nodes[best * NODE_STRIDE + NODE_SLOT];
    }
  }

  /**
   * Answers a query on this thread in the in-memory adapter's order: every
   * socket in connection order, or the rooms in the given order, each room's
   * members in join order, each socket at the first place it appears. Used
   * where the order is visible (fetchSockets, socketsJoin...). The result is
   * the caller's to read, never to write: for one room and no exclusions it
   * is the room's cached order itself (see `ordered-room-cache.ts`).
   */
  collectOrdered(query: RecipientQuery): Int32Array {
    if (!query.everyone && query.rooms.length === 1 && query.except.length === 0) {
      // A room's list holds each member once: its order is the answer.
      return this.roomInOrder(query.rooms[0]);
    }
    const view = this.buffers.view;
    const bits = this.marks.begin(this.slots.capacity);
    for (let shard = 0; shard < view.shardCount; shard++) markExcluded(view, shard, query.except, bits);
    const out = new Int32Array(query.everyone ? this.slots.count : this.orderedBound(query));
    let n = 0;
    if (query.everyone) {
      for (const slot of this.slots.slots()) if (!isMarked(bits, slot)) out[n++] = slot;
      return out.subarray(0, n);
    }
    for (let i = 0; i < query.rooms.length; i++) {
      const members = this.roomInOrder(query.rooms[i]);
      for (let j = 0; j < members.length; j++) {
        const slot = members[j];
        const word = slot >>> 5;
        const bit = 1 << (slot & 31);
        if ((bits[word] & bit) === 0) {
          bits[word] |= bit;
          out[n++] = slot;
        }
      }
    }
    // Without exclusions, the only marks are the recipients: clear just those.
    if (query.except.length === 0) this.marks.clearSlots(out, 0, n);
    return out.subarray(0, n);
  }

  /** Drops the scratch buffers and the cached orders. */
  clear(): void {
    this.orderSlots = new Int32Array(0);
    this.orderSeqs = new Uint32Array(0);
    this.orderedRooms.clear();
  }

  /**
   * The members of `roomId` in join order: the cached copy while the room is
   * unchanged, else merged from the shards' lists (by join sequence) into a
   * new array, which is cached. Never written after it is returned.
   */
  private roomInOrder(roomId: number): Int32Array {
    const joinSeqs = this.members.joinSeqs;
    const cached = this.orderedRooms.lookUp(roomId, joinSeqs);
    if (cached !== undefined) return cached;
    const { roomLists, rooms, shardCount } = this.buffers.view;
    const starts = new Int32Array(shardCount);
    const ends = new Int32Array(shardCount);
    let total = 0;
    for (let shard = 0; shard < shardCount; shard++) {
      starts[shard] = total;
      total += rooms[roomListOffset(roomLists, roomId, shard) + LIST_COUNT];
      ends[shard] = total;
    }
    if (this.orderSlots.length < total) {
      this.orderSlots = new Int32Array(total);
      this.orderSeqs = new Uint32Array(total);
    }
    const slots = this.orderSlots;
    const seqs = this.orderSeqs;
    this.gatherRoom(roomId, starts, ends);
    const ordered = new Int32Array(total);
    const cursors = starts;
    for (let n = 0; n < total; n++) {
      let best = -1;
      let bestSeq = 0;
      for (let shard = 0; shard < shardCount; shard++) {
        const at = cursors[shard];
        if (at < ends[shard] && (best === -1 || seqs[at] < bestSeq)) {
          best = shard;
          bestSeq = seqs[at];
        }
      }
      ordered[n] = slots[cursors[best]++];
    }
    this.orderedRooms.store(roomId, ordered, joinSeqs, this.memberships());
    return ordered;
  }

  /**
   * Copies the slots and join sequences of each shard's list of `roomId`
   * into `orderSlots`/`orderSeqs` [starts[shard], ends[shard]), in list
   * order. Each list is walked from both ends at once, and all shards in
   * lockstep: following one list is a chain of dependent cache misses, and
   * 2 × shardCount independent chains let the CPU wait for several at once.
   */
  private gatherRoom(roomId: number, starts: Int32Array, ends: Int32Array): void {
    const { nodes, roomLists, rooms, shardCount } = this.buffers.view;
    const nodeSeqs = this.members.joinSeqs;
    const slots = this.orderSlots;
    const seqs = this.orderSeqs;
    const forward = new Int32Array(shardCount);
    const backward = new Int32Array(shardCount);
    const low = new Int32Array(shardCount);
    const high = new Int32Array(shardCount);
    let left = 0;
    for (let shard = 0; shard < shardCount; shard++) {
      const at = roomListOffset(roomLists, roomId, shard);
      forward[shard] = rooms[at + LIST_HEAD];
      backward[shard] = rooms[at + LIST_TAIL];
      low[shard] = starts[shard];
      high[shard] = ends[shard] - 1;
      left += ends[shard] - starts[shard];
    }
    while (left > 0) {
      for (let shard = 0; shard < shardCount; shard++) {
        let lo = low[shard];
        let hi = high[shard];
        if (lo > hi) continue;
        const f = forward[shard];
        slots[lo] = nodes[f * NODE_STRIDE + NODE_SLOT];
        seqs[lo] = nodeSeqs[f];
        forward[shard] = nodes[f * NODE_STRIDE + NODE_ROOM_NEXT];
        lo++;
        left--;
        if (lo <= hi) {
          const b = backward[shard];
          slots[hi] = nodes[b * NODE_STRIDE + NODE_SLOT];
          seqs[hi] = nodeSeqs[b];
          backward[shard] = nodes[b * NODE_STRIDE + NODE_ROOM_PREV];
          hi--;
          left--;
        }
        low[shard] = lo;
        high[shard] = hi;
      }
    }
  }

  private orderedBound(query: RecipientQuery): number {
    let bound = 0;
    for (let i = 0; i < query.rooms.length; i++) bound += this.rooms.sizeOf(query.rooms[i]);
    return Math.min(bound, this.slots.count);
  }

  /** The first node after the cursor's position still in the list, or NONE. */
  private peek(cursor: ListCursor, head: () => number, nextField: number): number {
    const nodes = this.buffers.view.nodes;
    const seqs = this.members.joinSeqs;
    if (cursor.last === NONE) return head();
    // Renumbered since its last step: its kept sequences into the numbering in effect.
    for (let numbering = cursor.numbering; numbering.next !== undefined; numbering = numbering.next) {
      const translate = numbering.translate as JoinSeqTranslation;
      cursor.lastSeq = translate(cursor.lastSeq);
      cursor.nextSeq = translate(cursor.nextSeq);
      cursor.numbering = numbering.next;
    }
    // Still there: read its successor now, so appends made meanwhile are seen.
    if (seqs[cursor.last] === cursor.lastSeq) return nodes[cursor.last * NODE_STRIDE + nextField];
    // It left: its successor at the time, if that one is still there.
    if (cursor.next !== NONE && seqs[cursor.next] === cursor.nextSeq) return cursor.next;
    // Both left: the first node that joined after it (lists are in join order).
    for (let node = head(); node !== NONE; node = nodes[node * NODE_STRIDE + nextField]) {
      if (seqs[node] > cursor.lastSeq) return node;
    }
    return NONE;
  }

  private advance(cursor: ListCursor, node: number, nextField: number): void {
    const next = this.buffers.view.nodes[node * NODE_STRIDE + nextField];
    const seqs = this.members.joinSeqs;
    cursor.last = node;
    cursor.numbering = this.members.joinSeqNumbering;
    cursor.lastSeq = seqs[node];
    cursor.next = next;
    cursor.nextSeq = next === NONE ? 0 : seqs[next];
  }
}
