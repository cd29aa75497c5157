import type { Worker } from "node:worker_threads";
import createDebug from "debug";
import { Adapter, type BroadcastOptions, type PrivateSessionId, type Room, type Session, type SocketId } from "socket.io-adapter";
import type { Namespace, Socket } from "socket.io";
import { MembershipIndex } from "./membership-index";
import { NONE } from "./shared-tables";
import { resolveOptions, type ResolvedOptions } from "./options";
import { RecoveryStore, type PacketDecoder, type SessionToPersist } from "./recovery-store";
import { ShardPool, type PoolStats } from "./shard-pool";
import { attachedApp, watchAttachApp } from "./uws-app";
import { isUwsEngine, UwsTopics, type TrackedSocket, type UwsStats } from "./uws-topics";
import { RoomsView, SidsView, SocketRoomsView } from "./views";

const debug = createDebug("socket.io-sharded-adapter");

const NO_SLOTS = new Int32Array(0);

/** What {@link ShardedAdapter.stats} reports. */
export interface ShardedAdapterStats {
  readonly namespace: string;
  readonly rooms: number;
  readonly sockets: number;
  readonly memberships: number;
  /** Sockets and memberships per shard (shard `i` holds the slots with `slot % (workers + 1) === i`). */
  readonly shards: readonly { readonly sockets: number; readonly memberships: number }[];
  /** Bytes of shared memory this namespace's tables hold. */
  readonly sharedMemoryBytes: number;
  /** Packets and sessions kept for connection state recovery (zeros when it is off). */
  readonly recovery: { packets: number; sessions: number; bytes: number };
  /** The pool this namespace shares with the others of the same `createAdapter()`. */
  readonly pool: PoolStats;
  /** uWebSockets.js topic publishes (socket.io on `attachApp`; zeros otherwise). */
  readonly uws: UwsStats;
}

/** What every namespace of one `createAdapter()` result shares. */
export interface AdapterContext {
  readonly options: ResolvedOptions;
  readonly pool: ShardPool;
  /** Set when the nodes are linked through Redis: recovery is then kept in Redis, not in this process. */
  readonly clustered: boolean;
}

export function createContext(options: ResolvedOptions): AdapterContext {
  return { options, pool: new ShardPool(options), clustered: options.redis !== undefined };
}

/** The context of `ShardedAdapter` used directly as socket.io's `adapter` option. */
let defaultContext: AdapterContext | undefined;

/** The parts of socket.io's Server the adapter reads (not in its public typings). */
interface ServerInternals {
  opts: { connectionStateRecovery?: { maxDisconnectionDuration?: number } };
  _parser: { Decoder: new () => PacketDecoder };
  /** engine.io's server, set once socket.io is attached (a uServer with `attachApp`). */
  engine?: unknown;
  encoder: { encode(packet: BroadcastPacket): unknown[] };
}

/** Recipients whose sockets `deliver` looks up before writing to any of them (see there). */
const DELIVERY_BATCH = 64;
/** Where a registered Socket keeps its slot in its namespace's index (see soleOwnerOf). */
const SLOT = Symbol("socket.io-sharded-adapter slot");
type SlottedSocket = Socket & { [SLOT]?: number };
/** Except rooms a one-room broadcast takes out of the room's members by id, without a query (see soleOwnersOf). */
const FEW_EXCLUDED = 4;

/** The parts of socket.io's Socket a broadcast uses (private in its typings). */
interface SocketInternals {
  client: { writeToEngine(encoded: unknown[], opts: PacketOptions): void };
  notifyOutgoingListeners?: (packet: BroadcastPacket) => void;
}

/** What a broadcast hands to engine.io with each packet. */
interface PacketOptions {
  preEncoded: true;
  volatile: boolean | undefined;
  compress: boolean | undefined;
  /** The websocket frame socket.io-adapter's `_encode` precomputes (when `ws` is installed). */
  wsPreEncodedFrame?: unknown;
}

/** A packet as socket.io hands it to `broadcast` (socket.io-parser's Packet). */
interface BroadcastPacket {
  type: number;
  data: unknown[];
  id?: number;
  nsp?: string;
}

/** A class that constructs socket.io-adapter `Adapter`s (the mixin's base). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- TypeScript's mixin pattern requires `any[]` here
export type AdapterClass = abstract new (...args: any[]) => Adapter;

/** What {@link withShardedMembership} adds to an adapter class. */
export interface ShardedMembership {
  /** Read-only view: room -> member ids. Use `socket.join()`/`leave()` to change it. */
  readonly rooms: RoomsView;
  /** Read-only view: socket id -> its rooms. */
  readonly sids: SidsView;
  /** Counts for monitoring: rooms, sockets, memberships, shared memory and the pool's counters. */
  stats(): ShardedAdapterStats;
  /**
   * The worker threads of the pool this adapter shares (for monitoring).
   * Terminating one is survivable: it is replaced and no membership is lost.
   */
  workerThreads(): readonly Worker[];
  /** Whether any socket of this process is in one of `rooms` (the cluster adapter skips remote broadcasts otherwise). */
  hasMembersIn(rooms: Iterable<Room>): boolean;
  /**
   * Serves again after close(): takes the worker pool back (linked through
   * Redis, links up again). The next join calls it; a no-op while open.
   */
  reopen(): void;
}

/**
 * Gives an adapter class (socket.io-adapter's `Adapter`, or its
 * `ClusterAdapterWithHeartbeat` for the Redis-linked adapter) the sharded
 * storage: room membership in shared memory, sharded by socket, and big
 * broadcasts answered by worker threads.
 *
 * It replaces the base's storage: the packet encoding, flags and ack
 * handling stay socket.io's own, and every operation that selects sockets
 * (broadcast, broadcastWithAck, sockets, fetchSockets, addSockets, delSockets,
 * disconnectSockets) goes through one loop, `applyToRecipients`, as in
 * socket.io-adapter. `broadcast` here delivers to this process's sockets
 * only; a cluster subclass publishes first, then calls it.
 *
 * When the server has `connectionStateRecovery` on (and the nodes are not
 * linked through Redis, which keeps it there), it also does the job of
 * socket.io-adapter's `SessionAwareAdapter`, with the stored packets and
 * sessions serialized off the heap.
 *
 * The context (options and worker pool) is read from a static `context`
 * property of the constructed class (set by `createAdapter()`).
 */
export function withShardedMembership<TBase extends AdapterClass>(Base: TBase): TBase & (abstract new (...args: any[]) => ShardedMembership) {
  abstract class Sharded extends Base implements ShardedMembership {
    override rooms: RoomsView;
    override sids: SidsView;

    private readonly index: MembershipIndex;
    private readonly pool: ShardPool;
    private readonly recovery: RecoveryStore | undefined;
    /**
     * False after close() until the next join. socket.io keeps its namespaces
     * (and their adapters) across `io.close()`, and serves them again after
     * `io.attach()`/`io.listen()`: as with the in-memory adapter, a closed
     * adapter keeps working, and takes the pool back when a socket joins.
     */
    private open = true;
    /**
     * Socket objects by slot, cached at their first delivery so that each
     * recipient costs an array read, not a string-keyed Map lookup. socket.io
     * removes a socket from its namespace only after `delAll`, which clears it.
     * Kept dense (see registeredSocketAt).
     */
    private readonly socketsBySlot: (Socket | undefined)[] = [];
    /** Scratch of soleOwnersOf. */
    private readonly excludedSlots = new Int32Array(FEW_EXCLUDED);
    /** Set by broadcast/broadcastWithAck for the one apply() call they make. */
    private nextApplyInAnyOrder = false;
    /** The namespace's uWS topics when socket.io runs on `attachApp`; decided once the server has its engine. */
    private uws: UwsTopics | undefined;
    private uwsDecided = false;
    /** Where `lookUpBatch` puts what it reads ahead, so that the reads are not optimized away. */
    private deliverySink = 0;

    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- mixin constructor (see AdapterClass)
    constructor(...args: any[]) {
      super(...args);
      const nsp = args[0] as Namespace;
      const context = (new.target as { context?: AdapterContext }).context ?? (defaultContext ??= createContext(resolveOptions({})));
      const { pool } = context;
      this.pool = pool;
      this.index = new MembershipIndex(pool.shardCount);
      this.rooms = new RoomsView(this.index);
      this.sids = new SidsView(this.index);
      const server = nsp.server as unknown as ServerInternals;
      // Before `attachApp`, as socket.io builds the main namespace's adapter in its constructor.
      watchAttachApp(server);
      const recovery = server.opts.connectionStateRecovery;
      this.recovery = recovery && !context.clustered
        ? new RecoveryStore(recovery.maxDisconnectionDuration ?? 2 * 60 * 1000, () => new server._parser.Decoder())
        : undefined;
      pool.acquire();
    }

    /**
     * Adds a socket to rooms; emits `create-room` and `join-room` as the
     * in-memory adapter does.
     */
    override addAll(id: SocketId, rooms: Set<Room>): void {
      if (!this.open) this.reopen();
      const index = this.index;
      const slot = index.slotOf(id) ?? index.addSocket(id);
      const uws = this.uwsTopics();
      if (uws !== undefined && !uws.isTracked(slot)) {
        // Subscribed once registered in the namespace (its own-id join), as only registered sockets are written to.
        const socket = this.nsp.sockets.get(id);
        if (socket !== undefined) uws.track(slot, socket as unknown as TrackedSocket);
      }
      // Reading ahead overlaps the cache misses of several joins: worth it from
      // three rooms (two of which may exist already, if one is the own-id room
      // of a connecting socket); not asked of the usual connect, own id and one room.
      if (rooms.size > 2) index.warmJoins(slot, rooms);
      // Nobody listens: no event to emit, and no listener to run meanwhile and add one.
      if (unheard(this)) return this.joinUnheard(slot, id, rooms, uws);
      const generation = index.slotGeneration(slot);
      for (const room of rooms) {
        // Its own-id room (every connect): found through its slot, no lookup by name.
        const own = room === id;
        let roomId = own ? index.ownRoomIdOf(slot, id) : index.roomIdOf(room);
        if (roomId === undefined) {
          roomId = index.addRoom(room, own ? slot : undefined);
          this.emit("create-room", room);
        }
        if (index.join(slot, roomId)) {
          uws?.joined(slot, roomId);
          this.emit("join-room", room, id);
        }
        // A listener disconnected the socket: its slot is no longer its own
        // (the generation changes when a slot is freed, and when it is reused).
        if (index.slotGeneration(slot) !== generation) return;
      }
    }

    /** addAll's joins when nothing listens to the adapter: no events, nothing else runs meanwhile. */
    private joinUnheard(slot: number, id: SocketId, rooms: Set<Room>, uws: UwsTopics | undefined): void {
      const index = this.index;
      for (const room of rooms) {
        const own = room === id;
        let roomId = own ? index.ownRoomIdOf(slot, id) : index.roomIdOf(room);
        if (roomId === undefined) roomId = index.addRoom(room, own ? slot : undefined);
        if (index.join(slot, roomId)) uws?.joined(slot, roomId);
      }
    }

    /** Removes a socket from a room; emits `leave-room`, then `delete-room` if it emptied. */
    override del(id: SocketId, room: Room): void {
      const slot = this.index.slotOf(id);
      const roomId = this.index.roomIdOf(room);
      if (slot === undefined || roomId === undefined) return;
      this.leaveRoom(slot, roomId, room, id);
    }

    /** Removes a socket from all its rooms (on disconnect). */
    override delAll(id: SocketId): void {
      const index = this.index;
      const slot = index.slotOf(id);
      if (slot === undefined) return;
      index.warmLeaves(slot);
      // Always the socket's current first room, so that rooms a listener joins
      // meanwhile are left too (the in-memory adapter iterates its live Set).
      for (let roomId = index.firstRoomIdOf(slot); roomId !== NONE; roomId = index.firstRoomIdOf(slot)) {
        this.leaveRoom(slot, roomId, undefined, id);
      }
      this.uws?.untrack(slot);
      if (slot < this.socketsBySlot.length) this.socketsBySlot[slot] = undefined;
      this.index.removeSocket(slot);
    }

    /**
     * Broadcasts a packet (socket.io's own encoding and flags). With connection
     * state recovery on, event packets are first stored for clients that miss them.
     */
    override broadcast(packet: BroadcastPacket, opts: BroadcastOptions): void | Promise<void> {
      // On uWS, most broadcasts (a room, a socket id, everyone) are one
      // publish: done here with one lookup, before anything else is set up.
      const uws = this.uwsTopics();
      if (uws !== undefined && this.recovery === undefined && publishesWhole(opts)) return this.publishToTopic(packet, opts, uws, undefined, undefined);
      this.recovery?.beginBroadcast(packet, opts);
      // No client can tell in which order the others were written to, so the
      // recipients may come shard by shard, computed by the workers.
      this.nextApplyInAnyOrder = true;
      try {
        this.deliverBroadcast(packet, opts);
      } finally {
        this.nextApplyInAnyOrder = false;
        this.recovery?.abandonBroadcast();
      }
    }

    /** Broadcasts a packet that expects acks (socket.io's own code, recipients from the shards). */
    override broadcastWithAck(
      packet: BroadcastPacket,
      opts: BroadcastOptions,
      clientCountCallback: (clientCount: number) => void,
      ack: (...args: unknown[]) => void,
    ): void {
      this.nextApplyInAnyOrder = true;
      try {
        super.broadcastWithAck(packet, opts, clientCountCallback, ack);
      } finally {
        this.nextApplyInAnyOrder = false;
      }
    }

    /**
     * socket.io-adapter's broadcast steps (encode once, write each recipient),
     * written here, not called: socket.io's `attachApp` replaces
     * `Adapter.prototype.broadcast` with a version that publishes to topics of
     * its own (and a cluster base's would publish to the other nodes again).
     * On `attachApp` (see uws-topics.ts), a broadcast without acks or
     * `volatile` is one uWS publish, and only the sockets it cannot reach
     * (polling, base64, a publisher socket) are written here, and those with
     * outgoing listeners visited.
     */
    private deliverBroadcast(packet: BroadcastPacket, opts: BroadcastOptions): void {
      const flags = opts.flags ?? {};
      const packetOpts: PacketOptions = { preEncoded: true, volatile: flags.volatile, compress: flags.compress };
      packet.nsp = this.nsp.name;
      const encoded = this.encodeAndRecord(packet, packetOpts);
      const uws = this.uwsTopics();
      // A volatile packet is dropped for a socket that cannot take it now: only a write per socket can tell.
      if (uws === undefined || flags.volatile) {
        // No apply() call here: one made by a listener during the writes is in order again.
        this.nextApplyInAnyOrder = false;
        const sole = this.soleRecipientOf(opts);
        if (sole !== NONE) {
          const socket = this.registeredSocketAt(sole);
          if (socket !== undefined) writeBroadcast(socket, packet, encoded, packetOpts);
          return;
        }
        // apply()'s steps with the write in the loop, not in a callback per recipient.
        const out = this.index.borrowRecipients();
        try {
          const count = this.recipientsInAnyOrder(opts, out);
          const batch = new Array<Socket | undefined>(Math.min(count, DELIVERY_BATCH));
          for (let start = 0; start < count; start += DELIVERY_BATCH) {
            const size = this.lookUpBatch(out, start, count, batch);
            for (let i = 0; i < size; i++) {
              const socket = batch[i];
              if (socket !== undefined) writeBroadcast(socket, packet, encoded, packetOpts);
            }
          }
        } finally {
          this.index.returnRecipients(out);
        }
        return;
      }
      if (opts.rooms.size > 1 || (opts.except?.size ?? 0) > 0) {
        // No topic has exactly these recipients: the websocket ones join one for this publish.
        // A fresh array: a listener called on the way may broadcast again.
        const slots: number[] = [];
        let count = 0;
        this.applyToRecipients(opts, (socket, slot) => {
          if (!uws.publishesTo(slot)) return writeBroadcast(socket, packet, encoded, packetOpts);
          slots[count++] = slot;
          (socket as unknown as SocketInternals).notifyOutgoingListeners?.(packet);
        });
        for (const slot of uws.publishToEach(slots, count, encoded)) {
          const socket = this.socketsBySlot[slot];
          if (socket !== undefined) (socket as unknown as SocketInternals).client.writeToEngine(encoded, packetOpts);
        }
        return;
      }
      this.publishToTopic(packet, opts, uws, encoded, packetOpts);
    }

    /**
     * On uWS, a broadcast to one room (a socket id's included) or to
     * everyone, not volatile, with no except (see publishesWhole): one
     * publish to the room's topic, then the recipients the publish does not
     * do everything for, if any. `encoded` and `packetOpts` are made here if
     * the caller has not made them.
     */
    private publishToTopic(packet: BroadcastPacket, opts: BroadcastOptions, uws: UwsTopics, encoded: unknown[] | undefined, packetOpts: PacketOptions | undefined): void {
      const index = this.index;
      let roomId = -1;
      if (opts.rooms.size === 1) {
        const found = index.roomIdOfOwnFirst(opts.rooms.values().next().value as Room);
        if (found === undefined) return; // nobody is in it
        roomId = found;
      }
      if (encoded === undefined) {
        packet.nsp = this.nsp.name;
        encoded = (this.nsp.server as unknown as ServerInternals).encoder.encode(packet);
      }
      // The uWS websocket transport never compresses, so the publish need not either.
      const publisher = uws.publish(roomId, encoded);
      // What the publish does not do: notify outgoing listeners, write the
      // publisher and the sockets not on a uWS websocket. Most often there
      // is none of them among the recipients (counted as they join), and the
      // publish was all: no recipient is visited.
      if (!uws.leavesWorkIn(roomId)) return;
      packetOpts ??= { preEncoded: true, volatile: opts.flags?.volatile, compress: opts.flags?.compress };
      const written = encoded;
      const writeOpts = packetOpts;
      if (roomId === -1 || index.roomSize(roomId) >= this.pool.offloadThreshold) {
        // No client can tell in which order the others were written to.
        this.nextApplyInAnyOrder = true;
        return this.applyToRecipients(opts, (socket, slot) => {
          if (slot === publisher || !uws.publishesTo(slot)) return writeBroadcast(socket, packet, written, writeOpts);
          (socket as unknown as SocketInternals).notifyOutgoingListeners?.(packet);
        });
      }
      // A room (an own-id room, most often) answered here: no query, no closure.
      const out = index.borrowRecipients();
      try {
        const count = index.membersOf(roomId, out);
        for (let i = 0; i < count; i++) {
          const slot = out[i];
          const socket = this.registeredSocketAt(slot);
          if (socket === undefined) continue;
          if (slot === publisher || !uws.publishesTo(slot)) writeBroadcast(socket, packet, written, writeOpts);
          else (socket as unknown as SocketInternals).notifyOutgoingListeners?.(packet);
        }
      } finally {
        index.returnRecipients(out);
      }
    }

    /** Keeps a disconnected socket's session (with connection state recovery on). */
    override persistSession(session: SessionToPersist): void {
      this.recovery?.persistSession(session);
    }

    /**
     * The session and the packets it missed; resolves null when recovery is off,
     * the session expired or the offset is unknown (socket.io-adapter's typings
     * say `Promise<Session>`, its implementation and socket.io allow null).
     */
    override restoreSession(pid: PrivateSessionId, offset: string): Promise<Session> {
      const session = this.recovery?.restoreSession(pid, offset) ?? null;
      return Promise.resolve(session as Session);
    }

    /** The rooms of a socket, as a live read-only Set; `undefined` for an unknown socket. */
    override socketRooms(id: SocketId): Set<Room> | undefined {
      const slot = this.index.slotOf(id);
      return slot === undefined ? undefined : new SocketRoomsView(this.index, id, slot);
    }

    /**
     * This process's sockets that `opts` selects, in the in-memory adapter's
     * order, filled in one loop (no callback per socket).
     */
    override fetchSockets(opts: BroadcastOptions): Promise<Socket[]> {
      const sole = this.soleRecipientOf(opts);
      if (sole !== NONE) {
        const socket = this.registeredSocketAt(sole);
        return Promise.resolve(socket === undefined ? [] : [socket]);
      }
      const slots = this.recipientsInOrder(opts);
      const sockets = new Array<Socket>(slots.length);
      // The registered sockets' array, read directly; the lookup by id only for a slot not in it yet.
      const bySlot = this.socketsBySlot;
      let n = 0;
      for (let i = 0; i < slots.length; i++) {
        const slot = slots[i];
        const socket = bySlot[slot] ?? this.registeredSocketAt(slot);
        if (socket !== undefined) sockets[n++] = socket;
      }
      sockets.length = n;
      return Promise.resolve(sockets);
    }

    /**
     * Stops using the shared workers (the last namespace to close stops them)
     * and, once no socket is left, gives back the tables' grown memory. As
     * with the in-memory adapter, the adapter keeps serving from the main
     * thread: socket.io disconnects every socket before it closes the
     * adapters, and may serve again after `io.attach()`, when the next join
     * takes the pool back.
     *
     * Resolves at once: `io.close()` waits for it before it stops accepting
     * connections, and the workers' exit is nothing a connection must wait for.
     */
    override close(): Promise<void> {
      if (!this.open) return Promise.resolve();
      this.open = false;
      void super.close(); // a cluster base says goodbye to the other nodes
      if (this.index.socketCount === 0) {
        this.index.clear();
        this.socketsBySlot.length = 0;
        // The server may be attached to another engine when it serves again.
        this.uws?.clear();
        this.uws = undefined;
        this.uwsDecided = false;
      }
      this.recovery?.stopExpiry();
      debug("closed adapter of namespace %s", this.nsp.name);
      void this.pool.release();
      return Promise.resolve();
    }

    reopen(): void {
      if (this.open) return;
      this.open = true;
      if (this.index.socketCount === 0) {
        // Decided again against the engine the server serves with now.
        this.uws?.clear();
        this.uws = undefined;
        this.uwsDecided = false;
      }
      this.pool.acquire();
      this.recovery?.startExpiry();
      debug("reopened adapter of namespace %s", this.nsp.name);
    }

    stats(): ShardedAdapterStats {
      return {
        namespace: this.nsp.name,
        rooms: this.index.roomCount,
        sockets: this.index.socketCount,
        memberships: this.index.memberships,
        shards: this.index.shardSizes(),
        sharedMemoryBytes: this.index.sharedBytes,
        recovery: this.recovery?.size ?? { packets: 0, sessions: 0, bytes: 0 },
        pool: this.pool.stats(),
        uws: this.uws?.stats() ?? { publishes: 0, subscribedSockets: 0, throughApp: false },
      };
    }

    workerThreads(): readonly Worker[] {
      return this.pool.workerThreads();
    }

    hasMembersIn(rooms: Iterable<Room>): boolean {
      for (const room of rooms) {
        const roomId = this.index.roomIdOf(room);
        if (roomId !== undefined && this.index.roomSize(roomId) > 0) return true;
      }
      return false;
    }

    /**
     * Calls `callback` once for each connected socket that `opts` selects:
     * members of any of `opts.rooms` (every socket when empty), minus members of
     * `opts.except`. Every recipient is computed before the first callback, so
     * callbacks may join, leave or broadcast without disturbing this loop.
     *
     * For fetchSockets, socketsJoin and the like, sockets come in the
     * in-memory adapter's order, computed on the main thread. For broadcasts,
     * whose order no client can observe, big selections are computed by the
     * shard workers together with the main thread, small ones on the main
     * thread with no round-trip.
     */
    applyToRecipients(opts: BroadcastOptions, callback: (socket: Socket, slot: number) => void): void {
      const inAnyOrder = this.nextApplyInAnyOrder;
      this.nextApplyInAnyOrder = false;
      const sole = this.soleRecipientOf(opts);
      if (sole !== NONE) {
        const socket = this.registeredSocketAt(sole);
        if (socket !== undefined) callback(socket, sole);
        return;
      }
      if (!inAnyOrder) {
        const slots = this.recipientsInOrder(opts);
        return this.deliver(slots, slots.length, callback);
      }
      const out = this.index.borrowRecipients();
      try {
        this.deliver(out, this.recipientsInAnyOrder(opts, out), callback);
      } finally {
        this.index.returnRecipients(out);
      }
    }

    /**
     * The slots `opts` selects, in the in-memory adapter's order, read only:
     * for one room without exclusions it is the room's kept order, shared by
     * later calls and never written (callbacks run while it is read may
     * change the room: the next call then gets a new array).
     */
    private recipientsInOrder(opts: BroadcastOptions): Int32Array {
      const query = this.index.internQuery(opts.rooms, opts.except);
      if (!query.everyone && query.rooms.length === 0) return NO_SLOTS;
      return this.index.collectOrdered(query);
    }

    /**
     * Writes the slots `opts` selects into `out` (a borrowed recipients
     * buffer) in no particular order, computed by the shard workers with the
     * main thread when the selection is big; returns how many.
     */
    private recipientsInAnyOrder(opts: BroadcastOptions, out: Int32Array): number {
      const index = this.index;
      if (opts.rooms.size === 1 && (opts.except?.size ?? 0) <= FEW_EXCLUDED) {
        // One room minus at most a few sockets by id (socket.to(room) excludes the
        // sender's): its list already holds each member once, and a socket
        // excluded by id is taken out of the answer, with no query and no marks.
        const roomId = index.roomIdOf(opts.rooms.values().next().value as Room);
        if (roomId === undefined) return 0;
        if (index.roomSize(roomId) < this.pool.offloadThreshold) {
          const excluded = opts.except?.size ? this.soleOwnersOf(opts.except) : 0;
          if (excluded >= 0) {
            let count = index.membersOf(roomId, out);
            for (let e = 0; e < excluded; e++) count = withoutSlot(out, count, this.excludedSlots[e]);
            return count;
          }
        }
      }
      const query = index.internQuery(opts.rooms, opts.except);
      if (!query.everyone && query.rooms.length === 0) return 0;
      if (query.cost >= this.pool.offloadThreshold && this.pool.running) {
        const count = this.pool.collect(index, query, out);
        if (count !== undefined) return count;
      }
      return index.collectLocally(query, out);
    }

    /**
     * Puts in `excludedSlots` the sockets whose own-id rooms, holding them
     * alone, are among `except` (at most FEW_EXCLUDED rooms); returns how
     * many, or -1 if one of the rooms has other members (then only a query
     * can exclude them). Rooms with no member are skipped.
     */
    private soleOwnersOf(except: ReadonlySet<Room>): number {
      const index = this.index;
      let count = 0;
      for (const room of except) {
        const owner = this.soleOwnerOf(room);
        if (owner !== NONE) {
          this.excludedSlots[count++] = owner;
          continue;
        }
        const roomId = index.roomIdOf(room);
        if (roomId !== undefined && index.roomSize(roomId) > 0) return -1;
      }
      return count;
    }

    /**
     * The slot of the registered socket whose id is `room`, when it is the
     * only member of its own-id room, else NONE (also for a socket not yet
     * registered, which no broadcast writes to: the general path finds its
     * room). Found through `nsp.sockets`, a Map that uses the hash V8 keeps
     * in the id string, and the slot the Socket keeps under SLOT, checked
     * against socketsBySlot (cleared when the slot is freed): no hashing of
     * the id in JavaScript, as the socket id index would.
     */
    private soleOwnerOf(room: Room): number {
      const socket = this.nsp.sockets.get(room as SocketId) as SlottedSocket | undefined;
      if (socket === undefined) return NONE;
      let slot = socket[SLOT];
      if (slot === undefined || this.socketsBySlot[slot] !== socket) {
        slot = this.index.slotOf(room as SocketId);
        if (slot === undefined || this.registeredSocketAt(slot) !== socket) return NONE;
        if (Object.isExtensible(socket)) socket[SLOT] = slot;
      }
      return this.index.soleOwnerAt(slot);
    }

    /**
     * The one socket `opts` selects when it names a socket's own-id room whose
     * only member is that socket (`io.to(socketId)`, `socket.emit()` with
     * connection state recovery on), else NONE (also when it is excluded,
     * which the general path then finds): no query, no recipients buffer.
     */
    private soleRecipientOf(opts: BroadcastOptions): number {
      if (opts.rooms.size !== 1) return NONE;
      const index = this.index;
      const slot = this.soleOwnerOf(opts.rooms.values().next().value as Room);
      if (slot === NONE || !opts.except?.size) return slot;
      for (const room of opts.except) {
        // Most often a socket id (socket.to(otherId)): its sole member is the one that can be excluded.
        const owner = this.soleOwnerOf(room);
        if (owner !== NONE) {
          if (owner === slot) return NONE;
          continue;
        }
        const roomId = index.roomIdOf(room);
        if (roomId !== undefined && index.has(slot, roomId)) return NONE;
      }
      return slot;
    }

    /**
     * Calls `callback` with the Socket of each of the first `count` slots
     * that is registered in the namespace, DELIVERY_BATCH at a time (see
     * lookUpBatch).
     */
    private deliver(slots: Int32Array, count: number, callback: (socket: Socket, slot: number) => void): void {
      // Per call: a callback may broadcast again, and so deliver again, in the middle.
      const batch = new Array<Socket | undefined>(Math.min(count, DELIVERY_BATCH));
      for (let start = 0; start < count; start += DELIVERY_BATCH) {
        const size = this.lookUpBatch(slots, start, count, batch);
        for (let i = 0; i < size; i++) {
          const socket = batch[i];
          if (socket !== undefined) callback(socket, slots[start + i]);
        }
      }
    }

    /**
     * Puts in `batch` the registered Sockets (or undefined) of the slots from
     * `start`, at most DELIVERY_BATCH of them and none past `count`, and reads
     * their clients; returns how many. Among many sockets each of these reads
     * is a cache miss, and the misses of one pass do not depend on each
     * other, so the CPU waits for a batch's at once instead of for each
     * recipient's in turn before its write.
     */
    private lookUpBatch(slots: Int32Array, start: number, count: number, batch: (Socket | undefined)[]): number {
      const size = Math.min(DELIVERY_BATCH, count - start);
      let sink = 0;
      for (let i = 0; i < size; i++) batch[i] = this.registeredSocketAt(slots[start + i]);
      for (let i = 0; i < size; i++) {
        const client = (batch[i] as unknown as SocketInternals | undefined)?.client as { conn?: unknown } | undefined;
        if (client?.conn !== undefined) sink++;
      }
      this.deliverySink = sink;
      return size;
    }

    /**
     * The Socket of `slot` if it is registered in the namespace: as the
     * in-memory adapter, a socket not yet registered (one joining rooms in a
     * middleware, say) is not written to.
     */
    private registeredSocketAt(slot: number): Socket | undefined {
      let socket = this.socketsBySlot[slot];
      if (socket === undefined) {
        const id = this.index.socketIdOf(slot);
        socket = id === undefined ? undefined : this.nsp.sockets.get(id);
        if (socket !== undefined) {
          // Grown one entry at a time: a store far past the end would turn the
          // array into a hash table (V8 "dictionary elements"), and every
          // recipient's lookup into a hash lookup.
          const cache = this.socketsBySlot;
          while (cache.length <= slot) cache.push(undefined);
          cache[slot] = socket;
        }
      }
      return socket;
    }

    /**
     * Takes `slot` out of `roomId`, with the events; `room` is the room's
     * name, or undefined to read it only if an event needs it (a cache miss
     * per room at scale, which a disconnect's leaves mostly do without).
     */
    private leaveRoom(slot: number, roomId: number, room: Room | undefined, id: SocketId): void {
      const index = this.index;
      if (!index.leave(slot, roomId)) return;
      this.uws?.left(slot, roomId);
      if (unheard(this)) {
        // No delete-room to emit: the room's name is not even read.
        if (index.roomSize(roomId) === 0) index.removeRoom(roomId);
        return;
      }
      if (this.listenerCount("leave-room") === 0) {
        // No code runs between the leave and the check that the room emptied.
        if (index.roomSize(roomId) === 0) {
          const name = room ?? (index.roomNameOf(roomId) as Room);
          index.removeRoom(roomId);
          this.emit("delete-room", name);
        }
        return;
      }
      const name = room ?? (index.roomNameOf(roomId) as Room);
      const generation = index.roomGeneration(roomId);
      this.emit("leave-room", name, id);
      // A leave-room listener may have emptied and removed the room already
      // (the generation changes when a room id is freed, and when it is reused).
      if (index.roomSize(roomId) === 0 && index.roomGeneration(roomId) === generation) {
        index.removeRoom(roomId);
        this.emit("delete-room", name);
      }
    }

    /**
     * The namespace's uWS topics if socket.io runs on `attachApp`, decided at
     * run time (not when this module loads), once the server has its engine.
     */
    private uwsTopics(): UwsTopics | undefined {
      if (this.uwsDecided) return this.uws;
      const engine = (this.nsp.server as unknown as ServerInternals).engine;
      if (engine === undefined) return undefined;
      this.uwsDecided = true;
      return (this.uws = isUwsEngine(engine) ? new UwsTopics(this.index, attachedApp(this.nsp.server)) : undefined);
    }

    /** Packet encoding as socket.io-adapter's, recording the result for connection state recovery. */
    private encodeAndRecord(packet: BroadcastPacket, packetOpts: PacketOptions): unknown[] {
      // uWS transports ignore the frame socket.io-adapter precomputes for `ws`: encode only.
      const encoded =
        this.uwsTopics() !== undefined
          ? (this.nsp.server as unknown as ServerInternals).encoder.encode(packet)
          : encodeInAdapter.call(this, packet, packetOpts);
      this.recovery?.recordEncoded(encoded, packetOpts);
      return encoded;
    }

    static {
      // socket.io-adapter routes every socket-selecting operation through its
      // private `apply(opts, callback)`, and encodes each broadcast once in its
      // private `_encode`. Replacing these two routes every operation through
      // the shards, and lets recovery store the very encoding sent to clients,
      // while socket.io's own code keeps doing encoding, flags and acks.
      for (const [name, method] of [
        ["apply", this.prototype.applyToRecipients],
        ["_encode", this.prototype.encodeAndRecord],
      ] as const) {
        Object.defineProperty(this.prototype, name, { value: method, writable: true, configurable: true });
      }
    }
  }
  return Sharded;
}

/**
 * Whether on uWS `opts` selects exactly one topic's subscribers, for one
 * publish: one room or everyone, nothing excluded, and not volatile (a
 * volatile packet is dropped for a socket that cannot take it now: only a
 * write per socket can tell).
 */
function publishesWhole(opts: BroadcastOptions): boolean {
  return opts.rooms.size <= 1 && (opts.except === undefined || opts.except.size === 0) && opts.flags?.volatile !== true;
}

/** Node's EventEmitter counts the events that have listeners (not in its typings). */
interface EmitterInternals {
  _eventsCount?: number;
}

/**
 * Whether nothing listens to `emitter`: one field read, where an `emit`
 * without listeners looks its event up in a dictionary. False where the
 * count is missing (another EventEmitter): the events are then emitted.
 */
function unheard(emitter: object): boolean {
  return (emitter as EmitterInternals)._eventsCount === 0;
}

/** `slots[0..count)` without `slot` (at most once there), in any order; returns the new count. */
function withoutSlot(slots: Int32Array, count: number, slot: number): number {
  for (let i = 0; i < count; i++) {
    if (slots[i] === slot) {
      slots[i] = slots[count - 1];
      return count - 1;
    }
  }
  return count;
}

/** socket.io-adapter's write of one broadcast packet to one recipient. */
function writeBroadcast(socket: Socket, packet: BroadcastPacket, encoded: unknown[], packetOpts: PacketOptions): void {
  const internals = socket as unknown as SocketInternals;
  internals.notifyOutgoingListeners?.(packet);
  internals.client.writeToEngine(encoded, packetOpts);
}

type Encode = (packet: BroadcastPacket, packetOpts: object) => unknown[];
const encodeInAdapter = (Adapter.prototype as unknown as { _encode: Encode })._encode;

/**
 * A Socket.IO adapter whose room membership lives in shared memory, sharded by
 * socket, and whose big broadcasts are answered by worker threads: socket.io's
 * in-memory `Adapter` with {@link withShardedMembership}'s storage.
 *
 * Create it with `createAdapter(options)`. Passing the class itself as
 * socket.io's `adapter` option also works, with default options and one pool
 * shared by every server that does so.
 */
export class ShardedAdapter extends withShardedMembership(Adapter) {
  /** Set on the class `createAdapter()` returns; read when a namespace constructs its adapter. */
  protected static context: AdapterContext | undefined;

  constructor(nsp: Namespace) {
    super(nsp);
  }
}
