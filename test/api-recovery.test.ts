/**
 * Connection state recovery: end to end with real clients (compared between
 * socket.io's in-memory SessionAwareAdapter and the sharded adapter), and
 * lib/recovery-store.ts's RecoveryStore directly (against SessionAwareAdapter,
 * expiry with a controlled clock, and log compaction).
 */
import assert from "node:assert/strict";
import { mock, test } from "node:test";
import type { Server, Socket } from "socket.io";
import { SessionAwareAdapter, type BroadcastOptions, type Room } from "socket.io-adapter";
import type { Socket as ClientSocket } from "socket.io-client";
import { Decoder, Encoder } from "socket.io-parser";
import { encode, yeast } from "socket.io-adapter/dist/contrib/yeast";
import { encodeBase64, nextOffset } from "../lib/recovery-offsets";
import { RecoveryStore } from "../lib/recovery-store";
import { acrossVariants, assertOffloaded, Names, until, withApiServer, type ApiVariant } from "./api-helpers";
import { serverSocketOf, sleep, type TestServer } from "./helpers";
import { mulberry32 } from "./random";

const WINDOW_MS = 2000;
const RECOVERY = { connectionStateRecovery: { maxDisconnectionDuration: WINDOW_MS } };
/** Reconnection on, with short delays so the client is back well within the window. */
const RECONNECTING = { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200, randomizationFactor: 0 };

/** A received event with its offset (the trailing string argument) taken out. */
interface Receipt {
  event: string;
  label: unknown;
  extra: unknown[];
  hasOffset: boolean;
}

/** Records every event `client` receives (but test plumbing), in order. */
function recordAll(client: ClientSocket): Receipt[] {
  const log: Receipt[] = [];
  client.onAny((event: string, ...args: unknown[]) => {
    if (event.startsWith("__")) return;
    const last = args[args.length - 1];
    if (typeof last === "function") args = args.slice(0, -1);
    // Every payload of these tests ends with a non-string: a trailing string is the offset.
    const hasOffset = typeof args[args.length - 1] === "string";
    if (hasOffset) args = args.slice(0, -1);
    const [payload, ...extra] = args as [{ label?: unknown } | undefined, ...unknown[]];
    log.push({
      event,
      label: payload?.label,
      extra: extra.map((value) => (value instanceof ArrayBuffer || ArrayBuffer.isView(value) ? { bytes: [...new Uint8Array(value as ArrayBuffer)] } : value)),
      hasOffset,
    });
  });
  return log;
}

/** Clients that answer any ack they are asked for. */
function answerAcks(client: ClientSocket): void {
  client.onAny((...args: unknown[]) => {
    const last = args[args.length - 1];
    if (typeof last === "function") (last as (value: string) => void)("ok");
  });
}

interface ConnectionRecord {
  recovered: boolean;
  id: string;
  rooms: unknown[];
  data: unknown;
}

/** Records each connection as the server sees it; `named()` gives the records with ids named. */
function recordConnections(io: Server, names: Names): { named(): ConnectionRecord[] } {
  const records: ConnectionRecord[] = [];
  io.on("connection", (socket: Socket) => {
    records.push({ recovered: socket.recovered, id: socket.id, rooms: [...socket.rooms], data: structuredClone(socket.data) });
  });
  return {
    named: () =>
      records.map((record) => ({ ...record, id: names.of(record.id), rooms: record.rooms.map((room) => names.room(room)).sort() })),
  };
}

const waitFor = (client: ClientSocket, event: string) => new Promise<unknown[]>((resolve) => client.once(event, (...args: unknown[]) => resolve(args)));

/**
 * Every kind of broadcast while the target (in rooms A and B) is away: the
 * in-memory adapter stores only event packets without ack and not volatile,
 * and replays those whose rooms/except match the session's rooms.
 */
function emitWhileAway(io: Server, target: Socket, other: Socket): void {
  io.to("A").emit("ev", { label: "toA" });
  io.to("C").emit("ev", { label: "toC" });
  io.emit("ev", { label: "everyone" });
  io.except("B").emit("ev", { label: "exceptB" });
  io.volatile.emit("ev", { label: "volatile" });
  io.timeout(10_000).emit("ev", { label: "withAck" }, () => {});
  io.to("A").except("C").emit("ev", { label: "toA-exceptC" });
  io.to(["C", "B"]).emit("ev", { label: "toC-or-B" });
  io.to(target.id).emit("ev", { label: "toOwnId" });
  io.to("A").emit("ev", { label: "binary" }, Buffer.from([1, 2, 3]));
  other.to("A").emit("ev", { label: "fromOtherToA" });
  other.broadcast.emit("ev", { label: "fromOtherBroadcast" });
  io.compress(false).emit("ev", { label: "compressFalse" });
  io.local.emit("ev", { label: "local" });
  io.except("C").emit("ev", { label: "exceptC" });
  io.to("nobody").emit("ev", { label: "toNobody" });
  io.to("A").emit("second-event", { label: "otherEventName" }, 42, null, { nested: [1, "x"] });
  io.except(["A", "C"]).emit("ev", { label: "exceptA-C" });
  io.to("B").except("A").emit("ev", { label: "toB-exceptA" });
}

test("recovery: a client away within the window gets its id, rooms, data and exactly the missed packets, in order", async (t) => {
  await acrossVariants(
    t,
    (variant: ApiVariant) =>
      withApiServer(
        variant,
        async (server: TestServer) => {
          const { io } = server;
          const names = new Names("c");
          const connections = recordConnections(io, names);
          const [target, other, third] = await server.connect(3, "/", RECONNECTING);
          [target, other, third].forEach((client) => names.add(client.id as string));
          const firstId = target.id;
          const log = recordAll(target);
          answerAcks(other);
          answerAcks(third);
          const targetSocket = serverSocketOf(io, target);
          const otherSocket = serverSocketOf(io, other);
          targetSocket.join(["A", "B"]);
          targetSocket.data = { user: "t", n: 1, nested: { list: [1, 2, { deep: true }] } };
          otherSocket.join("A");
          serverSocketOf(io, third).join("C");

          // The client needs an offset: one stored packet before going away.
          io.emit("ev", { label: "before" });
          await until(() => log.length === 1, "the packet before the disconnection");

          // Cycle 1: the client closes its transport; everything is emitted while it is away.
          const reasons: Record<string, unknown> = {};
          targetSocket.once("disconnect", (reason) => {
            reasons.server1 = reason;
            emitWhileAway(io, targetSocket, otherSocket);
          });
          target.once("disconnect", (reason) => (reasons.client1 = reason));
          const back1 = waitFor(target, "connect");
          target.io.engine.close();
          await back1;
          const recovered1 = { recovered: target.recovered, sameId: target.id === firstId };
          const restored = serverSocketOf(io, target);

          io.to("A").emit("ev", { label: "after" });
          await until(() => log.some((r) => r.label === "after"), "the packet after recovery");

          // Cycle 2: the server closes the connection ("forced close"); the offset is now a replayed one.
          restored.once("disconnect", (reason) => {
            reasons.server2 = reason;
            io.to("B").emit("ev", { label: "second-toB" });
            io.to("C").emit("ev", { label: "second-toC" });
            io.to("A").emit("ev", { label: "second-toA" });
          });
          target.once("disconnect", (reason) => (reasons.client2 = reason));
          const back2 = waitFor(target, "connect");
          restored.conn.close();
          await back2;
          const recovered2 = { recovered: target.recovered, sameId: target.id === firstId };
          await until(() => log.some((r) => r.label === "second-toA"), "the packets of cycle 2");
          assertOffloaded(server, variant);
          return {
            log,
            connections: connections.named(),
            reasons,
            recovered1,
            recovered2,
            rooms: [...serverSocketOf(io, target).rooms].map((room) => names.room(room)).sort(),
            sockets: io.of("/").sockets.size,
          };
        },
        RECOVERY,
      ),
    (observed) => {
      const ev = (label: string, extra: unknown[] = []) => ({ event: "ev", label, extra, hasOffset: true });
      assert.deepEqual(observed.log, [
        ev("before"),
        // replayed on recovery, in broadcast order
        ev("toA"),
        ev("everyone"),
        ev("toA-exceptC"),
        ev("toC-or-B"),
        ev("toOwnId"),
        ev("binary", [{ bytes: [1, 2, 3] }]),
        ev("fromOtherToA"),
        ev("fromOtherBroadcast"),
        ev("compressFalse"),
        ev("local"),
        ev("exceptC"),
        { event: "second-event", label: "otherEventName", extra: [42, null, { nested: [1, "x"] }], hasOffset: true },
        // live
        ev("after"),
        // replayed after the second disconnection
        ev("second-toB"),
        ev("second-toA"),
      ]);
      const data = { user: "t", n: 1, nested: { list: [1, 2, { deep: true }] } };
      assert.deepEqual(observed.connections, [
        { recovered: false, id: "c0", rooms: ["c0"], data: {} },
        { recovered: false, id: "c1", rooms: ["c1"], data: {} },
        { recovered: false, id: "c2", rooms: ["c2"], data: {} },
        { recovered: true, id: "c0", rooms: ["A", "B", "c0"], data },
        { recovered: true, id: "c0", rooms: ["A", "B", "c0"], data },
      ]);
      assert.deepEqual(observed.reasons, { server1: "transport close", client1: "forced close", server2: "forced close", client2: "transport close" });
      assert.deepEqual(observed.recovered1, { recovered: true, sameId: true });
      assert.deepEqual(observed.recovered2, { recovered: true, sameId: true });
      assert.deepEqual(observed.rooms, ["A", "B", "c0"]);
      assert.equal(observed.sockets, 3);
    },
  );
});

test("recovery: after the window has passed, the reconnection is a new session (new id, no rooms, no missed packets)", async (t) => {
  await acrossVariants(
    t,
    (variant: ApiVariant) =>
      withApiServer(
        variant,
        async (server: TestServer) => {
          const { io } = server;
          const names = new Names("c");
          const connections = recordConnections(io, names);
          const [target] = await server.connect(1, "/", RECONNECTING);
          names.add(target.id as string);
          const log = recordAll(target);
          const socket = serverSocketOf(io, target);
          socket.join("A");
          socket.data = { user: "t" };
          io.emit("ev", { label: "before" });
          await until(() => log.length === 1, "the packet before the disconnection");

          // Away longer than the window: no automatic reconnection, then connect by hand.
          target.io.reconnection(false);
          const gone = waitFor(target, "disconnect");
          socket.conn.close();
          await gone;
          io.to("A").emit("ev", { label: "missed" });
          await sleep(WINDOW_MS + 300);
          const back = waitFor(target, "connect");
          target.connect();
          await back;
          const newId = target.id as string;
          names.add(newId, "new");
          // One packet after: proves the new socket works and that nothing was replayed before it.
          io.emit("ev", { label: "after" });
          await until(() => log.some((r) => r.label === "after"), "the packet after reconnection");
          return {
            log: log.map((r) => r.label),
            recovered: target.recovered,
            connections: connections.named(),
            rooms: [...serverSocketOf(io, target).rooms].map((room) => names.room(room)),
            inA: io.of("/").adapter.rooms.get("A")?.size ?? 0,
            sockets: io.of("/").sockets.size,
          };
        },
        RECOVERY,
      ),
    (observed) => {
      assert.deepEqual(observed.log, ["before", "after"]);
      assert.equal(observed.recovered, false);
      assert.deepEqual(observed.connections, [
        { recovered: false, id: "c0", rooms: ["c0"], data: {} },
        { recovered: false, id: "new", rooms: ["new"], data: {} },
      ]);
      assert.deepEqual(observed.rooms, ["new"]);
      assert.equal(observed.inA, 0);
      assert.equal(observed.sockets, 1);
    },
  );
});

test("recovery: socket.data is restored as it was (Map, Set, Date, nested objects)", async (t) => {
  await acrossVariants(
    t,
    (variant: ApiVariant) =>
      withApiServer(
        variant,
        async (server: TestServer) => {
          const { io } = server;
          const [target] = await server.connect(1, "/", RECONNECTING);
          const socket = serverSocketOf(io, target);
          socket.data = {
            prefs: new Map<string, unknown>([["theme", "dark"]]),
            tags: new Set(["a", "b"]),
            since: new Date(0),
            nested: { list: [1, { deep: null }] },
          };
          io.emit("ev", 1);
          await waitFor(target, "ev");
          const back = waitFor(target, "connect");
          target.io.engine.close();
          await back;
          const restored = serverSocketOf(io, target);
          return { recovered: restored.recovered, data: restored.data };
        },
        RECOVERY,
      ),
    (observed) => {
      assert.equal(observed.recovered, true);
      assert.deepStrictEqual(observed.data, {
        prefs: new Map<string, unknown>([["theme", "dark"]]),
        tags: new Set(["a", "b"]),
        since: new Date(0),
        nested: { list: [1, { deep: null }] },
      });
    },
  );
});

test("recovery: a socket.data with a circular reference does not break the disconnection", async (t) => {
  await acrossVariants(
    t,
    (variant: ApiVariant) =>
      withApiServer(
        variant,
        async (server: TestServer) => {
          const { io } = server;
          const [target] = await server.connect(1, "/", RECONNECTING);
          const socket = serverSocketOf(io, target);
          socket.join("A");
          const data: Record<string, unknown> = { user: "t" };
          data.self = data;
          socket.data = data;
          io.emit("ev", 1);
          await waitFor(target, "ev");
          const back = waitFor(target, "connect");
          // Server side, so that a throw surfaces here instead of as an uncaught exception.
          let thrown: string | undefined;
          try {
            socket.conn.close();
          } catch (err) {
            thrown = `${(err as Error).name}: ${(err as Error).message}`;
          }
          try {
            await back;
            const restored = serverSocketOf(io, target);
            const restoredData = restored.data as Record<string, unknown>;
            return {
              thrown,
              oldSocketConnected: socket.connected,
              recovered: restored.recovered,
              user: restoredData.user,
              cycle: restoredData.self === restoredData,
              sockets: io.of("/").sockets.size,
              inA: io.of("/").adapter.rooms.get("A")?.size ?? 0,
            };
          } finally {
            // Let io.close() persist these sessions whatever the adapter does with cycles.
            for (const s of io.of("/").sockets.values()) s.data = {};
          }
        },
        RECOVERY,
      ),
    (observed) => {
      assert.deepEqual(observed, { thrown: undefined, oldSocketConnected: false, recovered: true, user: "t", cycle: true, sockets: 1, inA: 1 });
    },
  );
});

/**
 * Emits `payloads` as "payload" while `target` is away (and to `online`),
 * then "end"; resolves with what each client got (as JSON) and what emit threw.
 */
async function payloadsWhileAway(server: TestServer, payloads: () => unknown[]) {
  const { io } = server;
  const [target, online] = await server.connect(2, "/", RECONNECTING);
  const received: Record<string, string[]> = { recovering: [], online: [] };
  target.on("payload", (value: unknown) => received.recovering.push(JSON.stringify(value)));
  online.on("payload", (value: unknown) => received.online.push(JSON.stringify(value)));
  io.emit("warmup", 0);
  await waitFor(target, "warmup");
  const socket = serverSocketOf(io, target);
  const emitErrors: string[] = [];
  socket.once("disconnect", () => {
    for (const payload of payloads()) {
      try {
        io.emit("payload", payload);
      } catch (err) {
        emitErrors.push(`${(err as Error).name}: ${(err as Error).message}`);
      }
    }
    io.emit("payload", "end");
  });
  const back = waitFor(target, "connect");
  target.io.engine.close();
  await back;
  await until(() => received.recovering.includes('"end"') && received.online.includes('"end"'), "the payloads");
  return { received, emitErrors, recovered: target.recovered };
}

test("recovery: missed packets carry what JSON carries to connected clients (Map, toJSON, own __proto__ key)", async (t) => {
  await acrossVariants(
    t,
    (variant: ApiVariant) =>
      withApiServer(
        variant,
        (server) =>
          payloadsWhileAway(server, () => [
            { map: new Map([["k", 1]]) },
            { when: { toJSON: () => "custom" } },
            // A key JSON.parse makes from untrusted input.
            JSON.parse('{"__proto__": {"polluted": 1}, "ok": 1}'),
          ]),
        RECOVERY,
      ),
    (observed) => {
      const asJson = ['{"map":{}}', '{"when":"custom"}', '{"__proto__":{"polluted":1},"ok":1}', '"end"'];
      assert.deepEqual(observed, { received: { recovering: asJson, online: asJson }, emitErrors: [], recovered: true });
    },
  );
});

test("recovery: a broadcast whose payload holds a symbol value does not throw and reaches everyone", async (t) => {
  await acrossVariants(
    t,
    (variant: ApiVariant) => withApiServer(variant, (server) => payloadsWhileAway(server, () => [{ sym: Symbol("s"), ok: 2 }]), RECOVERY),
    (observed) => {
      const asJson = ['{"ok":2}', '"end"'];
      assert.deepEqual(observed, { received: { recovering: asJson, online: asJson }, emitErrors: [], recovered: true });
    },
  );
});

// ---------------------------------------------------------------------------
// RecoveryStore, directly.
// ---------------------------------------------------------------------------

/** A namespace stub good enough for socket.io-adapter's SessionAwareAdapter. */
function sessionAwareAdapter(maxDisconnectionDuration: number): SessionAwareAdapter {
  const nsp = {
    name: "/",
    sockets: new Map(),
    server: { encoder: new Encoder(), opts: { connectionStateRecovery: { maxDisconnectionDuration } } },
  };
  return new SessionAwareAdapter(nsp as never);
}

/** A RecoveryStore as the adapter makes it: decoding stored packets with socket.io's parser. */
const newStore = (maxDisconnectionDuration: number) => new RecoveryStore(maxDisconnectionDuration, () => new Decoder() as never);

type Encode = (this: { encoder: Encoder }, packet: object, packetOpts: { wsPreEncodedFrame?: unknown }) => unknown[];
/** socket.io-adapter's encoding of a broadcast, which precomputes the websocket frame into `packetOpts` (ws is installed). */
const encodeInAdapter = (SessionAwareAdapter.prototype as unknown as { _encode: Encode })._encode;

/**
 * What the adapter does for one broadcast: begin (maybe appending the
 * offset), encode, record the encoding; with `viaFrame`, as socket.io-adapter
 * encodes it (the record then copies the bytes of the precomputed websocket
 * frame), otherwise from the encoded strings alone (as on uWebSockets.js).
 */
function recordBroadcast(store: RecoveryStore, packet: { type: number; data: unknown[]; id?: number }, opts: BroadcastOptions, viaFrame = true): void {
  store.beginBroadcast(packet, opts);
  if (!viaFrame) return store.recordEncoded(new Encoder().encode({ ...packet, nsp: "/" }));
  const packetOpts: { wsPreEncodedFrame?: unknown } = {};
  const encoded = encodeInAdapter.call({ encoder: new Encoder() }, { ...packet, nsp: "/" }, packetOpts);
  store.recordEncoded(encoded, packetOpts);
}

/** What a client receives for an event with `data` (socket.io-parser's encoding, binary parts as bytes), to compare replays. */
const onTheWire = (data: unknown[]) =>
  new Encoder().encode({ type: 2, nsp: "/", data }).map((part: unknown) => (typeof part === "string" ? part : { bytes: [...(part as Uint8Array)] }));

interface Op {
  packet: { type: number; data: unknown[]; id?: number };
  opts: BroadcastOptions;
}

test("RecoveryStore: stored packets and restored sessions equal SessionAwareAdapter's over random broadcasts", async () => {
  const random = mulberry32(0x5eed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)];
  // Non-ASCII names: string-only broadcasts are stored in a hand-written UTF-8 format (numbers and binary in msgpack).
  const ROOMS = ["a", "b", "c", "d", 1, 2, "sid-1", "sid-2", "sälle-😀", ""] as unknown as Room[];
  const subset = (max: number) => new Set(Array.from({ length: Math.floor(random() * (max + 1)) }, () => pick(ROOMS)));
  const reference = sessionAwareAdapter(60_000);
  const store = newStore(60_000);
  try {
    // Offsets per broadcast index: each side generates its own.
    const referenceOffsets: (string | undefined)[] = [];
    const storeOffsets: (string | undefined)[] = [];
    const ops: Op[] = [];
    for (let i = 0; i < 400; i++) {
      const roll = random();
      const flags: BroadcastOptions["flags"] = roll < 0.1 ? { volatile: true } : roll < 0.15 ? { volatile: false } : roll < 0.25 ? { compress: false } : {};
      const packet: Op["packet"] = {
        type: random() < 0.95 ? 2 : 3,
        // Short and long, ASCII and not: stored from the websocket frame's bytes or from the strings.
        data: [
          pick(["ev", "other", "événement"]),
          { i, bin: random() < 0.1 ? Buffer.from([i & 255]) : undefined, list: [i, "x", null], text: pick(["", "é", "😀".repeat(40), "x".repeat(100), "\ud800 lone"]) },
        ],
      };
      if (random() < 0.1) packet.id = i;
      ops.push({ packet, opts: { rooms: subset(3), except: subset(2), flags } });
    }
    for (const { packet, opts } of ops) {
      const a = structuredClone(packet);
      const before = a.data.length;
      reference.broadcast(a as never, opts);
      referenceOffsets.push(a.data.length > before ? (a.data[a.data.length - 1] as string) : undefined);
      const b = structuredClone(packet);
      recordBroadcast(store, b, opts, random() < 0.7);
      storeOffsets.push(b.data.length > before ? (b.data[b.data.length - 1] as string) : undefined);
    }
    assert.deepEqual(
      storeOffsets.map((offset) => offset !== undefined),
      referenceOffsets.map((offset) => offset !== undefined),
      "the same broadcasts are stored (events without ack, not volatile)",
    );
    const storedIndexes = storeOffsets.flatMap((offset, i) => (offset === undefined ? [] : [i]));
    assert.ok(storedIndexes.length > 200 && storedIndexes.length < 400, `a mix of stored and skipped broadcasts (${storedIndexes.length})`);

    // Offsets differ between the two (each generates its own): compare their broadcast index, and the
    // rest as the client receives it.
    const strip = (packets: unknown[][], offsets: (string | undefined)[]) =>
      packets.map((data) => {
        const offset = data[data.length - 1] as string;
        return { index: offsets.indexOf(offset), wire: onTheWire(data.slice(0, -1)) };
      });
    for (let s = 0; s < 40; s++) {
      const rooms = [...subset(4)];
      const session = { sid: `sid-${s}`, pid: `pid-${s}`, rooms, data: { s, nested: [s] } };
      reference.persistSession(structuredClone(session) as never);
      store.persistSession(structuredClone(session));
      const from = s === 0 ? storedIndexes[0] : pick(storedIndexes);
      const expected = (await reference.restoreSession(session.pid, referenceOffsets[from] as string)) as unknown as Record<string, unknown> | null;
      const actual = store.restoreSession(session.pid, storeOffsets[from] as string) as unknown as Record<string, unknown> | null;
      assert.ok(expected, `session ${s} restores with the reference`);
      assert.ok(actual, `session ${s} restores`);
      const { missedPackets: refPackets, disconnectedAt, ...refRest } = expected;
      const { missedPackets, ...rest } = actual;
      assert.equal(typeof disconnectedAt, "number");
      assert.deepEqual(rest, refRest, `session ${s}: sid, pid, rooms, data`);
      assert.deepEqual(strip(missedPackets as unknown[][], storeOffsets), strip(refPackets as unknown[][], referenceOffsets), `session ${s}: missed packets from #${from}`);
    }
    // An offset neither side ever produced.
    reference.persistSession({ sid: "x", pid: "pid-x", rooms: [], data: {} } as never);
    store.persistSession({ sid: "x", pid: "pid-x", rooms: [], data: {} });
    assert.equal(await reference.restoreSession("pid-x", "no-such-offset"), null);
    assert.equal(store.restoreSession("pid-x", "no-such-offset"), null);
    assert.equal(store.restoreSession("no-such-pid", storeOffsets[storedIndexes[0]] as string), null);
  } finally {
    store.stopExpiry();
  }
});

test("RecoveryStore: expire(now) drops sessions and packets older than the window; a dropped offset restores nothing", (t) => {
  const T0 = 1_000_000;
  t.mock.timers.enable({ apis: ["Date"], now: T0 });
  const at = (ms: number) => t.mock.timers.setTime(T0 + ms);
  const store = newStore(1000);
  try {
    const offsets: string[] = [];
    const record = (label: string, rooms: Room[] = [], except: Room[] = []) => {
      const packet = { type: 2, data: ["ev", label] as unknown[] };
      recordBroadcast(store, packet, { rooms: new Set(rooms), except: new Set(except) });
      offsets.push(packet.data[2] as string);
    };
    const labels = (session: ReturnType<RecoveryStore["restoreSession"]>) => session && session.missedPackets.map((data) => (data as unknown[])[1]);

    at(0);
    record("p1");
    at(400);
    record("p2", ["a"]);
    at(800);
    store.persistSession({ sid: "s1", pid: "pid1", rooms: ["s1", "a"], data: { n: 1 } });
    at(900);
    record("p3", ["b"]);
    record("p4", [], ["a"]);
    record("p5", ["a", "b"]);
    assert.deepEqual(store.size.packets, 5);
    assert.deepEqual(labels(store.restoreSession("pid1", offsets[0])), ["p2", "p5"]);

    // Threshold T0+200: p1 goes, the rest stays.
    at(1200);
    store.expire(T0 + 1200);
    assert.equal(store.size.packets, 4);
    assert.equal(store.size.sessions, 1);
    assert.equal(store.restoreSession("pid1", offsets[0]), null, "p1's offset was dropped");
    const restored = store.restoreSession("pid1", offsets[1]);
    assert.deepEqual(restored && { sid: restored.sid, pid: restored.pid, rooms: restored.rooms, data: restored.data }, {
      sid: "s1",
      pid: "pid1",
      rooms: ["s1", "a"],
      data: { n: 1 },
    });
    assert.deepEqual(labels(restored), ["p5"], "a failed restore kept the session");

    // Threshold T0+850: p2 goes, and the session (away since T0+800).
    at(1850);
    store.expire(T0 + 1850);
    assert.equal(store.size.packets, 3);
    assert.equal(store.size.sessions, 0);
    assert.equal(store.restoreSession("pid1", offsets[2]), null, "the session expired");

    // Without expire(): restoreSession itself refuses a session older than the window.
    at(2000);
    record("p6");
    store.persistSession({ sid: "s2", pid: "pid2", rooms: ["s2"], data: {} });
    at(2999);
    assert.deepEqual(labels(store.restoreSession("pid2", offsets[2])), ["p4", "p6"]);
    at(3001);
    assert.equal(store.restoreSession("pid2", offsets[2]), null);
    assert.equal(store.size.sessions, 0, "the expired session is forgotten");

    // Everything expires: the log is empty, and works again afterwards.
    at(10_000);
    store.expire(T0 + 10_000);
    assert.equal(store.size.packets, 0);
    record("p7");
    record("p8", ["x"]);
    store.persistSession({ sid: "s3", pid: "pid3", rooms: ["x"], data: null });
    assert.deepEqual(labels(store.restoreSession("pid3", offsets[6])), ["p8"]);
  } finally {
    store.stopExpiry();
  }
});

test("RecoveryStore: the packet log compacts, memory stays bounded and packets stay intact while most expire", (t) => {
  const T0 = 5_000_000;
  t.mock.timers.enable({ apis: ["Date"], now: T0 });
  const store = newStore(1000);
  try {
    const ROUNDS = 80;
    const PER_ROUND = 1500;
    const filler = "x".repeat(150);
    let appended = 0;
    let maxBytes = 0;
    let lastOffsets: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      t.mock.timers.setTime(T0 + round * 500);
      lastOffsets = [];
      for (let i = 0; i < PER_ROUND; i++) {
        const packet = { type: 2, data: ["ev", { round, i, filler }] as unknown[] };
        recordBroadcast(store, packet, { rooms: new Set(i % 2 ? ["odd"] : []), except: new Set() });
        lastOffsets.push(packet.data[2] as string);
        appended += 180;
      }
      store.expire(T0 + round * 500);
      maxBytes = Math.max(maxBytes, store.size.bytes);
    }
    // The window (1000 ms) holds at most 3 rounds.
    assert.ok(store.size.packets <= 3 * PER_ROUND, `live packets: ${store.size.packets}`);
    assert.ok(appended > 20 * 1024 * 1024, "enough was appended to matter");
    assert.ok(maxBytes < 8 * 1024 * 1024, `the log stayed bounded (max ${maxBytes} bytes for ${appended} appended)`);

    // The live packets are intact after the compactions: replay from the first of the last round.
    store.persistSession({ sid: "s", pid: "p", rooms: ["s"], data: {} });
    const session = store.restoreSession("p", lastOffsets[0]);
    assert.ok(session, "the session restores");
    const replayed = session.missedPackets.map((data) => (data as [string, { round: number; i: number; filler: string }, string])[1]);
    const expected = Array.from({ length: PER_ROUND - 1 }, (_, k) => k + 1)
      .filter((i) => i % 2 === 0)
      .map((i) => ({ round: ROUNDS - 1, i, filler }));
    assert.deepEqual(replayed, expected);
    assert.deepEqual(
      session.missedPackets.map((data) => (data as unknown[])[2]),
      lastOffsets.filter((_, i) => i > 0 && i % 2 === 0),
      "each replayed packet carries its own offset",
    );
  } finally {
    store.stopExpiry();
  }
});

test("nextOffset(Date.now()) gives what yeast() gives, call for call (same millisecond, next one, clock back)", (t) => {
  // Far from any time an earlier test used: yeast's state and nextOffset's start alike.
  const T0 = 7_654_321_000;
  t.mock.timers.enable({ apis: ["Date"], now: T0 });
  const steps = [0, 0, 0, 1, 1, 64, 64, 64, 4095, -3, 0, 0];
  const ours: string[] = [];
  const theirs: string[] = [];
  let now = T0;
  for (const [i, step] of steps.entries()) {
    now += step;
    t.mock.timers.setTime(now);
    // Enough calls in one millisecond to go past the precomputed suffixes.
    const calls = i === 2 ? 5000 : 3;
    for (let c = 0; c < calls; c++) {
      theirs.push(yeast());
      ours.push(nextOffset(Date.now()));
    }
  }
  assert.deepEqual(ours, theirs);
  assert.ok(ours.includes(`${encode(T0)}.${encode(4500)}`), "offsets past the precomputed suffixes");
});

test("encodeBase64 gives what yeast's encode gives (0, digit boundaries, today's milliseconds, 2^53 - 1)", () => {
  const values = [0, 1, 63, 64, 65, 4095, 4096, 262_143, 262_144, Date.now(), 7_654_321_000, 2 ** 40 + 12_345, Number.MAX_SAFE_INTEGER];
  for (let n = 0; n < 70_000; n += 7) values.push(n);
  for (const n of values) assert.equal(encodeBase64(n), encode(n), `encodeBase64(${n})`);
});

test("RecoveryStore: a record that outgrows the log while it is written moves with it (long room names, a number room after them)", { timeout: 60_000 }, (t) => {
  const T0 = 9_000_000;
  t.mock.timers.enable({ apis: ["Date"], now: T0 });
  const store = newStore(1000);
  try {
    // A dead front first, so that making room compacts as well as grows.
    for (let i = 0; i < 500; i++) recordBroadcast(store, { type: 2, data: ["old", i] }, { rooms: new Set(["r"]), except: new Set() });
    t.mock.timers.setTime(T0 + 2000);
    store.expire(T0 + 2000);
    assert.equal(store.size.packets, 0);
    const offsets: string[] = [];
    const labels: unknown[] = [];
    // Room names of 20 kB each: every record needs room past the end of the log in the middle of its rooms.
    const long = (i: number) => `${i}-${"ü".repeat(10_000)}`;
    for (let i = 0; i < 40; i++) {
      const rooms: Room[] = [long(i), long(i + 1), "shared"];
      // Every fourth a number room after the long ones: the plain record is dropped half written, msgpack takes it.
      if (i % 4 === 3) rooms.push(i as unknown as Room);
      const packet = { type: 2, data: ["ev", { i }] as unknown[] };
      recordBroadcast(store, packet, { rooms: new Set(rooms), except: new Set(i % 5 === 0 ? [long(99)] : []) }, i % 2 === 0);
      offsets.push(packet.data[2] as string);
      labels.push(i);
    }
    assert.equal(store.size.packets, 40);
    store.persistSession({ sid: "s", pid: "p", rooms: ["shared"], data: {} });
    const all = store.restoreSession("p", offsets[0]);
    assert.deepEqual(
      all?.missedPackets.map((data) => [(data as [string, { i: number }])[1].i, data[2]]),
      labels.slice(1).map((i, k) => [i, offsets[k + 1]]),
      "every packet after the first, intact, with its offset",
    );
    store.persistSession({ sid: "s2", pid: "p2", rooms: [long(7)], data: {} });
    assert.deepEqual(
      store.restoreSession("p2", offsets[0])?.missedPackets.map((data) => (data as [string, { i: number }])[1].i),
      [6, 7],
      "the long room names came back as written",
    );
    store.persistSession({ sid: "s3", pid: "p3", rooms: [long(11), long(99)], data: {} });
    assert.deepEqual(
      store.restoreSession("p3", offsets[0])?.missedPackets.map((data) => (data as [string, { i: number }])[1].i),
      [11],
      "#10 excluded its except room's members, #11 did not",
    );
  } finally {
    store.stopExpiry();
  }
});
