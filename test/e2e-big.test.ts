/**
 * Big broadcasts, above an offloadThreshold of 20000 memberships, so that
 * they take the worker path with the default workers, and spaced out so that
 * idle workers really claim shards: unions, except-rooms and everyone-except
 * over tens of thousands of memberships must reach exactly the right real
 * sockets. Also checks where the offloadThreshold boundary lies ("at or
 * above"), since the other suites rely on it to pick a path.
 *
 * Bulk memberships come from `adapter.addAll()` with ids that have no socket
 * (as a cluster adapter would add them); both adapters skip those ids when
 * delivering, so they only make the selections big.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Server } from "socket.io";
import {
  IN_MEMORY,
  recordReceipts,
  serverSocketOf,
  settle,
  shardedAdapterOf,
  startServer,
  withServer,
  type Variant,
} from "./helpers";

const BIG_VARIANTS: readonly Variant[] = [
  IN_MEMORY,
  { name: "sharded offloadThreshold=20000", kind: "sharded", adapterOptions: { offloadThreshold: 20_000 }, workerPath: true },
  { name: "sharded workers=3 offloadThreshold=20000", kind: "sharded", adapterOptions: { workers: 3, offloadThreshold: 20_000 }, workerPath: true },
  { name: "sharded workers=2 offloadThreshold=0", kind: "sharded", adapterOptions: { workers: 2, offloadThreshold: 0 }, workerPath: true },
];

/** Adds `count` socket-less members to each of `rooms` (ids from `prefix`). */
function addBulk(io: Server, prefix: string, count: number, rooms: string[]): void {
  const adapter = io.of("/").adapter;
  const set = new Set(rooms);
  for (let i = 0; i < count; i++) adapter.addAll(`${prefix}${i}`, set);
}

describe("big broadcasts through the workers", () => {
  for (const variant of BIG_VARIANTS) {
    test(`unions, except-rooms and everyone-except over ~70000 memberships reach exactly the right sockets [${variant.name}]`, async (t) => {
      await withServer(variant, async ({ io, connect }) => {
        const clients = await connect(5);
        const s = clients.map((client) => serverSocketOf(io, client));
        const rooms: Set<string>[] = s.map(() => new Set());
        const join = (i: number, room: string) => (s[i].join(room), rooms[i].add(room));
        const leave = (i: number, room: string) => (s[i].leave(room), rooms[i].delete(room));
        addBulk(io, "big-", 20_000, ["big"]);
        addBulk(io, "other-", 20_000, ["other"]);
        addBulk(io, "both-", 10_000, ["big", "other"]);
        addBulk(io, "ex-", 5_000, ["big", "ex"]);
        join(0, "big");
        join(1, "big");
        join(1, "other");
        join(2, "other");
        join(3, "big");
        join(3, "ex");

        const receipts = recordReceipts(clients, "m");
        const expected: string[][] = s.map(() => []);
        const who = (to: string[], except: string[], sender?: number) =>
          rooms.forEach((mine, i) => {
            if (i === sender || except.some((room) => mine.has(room))) return;
            if (to.length === 0 || to.some((room) => mine.has(room))) expected[i].push(label);
          });
        let label = "";
        for (let round = 0; round < 8; round++) {
          const steps: [string, () => void, string[], string[], number?][] = [
            ["big", () => io.to("big").emit("m", label), ["big"], []],
            ["union", () => io.to(["big", "other"]).emit("m", label), ["big", "other"], []],
            ["big-except-ex", () => io.to("big").except("ex").emit("m", label), ["big"], ["ex"]],
            ["s1-to-union", () => s[1].to(["big", "other"]).emit("m", label), ["big", "other"], [], 1],
            ["everyone-except-ex", () => io.except("ex").emit("m", label), [], ["ex"]],
          ];
          for (const [name, emit, to, except, sender] of steps) {
            label = `${round}:${name}`;
            emit();
            who(to, except, sender);
            // Yield between broadcasts so that the workers are idle again and claim shards.
            await settle(io, clients);
          }
          if (round % 2 === 0) join(4, "big");
          else leave(4, "big");
          if (rooms[2].has("ex")) leave(2, "ex");
          else join(2, "ex");
        }
        assert.deepEqual(
          clients.map((client) => receipts.get(client)!.map((args) => args[0])),
          expected,
        );
        for (const list of expected) assert.ok(list.length >= 8, "every client expects several broadcasts");
        const adapter = shardedAdapterOf(io);
        if (adapter) {
          const { pool } = adapter.stats();
          // The 32 broadcasts to "big" (alone or in a union) are above the threshold, so they went to the pool.
          // Everyone-except-ex counts only the memberships of "ex" (the pass over every socket is no walk): main thread.
          assert.ok(pool.offloaded >= 32, JSON.stringify(pool));
          assert.equal(pool.timeouts, 0, JSON.stringify(pool));
          assert.equal(pool.workerFailures, 0, JSON.stringify(pool));
          // How much the workers actually did depends on scheduling: reported, not asserted.
          t.diagnostic(`pool after 40 big broadcasts: ${JSON.stringify(pool)}`);
        }
      });
    });
  }

  test("offloadThreshold: a selection holding at least that many memberships goes to the workers, a smaller one does not", async () => {
    const server = await startServer("sharded", {}, { workers: 2, offloadThreshold: 10 });
    try {
      const { io } = server;
      const clients = await server.connect(2);
      const adapter = shardedAdapterOf(io)!;
      addBulk(io, "nine-", 8, ["nine"]);
      addBulk(io, "ten-", 9, ["ten"]);
      addBulk(io, "five-", 5, ["five"]);
      addBulk(io, "other-five-", 4, ["other-five"]);
      serverSocketOf(io, clients[0]).join(["nine", "ten"]);
      serverSocketOf(io, clients[1]).join(["other-five"]);
      const receipts = recordReceipts(clients, "m");
      const offloadedBy = (emit: () => void) => {
        const before = adapter.stats().pool.offloaded;
        emit();
        return adapter.stats().pool.offloaded - before;
      };
      assert.equal(adapter.rooms.get("nine")?.size, 9);
      assert.equal(adapter.rooms.get("ten")?.size, 10);
      assert.deepEqual(
        [
          offloadedBy(() => io.to("nine").emit("m", "nine")),
          offloadedBy(() => io.to("ten").emit("m", "ten")),
          offloadedBy(() => io.to(["five", "other-five"]).emit("m", "five+five")),
          offloadedBy(() => io.to("five").except("other-five").emit("m", "five-except-five")),
          offloadedBy(() => io.to("five").emit("m", "five")),
          offloadedBy(() => io.to("nope").emit("m", "nope")),
        ],
        [0, 1, 1, 1, 0, 0],
      );
      await settle(io, clients);
      assert.deepEqual(
        clients.map((client) => receipts.get(client)!.map((args) => args[0])),
        [["nine", "ten"], ["five+five"]],
      );
    } finally {
      await server.close();
    }
  });
});
