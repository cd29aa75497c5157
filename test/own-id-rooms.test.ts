/**
 * Rooms named after socket ids (socket.io puts every socket in a room named
 * by its own id): differential test against socket.io's in-memory adapter.
 *
 * The same operations run on an in-memory `Adapter` and on a `ShardedAdapter`
 * (workers: 1, main-thread path; and workers: 1, offloadThreshold: 0, worker
 * path), each in a fresh namespace of a detached socket.io `Server` with the
 * fake sockets of ./fake-sockets. After every operation, compared exactly:
 *  - `adapter.rooms` keys in order, each room's members in order;
 *  - `adapter.sids` keys in order, each socket's rooms in order;
 *  - `socketRooms(id)` (rooms in order, or undefined) of every id;
 *  - room events since the previous operation, with arguments, in order;
 *  - probes through `apply`: `fetchSockets({ rooms, except })` ids in order
 *    and a broadcast's recipients (as a set: broadcasts are documented to
 *    write shard by shard), for selections made of own-id rooms, ordinary
 *    rooms, rooms named after disconnected or never-connected sockets and
 *    unknown rooms.
 *
 * Scenarios 1-5 and 7 (an `adapter.rooms` iterator held while own-id rooms
 * are deleted and re-created) are written out; 6 is a fast-check run over sockets A, B, C
 * and rooms drawn from {A, B, C, r1, r2}. Environment: FC_SEED fixes the
 * seed, FC_PATH replays a counterexample (with FC_SEED), FC_RUNS_SCALE
 * multiplies the number of runs; a failure prints seed, path and sequence.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { inspect, isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { Server, type Namespace } from "socket.io";
import type { Adapter, Room, SocketId } from "socket.io-adapter";
import { createAdapter, type ShardedAdapter, type ShardedAdapterOptions } from "../lib/index";
import { coaxWorkers } from "./coax-workers";
import { closeDetached, connectFake, disconnectFake, type FakeSocket } from "./fake-sockets";

type RoomEvent = [string, ...unknown[]];

/** Ids that sockets may have; GHOST never connects (a room may still be named after it). */
const IDS = ["A", "B", "C", "X"];
const GHOST = "G";
const ORDINARY = ["r1", "r2"];
const UNKNOWN = "nope";

/** One adapter kind: a namespace per scenario, its room events recorded. */
class Side {
  nsp!: Namespace;
  adapter!: Adapter;
  events: RoomEvent[] = [];
  /** Whether {@link coaxWorkers} instrumented the current namespace's adapter. */
  coaxed = false;

  constructor(
    readonly kind: string,
    readonly io: Server,
    readonly coax = false,
  ) {}

  open(name: string): void {
    this.nsp = this.io.of(name);
    this.adapter = this.nsp.adapter;
    this.coaxed = this.coax && coaxWorkers(this.adapter);
    this.events = [];
    for (const event of ["create-room", "delete-room", "join-room", "leave-room"]) {
      this.adapter.on(event, (...args: unknown[]) => this.events.push([event, ...args]));
    }
  }

  socket(id: SocketId): FakeSocket | undefined {
    return this.nsp.sockets.get(id) as unknown as FakeSocket | undefined;
  }

  /** Recipients of a broadcast, from the fake sockets' counters (each must get exactly one packet). */
  async broadcast(rooms: Room[], except: Room[]): Promise<SocketId[]> {
    // Lets piscina see the worker's previous task as done, so that it hands it this one.
    if (this.coaxed) await new Promise((resolve) => setImmediate(resolve));
    const sockets = [...this.nsp.sockets.values()] as unknown as FakeSocket[];
    const before = sockets.map((s) => s.received);
    this.adapter.broadcast({ type: 2, data: ["ev"], nsp: this.nsp.name } as never, { rooms: new Set(rooms), except: new Set(except) });
    const got: SocketId[] = [];
    sockets.forEach((s, i) => {
      const n = s.received - before[i];
      if (n > 1) throw new Error(`${this.kind}: ${s.id} got ${n} packets from one broadcast`);
      if (n === 1) got.push(s.id);
    });
    return got.sort();
  }

  async fetch(rooms: Room[], except: Room[]): Promise<SocketId[]> {
    const sockets = await this.adapter.fetchSockets({ rooms: new Set(rooms), except: new Set(except) });
    return sockets.map((s) => s.id);
  }

  takeEvents(): RoomEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  state(): Record<string, unknown> {
    const a = this.adapter;
    const roomKeys = [...a.rooms.keys()];
    return {
      "rooms.keys()": roomKeys,
      "rooms.size": a.rooms.size,
      "rooms.get(room) in order": roomKeys.map((room) => [room, [...(a.rooms.get(room) ?? ["<undefined>"])]]),
      "rooms.has(probe)": [...IDS, GHOST, ...ORDINARY, UNKNOWN].map((room) => [room, a.rooms.has(room)]),
      "sids.keys()": [...a.sids.keys()],
      "sids.size": a.sids.size,
      "sids.get(id) in order": [...a.sids.keys()].map((id) => [id, [...(a.sids.get(id) ?? ["<undefined>"])]]),
      "socketRooms(id)": [...IDS, GHOST].map((id) => {
        const rooms = a.socketRooms(id);
        return [id, rooms === undefined ? "undefined" : [...rooms], rooms?.size];
      }),
      "nsp.sockets": [...this.nsp.sockets.keys()],
    };
  }
}


/** Selections probed after every operation: [rooms, except]. */
const PROBES: [Room[], Room[]][] = [
  [[], []],
  ...[...IDS, GHOST, ...ORDINARY, UNKNOWN].map((room): [Room[], Room[]] => [[room], []]),
  ...IDS.map((id): [Room[], Room[]] => [[], [id]]),
  [["A", "r1"], []],
  [["r1", "A", "B"], []],
  [["A", "B", "C", "X"], ["B"]],
  [["r1", "r2"], ["A", "X"]],
  [["A"], ["A"]],
  [["X", UNKNOWN, GHOST], [UNKNOWN]],
];
/** The subset also broadcast to after every operation (the rest are broadcast to by the scenarios). */
const BROADCAST_PROBES = PROBES.filter((_, i) => i % 3 === 0);

let namespaceCounter = 0;

class Pair {
  readonly trace: string[] = [];

  constructor(
    readonly mem: Side,
    readonly sh: Side,
  ) {
    const name = `/own${namespaceCounter++}`;
    mem.open(name);
    sh.open(name);
  }

  fail(what: string, a: unknown, b: unknown): never {
    const opts = { depth: 8, breakLength: 160, maxArrayLength: 100 };
    throw new assert.AssertionError({
      message: `${what}\n  in-memory: ${inspect(a, opts)}\n  sharded:   ${inspect(b, opts)}\nsequence:\n${this.trace.map((l) => `  ${l}`).join("\n")}`,
    });
  }

  /** Runs `op` on both sides (in-memory first), compares its result, the events and the whole observable state. */
  async step<T>(label: string, op: (side: Side) => T | Promise<T>, probe = true): Promise<T> {
    this.trace.push(label);
    const a = await op(this.mem);
    const b = await op(this.sh);
    if (!isDeepStrictEqual(a, b)) this.fail(`result of "${label}" differs`, a, b);
    const ea = this.mem.takeEvents();
    const eb = this.sh.takeEvents();
    if (!isDeepStrictEqual(ea, eb)) this.fail(`room events of "${label}" differ`, ea, eb);
    const sa = this.mem.state();
    const sb = this.sh.state();
    for (const key of Object.keys(sa)) {
      if (!isDeepStrictEqual(sa[key], sb[key])) this.fail(`after "${label}": ${key} differs`, sa[key], sb[key]);
    }
    if (probe) await this.probe(label);
    return a;
  }

  async probe(label: string): Promise<void> {
    for (const [rooms, except] of PROBES) {
      const a = await this.mem.fetch(rooms, except);
      const b = await this.sh.fetch(rooms, except);
      if (!isDeepStrictEqual(a, b)) this.fail(`after "${label}": fetchSockets(${JSON.stringify({ rooms, except })}) ids differ (in order)`, a, b);
    }
    for (const [rooms, except] of BROADCAST_PROBES) {
      const a = await this.mem.broadcast(rooms, except);
      const b = await this.sh.broadcast(rooms, except);
      if (!isDeepStrictEqual(a, b)) this.fail(`after "${label}": broadcast(${JSON.stringify({ rooms, except })}) recipients differ`, a, b);
    }
    const ea = this.mem.takeEvents();
    const eb = this.sh.takeEvents();
    if (ea.length || eb.length) this.fail(`probes after "${label}" emitted room events`, ea, eb);
  }

  // Operations, as socket.io performs them.
  connect(id: SocketId) {
    return this.step(`connect ${id} (addAll(${id}, {${id}}))`, (s) => void connectFake(s.nsp, id));
  }
  join(id: SocketId, rooms: Room[]) {
    return this.step(`${id}.join(${JSON.stringify(rooms)})`, (s) => s.socket(id)?.join(rooms));
  }
  /** socket.io's leave calls adapter.del() whether or not the socket is still connected. */
  leave(id: SocketId, room: Room) {
    return this.step(`del(${id}, ${JSON.stringify(room)})`, (s) => s.adapter.del(id, room));
  }
  disconnect(id: SocketId) {
    return this.step(`disconnect ${id} (delAll(${id}))`, (s) => {
      if (s.socket(id)) disconnectFake(s.nsp, id);
    });
  }
  socketsJoin(rooms: Room[], except: Room[], target: Room[]) {
    return this.step(`io.in(${JSON.stringify(rooms)}).except(${JSON.stringify(except)}).socketsJoin(${JSON.stringify(target)})`, (s) =>
      s.nsp.in(rooms).except(except).socketsJoin(target),
    );
  }
  socketsLeave(rooms: Room[], except: Room[], target: Room[]) {
    return this.step(`io.in(${JSON.stringify(rooms)}).except(${JSON.stringify(except)}).socketsLeave(${JSON.stringify(target)})`, (s) =>
      s.nsp.in(rooms).except(except).socketsLeave(target),
    );
  }
  fetch(rooms: Room[], except: Room[]) {
    return this.step(`fetchSockets(${JSON.stringify({ rooms, except })})`, (s) => s.fetch(rooms, except), false);
  }
  broadcast(rooms: Room[], except: Room[]) {
    return this.step(`broadcast(${JSON.stringify({ rooms, except })})`, (s) => s.broadcast(rooms, except), false);
  }
  async close(): Promise<void> {
    for (const side of [this.mem, this.sh]) {
      side.nsp.sockets.clear();
      (side.io as unknown as { _nsps: Map<string, Namespace> })._nsps.delete(side.nsp.name);
      await side.nsp.adapter.close();
    }
  }
}

/** Records the events of one step so that a scenario can also assert what the in-memory adapter does. */
async function events(pair: Pair, run: () => Promise<unknown>): Promise<RoomEvent[]> {
  const recorded: RoomEvent[] = [];
  const listener = (event: string) => (...args: unknown[]) => recorded.push([event, ...args]);
  const listeners = ["create-room", "delete-room", "join-room", "leave-room"].map((e) => [e, listener(e)] as const);
  for (const [e, l] of listeners) pair.mem.adapter.on(e, l);
  try {
    await run();
  } finally {
    for (const [e, l] of listeners) pair.mem.adapter.off(e, l);
  }
  return recorded;
}

// ---------------------------------------------------------------------------

const CONFIGURATIONS: { name: string; options: ShardedAdapterOptions; numRuns: number; coax?: boolean }[] = [
  { name: "workers: 1 (main-thread path)", options: { workers: 1 }, numRuns: 300 },
  { name: "workers: 1, offloadThreshold: 0 (worker path)", options: { workers: 1, offloadThreshold: 0 }, numRuns: 300, coax: true },
];

const seed = process.env.FC_SEED !== undefined && process.env.FC_SEED !== "" ? Number(process.env.FC_SEED) : undefined;
const path = process.env.FC_PATH || undefined;
const scale = Number(process.env.FC_RUNS_SCALE ?? 1) || 1;

const servers: Server[] = [];
after(async () => {
  for (const io of servers) await closeDetached(io);
});

type Command =
  | { op: "connect"; id: SocketId }
  | { op: "join"; id: SocketId; rooms: Room[] }
  | { op: "leave"; id: SocketId; room: Room }
  | { op: "disconnect"; id: SocketId }
  | { op: "socketsJoin" | "socketsLeave"; rooms: Room[]; except: Room[]; target: Room[] }
  | { op: "fetch" | "broadcast"; rooms: Room[]; except: Room[] };

const FC_IDS = ["A", "B", "C"];
const FC_ROOMS = [...FC_IDS, ...ORDINARY];

function commandArbitrary(): fc.Arbitrary<Command> {
  const id = fc.constantFrom(...FC_IDS);
  const room = fc.constantFrom(...FC_ROOMS);
  const rooms = (max: number) => fc.uniqueArray(room, { maxLength: max });
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant("connect" as const), id }) },
    { weight: 6, arbitrary: fc.record({ op: fc.constant("join" as const), id, rooms: fc.uniqueArray(room, { minLength: 1, maxLength: 2 }) }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant("leave" as const), id, room }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("disconnect" as const), id }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("socketsJoin" as const), rooms: rooms(2), except: rooms(1), target: fc.uniqueArray(room, { minLength: 1, maxLength: 2 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("socketsLeave" as const), rooms: rooms(2), except: rooms(1), target: fc.uniqueArray(room, { minLength: 1, maxLength: 2 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("fetch" as const), rooms: rooms(3), except: rooms(2) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("broadcast" as const), rooms: rooms(3), except: rooms(2) }) },
  );
}

async function runCommand(pair: Pair, cmd: Command): Promise<void> {
  switch (cmd.op) {
    case "connect":
      // socket.io never connects the same id twice at once.
      if (pair.mem.socket(cmd.id)) return;
      await pair.connect(cmd.id);
      return;
    case "join":
      await pair.join(cmd.id, cmd.rooms);
      return;
    case "leave":
      await pair.leave(cmd.id, cmd.room);
      return;
    case "disconnect":
      await pair.disconnect(cmd.id);
      return;
    case "socketsJoin":
      await pair.socketsJoin(cmd.rooms, cmd.except, cmd.target);
      return;
    case "socketsLeave":
      await pair.socketsLeave(cmd.rooms, cmd.except, cmd.target);
      return;
    case "fetch":
      await pair.fetch(cmd.rooms, cmd.except);
      return;
    case "broadcast":
      await pair.broadcast(cmd.rooms, cmd.except);
      return;
  }
}

for (const config of CONFIGURATIONS) {
  describe(`rooms named after socket ids, in-memory vs sharded (${config.name})`, () => {
    const mem = new Side("in-memory", new Server());
    const sh = new Side("sharded", new Server({ adapter: createAdapter(config.options) }), config.coax);
    servers.push(mem.io, sh.io);
    // "/" keeps the sharded server's worker pool alive between scenarios.
    mem.io.of("/");
    sh.io.of("/");

    const scenario = (name: string, body: (pair: Pair) => Promise<void>) =>
      test(name, async () => {
        const pair = new Pair(mem, sh);
        try {
          await body(pair);
        } finally {
          await pair.close();
        }
      });

    scenario("1. B is in room A when A disconnects: room A survives with B, keeps its place, is deleted when B leaves", async (p) => {
      await p.connect("A");
      await p.connect("B");
      await p.join("A", ["r1", "r2"]);
      await p.join("B", ["r1"]);
      await p.join("B", ["A"]);
      await p.connect("C");
      await p.join("C", ["A", "r2"]);
      await p.broadcast(["A"], []);
      await p.broadcast(["A"], ["r1"]);
      const onDisconnect = await events(p, () => p.disconnect("A"));
      assert.ok(!onDisconnect.some((e) => e[0] === "delete-room" && e[1] === "A"), "room A must survive");
      assert.deepEqual([...p.sh.adapter.rooms.get("A")!], ["B", "C"]);
      assert.deepEqual([...p.sh.adapter.rooms.keys()], ["A", "B", "r1", "r2", "C"]);
      await p.fetch(["A"], []);
      await p.broadcast(["A"], []);
      await p.broadcast([], ["A"]);
      await p.leave("C", "A");
      await p.connect("X");
      const onLeave = await events(p, () => p.leave("B", "A"));
      assert.deepEqual(onLeave, [
        ["leave-room", "A", "B"],
        ["delete-room", "A"],
      ]);
      assert.ok(!p.sh.adapter.rooms.has("A"));
      // A comes back: its own room is created again, at the end.
      await p.connect("A");
      await p.join("B", ["A"]);
      await p.disconnect("B");
      await p.disconnect("A");
      await p.disconnect("C");
      await p.disconnect("X");
      assert.equal(p.sh.adapter.rooms.size, 0);
      assert.equal(p.sh.adapter.sids.size, 0);
    });

    scenario("2. A leaves its own room while connected, then rejoins it: the room moves to the end", async (p) => {
      await p.connect("A");
      await p.connect("B");
      await p.join("A", ["r1"]);
      await p.leave("A", "A");
      assert.ok(!p.sh.adapter.rooms.has("A"));
      await p.fetch(["A"], []);
      await p.fetch([], []);
      await p.broadcast([], ["r1"]);
      await p.step("addAll(A, {A})", (s) => s.adapter.addAll("A", new Set(["A"])));
      assert.deepEqual([...p.sh.adapter.rooms.keys()], ["B", "r1", "A"]);
      assert.deepEqual([...p.sh.adapter.socketRooms("A")!], ["r1", "A"]);
      // Left while someone else is in it: the room stays in place, A's membership moves to the end of it.
      await p.join("B", ["A"]);
      await p.leave("A", "A");
      await p.step("addAll(A, {A})", (s) => s.adapter.addAll("A", new Set(["A"])));
      assert.deepEqual([...p.sh.adapter.rooms.get("A")!], ["B", "A"]);
      // A leaves every room but stays connected (an empty sids entry in the in-memory adapter).
      await p.leave("A", "r1");
      await p.leave("A", "A");
      await p.fetch([], []);
      await p.fetch([], ["A"]);
      await p.broadcast([], []);
      await p.join("A", ["A"]);
      await p.disconnect("A");
      await p.leave("A", "A"); // after disconnect: a no-op
      await p.disconnect("B");
    });

    scenario("3. a room X created before any socket X exists is joined by socket X on connect", async (p) => {
      await p.connect("B");
      await p.join("B", ["X"]);
      await p.connect("A");
      await p.join("A", ["r1", "X"]);
      await p.fetch(["X"], []);
      await p.broadcast(["X"], []);
      const onConnect = await events(p, () => p.connect("X"));
      assert.deepEqual(onConnect, [["join-room", "X", "X"]]);
      assert.deepEqual([...p.sh.adapter.rooms.get("X")!], ["B", "A", "X"]);
      await p.fetch(["X"], []);
      await p.fetch([], ["X"]);
      await p.broadcast(["X"], ["A"]);
      await p.disconnect("X");
      assert.deepEqual([...p.sh.adapter.rooms.get("X")!], ["B", "A"]);
      await p.leave("B", "X");
      await p.leave("A", "X");
      await p.fetch(["X"], []);
      // A room named after a socket that never connects.
      await p.join("A", [GHOST]);
      await p.broadcast([GHOST], []);
      await p.disconnect("A");
      await p.disconnect("B");
    });

    scenario("4. a socket X reconnects with the same id, while room X still has members and when it has none", async (p) => {
      await p.connect("X");
      await p.connect("B");
      await p.join("X", ["r1"]);
      await p.join("B", ["X", "r1"]);
      await p.disconnect("X");
      await p.connect("C");
      await p.connect("X"); // room X still has B
      assert.deepEqual([...p.sh.adapter.rooms.get("X")!], ["B", "X"]);
      await p.join("X", ["r2"]);
      await p.broadcast(["X"], []);
      await p.fetch(["r1", "X"], []);
      await p.disconnect("X");
      await p.leave("B", "X");
      assert.ok(!p.sh.adapter.rooms.has("X"));
      await p.connect("X"); // room X has no members: created again, at the end
      await p.join("C", ["X"]);
      await p.disconnect("X");
      await p.disconnect("C");
      await p.connect("X");
      await p.connect("C");
      // Several quick reconnects with other sockets in and out of room X.
      for (let i = 0; i < 3; i++) {
        await p.disconnect("X");
        await p.join("B", ["X"]);
        await p.connect("X");
        await p.leave("B", "X");
      }
      await p.socketsJoin(["X"], [], ["r1"]);
      await p.socketsLeave(["r1"], ["X"], ["r1", "X"]);
      for (const id of ["B", "C", "X"]) await p.disconnect(id);
      assert.equal(p.sh.adapter.rooms.size, 0);
    });

    scenario("5. fetchSockets and broadcast to own-id rooms, except them, to disconnected sockets' rooms and unknown rooms", async (p) => {
      for (const id of ["A", "B", "C"]) await p.connect(id);
      await p.join("A", ["r1"]);
      await p.join("B", ["r1", "A"]);
      await p.join("C", ["r2"]);
      await p.disconnect("C"); // C's room is gone, r2 with it
      const selections: [Room[], Room[]][] = [
        [["A"], []],
        [["B"], []],
        [["A", "r1"], []],
        [["r1", "A"], []],
        [["A", "B"], []],
        [[], ["A"]],
        [["r1"], ["A"]],
        [["A"], ["B"]],
        [["A", "r1"], ["B"]],
        [["C"], []],
        [["C", "r2"], []],
        [[], ["C"]],
        [[UNKNOWN], []],
        [[UNKNOWN, "A"], []],
        [[], [UNKNOWN]],
        [["A"], [UNKNOWN, "C"]],
      ];
      for (const [rooms, except] of selections) {
        await p.fetch(rooms, except);
        await p.broadcast(rooms, except);
      }
      await p.socketsJoin(["A"], ["B"], ["r2"]);
      await p.socketsJoin([], ["r2"], ["A"]);
      await p.socketsLeave(["A"], [], ["A"]);
      for (const [rooms, except] of selections) await p.fetch(rooms, except);
      await p.disconnect("A");
      await p.disconnect("B");
    });

    scenario("8. broadcasts to one socket id (its one-socket path): alone in its room, excluded, after leaving it, shared, unregistered, gone", async (p) => {
      for (const id of ["A", "B", "C"]) await p.connect(id);
      await p.join("A", ["r1"]);
      const toA: [Room[], Room[]][] = [
        [["A"], []],
        [["A"], ["B"]], // socket.to(A) from B
        [["A"], ["A"]],
        [["A"], ["r1"]], // A is in r1
        [["A"], ["r2"]],
        [["A"], ["B", "r1"]],
        [["A"], [GHOST, UNKNOWN]],
        [["B"], ["A"]],
        [["C"], ["B"]],
      ];
      const probeAll = async () => {
        for (const [rooms, except] of toA) {
          await p.broadcast(rooms, except);
          await p.fetch(rooms, except);
        }
      };
      await probeAll();
      await p.leave("A", "A"); // A's room is gone: nobody
      await probeAll();
      await p.join("B", ["A"]); // room A again, B its one member, not A
      await probeAll();
      await p.join("A", ["A"]); // A and B
      await probeAll();
      await p.leave("B", "A"); // A alone again
      await probeAll();
      await p.join("C", ["B"]); // room B holds B and C: except B excludes C
      await probeAll();
      // A socket in its own room before it is registered in the namespace (joined in a middleware): not written to.
      await p.step("addAll(X, {X}) before X is registered", (s) => s.adapter.addAll("X", new Set(["X"])));
      await p.broadcast(["X"], []);
      await p.fetch(["X"], []);
      await p.broadcast(["X"], ["B"]);
      await p.step("X registered", (s) => void connectFake(s.nsp, "X"));
      await p.broadcast(["X"], []);
      await p.broadcast(["X"], ["A"]);
      await p.disconnect("A"); // gone: nobody
      await probeAll();
      await p.connect("A"); // back with the same id
      await probeAll();
      for (const id of ["A", "B", "C", "X"]) await p.disconnect(id);
    });

    scenario("7. iterating adapter.rooms while own-id rooms are deleted and re-created (Map iterator semantics)", async (p) => {
      for (const id of ["A", "B", "C"]) await p.connect(id);
      await p.join("B", ["r1", "A"]);
      const iterators = new Map<Side, Iterator<Room>>([p.mem, p.sh].map((s) => [s, s.adapter.rooms.keys()]));
      const next = (label: string) => p.step(`next() of an adapter.rooms.keys() iterator taken earlier, then ${label}`, (s) => iterators.get(s)!.next());
      await next("nothing");
      await p.leave("A", "A"); // room A stays (B), A's membership removed
      await next("nothing");
      await p.leave("B", "A"); // room A deleted before the iterator reaches it again
      await p.disconnect("C"); // room C deleted, not yet visited: skipped
      await p.step("addAll(A, {A})", (s) => s.adapter.addAll("A", new Set(["A"]))); // re-created at the end: visited
      await p.connect("X");
      await p.leave("B", "B");
      await p.join("B", ["B"]); // deleted and re-created after the cursor: visited once, at the end
      for (let i = 0; i < 8; i++) await next(`step ${i}`);
      for (const id of ["A", "B", "X"]) await p.disconnect(id);
    });

    test(`6. random sequences (fast-check, ${config.numRuns} runs)`, async (t) => {
      const numRuns = Math.max(1, Math.round(config.numRuns * scale));
      let steps = 0;
      let coaxed = 0;
      const property = fc.asyncProperty(fc.array(commandArbitrary(), { minLength: 1, maxLength: 25 }), async (cmds) => {
        const pair = new Pair(mem, sh);
        try {
          for (const cmd of cmds) await runCommand(pair, cmd);
          // Everyone leaves: nothing may remain.
          for (const id of FC_IDS) await pair.disconnect(id);
          steps += pair.trace.length;
          if (sh.coaxed) coaxed++;
          if (!isDeepStrictEqual(pair.sh.state()["rooms.keys()"], [])) pair.fail("rooms remain after every socket left", pair.mem.state(), pair.sh.state());
        } finally {
          await pair.close();
        }
      });
      await fc.assert(property, { numRuns, seed, path, endOnFailure: path !== undefined ? true : undefined, includeErrorInReport: true });
      const stats = (sh.io.of("/").adapter as unknown as ShardedAdapter).stats().pool;
      t.diagnostic(`${numRuns} sequences, ${steps} steps; pool: ${JSON.stringify(stats)}`);
      assert.equal(stats.workerFailures, 0, "a worker task failed");
      if (config.coax) {
        assert.ok(coaxed > 0, "could not reach the adapter's internals to get the worker to answer shards");
        assert.ok(stats.shardsByWorkers > 0, "the worker answered no shard");
      }
    });
  });
}

test("a broadcast to a socket id whose slot went to another socket reaches neither, as in the in-memory adapter (the slot kept on the Socket is checked)", async () => {
  const run = async (io: Server): Promise<number[]> => {
    const nsp = io.of("/slots");
    try {
      const a = connectFake(nsp, "A");
      const packet = () => ({ type: 2, data: ["ev"], nsp: "/slots" });
      const to = (room: string, except: string[] = []) => nsp.adapter.broadcast(packet(), { rooms: new Set([room]), except: new Set(except) });
      to("A"); // the sharded adapter keeps A's slot on A from here
      // A leaves every room but stays registered (as between socket.io's leaveAll and its removal): its slot is freed...
      nsp.adapter.delAll("A");
      // ...and reused by the next socket.
      const x = connectFake(nsp, "X");
      to("X");
      to("A");
      to("X", ["A"]); // socket.to(X) from A: A is in no room, X still gets it
      const b = connectFake(nsp, "B");
      b.join("r");
      x.join("r");
      to("r", ["A"]);
      to("r", ["X"]);
      return [a.received, x.received, b.received];
    } finally {
      await nsp.adapter.close();
    }
  };
  const memIo = new Server();
  const shIo = new Server({ adapter: createAdapter({ workers: 1 }) });
  try {
    const expected = await run(memIo);
    assert.deepEqual(expected, [1, 3, 2], "the in-memory adapter's deliveries (the scenario itself)");
    assert.deepEqual(await run(shIo), expected);
  } finally {
    await closeDetached(memIo);
    await closeDetached(shIo);
  }
});
