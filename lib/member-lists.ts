/**
 * Memberships: one node per (slot, room id) in the `nodes` table, linked into
 * the room's list for the socket's shard and into the socket's list of rooms
 * (layout: `shared-tables.ts`). Both lists are kept in join order, which the
 * ordered walks rely on.
 *
 * Finding a membership: a socket in at most INDEXED_ABOVE rooms (nearly
 * all of them) is found by walking its own list, a few nodes that were
 * mostly allocated together; only the memberships of sockets beyond that are
 * in the pair index (`pair-index.ts`), whose entries cost 15 bytes of RSS
 * per membership when every membership has one.
 */
import type { Room } from "socket.io-adapter";
import { grownUint32, IntStack, type Uint32Column } from "./compact-containers";
import { PairIndex } from "./pair-index";
import type { RoomLists } from "./room-lists";
import type { RoomTable } from "./room-table";
import {
  LIST_COUNT,
  LIST_HEAD,
  LIST_RUN,
  LIST_TAIL,
  NODE_ROOM,
  NODE_ROOM_NEXT,
  NODE_ROOM_PREV,
  NODE_SLOT,
  NODE_SOCK_NEXT,
  NODE_SOCK_PREV,
  NODE_STRIDE,
  NONE,
  roomListOffset,
  SOCKET_STRIDE,
} from "./shared-tables";
import { INITIAL_NODES, INITIAL_SLOTS, type TableBuffers } from "./table-buffers";

/**
 * Appends `node` to the list whose header is at `list` in `lists` (a room's
 * list in `rooms`, or a socket's in `sockets`), through the node's `prev` and
 * `next` fields for that kind of list.
 */
export function append(nodes: Int32Array, lists: Int32Array, list: number, node: number, prev: number, next: number): void {
  const tail = lists[list + LIST_TAIL];
  nodes[node * NODE_STRIDE + prev] = tail;
  nodes[node * NODE_STRIDE + next] = NONE;
  if (tail === NONE) lists[list + LIST_HEAD] = node;
  else nodes[tail * NODE_STRIDE + next] = node;
  lists[list + LIST_TAIL] = node;
  lists[list + LIST_COUNT]++;
}

/** Takes `node` out of the list whose header is at `list` in `lists` (see {@link append}). */
function unlink(nodes: Int32Array, lists: Int32Array, list: number, node: number, prev: number, next: number): void {
  const after = nodes[node * NODE_STRIDE + next];
  const before = nodes[node * NODE_STRIDE + prev];
  if (before === NONE) lists[list + LIST_HEAD] = after;
  else nodes[before * NODE_STRIDE + next] = after;
  if (after === NONE) lists[list + LIST_TAIL] = before;
  else nodes[after * NODE_STRIDE + prev] = before;
  lists[list + LIST_COUNT]--;
}

/**
 * A socket in more rooms than this has its memberships in the pair index;
 * one in fewer is found by a walk of its list (at most this many nodes).
 * Above the usual ten rooms plus the own-id room, so that typical sockets
 * never reach the index.
 */
export const INDEXED_ABOVE = 16;

/** The bit of `roomId` in a socket's signature (see `MemberLists.signatures`): 5 bits of a multiplicative hash. */
function roomBit(roomId: number): number {
  return 1 << (Math.imul(roomId, 0x9e3779b1) >>> 27);
}

/** The last join sequence number given before the live ones are renumbered (they are uint32). */
export const MAX_JOIN_SEQ = 0xffffffff;

/**
 * Maps a join sequence number from before a renumbering to the numbering
 * after it: a live node's to its new one, a departed node's to a fraction
 * between its live neighbours' (so that "joined after it" still holds, and
 * no live node ever equals it). 0 (none) stays 0.
 */
export type JoinSeqTranslation = (seq: number) => number;

/**
 * One numbering of the join sequences: the one in effect, or an earlier one
 * with its translation into the next. An iterator keeps the numbering its
 * kept sequences are in and catches up when it next steps; an earlier
 * numbering (and its translation) lives only as long as some iterator holds
 * it, so nothing needs to track the iterators.
 */
export interface JoinSeqNumbering {
  /** Set when the next numbering replaced this one. */
  translate?: JoinSeqTranslation;
  next?: JoinSeqNumbering;
}

/** The first index in `sorted[0..length)` whose value is not below `value`. */
function lowerBound(sorted: Uint32Array, length: number, value: number): number {
  let low = 0;
  let high = length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle] < value) low = middle + 1;
    else high = middle;
  }
  return low;
}

export class MemberLists {
  private readonly buffers: TableBuffers;
  private readonly rooms: RoomTable;
  private readonly lists: RoomLists;
  /**
   * The memberships of the sockets flagged in `indexed`. A socket is indexed
   * (all its nodes at once) when a join takes it above INDEXED_ABOVE rooms,
   * and stays indexed until it has left every room: a socket that shrinks
   * back keeps a few entries rather than paying a delete per node, and one
   * that hovers around the bound never moves in and out.
   */
  private readonly pairs = new PairIndex();
  /** 1 for a slot whose memberships are in `pairs`; main thread only, grown on demand (slots past its end are 0). */
  private indexed = new Uint8Array(0);
  /**
   * Per slot not indexed, a bit per room it may be in (`roomBit`): a join
   * into a room whose bit is clear needs no walk (about 7 joins in 10 for a
   * socket in ten rooms). Leaves leave their bits set (a walk then finds
   * nothing and recomputes them); main thread only, doubled as slots need
   * (a column: off malloc once large, see compact-containers.ts).
   */
  private signatures: Uint32Column = new Uint32Array(INITIAL_SLOTS);
  private count = 0;
  private readonly freeNodes = new IntStack();
  private highWater = 0;
  /**
   * Join sequence number of each live node, 0 once it left; main thread only.
   * Lists are appended in join order, so this orders a room's members across
   * shards and lets iterators survive joins and leaves between steps. 4
   * bytes a node: when the counter reaches MAX_JOIN_SEQ (after billions of
   * joins), the live nodes are renumbered 1..n in the same order and the
   * renumbering listener translates what others kept.
   */
  private seqs: Uint32Column = new Uint32Array(INITIAL_NODES);
  private lastJoinSeq = 0;
  private renumberings = 0;
  private numberingInEffect: JoinSeqNumbering = {};
  private renumbered: () => void = () => {};
  /** Where the warm* hints put what they read, so that the reads are not optimized away. */
  private warmSink = 0;

  constructor(buffers: TableBuffers, rooms: RoomTable, lists: RoomLists) {
    this.buffers = buffers;
    this.rooms = rooms;
    this.lists = lists;
  }

  /** Memberships held. */
  get memberships(): number {
    return this.count;
  }

  /** Memberships in the pair index (see `pairs`). */
  get indexedMemberships(): number {
    return this.pairs.size;
  }

  /** Join sequence numbers by node (see `seqs`); replaced on growth. */
  get joinSeqs(): Uint32Array {
    return this.seqs;
  }

  /** Times the join sequences were renumbered (see `seqs`). */
  get joinSeqRenumberings(): number {
    return this.renumberings;
  }

  /** The numbering `joinSeqs` are in (see {@link JoinSeqNumbering}). */
  get joinSeqNumbering(): JoinSeqNumbering {
    return this.numberingInEffect;
  }

  /** Sets what is told right after a renumbering. */
  onRenumber(listener: () => void): void {
    this.renumbered = listener;
  }

  /**
   * For tests: the next join gets sequence number `seq + 1` (`seq` must not
   * be below the last one given), so that renumbering can be reached without
   * four billion joins.
   */
  skipJoinSeqsTo(seq: number): void {
    if (!Number.isInteger(seq) || seq < this.lastJoinSeq || seq > MAX_JOIN_SEQ) {
      throw new RangeError(`skipJoinSeqsTo(${seq}): expected an integer from ${this.lastJoinSeq} to ${MAX_JOIN_SEQ}`);
    }
    this.lastJoinSeq = seq;
  }

  has(slot: number, roomId: number): boolean {
    if (this.isIndexed(slot)) return this.pairs.find(roomId, slot, this.buffers.view.nodes) >= 0;
    return this.mayBeIn(slot, roomId) && this.listed(slot, roomId) !== NONE;
  }

  /** Rooms `slot` is in. */
  roomCountOf(slot: number): number {
    return this.buffers.view.sockets[slot * SOCKET_STRIDE + LIST_COUNT];
  }

  /** The room id `slot` joined first among those it is still in, or NONE. */
  firstRoomOf(slot: number): number {
    const { nodes, sockets } = this.buffers.view;
    const node = sockets[slot * SOCKET_STRIDE + LIST_HEAD];
    return node === NONE ? NONE : nodes[node * NODE_STRIDE + NODE_ROOM];
  }

  /** Adds `slot` to `roomId`; false if it was already there. */
  join(slot: number, roomId: number): boolean {
    const indexed = this.isIndexed(slot);
    if (indexed) {
      if (this.pairs.find(roomId, slot, this.buffers.view.nodes) >= 0) return false;
    } else if (this.mayBeIn(slot, roomId)) {
      if (this.listed(slot, roomId) !== NONE) return false;
      this.resign(slot);
    }
    const node = this.allocateNode();
    // Before reading the view: it may give the room a list in every shard, growing `rooms`.
    const roomList = this.lists.listForJoin(roomId, slot % this.buffers.shardCount);
    const { nodes, rooms, sockets } = this.buffers.view;
    const base = node * NODE_STRIDE;
    nodes[base + NODE_ROOM] = roomId;
    nodes[base + NODE_SLOT] = slot;
    if (this.lastJoinSeq === MAX_JOIN_SEQ) this.renumber();
    this.seqs[node] = ++this.lastJoinSeq;

    append(nodes, rooms, roomList, node, NODE_ROOM_PREV, NODE_ROOM_NEXT);
    rooms[roomList + LIST_RUN] = NONE; // its run, if any, is stale
    append(nodes, sockets, slot * SOCKET_STRIDE, node, NODE_SOCK_PREV, NODE_SOCK_NEXT);

    this.rooms.memberJoined(roomId);
    this.count++;
    if (indexed) this.pairs.insert(node, roomId, slot);
    else if (sockets[slot * SOCKET_STRIDE + LIST_COUNT] > INDEXED_ABOVE) this.index(slot);
    else this.sign(slot, roomId);
    return true;
  }

  /** Removes `slot` from `roomId`; false if it was not there. */
  leave(slot: number, roomId: number): boolean {
    const { nodes, roomLists, rooms, sockets, shardCount } = this.buffers.view;
    const indexed = this.isIndexed(slot);
    let node: number;
    if (indexed) {
      const at = this.pairs.find(roomId, slot, nodes);
      if (at < 0) return false;
      node = this.pairs.nodeAt(at);
      this.pairs.deleteAt(at);
    } else {
      // Leaving every room (delAll) leaves in join order: `node` is the list's head, no walk.
      node = this.mayBeIn(slot, roomId) ? this.listed(slot, roomId) : NONE;
      if (node === NONE) return false;
    }

    const roomList = roomListOffset(roomLists, roomId, slot % shardCount);
    unlink(nodes, rooms, roomList, node, NODE_ROOM_PREV, NODE_ROOM_NEXT);
    rooms[roomList + LIST_RUN] = NONE; // its run, if any, is stale
    unlink(nodes, sockets, slot * SOCKET_STRIDE, node, NODE_SOCK_PREV, NODE_SOCK_NEXT);

    this.rooms.memberLeft(roomId);
    this.seqs[node] = 0;
    this.freeNodes.push(node);
    this.count--;
    if (sockets[slot * SOCKET_STRIDE + LIST_COUNT] === 0) {
      if (indexed) this.indexed[slot] = 0;
      if (slot < this.signatures.length) this.signatures[slot] = 0;
    }
    return true;
  }

  /**
   * Reads, for each room of an indexed `slot`, what leaving it will write
   * (its pair index entry, its neighbours in the room's list), without
   * changing anything. Leaving rooms one by one makes these cache misses one
   * after another; reading them first, independently, lets the CPU wait for
   * many at once. Only a hint: listeners may change the rooms meanwhile.
   * Nothing for a socket not indexed: without index entries to read, reading
   * ahead its neighbours no longer paid (leave all, N=100k K=10, main-thread
   * CPU per membership in two A/B runs: 240 / 212 and 200 / 234 ns without,
   * 267 / 234 and 226 / 222 with; uniform / Zipf).
   */
  warmLeaves(slot: number): void {
    if (!this.isIndexed(slot)) return;
    const { nodes, roomLists, rooms, sockets, shardCount } = this.buffers.view;
    const pairs = this.pairs;
    const shard = slot % shardCount;
    let acc = 0;
    for (let node = sockets[slot * SOCKET_STRIDE + LIST_HEAD]; node !== NONE; node = nodes[node * NODE_STRIDE + NODE_SOCK_NEXT]) {
      const base = node * NODE_STRIDE;
      const roomId = nodes[base + NODE_ROOM];
      acc += pairs.homeEntry(roomId, slot);
      acc += rooms[roomListOffset(roomLists, roomId, shard) + LIST_COUNT];
      const next = nodes[base + NODE_ROOM_NEXT];
      const prev = nodes[base + NODE_ROOM_PREV];
      if (next !== NONE) acc += nodes[next * NODE_STRIDE + NODE_ROOM_PREV];
      if (prev !== NONE) acc += nodes[prev * NODE_STRIDE + NODE_ROOM_NEXT];
    }
    this.warmSink = acc;
  }

  /**
   * The same for an indexed `slot` joining `roomNames`: reads the pair index
   * entry and the list tail each join will write, for the rooms that exist,
   * first. Nothing for a socket not indexed: the room lookups by name it
   * costs outweighed the tails alone (join, N=100k K=10, main-thread CPU per
   * membership in two A/B runs: 316 / 328 and 328 / 297 ns without, 443 /
   * 358 and 372 / 318 with; uniform / Zipf).
   */
  warmJoins(slot: number, roomNames: Iterable<Room>): void {
    if (!this.isIndexed(slot)) return;
    const { nodes, roomLists, rooms, shardCount } = this.buffers.view;
    const pairs = this.pairs;
    const shard = slot % shardCount;
    let acc = 0;
    for (const room of roomNames) {
      const roomId = this.rooms.idOf(room);
      if (roomId === undefined) continue;
      acc += pairs.homeEntry(roomId, slot);
      const tail = rooms[roomListOffset(roomLists, roomId, shard) + LIST_TAIL];
      if (tail !== NONE) acc += nodes[tail * NODE_STRIDE + NODE_ROOM_NEXT];
    }
    this.warmSink = acc;
  }

  clear(): void {
    this.pairs.clear();
    this.indexed = new Uint8Array(0);
    this.signatures = new Uint32Array(INITIAL_SLOTS);
    this.count = 0;
    this.freeNodes.clear();
    this.highWater = 0;
    // Sized with the tables, which start small again.
    this.seqs = new Uint32Array(INITIAL_NODES);
  }

  /**
   * Renumbers the live nodes' join sequences 1..n in the same order, and
   * leaves how old numbers map to new ones in the numbering it ends. O(n log
   * n), once per MAX_JOIN_SEQ - n joins (n < 2^31: node indexes are int32).
   */
  private renumber(): void {
    const seqs = this.seqs;
    const sorted = new Uint32Array(this.count);
    let live = 0;
    for (let node = 0; node < this.highWater; node++) if (seqs[node] !== 0) sorted[live++] = seqs[node];
    sorted.subarray(0, live).sort();
    for (let node = 0; node < this.highWater; node++) if (seqs[node] !== 0) seqs[node] = lowerBound(sorted, live, seqs[node]) + 1;
    this.lastJoinSeq = live;
    this.renumberings++;
    const ended = this.numberingInEffect;
    ended.translate = (seq) => {
      if (seq === 0) return 0;
      const rank = lowerBound(sorted, live, seq);
      return rank < live && sorted[rank] === seq ? rank + 1 : rank + 0.5;
    };
    ended.next = this.numberingInEffect = {};
    this.renumbered();
  }

  private isIndexed(slot: number): boolean {
    return slot < this.indexed.length && this.indexed[slot] !== 0;
  }

  /** False if `slot` (not indexed) is certainly not in `roomId`: its bit is clear in the slot's signature. */
  private mayBeIn(slot: number, roomId: number): boolean {
    return slot < this.signatures.length && (this.signatures[slot] & roomBit(roomId)) !== 0;
  }

  /** Sets the bit of `roomId` in the signature of `slot` (not indexed). */
  private sign(slot: number, roomId: number): void {
    while (slot >= this.signatures.length) this.signatures = grownUint32(this.signatures);
    this.signatures[slot] |= roomBit(roomId);
  }

  /** Recomputes the signature of `slot` (not indexed) from its rooms, dropping the bits of rooms it left. */
  private resign(slot: number): void {
    const { nodes, sockets } = this.buffers.view;
    let signature = 0;
    for (let node = sockets[slot * SOCKET_STRIDE + LIST_HEAD]; node !== NONE; node = nodes[node * NODE_STRIDE + NODE_SOCK_NEXT]) {
      signature |= roomBit(nodes[node * NODE_STRIDE + NODE_ROOM]);
    }
    this.signatures[slot] = signature;
  }

  /**
   * The node of (slot, roomId) found by walking the socket's list (a socket
   * not indexed), or NONE. From both ends at once: nodes joined at different
   * times are a cache miss each, and the two chains' misses overlap, so the
   * walk waits for about a quarter of the list to find a member and half to
   * miss. Leaving every room (delAll) finds the head at the first step.
   */
  private listed(slot: number, roomId: number): number {
    const { nodes, sockets } = this.buffers.view;
    const header = slot * SOCKET_STRIDE;
    let front = sockets[header + LIST_HEAD];
    let back = sockets[header + LIST_TAIL];
    // The middle node of an odd count is compared twice.
    for (let steps = (sockets[header + LIST_COUNT] + 1) >>> 1; steps > 0; steps--) {
      if (nodes[front * NODE_STRIDE + NODE_ROOM] === roomId) return front;
      if (nodes[back * NODE_STRIDE + NODE_ROOM] === roomId) return back;
      front = nodes[front * NODE_STRIDE + NODE_SOCK_NEXT];
      back = nodes[back * NODE_STRIDE + NODE_SOCK_PREV];
    }
    return NONE;
  }

  /** Puts every membership of `slot` into the pair index and flags it indexed. */
  private index(slot: number): void {
    if (slot >= this.indexed.length) {
      const grown = new Uint8Array(Math.max(slot + 1, 2 * this.indexed.length, 64));
      grown.set(this.indexed);
      this.indexed = grown;
    }
    this.indexed[slot] = 1;
    const { nodes, sockets } = this.buffers.view;
    for (let node = sockets[slot * SOCKET_STRIDE + LIST_HEAD]; node !== NONE; node = nodes[node * NODE_STRIDE + NODE_SOCK_NEXT]) {
      this.pairs.insert(node, nodes[node * NODE_STRIDE + NODE_ROOM], slot);
    }
  }

  private allocateNode(): number {
    const free = this.freeNodes.pop();
    if (free !== NONE) return free;
    const node = this.highWater++;
    if (node * NODE_STRIDE >= this.buffers.view.nodes.length) {
      this.buffers.grow("nodes");
      this.seqs = grownUint32(this.seqs);
    }
    return node;
  }
}
