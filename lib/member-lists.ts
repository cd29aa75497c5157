/**
 * Memberships: one node per (slot, room id) in the `nodes` table, linked into
 * the room's list for the socket's shard and into the socket's list of rooms
 * (layout: `shared-tables.ts`). Both lists are kept in join order, which the
 * ordered walks rely on.
 */
import type { Room } from "socket.io-adapter";
import { grownUint32, IntStack } from "./compact-containers";
import type { PairIndex } from "./pair-index";
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
import { INITIAL_NODES, type TableBuffers } from "./table-buffers";

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
  private readonly pairs: PairIndex;
  private readonly lists: RoomLists;
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
  private seqs = new Uint32Array(INITIAL_NODES);
  private lastJoinSeq = 0;
  private renumberings = 0;
  private numberingInEffect: JoinSeqNumbering = {};
  private renumbered: () => void = () => {};
  /** Where the warm* hints put what they read, so that the reads are not optimized away. */
  private warmSink = 0;

  constructor(buffers: TableBuffers, rooms: RoomTable, pairs: PairIndex, lists: RoomLists) {
    this.buffers = buffers;
    this.rooms = rooms;
    this.pairs = pairs;
    this.lists = lists;
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
    return this.pairs.find(roomId, slot, this.buffers.view.nodes) >= 0;
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
    if (this.has(slot, roomId)) return false;
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
    this.pairs.insert(node, roomId, slot);
    return true;
  }

  /** Removes `slot` from `roomId`; false if it was not there. */
  leave(slot: number, roomId: number): boolean {
    const { nodes, roomLists, rooms, sockets, shardCount } = this.buffers.view;
    const at = this.pairs.find(roomId, slot, nodes);
    if (at < 0) return false;
    const node = this.pairs.nodeAt(at);
    this.pairs.deleteAt(at);

    const roomList = roomListOffset(roomLists, roomId, slot % shardCount);
    unlink(nodes, rooms, roomList, node, NODE_ROOM_PREV, NODE_ROOM_NEXT);
    rooms[roomList + LIST_RUN] = NONE; // its run, if any, is stale
    unlink(nodes, sockets, slot * SOCKET_STRIDE, node, NODE_SOCK_PREV, NODE_SOCK_NEXT);

    this.rooms.memberLeft(roomId);
    this.seqs[node] = 0;
    this.freeNodes.push(node);
    return true;
  }

  /**
   * Reads, for each room of `slot`, what leaving it will write (its pair
   * index entry, its neighbours in the room's list), without changing
   * anything. Leaving rooms one by one makes these cache misses one after
   * another; reading them first, independently, lets the CPU wait for many
   * at once. Only a hint: listeners may change the rooms meanwhile.
   */
  warmLeaves(slot: number): void {
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
   * The same for joining `roomNames`: reads the pair index entry and the list
   * tail each join will write, for the rooms that exist, first.
   */
  warmJoins(slot: number, roomNames: Iterable<Room>): void {
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
    const sorted = new Uint32Array(this.pairs.size);
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
