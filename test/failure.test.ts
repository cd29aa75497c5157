/**
 * Worker failure: membership lives in shared memory held by the main thread,
 * so a worker that dies loses nothing. These tests kill workers while real
 * clients keep joining, leaving and receiving broadcasts, and check that
 * every broadcast reached exactly the sockets that were in its rooms when it
 * was emitted: none lost, none twice, none extra, in order.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Server } from "socket.io";
import { createAdapter, type ShardedAdapter } from "../lib/index";
import { closeDetached, connectFake } from "./fake-sockets";
import { serverSocketOf, settle, sleep, startServer } from "./helpers";
import { mulberry32 } from "./random";


/** Collects process warnings until `stop()`. */
function captureWarnings(): { codes(): (string | undefined)[]; stop(): void } {
  const warnings: (Error & { code?: string })[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  process.on("warning", onWarning);
  return { codes: () => warnings.map((w) => w.code), stop: () => process.off("warning", onWarning) };
}

async function until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test("workers terminated repeatedly under live traffic: every broadcast reaches exactly its rooms' sockets", async () => {
  const seed = Number(process.env.FAILURE_SEED ?? 20261126);
  const random = mulberry32(seed);
  const server = await startServer("sharded", {}, { workers: 2, offloadThreshold: 0, workerTimeout: 200 });
  try {
    const { io } = server;
    const adapter = io.of("/").adapter as ShardedAdapter;
    const clients = await server.connect(24);
    const sockets = clients.map((client) => serverSocketOf(io, client));
    const model = new Map(sockets.map((socket) => [socket.id, new Set<string>([socket.id])]));
    const expected = new Map(sockets.map((socket) => [socket.id, [] as number[]]));
    const received = new Map(clients.map((client) => [client.id as string, [] as number[]]));
    for (const client of clients) client.on("m", (n: number) => received.get(client.id as string)!.push(n));
    const rooms = ["a", "b", "c", "d", "e", "f"];
    const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)];
    await until(() => adapter.workerThreads().length === 2, "the workers to start");

    // Each worker is terminated at most once (terminate() is asynchronous:
    // the thread stays listed until it has exited).
    const terminated = new WeakSet<object>();
    const liveWorkers = () => adapter.workerThreads().filter((worker) => !terminated.has(worker));
    let terminations = 0;
    for (let step = 0; step < 600; step++) {
      const socket = pick(sockets);
      const room = pick(rooms);
      if (random() < 0.5) {
        socket.join(room);
        model.get(socket.id)!.add(room);
      } else {
        socket.leave(room);
        model.get(socket.id)!.delete(room);
      }

      const to = random() < 0.15 ? [] : Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(rooms));
      const except = random() < 0.5 ? [pick([...rooms, pick(sockets).id])] : [];
      io.to(to).except(except).emit("m", step);
      for (const [id, joined] of model) {
        const included = to.length === 0 || to.some((r) => joined.has(r));
        const excluded = except.some((r) => joined.has(r));
        if (included && !excluded) expected.get(id)!.push(step);
      }

      // One termination early, then (from step 300) one every 40 steps,
      // which is fast enough to put the pool in degraded mode.
      if (step === 100 || (step >= 300 && step % 40 === 20)) {
        // A full pool first: a termination racing the pool's own repair
        // (which stops the old workers on purpose) would not be a failure.
        await until(() => adapter.workerThreads().length === 2 && liveWorkers().length === 2, "a full pool");
        const worker = pick(liveWorkers());
        terminated.add(worker);
        void worker.terminate();
        terminations++;
        // Counted once, as soon as its exit is seen (traffic goes on meanwhile).
        await until(() => adapter.stats().pool.workerFailures === terminations, `failure ${terminations} to be counted`);
      }
      if (step === 250) {
        await until(() => adapter.workerThreads().length === 2, "the first terminated worker to be replaced");
        assert.equal(adapter.stats().pool.degraded, false, "one failure does not degrade the pool");
      }
      if (step % 10 === 0) await sleep(2); // lets worker exits and replacements happen mid-traffic
    }

    await settle(io, clients);
    for (const socket of sockets) {
      assert.deepEqual(received.get(socket.id), expected.get(socket.id), `deliveries of ${socket.id} (seed ${seed})`);
    }
    assert.equal(terminations, 9);
    assert.equal(adapter.stats().pool.workerFailures, terminations, "each failure counted once");
    await until(() => adapter.workerThreads().length === 2, "the pool to be back to 2 workers");
    assert.ok(adapter.stats().pool.offloaded > 0);
  } finally {
    await server.close();
  }
});

test("a worker that dies holding a shard: the broadcast is recomputed on the main thread, then the pool degrades and says so", async () => {
  // Every worker, replacements included, inherits the fault while it is set.
  process.env.SOCKET_IO_SHARDED_ADAPTER_FAULT = "exit-holding-shard";
  const io = new Server({ adapter: createAdapter({ workers: 2, offloadThreshold: 0, workerTimeout: 100 }) });
  const warnings = captureWarnings();
  try {
    const nsp = io.of("/");
    const adapter = nsp.adapter as ShardedAdapter;
    // Big enough that the main thread is still on its shard when a worker wakes up and claims the other.
    const count = 100_000;
    const sockets = Array.from({ length: count }, (_, i) => connectFake(nsp, `s${i}`));
    for (let i = 0; i < count; i++) sockets[i].join(i % 2 === 0 ? "even" : ["even", "odd"]);
    await until(() => adapter.workerThreads().length === 2, "the workers to start");

    let broadcasts = 0;
    for (; broadcasts < 50 && !adapter.stats().pool.degraded; broadcasts++) {
      nsp.adapter.broadcast({ type: 2, data: ["m", broadcasts], nsp: "/" } as never, { rooms: new Set(["even"]), except: new Set(["s0"]) });
      await sleep(20); // worker exits are noticed between broadcasts
    }
    const stats = adapter.stats().pool;
    assert.equal(stats.degraded, true, `degraded after ${broadcasts} broadcasts: ${JSON.stringify(stats)}`);
    assert.ok(stats.timeouts >= 1, "at least one broadcast waited for a dead worker and was recomputed");
    assert.ok(warnings.codes().includes("SHARDED_ADAPTER_DEGRADED"), "a process warning says so");

    // Degraded: answered on the main thread, still exact.
    const offloadedBefore = stats.offloaded;
    nsp.adapter.broadcast({ type: 2, data: ["m", -1], nsp: "/" } as never, { rooms: new Set(["odd"]), except: new Set() });
    assert.equal(adapter.stats().pool.offloaded, offloadedBefore, "no offload while degraded");
    for (let i = 0; i < count; i++) {
      const expected = (i === 0 ? 0 : broadcasts) + (i % 2 === 1 ? 1 : 0);
      if (sockets[i].received !== expected) assert.fail(`socket s${i} received ${sockets[i].received} packets, expected ${expected}`);
    }
  } finally {
    delete process.env.SOCKET_IO_SHARDED_ADAPTER_FAULT;
    warnings.stop();
    await closeDetached(io);
  }
});

test("workers killed by their resourceLimits: broadcasts stay exact, the failures are counted and the pool degrades", async () => {
  // Too small a heap for a worker to start: every worker dies, over and over.
  const io = new Server({
    adapter: createAdapter({ workers: 2, offloadThreshold: 0, workerTimeout: 100, resourceLimits: { maxOldGenerationSizeMb: 1, maxYoungGenerationSizeMb: 1, codeRangeSizeMb: 1 } }),
  });
  const warnings = captureWarnings();
  try {
    const nsp = io.of("/");
    const adapter = nsp.adapter as ShardedAdapter;
    const sockets = Array.from({ length: 1000 }, (_, i) => connectFake(nsp, `s${i}`));
    sockets.forEach((socket, i) => socket.join(i % 3 === 0 ? ["a", "b"] : ["b"]));
    let sent = 0;
    await until(() => {
      nsp.adapter.broadcast({ type: 2, data: ["m"], nsp: "/" } as never, { rooms: new Set(["a"]), except: new Set() });
      sent++;
      return adapter.stats().pool.degraded;
    }, "the pool to degrade");
    const stats = adapter.stats().pool;
    assert.ok(stats.workerFailures >= 3, JSON.stringify(stats));
    assert.ok(warnings.codes().includes("SHARDED_ADAPTER_DEGRADED"), "a process warning says so");
    sockets.forEach((socket, i) => assert.equal(socket.received, i % 3 === 0 ? sent : 0, `socket s${i}`));
  } finally {
    warnings.stop();
    await closeDetached(io);
  }
});
