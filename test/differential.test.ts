/**
 * Differential property test (issue 2): the same seeded random sequences of
 * connect, join, leave, disconnect, broadcasts and the other socket-selecting
 * operations, driven through socket.io's in-memory adapter and through the
 * sharded adapter, must give identical recipients (count and identity),
 * identical room events and identical `socketRooms()`, `adapter.rooms` and
 * `adapter.sids`.
 *
 * The adapters are constructed by real socket.io `Server`s (one per adapter
 * kind and configuration); every fast-check run uses a fresh namespace of
 * each, so every run starts from an empty adapter and replays
 * deterministically, while the sharded servers keep one worker pool for the
 * whole configuration (the "/" namespace holds it). Sockets are fake objects
 * placed in `nsp.sockets` exactly as socket.io does on connect, with the
 * parts of socket.io's `Socket` the adapter calls back (client.writeToEngine,
 * notifyOutgoingListeners, acks, join, leave, disconnect, rooms).
 *
 * Socket ids are "s0", "s1", ... and room names include numbers alongside
 * their string forms (42 and "42"), "" and the socket ids themselves, so
 * collisions are frequent. A command naming a socket that is not connected
 * is what socket.io would do with it: connect/join/disconnect are no-ops
 * (socket.io turns `join` into a no-op after disconnect), leave still calls
 * `adapter.del()` (socket.io's `leave` does).
 *
 * Commands: connect, join (one room or an array), leave, disconnect;
 * broadcasts through socket.io's BroadcastOperator (`io.in().except().emit()`
 * with volatile/compress flags), `adapter.broadcast()` (except as a Set or
 * undefined) and `adapter.broadcastWithAck()`; `allSockets()`/`sockets()`,
 * `fetchSockets()`, `socketsJoin()`, `socketsLeave()`, `disconnectSockets()`
 * (optionally with a "disconnect" handler that broadcasts, i.e. a nested
 * apply); the common loops over live views that leave while iterating
 * (`for (room of socket.rooms) socket.leave(room)`, `for (id of
 * adapter.rooms.get(room)) ...leave/disconnect`); in the large pool, many
 * sockets connecting (and joining) or disconnecting at once, so that every
 * shared table and the pair index grow, and shrink back. The last
 * configuration adds loops that join while iterating a live view.
 *
 * What is compared after every command:
 *  - recipients (sorted ids, count; each socket at most once), delivered
 *    payloads and flags, `notifyOutgoingListeners` calls, ack registrations
 *    and the ack count, the sockets whose join/leave/disconnect an operation
 *    called, the elements a loop over a live view visited;
 *  - room events since the previous command: in order for single-socket
 *    commands; for operations over many sockets (socketsJoin, socketsLeave,
 *    disconnectSockets, iterating a room's members) the callback order follows
 *    member iteration order, which is documented to differ by shard, so there
 *    the events are compared as a multiset, per socket in order, and per room
 *    (create/delete) in order;
 *  - `socketRooms(id)` of every id (ordered), `.size` and `.has()`;
 *    `adapter.rooms` keys in order, members (as sets), `.size`, `.has()`,
 *    `.get()`; `adapter.sids` keys in order with their rooms (ordered);
 *    views obtained earlier (a socket's rooms since its connect, a room's
 *    members since its creation) must still read the same as fresh ones.
 *
 * In the worker-path configurations the workers are made to answer shards
 * themselves (see `coaxWorkers`); each configuration reports the pool's
 * counters as a test diagnostic.
 *
 * Environment: FC_SEED (integer) fixes the seed, FC_PATH replays one
 * counterexample (with FC_SEED), FC_RUNS_SCALE multiplies every numRuns.
 * A failure prints the seed, the path and the shrunk sequence; to replay it:
 *   FC_SEED=<seed> FC_PATH=<path> node --test --test-name-pattern="<configuration>" dist/test/differential.test.js
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, describe, test } from "node:test";
import { inspect, isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { Server, type Namespace } from "socket.io";
import type { Adapter, BroadcastOptions, Room, SocketId } from "socket.io-adapter";
import { createAdapter, type ShardedAdapter, type ShardedAdapterOptions } from "../lib/index";
import { CLAIM_SHARD_BITS, CONTROL_CLAIM } from "../lib/protocol";

// ---------------------------------------------------------------------------
// Commands

/** A room as a value: socket.io types rooms as strings, the in-memory adapter accepts any Map key. */
type RoomValue = string | number;

interface Flags {
  volatile?: boolean;
  compress?: boolean;
}

type Command =
  | { op: "connect"; s: number }
  | { op: "connectRange"; s: number; n: number; rooms: RoomValue[] }
  | { op: "disconnectRange"; s: number; n: number }
  | { op: "join"; s: number; rooms: RoomValue[]; asArray: boolean }
  | { op: "leave"; s: number; room: RoomValue }
  | { op: "disconnect"; s: number }
  | { op: "emit"; via: "operator" | "adapter" | "withAck"; rooms: RoomValue[]; except: RoomValue[]; flags: Flags; exceptUndefined: boolean }
  | { op: "sockets"; via: "operator" | "adapter"; rooms: RoomValue[] }
  | { op: "fetchSockets"; rooms: RoomValue[]; except: RoomValue[] }
  | { op: "socketsJoin" | "socketsLeave"; rooms: RoomValue[]; except: RoomValue[]; target: RoomValue[] }
  | { op: "disconnectSockets"; rooms: RoomValue[]; except: RoomValue[]; announce: boolean }
  | { op: "leaveAllLoop"; s: number }
  | { op: "kickRoom"; room: RoomValue; disconnect: boolean }
  | { op: "joinWhileIterating"; over: "socket.rooms" | "members"; iterated: RoomValue; s: number; room: RoomValue };

const sid = (s: number): SocketId => `s${s}`;
const show = (value: unknown): string => JSON.stringify(value);

/** One line per command, in terms of socket.io's API (JSON keeps 42 and "42" apart). */
function render(cmd: Command): string {
  const sel = (rooms: RoomValue[], except: RoomValue[]) =>
    `io${rooms.length ? `.in(${show(rooms)})` : ""}${except.length ? `.except(${show(except)})` : ""}`;
  switch (cmd.op) {
    case "connect":
      return `connect ${sid(cmd.s)}`;
    case "connectRange":
      return `connect ${sid(cmd.s)}..${sid(cmd.s + cmd.n - 1)}${cmd.rooms.length ? `, each then .join(${show(cmd.rooms)})` : ""}`;
    case "disconnectRange":
      return `disconnect ${sid(cmd.s)}..${sid(cmd.s + cmd.n - 1)}`;
    case "join":
      return `${sid(cmd.s)}.join(${show(cmd.asArray ? cmd.rooms : cmd.rooms[0])})`;
    case "leave":
      return `${sid(cmd.s)}.leave(${show(cmd.room)})`;
    case "disconnect":
      return `${sid(cmd.s)}.disconnect()`;
    case "emit": {
      const flags = `${cmd.flags.volatile ? ".volatile" : ""}${cmd.flags.compress !== undefined ? `.compress(${cmd.flags.compress})` : ""}`;
      if (cmd.via === "operator") return `${sel(cmd.rooms, cmd.except)}${flags}.emit("ev")`;
      const except = cmd.exceptUndefined ? "undefined" : `Set(${show(cmd.except)})`;
      const fn = cmd.via === "adapter" ? "broadcast" : "broadcastWithAck";
      return `adapter.${fn}(packet, { rooms: Set(${show(cmd.rooms)}), except: ${except}, flags: ${show(cmd.flags)} })`;
    }
    case "sockets":
      return cmd.via === "operator" ? `${sel(cmd.rooms, [])}.allSockets()` : `adapter.sockets(Set(${show(cmd.rooms)}))`;
    case "fetchSockets":
      return `${sel(cmd.rooms, cmd.except)}.fetchSockets()`;
    case "socketsJoin":
    case "socketsLeave":
      return `${sel(cmd.rooms, cmd.except)}.${cmd.op}(${show(cmd.target)})`;
    case "disconnectSockets":
      return `${sel(cmd.rooms, cmd.except)}.disconnectSockets()${
        cmd.announce && cmd.except.length ? `, each socket's "disconnect" handler doing io.to(${show(cmd.except)}).emit("left")` : ""
      }`;
    case "leaveAllLoop":
      return `for (room of ${sid(cmd.s)}.rooms) if (room !== ${show(sid(cmd.s))}) ${sid(cmd.s)}.leave(room)`;
    case "kickRoom":
      return `for (id of adapter.rooms.get(${show(cmd.room)}) ?? []) sockets.get(id).${cmd.disconnect ? "disconnect()" : `leave(${show(cmd.room)})`}`;
    case "joinWhileIterating":
      return cmd.over === "socket.rooms"
        ? `for (room of ${sid(cmd.s)}.rooms) { visit(room); once: ${sid(cmd.s)}.join(${show(cmd.room)}) }`
        : `for (id of adapter.rooms.get(${show(cmd.iterated)}) ?? []) { visit(id); once: ${sid(cmd.s)}.join(${show(cmd.iterated)}) }`;
  }
}

/** A copy of `cmd` that fast-check prints as {@link render} does. */
function withRendering(cmd: Command): Command {
  const copy = { ...cmd };
  return Object.defineProperty(copy, fc.toStringMethod, { value: () => render(copy), enumerable: false });
}

interface Pool {
  /** Socket ids are s0 .. s(ids-1). */
  readonly ids: number;
  /** Room names besides the socket ids. */
  readonly names: readonly RoomValue[];
  readonly maxLength: number;
  /** Adds `connectRange` (many sockets at once), to grow the shared tables. */
  readonly bulk: boolean;
  /** Adds `joinWhileIterating`: a live view iterated while an element is added to it. */
  readonly joinWhileIterating?: boolean;
  /** How many ids and names the `.has()` probes cover (all of them in small pools). */
  readonly probeIds: number;
  readonly probeNames: number;
}

const SMALL_POOL: Pool = {
  ids: 8,
  names: ["a", "b", "c", "42", 42, ""],
  maxLength: 60,
  bulk: false,
  probeIds: 8,
  probeNames: 6,
};

/** The small pool, plus live views iterated while a socket joins (see `joinWhileIterating`). */
const SMALL_POOL_JOIN_WHILE_ITERATING: Pool = { ...SMALL_POOL, joinWhileIterating: true };

/** Enough sockets, rooms and memberships to grow every shared table and the pair index, and shrink it back. */
const LARGE_POOL: Pool = {
  ids: 220,
  names: [...Array.from({ length: 36 }, (_, i) => `r${i}`), 7, "7"],
  maxLength: 40,
  bulk: true,
  probeIds: 10,
  probeNames: 6,
};

function commandArbitrary(pool: Pool): fc.Arbitrary<Command> {
  const socket = fc.nat({ max: pool.ids - 1 });
  const room: fc.Arbitrary<RoomValue> = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...pool.names) },
    { weight: 1, arbitrary: socket.map(sid) },
  );
  const rooms = (min: number, max: number) => fc.array(room, { minLength: min, maxLength: max });
  // Empty rooms = every socket, as in socket.io; about one selection in four.
  const selection = fc.oneof({ weight: 1, arbitrary: fc.constant([] as RoomValue[]) }, { weight: 3, arbitrary: rooms(1, 3) });
  const except = fc.oneof({ weight: 1, arbitrary: fc.constant([] as RoomValue[]) }, { weight: 1, arbitrary: rooms(1, 2) });
  const flags: fc.Arbitrary<Flags> = fc.record({ volatile: fc.boolean(), compress: fc.boolean() }, { requiredKeys: [] });

  const commands: fc.WeightedArbitrary<Command>[] = [
    { weight: 6, arbitrary: fc.record({ op: fc.constant("connect" as const), s: socket }) },
    { weight: 8, arbitrary: fc.record({ op: fc.constant("join" as const), s: socket, rooms: rooms(1, 3), asArray: fc.boolean() }) },
    { weight: 5, arbitrary: fc.record({ op: fc.constant("leave" as const), s: socket, room }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("disconnect" as const), s: socket }) },
    {
      weight: 8,
      arbitrary: fc.record({
        op: fc.constant("emit" as const),
        via: fc.constantFrom("operator" as const, "adapter" as const, "withAck" as const),
        rooms: selection,
        except,
        flags,
        exceptUndefined: fc.boolean(),
      }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("sockets" as const), via: fc.constantFrom("operator" as const, "adapter" as const), rooms: selection }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("fetchSockets" as const), rooms: selection, except }) },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constantFrom("socketsJoin" as const, "socketsLeave" as const), rooms: selection, except, target: rooms(1, 2) }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("disconnectSockets" as const), rooms: selection, except, announce: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("leaveAllLoop" as const), s: socket }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("kickRoom" as const), room, disconnect: fc.boolean() }) },
  ];
  if (pool.joinWhileIterating) {
    commands.push({
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant("joinWhileIterating" as const),
        over: fc.constantFrom("socket.rooms" as const, "members" as const),
        iterated: room,
        s: socket,
        room,
      }),
    });
  }
  if (pool.bulk) {
    commands.push({
      weight: 6,
      arbitrary: fc.record({ op: fc.constant("connectRange" as const), s: socket, n: fc.integer({ min: 1, max: 120 }), rooms: rooms(0, 3) }),
    });
    commands.push({
      weight: 3,
      arbitrary: fc.record({ op: fc.constant("disconnectRange" as const), s: socket, n: fc.integer({ min: 1, max: 200 }) }),
    });
  }
  return fc.oneof(...commands).map(withRendering);
}

// ---------------------------------------------------------------------------
// One adapter kind: a socket.io Server, a namespace per run, fake sockets

interface Delivery {
  id: SocketId;
  packets: unknown[];
  volatile: unknown;
  compress: unknown;
}

/** What socket.io's `Socket` offers the adapter; enough for every adapter operation. */
interface FakeSocket {
  readonly id: SocketId;
  connected: boolean;
  readonly acks: Map<number, unknown>;
  readonly handshake: object;
  readonly data: object;
  readonly client: { writeToEngine(packets: unknown[], opts: Record<string, unknown>): void };
  notifyOutgoingListeners(packet: unknown): void;
  join(rooms: RoomValue | RoomValue[]): void;
  leave(room: RoomValue): void;
  disconnect(close?: boolean): void;
  readonly rooms: Set<Room>;
}

type RoomEvent = [string, ...unknown[]];

class Side {
  readonly io: Server;
  nsp!: Namespace;
  adapter!: Adapter;
  /** Collected since the last `take()`. */
  events: RoomEvent[] = [];
  deliveries: Delivery[] = [];
  notified: SocketId[] = [];
  calls: string[] = [];
  /** Views held since a socket's connect / a room's creation. */
  heldSocketRooms = new Map<SocketId, Set<Room>>();
  heldRooms = new Map<unknown, Set<SocketId>>();
  /** Called after a socket has disconnected, like a "disconnect" handler. */
  onDisconnect: ((id: SocketId) => void) | undefined;
  /** Whether {@link coaxWorkers} could instrument this run's adapter. */
  coaxed = false;

  constructor(
    readonly kind: "in-memory" | "sharded",
    adapterOption: ReturnType<typeof createAdapter> | undefined,
  ) {
    // An unlistened http server gives io.close() an engine to close.
    this.io = new Server(createServer(), adapterOption ? { adapter: adapterOption } : {});
  }

  open(name: string, coax = false): void {
    this.nsp = this.io.of(name);
    this.adapter = this.nsp.adapter;
    if (coax) this.coaxed = coaxWorkers(this.adapter);
    this.events = [];
    this.heldSocketRooms.clear();
    this.heldRooms.clear();
    for (const event of ["create-room", "delete-room", "join-room", "leave-room"]) {
      this.adapter.on(event, (...args: unknown[]) => {
        this.events.push([event, ...args]);
        if (event === "delete-room") this.heldRooms.delete(args[0]);
      });
    }
  }

  /** Ends a run: drops the namespace and closes its adapter (the pool stays, "/" holds it). */
  async closeRun(): Promise<void> {
    const { nsp } = this;
    nsp.sockets.clear();
    (this.io as unknown as { _nsps: Map<string, Namespace> })._nsps.delete(nsp.name);
    await nsp.adapter.close();
  }

  /** What sockets were sent or asked to do since the last call. */
  take(): { deliveries: Delivery[]; notified: SocketId[]; calls: string[] } {
    const taken = { deliveries: this.deliveries, notified: this.notified, calls: this.calls };
    this.deliveries = [];
    this.notified = [];
    this.calls = [];
    return taken;
  }

  /** Room events since the last call. */
  takeEvents(): RoomEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  live(id: SocketId): FakeSocket | undefined {
    return this.nsp.sockets.get(id) as unknown as FakeSocket | undefined;
  }

  /** As socket.io's Namespace._doConnect + Socket._onconnect: into nsp.sockets, then join its own id. */
  connect(id: SocketId): void {
    const side = this;
    const adapter = this.adapter;
    const nsp = this.nsp;
    const socket: FakeSocket = {
      id,
      connected: true,
      acks: new Map(),
      handshake: {},
      data: {},
      client: {
        writeToEngine(packets, opts) {
          side.deliveries.push({ id, packets, volatile: opts.volatile, compress: opts.compress });
        },
      },
      notifyOutgoingListeners() {
        side.notified.push(id);
      },
      // socket.io's Socket.join; a no-op once the socket is disconnected, as socket.io makes it.
      join(rooms) {
        side.calls.push(`join ${id}`);
        if (!socket.connected) return;
        adapter.addAll(id, new Set((Array.isArray(rooms) ? rooms : [rooms]) as Room[]));
      },
      leave(room) {
        side.calls.push(`leave ${id} ${show(room)}`);
        adapter.del(id, room as Room);
      },
      disconnect() {
        side.calls.push(`disconnect ${id}`);
        side.disconnect(id);
      },
      get rooms() {
        return adapter.socketRooms(id) ?? new Set();
      },
    };
    (nsp.sockets as Map<SocketId, unknown>).set(id, socket);
    adapter.addAll(id, new Set([id]));
    this.heldSocketRooms.set(id, adapter.socketRooms(id) as Set<Room>);
  }

  /** As socket.io's Socket._onclose/_cleanup: leave every room, then out of nsp.sockets. */
  disconnect(id: SocketId): void {
    const socket = this.live(id);
    if (!socket || !socket.connected) return;
    socket.connected = false;
    this.adapter.delAll(id);
    this.nsp.sockets.delete(id);
    this.heldSocketRooms.delete(id);
    this.onDisconnect?.(id);
  }
}

/**
 * Left alone, the main thread claims every shard of these small queries
 * before a worker has even woken up, and the workers' answers would go
 * untested. This wraps the adapter's (private) index so that, before the main
 * thread answers a shard it claimed, it spins (at most 2 ms) until the
 * workers it just handed the query have claimed the others. It changes
 * timing only, never what is computed. Returns false, leaving the adapter
 * alone, if the internals it relies on are not there.
 */
function coaxWorkers(adapter: Adapter): boolean {
  const internals = adapter as unknown as {
    index?: { shardCount: number; collectShardInto?: (...args: unknown[]) => number };
    pool?: { control?: unknown };
  };
  const { index, pool } = internals;
  const original = index?.collectShardInto;
  if (!index || !pool || typeof original !== "function" || !(pool.control instanceof Int32Array)) return false;
  const shardMask = (1 << CLAIM_SHARD_BITS) - 1;
  index.collectShardInto = function (...args: unknown[]): number {
    const control = pool.control as Int32Array;
    const deadline = performance.now() + 2;
    while ((Atomics.load(control, CONTROL_CLAIM) & shardMask) < index.shardCount && performance.now() < deadline) {
      // spin: the workers were handed this query a moment ago
    }
    return original.apply(this, args);
  };
  return true;
}

// ---------------------------------------------------------------------------
// Running one command on one side

/** What a command observably did, besides room events and the state it left. */
interface Outcome {
  skipped?: boolean;
  recipients?: SocketId[];
  count?: number;
  deliveries?: Delivery[];
  notified?: SocketId[];
  acks?: SocketId[];
  fetched?: [SocketId, Room[]][];
  calls?: string[];
  visited?: unknown[];
}

/** Sorted by JSON rendering (so 42 and "42" stay apart and sort deterministically). */
function sorted<T>(values: Iterable<T>): T[] {
  const keyed = Array.from(values, (value): [string, T] => [typeof value === "string" ? value : show(value), value]);
  keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return keyed.map(([, value]) => value);
}

/** Commands whose callbacks follow member iteration order (documented to differ by shard). */
function eventsOrdered(cmd: Command): boolean {
  return !["socketsJoin", "socketsLeave", "disconnectSockets", "kickRoom"].includes(cmd.op);
}

function operator(side: Side, rooms: RoomValue[], except: RoomValue[]) {
  return side.nsp.in(rooms as Room[]).except(except as Room[]);
}

async function run(side: Side, cmd: Command, step: number): Promise<Outcome> {
  const { adapter, nsp } = side;
  switch (cmd.op) {
    case "connect": {
      if (side.live(sid(cmd.s))) return { skipped: true };
      side.connect(sid(cmd.s));
      return {};
    }
    case "connectRange": {
      // Sockets that are already connected only join.
      for (let s = cmd.s; s < cmd.s + cmd.n && s < LARGE_POOL.ids; s++) {
        if (!side.live(sid(s))) side.connect(sid(s));
        if (cmd.rooms.length > 0) side.live(sid(s))!.join(cmd.rooms);
      }
      side.take();
      return {};
    }
    case "disconnectRange": {
      for (let s = cmd.s; s < cmd.s + cmd.n && s < LARGE_POOL.ids; s++) side.disconnect(sid(s));
      return {};
    }
    case "join": {
      const socket = side.live(sid(cmd.s));
      if (!socket) return { skipped: true };
      socket.join(cmd.asArray ? cmd.rooms : cmd.rooms[0]);
      return {};
    }
    case "leave": {
      // socket.io's leave() calls adapter.del() even after disconnect.
      adapter.del(sid(cmd.s), cmd.room as Room);
      return { skipped: !side.live(sid(cmd.s)) };
    }
    case "disconnect": {
      if (!side.live(sid(cmd.s))) return { skipped: true };
      side.disconnect(sid(cmd.s));
      return {};
    }
    case "emit": {
      const packet = { type: 2, data: ["ev", step] };
      const flags = { ...cmd.flags };
      const opts: BroadcastOptions = {
        rooms: new Set(cmd.rooms as Room[]),
        except: cmd.exceptUndefined ? undefined : new Set(cmd.except as Room[]),
        flags,
      };
      let count: number | undefined;
      let ackId: number | undefined;
      if (cmd.via === "operator") {
        let op = operator(side, cmd.rooms, cmd.except);
        if (flags.volatile) op = op.volatile;
        if (flags.compress !== undefined) op = op.compress(flags.compress);
        op.emit("ev", step);
      } else if (cmd.via === "adapter") {
        adapter.broadcast(packet as never, opts);
      } else {
        adapter.broadcastWithAck(packet as never, opts, (n: number) => (count = n), () => {});
        ackId = (packet as { id?: number }).id;
      }
      const { deliveries, notified } = side.take();
      const outcome: Outcome = {
        recipients: sorted(deliveries.map((d) => d.id)),
        deliveries: sorted(deliveries),
        notified: sorted(notified),
      };
      if (cmd.via === "withAck") {
        outcome.count = count;
        outcome.acks = sorted(
          Array.from(nsp.sockets.values() as Iterable<unknown>, (s) => s as FakeSocket)
            .filter((s) => s.acks.has(ackId as number))
            .map((s) => s.id),
        );
      }
      return outcome;
    }
    case "sockets": {
      const ids = cmd.via === "operator" ? await nsp.in(cmd.rooms as Room[]).allSockets() : await adapter.sockets(new Set(cmd.rooms as Room[]));
      return { recipients: sorted(ids), count: ids.size };
    }
    case "fetchSockets": {
      const sockets = await operator(side, cmd.rooms, cmd.except).fetchSockets();
      return {
        recipients: sorted(sockets.map((s) => s.id)),
        count: sockets.length,
        fetched: sorted(sockets.map((s): [SocketId, Room[]] => [s.id, [...s.rooms]])),
      };
    }
    case "socketsJoin":
    case "socketsLeave": {
      const op = operator(side, cmd.rooms, cmd.except);
      if (cmd.op === "socketsJoin") op.socketsJoin(cmd.target as Room[]);
      else op.socketsLeave(cmd.target as Room[]);
      return { calls: sorted(side.take().calls) };
    }
    case "disconnectSockets": {
      // A "disconnect" handler that broadcasts: a nested apply() inside the
      // outer one. Sent to the except-rooms, whose members this operation
      // does not touch, so the recipients do not depend on callback order.
      if (cmd.announce && cmd.except.length) side.onDisconnect = (id) => side.nsp.to(cmd.except as Room[]).emit("left", id);
      try {
        operator(side, cmd.rooms, cmd.except).disconnectSockets();
      } finally {
        side.onDisconnect = undefined;
      }
      const { calls, deliveries } = side.take();
      return { calls: sorted(calls), deliveries: sorted(deliveries) };
    }
    case "leaveAllLoop": {
      // A common pattern: iterate socket.rooms (a live set) while leaving.
      const socket = side.live(sid(cmd.s));
      if (!socket) return { skipped: true };
      const visited: string[] = [];
      for (const room of socket.rooms) {
        visited.push(show(room));
        if (room !== socket.id) socket.leave(room);
      }
      side.take();
      return { calls: visited };
    }
    case "kickRoom": {
      // Another: iterate a room's members (a live set) while they leave it or disconnect.
      const visited: SocketId[] = [];
      for (const id of adapter.rooms.get(cmd.room as Room) ?? []) {
        visited.push(id);
        const socket = side.live(id);
        if (!socket) continue;
        if (cmd.disconnect) socket.disconnect();
        else socket.leave(cmd.room);
      }
      side.take();
      return { recipients: sorted(visited), count: visited.length };
    }
    case "joinWhileIterating": {
      // A JS Set visits the elements added while it is iterated.
      const joiner = side.live(sid(cmd.s));
      if (!joiner) return { skipped: true };
      const visited: unknown[] = [];
      const iterated = cmd.over === "socket.rooms" ? joiner.rooms : (adapter.rooms.get(cmd.iterated as Room) ?? new Set<SocketId>());
      for (const value of iterated) {
        visited.push(value);
        if (visited.length === 1) joiner.join(cmd.over === "socket.rooms" ? cmd.room : cmd.iterated);
      }
      side.take();
      // socket.rooms is in join order on both; a room's members are not (documented).
      return { visited: cmd.over === "socket.rooms" ? visited : sorted(visited) };
    }
  }
}

// ---------------------------------------------------------------------------
// Comparing

/** Everything observable about an adapter's membership, through the public Map/Set API. */
function snapshot(side: Side, pool: Pool): Record<string, unknown> {
  const { adapter } = side;
  const universe = Array.from({ length: pool.ids }, (_, i) => sid(i));
  const probeIds = universe.slice(0, pool.probeIds);
  const probeRooms: RoomValue[] = [...pool.names.slice(0, pool.probeNames), ...probeIds, "nope", 4242];
  const roomKeys = [...adapter.rooms.keys()];
  const live = universe.filter((id) => side.live(id));
  return {
    "rooms.size": adapter.rooms.size,
    "rooms.keys()": roomKeys,
    "rooms entries (members sorted, size)": [...adapter.rooms].map(([room, members]) => [room, sorted(members), members.size]),
    "rooms.get(room) (members sorted, size)": roomKeys.map((room) => {
      const members = adapter.rooms.get(room);
      return members && [sorted(members), members.size];
    }),
    "rooms.get(room).has(id)": roomKeys.map((room) => [room, probeIds.filter((id) => adapter.rooms.get(room)?.has(id))]),
    "rooms.has(probe), rooms.get(probe) === undefined": probeRooms.map((room) => [room, adapter.rooms.has(room as Room), adapter.rooms.get(room as Room) === undefined]),
    "sids.size": adapter.sids.size,
    "sids.keys()": [...adapter.sids.keys()],
    "sids entries (rooms in order, size)": [...adapter.sids].map(([id, rooms]) => [id, [...rooms], rooms.size]),
    "sids.has(id)": universe.filter((id) => adapter.sids.has(id)),
    "socketRooms(id) (rooms in order, size)": universe.map((id) => {
      const rooms = adapter.socketRooms(id);
      return rooms === undefined ? [id, "undefined"] : [id, [...rooms], rooms.size];
    }),
    "socketRooms(id).has(probe)": probeIds.map((id) => [id, probeRooms.filter((room) => adapter.socketRooms(id)?.has(room as Room))]),
    "nsp.sockets (connected)": live,
    // Views are live: one taken at connect still reads as a fresh one while the socket is connected...
    "socketRooms(id) held since connect": live.map((id) => {
      const held = side.heldSocketRooms.get(id);
      return [id, held && [...held], held?.size];
    }),
    // ... and one taken when a room was created reads as a fresh one while the room exists.
    "rooms.get(room) held since creation": roomKeys.map((room) => {
      let held = side.heldRooms.get(room);
      if (!held) side.heldRooms.set(room, (held = adapter.rooms.get(room) as Set<SocketId>));
      return [room, sorted(held), held.size];
    }),
  };
}

class Mismatch extends Error {}

function fail(what: string, mem: unknown, sharded: unknown, trace: string[]): never {
  const opts = { depth: 6, breakLength: 160, maxArrayLength: 300 };
  throw new Mismatch(
    `${what}\n  in-memory: ${inspect(mem, opts)}\n  sharded:   ${inspect(sharded, opts)}\n` +
      `sequence (ids s0.., rooms in JSON):\n${trace.map((line) => `  ${line}`).join("\n")}`,
  );
}

function compareEvents(cmd: Command, mem: RoomEvent[], sh: RoomEvent[], trace: string[]): void {
  if (eventsOrdered(cmd)) {
    if (!isDeepStrictEqual(mem, sh)) fail("room events differ (in order)", mem, sh, trace);
    return;
  }
  if (!isDeepStrictEqual(sorted(mem), sorted(sh))) fail("room events differ (as a multiset)", mem, sh, trace);
  const project = (events: RoomEvent[], key: (e: RoomEvent) => string | undefined) => {
    const groups = new Map<string, RoomEvent[]>();
    for (const e of events) {
      const k = key(e);
      if (k === undefined) continue;
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k)!.push(e);
    }
    return sorted(groups.entries());
  };
  const bySocket = (e: RoomEvent) => (e[0] === "join-room" || e[0] === "leave-room" ? String(e[2]) : undefined);
  if (!isDeepStrictEqual(project(mem, bySocket), project(sh, bySocket))) fail("room events differ (one socket's events in order)", mem, sh, trace);
  const byRoom = (e: RoomEvent) => (e[0] === "create-room" || e[0] === "delete-room" ? show(e[1]) : undefined);
  if (!isDeepStrictEqual(project(mem, byRoom), project(sh, byRoom))) fail("room events differ (one room's create/delete in order)", mem, sh, trace);
}

function checkOutcome(side: Side, outcome: Outcome, trace: string[]): void {
  // Each socket at most once, on each side, whatever the other side does.
  const ids = outcome.recipients;
  if (ids && new Set(ids).size !== ids.length) fail(`${side.kind}: a socket was selected more than once`, ids, ids, trace);
  if (outcome.count !== undefined && ids && outcome.count !== ids.length) fail(`${side.kind}: count != recipients`, outcome.count, ids, trace);
}

let runCounter = 0;

async function replay(mem: Side, sh: Side, pool: Pool, cmds: Command[], coax: boolean): Promise<void> {
  const name = `/run${runCounter++}`;
  mem.open(name);
  sh.open(name, coax);
  const trace: string[] = [];
  try {
    for (let step = 0; step < cmds.length; step++) {
      const cmd = cmds[step];
      // Lets piscina see its workers' previous tasks as done, so that it
      // hands them this command's query instead of queueing it.
      if (coax) await new Promise((resolve) => setImmediate(resolve));
      trace.push(`#${step} ${render(cmd)}`);
      const a = await run(mem, cmd, step);
      const b = await run(sh, cmd, step);
      if (a.skipped) trace[trace.length - 1] += "   (no-op: not connected)";
      checkOutcome(mem, a, trace);
      checkOutcome(sh, b, trace);
      if (!isDeepStrictEqual(a, b)) fail(`outcome of #${step} differs (recipients, deliveries, acks, callbacks, visited elements)`, a, b, trace);
      // Anything a command's own outcome did not cover (there should be nothing).
      const restA = mem.take();
      const restB = sh.take();
      if (!isDeepStrictEqual(sorted(restA.deliveries), sorted(restB.deliveries)) || !isDeepStrictEqual(sorted(restA.calls), sorted(restB.calls))) {
        fail(`other deliveries or socket calls of #${step} differ`, restA, restB, trace);
      }
      compareEvents(cmd, mem.takeEvents(), sh.takeEvents(), trace);
      const sa = snapshot(mem, pool);
      const sb = snapshot(sh, pool);
      for (const key of Object.keys(sa)) {
        if (!isDeepStrictEqual(sa[key], sb[key])) fail(`after #${step}: ${key} differs`, sa[key], sb[key], trace);
      }
    }
  } finally {
    await mem.closeRun();
    await sh.closeRun();
  }
}

// ---------------------------------------------------------------------------
// Configurations

const seed = process.env.FC_SEED !== undefined && process.env.FC_SEED !== "" ? Number(process.env.FC_SEED) : undefined;
const path = process.env.FC_PATH || undefined;
const scale = Number(process.env.FC_RUNS_SCALE ?? 1) || 1;

interface Configuration {
  readonly name: string;
  readonly adapter: ShardedAdapterOptions;
  readonly pool: Pool;
  readonly numRuns: number;
  /** Get the workers to answer shards (see {@link coaxWorkers}). */
  readonly coax?: boolean;
}

const CONFIGURATIONS: Configuration[] = [
  { name: "workers: 2, default threshold (main-thread path)", adapter: { workers: 2 }, pool: SMALL_POOL, numRuns: 1500 },
  { name: "workers: 2, offloadThreshold: 0 (worker path)", adapter: { workers: 2, offloadThreshold: 0 }, pool: SMALL_POOL, numRuns: 1000, coax: true },
  { name: "workers: 1, offloadThreshold: 3 (both paths)", adapter: { workers: 1, offloadThreshold: 3 }, pool: SMALL_POOL, numRuns: 400, coax: true },
  { name: "workers: 3, offloadThreshold: 0 (worker path)", adapter: { workers: 3, offloadThreshold: 0 }, pool: SMALL_POOL, numRuns: 400, coax: true },
  { name: "workers: 3, offloadThreshold: 60, large pool (tables grow)", adapter: { workers: 3, offloadThreshold: 60 }, pool: LARGE_POOL, numRuns: 200, coax: true },
  // Kept apart so that a difference here does not hide the others: the same
  // commands plus iterating socket.rooms / a room's members while a socket
  // joins, which a JS Set answers by visiting the added element.
  {
    name: "workers: 2, views iterated while a socket joins",
    adapter: { workers: 2 },
    pool: SMALL_POOL_JOIN_WHILE_ITERATING,
    numRuns: 300,
  },
];

const servers: Server[] = [];
after(async () => {
  // The last adapter to close stops the pool's workers, so the process can exit.
  await Promise.all(servers.map((io) => io.close()));
});

describe("sharded adapter vs socket.io's in-memory adapter (differential)", () => {
  for (const config of CONFIGURATIONS) {
    test(config.name, async (t) => {
      const mem = new Side("in-memory", undefined);
      const sh = new Side("sharded", createAdapter(config.adapter));
      servers.push(mem.io, sh.io);
      const numRuns = Math.max(1, Math.round(config.numRuns * scale));
      let commands = 0;
      let coaxed = 0;
      const sequences = fc.array(commandArbitrary(config.pool), { maxLength: config.pool.maxLength, size: "max" });
      const property = fc.asyncProperty(sequences, async (cmds) => {
        commands += cmds.length;
        await replay(mem, sh, config.pool, cmds, config.coax ?? false);
        if (sh.coaxed) coaxed++;
      });
      await fc.assert(property, { numRuns, seed, path, endOnFailure: path !== undefined ? true : undefined, includeErrorInReport: true });
      const stats = (sh.io.of("/").adapter as unknown as ShardedAdapter).stats().pool;
      t.diagnostic(`${numRuns} sequences, ${commands} commands; pool: ${show(stats)}`);
      if (config.coax && coaxed === 0) t.diagnostic("could not reach the adapter's internals to get the workers to answer shards");
      assert.equal(stats.workerFailures, 0, "a worker task failed");
    });
  }
});
