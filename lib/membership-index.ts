/**
 * The main thread's side of one namespace's membership: it interns socket ids
 * and rooms to integers and is the only writer of the shared tables described
 * in `shared-tables.ts`. Every operation here is synchronous, which is what
 * keeps `socket.rooms`, room events and "joined sockets get the next
 * broadcast" exact.
 */
import type { Room, SocketId } from "socket.io-adapter";
import {
  collectAlive,
  collectShard,
  markExcluded,
  LIST_COUNT,
  LIST_HEAD,
  LIST_TAIL,
  MEMBER_NODE,
  MEMBER_SEQ_F64,
  MEMBER_SLOT,
  MEMBER_STRIDE,
  NODE_ENTRY,
  NODE_ROOM,
  NODE_SLOT,
  NODE_SOCK_NEXT,
  NODE_SOCK_PREV,
  NODE_STRIDE,
  NONE,
  RecipientMarks,
  roomRunOffset,
  ROOM_SHARD_STRIDE,
  RUN_CAPACITY,
  RUN_COUNT,
  RUN_START,
  RUN_USED,
  SOCKET_ALIVE,
  SOCKET_STRIDE,
  viewTables,
  type RecipientQuery,
  type SharedTables,
  type TablesView,
} from "./shared-tables";

const INITIAL_SLOTS = 64;
const INITIAL_ROOMS = 64;
const INITIAL_NODES = 256;
const INITIAL_MEMBERS = 256;
/** Holes a run may hold beyond its member count before a leave compacts it. */
const RUN_HOLE_SLACK = 8;
const EMPTY = new Int32Array(0);

/** A stack of integers kept off the JS heap (free slot, room and node ids). */
class IntStack {
  private items = new Int32Array(16);
  private length = 0;

  push(value: number): void {
    if (this.length === this.items.length) {
      const grown = new Int32Array(this.items.length * 2);
      grown.set(this.items);
      this.items = grown;
    }
    this.items[this.length++] = value;
  }

  /** Returns the last value pushed, or NONE when empty. */
  pop(): number {
    return this.length === 0 ? NONE : this.items[--this.length];
  }

  clear(): void {
    this.length = 0;
    this.items = new Int32Array(16);
  }
}

function newTables(shardCount: number): SharedTables {
  return {
    shardCount,
    members: new SharedArrayBuffer(INITIAL_MEMBERS * MEMBER_STRIDE * 4),
    nodes: new SharedArrayBuffer(INITIAL_NODES * NODE_STRIDE * 4),
    rooms: new SharedArrayBuffer(INITIAL_ROOMS * shardCount * ROOM_SHARD_STRIDE * 4),
    sockets: new SharedArrayBuffer(INITIAL_SLOTS * SOCKET_STRIDE * 4),
  };
}

function growShared(old: SharedArrayBuffer, bytes: number): SharedArrayBuffer {
  const grown = new SharedArrayBuffer(bytes);
  new Int32Array(grown).set(new Int32Array(old));
  return grown;
}

function grown(array: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const bigger = new Int32Array(array.length * 2);
  bigger.set(array);
  return bigger;
}

/** Where an iteration over one member run stands: the entry it last gave out (relative to the run's start) and its join sequence. */
interface RunCursor {
  rel: number;
  seq: number;
}

/** Where an iteration over one socket's list stands: the node it last gave out, and that node's successor then. */
interface ListCursor {
  last: number;
  lastSeq: number;
  next: number;
  nextSeq: number;
}

function newCursor(): ListCursor {
  return { last: NONE, lastSeq: 0, next: NONE, nextSeq: 0 };
}

function hashPair(roomId: number, slot: number): number {
  let h = Math.imul(roomId, 0x9e3779b1) ^ Math.imul(slot + 0x632be5ab, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12);
}

/** A broadcast filter interned against this index, with the work it implies. */
export interface InternedQuery extends RecipientQuery {
  /** Memberships and slots the query will visit: decides where it runs. */
  readonly cost: number;
}

export class MembershipIndex {
  readonly shardCount: number;

  private tablesValue: SharedTables;
  private view: TablesView;

  private readonly roomIds = new Map<Room, number>();
  private roomNames: (Room | undefined)[] = [];
  private roomSizes = new Int32Array(INITIAL_ROOMS);
  private readonly freeRoomIds = new IntStack();
  private roomHighWater = 0;

  private readonly slotIds = new Map<SocketId, number>();
  private slotSids: (SocketId | undefined)[] = [];
  private readonly freeSlots = new IntStack();
  private slotHighWaterValue = 0;

  private readonly freeNodes = new IntStack();
  private nodeHighWater = 0;
  private membershipCount = 0;

  /** End of the used part of `members`, and how much of it is left behind by runs that moved. */
  private membersTop = 0;
  private membersGarbage = 0;
  /**
   * The join sequence numbers in `members` (holes keep theirs). Runs are
   * appended in join order and compacted in order, so each run is sorted by
   * it: this orders a room's members across shards and lets iterators
   * survive joins and leaves between steps.
   */
  private memberSeqs: Float64Array;
  private lastJoinSeq = 0;
  /** Bumped each time a slot or room id is (re)assigned, so stale views read empty. */
  private slotGenerations = new Int32Array(INITIAL_SLOTS);
  private roomGenerations = new Int32Array(INITIAL_ROOMS);

  /** Open-addressing index (room id, slot) -> node; main thread only. */
  private pairIndex = new Int32Array(1024).fill(NONE);

  private readonly marks = new RecipientMarks();
  private readonly singleRoomQuery: RecipientQuery = { everyone: false, rooms: new Int32Array(1), except: EMPTY, slotHighWater: 0 };
  private spareRecipients: Int32Array | undefined;

  constructor(shardCount: number) {
    this.shardCount = shardCount;
    this.tablesValue = newTables(shardCount);
    this.view = viewTables(this.tablesValue);
    this.memberSeqs = new Float64Array(this.tablesValue.members);
  }

  /** The current shared buffers; replaced (never mutated in size) on growth. */
  get tables(): SharedTables {
    return this.tablesValue;
  }

  get slotHighWater(): number {
    return this.slotHighWaterValue;
  }

  /** Slots the shared tables have room for; bounds every shard's answer. */
  get slotCapacity(): number {
    return this.view.sockets.length / SOCKET_STRIDE;
  }

  get roomCount(): number {
    return this.roomIds.size;
  }

  get socketCount(): number {
    return this.slotIds.size;
  }

  get memberships(): number {
    return this.membershipCount;
  }

  /** Sockets and memberships in each shard (a socket's memberships live in its shard). */
  shardSizes(): { sockets: number; memberships: number }[] {
    const sizes = Array.from({ length: this.shardCount }, () => ({ sockets: 0, memberships: 0 }));
    const sockets = this.view.sockets;
    for (const slot of this.slotIds.values()) {
      const shard = sizes[slot % this.shardCount];
      shard.sockets++;
      shard.memberships += sockets[slot * SOCKET_STRIDE + LIST_COUNT];
    }
    return sizes;
  }

  /** Bytes of shared memory the tables hold. */
  get sharedBytes(): number {
    const t = this.tablesValue;
    return t.members.byteLength + t.nodes.byteLength + t.rooms.byteLength + t.sockets.byteLength;
  }

  // ---- sockets ----

  slotOf(id: SocketId): number | undefined {
    return this.slotIds.get(id);
  }

  socketIdOf(slot: number): SocketId | undefined {
    return this.slotSids[slot];
  }

  socketIds(): IterableIterator<SocketId> {
    return this.slotIds.keys();
  }

  /** Gives socket `id` a slot (it must not have one). */
  addSocket(id: SocketId): number {
    let slot = this.freeSlots.pop();
    if (slot === NONE) {
      slot = this.slotHighWaterValue++;
      if (slot >= this.slotCapacity) this.growSockets();
    }
    const base = slot * SOCKET_STRIDE;
    const sockets = this.view.sockets;
    sockets[base + LIST_HEAD] = NONE;
    sockets[base + LIST_TAIL] = NONE;
    sockets[base + LIST_COUNT] = 0;
    sockets[base + SOCKET_ALIVE] = 1;
    this.slotGenerations[slot]++;
    this.slotIds.set(id, slot);
    this.slotSids[slot] = id;
    return slot;
  }

  /** Frees the slot of a socket that has left every room. */
  removeSocket(slot: number): void {
    const id = this.slotSids[slot];
    if (id === undefined) return;
    if (this.socketRoomCount(slot) !== 0) throw new Error(`internal: slot ${slot} freed with ${this.socketRoomCount(slot)} memberships`);
    this.view.sockets[slot * SOCKET_STRIDE + SOCKET_ALIVE] = 0;
    this.slotIds.delete(id);
    this.slotSids[slot] = undefined;
    this.freeSlots.push(slot);
  }

  /** Changes whenever `slot` is given to a socket: a view taken earlier is stale. */
  slotGeneration(slot: number): number {
    return this.slotGenerations[slot];
  }

  socketRoomCount(slot: number): number {
    return this.view.sockets[slot * SOCKET_STRIDE + LIST_COUNT];
  }

  /**
   * Room ids of `slot`, in join order. Like a JS Set iterator, it visits rooms
   * joined during the iteration and skips rooms left before it reaches them;
   * it ends if the socket leaves (its slot's generation changes).
   */
  *socketRoomIds(slot: number): IterableIterator<number> {
    const generation = this.slotGenerations[slot];
    const head = () => this.view.sockets[slot * SOCKET_STRIDE + LIST_HEAD];
    const cursor = newCursor();
    for (;;) {
      if (this.slotGenerations[slot] !== generation) return;
      const node = this.peek(cursor, head, NODE_SOCK_NEXT);
      if (node === NONE) return;
      this.advance(cursor, node, NODE_SOCK_NEXT);
      yield this.view.nodes[node * NODE_STRIDE + NODE_ROOM];
    }
  }

  /** The room id `slot` joined first among those it is still in, or NONE. */
  firstRoomIdOf(slot: number): number {
    const node = this.view.sockets[slot * SOCKET_STRIDE + LIST_HEAD];
    return node === NONE ? NONE : this.view.nodes[node * NODE_STRIDE + NODE_ROOM];
  }

  // ---- rooms ----

  roomIdOf(room: Room): number | undefined {
    return this.roomIds.get(room);
  }

  roomNameOf(roomId: number): Room | undefined {
    return this.roomNames[roomId];
  }

  roomNamesInOrder(): IterableIterator<Room> {
    return this.roomIds.keys();
  }

  roomSize(roomId: number): number {
    return this.roomSizes[roomId];
  }

  /** Interns a new, empty room. */
  addRoom(room: Room): number {
    let roomId = this.freeRoomIds.pop();
    if (roomId === NONE) {
      roomId = this.roomHighWater++;
      if (roomId >= this.roomSizes.length) this.growRooms();
      const rooms = this.view.rooms;
      for (let shard = 0; shard < this.shardCount; shard++) {
        const at = roomRunOffset(this.shardCount, roomId, shard);
        rooms[at + RUN_START] = NONE;
        rooms[at + RUN_USED] = 0;
        rooms[at + RUN_COUNT] = 0;
        rooms[at + RUN_CAPACITY] = 0;
      }
    }
    this.roomSizes[roomId] = 0;
    this.roomGenerations[roomId]++;
    this.roomIds.set(room, roomId);
    this.roomNames[roomId] = room;
    return roomId;
  }

  /** Forgets an empty room; its id is reused. */
  removeRoom(roomId: number): void {
    // Its runs are empty: give their space back (an id is reused with runs of capacity 0).
    const rooms = this.view.rooms;
    for (let shard = 0; shard < this.shardCount; shard++) {
      const at = roomRunOffset(this.shardCount, roomId, shard);
      this.membersGarbage += rooms[at + RUN_CAPACITY];
      rooms[at + RUN_START] = NONE;
      rooms[at + RUN_USED] = 0;
      rooms[at + RUN_COUNT] = 0;
      rooms[at + RUN_CAPACITY] = 0;
    }
    const room = this.roomNames[roomId];
    this.roomIds.delete(room as Room);
    this.roomNames[roomId] = undefined;
    this.freeRoomIds.push(roomId);
  }

  /** Changes whenever `roomId` is given to a room: a view taken earlier is stale. */
  roomGeneration(roomId: number): number {
    return this.roomGenerations[roomId];
  }

  /**
   * Slots of `roomId` in join order, merged across the shards' lists. Like a
   * JS Set iterator, it visits sockets that join during the iteration and
   * skips those that leave before it reaches them.
   */
  *roomSlots(roomId: number): IterableIterator<number> {
    const generation = this.roomGenerations[roomId];
    const shardCount = this.shardCount;
    const cursors: RunCursor[] = Array.from({ length: shardCount }, () => ({ rel: NONE, seq: 0 }));
    for (;;) {
      if (this.roomGenerations[roomId] !== generation) return;
      const seqs = this.memberSeqs;
      let best = NONE;
      let bestShard = 0;
      for (let shard = 0; shard < shardCount; shard++) {
        const entry = this.peekRun(roomRunOffset(shardCount, roomId, shard), cursors[shard]);
        if (entry !== NONE && (best === NONE || seqs[entry * 2 + MEMBER_SEQ_F64] < seqs[best * 2 + MEMBER_SEQ_F64])) {
          best = entry;
          bestShard = shard;
        }
      }
      if (best === NONE) return;
      const cursor = cursors[bestShard];
      cursor.rel = best - this.view.rooms[roomRunOffset(shardCount, roomId, bestShard) + RUN_START];
      cursor.seq = seqs[best * 2 + MEMBER_SEQ_F64];
      yield this.view.members[best * MEMBER_STRIDE + MEMBER_SLOT];
    }
  }

  /**
   * The first entry of the run at `at` that joined after the cursor's last
   * one and is still there (not a hole), or NONE. Runs are sorted by join
   * sequence; compaction moves entries, in which case the cursor's place is
   * found again by binary search.
   */
  private peekRun(at: number, cursor: RunCursor): number {
    const { rooms, members } = this.view;
    const seqs = this.memberSeqs;
    const start = rooms[at + RUN_START];
    const used = rooms[at + RUN_USED];
    let rel: number;
    if (cursor.rel === NONE) rel = 0;
    else if (cursor.rel < used && seqs[(start + cursor.rel) * 2 + MEMBER_SEQ_F64] === cursor.seq) rel = cursor.rel + 1;
    else {
      let lo = 0;
      let hi = used;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (seqs[(start + mid) * 2 + MEMBER_SEQ_F64] <= cursor.seq) lo = mid + 1;
        else hi = mid;
      }
      rel = lo;
    }
    for (; rel < used; rel++) if (members[(start + rel) * MEMBER_STRIDE + MEMBER_SLOT] !== NONE) return start + rel;
    return NONE;
  }

  // ---- memberships ----

  has(slot: number, roomId: number): boolean {
    return this.findPair(roomId, slot) >= 0;
  }

  /** Adds `slot` to `roomId`; false if it was already there. */
  join(slot: number, roomId: number): boolean {
    if (this.findPair(roomId, slot) >= 0) return false;
    const node = this.allocateNode();
    const seq = ++this.lastJoinSeq;
    const entry = this.appendToRun(roomRunOffset(this.shardCount, roomId, slot % this.shardCount), slot, node, seq);
    const { nodes, sockets } = this.view;
    const base = node * NODE_STRIDE;
    nodes[base + NODE_ROOM] = roomId;
    nodes[base + NODE_SLOT] = slot;
    nodes[base + NODE_ENTRY] = entry;

    const sockList = slot * SOCKET_STRIDE;
    const sockTail = sockets[sockList + LIST_TAIL];
    nodes[base + NODE_SOCK_PREV] = sockTail;
    nodes[base + NODE_SOCK_NEXT] = NONE;
    if (sockTail === NONE) sockets[sockList + LIST_HEAD] = node;
    else nodes[sockTail * NODE_STRIDE + NODE_SOCK_NEXT] = node;
    sockets[sockList + LIST_TAIL] = node;
    sockets[sockList + LIST_COUNT]++;

    this.roomSizes[roomId]++;
    this.membershipCount++;
    this.insertPair(node);
    return true;
  }

  /** Removes `slot` from `roomId`; false if it was not there. */
  leave(slot: number, roomId: number): boolean {
    const at = this.findPair(roomId, slot);
    if (at < 0) return false;
    const node = this.pairIndex[at];
    this.deletePairAt(at);
    const { nodes, sockets } = this.view;
    const base = node * NODE_STRIDE;

    this.removeFromRun(roomRunOffset(this.shardCount, roomId, slot % this.shardCount), nodes[base + NODE_ENTRY]);
    this.view.nodes[base + NODE_ENTRY] = NONE;

    const sockList = slot * SOCKET_STRIDE;
    const sockNext = nodes[base + NODE_SOCK_NEXT];
    const sockPrev = nodes[base + NODE_SOCK_PREV];
    if (sockPrev === NONE) sockets[sockList + LIST_HEAD] = sockNext;
    else nodes[sockPrev * NODE_STRIDE + NODE_SOCK_NEXT] = sockNext;
    if (sockNext === NONE) sockets[sockList + LIST_TAIL] = sockPrev;
    else nodes[sockNext * NODE_STRIDE + NODE_SOCK_PREV] = sockPrev;
    sockets[sockList + LIST_COUNT]--;

    this.roomSizes[roomId]--;
    this.membershipCount--;
    this.freeNodes.push(node);
    return true;
  }

  // ---- queries ----

  /**
   * Interns a broadcast filter. Unknown rooms are dropped: they have no
   * members. `rooms` empty means every socket, as in socket.io.
   */
  internQuery(rooms: ReadonlySet<Room>, except: ReadonlySet<Room> | undefined): InternedQuery {
    let cost = 0;
    const exceptIds = except && except.size > 0 ? this.internExisting(except) : EMPTY;
    for (let i = 0; i < exceptIds.length; i++) cost += this.roomSizes[exceptIds[i]];
    if (rooms.size === 0) {
      cost += this.slotHighWaterValue;
      return { everyone: true, rooms: EMPTY, except: exceptIds, slotHighWater: this.slotHighWaterValue, cost };
    }
    const roomIds = this.internExisting(rooms);
    for (let i = 0; i < roomIds.length; i++) cost += this.roomSizes[roomIds[i]];
    return { everyone: false, rooms: roomIds, except: exceptIds, slotHighWater: this.slotHighWaterValue, cost };
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
    return spare !== undefined && spare.length >= this.slotCapacity ? spare : new Int32Array(this.slotCapacity);
  }

  returnRecipients(buffer: Int32Array): void {
    if (this.spareRecipients === undefined || this.spareRecipients.length < buffer.length) this.spareRecipients = buffer;
  }

  /** Answers a query on this thread into `out`; returns the number of recipient slots. */
  collectLocally(query: RecipientQuery, out: Int32Array): number {
    if (query.everyone) {
      // One pass in slot order rather than shard by shard (see mergeAscending).
      const epoch = this.marks.begin(query.slotHighWater);
      const seen = this.marks.array;
      for (let shard = 0; shard < this.shardCount; shard++) markExcluded(this.view, shard, query.except, seen, epoch);
      return collectAlive(this.view.sockets, 0, 1, query.slotHighWater, seen, epoch, out, 0);
    }
    let count = 0;
    for (let shard = 0; shard < this.shardCount; shard++) {
      count = collectShard(this.view, shard, query, this.marks, out, count);
    }
    return count;
  }

  /**
   * Answers a query on this thread in the in-memory adapter's order: every
   * socket in connection order, or the rooms in the given order, each room's
   * members in join order, each socket at the first place it appears. Used
   * where the order is visible (fetchSockets, socketsJoin...). Returns a copy.
   */
  collectOrdered(query: RecipientQuery): Int32Array {
    const epoch = this.marks.begin(this.slotCapacity);
    const seen = this.marks.array;
    for (let shard = 0; shard < this.shardCount; shard++) markExcluded(this.view, shard, query.except, seen, epoch);
    const out = new Int32Array(query.everyone ? this.slotIds.size : this.orderedBound(query));
    let n = 0;
    if (query.everyone) {
      for (const slot of this.slotIds.values()) if (seen[slot] !== epoch) out[n++] = slot;
      return out.subarray(0, n);
    }
    const { members, rooms } = this.view;
    const seqs = this.memberSeqs;
    const shardCount = this.shardCount;
    const cursors = new Int32Array(shardCount);
    const ends = new Int32Array(shardCount);
    for (let i = 0; i < query.rooms.length; i++) {
      for (let shard = 0; shard < shardCount; shard++) {
        const at = roomRunOffset(shardCount, query.rooms[i], shard);
        cursors[shard] = rooms[at + RUN_START];
        ends[shard] = rooms[at + RUN_START] + rooms[at + RUN_USED];
      }
      // Merge the shards' runs (each in join order) by join sequence.
      for (;;) {
        let best = -1;
        let bestSeq = 0;
        for (let shard = 0; shard < shardCount; shard++) {
          let entry = cursors[shard];
          const end = ends[shard];
          while (entry < end && members[entry * MEMBER_STRIDE + MEMBER_SLOT] === NONE) entry++;
          cursors[shard] = entry;
          if (entry < end && (best === -1 || seqs[entry * 2 + MEMBER_SEQ_F64] < bestSeq)) {
            best = shard;
            bestSeq = seqs[entry * 2 + MEMBER_SEQ_F64];
          }
        }
        if (best === -1) break;
        const slot = members[cursors[best]++ * MEMBER_STRIDE + MEMBER_SLOT];
        if (seen[slot] !== epoch) {
          seen[slot] = epoch;
          out[n++] = slot;
        }
      }
    }
    return out.subarray(0, n);
  }

  private orderedBound(query: RecipientQuery): number {
    let bound = 0;
    for (let i = 0; i < query.rooms.length; i++) bound += this.roomSizes[query.rooms[i]];
    return Math.min(bound, this.slotIds.size);
  }

  /**
   * The member slots of one room, shard by shard: the fast path of a
   * broadcast to one room with nothing excluded (a socket's own-id room on
   * every `socket.emit()` with connection state recovery), with no query to
   * build and no marks to set.
   */
  membersOf(roomId: number, out: Int32Array): number {
    this.singleRoomQuery.rooms[0] = roomId;
    return this.collectLocally(this.singleRoomQuery, out);
  }

  /** Answers one shard on this thread (the main thread's share of a cooperative query). */
  collectShardInto(shard: number, query: RecipientQuery, out: Int32Array, offset: number): number {
    return collectShard(this.view, shard, query, this.marks, out, offset);
  }

  /** Drops everything, shared buffers included; the index is empty afterwards. */
  clear(): void {
    this.tablesValue = newTables(this.shardCount);
    this.view = viewTables(this.tablesValue);
    this.roomIds.clear();
    this.roomNames = [];
    this.slotIds.clear();
    this.slotSids = [];
    this.freeRoomIds.clear();
    this.freeSlots.clear();
    this.freeNodes.clear();
    this.roomHighWater = 0;
    this.slotHighWaterValue = 0;
    this.nodeHighWater = 0;
    this.membershipCount = 0;
    this.pairIndex = new Int32Array(1024).fill(NONE);
    // Sized with the tables, which start small again.
    this.roomSizes = new Int32Array(INITIAL_ROOMS);
    this.roomGenerations = new Int32Array(INITIAL_ROOMS);
    this.slotGenerations = new Int32Array(INITIAL_SLOTS);
    this.membersTop = 0;
    this.membersGarbage = 0;
    this.memberSeqs = new Float64Array(this.tablesValue.members);
    this.spareRecipients = undefined;
  }

  // ---- internals ----

  private internExisting(rooms: ReadonlySet<Room>): Int32Array {
    const ids = new Int32Array(rooms.size);
    let n = 0;
    for (const room of rooms) {
      const id = this.roomIds.get(room);
      if (id !== undefined) ids[n++] = id;
    }
    return n === ids.length ? ids : ids.subarray(0, n);
  }

  private allocateNode(): number {
    const free = this.freeNodes.pop();
    if (free !== NONE) return free;
    const node = this.nodeHighWater++;
    if (node * NODE_STRIDE >= this.view.nodes.length) {
      this.replaceTables({ nodes: growShared(this.tablesValue.nodes, this.tablesValue.nodes.byteLength * 2) });
    }
    return node;
  }

  private growRooms(): void {
    this.roomSizes = grown(this.roomSizes);
    this.roomGenerations = grown(this.roomGenerations);
    this.replaceTables({ rooms: growShared(this.tablesValue.rooms, this.tablesValue.rooms.byteLength * 2) });
  }

  private growSockets(): void {
    this.slotGenerations = grown(this.slotGenerations);
    this.replaceTables({ sockets: growShared(this.tablesValue.sockets, this.tablesValue.sockets.byteLength * 2) });
  }

  /** The first node after the cursor's position still in the list, or NONE. */
  private peek(cursor: ListCursor, head: () => number, nextField: number): number {
    const nodes = this.view.nodes;
    if (cursor.last === NONE) return head();
    // Still there: read its successor now, so appends made meanwhile are seen.
    if (this.nodeSeq(cursor.last) === cursor.lastSeq) return nodes[cursor.last * NODE_STRIDE + nextField];
    // It left: its successor at the time, if that one is still there.
    if (cursor.next !== NONE && this.nodeSeq(cursor.next) === cursor.nextSeq) return cursor.next;
    // Both left: the first node that joined after it (lists are in join order).
    for (let node = head(); node !== NONE; node = nodes[node * NODE_STRIDE + nextField]) {
      if (this.nodeSeq(node) > cursor.lastSeq) return node;
    }
    return NONE;
  }

  private advance(cursor: ListCursor, node: number, nextField: number): void {
    const next = this.view.nodes[node * NODE_STRIDE + nextField];
    cursor.last = node;
    cursor.lastSeq = this.nodeSeq(node);
    cursor.next = next;
    cursor.nextSeq = next === NONE ? 0 : this.nodeSeq(next);
  }

  /** Join sequence number of a live node, 0 for a free one. */
  private nodeSeq(node: number): number {
    const { nodes, rooms } = this.view;
    const base = node * NODE_STRIDE;
    const entry = nodes[base + NODE_ENTRY];
    if (entry === NONE) return 0;
    const at = roomRunOffset(this.shardCount, nodes[base + NODE_ROOM], nodes[base + NODE_SLOT] % this.shardCount);
    return this.memberSeqs[(rooms[at + RUN_START] + entry) * 2 + MEMBER_SEQ_F64];
  }

  // ---- member runs ----

  /** Appends a member to the run at `at` (making room if it is full); returns its place in the run. */
  private appendToRun(at: number, slot: number, node: number, seq: number): number {
    let rooms = this.view.rooms;
    if (rooms[at + RUN_USED] === rooms[at + RUN_CAPACITY]) {
      this.makeRoomInRun(at);
      rooms = this.view.rooms;
    }
    const used = rooms[at + RUN_USED];
    const entry = rooms[at + RUN_START] + used;
    this.view.members[entry * MEMBER_STRIDE + MEMBER_SLOT] = slot;
    this.view.members[entry * MEMBER_STRIDE + MEMBER_NODE] = node;
    this.memberSeqs[entry * 2 + MEMBER_SEQ_F64] = seq;
    rooms[at + RUN_USED] = used + 1;
    rooms[at + RUN_COUNT]++;
    return used;
  }

  /** Leaves a hole at place `rel` of the run at `at`; compacts the run once holes outnumber members. */
  private removeFromRun(at: number, rel: number): void {
    const rooms = this.view.rooms;
    const entry = rooms[at + RUN_START] + rel;
    // A hole's node and seq stay as they were: only its slot says it is a hole.
    this.view.members[entry * MEMBER_STRIDE + MEMBER_SLOT] = NONE;
    const count = --rooms[at + RUN_COUNT];
    const start = rooms[at + RUN_START];
    let used = rooms[at + RUN_USED];
    if (count === 0) {
      rooms[at + RUN_USED] = 0;
      return;
    }
    if (entry === start + used - 1) {
      // The last entry: drop it and the holes before it.
      const members = this.view.members;
      do used--;
      while (members[(start + used - 1) * MEMBER_STRIDE + MEMBER_SLOT] === NONE);
      rooms[at + RUN_USED] = used;
    } else if (used - count > count + RUN_HOLE_SLACK) {
      this.compactRun(at);
    }
  }

  /**
   * A full run: compacted in place if half of it is holes (paid for by the
   * leaves that made them), else moved as it is to a run twice its size.
   */
  private makeRoomInRun(at: number): void {
    const rooms = this.view.rooms;
    const capacity = rooms[at + RUN_CAPACITY];
    const count = rooms[at + RUN_COUNT];
    if (capacity > 0 && capacity - count >= capacity / 2) {
      this.compactRun(at);
      return;
    }
    const grownCapacity = Math.max(1, capacity * 2);
    const start = this.allocateRun(grownCapacity);
    // allocateRun may have compacted `members`: read the run's header afresh.
    this.moveRun(this.view.rooms, at, start);
    this.membersGarbage += this.view.rooms[at + RUN_CAPACITY];
    this.view.rooms[at + RUN_CAPACITY] = grownCapacity;
  }

  /** Removes the holes of the run at `at`, keeping its order and place. */
  private compactRun(at: number): void {
    const rooms = this.view.rooms;
    const members = this.view.members;
    const nodes = this.view.nodes;
    const start = rooms[at + RUN_START];
    const end = (start + rooms[at + RUN_USED]) * MEMBER_STRIDE;
    let to = start * MEMBER_STRIDE;
    for (let from = to; from < end; from += MEMBER_STRIDE) {
      if (members[from + MEMBER_SLOT] === NONE) continue;
      if (from !== to) {
        for (let i = 0; i < MEMBER_STRIDE; i++) members[to + i] = members[from + i];
        nodes[members[to + MEMBER_NODE] * NODE_STRIDE + NODE_ENTRY] = to / MEMBER_STRIDE - start;
      }
      to += MEMBER_STRIDE;
    }
    rooms[at + RUN_USED] = to / MEMBER_STRIDE - start;
  }

  /**
   * Copies the run at `at`, holes included (so that each node's place in its
   * run stays valid), to entry `to`, which has room for it, and makes `to`
   * the run's start. The source may be an older buffer being compacted; the
   * destination is the current one.
   */
  private moveRun(rooms: Int32Array, at: number, to: number, from = this.view.members): void {
    const members = this.view.members;
    const begin = rooms[at + RUN_START] * MEMBER_STRIDE;
    const length = rooms[at + RUN_USED] * MEMBER_STRIDE;
    const dest = to * MEMBER_STRIDE;
    if (length < 256) {
      // Most runs are small: a loop beats making subarrays.
      for (let i = 0; i < length; i++) members[dest + i] = from[begin + i];
    } else if (from === members) {
      members.copyWithin(dest, begin, begin + length);
    } else {
      members.set(from.subarray(begin, begin + length), dest);
    }
    rooms[at + RUN_START] = to;
  }

  /**
   * Space for a run of `capacity` entries at the end of `members`. When it is
   * full, every run is rewritten into a new buffer with half as much again
   * free (garbage dropped): O(1) amortized per entry allocated.
   */
  private allocateRun(capacity: number): number {
    const length = this.view.members.length / MEMBER_STRIDE;
    if (this.membersTop + capacity > length) {
      const needed = this.membersTop - this.membersGarbage + capacity;
      this.compactMembers(Math.max(length, Math.ceil(needed * 1.5)));
    }
    const start = this.membersTop;
    this.membersTop += capacity;
    return start;
  }

  /** Rewrites every run, without holes and garbage, into new buffers of `length` entries. */
  private compactMembers(length: number): void {
    const oldMembers = this.view.members;
    this.replaceTables({ members: new SharedArrayBuffer(length * MEMBER_STRIDE * 4) });
    const rooms = this.view.rooms;
    let top = 0;
    for (let at = 0; at < this.roomHighWater * this.shardCount * ROOM_SHARD_STRIDE; at += ROOM_SHARD_STRIDE) {
      const capacity = rooms[at + RUN_CAPACITY];
      if (capacity === 0) continue;
      this.moveRun(rooms, at, top, oldMembers);
      top += capacity;
    }
    this.membersTop = top;
    this.membersGarbage = 0;
  }


  private replaceTables(changed: Partial<SharedTables>): void {
    this.tablesValue = { ...this.tablesValue, ...changed };
    this.view = viewTables(this.tablesValue);
    if (changed.members) this.memberSeqs = new Float64Array(changed.members);
  }

  private homeOf(node: number): number {
    const nodes = this.view.nodes;
    return hashPair(nodes[node * NODE_STRIDE + NODE_ROOM], nodes[node * NODE_STRIDE + NODE_SLOT]) & (this.pairIndex.length - 1);
  }

  /** Position of (roomId, slot) in the pair index, or -1. */
  private findPair(roomId: number, slot: number): number {
    const index = this.pairIndex;
    const mask = index.length - 1;
    const nodes = this.view.nodes;
    for (let at = hashPair(roomId, slot) & mask; ; at = (at + 1) & mask) {
      const node = index[at];
      if (node === NONE) return -1;
      const base = node * NODE_STRIDE;
      if (nodes[base + NODE_ROOM] === roomId && nodes[base + NODE_SLOT] === slot) return at;
    }
  }

  private insertPair(node: number): void {
    if (this.membershipCount * 2 > this.pairIndex.length) this.rehash(this.pairIndex.length * 2);
    const index = this.pairIndex;
    const mask = index.length - 1;
    let at = this.homeOf(node);
    while (index[at] !== NONE) at = (at + 1) & mask;
    index[at] = node;
  }

  /** Linear-probing delete by backward shift: no tombstones to pile up. */
  private deletePairAt(hole: number): void {
    const index = this.pairIndex;
    const mask = index.length - 1;
    for (let at = (hole + 1) & mask; index[at] !== NONE; at = (at + 1) & mask) {
      const home = this.homeOf(index[at]);
      const between = hole <= at ? home > hole && home <= at : home > hole || home <= at;
      if (!between) {
        index[hole] = index[at];
        hole = at;
      }
    }
    index[hole] = NONE;
    if (this.pairIndex.length > 1024 && this.membershipCount * 8 < this.pairIndex.length) {
      this.rehash(this.pairIndex.length / 2);
    }
  }

  private rehash(size: number): void {
    const old = this.pairIndex;
    this.pairIndex = new Int32Array(size).fill(NONE);
    const mask = size - 1;
    for (let i = 0; i < old.length; i++) {
      const node = old[i];
      if (node === NONE) continue;
      let at = this.homeOf(node);
      while (this.pairIndex[at] !== NONE) at = (at + 1) & mask;
      this.pairIndex[at] = node;
    }
  }
}
