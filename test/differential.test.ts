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
 * Connection state recovery (issue 3): in the "recovery on" configurations
 * both servers have `connectionStateRecovery`, so socket.io gives the
 * in-memory side its `SessionAwareAdapter` and the sharded adapter keeps its
 * own RecoveryStore. On top of the commands above (broadcasts now carry
 * payloads: JSON values, binary, long strings), a connected socket can close
 * with a session, `adapter.persistSession({ sid, pid, rooms:
 * [...socket.rooms], data })` then leaveAll, as socket.io's
 * `Socket._onclose` does for a recoverable reason, and `await
 * adapter.restoreSession(pid, offset)` is called with a persisted pid or an
 * unknown one, and the offset of a stored packet or an unknown one (and
 * optionally the socket comes back with the session, joining its rooms, as
 * socket.io's `Socket` constructor does).
 *
 * Offsets come from yeast() independently on each side, so each broadcast
 * gets a logical label (its command number, plus its event and first
 * argument for the nested "left" broadcasts) and each side's offsets are
 * mapped to labels: delivered packets are compared with their trailing
 * offset replaced by its label, the packets each command stored are compared
 * by label (broadcastWithAck and volatile ones must not be), a restore uses
 * each side's own offset of the same logical packet, and `missedPackets` are
 * compared as [label, payload] in order (payloads as a client would receive
 * them: socket.io-parser encode and decode). Also compared: null or not,
 * sid, pid, rooms, data (deep strict equality, and through util.inspect,
 * which also sees key, Map and Set order: the README says a session comes
 * back identical, or is kept on the heap as the in-memory adapter keeps it),
 * the number of stored packets and sessions after every command, and every
 * session restored earlier in the run, which must still read as it did
 * (like the held views above). Stored broadcasts always have an `except`
 * Set, as socket.io passes them (SessionAwareAdapter cannot restore past a
 * packet broadcast with `except: undefined`).
 *
 * The main recovery configurations draw `data` from JSON-like values,
 * undefined, NaN, Infinity, Map, Set, Date and cycles; a separate one adds
 * -0, lone surrogates, own "__proto__" keys and values msgpack cannot give
 * back identical (see `sessionDataArbitrary`), so that a difference there
 * does not hide the others. The last configuration mocks Date and
 * setInterval (node:test's mock timers) and adds a command that moves the
 * clock, so that both adapters' expiry timers run: sessions and packets
 * expire, restores of expired ones resolve null, and the sharded adapter's
 * packet log is reset and reused.
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
import { Server, type Namespace, type ServerOptions } from "socket.io";
import type { Adapter, BroadcastOptions, Room, Session, SocketId } from "socket.io-adapter";
// socket.io-adapter's offset generator: an offset that looks real but was never stored.
import { yeast } from "socket.io-adapter/dist/contrib/yeast";
import { Decoder, Encoder } from "socket.io-parser";
import { createAdapter, type ShardedAdapter, type ShardedAdapterOptions } from "../lib/index";
import { coaxWorkers } from "./coax-workers";

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
  | {
      op: "emit";
      via: "operator" | "adapter" | "withAck";
      rooms: RoomValue[];
      except: RoomValue[];
      flags: Flags;
      exceptUndefined: boolean;
      /** In the recovery configurations: a third element of the packet's data, after "ev" and the command number. */
      payload?: unknown;
    }
  | { op: "sockets"; via: "operator" | "adapter"; rooms: RoomValue[] }
  | { op: "fetchSockets"; rooms: RoomValue[]; except: RoomValue[] }
  | { op: "socketsJoin" | "socketsLeave"; rooms: RoomValue[]; except: RoomValue[]; target: RoomValue[] }
  | { op: "disconnectSockets"; rooms: RoomValue[]; except: RoomValue[]; announce: boolean }
  | { op: "leaveAllLoop"; s: number }
  | { op: "kickRoom"; room: RoomValue; disconnect: boolean }
  | { op: "joinWhileIterating"; over: "socket.rooms" | "members"; iterated: RoomValue; s: number; room: RoomValue }
  // Connection state recovery
  /** The k-th (modulo their number, by id) connected socket closes with a session. */
  | { op: "persist"; k: number; pid: number; data: unknown }
  | { op: "restore"; pid: PidChoice; offset: OffsetChoice; resume: boolean }
  | { op: "wait"; ms: number };

/**
 * The offset a restore is called with: that of the k-th (modulo their number)
 * packet stored in this run, oldest first, by label (each side uses its own
 * offset for that packet), or one never stored: a fresh yeast() offset, a
 * garbage string, "". With no packet stored yet, "stored" falls back to a
 * fresh offset.
 */
type OffsetChoice = { kind: "stored"; k: number } | { kind: "unknown"; value: "fresh" | "garbage" | "empty" };

/**
 * The pid a restore is called with: the k-th (modulo their number, sorted)
 * pid persisted in this run, or p4, which is never persisted. With no session
 * persisted yet, "persisted" falls back to p4.
 */
type PidChoice = { kind: "persisted"; k: number } | { kind: "unknown" };
const UNKNOWN_PID = 4;

const sid = (s: number): SocketId => `s${s}`;
const pid = (p: number): string => `p${p}`;
const show = (value: unknown): string => JSON.stringify(value);
/** A value in one line, as util.inspect shows it (-0, Map, Set, Date, Buffer, cycles; Errors without their stack frames). */
const brief = (value: unknown): string =>
  inspect(value, { depth: 8, breakLength: Infinity, maxArrayLength: 40, maxStringLength: 80 })
    .replace(/\n\s+at [^\n]*/g, "")
    .replace(/\n\s*/g, " ");

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
      const payload = cmd.payload === undefined ? "" : `, ${brief(cmd.payload)}`;
      if (cmd.via === "operator") return `${sel(cmd.rooms, cmd.except)}${flags}.emit("ev"${payload ? `, <command number>${payload}` : ""})`;
      const except = cmd.exceptUndefined ? "undefined" : `Set(${show(cmd.except)})`;
      const fn = cmd.via === "adapter" ? "broadcast" : "broadcastWithAck";
      const packet = payload ? `{ type: 2, data: ["ev", <command number>${payload}] }` : "packet";
      return `adapter.${fn}(${packet}, { rooms: Set(${show(cmd.rooms)}), except: ${except}, flags: ${show(cmd.flags)} })`;
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
    case "persist":
      return (
        `socket = <connected socket #${cmd.k} (mod count, by id)>, closes ("transport close"): adapter.persistSession({ sid: socket.id, pid: ${show(pid(cmd.pid))}, ` +
        `rooms: [...socket.rooms], data: ${brief(cmd.data)} }), then leaves all its rooms`
      );
    case "restore": {
      const offset =
        cmd.offset.kind === "stored"
          ? `<offset of stored packet #${cmd.offset.k} (mod count, oldest first)>`
          : { fresh: "<a fresh yeast() offset>", garbage: '"nope"', empty: '""' }[cmd.offset.value];
      const which = cmd.pid.kind === "persisted" ? `<pid of persisted session #${cmd.pid.k} (mod count, sorted)>` : show(pid(UNKNOWN_PID));
      return `await adapter.restoreSession(${which}, ${offset})${cmd.resume ? ", and the socket comes back with the session (joins its rooms)" : ""}`;
    }
    case "wait":
      return `the clock moves ${cmd.ms} ms (expiry timers run)`;
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
  /** Most rooms one `join` command joins (3 by default). */
  readonly maxJoinRooms?: number;
  /** Adds `joinWhileIterating`: a live view iterated while an element is added to it. */
  readonly joinWhileIterating?: boolean;
  /** How many ids and names the `.has()` probes cover (all of them in small pools). */
  readonly probeIds: number;
  readonly probeNames: number;
  /**
   * Connection state recovery on (both servers): adds persist and restore,
   * payloads on broadcasts, and `wait` with a mocked clock.
   */
  readonly recovery?: { readonly data: fc.Arbitrary<unknown>; readonly clock?: boolean };
  /** Weights that differ from the defaults (see {@link commandArbitrary}). */
  readonly weights?: Partial<Record<Command["op"], number>>;
  /** Shortest sequence (0 by default). */
  readonly minLength?: number;
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

/**
 * Few sockets in up to 40 rooms each, joining up to 30 at once: sockets cross
 * the bound above which their memberships go into the pair index (16 rooms,
 * `lib/member-lists.ts`) both ways, and leave every room while indexed.
 */
const MANY_ROOMS_POOL: Pool = {
  ids: 6,
  names: [...Array.from({ length: 38 }, (_, i) => `m${i}`), 7, "7"],
  maxLength: 60,
  bulk: false,
  maxJoinRooms: 30,
  probeIds: 6,
  probeNames: 40,
  weights: { join: 10, leave: 16, leaveAllLoop: 2 },
};

/** The recovery window of the "recovery on" configurations. */
const MAX_DISCONNECTION_MS = 60_000;

/** A class instance in session data (msgpack would give back a plain object). */
class Point {
  constructor(readonly x: number) {}
}

/**
 * `socket.data` for persistSession: JSON-like values (strings of any
 * well-formed Unicode), undefined, NaN, ±Infinity, Map, Set, valid Date, and
 * cycles. Main-configuration values never hold -0 or lone surrogates, and
 * objects never have an own "__proto__" key (fast-check's dictionary makes
 * one now and then). With `edge`, also those, and what socket.io's in-memory
 * adapter keeps as is but msgpack would not give back identical: invalid
 * Dates, sparse arrays, null-prototype objects, symbol keys, shared
 * references, BigInt, symbols, functions, class instances, Buffers and typed
 * arrays, RegExps, Errors.
 */
function sessionDataArbitrary(edge: boolean): fc.Arbitrary<unknown> {
  const noNegativeZero = (x: number) => (Object.is(x, -0) ? 0 : x);
  const string = edge ? fc.oneof(fc.string({ unit: "grapheme", maxLength: 6 }), fc.string({ unit: "binary", maxLength: 4 })) : fc.string({ unit: "grapheme", maxLength: 6 });
  const number = fc.oneof(
    fc.integer(),
    fc.maxSafeInteger(),
    edge ? fc.double() : fc.double().map(noNegativeZero),
    ...(edge ? [fc.constant(-0)] : []),
  );
  const key = edge ? fc.oneof(string, fc.constantFrom("__proto__", "constructor", "toString")) : string.filter((k) => k !== "__proto__");
  const plainLeaf = fc.oneof(fc.constant(null), fc.constant(undefined), fc.boolean(), number, string, fc.date({ noInvalidDate: true }));
  const exoticLeaf = fc.oneof(
    fc.constant(0).map(() => new Date(NaN)),
    fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
    fc.constantFrom(Symbol.for("sym"), Symbol.iterator),
    fc.constant(0).map(() => function handler() {}),
    fc.integer().map((x) => new Point(x)),
    fc.uint8Array({ maxLength: 4 }).map((bytes) => Buffer.from(bytes)),
    fc.uint8Array({ maxLength: 4 }),
    fc.float64Array({ maxLength: 3 }),
    fc.constant(0).map(() => /re/gi),
    fc.string({ maxLength: 5 }).map((message) => new Error(message)),
  );
  const leaf = edge ? fc.oneof({ weight: 3, arbitrary: plainLeaf }, { weight: 1, arbitrary: exoticLeaf }) : plainLeaf;
  type Tree = { value: unknown; array: unknown[]; object: Record<string, unknown>; map: Map<unknown, unknown>; set: Set<unknown>; odd: unknown };
  const { value } = fc.letrec<Tree>((tie) => ({
    value: fc.oneof({ depthSize: "small", maxDepth: 3 }, leaf, tie("array"), tie("object"), tie("map"), tie("set"), ...(edge ? [tie("odd")] : [])),
    array: fc.array(tie("value"), { maxLength: 3 }),
    object: fc.dictionary(key, tie("value"), { maxKeys: 3, noNullPrototype: true }),
    map: fc.array(fc.tuple(leaf, tie("value")), { maxLength: 3 }).map((entries) => new Map(entries)),
    set: fc.array(tie("value"), { maxLength: 3 }).map((values) => new Set(values)),
    // Edge only: sparse arrays, objects that may have a null prototype, symbol keys, a shared reference.
    odd: fc.oneof(
      fc.sparseArray(tie("value"), { maxLength: 4 }),
      fc.dictionary(key, tie("value"), { maxKeys: 3 }),
      tie("value").map((v) => ({ [Symbol.for("key")]: v, plain: 1 })),
      tie("value").map((v) => {
        const shared = { v };
        return { a: shared, b: shared };
      }),
    ),
  }));
  const top = fc.oneof({ weight: 3, arbitrary: fc.dictionary(key, value, { maxKeys: 4, noNullPrototype: true }) }, { weight: 1, arbitrary: value });
  // Now and then a cycle: the data object holds itself, or a Map holding it.
  return fc.tuple(top, fc.constantFrom("none", "none", "none", "self", "map")).map(([data, cycle]) => {
    if (cycle === "none") return data;
    const holder: Record<string, unknown> = { data };
    holder.self = cycle === "self" ? holder : new Map([["back", holder]]);
    return holder;
  });
}

/**
 * Broadcast payloads: JSON values (any string), binary, binary inside an
 * object, long strings; with `huge`, also strings of 2 to 50 K characters, so
 * that a few broadcasts fill the sharded adapter's 64 KB packet log, which
 * then grows, or compacts once packets have expired.
 */
function payloadArbitrary(huge: boolean): fc.Arbitrary<unknown> {
  const binary = fc.uint8Array({ maxLength: 12 }).map((bytes) => Buffer.from(bytes));
  const payloads: fc.WeightedArbitrary<unknown>[] = [
    { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 2, stringUnit: "binary" }) },
    // More binary with the clock: restored Buffers must not change when the log is reused.
    { weight: huge ? 4 : 2, arbitrary: binary },
    { weight: huge ? 2 : 1, arbitrary: fc.record({ bin: binary, text: fc.string() }) },
    // Long strings are there for their length: shrinking them character by character would take long.
    { weight: 1, arbitrary: fc.noShrink(fc.string({ minLength: 40, maxLength: 400 })) },
  ];
  if (huge) {
    const hugeString = fc.tuple(fc.constantFrom("x", "é", "\u{1F600}"), fc.integer({ min: 2_000, max: 50_000 })).map(([char, n]) => char.repeat(n / char.length));
    payloads.push({ weight: 8, arbitrary: fc.noShrink(hugeString) });
  }
  return fc.oneof(...payloads);
}

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
  const w = (op: Command["op"], weight: number) => pool.weights?.[op] ?? weight;

  const commands: fc.WeightedArbitrary<Command>[] = [
    { weight: w("connect", 6), arbitrary: fc.record({ op: fc.constant("connect" as const), s: socket }) },
    {
      weight: w("join", 8),
      arbitrary: fc.record({ op: fc.constant("join" as const), s: socket, rooms: rooms(1, pool.maxJoinRooms ?? 3), asArray: fc.boolean() }),
    },
    { weight: w("leave", 5), arbitrary: fc.record({ op: fc.constant("leave" as const), s: socket, room }) },
    { weight: w("disconnect", 2), arbitrary: fc.record({ op: fc.constant("disconnect" as const), s: socket }) },
    {
      weight: w("emit", 8),
      arbitrary: pool.recovery
        ? fc.record({
            op: fc.constant("emit" as const),
            // Mostly broadcasts that are stored: no ack, no volatile flag (even false).
            via: fc.oneof(
              { weight: 2, arbitrary: fc.constantFrom("operator" as const, "adapter" as const) },
              { weight: 1, arbitrary: fc.constant("withAck" as const) },
            ),
            rooms: selection,
            except,
            flags: fc
              .record({ volatile: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.boolean() }), compress: fc.option(fc.boolean()) })
              .map((f) => Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined && v !== null)) as Flags),
            // socket.io always passes a Set; SessionAwareAdapter's restore throws past a stored packet without one.
            exceptUndefined: fc.constant(false),
            payload: fc.option(payloadArbitrary(pool.recovery.clock ?? false), { nil: undefined, freq: 2 }),
          })
        : fc.record({
            op: fc.constant("emit" as const),
            via: fc.constantFrom("operator" as const, "adapter" as const, "withAck" as const),
            rooms: selection,
            except,
            flags,
            exceptUndefined: fc.boolean(),
          }),
    },
    { weight: w("sockets", 2), arbitrary: fc.record({ op: fc.constant("sockets" as const), via: fc.constantFrom("operator" as const, "adapter" as const), rooms: selection }) },
    { weight: w("fetchSockets", 2), arbitrary: fc.record({ op: fc.constant("fetchSockets" as const), rooms: selection, except }) },
    {
      weight: w("socketsJoin", 2),
      arbitrary: fc.record({ op: fc.constantFrom("socketsJoin" as const, "socketsLeave" as const), rooms: selection, except, target: rooms(1, 2) }),
    },
    { weight: w("disconnectSockets", 1), arbitrary: fc.record({ op: fc.constant("disconnectSockets" as const), rooms: selection, except, announce: fc.boolean() }) },
    { weight: w("leaveAllLoop", 1), arbitrary: fc.record({ op: fc.constant("leaveAllLoop" as const), s: socket }) },
    { weight: w("kickRoom", 1), arbitrary: fc.record({ op: fc.constant("kickRoom" as const), room, disconnect: fc.boolean() }) },
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
  if (pool.recovery) {
    // pids p0..p3 are persisted, p4 never is.
    commands.push({ weight: w("persist", 4), arbitrary: fc.record({ op: fc.constant("persist" as const), k: fc.nat({ max: pool.ids - 1 }), pid: fc.nat({ max: 3 }), data: pool.recovery.data }) });
    const offset: fc.Arbitrary<OffsetChoice> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant("stored" as const), k: fc.nat({ max: 59 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("unknown" as const), value: fc.constantFrom("fresh" as const, "garbage" as const, "empty" as const) }) },
    );
    const pidChoice: fc.Arbitrary<PidChoice> = fc.oneof(
      { weight: 8, arbitrary: fc.record({ kind: fc.constant("persisted" as const), k: fc.nat({ max: 7 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("unknown" as const) }) },
    );
    commands.push({
      weight: w("restore", 6),
      arbitrary: fc.record({ op: fc.constant("restore" as const), pid: pidChoice, offset, resume: fc.boolean() }),
    });
    if (pool.recovery.clock) {
      const ms = fc.constantFrom(1, 20_000, MAX_DISCONNECTION_MS - 1, MAX_DISCONNECTION_MS, MAX_DISCONNECTION_MS + 1, 90_000, 150_000);
      commands.push({ weight: w("wait", 3), arbitrary: fc.record({ op: fc.constant("wait" as const), ms }) });
    }
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

/** A broadcast packet as socket.io hands it to the adapter. */
interface BroadcastPacket {
  type: number;
  data: unknown[];
  id?: number;
  nsp?: string;
}

/** A restored session as compared: missed packets as [label, payload as a client receives it]. */
interface RestoredView {
  sid: SocketId;
  pid: string;
  rooms: Room[];
  data: unknown;
  /** `data` through util.inspect: also key, Map and Set order, which deep equality ignores. */
  dataAsInspected: string;
  missedPackets: [string, unknown][];
}

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
  /** Whether this run listens to the room events (see {@link Configuration.unheard}). */
  listening = true;
  /** Whether {@link coaxWorkers} could instrument this run's adapter. */
  coaxed = false;

  // Connection state recovery: each stored broadcast's label and offset, both ways, for this run.
  /** The command being run (broadcast labels start with it). */
  step = 0;
  readonly offsetOf = new Map<string, string>();
  readonly labelOf = new Map<string, string>();
  /** Pids persisted in this run. */
  readonly persistedPids = new Set<string>();
  /** Labels of the packets stored since the last `takeStored()`. */
  stored: string[] = [];
  /** Commands whose broadcasts may come in member iteration order (see {@link eventsOrdered}). */
  readonly unorderedSteps = new Set<number>();
  /** Sessions restored in this run, by command; the in-memory side's as they read when restored. */
  held: { step: number; session: Session; view: RestoredView }[] = [];

  constructor(
    readonly kind: "in-memory" | "sharded",
    adapterOption: ReturnType<typeof createAdapter> | undefined,
    readonly recovery = false,
  ) {
    const opts: Partial<ServerOptions> = {};
    if (adapterOption) opts.adapter = adapterOption;
    // socket.io then picks SessionAwareAdapter when no adapter is given.
    if (recovery) opts.connectionStateRecovery = { maxDisconnectionDuration: MAX_DISCONNECTION_MS };
    // An unlistened http server gives io.close() an engine to close.
    this.io = new Server(createServer(), opts);
  }

  open(name: string, coax = false, listen = true): void {
    this.nsp = this.io.of(name);
    this.listening = listen;
    this.adapter = this.nsp.adapter;
    if (coax) this.coaxed = coaxWorkers(this.adapter);
    this.events = [];
    this.heldSocketRooms.clear();
    this.heldRooms.clear();
    this.offsetOf.clear();
    this.labelOf.clear();
    this.persistedPids.clear();
    this.stored = [];
    this.unorderedSteps.clear();
    this.held = [];
    if (this.recovery) this.recordOffsets();
    if (!listen) return;
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

  /**
   * Wraps this run's `adapter.broadcast` (every broadcast, from socket.io's
   * BroadcastOperator or from the test, goes through it) to record the offset
   * the adapter appended to the packet's data, if it stored the packet,
   * under a label both sides give the same broadcast.
   */
  private recordOffsets(): void {
    const side = this;
    const adapter = this.adapter as unknown as { broadcast(packet: BroadcastPacket, opts: BroadcastOptions): void };
    const original = adapter.broadcast;
    adapter.broadcast = function (packet: BroadcastPacket, opts: BroadcastOptions): void {
      const length = packet.data.length;
      const label = packet.data[0] === "ev" ? `#${side.step}` : `#${side.step} ${show(packet.data.slice(0, 2))}`;
      original.call(this, packet, opts);
      if (packet.data.length === length) return;
      const offset = packet.data[packet.data.length - 1];
      if (typeof offset !== "string" || packet.data.length !== length + 1) throw new Error(`${side.kind}: broadcast appended ${inspect(packet.data.slice(length))}, not one offset`);
      if (side.offsetOf.has(label) || side.labelOf.has(offset)) throw new Error(`${side.kind}: label ${label} or offset ${offset} used twice`);
      side.offsetOf.set(label, offset);
      side.labelOf.set(offset, label);
      side.stored.push(label);
    };
  }

  /** An encoded packet with its trailing offset, if it is one of this side's, replaced by the packet's label. */
  private withLabels(packets: unknown[]): unknown[] {
    return packets.map((packet) =>
      typeof packet === "string"
        ? packet.replace(/,"([^"\\]*)"\]$/, (whole, offset: string) => (this.labelOf.has(offset) ? `,"<offset of ${this.labelOf.get(offset)}>"]` : whole))
        : packet,
    );
  }

  /** Labels of the packets stored since the last call. */
  takeStored(): string[] {
    const stored = this.stored;
    this.stored = [];
    return stored;
  }

  /** What sockets were sent or asked to do since the last call. */
  take(): { deliveries: Delivery[]; notified: SocketId[]; calls: string[] } {
    const deliveries = this.recovery ? this.deliveries.map((d) => ({ ...d, packets: this.withLabels(d.packets) })) : this.deliveries;
    const taken = { deliveries, notified: this.notified, calls: this.calls };
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
  /** What a restore resolved to (null or the session, missed packets by label). */
  restored?: RestoredView | null;
  /** Shown in the trace (and compared): which offset a restore used. */
  note?: string;
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
      // A fresh packet per side (a broadcast that stores it appends its offset to packet.data), with its own payload.
      const args: unknown[] = cmd.payload === undefined ? [step] : [step, copyPayload(cmd.payload)];
      const packet = { type: 2, data: ["ev", ...args] };
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
        op.emit("ev", ...args);
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
    case "persist": {
      // socket.io's Socket._onclose for a recoverable reason: persistSession, then _cleanup.
      const ids = sorted(nsp.sockets.keys());
      if (ids.length === 0) return { skipped: true };
      const socket = side.live(ids[cmd.k % ids.length])!;
      adapter.persistSession({ sid: socket.id, pid: pid(cmd.pid), rooms: [...socket.rooms], data: cmd.data });
      side.persistedPids.add(pid(cmd.pid));
      side.disconnect(socket.id);
      return { note: socket.id };
    }
    case "restore": {
      let offset: string;
      let note: string;
      // Oldest first (by command, then label): a small k restores from an early packet, with more missed packets after it.
      const labels = sorted(side.offsetOf.keys()).sort((x, y) => stepOf(x) - stepOf(y));
      if (cmd.offset.kind === "stored" && labels.length > 0) {
        const label = labels[cmd.offset.k % labels.length];
        offset = side.offsetOf.get(label)!;
        note = `offset of ${label}`;
      } else {
        const value = cmd.offset.kind === "unknown" ? cmd.offset.value : "fresh";
        offset = value === "fresh" ? yeast() : value === "garbage" ? "nope" : "";
        note = `${value === "fresh" ? "a fresh" : "an unknown"} offset`;
      }
      const pids = sorted(side.persistedPids);
      const which = cmd.pid.kind === "persisted" && pids.length > 0 ? pids[cmd.pid.k % pids.length] : pid(UNKNOWN_PID);
      note = `${which}, ${note}`;
      // SessionAwareAdapter returns null synchronously, or a Promise.
      const session = (await adapter.restoreSession(which, offset)) as Session | null;
      if (session === null || session === undefined) return { restored: session, note };
      const view = restoredView(side, session, side.kind === "in-memory");
      side.held.push({ step, session, view });
      if (cmd.resume && !side.live(session.sid)) {
        // socket.io's Socket constructor with a previous session: same id, joins its rooms.
        side.connect(session.sid);
        for (const room of session.rooms) side.live(session.sid)!.join(room);
        side.take();
      }
      return { restored: view, note };
    }
    case "wait":
      // The clock is moved once for both sides, by replay().
      return {};
  }
}

/** A deep copy of a broadcast payload (JSON values and Buffers; own "__proto__" keys stay own keys). */
function copyPayload(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return Buffer.from(value);
  if (Array.isArray(value)) return value.map(copyPayload);
  if (value !== null && typeof value === "object") {
    const copy: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) Object.defineProperty(copy, key, { value: copyPayload(item), enumerable: true, writable: true, configurable: true });
    return copy;
  }
  return value;
}

/**
 * What a client receives for a packet whose data is `data`: socket.io-parser
 * encodes it (JSON, binary as attachments) and the client decodes it. Binary
 * is shown as hex, whatever view type holds it.
 */
function asReceived(data: unknown[]): unknown {
  const encoded = new Encoder().encode({ type: 2, nsp: "/", data }) as unknown[];
  let received: unknown;
  const decoder = new Decoder();
  decoder.on("decoded", (packet: { data?: unknown }) => {
    received = packet.data;
  });
  for (const chunk of encoded) decoder.add(chunk);
  decoder.destroy();
  return binaryAsHex(received);
}

function binaryAsHex(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return { binary: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex") };
  if (Array.isArray(value)) return value.map(binaryAsHex);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) Object.defineProperty(out, key, { value: binaryAsHex(item), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return value;
}

/** The command a broadcast label names. */
const stepOf = (label: string): number => Number(/^#(\d+)/.exec(label)?.[1] ?? -1);

/**
 * A restored session as compared: sid, pid, rooms, data as they are, and
 * each missed packet as [its label (the trailing offset translated), its
 * payload as a client receives it]. The in-memory side's missed packets are
 * the data arrays it was given, so they go through the parser
 * (`roundTrip`); the sharded side's were decoded from the wire already, and
 * a client would get them as they are. Within one command whose broadcasts
 * follow member iteration order (disconnectSockets with "left"
 * announcements), missed packets are compared as a multiset.
 */
function restoredView(side: Side, session: Session, roundTrip: boolean): RestoredView {
  const missed = (session.missedPackets as unknown[][]).map((packet): [string, unknown] => {
    const offset = packet[packet.length - 1];
    const label = typeof offset === "string" ? side.labelOf.get(offset) : undefined;
    const payload = packet.slice(0, -1);
    return [label ?? `<no packet of this side has offset ${inspect(offset)}>`, roundTrip ? asReceived(payload) : binaryAsHex(payload)];
  });
  const missedPackets: [string, unknown][] = [];
  for (let i = 0; i < missed.length; ) {
    let j = i + 1;
    const step = stepOf(missed[i][0]);
    if (side.unorderedSteps.has(step)) while (j < missed.length && stepOf(missed[j][0]) === step) j++;
    missedPackets.push(...(j - i > 1 ? sorted(missed.slice(i, j)) : missed.slice(i, j)));
    i = j;
  }
  const dataAsInspected = inspect(session.data, { depth: Infinity, maxArrayLength: Infinity, maxStringLength: Infinity, breakLength: Infinity });
  return { sid: session.sid, pid: session.pid, rooms: session.rooms, data: session.data, dataAsInspected, missedPackets };
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
    // (Without room events, when a room went and came back is not known: a view taken now.)
    "rooms.get(room) held since creation": roomKeys.map((room) => {
      let held = side.listening ? side.heldRooms.get(room) : undefined;
      if (!held) side.heldRooms.set(room, (held = adapter.rooms.get(room) as Set<SocketId>));
      return [room, sorted(held), held.size];
    }),
    ...(pool.recovery ? recoverySnapshot(side) : {}),
  };
}

/** Stored packets and sessions (counts), and the sessions restored earlier in the run, as they read now. */
function recoverySnapshot(side: Side): Record<string, unknown> {
  let counts: { packets: number; sessions: number };
  if (side.kind === "in-memory") {
    const internals = side.adapter as unknown as { packets: unknown[]; sessions: Map<unknown, unknown> };
    counts = { packets: internals.packets.length, sessions: internals.sessions.size };
  } else {
    const { packets, sessions } = (side.adapter as unknown as ShardedAdapter).stats().recovery;
    counts = { packets, sessions };
  }
  return {
    "stored packets and sessions (counts)": counts,
    // The in-memory side's restored sessions hold its stored data arrays, which never change.
    "sessions restored earlier, as they read now": side.held.map(({ step, session, view }) => [
      `restored by #${step}`,
      side.kind === "in-memory" ? view : restoredView(side, session, false),
    ]),
  };
}

class Mismatch extends Error {}

function fail(what: string, mem: unknown, sharded: unknown, trace: string[]): never {
  const opts = { depth: 12, breakLength: 160, maxArrayLength: 300, maxStringLength: 2000 };
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

/** Moves the (mocked) clock for both sides at once. */
type Clock = (ms: number) => void;

/** What the recovery commands did (in-memory side), reported per configuration. */
interface RecoveryCounts {
  stored: number;
  persisted: number;
  restored: number;
  /** Null with a persisted pid and the offset of a stored packet: the session or the packet expired. */
  restoredNull: number;
  /** Null by construction: p4, no session persisted yet, or an offset never stored. */
  restoredNullUnknown: number;
  missed: number;
}

async function replay(mem: Side, sh: Side, pool: Pool, cmds: Command[], coax: boolean, listen: boolean, clock?: Clock, counts?: RecoveryCounts): Promise<void> {
  const name = `/run${runCounter++}`;
  mem.open(name, false, listen);
  sh.open(name, coax, listen);
  const trace: string[] = [];
  try {
    for (let step = 0; step < cmds.length; step++) {
      const cmd = cmds[step];
      // Lets piscina see its workers' previous tasks as done, so that it
      // hands them this command's query instead of queueing it.
      if (coax) await new Promise((resolve) => setImmediate(resolve));
      trace.push(`#${step} ${render(cmd)}`);
      for (const side of [mem, sh]) {
        side.step = step;
        if (!eventsOrdered(cmd)) side.unorderedSteps.add(step);
      }
      if (cmd.op === "wait") {
        if (!clock) throw new Error("wait needs a configuration with a mocked clock");
        clock(cmd.ms);
      }
      const a = await run(mem, cmd, step);
      const b = await run(sh, cmd, step);
      if (a.skipped) trace[trace.length - 1] += "   (no-op: not connected)";
      if (a.note) trace[trace.length - 1] += `   (${a.note}${cmd.op === "restore" ? `: ${a.restored === null ? "null" : "a session"}` : ""})`;
      checkOutcome(mem, a, trace);
      checkOutcome(sh, b, trace);
      if (!isDeepStrictEqual(a, b)) fail(`outcome of #${step} differs (recipients, deliveries, acks, callbacks, visited elements)`, a, b, trace);
      // Anything a command's own outcome did not cover (there should be nothing).
      const restA = mem.take();
      const restB = sh.take();
      if (!isDeepStrictEqual(sorted(restA.deliveries), sorted(restB.deliveries)) || !isDeepStrictEqual(sorted(restA.calls), sorted(restB.calls))) {
        fail(`other deliveries or socket calls of #${step} differ`, restA, restB, trace);
      }
      const storedA = mem.takeStored();
      const storedB = sh.takeStored();
      if (counts) {
        counts.stored += storedA.length;
        if (cmd.op === "persist" && !a.skipped) counts.persisted++;
        if (cmd.op === "restore") {
          if (a.restored) counts.restored++;
          else if (/^p4,|fresh offset|unknown offset/.test(a.note ?? "")) counts.restoredNullUnknown++;
          else counts.restoredNull++;
          counts.missed += a.restored?.missedPackets.length ?? 0;
        }
      }
      if (!isDeepStrictEqual(eventsOrdered(cmd) ? storedA : sorted(storedA), eventsOrdered(cmd) ? storedB : sorted(storedB))) {
        fail(`packets stored for recovery by #${step} differ (labels)`, storedA, storedB, trace);
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
  /**
   * No listener on either adapter: the sharded adapter then joins and leaves
   * without looking at events at all (its listener-free path), which the
   * other configurations, listening to compare the events, never take.
   */
  readonly unheard?: boolean;
}

/**
 * The small pool with connection state recovery: persist and restore,
 * payloads on broadcasts; sequences mostly of connects, joins, broadcasts,
 * sessions persisted and restored (the other commands are covered above).
 */
const RECOVERY_POOL: Pool = {
  ...SMALL_POOL,
  minLength: 10,
  recovery: { data: sessionDataArbitrary(false) },
  weights: { connect: 8, join: 6, leave: 3, disconnect: 1, emit: 16, sockets: 1, fetchSockets: 1, socketsJoin: 1, persist: 6, restore: 8 },
};
/** The same, with session data at the edges (see {@link sessionDataArbitrary}). */
const RECOVERY_EDGE_POOL: Pool = { ...RECOVERY_POOL, recovery: { data: sessionDataArbitrary(true) } };
/** The same as RECOVERY_POOL, plus a clock that moves (mocked), so that sessions and packets expire. */
const RECOVERY_CLOCK_POOL: Pool = {
  ...RECOVERY_POOL,
  recovery: { data: sessionDataArbitrary(false), clock: true },
  weights: { ...RECOVERY_POOL.weights, wait: 5 },
};

const CONFIGURATIONS: Configuration[] = [
  { name: "workers: 2, default threshold (main-thread path)", adapter: { workers: 2 }, pool: SMALL_POOL, numRuns: 1500 },
  { name: "workers: 2, offloadThreshold: 0 (worker path)", adapter: { workers: 2, offloadThreshold: 0 }, pool: SMALL_POOL, numRuns: 1000, coax: true },
  { name: "workers: 2, no room-event listeners (the listener-free join and leave)", adapter: { workers: 2 }, pool: SMALL_POOL, numRuns: 600, unheard: true },
  { name: "workers: 1, offloadThreshold: 3 (both paths)", adapter: { workers: 1, offloadThreshold: 3 }, pool: SMALL_POOL, numRuns: 400, coax: true },
  { name: "workers: 3, offloadThreshold: 0 (worker path)", adapter: { workers: 3, offloadThreshold: 0 }, pool: SMALL_POOL, numRuns: 400, coax: true },
  { name: "workers: 3, offloadThreshold: 60, large pool (tables grow)", adapter: { workers: 3, offloadThreshold: 60 }, pool: LARGE_POOL, numRuns: 200, coax: true },
  { name: "workers: 2, sockets in up to 40 rooms (the pair index bound crossed both ways)", adapter: { workers: 2 }, pool: MANY_ROOMS_POOL, numRuns: 250 },
  // Kept apart so that a difference here does not hide the others: the same
  // commands plus iterating socket.rooms / a room's members while a socket
  // joins, which a JS Set answers by visiting the added element.
  {
    name: "workers: 2, views iterated while a socket joins",
    adapter: { workers: 2 },
    pool: SMALL_POOL_JOIN_WHILE_ITERATING,
    numRuns: 300,
  },
  // Connection state recovery (issue 3): against socket.io's SessionAwareAdapter.
  { name: "recovery on, workers: 2, default threshold (vs SessionAwareAdapter)", adapter: { workers: 2 }, pool: RECOVERY_POOL, numRuns: 300 },
  {
    name: "recovery on, workers: 1, offloadThreshold: 0 (worker path, vs SessionAwareAdapter)",
    adapter: { workers: 1, offloadThreshold: 0 },
    pool: RECOVERY_POOL,
    numRuns: 250,
    coax: true,
  },
  // Kept apart, as above: socket.data values at the edge of "plain data".
  {
    name: "recovery on, workers: 2, session data at the edges (-0, lone surrogates, own __proto__ keys, what msgpack cannot give back)",
    adapter: { workers: 2 },
    pool: RECOVERY_EDGE_POOL,
    numRuns: 200,
  },
  { name: "recovery on, workers: 2, mocked clock (expiry)", adapter: { workers: 2 }, pool: RECOVERY_CLOCK_POOL, numRuns: 800 },
];

/**
 * A scripted sequence for MANY_ROOMS_POOL: a socket joins 30 rooms at once
 * (above the pair index bound), leaves down to 3 rooms with broadcasts in
 * between, rejoins above the bound while still indexed, leaves all, joins
 * again below the bound and then across it one room at a time; others cross
 * it by single joins and are disconnected while indexed.
 */
function boundCrossingCommands(): Command[] {
  const names = MANY_ROOMS_POOL.names;
  const cmds: Command[] = [];
  const join = (s: number, rooms: RoomValue[], asArray = true) => cmds.push({ op: "join", s, rooms, asArray });
  const leave = (s: number, room: RoomValue) => cmds.push({ op: "leave", s, room });
  const emit = (rooms: RoomValue[], except: RoomValue[] = []) =>
    cmds.push({ op: "emit", via: "operator", rooms, except, flags: {}, exceptUndefined: false });
  const selectors = (i: number) => {
    emit([names[i]]);
    emit([names[i], names[i + 7]], [sid(1)]);
    emit([], [names[i + 3]]);
    cmds.push({ op: "sockets", via: "adapter", rooms: [names[i + 1]] });
  };
  for (const s of [0, 1, 2]) cmds.push({ op: "connect", s });
  join(1, names.slice(0, 10));
  join(0, names.slice(0, 30));
  selectors(2);
  for (const room of names.slice(10, 28)) join(2, [room], false);
  selectors(12);
  // 28 of s0's 31 rooms (own id included) left, in an order unlike the join order.
  for (let i = 0; i < 28; i++) {
    leave(0, names[(i * 7) % 30]);
    if (i % 4 === 3) selectors(i);
  }
  selectors(20);
  join(0, names.slice(0, 20));
  selectors(5);
  cmds.push({ op: "leaveAllLoop", s: 0 });
  selectors(6);
  join(0, names.slice(30, 38));
  for (const room of names.slice(0, 12)) join(0, [room], false);
  selectors(0);
  cmds.push({ op: "socketsLeave", rooms: [], except: [], target: [names[0], names[1]] });
  selectors(1);
  cmds.push({ op: "disconnect", s: 2 });
  selectors(10);
  cmds.push({ op: "disconnect", s: 0 });
  cmds.push({ op: "disconnect", s: 1 });
  return cmds.map(withRendering);
}

const servers: Server[] = [];
after(async () => {
  // The last adapter to close stops the pool's workers, so the process can exit.
  await Promise.all(servers.map((io) => io.close()));
});

describe("sharded adapter vs socket.io's in-memory adapter (differential)", () => {
  test("scripted: a socket crossing the pair index bound up and down", async () => {
    const mem = new Side("in-memory", undefined);
    const sh = new Side("sharded", createAdapter({ workers: 2 }));
    servers.push(mem.io, sh.io);
    await replay(mem, sh, MANY_ROOMS_POOL, boundCrossingCommands(), false, true);
  });
  for (const config of CONFIGURATIONS) {
    test(config.name, async (t) => {
      const recovery = config.pool.recovery !== undefined;
      const mem = new Side("in-memory", undefined, recovery);
      const sh = new Side("sharded", createAdapter(config.adapter), recovery);
      servers.push(mem.io, sh.io);
      let clock: Clock | undefined;
      if (config.pool.recovery?.clock) {
        // Both adapters' expiry timers are setIntervals started by their constructors, in open().
        t.mock.timers.enable({ apis: ["Date", "setInterval"], now: Date.UTC(2030, 0, 1) });
        clock = (ms) => t.mock.timers.tick(ms);
      }
      const numRuns = Math.max(1, Math.round(config.numRuns * scale));
      let commands = 0;
      let coaxed = 0;
      const counts: RecoveryCounts | undefined = recovery ? { stored: 0, persisted: 0, restored: 0, restoredNull: 0, restoredNullUnknown: 0, missed: 0 } : undefined;
      const sequences = fc.array(commandArbitrary(config.pool), { minLength: config.pool.minLength ?? 0, maxLength: config.pool.maxLength, size: "max" });
      const property = fc.asyncProperty(sequences, async (cmds) => {
        commands += cmds.length;
        await replay(mem, sh, config.pool, cmds, config.coax ?? false, !config.unheard, clock, counts);
        if (sh.coaxed) coaxed++;
      });
      await fc.assert(property, { numRuns, seed, path, endOnFailure: path !== undefined ? true : undefined, includeErrorInReport: true });
      const stats = (sh.io.of("/").adapter as unknown as ShardedAdapter).stats().pool;
      t.diagnostic(`${numRuns} sequences, ${commands} commands; pool: ${show(stats)}`);
      if (counts) {
        t.diagnostic(
          `recovery: ${counts.stored} packets stored, ${counts.persisted} sessions persisted, ` +
            `${counts.restored} restored (${counts.missed} missed packets compared); restores null on both: ` +
            `${counts.restoredNullUnknown} with an unknown pid or offset, ${counts.restoredNull} others (expired)`,
        );
      }
      if (config.coax && coaxed === 0) t.diagnostic("could not reach the adapter's internals to get the workers to answer shards");
      assert.equal(stats.workerFailures, 0, "a worker task failed");
    });
  }
});
