/**
 * The table the pool's calibration times broadcasts on (see `calibration.ts`):
 * `memberships` memberships in rooms of ROOM_SIZE, each room's members drawn
 * at random among as many sockets (as in a namespace where sockets join
 * rooms at random, a union of rooms reaches fewer and fewer new sockets as
 * it grows), written straight into the layout of `shared-tables.ts`: a
 * namespace's index would take tens of ms of joins to build, this takes a
 * few, in steps the caller spreads over event-loop turns. Only what selection reads is written: the rooms' lists and the
 * sockets' alive flags (the sockets' own lists, which joins and leaves use,
 * stay empty).
 *
 * Its queries run the code broadcasts run: on this thread alone
 * `collectEveryShard`, with the workers the pool's cooperative answer
 * (`CooperativeTables`), both over the lists' runs (`run-cache.ts`), made
 * as each room is written, as broadcasts to rooms broadcast to before.
 */
import { collectEveryShard } from "./local-queries";
import { append } from "./member-lists";
import type { CooperativeTables } from "./protocol";
import { RoomLists } from "./room-lists";
import { RunCache } from "./run-cache";
import {
  collectShard,
  EVERY_SHARD,
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
  SOCKET_ALIVE,
  SOCKET_STRIDE,
  type RecipientQuery,
  type SharedTables,
} from "./shared-tables";
import { TableBuffers } from "./table-buffers";

/** Members per room: about a room of a chat or a game lobby (the bench's rooms hold ~100). */
export const PROBE_ROOM_SIZE = 128;

const EMPTY = new Int32Array(0);

export class ProbeTable implements CooperativeTables {
  readonly shardCount: number;
  readonly memberships: number;
  readonly roomCount: number;
  private readonly socketCount: number;
  private readonly buffers: TableBuffers;
  private readonly lists: RoomLists;
  private readonly runs: RunCache;
  private readonly marks = new RecipientMarks();
  /** Rooms [0, filledRooms) are written (with the slots as many as their members). */
  private filledRooms = 0;
  /** The generator drawing the rooms' members. */
  private random: number;

  /**
   * `memberships`: a power of two, at least PROBE_ROOM_SIZE; as many sockets.
   * `seed` draws the rooms. The table is empty until {@link fillRooms} has
   * written every room, a few at a time if need be.
   */
  constructor(shardCount: number, memberships: number, seed: number) {
    if (!(memberships >= PROBE_ROOM_SIZE && (memberships & (memberships - 1)) === 0)) {
      throw new RangeError(`ProbeTable: memberships must be a power of two of at least ${PROBE_ROOM_SIZE}, got ${memberships}`);
    }
    this.shardCount = shardCount;
    this.memberships = memberships;
    this.socketCount = memberships;
    this.roomCount = memberships / PROBE_ROOM_SIZE;
    // A runs arena for every list at once: the first walks that copy them fill it, and no run is dropped for room.
    const buffers = (this.buffers = new TableBuffers(shardCount, { slots: this.socketCount, rooms: this.roomCount, nodes: memberships, runs: memberships }));
    this.lists = new RoomLists(buffers);
    this.runs = new RunCache(buffers);
    this.random = seed | 0;
  }

  /**
   * Writes up to `count` more rooms (the first `count` slots with each,
   * alive), each list with its run, as for rooms broadcast to before;
   * returns whether every room is written.
   */
  fillRooms(count: number): boolean {
    const mask = this.socketCount - 1;
    const first = this.filledRooms;
    const end = Math.min(this.roomCount, first + count);
    for (let room = first; room < end; room++) {
      const firstNode = room * PROBE_ROOM_SIZE;
      addSockets(this.buffers.view.sockets, firstNode, firstNode + PROBE_ROOM_SIZE);
      // Room r's members are slots (start + i·step) mod sockets, i < ROOM_SIZE:
      // distinct (step odd, sockets a power of two), at random across rooms.
      const start = (this.nextRandom() >>> 8) & mask;
      const step = ((this.nextRandom() >>> 8) | 1) & mask;
      this.lists.place(room, EVERY_SHARD);
      addRoom(this.buffers, this.lists, room, firstNode, start, step, mask);
    }
    // A list's second walk unchanged copies it into a run (see run-cache.ts).
    const written = Int32Array.from({ length: end - first }, (_, i) => first + i);
    for (let walk = 0; walk < 2; walk++) this.runs.prepare(written, 0, this.shardCount - 1, this.memberships);
    this.filledRooms = end;
    return end === this.roomCount;
  }

  get tables(): SharedTables {
    return this.buffers.tables;
  }

  get slotCapacity(): number {
    return this.buffers.view.sockets.length / SOCKET_STRIDE;
  }

  /** A broadcast to the union of the first `roomCount` rooms. */
  unionOf(roomCount: number): RecipientQuery {
    if (this.filledRooms < this.roomCount) throw new Error(`ProbeTable: ${this.filledRooms} of ${this.roomCount} rooms written; fillRooms first`);
    const rooms = new Int32Array(Math.min(roomCount, this.roomCount));
    for (let i = 0; i < rooms.length; i++) rooms[i] = i;
    return { everyone: false, rooms, except: EMPTY, slotHighWater: this.socketCount };
  }

  prepareRuns(query: RecipientQuery): void {
    this.runs.prepareQuery(query, this.memberships);
  }

  collectShardInto(shard: number, query: RecipientQuery, out: Int32Array, offset: number): number {
    return collectShard(this.buffers.view, shard, query, this.marks, out, offset);
  }

  /** Answers `query` on this thread alone, as `MembershipIndex.collectLocally` does. */
  collectLocally(query: RecipientQuery, out: Int32Array): number {
    this.prepareRuns(query);
    return collectEveryShard(this.buffers.view, query, this.marks, out);
  }

  private nextRandom(): number {
    return (this.random = (Math.imul(this.random, 1103515245) + 12345) | 0);
  }
}

/** Writes slots [from, to) alive, in no room. */
function addSockets(sockets: Int32Array, from: number, to: number): void {
  for (let slot = from; slot < to; slot++) {
    sockets[slot * SOCKET_STRIDE + LIST_HEAD] = NONE;
    sockets[slot * SOCKET_STRIDE + LIST_TAIL] = NONE;
    sockets[slot * SOCKET_STRIDE + SOCKET_ALIVE] = 1;
  }
}

/**
 * Writes room `room` (its lists placed, empty): member i (slot (start +
 * i·step) & mask, node `firstNode` + i) at the end of the list of its slot's
 * shard, through the member lists' own append. A function of its own, called
 * once per room, so that it is compiled after a few rooms (as one loop nest,
 * the build ran mostly interpreted: ~100 ms on a loaded machine, against ~15 ms).
 */
function addRoom(buffers: TableBuffers, lists: RoomLists, room: number, firstNode: number, start: number, step: number, mask: number): void {
  const shardCount = buffers.shardCount;
  for (let i = 0; i < PROBE_ROOM_SIZE; i++) {
    const node = firstNode + i;
    const slot = (start + i * step) & mask;
    const list = lists.listForJoin(room, slot % shardCount);
    const { nodes, rooms } = buffers.view;
    const base = node * NODE_STRIDE;
    nodes[base + NODE_ROOM] = room;
    nodes[base + NODE_SLOT] = slot;
    nodes[base + NODE_SOCK_NEXT] = NONE;
    nodes[base + NODE_SOCK_PREV] = NONE;
    append(nodes, rooms, list, node, NODE_ROOM_PREV, NODE_ROOM_NEXT);
  }
}
