/**
 * Months of connect/disconnect churn, compressed: after many cycles of
 * connect, join, leave and disconnect around a steady population, the main
 * thread's heap and the shared tables are back within 10% of their baseline
 * and every count is exactly what it was. CI runs CHURN_CYCLES (default
 * 100,000); `make soak` runs 1,000,000.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Server } from "socket.io";
import { createAdapter, type ShardedAdapter } from "../lib/index";
import { closeDetached, connectFake, disconnectFake } from "./fake-sockets";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function settledHeap(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

const CYCLES = Number(process.env.CHURN_CYCLES ?? 100_000);

test(`${CYCLES} connect/join/leave/disconnect cycles leave nothing behind`, { timeout: 10 * 60_000 }, async () => {
  const io = new Server({ adapter: createAdapter({ workers: 2, offloadThreshold: 0 }) });
  const nsp = io.of("/");
  const adapter = nsp.adapter as ShardedAdapter;
  try {
    for (let i = 0; i < 2000; i++) connectFake(nsp, `steady-${i}`).join([`r${i % 200}`, `r${(i * 7) % 200}`, `r${(i * 13) % 200}`]);
    // One full churn round first, so that lazily grown buffers are in the baseline.
    const churn = (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const socket = connectFake(nsp, `churn-${i}`);
        socket.join([`r${i % 200}`, `unique-${i}`, i]);
        socket.leave(`r${i % 200}`);
        if (i % 100 === 0) nsp.adapter.broadcast({ type: 2, data: ["tick", i], nsp: "/" } as never, { rooms: new Set([`r${i % 50}`, `unique-${i}`]), except: new Set([`r${(i + 1) % 200}`]) });
        disconnectFake(nsp, `churn-${i}`);
      }
    };
    churn(0, 5000);
    const before = adapter.stats();
    const heapBefore = settledHeap();

    const chunk = 10_000;
    for (let from = 5000; from < 5000 + CYCLES; from += chunk) {
      churn(from, Math.min(from + chunk, 5000 + CYCLES));
      await new Promise((resolve) => setImmediate(resolve)); // let worker task results settle
    }

    const after = adapter.stats();
    const heapAfter = settledHeap();
    assert.equal(after.rooms, before.rooms, "rooms");
    assert.equal(after.sockets, before.sockets, "sockets");
    assert.equal(after.memberships, before.memberships, "memberships");
    assert.ok(after.pool.offloaded > before.pool.offloaded, "the churn's broadcasts went through the workers");
    assert.ok(
      after.sharedMemoryBytes <= before.sharedMemoryBytes * 1.1,
      `shared memory ${before.sharedMemoryBytes} -> ${after.sharedMemoryBytes} bytes`,
    );
    assert.ok(heapAfter <= heapBefore * 1.1, `main-thread heap ${heapBefore} -> ${heapAfter} bytes`);
    assert.equal(adapter.rooms.has("unique-4999"), false);
    assert.equal(adapter.sids.has("churn-4999"), false);
  } finally {
    await closeDetached(io);
  }
});

test("a burst: socketsJoin of a 100k-socket room into 10 rooms (a million joins in one tick) costs bounded memory, and socketsLeave gives it back", async () => {
  const io = new Server({ adapter: createAdapter({ workers: 2 }) });
  const nsp = io.of("/");
  const adapter = nsp.adapter as ShardedAdapter;
  try {
    for (let i = 0; i < 100_000; i++) connectFake(nsp, `burst-${i}`).join("big");
    const rooms = Array.from({ length: 10 }, (_, i) => `burst-room-${i}`);
    const heapBefore = settledHeap();
    const before = adapter.stats();
    adapter.addSockets({ rooms: new Set(["big"]) }, rooms);
    const heapAfter = settledHeap();
    const after = adapter.stats();
    const added = after.memberships - before.memberships;
    assert.equal(added, 1_000_000);
    // The in-memory adapter spends about 100 B of heap per membership.
    assert.ok((heapAfter - heapBefore) / added < 8, `heap per joined membership: ${(heapAfter - heapBefore) / added} B`);
    assert.ok(
      (after.sharedMemoryBytes - before.sharedMemoryBytes) / added < 96,
      `shared memory per joined membership: ${(after.sharedMemoryBytes - before.sharedMemoryBytes) / added} B`,
    );
    adapter.delSockets({ rooms: new Set(["big"]) }, rooms);
    assert.equal(adapter.stats().memberships, before.memberships);
    assert.equal(adapter.stats().rooms, before.rooms);
    assert.ok(settledHeap() <= heapBefore * 1.1, "heap back after socketsLeave");
  } finally {
    await closeDetached(io);
  }
});
