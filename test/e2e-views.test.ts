/**
 * Issue 2, point 6: `adapter.rooms`, `adapter.sids` and `socket.rooms` read
 * like socket.io's in-memory Maps and Sets (get/has/size/keys/values/entries/
 * forEach/for..of/spread, instanceof), and every write throws
 * ReadOnlyViewError, leaving membership as it was.
 *
 * The README documents one difference: a room's member set iterates shard by
 * shard. Member lists are therefore compared as sorted lists here; the order
 * of rooms, of sids and of each socket's rooms is compared exactly.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Server } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { ReadOnlyViewError, ShardedAdapterError } from "../lib/index";
import {
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

type Names = IdNames;
const sorted = (values: unknown[]) => [...values].sort((a, b) => String(a).localeCompare(String(b)));

/** Everything the read side of the views answers, with ids named and member lists sorted. */
function snapshot(io: Server, names: Names, sockets: { id: string; rooms: Set<string> }[]): Record<string, unknown> {
  const { rooms, sids } = io.of("/").adapter;
  const members = (set: Set<string> | undefined) => (set === undefined ? undefined : sorted([...set].map((id) => names.name(id))));
  const roomList = (set: Set<string> | undefined) => (set === undefined ? undefined : [...set].map((room) => names.room(room)));

  const forEachRooms: unknown[] = [];
  rooms.forEach((value, key, map) => forEachRooms.push([names.room(key), members(value), map === rooms]));
  const forOfRooms: unknown[] = [];
  for (const [key, value] of rooms) forOfRooms.push([names.room(key), members(value)]);
  const forEachSids: unknown[] = [];
  sids.forEach((value, key, map) => forEachSids.push([names.name(key), roomList(value), map === sids]));
  const forOfSids: unknown[] = [];
  for (const [key, value] of sids) forOfSids.push([names.name(key), roomList(value)]);

  const memberSetProbe: unknown[] = [];
  for (const room of ["a", "b", N42, "42"]) {
    const set = rooms.get(room);
    if (!set) {
      memberSetProbe.push([room, "absent"]);
      continue;
    }
    const viaForEach: unknown[] = [];
    set.forEach((value, key, same) => viaForEach.push([names.name(value), names.name(key), same === set]));
    memberSetProbe.push([
      room,
      set.size,
      sorted([...set.keys()].map((id) => names.name(id))),
      sorted([...set.values()].map((id) => names.name(id))),
      sorted([...set.entries()].map(([k, v]) => `${names.name(k)}=${names.name(v)}`)),
      sorted([...set].map((id) => names.name(id))),
      sorted(Array.from(set, (id) => names.name(id))),
      sorted(viaForEach.map((entry) => JSON.stringify(entry))),
      sockets.map((socket) => set.has(socket.id)),
      set.has("nobody"),
      set instanceof Set,
    ]);
  }

  return {
    roomsInstanceofMap: rooms instanceof Map,
    sidsInstanceofMap: sids instanceof Map,
    roomsSize: rooms.size,
    roomsKeys: [...rooms.keys()].map((room) => names.room(room)),
    roomsValues: [...rooms.values()].map((set) => members(set)),
    roomsEntries: [...rooms.entries()].map(([room, set]) => [names.room(room), members(set)]),
    roomsSpread: [...rooms].map(([room, set]) => [names.room(room), members(set)]),
    roomsArrayFrom: Array.from(rooms, ([room, set]) => [names.room(room), set.size]),
    roomsAsNewMap: [...new Map(rooms)].map(([room, set]) => [names.room(room), members(set)]),
    forEachRooms,
    forOfRooms,
    roomsHas: ["a", "b", "c", N42, "42", "gone", "never", ...sockets.map((s) => s.id)].map((room) => rooms.has(room)),
    roomsGetSize: ["a", "b", "c", N42, "42", "gone", "never", ...sockets.map((s) => s.id)].map((room) => rooms.get(room)?.size),
    roomsGetUnknown: rooms.get("never"),
    memberSetProbe,
    sidsSize: sids.size,
    sidsKeys: [...sids.keys()].map((id) => names.name(id)),
    sidsValues: [...sids.values()].map((set) => roomList(set)),
    sidsEntries: [...sids.entries()].map(([id, set]) => [names.name(id), roomList(set)]),
    sidsSpread: [...sids].map(([id, set]) => [names.name(id), roomList(set), set instanceof Set]),
    forEachSids,
    forOfSids,
    sidsHas: [...sockets.map((s) => s.id), "nobody"].map((id) => sids.has(id)),
    sidsGet: [...sockets.map((s) => s.id), "nobody"].map((id) => roomList(sids.get(id))),
    socketRooms: sockets.map((socket) => [roomList(socket.rooms), socket.rooms.size, socket.rooms instanceof Set, socket.rooms.has("a")]),
  };
}

/** A scenario with joins, leaves, a deleted room, a numeric room and a disconnected socket. */
async function viewsScenario(variant: Variant, body?: (io: Server, clients: ClientSocket[]) => Promise<void>): Promise<Record<string, unknown>> {
  return withServer(variant, async ({ io, connect }) => {
    const names = new IdNames();
    io.use((socket, next) => {
      names.name(socket.id);
      next();
    });
    const clients: ClientSocket[] = [];
    for (let i = 0; i < 6; i++) clients.push(...(await connect(1)));
    const s = clients.map((client) => serverSocketOf(io, client));
    s[0].join(["a", "b"]);
    s[1].join(["b", "gone"]);
    s[2].join(["c", N42]);
    s[3].join(["a", "42"]);
    s[4].join(["b", "a"]);
    s[5].join("a");
    s[1].leave("gone");
    s[1].leave("b");
    s[0].leave("a");
    s[0].join("a");
    const gone = once(s[5], "disconnect");
    clients[5].disconnect();
    await gone;
    const live = s.slice(0, 5);
    const first = snapshot(io, names, live);
    if (body) await body(io, clients.slice(0, 5));
    const second = snapshot(io, names, live);
    return { first, second };
  });
}

function assertReadOnlyError(fn: () => unknown, label: string): void {
  assert.throws(
    fn,
    (err: unknown) => {
      assert.ok(err instanceof ReadOnlyViewError, `${label}: ${String(err)}`);
      assert.ok(err instanceof ShardedAdapterError, label);
      assert.equal((err as Error).name, "ReadOnlyViewError", label);
      assert.match((err as Error).message, /join/, label);
      assert.match((err as Error).message, /leave/, label);
      return true;
    },
    label,
  );
}

describe("adapter.rooms / adapter.sids / socket.rooms views", () => {
  let reference: Promise<Record<string, unknown>> | undefined;
  const referenceSnapshot = () => (reference ??= viewsScenario(IN_MEMORY));

  test("the in-memory reference snapshot is what the scenario implies (so the comparisons below mean something)", async () => {
    const { first } = (await referenceSnapshot()) as { first: Record<string, unknown> };
    assert.equal(first.roomsInstanceofMap, true);
    assert.deepEqual(first.roomsKeys, ["S0", "S1", "S2", "S3", "S4", "a", "b", "c", 42, "42"]);
    assert.deepEqual(first.sidsKeys, ["S0", "S1", "S2", "S3", "S4"]);
    assert.deepEqual(first.roomsGetSize, [3, 2, 1, 1, 1, undefined, undefined, 1, 1, 1, 1, 1]);
    assert.deepEqual(first.sidsGet, [["S0", "b", "a"], ["S1"], ["S2", "c", 42], ["S3", "a", "42"], ["S4", "b", "a"], undefined]);
  });

  for (const variant of SHARDED_VARIANTS) {
    test(`read API answers equal the in-memory adapter's [${variant.name}]`, async () => {
      const expected = await referenceSnapshot();
      const actual = await viewsScenario(variant);
      assert.deepEqual(actual, expected);
    });

    test(`every write throws ReadOnlyViewError mentioning join/leave, and membership is unchanged [${variant.name}]`, async () => {
      await viewsScenario(variant, async (io, clients) => {
        const adapter = io.of("/").adapter;
        const s = clients.map((client) => serverSocketOf(io, client));
        const writes: [string, () => unknown][] = [
          ["rooms.set", () => adapter.rooms.set("x", new Set([s[0].id]))],
          ["rooms.set existing", () => adapter.rooms.set("a", new Set())],
          ["rooms.delete", () => adapter.rooms.delete("a")],
          ["rooms.delete own id", () => adapter.rooms.delete(s[0].id)],
          ["rooms.clear", () => adapter.rooms.clear()],
          ["rooms.get(a).add", () => adapter.rooms.get("a")!.add(s[1].id)],
          ["rooms.get(a).delete", () => adapter.rooms.get("a")!.delete(s[0].id)],
          ["rooms.get(a).clear", () => adapter.rooms.get("a")!.clear()],
          ["rooms.values().next().value.add", () => adapter.rooms.values().next().value!.add("x")],
          ["sids.set", () => adapter.sids.set("nobody", new Set(["a"]))],
          ["sids.delete", () => adapter.sids.delete(s[0].id)],
          ["sids.clear", () => adapter.sids.clear()],
          ["sids.get(id).add", () => adapter.sids.get(s[1].id)!.add("a")],
          ["sids.get(id).delete", () => adapter.sids.get(s[0].id)!.delete("a")],
          ["sids.get(id).clear", () => adapter.sids.get(s[0].id)!.clear()],
          ["socket.rooms.add", () => s[1].rooms.add("a")],
          ["socket.rooms.delete", () => s[0].rooms.delete("a")],
          ["socket.rooms.clear", () => s[0].rooms.clear()],
        ];
        for (const [label, write] of writes) assertReadOnlyError(write, label);

        // Broadcasts still follow the real membership: "a" is S0, S3, S4.
        const receipts = recordReceipts(clients, "m");
        io.to("a").emit("m", "to-a");
        io.to("x").emit("m", "to-x");
        await settle(io, clients);
        assert.deepEqual(
          clients.map((client) => receipts.get(client)!.map((args) => args[0])),
          [["to-a"], [], [], ["to-a"], ["to-a"]],
        );
      }).then(({ first, second }) => assert.deepEqual(second, first, "membership unchanged by the refused writes"));
    });

    test(`member sets are live: a set taken earlier reflects later joins and leaves [${variant.name}]`, async () => {
      for (const v of [IN_MEMORY, variant]) {
        await withServer(v, async ({ io, connect }) => {
          const clients = await connect(3);
          const s = clients.map((client) => serverSocketOf(io, client));
          s[0].join("live");
          const members = io.of("/").adapter.rooms.get("live")!;
          const rooms = s[1].rooms;
          assert.equal(members.size, 1, v.name);
          s[1].join("live");
          s[2].join("live");
          assert.equal(members.size, 3, v.name);
          assert.equal(members.has(s[2].id), true, v.name);
          assert.deepEqual([...rooms], [s[1].id, "live"], v.name);
          s[2].leave("live");
          assert.equal(members.size, 2, v.name);
          assert.equal(members.has(s[2].id), false, v.name);
          assert.deepEqual(sorted([...members]), sorted([s[0].id, s[1].id]), v.name);
        });
      }
    });
  }
});

test("socket.rooms survives structured clone (process.send with advanced serialization, postMessage) as a copy of the rooms of that moment, as the in-memory adapter's Set does", async () => {
  const observed = new Map<string, unknown>();
  for (const variant of [IN_MEMORY, SHARDED_VARIANTS[0]]) {
    await withServer(variant, async (server) => {
      const [client] = await server.connect(1);
      const socket = serverSocketOf(server.io, client);
      socket.join(["a", "b"]);
      const cloned = structuredClone(socket.rooms);
      socket.join("c");
      observed.set(variant.name, { cloned: [...cloned].filter((room) => room !== socket.id), isSet: cloned instanceof Set, live: [...socket.rooms].length });
    });
  }
  assert.deepEqual([...observed.values()], [
    { cloned: ["a", "b"], isSet: true, live: 4 },
    { cloned: ["a", "b"], isSet: true, live: 4 },
  ]);
});
