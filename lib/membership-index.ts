/**
 * The main thread's side of one namespace's membership, as the adapter and
 * the views use it. It is the only writer of the shared tables described in
 * `shared-tables.ts`. Every operation here is synchronous, which is what
 * keeps `socket.rooms`, room events and "joined sockets get the next
 * broadcast" exact.
 *
 * The work is done by one module per concern, wired together here:
 * `table-buffers.ts` (the shared buffers), `slot-table.ts` (sockets <->
 * slots), `room-table.ts` (rooms <-> room ids, creation order),
 * `member-lists.ts` (join, leave; with `pair-index.ts`, (room, slot) -> node
 * for sockets in many rooms),
 * `ordered-walk.ts` (walks in the in-memory adapter's order),
 * `local-queries.ts` (broadcasts answered on this thread) and `run-cache.ts`
 * (contiguous copies of the lists broadcast to again unchanged).
 */
import type { Room, SocketId } from "socket.io-adapter";
import { LocalQueries, type InternedQuery } from "./local-queries";
import { MemberLists } from "./member-lists";
import { OrderedWalks } from "./ordered-walk";
import { RoomLists } from "./room-lists";
import { RoomTable } from "./room-table";
import { RunCache } from "./run-cache";
import { LIST_COUNT, NONE, RecipientMarks, SOCKET_STRIDE, type RecipientQuery, type SharedTables } from "./shared-tables";
import { SlotTable } from "./slot-table";
import { TableBuffers } from "./table-buffers";

export type { InternedQuery } from "./local-queries";

export class MembershipIndex {
  readonly shardCount: number;

  private readonly buffers: TableBuffers;
  private readonly slots: SlotTable;
  private readonly rooms: RoomTable;
  private readonly lists: RoomLists;
  private readonly members: MemberLists;
  private readonly walks: OrderedWalks;
  private readonly queries: LocalQueries;
  private readonly runs: RunCache;

  constructor(shardCount: number) {
    this.shardCount = shardCount;
    const buffers = (this.buffers = new TableBuffers(shardCount));
    const slots = (this.slots = new SlotTable(buffers));
    const lists = (this.lists = new RoomLists(buffers));
    const rooms = (this.rooms = new RoomTable(buffers, slots, lists));
    const members = (this.members = new MemberLists(buffers, rooms, lists));
    const marks = new RecipientMarks();
    this.walks = new OrderedWalks(buffers, slots, rooms, members, marks, () => members.memberships);
    const runs = (this.runs = new RunCache(buffers));
    this.queries = new LocalQueries(buffers, slots, rooms, marks, runs, () => members.memberships);
  }

  /** The current shared buffers; replaced (never mutated in size) on growth. */
  get tables(): SharedTables {
    return this.buffers.tables;
  }

  get slotHighWater(): number {
    return this.slots.highWater;
  }

  /** Slots the shared tables have room for; bounds every shard's answer. */
  get slotCapacity(): number {
    return this.slots.capacity;
  }

  get roomCount(): number {
    return this.rooms.count;
  }

  get socketCount(): number {
    return this.slots.count;
  }

  get memberships(): number {
    return this.members.memberships;
  }

  /** Memberships in the pair index: those of sockets that went above INDEXED_ABOVE rooms (see MemberLists). */
  get indexedMemberships(): number {
    return this.members.indexedMemberships;
  }

  /** Sockets and memberships in each shard (a socket's memberships live in its shard). */
  shardSizes(): { sockets: number; memberships: number }[] {
    const sizes = Array.from({ length: this.shardCount }, () => ({ sockets: 0, memberships: 0 }));
    const sockets = this.buffers.view.sockets;
    for (const slot of this.slots.slots()) {
      const shard = sizes[slot % this.shardCount];
      shard.sockets++;
      shard.memberships += sockets[slot * SOCKET_STRIDE + LIST_COUNT];
    }
    return sizes;
  }

  /** Bytes of shared memory the tables hold. */
  get sharedBytes(): number {
    return this.buffers.bytes;
  }

  // ---- sockets ----

  slotOf(id: SocketId): number | undefined {
    return this.slots.slotOf(id);
  }

  socketIdOf(slot: number): SocketId | undefined {
    return this.slots.idOf(slot);
  }

  socketIds(): IterableIterator<SocketId> {
    return this.slots.ids();
  }

  /** Gives socket `id` a slot (it must not have one). */
  addSocket(id: SocketId): number {
    return this.slots.add(id);
  }

  /** Frees the slot of a socket that has left every room. */
  removeSocket(slot: number): void {
    const id = this.slots.idOf(slot);
    if (id === undefined) return;
    const joined = this.members.roomCountOf(slot);
    if (joined !== 0) throw new Error(`internal: slot ${slot} freed with ${joined} memberships`);
    const ownRoom = this.slots.ownRoomOf(slot);
    // Its own-id room outlives it (others are in it): key it by name now.
    if (ownRoom !== NONE) this.rooms.keyByName(ownRoom, id);
    this.slots.remove(slot);
  }

  /**
   * Changes whenever `slot` is given to a socket or freed: while it is
   * unchanged, the slot still belongs to the socket it belonged to.
   */
  slotGeneration(slot: number): number {
    return this.slots.generation(slot);
  }

  socketRoomCount(slot: number): number {
    return this.members.roomCountOf(slot);
  }

  /** Room ids of `slot`, in join order (a live iterator: see OrderedWalks). */
  socketRoomIds(slot: number): IterableIterator<number> {
    return this.walks.socketRoomIds(slot);
  }

  /** Reads ahead what leaving every room of `slot` will write (see MemberLists). */
  warmLeaves(slot: number): void {
    this.members.warmLeaves(slot);
  }

  /** Reads ahead what joining `roomNames` will write (see MemberLists). */
  warmJoins(slot: number, roomNames: Iterable<Room>): void {
    this.members.warmJoins(slot, roomNames);
  }

  /** The room id `slot` joined first among those it is still in, or NONE. */
  firstRoomIdOf(slot: number): number {
    return this.members.firstRoomOf(slot);
  }

  // ---- rooms ----

  roomIdOf(room: Room): number | undefined {
    return this.rooms.idOf(room);
  }

  /** As roomIdOf, trying `room` as a socket id first (see RoomTable.idOfOwnFirst). */
  roomIdOfOwnFirst(room: Room): number | undefined {
    return this.rooms.idOfOwnFirst(room);
  }

  roomNameOf(roomId: number): Room | undefined {
    return this.rooms.nameOf(roomId);
  }

  /** Room names in creation order (a live iterator, with Map iterator semantics). */
  roomNamesInOrder(): IterableIterator<Room> {
    return this.rooms.namesInOrder();
  }

  roomSize(roomId: number): number {
    return this.rooms.sizeOf(roomId);
  }

  /** The id of the room named after socket `id`, whose slot is `slot` (see RoomTable). */
  ownRoomIdOf(slot: number, id: SocketId): number | undefined {
    return this.rooms.idOfOwn(slot, id);
  }

  /** Interns a new, empty room; `ownerSlot`: the slot of the socket named `room`, if the caller knows it. */
  addRoom(room: Room, ownerSlot?: number): number {
    return this.rooms.add(room, ownerSlot);
  }

  /** Forgets an empty room; its id is reused. */
  removeRoom(roomId: number): void {
    this.rooms.remove(roomId);
  }

  /**
   * Changes whenever `roomId` is given to a room or freed: while it is
   * unchanged, the id still names the room it named.
   */
  roomGeneration(roomId: number): number {
    return this.rooms.generation(roomId);
  }

  /** Slots of `roomId` in join order across shards (a live iterator: see OrderedWalks). */
  roomSlots(roomId: number): IterableIterator<number> {
    return this.walks.roomSlots(roomId);
  }

  // ---- memberships ----

  has(slot: number, roomId: number): boolean {
    return this.members.has(slot, roomId);
  }

  /** Adds `slot` to `roomId`; false if it was already there. */
  join(slot: number, roomId: number): boolean {
    if (!this.members.join(slot, roomId)) return false;
    if (roomId === this.slots.ownRoomOf(slot)) this.slots.setInOwnRoom(slot, true);
    return true;
  }

  /** Removes `slot` from `roomId`; false if it was not there. */
  leave(slot: number, roomId: number): boolean {
    if (!this.members.leave(slot, roomId)) return false;
    if (roomId === this.slots.ownRoomOf(slot)) this.slots.setInOwnRoom(slot, false);
    return true;
  }

  /** `slot` if its socket is the only member of its own-id room, else NONE (see RoomTable). */
  soleOwnerAt(slot: number): number {
    return this.rooms.soleOwnerAt(slot);
  }

  // ---- queries ----

  /** Interns a broadcast filter (see LocalQueries). */
  internQuery(rooms: ReadonlySet<Room>, except: ReadonlySet<Room> | undefined): InternedQuery {
    return this.queries.intern(rooms, except);
  }

  /** A recipients buffer big enough for every slot, lent until returned (see LocalQueries). */
  borrowRecipients(): Int32Array {
    return this.queries.borrowRecipients();
  }

  returnRecipients(buffer: Int32Array): void {
    this.queries.returnRecipients(buffer);
  }

  /** Answers a query on this thread into `out`, in no particular order; returns the number of recipient slots. */
  collectLocally(query: RecipientQuery, out: Int32Array): number {
    return this.queries.collect(query, out);
  }

  /** Answers a query in the in-memory adapter's order; read only, possibly shared (see OrderedWalks). */
  collectOrdered(query: RecipientQuery): Int32Array {
    return this.walks.collectOrdered(query);
  }

  /** The member slots of one room into `out` (the one-room broadcast's fast path). */
  membersOf(roomId: number, out: Int32Array): number {
    return this.queries.membersOf(roomId, out);
  }

  /** Gives runs to the query's lists walked again unchanged; before posting a query to the workers (see `run-cache.ts`). */
  prepareRuns(query: RecipientQuery): void {
    this.queries.prepareRuns(query);
  }

  /** Answers one shard on this thread (the main thread's share of a cooperative query). */
  collectShardInto(shard: number, query: RecipientQuery, out: Int32Array, offset: number): number {
    return this.queries.collectShard(shard, query, out, offset);
  }

  /** Times the join sequence numbers were renumbered (they are uint32; see MemberLists). */
  get joinSeqRenumberings(): number {
    return this.members.joinSeqRenumberings;
  }

  /** For tests: the next join gets sequence number `seq + 1`, to reach a renumbering without billions of joins (see MemberLists). */
  skipJoinSeqsTo(seq: number): void {
    this.members.skipJoinSeqsTo(seq);
  }

  /** Drops everything, shared buffers included; the index is empty afterwards. */
  clear(): void {
    this.buffers.reset();
    this.slots.clear();
    this.lists.clear();
    this.rooms.clear();
    this.members.clear();
    this.walks.clear();
    this.queries.clear();
    this.runs.clear();
  }
}
