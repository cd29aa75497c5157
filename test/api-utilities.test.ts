/**
 * The utility methods of the public API with rooms and except filters
 * (fetchSockets, socketsJoin, socketsLeave, disconnectSockets, allSockets,
 * adapter.sockets), serverSideEmit and serverCount, compared between
 * socket.io's in-memory adapter and the sharded adapter; and the same
 * operations over a room of 100,000 (fake) sockets.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import type { Server, Socket } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { acrossVariants, assertOffloaded, captureWarnings, Names, until, withApiServer, type ApiVariant } from "./api-helpers";
import { serverSocketOf } from "./helpers";

/** Rooms other than each socket's own id room, as sorted names -> sorted member names. */
function roomTable(io: Server, names: Names, namespace = "/"): Record<string, string[]> {
  const table: Record<string, string[]> = {};
  for (const [room, members] of io.of(namespace).adapter.rooms) {
    if (members.size === 1 && members.has(room as string)) continue; // a socket's own room
    table[String(room)] = names.sorted(members);
  }
  return Object.fromEntries(Object.entries(table).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** id -> its rooms (own room shown as "self"), sorted by name. */
function socketRooms(sockets: Iterable<{ id: string; rooms: Set<string> }>, names: Names): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const socket of sockets) {
    out[names.of(socket.id)] = [...socket.rooms].map((room) => (room === socket.id ? "self" : String(names.room(room)))).sort();
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

test("utilities: fetchSockets, socketsJoin, socketsLeave, allSockets, adapter.sockets with rooms and except", async (t) => {
  await acrossVariants(
    t,
    (variant: ApiVariant) =>
      withApiServer(variant, async (server) => {
        const { io } = server;
        const clients = await server.connect(6);
        const names = new Names("c", clients);
        const sockets = clients.map((client) => serverSocketOf(io, client));
        sockets.forEach((socket, i) => (socket.data = { i }));
        // r = c0..c3, x = c2, z = c4; c5 in nothing but its own room.
        for (const socket of sockets.slice(0, 4)) socket.join("r");
        sockets[2].join("x");
        sockets[4].join("z");
        const steps: Record<string, unknown> = {};
        const fetch = async (label: string, found: Promise<{ id: string; rooms: Set<string>; data: unknown }[]>) => {
          const list = await found;
          steps[label] = {
            rooms: socketRooms(list, names),
            data: list.map((s) => s.data).sort((a, b) => (a as { i: number }).i - (b as { i: number }).i),
            // The order of the array: the in-memory adapter's (rooms in turn, each in join order).
            order: list.map((s) => names.of(s.id)),
          };
        };
        await fetch("io.fetchSockets", io.fetchSockets());
        await fetch("io.in(r).fetchSockets", io.in("r").fetchSockets());
        await fetch("io.in(r).except(x).fetchSockets", io.in("r").except("x").fetchSockets());
        await fetch("io.in([r, z]).fetchSockets", io.in(["r", "z"]).fetchSockets());
        await fetch("io.except([r, z]).fetchSockets", io.except(["r", "z"]).fetchSockets());
        await fetch("io.in(c1).fetchSockets", io.in(sockets[1].id).fetchSockets());
        await fetch("io.in(nothing).fetchSockets", io.in("nothing").fetchSockets());
        await fetch("socket.to(r).fetchSockets", sockets[0].to("r").fetchSockets());

        const allSockets = async (label: string, found: Promise<Set<string>>) => {
          steps[label] = names.sorted(await found);
        };
        await allSockets("io.allSockets", io.allSockets());
        await allSockets("io.in(r).allSockets", io.in("r").allSockets());
        await allSockets("io.in([x, z]).allSockets", io.in(["x", "z"]).allSockets());
        await allSockets("adapter.sockets({r})", io.of("/").adapter.sockets(new Set(["r"])));
        await allSockets("adapter.sockets({})", io.of("/").adapter.sockets(new Set()));
        await allSockets("adapter.sockets({x, nothing})", io.of("/").adapter.sockets(new Set(["x", "nothing"])));

        io.in("r").except("x").socketsJoin("y");
        steps["after io.in(r).except(x).socketsJoin(y)"] = roomTable(io, names);
        io.in("y").socketsJoin(["y2", "y3"]);
        steps["after io.in(y).socketsJoin([y2, y3])"] = roomTable(io, names);
        io.except(["r", "z"]).socketsJoin("y");
        steps["after io.except([r, z]).socketsJoin(y)"] = roomTable(io, names);
        io.in("r").except("x").socketsLeave("r");
        steps["after io.in(r).except(x).socketsLeave(r)"] = roomTable(io, names);
        io.socketsLeave(["y", "y3"]);
        steps["after io.socketsLeave([y, y3])"] = roomTable(io, names);
        io.in(sockets[0].id).socketsJoin("solo");
        steps["after io.in(c0).socketsJoin(solo)"] = roomTable(io, names);
        steps["socket.rooms"] = socketRooms(sockets, names);
        return steps;
      }),
    (steps) => {
      const all = { c0: ["r", "self"], c1: ["r", "self"], c2: ["r", "self", "x"], c3: ["r", "self"], c4: ["self", "z"], c5: ["self"] };
      const pick = (...keys: (keyof typeof all)[]) => Object.fromEntries(keys.map((k) => [k, all[k]]));
      const data = (...i: number[]) => i.map((n) => ({ i: n }));
      const orders = Object.fromEntries(Object.entries(steps).filter(([k]) => k.endsWith("fetchSockets")).map(([k, v]) => [k, (v as { order: string[] }).order]));
      assert.deepEqual(orders, {
        "io.fetchSockets": ["c0", "c1", "c2", "c3", "c4", "c5"],
        "io.in(r).fetchSockets": ["c0", "c1", "c2", "c3"],
        "io.in(r).except(x).fetchSockets": ["c0", "c1", "c3"],
        "io.in([r, z]).fetchSockets": ["c0", "c1", "c2", "c3", "c4"],
        "io.except([r, z]).fetchSockets": ["c5"],
        "io.in(c1).fetchSockets": ["c1"],
        "io.in(nothing).fetchSockets": [],
        "socket.to(r).fetchSockets": ["c1", "c2", "c3"],
      });
      for (const key of Object.keys(orders)) delete (steps[key] as { order?: unknown }).order;
      assert.deepEqual(steps["io.fetchSockets"], { rooms: all, data: data(0, 1, 2, 3, 4, 5) });
      assert.deepEqual(steps["io.in(r).fetchSockets"], { rooms: pick("c0", "c1", "c2", "c3"), data: data(0, 1, 2, 3) });
      assert.deepEqual(steps["io.in(r).except(x).fetchSockets"], { rooms: pick("c0", "c1", "c3"), data: data(0, 1, 3) });
      assert.deepEqual(steps["io.in([r, z]).fetchSockets"], { rooms: pick("c0", "c1", "c2", "c3", "c4"), data: data(0, 1, 2, 3, 4) });
      assert.deepEqual(steps["io.except([r, z]).fetchSockets"], { rooms: pick("c5"), data: data(5) });
      assert.deepEqual(steps["io.in(c1).fetchSockets"], { rooms: pick("c1"), data: data(1) });
      assert.deepEqual(steps["io.in(nothing).fetchSockets"], { rooms: {}, data: [] });
      assert.deepEqual(steps["socket.to(r).fetchSockets"], { rooms: pick("c1", "c2", "c3"), data: data(1, 2, 3) });
      assert.deepEqual(steps["io.allSockets"], ["c0", "c1", "c2", "c3", "c4", "c5"]);
      assert.deepEqual(steps["io.in(r).allSockets"], ["c0", "c1", "c2", "c3"]);
      assert.deepEqual(steps["io.in([x, z]).allSockets"], ["c2", "c4"]);
      assert.deepEqual(steps["adapter.sockets({r})"], ["c0", "c1", "c2", "c3"]);
      assert.deepEqual(steps["adapter.sockets({})"], ["c0", "c1", "c2", "c3", "c4", "c5"]);
      assert.deepEqual(steps["adapter.sockets({x, nothing})"], ["c2"]);
      assert.deepEqual(steps["after io.in(r).except(x).socketsJoin(y)"], { r: ["c0", "c1", "c2", "c3"], x: ["c2"], y: ["c0", "c1", "c3"], z: ["c4"] });
      assert.deepEqual(steps["after io.in(y).socketsJoin([y2, y3])"], {
        r: ["c0", "c1", "c2", "c3"],
        x: ["c2"],
        y: ["c0", "c1", "c3"],
        y2: ["c0", "c1", "c3"],
        y3: ["c0", "c1", "c3"],
        z: ["c4"],
      });
      assert.deepEqual(steps["after io.except([r, z]).socketsJoin(y)"], {
        r: ["c0", "c1", "c2", "c3"],
        x: ["c2"],
        y: ["c0", "c1", "c3", "c5"],
        y2: ["c0", "c1", "c3"],
        y3: ["c0", "c1", "c3"],
        z: ["c4"],
      });
      assert.deepEqual(steps["after io.in(r).except(x).socketsLeave(r)"], {
        r: ["c2"],
        x: ["c2"],
        y: ["c0", "c1", "c3", "c5"],
        y2: ["c0", "c1", "c3"],
        y3: ["c0", "c1", "c3"],
        z: ["c4"],
      });
      assert.deepEqual(steps["after io.socketsLeave([y, y3])"], { r: ["c2"], x: ["c2"], y2: ["c0", "c1", "c3"], z: ["c4"] });
      // "solo" has one member, but it is not that member's own room.
      assert.deepEqual(steps["after io.in(c0).socketsJoin(solo)"], { r: ["c2"], solo: ["c0"], x: ["c2"], y2: ["c0", "c1", "c3"], z: ["c4"] });
      assert.deepEqual(steps["socket.rooms"], {
        c0: ["self", "solo", "y2"],
        c1: ["self", "y2"],
        c2: ["r", "self", "x"],
        c3: ["self", "y2"],
        c4: ["self", "z"],
        c5: ["self"],
      });
    },
  );
});

/** The reason a client was given when the server disconnected it. */
function watchDisconnect(client: ClientSocket): { reason?: string } {
  const seen: { reason?: string } = {};
  client.on("disconnect", (reason) => {
    seen.reason = reason;
  });
  return seen;
}

/**
 * Right after disconnectSockets(): whether each server socket's underlying
 * connection is still open (disconnectSockets(true) closes it, false leaves
 * it to the client).
 */
function connectionStates(sockets: Socket[], names: Names): Record<string, string> {
  return Object.fromEntries(sockets.map((socket) => [names.of(socket.id), socket.conn.readyState]));
}

test("utilities: disconnectSockets(false) and disconnectSockets(true) with rooms and except", async (t) => {
  await acrossVariants(
    t,
    (variant: ApiVariant) =>
      withApiServer(variant, async (server) => {
        const { io } = server;
        const clients = await server.connect(6);
        const names = new Names("c", clients);
        const sockets = clients.map((client) => serverSocketOf(io, client));
        // r = c0..c3, x = c2, z = c4 and c5.
        for (const socket of sockets.slice(0, 4)) socket.join("r");
        sockets[2].join("x");
        sockets[4].join("z");
        sockets[5].join("z");
        const seen = clients.map(watchDisconnect);
        const serverReasons: Record<string, string> = {};
        sockets.forEach((socket) => socket.on("disconnect", (reason) => (serverReasons[names.of(socket.id)] = reason)));

        // Namespace-only disconnect of z except c5.
        io.in("z").except(sockets[5].id).disconnectSockets();
        // Close the connections of r except x.
        io.in("r").except("x").disconnectSockets(true);
        const connections = connectionStates(sockets, names);
        await until(() => seen.filter((s) => s.reason).length === 4, "4 clients disconnected");
        const afterFirst = {
          connections,
          connected: names.sorted(io.of("/").sockets.keys()),
          rooms: roomTable(io, names),
          client: Object.fromEntries(clients.map((c, i) => [`c${i}`, { ...seen[i], connected: c.connected }])),
          server: { ...serverReasons },
        };
        // Everyone left: c2 (r, x) and c5 (z).
        io.disconnectSockets(true);
        await until(() => seen.filter((s) => s.reason).length === 6, "every client disconnected");
        return {
          afterFirst,
          afterAll: { connected: io.of("/").sockets.size, rooms: roomTable(io, names), rooms2: io.of("/").adapter.rooms.size, sids: io.of("/").adapter.sids.size },
          server: serverReasons,
        };
      }),
    (observed) => {
      assert.deepEqual(observed.afterFirst.connected, ["c2", "c5"]);
      assert.deepEqual(observed.afterFirst.rooms, { r: ["c2"], x: ["c2"], z: ["c5"] });
      assert.deepEqual(observed.afterFirst.client, {
        c0: { reason: "io server disconnect", connected: false },
        c1: { reason: "io server disconnect", connected: false },
        c2: { connected: true },
        c3: { reason: "io server disconnect", connected: false },
        c4: { reason: "io server disconnect", connected: false },
        c5: { connected: true },
      });
      assert.deepEqual(observed.afterFirst.connections, { c0: "closed", c1: "closed", c2: "open", c3: "closed", c4: "open", c5: "open" });
      assert.deepEqual(observed.afterFirst.server, {
        c0: "server namespace disconnect",
        c1: "server namespace disconnect",
        c3: "server namespace disconnect",
        c4: "server namespace disconnect",
      });
      assert.deepEqual(observed.afterAll, { connected: 0, rooms: {}, rooms2: 0, sids: 0 });
    },
  );
});

test("utilities: serverSideEmit warns as the in-memory adapter does, serverCount() is 1", async (t) => {
  await acrossVariants(
    t,
    (variant: ApiVariant) =>
      withApiServer(variant, async (server) => {
        const { io } = server;
        io.of("/other");
        const { result, warnings } = await captureWarnings(async () => {
          const plain = io.serverSideEmit("x");
          const awaited = await io.serverSideEmit("x", 1, { a: 2 });
          const inNamespace = io.of("/other").serverSideEmit("y");
          // With an ack it never settles on a single server, as with the in-memory adapter.
          let settled = false;
          io.serverSideEmitWithAck("z").then(
            () => (settled = true),
            () => (settled = true),
          );
          await new Promise((resolve) => setImmediate(resolve));
          return { plain, awaited, inNamespace, settled };
        });
        let reserved: string | undefined;
        try {
          io.serverSideEmit("connect");
        } catch (err) {
          reserved = (err as Error).message;
        }
        return {
          ...result,
          warnings,
          reserved,
          serverCount: await io.of("/").adapter.serverCount(),
          otherServerCount: await io.of("/other").adapter.serverCount(),
        };
      }),
    (observed) => {
      const warning = ["this adapter does not support the serverSideEmit() functionality"];
      assert.deepEqual(observed, {
        plain: true,
        awaited: true,
        inNamespace: true,
        settled: false,
        warnings: [warning, warning, warning, warning],
        reserved: '"connect" is a reserved event name',
        serverCount: 1,
        otherServerCount: 1,
      });
    },
  );
});

// ---------------------------------------------------------------------------
// A room of 100,000 sockets, with fake sockets in io.of("/").sockets.
// ---------------------------------------------------------------------------

const FAKE_SOCKETS = 100_000;

/** What socket.io's Socket offers the adapter: an id, a client to write to, join/leave/disconnect, acks. */
class FakeSocket {
  readonly acks = new Map<number, unknown>();
  writes = 0;
  closedConnection: boolean | undefined;
  readonly client = { writeToEngine: () => void this.writes++ };

  constructor(
    readonly id: string,
    /** Set, as on a real Socket, so that io.fetchSockets() returns this object rather than a RemoteSocket. */
    readonly server: Server,
  ) {}

  private get io(): Server {
    return this.server;
  }

  private get adapter() {
    return this.io.of("/").adapter;
  }

  join(rooms: string | string[]): void {
    this.adapter.addAll(this.id, new Set(Array.isArray(rooms) ? rooms : [rooms]));
  }

  leave(room: string): void {
    this.adapter.del(this.id, room);
  }

  disconnect(close = false): void {
    this.closedConnection = close;
    this.adapter.delAll(this.id);
    this.io.of("/").sockets.delete(this.id);
  }

  /** What io.close() calls on each socket. */
  _onclose(): void {
    this.disconnect(false);
  }
}

/** A digest of a set of ids, plus its size, so two 100k-element results compare cheaply. */
/** A digest of a sequence of ids in its order (for orders that must match the in-memory adapter's). */
function orderDigest(ids: Iterable<string>): string {
  return createHash("sha256").update([...ids].join("\n")).digest("hex");
}

function digest(ids: Iterable<string>): { size: number; sha256: string } {
  const sorted = [...ids].sort();
  return { size: sorted.length, sha256: createHash("sha256").update(sorted.join("\n")).digest("hex") };
}

/** What every adapter must observe in the scenario below, computed once from the room definitions. */
const expectedOverFakes = (() => {
  let cached: Record<string, unknown> | undefined;
  return () => (cached ??= computeExpectedOverFakes());
})();

function computeExpectedOverFakes(): Record<string, unknown> {
  const ids = (predicate: (i: number) => boolean) => {
    const list: string[] = [];
    for (let i = 0; i < FAKE_SOCKETS; i++) if (predicate(i)) list.push(`s${i}`);
    return list;
  };
  const outsiders = Array.from({ length: 50 }, (_, i) => `outsider${i}`);
  const notEx = (i: number) => i % 7 !== 0;
  const third = (i: number) => i % 3 === 0;
  const bigExceptEx = digest(ids(notEx));
  const closed = ids((i) => notEx(i) && !third(i));
  const exIds = ids((i) => !notEx(i));
  const left = [...exIds, ...outsiders];
  return {
    "fetchSockets(big except ex)": bigExceptEx,
    "adapter.fetchSockets(big, third except ex)": bigExceptEx,
    "adapter.sockets({big})": digest(ids(() => true)),
    // allSockets() is adapter.sockets(rooms): socket.io ignores except there.
    "allSockets(everyone except big)": digest([...ids(() => true), ...outsiders]),
    "broadcast writes": { receivers: bigExceptEx, moreThanOnce: 0 },
    "broadcastWithAck(third except ex)": {
      clientCount: ids((i) => third(i) && notEx(i)).length,
      registered: digest(ids((i) => third(i) && notEx(i))),
    },
    "socketsJoin(joined)": bigExceptEx,
    // in big's join order, as the in-memory adapter's
    "fetchSockets(big except ex) order": orderDigest(ids(notEx)),
    "socketsJoin(joined) member order": orderDigest(ids(notEx)),
    // Those in third and not in ex left "big".
    "socketsLeave(big) for third except ex": digest(ids((i) => !(third(i) && notEx(i)))),
    "disconnectSockets(true) big except ex, third": { closed: digest(closed), left: FAKE_SOCKETS + 50 - closed.length },
    "disconnectSockets(false) third except big": {
      notClosed: digest(ids((i) => notEx(i) && third(i))),
      left: digest(left),
      sids: left.length,
      // the own rooms of the sockets left, plus big, ex and third ("joined" emptied)
      rooms: left.length + 3,
      big: exIds.length,
      joined: 0,
      ex: exIds.length + 50,
      third: ids((i) => !notEx(i) && third(i)).length,
    },
  };
}

test(`utilities over a room of ${FAKE_SOCKETS} sockets with an except room`, async (t) => {
  await acrossVariants(
    t,
    (variant: ApiVariant) =>
      withApiServer(variant, async (server) => {
        const { io } = server;
        const nsp = io.of("/");
        const fakes: FakeSocket[] = [];
        for (let i = 0; i < FAKE_SOCKETS; i++) {
          const socket = new FakeSocket(`s${i}`, io);
          fakes.push(socket);
          nsp.sockets.set(socket.id, socket as unknown as Socket);
          const rooms = [socket.id, "big"];
          if (i % 7 === 0) rooms.push("ex");
          if (i % 3 === 0) rooms.push("third");
          socket.join(rooms);
        }
        // Sockets in "ex" only (not in "big") are not selected by rooms either way.
        for (let i = 0; i < 50; i++) {
          const socket = new FakeSocket(`outsider${i}`, io);
          fakes.push(socket);
          nsp.sockets.set(socket.id, socket as unknown as Socket);
          socket.join([socket.id, "ex"]);
        }
        const adapter = nsp.adapter;
        const out: Record<string, unknown> = {};

        const fetched = (await io.in("big").except("ex").fetchSockets()).map((s) => s.id);
        out["fetchSockets(big except ex)"] = digest(fetched);
        out["fetchSockets(big except ex) order"] = orderDigest(fetched);
        out["adapter.fetchSockets(big, third except ex)"] = digest(
          (await adapter.fetchSockets({ rooms: new Set(["big", "third"]), except: new Set(["ex"]) })).map((s) => s.id),
        );
        out["adapter.sockets({big})"] = digest(await adapter.sockets(new Set(["big"])));
        out["allSockets(everyone except big)"] = digest(await io.except("big").allSockets());

        io.in("big").except("ex").emit("hello", 1);
        out["broadcast writes"] = {
          receivers: digest(fakes.filter((s) => s.writes === 1).map((s) => s.id)),
          moreThanOnce: fakes.filter((s) => s.writes > 1).length,
        };

        let clientCount = -1;
        adapter.broadcastWithAck(
          { type: 2, data: ["ask"] } as never,
          { rooms: new Set(["third"]), except: new Set(["ex"]) },
          (count) => (clientCount = count),
          () => {},
        );
        out["broadcastWithAck(third except ex)"] = {
          clientCount,
          registered: digest(fakes.filter((s) => s.acks.size === 1).map((s) => s.id)),
        };

        io.in("big").except("ex").socketsJoin("joined");
        out["socketsJoin(joined)"] = digest(adapter.rooms.get("joined") ?? []);
        out["socketsJoin(joined) member order"] = orderDigest(adapter.rooms.get("joined") ?? []);
        io.in("third").except("ex").socketsLeave("big");
        out["socketsLeave(big) for third except ex"] = digest(adapter.rooms.get("big") ?? []);
        // "big" now holds the ex sockets and the non-third ones.
        io.in("big").except(["ex", "third"]).disconnectSockets(true);
        out["disconnectSockets(true) big except ex, third"] = {
          closed: digest(fakes.filter((s) => s.closedConnection === true).map((s) => s.id)),
          left: nsp.sockets.size,
        };
        io.in("third").except("big").disconnectSockets(false);
        out["disconnectSockets(false) third except big"] = {
          notClosed: digest(fakes.filter((s) => s.closedConnection === false).map((s) => s.id)),
          left: digest(nsp.sockets.keys()),
          sids: adapter.sids.size,
          rooms: adapter.rooms.size,
          big: adapter.rooms.get("big")?.size ?? 0,
          joined: adapter.rooms.get("joined")?.size ?? 0,
          ex: adapter.rooms.get("ex")?.size ?? 0,
          third: adapter.rooms.get("third")?.size ?? 0,
        };
        assertOffloaded(server, variant);
        // io.close() (in withApiServer) calls _onclose on what is left.
        return out;
      }),
    (out) => assert.deepEqual(out, expectedOverFakes()),
  );
});
