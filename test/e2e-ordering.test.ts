/**
 * Issue 2, points 2 and 3: per-client ordering of interleaved broadcasts and
 * direct emits, exactly-once delivery, join/leave taking effect for the very
 * next broadcast, and `socket.emit()` under connection state recovery (where
 * socket.io routes it through `adapter.broadcast` with rooms = {socket.id}).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Socket } from "socket.io";
import { io as ioc, type Socket as ClientSocket } from "socket.io-client";
import {
  ALL_VARIANTS,
  assertPathTaken,
  recordReceipts,
  serverSocketOf,
  settle,
  shardedAdapterOf,
  waitConnected,
  withServer,
  type Variant,
} from "./helpers";

const MESSAGES = 200;

/** A tiny deterministic generator so every run (and every adapter) sees the same sequence. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 0x100000000;
  };
}

/**
 * A model of socket.io's semantics: who is in which room, and so who must
 * receive a broadcast. Kept in step with the real joins and leaves.
 */
class Model {
  readonly rooms: Set<string>[];
  constructor(count: number) {
    this.rooms = Array.from({ length: count }, () => new Set<string>());
  }
  recipients(rooms: string[], exceptRooms: string[], exceptIndex?: number): number[] {
    const out: number[] = [];
    this.rooms.forEach((mine, i) => {
      if (i === exceptIndex) return;
      if (exceptRooms.some((room) => mine.has(room))) return;
      if (rooms.length === 0 || rooms.some((room) => mine.has(room))) out.push(i);
    });
    return out;
  }
}

async function interleavingScenario(variant: Variant, serverOptions = {}): Promise<{ received: unknown[][]; expected: number[][] }> {
  return withServer(
    variant,
    async ({ io, connect }) => {
      const clients = await connect(5);
      const s: Socket[] = clients.map((client) => serverSocketOf(io, client));
      const receipts = recordReceipts(clients, "m");
      const model = new Model(s.length);
      const join = (i: number, room: string) => {
        s[i].join(room);
        model.rooms[i].add(room);
      };
      const leave = (i: number, room: string) => {
        s[i].leave(room);
        model.rooms[i].delete(room);
      };
      join(0, "r");
      join(1, "r");
      join(2, "r");
      join(2, "q");
      join(3, "q");

      const expected: number[][] = s.map(() => []);
      const deliver = (seq: number, to: number[]) => to.forEach((i) => expected[i].push(seq));
      const random = lcg(0x5eed);
      for (let seq = 0; seq < MESSAGES; seq++) {
        const who = Math.floor(random() * s.length);
        switch (seq % 5) {
          case 0:
            io.to("r").emit("m", seq);
            deliver(seq, model.recipients(["r"], []));
            break;
          case 1:
            s[who].emit("m", seq);
            deliver(seq, [who]);
            break;
          case 2:
            s[who].to("r").emit("m", seq);
            deliver(seq, model.recipients(["r"], [], who));
            break;
          case 3:
            io.to(["r", "q"]).except("x").emit("m", seq);
            deliver(seq, model.recipients(["r", "q"], ["x"]));
            break;
          case 4:
            s[who].broadcast.emit("m", seq);
            deliver(seq, model.recipients([], [], who));
            break;
        }
        // Membership changes between emits: they must apply to the very next one.
        if (seq % 7 === 3) {
          const i = Math.floor(random() * s.length);
          const room = random() < 0.5 ? "r" : "x";
          if (model.rooms[i].has(room)) leave(i, room);
          else join(i, room);
        }
      }
      await settle(io, clients);
      assertPathTaken(io, variant);
      return { received: clients.map((client) => receipts.get(client)!.map((args) => args[0])), expected };
    },
    serverOptions,
  );
}

for (const variant of ALL_VARIANTS) {
  describe(`ordering and exactly-once delivery [${variant.name}]`, () => {
    test(`${MESSAGES} interleaved io.to(room).emit, socket.emit, socket.to(room).emit, broadcasts: each client gets its own in emission order, once`, async () => {
      const { received, expected } = await interleavingScenario(variant);
      // The scenario must actually reach everyone, or the comparison proves little.
      for (const list of expected) assert.ok(list.length > 20, `each client should expect many messages, got ${list.length}`);
      assert.deepEqual(received, expected);
    });

    test("a socket that joined synchronously before an emit gets it; one that just left does not", async () => {
      await withServer(variant, async ({ io, connect }) => {
        const clients = await connect(3);
        const s = clients.map((client) => serverSocketOf(io, client));
        const receipts = recordReceipts(clients, "m");
        s[0].join("room");
        io.to("room").emit("m", "first");
        s[1].join("room");
        io.to("room").emit("m", "after-s1-joined");
        s[0].leave("room");
        io.to("room").emit("m", "after-s0-left");
        s[2].join(["room", "other"]);
        s[1].leave("room");
        io.to("room").emit("m", "after-s2-joined-s1-left");
        s[1].join("room");
        s[1].to("room").emit("m", "s1-rejoined-and-broadcast");
        s[2].leave("room");
        s[2].join("room");
        io.to("room").except("other").emit("m", "s2-rejoined-but-excepted");
        await settle(io, clients);
        assertPathTaken(io, variant);
        assert.deepEqual(
          clients.map((client) => receipts.get(client)!.map((args) => args[0])),
          [
            ["first", "after-s1-joined"],
            ["after-s1-joined", "after-s0-left", "s2-rejoined-but-excepted"],
            ["after-s2-joined-s1-left", "s1-rejoined-and-broadcast"],
          ],
        );
      });
    });

    test("a socket that joins in the connection handler gets a broadcast emitted right after", async () => {
      await withServer(variant, async ({ io, port }) => {
        let n = 0;
        io.on("connection", (socket) => {
          socket.join("lobby");
          io.to("lobby").emit("m", `welcome-${n++}`);
        });
        const clients: ClientSocket[] = [];
        const log: unknown[][] = [];
        try {
          for (let i = 0; i < 3; i++) {
            // The listener is attached before connecting: the broadcast leaves right after the CONNECT packet.
            const client = ioc(`http://127.0.0.1:${port}/`, { transports: ["websocket"], forceNew: true, reconnection: false });
            clients.push(client);
            log.push([]);
            client.on("m", (label: unknown) => log[i].push(label));
            await waitConnected(client);
          }
          await settle(io, clients);
          assert.deepEqual(log, [["welcome-0", "welcome-1", "welcome-2"], ["welcome-1", "welcome-2"], ["welcome-2"]]);
          assert.equal(io.of("/").adapter.rooms.get("lobby")?.size, 3);
          assertPathTaken(io, variant);
        } finally {
          for (const client of clients) client.disconnect();
        }
      });
    });
  });

  describe(`connectionStateRecovery: socket.emit goes through adapter.broadcast [${variant.name}]`, () => {
    test("socket.emit with rooms={socket.id} still delivers, in order, interleaved with room broadcasts", async () => {
      await withServer(
        variant,
        async ({ io, connect }) => {
          const adapter = io.of("/").adapter;
          const ownRoomBroadcasts: string[] = [];
          const broadcast = adapter.broadcast.bind(adapter);
          adapter.broadcast = (packet, opts) => {
            if (opts.rooms.size === 1 && !opts.except?.size) ownRoomBroadcasts.push([...opts.rooms][0]);
            return broadcast(packet, opts);
          };
          const clients = await connect(3);
          const s = clients.map((client) => serverSocketOf(io, client));
          const receipts = recordReceipts(clients, "m");
          s[0].join("r");
          s[1].join("r");
          const expected: number[][] = [[], [], []];
          for (let seq = 0; seq < 150; seq++) {
            const who = seq % 3;
            if (seq % 2 === 0) {
              s[who].emit("m", seq);
              expected[who].push(seq);
            } else if (seq % 3 === 0) {
              io.to("r").emit("m", seq);
              expected[0].push(seq);
              expected[1].push(seq);
            } else {
              s[who].to("r").emit("m", seq);
              for (const i of [0, 1]) if (i !== who) expected[i].push(seq);
            }
          }
          await settle(io, clients);
          // SessionAwareAdapter (the in-memory reference here) appends an offset argument; compare the payload.
          assert.deepEqual(
            clients.map((client) => receipts.get(client)!.map((args) => args[0])),
            expected,
          );
          // socket.emit really went through the adapter, with the socket's own room
          // (once per direct emit, plus the one of settle()).
          const direct = expected.map((list, i) => list.filter((seq) => seq % 2 === 0 && seq % 3 === i).length);
          assert.deepEqual(
            s.map((socket) => ownRoomBroadcasts.filter((room) => room === socket.id).length),
            direct.map((count) => count + 1),
          );
          if (variant.workerPath) {
            const stats = shardedAdapterOf(io)!.stats();
            assert.ok(stats.pool.offloaded >= 75, `socket.emit should go through the worker path too: ${JSON.stringify(stats.pool)}`);
          }
          assertPathTaken(io, variant);
        },
        { connectionStateRecovery: {} },
      );
    });
  });
}
