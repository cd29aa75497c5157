/**
 * Odd input: room names of every type, huge names, a million rooms on one
 * socket. Each works exactly as with socket.io's in-memory adapter (the same
 * calls on both, the same observations) and never corrupts the index.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Server } from "socket.io";
import { createAdapter, type ShardedAdapter } from "../lib/index";
import { closeDetached, connectFake, type FakeSocket } from "./fake-sockets";

type Observation = { rooms: unknown[]; sizes: number[]; socketRooms: unknown[][]; received: number[] };

function observe(io: Server, sockets: FakeSocket[]): Observation {
  const adapter = io.of("/").adapter;
  const rooms = [...adapter.rooms.keys()];
  return {
    rooms,
    sizes: rooms.map((room) => adapter.rooms.get(room)!.size),
    socketRooms: sockets.map((socket) => [...(adapter.socketRooms(socket.id) ?? [])]),
    received: sockets.map((socket) => socket.received),
  };
}

const obj = { some: "object" };
const sym = Symbol("room");
const MEGABYTE_NAME = "x".repeat(1024 * 1024);
const ODD_ROOMS: unknown[] = [42, "42", 0, -0, "", sym, obj, undefined, null, NaN, 1.5, MEGABYTE_NAME, true];

for (const offloadThreshold of [20_000, 0]) {
  test(`rooms of unexpected types behave as in the in-memory adapter (offloadThreshold ${offloadThreshold})`, async () => {
    const memory = new Server();
    const sharded = new Server({ adapter: createAdapter({ workers: 2, offloadThreshold }) });
    try {
      const run = (io: Server) => {
        const nsp = io.of("/");
        const sockets = Array.from({ length: 6 }, (_, i) => connectFake(nsp, `s${i}`));
        ODD_ROOMS.forEach((room, i) => {
          sockets[i % 6].join(room);
          sockets[(i + 2) % 6].join([room]);
        });
        const broadcast = (rooms: unknown[], except: unknown[]) =>
          nsp.adapter.broadcast({ type: 2, data: ["m"], nsp: "/" } as never, { rooms: new Set(rooms) as Set<string>, except: new Set(except) as Set<string> });
        for (const room of ODD_ROOMS) broadcast([room], []);
        broadcast([42], ["42"]);
        broadcast([sym, obj, undefined], [NaN]);
        broadcast([], [MEGABYTE_NAME, 0]);
        broadcast([-0], []); // Map keys: -0 is 0
        broadcast([{ some: "object" }], []); // another object is another room
        sockets[0].leave(42);
        sockets[2].leave(sym);
        sockets[4].leave(NaN);
        sockets[1].disconnect();
        return observe(io, sockets);
      };
      const expected = run(memory);
      const actual = run(sharded);
      assert.deepEqual(actual, expected);
      assert.ok(expected.rooms.includes(sym) && expected.rooms.includes(obj), "the odd rooms were really used");
    } finally {
      await closeDetached(memory);
      await closeDetached(sharded);
    }
  });
}

test("a million distinct rooms on one socket: join, broadcast, leave and disconnect stay exact", async () => {
  const io = new Server({ adapter: createAdapter({ workers: 2 }) });
  try {
    const nsp = io.of("/");
    const adapter = nsp.adapter as ShardedAdapter;
    const socket = connectFake(nsp, "busy");
    const other = connectFake(nsp, "other");
    const count = 1_000_000;
    const rooms = Array.from({ length: count }, (_, i) => `room-${i}`);
    socket.join(rooms);
    other.join(["room-7", "room-999999"]);
    assert.equal(adapter.socketRooms("busy")!.size, count + 1);
    assert.equal(adapter.rooms.size, count + 2);
    nsp.adapter.broadcast({ type: 2, data: ["m"], nsp: "/" } as never, { rooms: new Set(["room-7", "room-500000"]), except: new Set() });
    assert.equal(socket.received, 1);
    assert.equal(other.received, 1);
    for (let i = 0; i < count; i += 2) socket.leave(rooms[i]);
    assert.equal(adapter.socketRooms("busy")!.has("room-1"), true);
    assert.equal(adapter.socketRooms("busy")!.has("room-2"), false);
    socket.disconnect();
    assert.deepEqual(adapter.stats().rooms, 3); // other's own room, room-7, room-999999
    assert.deepEqual([...adapter.rooms.keys()].sort(), ["other", "room-7", "room-999999"]);
    assert.equal(adapter.stats().memberships, 3);
  } finally {
    await closeDetached(io);
  }
});

test("close() twice is harmless; a closed adapter keeps serving like the in-memory adapter's and takes the pool back on the next join", async () => {
  const io = new Server({ adapter: createAdapter({ workers: 1 }) });
  const nsp = io.of("/");
  const socket = connectFake(nsp, "s");
  await nsp.adapter.close();
  await nsp.adapter.close();
  const adapter = nsp.adapter as unknown as ShardedAdapter;
  assert.equal(adapter.stats().sockets, 1, "membership survives close(), as in the in-memory adapter");
  nsp.adapter.broadcast({ type: 2, data: ["m"], nsp: "/" } as never, { rooms: new Set(), except: new Set() });
  assert.equal(socket.received, 1, "a broadcast after close still reaches the members");
  assert.deepEqual((await nsp.adapter.fetchSockets({ rooms: new Set(["s"]) })).length, 1);
  assert.equal(adapter.stats().pool.workers, 0, "the pool stops once its last adapter closed");
  nsp.adapter.addAll("s", new Set(["r"])); // a join reopens the adapter: the pool comes back
  assert.equal(adapter.stats().pool.workers, 1);
  assert.deepEqual([...(nsp.adapter.rooms.get("r") ?? [])], ["s"]);
  nsp.adapter.delAll("s");
  assert.equal(adapter.stats().memberships, 0);
  await closeDetached(io);
});
