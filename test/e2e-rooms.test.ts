/**
 * Issue 2, points 1 and 2: joining and leaving rooms, the broadcast
 * operators (to/in/except, socket.to, socket.broadcast, union of rooms), room
 * names compared as Map keys, and private messages through each socket's own
 * room. Every scenario runs on socket.io's in-memory adapter (which proves the
 * expectations are socket.io's semantics) and on each sharded variant, main
 * thread path and worker path.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ALL_VARIANTS,
  assertPathTaken,
  recordReceipts,
  serverSocketOf,
  settle,
  withServer,
  type Variant,
} from "./helpers";

/** Emits labelled broadcasts and returns, per client index, the labels it received in order. */
async function roomsScenario(variant: Variant): Promise<string[][]> {
  return withServer(variant, async ({ io, connect }) => {
    const clients = await connect(6);
    const s = clients.map((client) => serverSocketOf(io, client));
    const receipts = recordReceipts(clients, "m");

    s[0].join("a");
    s[1].join(["a", "b"]);
    s[2].join("b");
    s[3].join(["c"]);
    // s[4] joins nothing but its own room.
    s[5].join(["a", "b", "c"]);

    io.to("a").emit("m", "to-a");
    io.in("b").emit("m", "in-b");
    io.to(["a", "b"]).emit("m", "union-ab");
    io.to("a").to("b").to("c").emit("m", "chain-abc");
    io.in(["a"]).in("a").emit("m", "same-room-twice");
    io.except("a").emit("m", "except-a");
    io.to(["b", "c"]).except("a").emit("m", "bc-except-a");
    io.to("b").except(["a", "c"]).emit("m", "b-except-ac");
    io.except(["a", "b", "c"]).emit("m", "except-abc");
    io.except("a").except("c").emit("m", "except-a-except-c");
    s[1].to("a").emit("m", "s1-to-a");
    s[1].broadcast.emit("m", "s1-broadcast");
    s[5].to(["a", "c"]).emit("m", "s5-to-ac");
    s[5].in("c").emit("m", "s5-in-c");
    s[2].broadcast.except("a").emit("m", "s2-broadcast-except-a");
    io.emit("m", "everyone");
    io.sockets.emit("m", "io.sockets");
    io.of("/").to("c").emit("m", "of-root-to-c");
    io.to("nope").emit("m", "unknown-room");
    io.to(["nope", "c"]).emit("m", "unknown-and-c");
    io.except("nope").emit("m", "except-unknown");
    io.except(s[0].id).emit("m", "except-s0-id");

    s[5].leave("a");
    io.to("a").emit("m", "a-after-s5-left");
    s[1].leave("b");
    io.to("b").emit("m", "b-after-s1-left");
    s[4].join("a");
    io.to("a").emit("m", "a-after-s4-joined");
    s[0].leave("a");
    s[1].leave("a");
    s[4].leave("a");
    io.to("a").emit("m", "a-emptied");
    io.except("a").emit("m", "except-emptied-a");

    await settle(io, clients);
    assertPathTaken(io, variant);
    return clients.map((client) => receipts.get(client)!.map((args) => args[0] as string));
  });
}

const EXPECTED_ROOMS: Record<string, number[]> = {
  "to-a": [0, 1, 5],
  "in-b": [1, 2, 5],
  "union-ab": [0, 1, 2, 5],
  "chain-abc": [0, 1, 2, 3, 5],
  "same-room-twice": [0, 1, 5],
  "except-a": [2, 3, 4],
  "bc-except-a": [2, 3],
  "b-except-ac": [2],
  "except-abc": [4],
  "except-a-except-c": [2, 4],
  "s1-to-a": [0, 5],
  "s1-broadcast": [0, 2, 3, 4, 5],
  "s5-to-ac": [0, 1, 3],
  "s5-in-c": [3],
  "s2-broadcast-except-a": [3, 4],
  everyone: [0, 1, 2, 3, 4, 5],
  "io.sockets": [0, 1, 2, 3, 4, 5],
  "of-root-to-c": [3, 5],
  "unknown-room": [],
  "unknown-and-c": [3, 5],
  "except-unknown": [0, 1, 2, 3, 4, 5],
  "except-s0-id": [1, 2, 3, 4, 5],
  "a-after-s5-left": [0, 1],
  "b-after-s1-left": [2, 5],
  "a-after-s4-joined": [0, 1, 4],
  "a-emptied": [],
  "except-emptied-a": [0, 1, 2, 3, 4, 5],
};

/** Per client, the labels it should get, in emission order. */
function expectedPerClient(expected: Record<string, number[]>, clients: number): string[][] {
  const out: string[][] = Array.from({ length: clients }, () => []);
  for (const [label, recipients] of Object.entries(expected)) for (const i of recipients) out[i].push(label);
  return out;
}

// socket.io types rooms as strings, but the in-memory adapter keys them in a
// Map, so a number is a distinct room at run time.
const N42 = 42 as unknown as string;
const N0 = 0 as unknown as string;

/** Room names as Map keys: 42 is not "42", 0 is not "0". */
async function roomKeysScenario(variant: Variant): Promise<{ received: string[][]; facts: unknown[] }> {
  return withServer(variant, async ({ io, connect }) => {
    const clients = await connect(4);
    const s = clients.map((client) => serverSocketOf(io, client));
    const receipts = recordReceipts(clients, "m");
    const adapter = io.of("/").adapter;

    s[0].join(N42);
    s[1].join("42");
    s[2].join([N0, "0"]);
    s[3].join([N42, "42"]);

    io.to(N42).emit("m", "to-number-42");
    io.to("42").emit("m", "to-string-42");
    io.to([N42, "42"]).emit("m", "to-both-42");
    io.to(N0).emit("m", "to-number-0");
    io.to("0").emit("m", "to-string-0");
    io.except(N42).emit("m", "except-number-42");
    io.except("42").emit("m", "except-string-42");
    s[0].to("42").emit("m", "s0-to-string-42");

    const facts = [
      s[0].rooms.has(N42),
      s[0].rooms.has("42"),
      s[1].rooms.has(N42),
      s[1].rooms.has("42"),
      adapter.rooms.has(N42),
      adapter.rooms.has("42"),
      adapter.rooms.get(N42)?.size,
      adapter.rooms.get("42")?.size,
      adapter.rooms.get(N0)?.size,
      adapter.rooms.get("0")?.size,
      [...s[3].rooms].slice(1).map((room) => typeof room),
    ];
    s[3].leave(N42);
    facts.push(adapter.rooms.get(N42)?.size, adapter.rooms.get("42")?.size, s[3].rooms.has("42"), s[3].rooms.has(N42));
    io.to(N42).emit("m", "number-42-after-s3-left-it");

    await settle(io, clients);
    assertPathTaken(io, variant);
    return { received: clients.map((client) => receipts.get(client)!.map((args) => args[0] as string)), facts };
  });
}

const EXPECTED_KEYS: Record<string, number[]> = {
  "to-number-42": [0, 3],
  "to-string-42": [1, 3],
  "to-both-42": [0, 1, 3],
  "to-number-0": [2],
  "to-string-0": [2],
  "except-number-42": [1, 2],
  "except-string-42": [0, 2],
  "s0-to-string-42": [1, 3],
  "number-42-after-s3-left-it": [0],
};

/** Private messages: each socket is alone in the room named by its id. */
async function privateScenario(variant: Variant): Promise<{ received: string[][]; facts: unknown[] }> {
  return withServer(variant, async ({ io, connect }) => {
    const clients = await connect(4);
    const s = clients.map((client) => serverSocketOf(io, client));
    const receipts = recordReceipts(clients, "m");
    const adapter = io.of("/").adapter;

    const facts: unknown[] = s.map((socket) => [
      socket.rooms.has(socket.id),
      socket.rooms.size,
      adapter.rooms.get(socket.id)?.size,
      adapter.rooms.get(socket.id)?.has(socket.id),
    ]);

    io.to(s[1].id).emit("m", "io-to-s1");
    s[0].to(s[2].id).emit("m", "s0-to-s2");
    s[0].to(s[0].id).emit("m", "s0-to-itself");
    io.to([s[1].id, s[3].id]).emit("m", "io-to-s1-s3");
    io.in(s[3].id).except(s[3].id).emit("m", "s3-except-s3");
    s[2].join("group");
    s[3].join("group");
    io.to(s[0].id).to("group").emit("m", "s0-and-group");
    s[3].to(s[1].id).to("group").emit("m", "s3-to-s1-and-group");
    s[1].leave(s[1].id);
    io.to(s[1].id).emit("m", "s1-left-own-room");
    io.emit("m", "everyone-after-s1-left-own-room");
    facts.push(s[1].rooms.size, adapter.rooms.has(s[1].id));

    await settle(io, clients);
    assertPathTaken(io, variant);
    return { received: clients.map((client) => receipts.get(client)!.map((args) => args[0] as string)), facts };
  });
}

const EXPECTED_PRIVATE: Record<string, number[]> = {
  "io-to-s1": [1],
  "s0-to-s2": [2],
  "s0-to-itself": [],
  "io-to-s1-s3": [1, 3],
  "s3-except-s3": [],
  "s0-and-group": [0, 2, 3],
  "s3-to-s1-and-group": [1, 2],
  "s1-left-own-room": [],
  "everyone-after-s1-left-own-room": [0, 1, 2, 3],
};

for (const variant of ALL_VARIANTS) {
  describe(`rooms and broadcast operators [${variant.name}]`, () => {
    test("join/leave of a room or an array, to/in, unions once each, except, socket.to and socket.broadcast exclude the sender", async () => {
      const received = await roomsScenario(variant);
      assert.deepEqual(received, expectedPerClient(EXPECTED_ROOMS, 6));
    });

    test("room names compare as Map keys: 42 is not '42'", async () => {
      const { received, facts } = await roomKeysScenario(variant);
      assert.deepEqual(received, expectedPerClient(EXPECTED_KEYS, 4));
      assert.deepEqual(facts, [
        true, false, false, true,
        true, true, 2, 2, 1, 1,
        ["number", "string"],
        1, 2, true, false,
      ]);
    });

    test("private messages through each socket's own-id room: io.to(id), socket.to(otherId)", async () => {
      const { received, facts } = await privateScenario(variant);
      assert.deepEqual(received, expectedPerClient(EXPECTED_PRIVATE, 4));
      assert.deepEqual(facts, [[true, 1, 1, true], [true, 1, 1, true], [true, 1, 1, true], [true, 1, 1, true], 0, false]);
    });
  });
}
