/**
 * Issue 2, points 4 and 5: `socket.rooms` is synchronous and exact, a
 * disconnecting socket still sees its rooms and then leaves all of them, and
 * the room events (`create-room`, `delete-room`, `join-room`, `leave-room`)
 * come with the same arguments in the same order as from socket.io's
 * in-memory adapter.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Server, Socket } from "socket.io";
import { io as ioc, type Socket as ClientSocket } from "socket.io-client";
import {
  ALL_VARIANTS,
  assertPathTaken,
  IdNames,
  IN_MEMORY,
  once,
  recordReceipts,
  serverSocketOf,
  settle,
  SHARDED_VARIANTS,
  withServer,
  type Variant,
} from "./helpers";

const N42 = 42 as unknown as string;

/** Waits until the server-side socket of `client` has fired "disconnect". */
function serverDisconnect(io: Server, client: ClientSocket): Promise<unknown[]> {
  return once(serverSocketOf(io, client), "disconnect");
}

for (const variant of ALL_VARIANTS) {
  describe(`socket.rooms and disconnect [${variant.name}]`, () => {
    test("socket.rooms is exact right after each join and leave", async () => {
      await withServer(variant, async ({ io, connect }) => {
        const [client] = await connect(1);
        const socket = serverSocketOf(io, client);
        const id = socket.id;
        const steps: [string, () => void, unknown[]][] = [
          ["connected", () => {}, [id]],
          ["join a", () => socket.join("a"), [id, "a"]],
          ["join [b, c]", () => socket.join(["b", "c"]), [id, "a", "b", "c"]],
          ["join a again", () => socket.join("a"), [id, "a", "b", "c"]],
          ["leave b", () => socket.leave("b"), [id, "a", "c"]],
          ["leave unknown", () => socket.leave("zzz"), [id, "a", "c"]],
          ["join b again (goes last)", () => socket.join("b"), [id, "a", "c", "b"]],
          ["join [] (nothing)", () => socket.join([]), [id, "a", "c", "b"]],
          ["join 42", () => socket.join(N42), [id, "a", "c", "b", 42]],
          ["leave own id", () => socket.leave(id), ["a", "c", "b", 42]],
          ["join own id again", () => socket.join(id), ["a", "c", "b", 42, id]],
          ["leave a, c, b, 42", () => ["a", "c", "b", N42].forEach((room) => socket.leave(room)), [id]],
        ];
        for (const [label, act, rooms] of steps) {
          act();
          assert.deepEqual([...socket.rooms], rooms, label);
          assert.equal(socket.rooms.size, rooms.length, label);
          for (const room of rooms) assert.ok(socket.rooms.has(room as string), `${label}: has ${String(room)}`);
          if (!rooms.includes("b")) assert.equal(socket.rooms.has("b"), false, label);
          assert.deepEqual([...(io.of("/").adapter.sids.get(id) ?? [])], rooms, `${label}: adapter.sids`);
        }
      });
    });

    for (const how of ["client disconnect", "server disconnect(true)"] as const) {
      test(`on ${how}: 'disconnecting' still sees the rooms, then the socket leaves them all and lonely rooms are deleted`, async () => {
        await withServer(variant, async ({ io, connect }) => {
          const clients = await connect(3);
          const s = clients.map((client) => serverSocketOf(io, client));
          const ids = s.map((socket) => socket.id);
          const receipts = recordReceipts(clients, "m");
          s[0].join(["shared", "solo", N42]);
          s[1].join("shared");
          s[2].join(N42);

          let roomsWhileDisconnecting: unknown[] | undefined;
          let roomsAtDisconnect: unknown[] | undefined;
          s[0].on("disconnecting", () => {
            roomsWhileDisconnecting = [...s[0].rooms];
            // The common pattern: tell the rooms one is leaving.
            s[0].to([...s[0].rooms]).emit("m", "bye");
          });
          s[0].on("disconnect", () => {
            roomsAtDisconnect = [...s[0].rooms];
          });
          const gone = serverDisconnect(io, clients[0]);
          if (how === "client disconnect") clients[0].disconnect();
          else s[0].disconnect(true);
          await gone;

          assert.deepEqual(roomsWhileDisconnecting, [ids[0], "shared", "solo", 42]);
          assert.deepEqual(roomsAtDisconnect, []);
          const adapter = io.of("/").adapter;
          assert.equal(adapter.rooms.has(ids[0]), false, "own-id room is gone");
          assert.equal(adapter.rooms.has("solo"), false, "a room it was alone in is deleted");
          assert.equal(adapter.rooms.get("shared")?.size, 1);
          assert.equal(adapter.rooms.get("shared")?.has(ids[0]), false);
          assert.equal(adapter.rooms.get(N42)?.size, 1);
          assert.equal(adapter.sids.has(ids[0]), false);
          assert.deepEqual([...adapter.rooms.keys()].sort(), [ids[1], ids[2], "shared", 42].sort());
          assert.equal(adapter.sids.size, 2);

          // It no longer receives anything, and the others still do.
          io.emit("m", "after");
          await settle(io, clients.slice(1));
          assert.deepEqual(
            clients.map((client) => receipts.get(client)!.map((args) => args[0])),
            [[], ["bye", "after"], ["bye", "after"]],
          );
        });
      });
    }

    test("io.close() disconnects sockets with their rooms visible in 'disconnecting'", async () => {
      const seen: unknown[][] = [];
      let ids: string[] = [];
      await withServer(variant, async ({ io, connect }) => {
        const clients = await connect(2);
        const s = clients.map((client) => serverSocketOf(io, client));
        ids = s.map((socket) => socket.id);
        s[0].join("x");
        s[1].join(["x", "y"]);
        for (const socket of s) socket.on("disconnecting", () => seen.push([...socket.rooms]));
      });
      assert.deepEqual(seen, [
        [ids[0], "x"],
        [ids[1], "x", "y"],
      ]);
    });
  });
}

for (const variant of ALL_VARIANTS) {
  describe(`operations that select sockets [${variant.name}]`, () => {
    test("socketsJoin, socketsLeave, fetchSockets, allSockets, emitWithAck and disconnectSockets select the right sockets", async () => {
      await withServer(variant, async ({ io, connect }) => {
        const names = new IdNames();
        io.use((socket, next) => {
          names.name(socket.id);
          next();
        });
        const clients: ClientSocket[] = [];
        for (let i = 0; i < 5; i++) clients.push(...(await connect(1)));
        for (const client of clients) client.on("ask", (question: string, reply: (answer: string) => void) => reply(`${question}:${names.name(client.id!)}`));
        const s = clients.map((client) => serverSocketOf(io, client));
        s[0].join(["r", "q"]);
        s[1].join("r");
        s[2].join("q");
        s[3].join(["r", "x"]);
        const sortedNames = (ids: Iterable<string>) => [...ids].map((id) => names.name(id)).sort();

        io.in("r").except("x").socketsJoin(["joined", "j2"]);
        assert.deepEqual(sortedNames(io.of("/").adapter.rooms.get("joined") ?? []), ["S0", "S1"]);
        assert.deepEqual([...s[1].rooms].slice(1), ["r", "joined", "j2"]);
        io.in("j2").socketsLeave(["j2", "r"]);
        assert.equal(io.of("/").adapter.rooms.has("j2"), false, "emptied room deleted");
        assert.deepEqual(sortedNames(io.of("/").adapter.rooms.get("r") ?? []), ["S3"]);
        io.except(["q", "x"]).socketsJoin("rest");
        assert.deepEqual(sortedNames(io.of("/").adapter.rooms.get("rest") ?? []), ["S1", "S4"]);

        assert.deepEqual(sortedNames((await io.in(["q", "rest"]).fetchSockets()).map((socket) => socket.id)), ["S0", "S1", "S2", "S4"]);
        assert.deepEqual(sortedNames((await io.except("q").fetchSockets()).map((socket) => socket.id)), ["S1", "S3", "S4"]);
        assert.deepEqual(sortedNames(await io.in("joined").allSockets()), ["S0", "S1"]);
        assert.deepEqual(sortedNames(await io.to("nope").allSockets()), []);
        assert.deepEqual(sortedNames(await io.allSockets()), ["S0", "S1", "S2", "S3", "S4"]);
        const fetched = await io.in("q").fetchSockets();
        for (const remote of fetched) remote.join("via-fetched");
        assert.deepEqual(sortedNames(io.of("/").adapter.rooms.get("via-fetched") ?? []), ["S0", "S2"]);

        const answers = await io.to("q").timeout(10_000).emitWithAck("ask", "who");
        assert.deepEqual([...answers].sort(), ["who:S0", "who:S2"]);
        const none = await io.to("nope").timeout(10_000).emitWithAck("ask", "nobody");
        assert.deepEqual(none, []);

        const disconnected = clients.map((client) => new Promise<string>((resolve) => client.once("disconnect", (reason) => resolve(reason))));
        io.in("rest").disconnectSockets(true);
        assert.deepEqual(await Promise.all([disconnected[1], disconnected[4]]), ["io server disconnect", "io server disconnect"]);
        assert.equal(io.of("/").adapter.rooms.has("rest"), false);
        assert.deepEqual(sortedNames(await io.allSockets()), ["S0", "S2", "S3"]);
        assert.deepEqual(sortedNames(io.of("/").adapter.sids.keys()), ["S0", "S2", "S3"]);
        assertPathTaken(io, variant);
      });
    });

    test("rooms joined in a middleware come before the own-id room; a rejected connection leaves no trace", async () => {
      await withServer(variant, async ({ io, connect, port }) => {
        io.use((socket, next) => {
          socket.join(["from-middleware", "shared"]);
          next();
        });
        const guarded = io.of("/guarded");
        let rejectedId = "";
        guarded.use((socket, next) => {
          socket.join(["doomed", "shared-guarded"]);
          rejectedId = socket.id;
          next(new Error("no entry"));
        });
        const [client] = await connect(1);
        const socket = serverSocketOf(io, client);
        assert.deepEqual([...socket.rooms], ["from-middleware", "shared", socket.id]);
        const refused = ioc(`http://127.0.0.1:${port}/guarded`, { transports: ["websocket"], forceNew: true, reconnection: false });
        try {
          const [err] = await once<[Error]>(refused, "connect_error");
          assert.equal(err.message, "no entry");
        } finally {
          refused.disconnect();
        }
        assert.ok(rejectedId);
        const adapter = guarded.adapter;
        assert.equal(adapter.rooms.has("doomed"), false);
        assert.equal(adapter.rooms.has("shared-guarded"), false);
        assert.equal(adapter.sids.has(rejectedId), false);
        assert.equal(adapter.rooms.size, 0);
        assert.equal(adapter.sids.size, 0);
      });
    });
  });
}

/** One scenario of joins, leaves and disconnects, logged as room events with ids named S0, S1... */
async function roomEventsScenario(variant: Variant): Promise<unknown[][]> {
  return withServer(variant, async ({ io, connect }) => {
    const adapter = io.of("/").adapter;
    const names = new IdNames();
    const log: unknown[][] = [];
    adapter.on("create-room", (room) => log.push(["create-room", names.room(room)]));
    adapter.on("delete-room", (room) => log.push(["delete-room", names.room(room)]));
    adapter.on("join-room", (room, id) => log.push(["join-room", names.room(room), names.name(id)]));
    adapter.on("leave-room", (room, id) => log.push(["leave-room", names.room(room), names.name(id)]));
    // Name each socket as it connects, before its own-room events are logged.
    io.on("connection", () => {});
    io.use((socket, next) => {
      names.name(socket.id);
      next();
    });

    const clients: ClientSocket[] = [];
    for (let i = 0; i < 4; i++) clients.push(...(await connect(1)));
    const s: Socket[] = clients.map((client) => serverSocketOf(io, client));
    log.push(["-- joins"]);
    s[0].join("a");
    s[1].join(["a", "b"]);
    s[0].join("a");
    s[2].join(["b", N42, "42"]);
    s[3].join(s[0].id);
    log.push(["-- leaves"]);
    s[1].leave("a");
    s[1].leave("zzz");
    s[1].leave("a");
    s[0].leave("a");
    s[3].leave(s[3].id);
    log.push(["-- disconnect S2"]);
    let gone = serverDisconnect(io, clients[2]);
    clients[2].disconnect();
    await gone;
    log.push(["-- socketsJoin / socketsLeave on one socket"]);
    io.in(s[1].id).socketsJoin(["z", "b"]);
    io.in(s[1].id).socketsLeave("b");
    log.push(["-- disconnect S0 (its room still has S3)"]);
    gone = serverDisconnect(io, clients[0]);
    s[0].disconnect(true);
    await gone;
    log.push(["-- rooms left", ...[...adapter.rooms.keys()].map((room) => names.room(room))]);
    return log;
  });
}

/** socketsJoin/socketsLeave/fetchSockets on several sockets at once: the order sockets are visited in. */
async function multiSocketOrderScenario(variant: Variant): Promise<unknown[][]> {
  return withServer(variant, async ({ io, connect }) => {
    const adapter = io.of("/").adapter;
    const names = new IdNames();
    const log: unknown[][] = [];
    io.use((socket, next) => {
      names.name(socket.id);
      next();
    });
    // Churn first, so that slots are reused: S1 leaves and S4 takes its place.
    const clients: ClientSocket[] = [];
    for (let i = 0; i < 4; i++) clients.push(...(await connect(1)));
    const gone = serverDisconnect(io, clients[1]);
    clients[1].disconnect();
    await gone;
    clients.push(...(await connect(1)));
    const alive = [0, 2, 3, 4].map((i) => serverSocketOf(io, clients[i]));
    alive[3].join("r");
    alive[0].join("r");
    alive[2].join("r");
    adapter.on("join-room", (room, id) => log.push(["join-room", names.room(room), names.name(id)]));
    adapter.on("leave-room", (room, id) => log.push(["leave-room", names.room(room), names.name(id)]));
    io.socketsJoin("everyone");
    io.in("r").socketsJoin("from-r");
    io.in("r").socketsLeave("from-r");
    log.push(["fetchSockets", ...(await io.fetchSockets()).map((socket) => names.name(socket.id))]);
    log.push(["fetchSockets r", ...(await io.in("r").fetchSockets()).map((socket) => names.name(socket.id))]);
    return log;
  });
}

describe("room events", () => {
  let reference: Promise<unknown[][]> | undefined;
  const referenceLog = () => (reference ??= roomEventsScenario(IN_MEMORY));

  test("the in-memory reference log has the expected shape (so the comparisons below mean something)", async () => {
    const log = await referenceLog();
    const text = JSON.stringify(log);
    for (const expected of [
      ["create-room", "S0"],
      ["join-room", "S0", "S0"],
      ["create-room", 42],
      ["create-room", "42"],
      ["join-room", "S0", "S3"],
      ["delete-room", "a"],
      ["leave-room", "S3", "S3"],
      ["delete-room", "S3"],
      ["leave-room", "S2", "S2"],
      ["delete-room", 42],
      ["create-room", "z"],
    ]) {
      assert.ok(text.includes(JSON.stringify(expected)), `reference log should contain ${JSON.stringify(expected)}: ${text}`);
    }
    assert.ok(log.length > 40, `reference log too short: ${log.length}`);
  });

  for (const variant of SHARDED_VARIANTS) {
    test(`create-room, delete-room, join-room, leave-room: same events, arguments and order as in-memory [${variant.name}]`, async () => {
      const [expected, actual] = [await referenceLog(), await roomEventsScenario(variant)];
      assert.deepEqual(actual, expected);
    });
  }

  // One test for one behaviour, run on every sharded variant so the message shows which ones differ.
  test("socketsJoin/socketsLeave/fetchSockets over several sockets visit them in the in-memory order (every sharded variant)", async () => {
    const expected = await multiSocketOrderScenario(IN_MEMORY);
    const actual: Record<string, unknown[][]> = {};
    for (const variant of SHARDED_VARIANTS) actual[variant.name] = await multiSocketOrderScenario(variant);
    const unordered = (log: unknown[][]) => log.map((entry) => JSON.stringify(entry.map(String).sort())).sort();
    for (const variant of SHARDED_VARIANTS) {
      // Membership is right in every variant: same events and members, in any order.
      assert.deepEqual(unordered(actual[variant.name]), unordered(expected), variant.name);
    }
    assert.deepEqual(actual, Object.fromEntries(SHARDED_VARIANTS.map((variant) => [variant.name, expected])));
  });
});
