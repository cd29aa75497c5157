/**
 * Read-only, live views that make `adapter.rooms`, `adapter.sids` and
 * `adapter.socketRooms()` answer exactly what socket.io's in-memory adapter's
 * Maps and Sets would, while the data stays in the shared tables.
 *
 * They extend the built-in `Map` and `Set` so that `instanceof`, TypeScript's
 * `Map<Room, Set<SocketId>>` and code that iterates or calls `.get()/.has()/
 * .size` keep working. The built-in storage underneath is not read by the
 * views' own methods; only `socket.rooms` fills it, with the rooms of the
 * moment it was read, for structured clone.
 */
import { inspect } from "node:util";
import type { Room, SocketId } from "socket.io-adapter";
import { ReadOnlyViewError } from "./errors";
import type { MembershipIndex } from "./membership-index";

/** The built-in Set's add, which the views themselves refuse (refuseWrites). */
const setAdd = Set.prototype.add;

/** The writes that throw, for each view class. */
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

/** A read-only Set answered by `size`, `has` and `values`; the rest derives from them. */
abstract class ReadOnlySetView<T> extends Set<T> {
  abstract override get size(): number;
  abstract override has(value: T): boolean;
  abstract override values(): SetIterator<T>;

  override keys(): SetIterator<T> {
    return this.values();
  }

  override *entries(): SetIterator<[T, T]> {
    for (const value of this.values()) yield [value, value];
  }

  override [Symbol.iterator](): SetIterator<T> {
    return this.values();
  }

  override forEach(callback: (value: T, key: T, set: Set<T>) => void, thisArg?: unknown): void {
    for (const value of this.values()) callback.call(thisArg, value, value, this);
  }

  [inspect.custom](): Set<T> {
    return new Set(this.values());
  }
}

// Set methods that read a Set's internal storage (Node 22+: union,
// intersection...), which the views leave empty: answered from a copy.
for (const name of ["union", "intersection", "difference", "symmetricDifference", "isSubsetOf", "isSupersetOf", "isDisjointFrom"]) {
  const method = (Set.prototype as unknown as Record<string, ((...args: unknown[]) => unknown) | undefined>)[name];
  if (typeof method !== "function") continue;
  Object.defineProperty(ReadOnlySetView.prototype, name, {
    value(this: ReadOnlySetView<unknown>, ...args: unknown[]) {
      return method.apply(new Set(this.values()), args);
    },
    writable: true,
    configurable: true,
  });
}

/** A read-only Map answered by `size`, `has`, `get` and `keys`; the rest derives from them. */
abstract class ReadOnlyMapView<K, V> extends Map<K, V> {
  abstract override get size(): number;
  abstract override has(key: K): boolean;
  abstract override get(key: K): V | undefined;
  abstract override keys(): MapIterator<K>;

  override *values(): MapIterator<V> {
    for (const key of this.keys()) yield this.get(key) as V;
  }

  override *entries(): MapIterator<[K, V]> {
    for (const key of this.keys()) yield [key, this.get(key) as V];
  }

  override [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  override forEach(callback: (value: V, key: K, map: Map<K, V>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }

  [inspect.custom](): Map<K, unknown> {
    return new Map(Array.from(this.entries(), ([key, value]) => [key, value instanceof Set ? new Set(value) : value]));
  }
}

/** The members of one room, in join order. */
export class RoomMembersView extends ReadOnlySetView<SocketId> {
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
}
refuseWrites(RoomMembersView.prototype, "a room's member set (adapter.rooms.get(room))", ["add", "delete", "clear"]);

/** The rooms of one socket, in join order. */
export class SocketRoomsView extends ReadOnlySetView<Room> {
  private readonly generation: number;

  constructor(
    private readonly index: MembershipIndex,
    private readonly id: SocketId,
    private readonly slot: number,
  ) {
    super();
    this.generation = index.slotGeneration(slot);
    // The Set's own storage holds the rooms of this moment, for what reads it
    // directly rather than through the methods: structured clone
    // (`process.send(socket.rooms)` with advanced serialization, postMessage),
    // The methods stay live. socket.io makes a new
    // view each time `socket.rooms` is read.
    for (const roomId of index.socketRoomIds(slot)) setAdd.call(this, index.roomNameOf(roomId) as Room);
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
}
refuseWrites(SocketRoomsView.prototype, "socket.rooms (adapter.socketRooms(id))", ["add", "delete", "clear"]);

/** `adapter.rooms`: room -> its members, in room creation order. */
export class RoomsView extends ReadOnlyMapView<Room, Set<SocketId>> {
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
}
refuseWrites(RoomsView.prototype, "adapter.rooms", ["set", "delete", "clear"]);

/** `adapter.sids`: socket id -> its rooms, in order of first join. */
export class SidsView extends ReadOnlyMapView<SocketId, Set<Room>> {
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
}
refuseWrites(SidsView.prototype, "adapter.sids", ["set", "delete", "clear"]);
