/**
 * Memberships: one node per (slot, room id) in the `nodes` table, linked into
 * the room's list for the socket's shard and into the socket's list of rooms
 * (layout: `shared-tables.ts`). Both lists are kept in join order, which the
 * ordered walks rely on.
 */
import type { Room } from "socket.io-adapter";
import { grownFloat64, IntStack } from "./compact-containers";
import type { PairIndex } from "./pair-index";
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
function append(nodes: Int32Array, lists: Int32Array, list: number, node: number, prev: number, next: number): void {
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

export class MemberLists {
  private readonly buffers: TableBuffers;
  private readonly rooms: RoomTable;
  private readonly pairs: PairIndex;
  private readonly freeNodes = new IntStack();
  private highWater = 0;
  /**
   * Join sequence number of each live node, 0 once it left; main thread only.
   * Lists are appended in join order, so this orders a room's members across
   * shards and lets iterators survive joins and leaves between steps.
   */
  private seqs = new Float64Array(INITIAL_NODES);
  private lastJoinSeq = 0;
  /** Where the warm* hints put what they read, so that the reads are not optimized away. */
  private warmSink = 0;

  constructor(buffers: TableBuffers, rooms: RoomTable, pairs: PairIndex) {
    this.buffers = buffers;
    this.rooms = rooms;
    this.pairs = pairs;
  }

  /** Join sequence numbers by node (see `seqs`); replaced on growth. */
  get joinSeqs(): Float64Array {
    return this.seqs;
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
    const { nodes, rooms, sockets, shardCount } = this.buffers.view;
    const base = node * NODE_STRIDE;
    nodes[base + NODE_ROOM] = roomId;
    nodes[base + NODE_SLOT] = slot;
    this.seqs[node] = ++this.lastJoinSeq;

    const roomList = roomListOffset(shardCount, roomId, slot % shardCount);
    append(nodes, rooms, roomList, node, NODE_ROOM_PREV, NODE_ROOM_NEXT);
    rooms[roomList + LIST_RUN] = NONE; // its run, if any, is stale
    append(nodes, sockets, slot * SOCKET_STRIDE, node, NODE_SOCK_PREV, NODE_SOCK_NEXT);

    this.rooms.memberJoined(roomId);
    this.pairs.insert(node, roomId, slot);
    return true;
  }

  /** Removes `slot` from `roomId`; false if it was not there. */
  leave(slot: number, roomId: number): boolean {
    const { nodes, rooms, sockets, shardCount } = this.buffers.view;
    const at = this.pairs.find(roomId, slot, nodes);
    if (at < 0) return false;
    const node = this.pairs.nodeAt(at);
    this.pairs.deleteAt(at);

    const roomList = roomListOffset(shardCount, roomId, slot % shardCount);
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
    const { nodes, rooms, sockets, shardCount } = this.buffers.view;
    const pairs = this.pairs;
    const shard = slot % shardCount;
    let acc = 0;
    for (let node = sockets[slot * SOCKET_STRIDE + LIST_HEAD]; node !== NONE; node = nodes[node * NODE_STRIDE + NODE_SOCK_NEXT]) {
      const base = node * NODE_STRIDE;
      const roomId = nodes[base + NODE_ROOM];
      acc += pairs.homeEntry(roomId, slot);
      acc += rooms[roomListOffset(shardCount, roomId, shard) + LIST_COUNT];
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
    const { nodes, rooms, shardCount } = this.buffers.view;
    const pairs = this.pairs;
    const shard = slot % shardCount;
    let acc = 0;
    for (const room of roomNames) {
      const roomId = this.rooms.idOf(room);
      if (roomId === undefined) continue;
      acc += pairs.homeEntry(roomId, slot);
      const tail = rooms[roomListOffset(shardCount, roomId, shard) + LIST_TAIL];
      if (tail !== NONE) acc += nodes[tail * NODE_STRIDE + NODE_ROOM_NEXT];
    }
    this.warmSink = acc;
  }

  clear(): void {
    this.freeNodes.clear();
    this.highWater = 0;
    // Sized with the tables, which start small again.
    this.seqs = new Float64Array(INITIAL_NODES);
  }

  private allocateNode(): number {
    const free = this.freeNodes.pop();
    if (free !== NONE) return free;
    const node = this.highWater++;
    if (node * NODE_STRIDE >= this.buffers.view.nodes.length) {
      this.buffers.grow("nodes");
      this.seqs = grownFloat64(this.seqs);
    }
    return node;
  }
}
