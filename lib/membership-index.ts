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
  NODE_ROOM,
  NODE_ROOM_NEXT,
  NODE_ROOM_PREV,
  NODE_SLOT,
  NODE_SOCK_NEXT,
  NODE_SOCK_PREV,
  NODE_STRIDE,
  NONE,
  RecipientMarks,
  roomListOffset,
  ROOM_SHARD_STRIDE,
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

const CHUNK_BITS = 12;
const CHUNK_MASK = (1 << CHUNK_BITS) - 1;

/**
 * Strings by integer id (room names, socket ids), in chunks of 4096: a plain
 * array grows by half its size at a time, so up to a third of it can be
 * unused slack on the heap, where this wastes at most one chunk.
 */
class ChunkedStrings<T extends string> {
  private chunks: (T | undefined)[][] = [];

  get(id: number): T | undefined {
    const chunk = this.chunks[id >> CHUNK_BITS];
    return chunk === undefined ? undefined : chunk[id & CHUNK_MASK];
  }

  set(id: number, value: T | undefined): void {
    const index = id >> CHUNK_BITS;
    while (this.chunks.length <= index) this.chunks.push(new Array<T | undefined>(CHUNK_MASK + 1).fill(undefined));
    this.chunks[index][id & CHUNK_MASK] = value;
  }

  clear(): void {
    this.chunks = [];
  }
}

function newTables(shardCount: number): SharedTables {
  return {
    shardCount,
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

function grown(array: Int32Array<ArrayBuffer>, fill = 0): Int32Array<ArrayBuffer> {
  const bigger = new Int32Array(array.length * 2);
  if (fill !== 0) bigger.fill(fill, array.length);
  bigger.set(array);
  return bigger;
}

/** Where an iteration over one list stands: the node it last gave out, and that node's successor then. */
interface ListCursor {
  last: number;
  lastSeq: number;
  next: number;
  nextSeq: number;
}

function newCursor(): ListCursor {
  return { last: NONE, lastSeq: 0, next: NONE, nextSeq: 0 };
}

/** Entries of the smallest pair index (it never shrinks below). */
const PAIR_INDEX_MIN = 1024;

/** A pair index of `size` entries (node, hash), all empty. */
function newPairIndex(size: number): Int32Array<ArrayBuffer> {
  return new Int32Array(2 * size).fill(NONE);
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

  /**
   * Room name -> id, for every room but own-id rooms: a room created with the
   * id of a connected socket as its name (socket.io puts each socket in one)
   * is found through that socket's slot instead, so that the id string is
   * keyed once (in slotIds), not twice. When its socket goes while the room
   * still has members, the room moves here.
   */
  private readonly roomIds = new Map<Room, number>();
  /** Slot -> its own-id room, or NONE; room id -> the slot it is the own-id room of, or NONE. */
  private ownRoomOfSlot = new Int32Array(INITIAL_SLOTS).fill(NONE);
  private ownerSlotOfRoom = new Int32Array(INITIAL_ROOMS).fill(NONE);
  private liveRooms = 0;
  /**
   * Rooms in creation order (as the in-memory adapter's Map iterates them):
   * a doubly linked list over room ids, with creation sequence numbers so
   * that an iterator survives the removal of the room it stands on.
   */
  private roomOrderNext = new Int32Array(INITIAL_ROOMS);
  private roomOrderPrev = new Int32Array(INITIAL_ROOMS);
  private roomOrderSeqs = new Float64Array(INITIAL_ROOMS);
  private roomOrderHead = NONE;
  private roomOrderTail = NONE;
  private lastRoomSeq = 0;
  private readonly roomNames = new ChunkedStrings<Room>();
  private roomSizes = new Int32Array(INITIAL_ROOMS);
  private readonly freeRoomIds = new IntStack();
  private roomHighWater = 0;

  private readonly slotIds = new Map<SocketId, number>();
  private readonly slotSids = new ChunkedStrings<SocketId>();
  private readonly freeSlots = new IntStack();
  private slotHighWaterValue = 0;

  private readonly freeNodes = new IntStack();
  private nodeHighWater = 0;
  private membershipCount = 0;

  /**
   * Join sequence number of each live node, 0 once it left; main thread only.
   * Lists are appended in join order, so this orders a room's members across
   * shards and lets iterators survive joins and leaves between steps.
   */
  private nodeSeqs = new Float64Array(INITIAL_NODES);
  private lastJoinSeq = 0;
  /** Where the warm* hints put what they read, so that the reads are not optimized away. */
  private warmSink = 0;
  /** Bumped each time a slot or room id is (re)assigned, so stale views read empty. */
  private slotGenerations = new Int32Array(INITIAL_SLOTS);
  private roomGenerations = new Int32Array(INITIAL_ROOMS);

  /**
   * Open-addressing index (room id, slot) -> node; main thread only. Each
   * entry is two ints, the node and the pair's hash, so that probing and
   * backward-shift deletes compare hashes in place instead of reading the
   * nodes (a cache miss each, at scale). Kept at most 3/4 full.
   */
  private pairIndex = newPairIndex(PAIR_INDEX_MIN);
  private pairMask = PAIR_INDEX_MIN - 1;

  private readonly marks = new RecipientMarks();
  private readonly singleRoomQuery: RecipientQuery = { everyone: false, rooms: new Int32Array(1), except: EMPTY, slotHighWater: 0 };
  private spareRecipients: Int32Array | undefined;
  /** Scratch for collectOrdered: one room's members, shard by shard, with their join sequences. */
  private orderSlots = new Int32Array(0);
  private orderSeqs = new Float64Array(0);

  constructor(shardCount: number) {
    this.shardCount = shardCount;
    this.tablesValue = newTables(shardCount);
    this.view = viewTables(this.tablesValue);
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
    return this.liveRooms;
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
    return t.nodes.byteLength + t.rooms.byteLength + t.sockets.byteLength;
  }

  // ---- sockets ----

  slotOf(id: SocketId): number | undefined {
    return this.slotIds.get(id);
  }

  socketIdOf(slot: number): SocketId | undefined {
    return this.slotSids.get(slot);
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
    this.slotSids.set(slot, id);
    return slot;
  }

  /** Frees the slot of a socket that has left every room. */
  removeSocket(slot: number): void {
    const id = this.slotSids.get(slot);
    if (id === undefined) return;
    if (this.socketRoomCount(slot) !== 0) throw new Error(`internal: slot ${slot} freed with ${this.socketRoomCount(slot)} memberships`);
    const ownRoom = this.ownRoomOfSlot[slot];
    if (ownRoom !== NONE) {
      // Its own-id room outlives it (others are in it): key it by name now.
      this.roomIds.set(id, ownRoom);
      this.ownerSlotOfRoom[ownRoom] = NONE;
      this.ownRoomOfSlot[slot] = NONE;
    }
    this.view.sockets[slot * SOCKET_STRIDE + SOCKET_ALIVE] = 0;
    this.slotGenerations[slot]++;
    this.slotIds.delete(id);
    this.slotSids.set(slot, undefined);
    this.freeSlots.push(slot);
  }

  /**
   * Changes whenever `slot` is given to a socket or freed: while it is
   * unchanged, the slot still belongs to the socket it belonged to.
   */
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

  /**
   * Reads, for each room of `slot`, what leaving it will write (its pair
   * index entry, its neighbours in the room's list), without changing
   * anything. Leaving rooms one by one makes these cache misses one after
   * another; reading them first, independently, lets the CPU wait for many
   * at once. Only a hint: listeners may change the rooms meanwhile.
   */
  warmLeaves(slot: number): void {
    const { nodes } = this.view;
    const index = this.pairIndex;
    const mask = this.pairMask;
    let acc = 0;
    for (let node = this.view.sockets[slot * SOCKET_STRIDE + LIST_HEAD]; node !== NONE; node = nodes[node * NODE_STRIDE + NODE_SOCK_NEXT]) {
      const base = node * NODE_STRIDE;
      acc += index[2 * (hashPair(nodes[base + NODE_ROOM], slot) & mask)];
      const next = nodes[base + NODE_ROOM_NEXT];
      const prev = nodes[base + NODE_ROOM_PREV];
      if (next !== NONE) acc += nodes[next * NODE_STRIDE + NODE_ROOM_PREV];
      if (prev !== NONE) acc += nodes[prev * NODE_STRIDE + NODE_ROOM_NEXT];
    }
    this.warmSink = acc;
  }

  /**
   * The same for joining `rooms`: reads the pair index entry and the list
   * tail each join will write, for the rooms that exist, first.
   */
  warmJoins(slot: number, roomNames: Iterable<Room>): void {
    const { nodes, rooms } = this.view;
    const index = this.pairIndex;
    const mask = this.pairMask;
    const shardCount = this.shardCount;
    const shard = slot % shardCount;
    let acc = 0;
    for (const room of roomNames) {
      const roomId = this.roomIdOf(room);
      if (roomId === undefined) continue;
      acc += index[2 * (hashPair(roomId, slot) & mask)];
      const tail = rooms[roomListOffset(shardCount, roomId, shard) + LIST_TAIL];
      if (tail !== NONE) acc += nodes[tail * NODE_STRIDE + NODE_ROOM_NEXT];
    }
    this.warmSink = acc;
  }

  /** The room id `slot` joined first among those it is still in, or NONE. */
  firstRoomIdOf(slot: number): number {
    const node = this.view.sockets[slot * SOCKET_STRIDE + LIST_HEAD];
    return node === NONE ? NONE : this.view.nodes[node * NODE_STRIDE + NODE_ROOM];
  }

  // ---- rooms ----

  roomIdOf(room: Room): number | undefined {
    const roomId = this.roomIds.get(room);
    if (roomId !== undefined || typeof room !== "string") return roomId;
    const slot = this.slotIds.get(room);
    if (slot === undefined) return undefined;
    const ownRoom = this.ownRoomOfSlot[slot];
    return ownRoom === NONE ? undefined : ownRoom;
  }

  roomNameOf(roomId: number): Room | undefined {
    return this.roomNames.get(roomId);
  }

  /**
   * Room names in creation order. Like a Map iterator, it visits rooms
   * created during the iteration and skips those removed before it reaches them.
   */
  *roomNamesInOrder(): IterableIterator<Room> {
    let last = NONE;
    let lastSeq = 0;
    let lastGeneration = 0;
    // The successor of `last` when it was given out, to resume in O(1) when
    // `last` is removed meanwhile (iterating and deleting the current room is
    // common: disconnecting the socket of an own-id room, say).
    let successor = NONE;
    let successorSeq = 0;
    for (;;) {
      let next: number;
      if (last === NONE) next = this.roomOrderHead;
      else if (this.roomGenerations[last] === lastGeneration) next = this.roomOrderNext[last];
      else if (successor !== NONE && this.roomOrderSeqs[successor] === successorSeq && this.roomNames.get(successor) !== undefined) next = successor;
      else {
        // Both gone: the first room created after `last`.
        next = this.roomOrderHead;
        while (next !== NONE && this.roomOrderSeqs[next] <= lastSeq) next = this.roomOrderNext[next];
      }
      if (next === NONE) return;
      last = next;
      lastSeq = this.roomOrderSeqs[next];
      lastGeneration = this.roomGenerations[next];
      successor = this.roomOrderNext[next];
      successorSeq = successor === NONE ? 0 : this.roomOrderSeqs[successor];
      yield this.roomNames.get(next) as Room;
    }
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
        const at = roomListOffset(this.shardCount, roomId, shard);
        rooms[at + LIST_HEAD] = NONE;
        rooms[at + LIST_TAIL] = NONE;
        rooms[at + LIST_COUNT] = 0;
      }
    }
    this.roomSizes[roomId] = 0;
    this.roomGenerations[roomId]++;
    const owner = typeof room === "string" ? this.slotIds.get(room) : undefined;
    if (owner !== undefined && this.ownRoomOfSlot[owner] === NONE) {
      this.ownRoomOfSlot[owner] = roomId;
      this.ownerSlotOfRoom[roomId] = owner;
    } else {
      this.roomIds.set(room, roomId);
    }
    this.roomNames.set(roomId, room);
    this.liveRooms++;
    // Append to the creation order.
    this.roomOrderSeqs[roomId] = ++this.lastRoomSeq;
    this.roomOrderNext[roomId] = NONE;
    this.roomOrderPrev[roomId] = this.roomOrderTail;
    if (this.roomOrderTail === NONE) this.roomOrderHead = roomId;
    else this.roomOrderNext[this.roomOrderTail] = roomId;
    this.roomOrderTail = roomId;
    return roomId;
  }

  /** Forgets an empty room; its id is reused. */
  removeRoom(roomId: number): void {
    const room = this.roomNames.get(roomId);
    const owner = this.ownerSlotOfRoom[roomId];
    if (owner !== NONE) {
      this.ownRoomOfSlot[owner] = NONE;
      this.ownerSlotOfRoom[roomId] = NONE;
    } else {
      this.roomIds.delete(room as Room);
    }
    this.liveRooms--;
    const prev = this.roomOrderPrev[roomId];
    const next = this.roomOrderNext[roomId];
    if (prev === NONE) this.roomOrderHead = next;
    else this.roomOrderNext[prev] = next;
    if (next === NONE) this.roomOrderTail = prev;
    else this.roomOrderPrev[next] = prev;
    this.roomNames.set(roomId, undefined);
    this.roomGenerations[roomId]++;
    this.freeRoomIds.push(roomId);
  }

  /**
   * Changes whenever `roomId` is given to a room or freed: while it is
   * unchanged, the id still names the room it named.
   */
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
    const heads = Array.from({ length: shardCount }, (_, shard) => {
      const at = roomListOffset(shardCount, roomId, shard) + LIST_HEAD;
      return () => this.view.rooms[at];
    });
    const cursors = heads.map(newCursor);
    for (;;) {
      if (this.roomGenerations[roomId] !== generation) return;
      let best = NONE;
      let bestShard = 0;
      for (let shard = 0; shard < shardCount; shard++) {
        const node = this.peek(cursors[shard], heads[shard], NODE_ROOM_NEXT);
        if (node !== NONE && (best === NONE || this.nodeSeqs[node] < this.nodeSeqs[best])) {
          best = node;
          bestShard = shard;
        }
      }
      if (best === NONE) return;
      this.advance(cursors[bestShard], best, NODE_ROOM_NEXT);
      yield this.view.nodes[best * NODE_STRIDE + NODE_SLOT];
    }
  }

  // ---- memberships ----

  has(slot: number, roomId: number): boolean {
    return this.findPair(roomId, slot) >= 0;
  }

  /** Adds `slot` to `roomId`; false if it was already there. */
  join(slot: number, roomId: number): boolean {
    if (this.findPair(roomId, slot) >= 0) return false;
    const node = this.allocateNode();
    const { nodes, rooms, sockets } = this.view;
    const base = node * NODE_STRIDE;
    nodes[base + NODE_ROOM] = roomId;
    nodes[base + NODE_SLOT] = slot;
    this.nodeSeqs[node] = ++this.lastJoinSeq;

    const roomList = roomListOffset(this.shardCount, roomId, slot % this.shardCount);
    const roomTail = rooms[roomList + LIST_TAIL];
    nodes[base + NODE_ROOM_PREV] = roomTail;
    nodes[base + NODE_ROOM_NEXT] = NONE;
    if (roomTail === NONE) rooms[roomList + LIST_HEAD] = node;
    else nodes[roomTail * NODE_STRIDE + NODE_ROOM_NEXT] = node;
    rooms[roomList + LIST_TAIL] = node;
    rooms[roomList + LIST_COUNT]++;

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
    this.insertPair(node, roomId, slot);
    return true;
  }

  /** Removes `slot` from `roomId`; false if it was not there. */
  leave(slot: number, roomId: number): boolean {
    const at = this.findPair(roomId, slot);
    if (at < 0) return false;
    const node = this.pairIndex[2 * at];
    this.deletePairAt(at);
    const { nodes, rooms, sockets } = this.view;
    const base = node * NODE_STRIDE;

    const roomList = roomListOffset(this.shardCount, roomId, slot % this.shardCount);
    const roomNext = nodes[base + NODE_ROOM_NEXT];
    const roomPrev = nodes[base + NODE_ROOM_PREV];
    if (roomPrev === NONE) rooms[roomList + LIST_HEAD] = roomNext;
    else nodes[roomPrev * NODE_STRIDE + NODE_ROOM_NEXT] = roomNext;
    if (roomNext === NONE) rooms[roomList + LIST_TAIL] = roomPrev;
    else nodes[roomNext * NODE_STRIDE + NODE_ROOM_PREV] = roomPrev;
    rooms[roomList + LIST_COUNT]--;

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
    this.nodeSeqs[node] = 0;
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
    const rooms = this.view.rooms;
    const shardCount = this.shardCount;
    const starts = new Int32Array(shardCount);
    const ends = new Int32Array(shardCount);
    const cursors = new Int32Array(shardCount);
    for (let i = 0; i < query.rooms.length; i++) {
      const roomId = query.rooms[i];
      let total = 0;
      for (let shard = 0; shard < shardCount; shard++) {
        starts[shard] = total;
        total += rooms[roomListOffset(shardCount, roomId, shard) + LIST_COUNT];
        ends[shard] = total;
      }
      if (this.orderSlots.length < total) {
        this.orderSlots = new Int32Array(total);
        this.orderSeqs = new Float64Array(total);
      }
      const slots = this.orderSlots;
      const seqs = this.orderSeqs;
      this.gatherRoom(roomId, starts, ends);
      // Merge the shards' lists (each in join order) by join sequence.
      cursors.set(starts);
      for (;;) {
        let best = -1;
        let bestSeq = 0;
        for (let shard = 0; shard < shardCount; shard++) {
          const at = cursors[shard];
          if (at < ends[shard] && (best === -1 || seqs[at] < bestSeq)) {
            best = shard;
            bestSeq = seqs[at];
          }
        }
        if (best === -1) break;
        const slot = slots[cursors[best]++];
        if (seen[slot] !== epoch) {
          seen[slot] = epoch;
          out[n++] = slot;
        }
      }
    }
    return out.subarray(0, n);
  }

  /**
   * Copies the slots and join sequences of each shard's list of `roomId`
   * into `orderSlots`/`orderSeqs` [starts[shard], ends[shard]), in list
   * order. Each list is walked from both ends at once, and all shards in
   * lockstep: following one list is a chain of dependent cache misses, and
   * 2 × shardCount independent chains let the CPU wait for several at once.
   */
  private gatherRoom(roomId: number, starts: Int32Array, ends: Int32Array): void {
    const { nodes, rooms } = this.view;
    const nodeSeqs = this.nodeSeqs;
    const slots = this.orderSlots;
    const seqs = this.orderSeqs;
    const shardCount = this.shardCount;
    const forward = new Int32Array(shardCount);
    const backward = new Int32Array(shardCount);
    const low = new Int32Array(shardCount);
    const high = new Int32Array(shardCount);
    let left = 0;
    for (let shard = 0; shard < shardCount; shard++) {
      const at = roomListOffset(shardCount, roomId, shard);
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
    this.roomNames.clear();
    this.ownRoomOfSlot = new Int32Array(INITIAL_SLOTS).fill(NONE);
    this.ownerSlotOfRoom = new Int32Array(INITIAL_ROOMS).fill(NONE);
    this.liveRooms = 0;
    this.roomOrderNext = new Int32Array(INITIAL_ROOMS);
    this.roomOrderPrev = new Int32Array(INITIAL_ROOMS);
    this.roomOrderSeqs = new Float64Array(INITIAL_ROOMS);
    this.roomOrderHead = NONE;
    this.roomOrderTail = NONE;
    this.slotIds.clear();
    this.slotSids.clear();
    this.freeRoomIds.clear();
    this.freeSlots.clear();
    this.freeNodes.clear();
    this.roomHighWater = 0;
    this.slotHighWaterValue = 0;
    this.nodeHighWater = 0;
    this.membershipCount = 0;
    this.pairIndex = newPairIndex(PAIR_INDEX_MIN);
    this.pairMask = PAIR_INDEX_MIN - 1;
    // Sized with the tables, which start small again.
    this.roomSizes = new Int32Array(INITIAL_ROOMS);
    this.roomGenerations = new Int32Array(INITIAL_ROOMS);
    this.slotGenerations = new Int32Array(INITIAL_SLOTS);
    this.nodeSeqs = new Float64Array(INITIAL_NODES);
    this.spareRecipients = undefined;
    this.orderSlots = new Int32Array(0);
    this.orderSeqs = new Float64Array(0);
  }

  // ---- internals ----

  private internExisting(rooms: ReadonlySet<Room>): Int32Array {
    const ids = new Int32Array(rooms.size);
    let n = 0;
    for (const room of rooms) {
      const id = this.roomIdOf(room);
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
      const seqs = new Float64Array(this.nodeSeqs.length * 2);
      seqs.set(this.nodeSeqs);
      this.nodeSeqs = seqs;
    }
    return node;
  }

  private growRooms(): void {
    this.roomSizes = grown(this.roomSizes);
    this.roomGenerations = grown(this.roomGenerations);
    this.ownerSlotOfRoom = grown(this.ownerSlotOfRoom, NONE);
    this.roomOrderNext = grown(this.roomOrderNext);
    this.roomOrderPrev = grown(this.roomOrderPrev);
    const seqs = new Float64Array(this.roomOrderSeqs.length * 2);
    seqs.set(this.roomOrderSeqs);
    this.roomOrderSeqs = seqs;
    this.replaceTables({ rooms: growShared(this.tablesValue.rooms, this.tablesValue.rooms.byteLength * 2) });
  }

  private growSockets(): void {
    this.slotGenerations = grown(this.slotGenerations);
    this.ownRoomOfSlot = grown(this.ownRoomOfSlot, NONE);
    this.replaceTables({ sockets: growShared(this.tablesValue.sockets, this.tablesValue.sockets.byteLength * 2) });
  }

  /** The first node after the cursor's position still in the list, or NONE. */
  private peek(cursor: ListCursor, head: () => number, nextField: number): number {
    const nodes = this.view.nodes;
    const seqs = this.nodeSeqs;
    if (cursor.last === NONE) return head();
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
    const next = this.view.nodes[node * NODE_STRIDE + nextField];
    cursor.last = node;
    cursor.lastSeq = this.nodeSeqs[node];
    cursor.next = next;
    cursor.nextSeq = next === NONE ? 0 : this.nodeSeqs[next];
  }

  private replaceTables(changed: Partial<SharedTables>): void {
    this.tablesValue = { ...this.tablesValue, ...changed };
    this.view = viewTables(this.tablesValue);
  }

  /** Position of (roomId, slot) in the pair index, or -1. */
  private findPair(roomId: number, slot: number): number {
    const index = this.pairIndex;
    const mask = this.pairMask;
    const hash = hashPair(roomId, slot);
    for (let at = hash & mask; ; at = (at + 1) & mask) {
      const node = index[2 * at];
      if (node === NONE) return -1;
      // The node's own fields only on a full hash match: no cache miss per probe.
      if (index[2 * at + 1] === hash) {
        const base = node * NODE_STRIDE;
        if (this.view.nodes[base + NODE_ROOM] === roomId && this.view.nodes[base + NODE_SLOT] === slot) return at;
      }
    }
  }

  private insertPair(node: number, roomId: number, slot: number): void {
    if (this.membershipCount * 4 > (this.pairMask + 1) * 3) this.rehash((this.pairMask + 1) * 2);
    const index = this.pairIndex;
    const mask = this.pairMask;
    const hash = hashPair(roomId, slot);
    let at = hash & mask;
    while (index[2 * at] !== NONE) at = (at + 1) & mask;
    index[2 * at] = node;
    index[2 * at + 1] = hash;
  }

  /** Linear-probing delete by backward shift: no tombstones to pile up. */
  private deletePairAt(hole: number): void {
    const index = this.pairIndex;
    const mask = this.pairMask;
    for (let at = (hole + 1) & mask; index[2 * at] !== NONE; at = (at + 1) & mask) {
      const home = index[2 * at + 1] & mask;
      const between = hole <= at ? home > hole && home <= at : home > hole || home <= at;
      if (!between) {
        index[2 * hole] = index[2 * at];
        index[2 * hole + 1] = index[2 * at + 1];
        hole = at;
      }
    }
    index[2 * hole] = NONE;
    if (this.pairMask + 1 > PAIR_INDEX_MIN && this.membershipCount * 8 < this.pairMask + 1) {
      this.rehash((this.pairMask + 1) / 2);
    }
  }

  private rehash(size: number): void {
    const old = this.pairIndex;
    const index = newPairIndex(size);
    const mask = size - 1;
    for (let i = 0; i < old.length; i += 2) {
      const node = old[i];
      if (node === NONE) continue;
      const hash = old[i + 1];
      let at = hash & mask;
      while (index[2 * at] !== NONE) at = (at + 1) & mask;
      index[2 * at] = node;
      index[2 * at + 1] = hash;
    }
    this.pairIndex = index;
    this.pairMask = mask;
  }

}
