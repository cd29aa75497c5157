/**
 * Sockets interned to slots: socket id <-> slot, the free slots, and each
 * slot's generation and own-id room. A slot indexes the `sockets` table
 * (`shared-tables.ts`) and the shard of its socket is `slot % shardCount`.
 */
import type { SocketId } from "socket.io-adapter";
import { grownInt32, IntStack, type Int32Column } from "./compact-containers";
import { InsertionOrder } from "./insertion-order";
import { LIST_COUNT, LIST_HEAD, LIST_TAIL, NONE, SOCKET_ALIVE, SOCKET_STRIDE } from "./shared-tables";
import { SocketIdIndex } from "./socket-id-index";
import { INITIAL_SLOTS, type TableBuffers } from "./table-buffers";

/**
 * Set in a slot's own-room entry while the socket is a member of its own-id
 * room: one read tells a broadcast to a socket id that the socket is there
 * (room ids stay far below 2^30: they index shared tables).
 */
const IN_OWN_ROOM = 1 << 30;

export class SlotTable {
  private readonly buffers: TableBuffers;
  /** Socket id <-> slot. */
  private readonly slotIds = new SocketIdIndex();
  /** Slots in connection order (the in-memory adapter's `sids` order). */
  private readonly connectionOrder = new InsertionOrder(INITIAL_SLOTS);
  private readonly freeSlots = new IntStack();
  private highWaterValue = 0;
  /** Bumped each time a slot is (re)assigned or freed, so stale views read empty. */
  private generations: Int32Column = new Int32Array(INITIAL_SLOTS);
  /** Slot -> its own-id room (see `RoomTable`), or NONE; with IN_OWN_ROOM while the socket is in it. */
  private ownRooms: Int32Column = new Int32Array(INITIAL_SLOTS).fill(NONE);

  constructor(buffers: TableBuffers) {
    this.buffers = buffers;
  }

  /** Slots below this bound are the only ones that may be alive. */
  get highWater(): number {
    return this.highWaterValue;
  }

  /** Slots the shared tables have room for. */
  get capacity(): number {
    return this.buffers.view.sockets.length / SOCKET_STRIDE;
  }

  get count(): number {
    return this.slotIds.size;
  }

  slotOf(id: SocketId): number | undefined {
    return this.slotIds.slotOf(id);
  }

  idOf(slot: number): SocketId | undefined {
    return this.slotIds.idOf(slot);
  }

  /** Socket ids in connection order (live, as a Map's iterator). */
  *ids(): IterableIterator<SocketId> {
    for (const slot of this.connectionOrder.ids()) yield this.slotIds.idOf(slot) as SocketId;
  }

  /** Slots in connection order (live, as a Map's iterator). */
  slots(): IterableIterator<number> {
    return this.connectionOrder.ids();
  }

  /** Gives socket `id` a slot (it must not have one), with an empty list of rooms. */
  add(id: SocketId): number {
    let slot = this.freeSlots.pop();
    if (slot === NONE) {
      slot = this.highWaterValue++;
      if (slot >= this.capacity) this.grow();
    }
    const base = slot * SOCKET_STRIDE;
    const sockets = this.buffers.view.sockets;
    sockets[base + LIST_HEAD] = NONE;
    sockets[base + LIST_TAIL] = NONE;
    sockets[base + LIST_COUNT] = 0;
    sockets[base + SOCKET_ALIVE] = 1;
    this.generations[slot]++;
    this.slotIds.add(id, slot);
    this.connectionOrder.append(slot);
    return slot;
  }

  /** Frees `slot` (its own-id room, if any, must have been let go). */
  remove(slot: number): void {
    this.ownRooms[slot] = NONE;
    this.buffers.view.sockets[slot * SOCKET_STRIDE + SOCKET_ALIVE] = 0;
    this.generations[slot]++;
    this.slotIds.remove(slot);
    this.connectionOrder.remove(slot);
    this.freeSlots.push(slot);
  }

  /** Changes whenever `slot` is given to a socket or freed. */
  generation(slot: number): number {
    return this.generations[slot];
  }

  ownRoomOf(slot: number): number {
    const entry = this.ownRooms[slot];
    return entry === NONE ? NONE : entry & ~IN_OWN_ROOM;
  }

  /** Makes `roomId` (a new, empty room) the own-id room of `slot`, or NONE for none. */
  setOwnRoom(slot: number, roomId: number): void {
    this.ownRooms[slot] = roomId;
  }

  /** The own-id room of `slot` if the socket is a member of it, else NONE. */
  ownRoomIfMember(slot: number): number {
    const entry = this.ownRooms[slot];
    return entry >= IN_OWN_ROOM ? entry & ~IN_OWN_ROOM : NONE;
  }

  /** Records that `slot` joined (`member`) or left its own-id room. */
  setInOwnRoom(slot: number, member: boolean): void {
    const entry = this.ownRooms[slot];
    if (entry !== NONE) this.ownRooms[slot] = member ? entry | IN_OWN_ROOM : entry & ~IN_OWN_ROOM;
  }

  clear(): void {
    this.slotIds.clear();
    this.connectionOrder.clear();
    this.freeSlots.clear();
    this.highWaterValue = 0;
    // Sized with the tables, which start small again.
    this.generations = new Int32Array(INITIAL_SLOTS);
    this.ownRooms = new Int32Array(INITIAL_SLOTS).fill(NONE);
  }

  private grow(): void {
    this.generations = grownInt32(this.generations);
    this.ownRooms = grownInt32(this.ownRooms, NONE);
    this.connectionOrder.grow();
    this.buffers.grow("sockets");
  }
}
