/**
 * Read-only, live views that make `adapter.rooms`, `adapter.sids` and
 * `adapter.socketRooms()` answer exactly what socket.io's in-memory adapter's
 * Maps and Sets would, while the data stays in the shared tables.
 *
 * They extend the built-in `Map` and `Set` so that `instanceof`, TypeScript's
 * `Map<Room, Set<SocketId>>` and code that iterates or calls `.get()/.has()/
 * .size` keep working. The built-in storage underneath is never used.
 */
import { inspect } from "node:util";
import type { Room, SocketId } from "socket.io-adapter";
import { ReadOnlyViewError } from "./errors";
import type { MembershipIndex } from "./membership-index";

/** Shared by the four views: the writes that throw, and `util.inspect` output. */
function refuseWrites(prototype: object, what: string, methods: readonly string[]): void {
  for (const method of methods) {
    Object.defineProperty(prototype, method, {
      value() {
        throw new ReadOnlyViewError(what, method);
      },
      writable: true,
      configurable: true,
    });
  }
}

/** The members of one room, in join order. */
export class RoomMembersView extends Set<SocketId> {
  private readonly generation: number;

  constructor(
    private readonly index: MembershipIndex,
    private readonly room: Room,
    private readonly roomId: number,
  ) {
    super();
    this.generation = index.roomGeneration(roomId);
  }

  /**
   * Whether the room this view was taken from still exists. Once it is
   * deleted the view stays empty, even if a room of that name is created
   * again (as the in-memory adapter's Set of the old room does).
   */
  private get live(): boolean {
    return this.index.roomIdOf(this.room) === this.roomId && this.index.roomGeneration(this.roomId) === this.generation;
  }

  override get size(): number {
    return this.live ? this.index.roomSize(this.roomId) : 0;
  }

  override has(id: SocketId): boolean {
    const slot = this.index.slotOf(id);
    return slot !== undefined && this.live && this.index.has(slot, this.roomId);
  }

  override *values(): SetIterator<SocketId> {
    if (!this.live) return;
    for (const slot of this.index.roomSlots(this.roomId)) yield this.index.socketIdOf(slot) as SocketId;
  }

  override keys(): SetIterator<SocketId> {
    return this.values();
  }

  override *entries(): SetIterator<[SocketId, SocketId]> {
    for (const id of this.values()) yield [id, id];
  }

  override [Symbol.iterator](): SetIterator<SocketId> {
    return this.values();
  }

  override forEach(callback: (value: SocketId, key: SocketId, set: Set<SocketId>) => void, thisArg?: unknown): void {
    for (const id of this.values()) callback.call(thisArg, id, id, this);
  }

  [inspect.custom](): Set<SocketId> {
    return new Set(this.values());
  }
}
refuseWrites(RoomMembersView.prototype, "a room's member set (adapter.rooms.get(room))", ["add", "delete", "clear"]);

/** The rooms of one socket, in join order. */
export class SocketRoomsView extends Set<Room> {
  private readonly generation: number;

  constructor(
    private readonly index: MembershipIndex,
    private readonly id: SocketId,
    private readonly slot: number,
  ) {
    super();
    this.generation = index.slotGeneration(slot);
  }

  /** Whether the socket is still the one this view was taken from (not gone, not back under the same id). */
  private get live(): boolean {
    return this.index.slotOf(this.id) === this.slot && this.index.slotGeneration(this.slot) === this.generation;
  }

  override get size(): number {
    return this.live ? this.index.socketRoomCount(this.slot) : 0;
  }

  override has(room: Room): boolean {
    const roomId = this.index.roomIdOf(room);
    return roomId !== undefined && this.live && this.index.has(this.slot, roomId);
  }

  override *values(): SetIterator<Room> {
    if (!this.live) return;
    for (const roomId of this.index.socketRoomIds(this.slot)) yield this.index.roomNameOf(roomId) as Room;
  }

  override keys(): SetIterator<Room> {
    return this.values();
  }

  override *entries(): SetIterator<[Room, Room]> {
    for (const room of this.values()) yield [room, room];
  }

  override [Symbol.iterator](): SetIterator<Room> {
    return this.values();
  }

  override forEach(callback: (value: Room, key: Room, set: Set<Room>) => void, thisArg?: unknown): void {
    for (const room of this.values()) callback.call(thisArg, room, room, this);
  }

  [inspect.custom](): Set<Room> {
    return new Set(this.values());
  }
}
refuseWrites(SocketRoomsView.prototype, "socket.rooms (adapter.socketRooms(id))", ["add", "delete", "clear"]);

/** `adapter.rooms`: room -> its members, in room creation order. */
export class RoomsView extends Map<Room, Set<SocketId>> {
  constructor(private readonly index: MembershipIndex) {
    super();
  }

  override get size(): number {
    return this.index.roomCount;
  }

  override has(room: Room): boolean {
    return this.index.roomIdOf(room) !== undefined;
  }

  override get(room: Room): Set<SocketId> | undefined {
    const roomId = this.index.roomIdOf(room);
    return roomId === undefined ? undefined : new RoomMembersView(this.index, room, roomId);
  }

  override keys(): MapIterator<Room> {
    return this.index.roomNamesInOrder();
  }

  override *values(): MapIterator<Set<SocketId>> {
    for (const [, members] of this.entries()) yield members;
  }

  override *entries(): MapIterator<[Room, Set<SocketId>]> {
    for (const room of this.index.roomNamesInOrder()) {
      yield [room, new RoomMembersView(this.index, room, this.index.roomIdOf(room) as number)];
    }
  }

  override [Symbol.iterator](): MapIterator<[Room, Set<SocketId>]> {
    return this.entries();
  }

  override forEach(callback: (value: Set<SocketId>, key: Room, map: Map<Room, Set<SocketId>>) => void, thisArg?: unknown): void {
    for (const [room, members] of this.entries()) callback.call(thisArg, members, room, this);
  }

  [inspect.custom](): Map<Room, Set<SocketId>> {
    return new Map(Array.from(this.entries(), ([room, members]) => [room, new Set(members)]));
  }
}
refuseWrites(RoomsView.prototype, "adapter.rooms", ["set", "delete", "clear"]);

/** `adapter.sids`: socket id -> its rooms, in order of first join. */
export class SidsView extends Map<SocketId, Set<Room>> {
  constructor(private readonly index: MembershipIndex) {
    super();
  }

  override get size(): number {
    return this.index.socketCount;
  }

  override has(id: SocketId): boolean {
    return this.index.slotOf(id) !== undefined;
  }

  override get(id: SocketId): Set<Room> | undefined {
    const slot = this.index.slotOf(id);
    return slot === undefined ? undefined : new SocketRoomsView(this.index, id, slot);
  }

  override keys(): MapIterator<SocketId> {
    return this.index.socketIds();
  }

  override *values(): MapIterator<Set<Room>> {
    for (const [, rooms] of this.entries()) yield rooms;
  }

  override *entries(): MapIterator<[SocketId, Set<Room>]> {
    for (const id of this.index.socketIds()) {
      yield [id, new SocketRoomsView(this.index, id, this.index.slotOf(id) as number)];
    }
  }

  override [Symbol.iterator](): MapIterator<[SocketId, Set<Room>]> {
    return this.entries();
  }

  override forEach(callback: (value: Set<Room>, key: SocketId, map: Map<SocketId, Set<Room>>) => void, thisArg?: unknown): void {
    for (const [id, rooms] of this.entries()) callback.call(thisArg, rooms, id, this);
  }

  [inspect.custom](): Map<SocketId, Set<Room>> {
    return new Map(Array.from(this.entries(), ([id, rooms]) => [id, new Set(rooms)]));
  }
}
refuseWrites(SidsView.prototype, "adapter.sids", ["set", "delete", "clear"]);
