/**
 * Room-event listeners that change rooms while the adapter is in the middle
 * of a join or a leave. The in-memory adapter's live Maps and Sets make these
 * work; the sharded adapter must end in the same state, and never hand a
 * membership to a socket that did not join.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Server } from "socket.io";
import { createAdapter } from "../lib/index";
import { closeDetached, connectFake, type FakeSocket } from "./fake-sockets";

async function onBoth(scenario: (io: Server) => unknown): Promise<void> {
  const memory = new Server();
  const sharded = new Server({ adapter: createAdapter({ workers: 1 }) });
  try {
    assert.deepEqual(await scenario(sharded), await scenario(memory));
  } finally {
    await closeDetached(memory);
    await closeDetached(sharded);
  }
}

function state(io: Server, sockets: FakeSocket[]) {
  const adapter = io.of("/").adapter;
  return {
    rooms: [...adapter.rooms.keys()].map((room) => [room, [...adapter.rooms.get(room)!].sort()]),
    socketRooms: sockets.map((socket) => [...(adapter.socketRooms(socket.id) ?? [])]),
    received: sockets.map((socket) => socket.received),
  };
}

test("a leave-room listener that empties the room (the host leaves, everyone leaves): the room is deleted once", async () => {
  await onBoth((io) => {
    const nsp = io.of("/");
    const events: unknown[] = [];
    for (const event of ["create-room", "delete-room"]) nsp.adapter.on(event, (...args: unknown[]) => events.push([event, ...args]));
    const [host, a, b, c, d] = ["host", "a", "b", "c", "d"].map((id) => connectFake(nsp, id));
    nsp.adapter.on("leave-room", (room: string, id: string) => {
      if (id === "host" && room === "game") nsp.adapter.delSockets({ rooms: new Set(["game"]) }, ["game"]);
    });
    for (const socket of [host, a, b]) socket.join("game");
    host.leave("game");
    c.join("alpha");
    d.join("beta");
    nsp.adapter.broadcast({ type: 2, data: ["m"], nsp: "/" } as never, { rooms: new Set(["beta"]), except: new Set() });
    return { events, state: state(io, [host, a, b, c, d]) };
  });
});

test("a leave-room listener that joins the leaving socket to another room: disconnect leaves that room too", async () => {
  await onBoth((io) => {
    const nsp = io.of("/");
    const a = connectFake(nsp, "a");
    a.join("lobby");
    nsp.adapter.on("leave-room", (room: string, id: string) => {
      if (room === "lobby") nsp.adapter.addAll(id, new Set(["limbo"]));
    });
    a.disconnect();
    const b = connectFake(nsp, "b");
    nsp.adapter.broadcast({ type: 2, data: ["m"], nsp: "/" } as never, { rooms: new Set(["limbo"]), except: new Set() });
    return state(io, [a, b]);
  });
});

test("no leave-room listener, a delete-room listener that joins the leaving socket and starts listening to leave-room: disconnect leaves every room, later leaves are seen", async () => {
  await onBoth((io) => {
    const nsp = io.of("/");
    const events: unknown[] = [];
    const [a, b] = ["a", "b"].map((id) => connectFake(nsp, id));
    a.join(["solo", "shared", "last"]);
    b.join("shared");
    nsp.adapter.on("delete-room", (room: string) => {
      events.push(["delete-room", room]);
      if (room === "solo") {
        // Mid-disconnect: a room joined now is left too, and its leave is seen.
        nsp.adapter.addAll("a", new Set(["late"]));
        nsp.adapter.on("leave-room", (left: string, id: string) => events.push(["leave-room", left, id]));
      }
    });
    a.disconnect();
    b.leave("shared");
    return { events, state: state(io, [a, b]) };
  });
});

test("a join-room listener that disconnects the socket mid-join: no membership is left on its freed slot", async () => {
  const io = new Server({ adapter: createAdapter({ workers: 1 }) });
  try {
    const nsp = io.of("/");
    const x = connectFake(nsp, "x");
    nsp.adapter.on("join-room", (room: string, id: string) => {
      if (room === "banned") x.disconnect();
    });
    nsp.adapter.addAll("x", new Set(["banned", "vip"]));
    const y = connectFake(nsp, "y");
    assert.equal(nsp.adapter.rooms.has("vip"), false);
    assert.deepEqual([...nsp.adapter.socketRooms("y")!], ["y"]);
    nsp.adapter.broadcast({ type: 2, data: ["m"], nsp: "/" } as never, { rooms: new Set(["vip", "banned"]), except: new Set() });
    assert.equal(y.received, 0);
  } finally {
    await closeDetached(io);
  }
});

test("a broadcast that throws while encoding does not change the order of the next fetchSockets", async () => {
  await onBoth((io) => {
    const nsp = io.of("/");
    const sockets = ["c", "b", "a"].map((id) => connectFake(nsp, id));
    for (const socket of sockets) socket.join("r");
    assert.throws(() => nsp.adapter.broadcast({ type: 2, data: ["m", 10n], nsp: "/" } as never, { rooms: new Set(), except: new Set() }));
    return nsp.adapter.fetchSockets({ rooms: new Set(["r"]) }).then((found: { id: string }[]) => found.map((s) => s.id));
  });
});
