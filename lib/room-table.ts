/**
 * Rooms interned to room ids: room name <-> id, the free ids, each room's
 * size and generation, and the rooms' creation order (the order the
 * in-memory adapter's `rooms` Map iterates in). A room id indexes the
 * `rooms` table (`shared-tables.ts`): one member list per shard.
 */
import type { Room, SocketId } from "socket.io-adapter";
import { ChunkedStrings, grownInt32, IntStack, type Int32Column } from "./compact-containers";
import { InsertionOrder } from "./insertion-order";
import type { RoomLists } from "./room-lists";
import { EVERY_SHARD, NONE } from "./shared-tables";
import type { SlotTable } from "./slot-table";
import { INITIAL_ROOMS, type TableBuffers } from "./table-buffers";

export class RoomTable {
  private readonly buffers: TableBuffers;
  private readonly slots: SlotTable;
  private readonly lists: RoomLists;
  /**
   * Room name -> id, for every room but own-id rooms: a room created with the
   * id of a connected socket as its name (socket.io puts each socket in one)
   * is found through that socket's slot instead, so that the id string is
   * keyed once (in the slot table), not twice. When its socket goes while the
   * room still has members, the room moves here.
   */
  private readonly roomIds = new Map<Room, number>();
  /** Room id -> the slot it is the own-id room of, or NONE. */
  private ownerSlots: Int32Column = new Int32Array(INITIAL_ROOMS).fill(NONE);
  private liveRooms = 0;
  /** Rooms in creation order (as the in-memory adapter's Map iterates them). */
  private readonly creationOrder = new InsertionOrder(INITIAL_ROOMS);
  private readonly names = new ChunkedStrings<Room>();
  private sizes: Int32Column = new Int32Array(INITIAL_ROOMS);
  private readonly freeRoomIds = new IntStack();
  private highWater = 0;
  /** Bumped each time a room id is (re)assigned or freed, so stale views read empty. */
  private generations: Int32Column = new Int32Array(INITIAL_ROOMS);

  constructor(buffers: TableBuffers, slots: SlotTable, lists: RoomLists) {
    this.buffers = buffers;
    this.slots = slots;
    this.lists = lists;
  }

  get count(): number {
    return this.liveRooms;
  }

  idOf(room: Room): number | undefined {
    const roomId = this.roomIds.get(room);
    if (roomId !== undefined || typeof room !== "string") return roomId;
    const slot = this.slots.slotOf(room);
    if (slot === undefined) return undefined;
    const ownRoom = this.slots.ownRoomOf(slot);
    return ownRoom === NONE ? undefined : ownRoom;
  }

  /**
   * As {@link idOf}, looked up as a connected socket's own-id room first: a
   * broadcast to a socket id then takes one lookup, and one to a room by name
   * one more (a miss), next to its many writes.
   */
  idOfOwnFirst(room: Room): number | undefined {
    if (typeof room === "string") {
      const slot = this.slots.slotOf(room);
      if (slot !== undefined) {
        const ownRoom = this.slots.ownRoomOf(slot);
        if (ownRoom !== NONE) return ownRoom;
      }
    }
    return this.roomIds.get(room);
  }

  /**
   * `slot` if its socket is the only member of its own-id room (socket.io's
   * own-id room as it comes), else NONE: a broadcast to that socket's id
   * then writes to that one socket. A room name is either in `roomIds` or
   * the own-id room of a slot, never both, so the slot alone decides.
   */
  soleOwnerAt(slot: number): number {
    const roomId = this.slots.ownRoomIfMember(slot);
    return roomId !== NONE && this.sizes[roomId] === 1 ? slot : NONE;
  }

  nameOf(roomId: number): Room | undefined {
    return this.names.get(roomId);
  }

  /** Members of `roomId`, all shards together. */
  sizeOf(roomId: number): number {
    return this.sizes[roomId];
  }

  /** Counts a member in (the member lists call this on each join). */
  memberJoined(roomId: number): void {
    this.sizes[roomId]++;
  }

  /** Counts a member out (the member lists call this on each leave). */
  memberLeft(roomId: number): void {
    this.sizes[roomId]--;
  }

  /** Changes whenever `roomId` is given to a room or freed. */
  generation(roomId: number): number {
    return this.generations[roomId];
  }

  /**
   * The id of the room named after socket `id` (slot `slot`), or undefined:
   * a socket joining its own-id room (on connect) needs no lookup by name
   * when the room is keyed through its slot.
   */
  idOfOwn(slot: number, id: SocketId): number | undefined {
    const ownRoom = this.slots.ownRoomOf(slot);
    return ownRoom === NONE ? this.roomIds.get(id) : ownRoom;
  }

  /**
   * Interns a new, empty room. `ownerSlot` is the slot of the socket named
   * `room` when the caller knows it (else it is looked up).
   */
  add(room: Room, ownerSlot?: number): number {
    let roomId = this.freeRoomIds.pop();
    if (roomId === NONE) {
      roomId = this.highWater++;
      if (roomId >= this.sizes.length) this.grow();
    }
    this.sizes[roomId] = 0;
    this.generations[roomId]++;
    const owner = ownerSlot ?? (typeof room === "string" ? this.slots.slotOf(room) : undefined);
    if (owner !== undefined && this.slots.ownRoomOf(owner) === NONE) {
      this.slots.setOwnRoom(owner, roomId);
      this.ownerSlots[roomId] = owner;
      // Its members are nearly always its socket alone: a list in that socket's shard only.
      this.lists.place(roomId, owner % this.buffers.shardCount);
    } else {
      this.roomIds.set(room, roomId);
      this.lists.place(roomId, EVERY_SHARD);
    }
    this.names.set(roomId, room);
    this.liveRooms++;
    this.creationOrder.append(roomId);
    return roomId;
  }

  /** Forgets an empty room; its id is reused. */
  remove(roomId: number): void {
    const owner = this.ownerSlots[roomId];
    if (owner !== NONE) {
      this.slots.setOwnRoom(owner, NONE);
      this.ownerSlots[roomId] = NONE;
    } else {
      this.roomIds.delete(this.names.get(roomId) as Room);
    }
    this.liveRooms--;
    this.creationOrder.remove(roomId);
    this.names.set(roomId, undefined);
    this.generations[roomId]++;
    this.freeRoomIds.push(roomId);
  }

  /**
   * The socket whose own-id room `roomId` is, is going while the room still
   * has members: the room is keyed by its name `room` from now on.
   */
  keyByName(roomId: number, room: Room): void {
    this.roomIds.set(room, roomId);
    this.ownerSlots[roomId] = NONE;
  }

  /**
   * Room names in creation order. Like a Map iterator, it visits rooms
   * created during the iteration and skips those removed before it reaches them.
   */
  *namesInOrder(): IterableIterator<Room> {
    for (const roomId of this.creationOrder.ids()) yield this.names.get(roomId) as Room;
  }

  clear(): void {
    this.roomIds.clear();
    this.names.clear();
    this.freeRoomIds.clear();
    this.liveRooms = 0;
    this.highWater = 0;
    this.creationOrder.clear();
    // Sized with the tables, which start small again.
    this.ownerSlots = new Int32Array(INITIAL_ROOMS).fill(NONE);
    this.sizes = new Int32Array(INITIAL_ROOMS);
    this.generations = new Int32Array(INITIAL_ROOMS);
  }

  private grow(): void {
    this.sizes = grownInt32(this.sizes);
    this.generations = grownInt32(this.generations);
    this.ownerSlots = grownInt32(this.ownerSlots, NONE);
    this.creationOrder.grow();
    this.buffers.grow("roomLists");
  }
}
