/**
 * Issue 2, point 9: one worker pool per `createAdapter()` result, shared by
 * every namespace (static and dynamic, ~1000 of them); broadcasts never
 * cross namespaces; `io.close()` stops the pool, and a process that used the
 * adapter exits by itself after `io.close()`.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Worker } from "node:worker_threads";
import { Manager, type Socket as ClientSocket } from "socket.io-client";
import { ShardedAdapter } from "../lib/index";
import {
  recordReceipts,
  REPO_ROOT,
  runNode,
  serverSocketOf,
  settle,
  shardedAdapterOf,
  startServer,
  waitConnected,
} from "./helpers";

/** Every worker thread this process starts, with whether it has exited. */
class ThreadCounter {
  readonly workers: { worker: Worker; exited: Promise<void>; hasExited: boolean }[] = [];
  private readonly listener = (worker: Worker) => {
    const entry = { worker, hasExited: false, exited: Promise.resolve() };
    entry.exited = new Promise<void>((resolve) =>
      worker.once("exit", () => {
        entry.hasExited = true;
        resolve();
      }),
    );
    this.workers.push(entry);
  };
  start(): void {
    process.on("worker", this.listener);
  }
  stop(): void {
    process.off("worker", this.listener);
  }
  get started(): number {
    return this.workers.length;
  }
  get running(): number {
    return this.workers.filter((entry) => !entry.hasExited).length;
  }
  /** Resolves when every counted thread has exited; rejects after `boundMs` (a liveness bound). */
  async allExited(boundMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.running} worker thread(s) still running ${boundMs}ms after io.close()`)), boundMs);
    });
    try {
      await Promise.race([Promise.all(this.workers.map((entry) => entry.exited)), bound]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Node emits the `process` 'worker' event on the next tick after a thread is created. */
const threadEventsSettled = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("one pool per createAdapter(), shared by all namespaces", () => {
  const counter = new ThreadCounter();
  before(() => counter.start());
  after(() => counter.stop());

  test("1000 static namespaces and dynamic ones share one pool of `workers` threads; io.close() stops it", async () => {
    const WORKERS = 3;
    const startedBefore = counter.started;
    const server = await startServer("sharded", {}, { workers: WORKERS, offloadThreshold: 0 });
    const { io } = server;
    let closed = false;
    try {
      const parent = io.of(/^\/dyn-\d+$/);
      const namespaces = Array.from({ length: 1000 }, (_, i) => io.of(`/n${i}`));
      const dynClients = [
        ...(await server.connect(2, "/dyn-1")),
        ...(await server.connect(2, "/dyn-2")),
        ...(await server.connect(1, "/dyn-3")),
      ];
      const staticClients = await server.connect(2, "/n7");
      await threadEventsSettled();

      const adapters = [io.of("/"), ...namespaces, io.of("/dyn-1"), io.of("/dyn-2"), io.of("/dyn-3")].map((nsp) => nsp.adapter);
      assert.equal(adapters.length, 1004);
      for (const adapter of adapters) {
        assert.ok(adapter instanceof ShardedAdapter, "every namespace, dynamic ones included, uses the sharded adapter");
        assert.equal(adapter.stats().pool.workers, WORKERS);
      }
      assert.equal(counter.started - startedBefore, WORKERS, "exactly `workers` threads were started for 1004 namespaces");
      assert.equal(counter.running, WORKERS);

      // The pool really is one: a broadcast in one namespace shows in another's pool counters.
      const before = shardedAdapterOf(io, "/dyn-2")!.stats().pool.offloaded;
      const receipts = recordReceipts([...dynClients, ...staticClients], "m");
      io.of("/n7").emit("m", "n7");
      parent.emit("m", "parent");
      await settle(io, staticClients, "/n7");
      for (const [i, nsp] of ["/dyn-1", "/dyn-1", "/dyn-2", "/dyn-2", "/dyn-3"].entries()) await settle(io, [dynClients[i]], nsp);
      const after = shardedAdapterOf(io, "/dyn-2")!.stats().pool.offloaded;
      assert.ok(after >= before + 4, `broadcasts of /n7 and of the dynamic children count in /dyn-2's pool: ${before} -> ${after}`);
      assert.deepEqual(
        [...dynClients, ...staticClients].map((client) => receipts.get(client)!.map((args) => args[0])),
        [["parent"], ["parent"], ["parent"], ["parent"], ["parent"], ["n7"], ["n7"]],
      );
      await threadEventsSettled();
      assert.equal(counter.started - startedBefore, WORKERS, "no thread was added or replaced while broadcasting");

      await server.close();
      closed = true;
      await counter.allExited(10_000);
      assert.equal(counter.running, 0);
      for (const adapter of adapters) assert.equal((adapter as ShardedAdapter).stats().pool.workers, 0, "the pool reports no threads after io.close()");
    } finally {
      if (!closed) await server.close();
    }
  });

  test("dynamic namespaces with cleanupEmptyChildNamespaces come and go on the same pool", async () => {
    const WORKERS = 1;
    const startedBefore = counter.started;
    const server = await startServer("sharded", { cleanupEmptyChildNamespaces: true }, { workers: WORKERS, offloadThreshold: 0 });
    const { io } = server;
    try {
      io.of(/^\/dyn-\d+$/).on("connection", (socket) => socket.join("r"));
      for (let round = 0; round < 8; round++) {
        const clients = await server.connect(2, `/dyn-${round % 3}`);
        const child = io.of(`/dyn-${round % 3}`);
        const receipts = recordReceipts(clients, "m");
        child.to("r").emit("m", round);
        await settle(io, clients, child.name);
        assert.deepEqual(clients.map((client) => receipts.get(client)!.map((args) => args[0])), [[round], [round]]);
        const childAdapter = child.adapter as ShardedAdapter;
        assert.equal(childAdapter.stats().pool.workers, WORKERS);
        const gone = clients.map((client) => new Promise((resolve) => serverSocketOf(io, client, child.name).once("disconnect", resolve)));
        for (const client of clients) client.disconnect();
        await Promise.all(gone);
        // The emptied child namespace is removed and its adapter closed; the pool stays for "/".
        assert.equal((io as unknown as { _nsps: Map<string, unknown> })._nsps.has(child.name), false, "the empty child namespace was cleaned up");
      }
      await threadEventsSettled();
      assert.equal(counter.started - startedBefore, WORKERS, "children closing their adapters never restarted the pool");
      assert.equal(shardedAdapterOf(io)!.stats().pool.workers, WORKERS);
      assert.ok(shardedAdapterOf(io)!.stats().pool.offloaded >= 8);
    } finally {
      await server.close();
    }
  });
});

describe("broadcasts stay in their namespace", () => {
  test("same room names and one shared connection: nothing crosses namespaces", async () => {
    for (const adapterOptions of [{ workers: 2 }, { workers: 2, offloadThreshold: 0 }]) {
      const server = await startServer("sharded", {}, adapterOptions);
      const { io, port } = server;
      const managers: Manager[] = [];
      try {
        io.of(/^\/dyn-\d+$/);
        io.of("/a");
        io.of("/b");
        // Two clients, each multiplexing every namespace over one connection.
        const names = ["/", "/a", "/b", "/dyn-1", "/dyn-2"];
        const perClient: Record<string, ClientSocket>[] = [];
        for (let c = 0; c < 2; c++) {
          const manager = new Manager(`http://127.0.0.1:${port}`, { transports: ["websocket"], reconnection: false, forceNew: true });
          managers.push(manager);
          const sockets: Record<string, ClientSocket> = {};
          for (const name of names) sockets[name] = manager.socket(name);
          await Promise.all(Object.values(sockets).map((socket) => waitConnected(socket)));
          perClient.push(sockets);
        }
        for (const name of names) for (const sockets of perClient) serverSocketOf(io, sockets[name], name).join("room");
        const all = perClient.flatMap((sockets) => names.map((name) => [name, sockets[name]] as const));
        const receipts = recordReceipts(all.map(([, socket]) => socket), "m");

        io.of("/a").emit("m", "a-all");
        io.of("/a").to("room").emit("m", "a-room");
        io.of("/b").except("room").emit("m", "b-except-room");
        io.of("/dyn-1").to("room").emit("m", "dyn1-room");
        serverSocketOf(io, perClient[0]["/dyn-2"], "/dyn-2").broadcast.emit("m", "dyn2-broadcast");
        serverSocketOf(io, perClient[0]["/a"], "/a").to("room").emit("m", "a-socket-to-room");
        io.to("room").emit("m", "root-room");
        for (const name of names) await settle(io, perClient.map((sockets) => sockets[name]), name);

        const got = Object.fromEntries(all.map(([name, socket], i) => [`${i < names.length ? "c0" : "c1"}${name}`, receipts.get(socket)!.map((args) => args[0])]));
        assert.deepEqual(got, {
          "c0/": ["root-room"],
          "c0/a": ["a-all", "a-room"],
          "c0/b": [],
          "c0/dyn-1": ["dyn1-room"],
          "c0/dyn-2": [],
          "c1/": ["root-room"],
          "c1/a": ["a-all", "a-room", "a-socket-to-room"],
          "c1/b": [],
          "c1/dyn-1": ["dyn1-room"],
          "c1/dyn-2": ["dyn2-broadcast"],
        }, JSON.stringify(adapterOptions));
      } finally {
        for (const manager of managers) for (const socket of Object.values((manager as unknown as { nsps: Record<string, ClientSocket> }).nsps)) socket.disconnect();
        await server.close();
      }
    }
  });
});

describe("a process that used the adapter exits by itself after io.close()", () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "sio-sharded-exit-"));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("server, dynamic namespace, client, worker-path broadcast, io.close(): exit code 0, no worker thread left", async () => {
    const script = join(dir, "close.js");
    const lib = JSON.stringify(join(REPO_ROOT, "dist", "lib", "index.js"));
    const modules = (name: string) => JSON.stringify(join(REPO_ROOT, "node_modules", name));
    writeFileSync(
      script,
      `"use strict";
const { createServer } = require("node:http");
const { Server } = require(${modules("socket.io")});
const { io: ioc } = require(${modules("socket.io-client")});
const { createAdapter } = require(${lib});
let threads = 0;
let exited = 0;
process.on("worker", (worker) => { threads++; worker.once("exit", () => exited++); });
(async () => {
  const http = createServer();
  const io = new Server(http, { adapter: createAdapter({ workers: 2, offloadThreshold: 0 }) });
  io.of(/^\\/dyn-\\d+$/).on("connection", (socket) => socket.join("r"));
  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
  const client = ioc("http://127.0.0.1:" + http.address().port + "/dyn-1", { transports: ["websocket"], reconnection: false });
  const got = await new Promise((resolve, reject) => {
    client.on("connect_error", reject);
    client.on("m", resolve);
    client.on("connect", () => setImmediate(() => io.of("/dyn-1").to("r").emit("m", "hello")));
  });
  const offloaded = io.of("/dyn-1").adapter.stats().pool.offloaded;
  // The server closes the connection; the client is not disconnected first.
  await io.close();
  // close() does not wait for the threads to exit (io.close() must not hold the door open): they exit before the process does.
  console.log("RESULT " + JSON.stringify({ got, offloaded, threads, poolWorkers: io.of("/").adapter.stats().pool.workers }));
  process.on("exit", () => console.log("EXITED " + JSON.stringify({ exited, resources: process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap") })));
})().catch((err) => { console.error(err); process.exitCode = 1; });
`,
    );
    const child = await runNode([script], { cwd: dir, killAfterMs: 20_000 });
    assert.equal(child.killed, false, `the process did not exit by itself after io.close()\n${child.stdout}\n${child.stderr}`);
    assert.equal(child.signal, null);
    assert.equal(child.code, 0, child.stderr);
    const result = JSON.parse(/^RESULT (.*)$/m.exec(child.stdout)?.[1] ?? "null");
    assert.deepEqual(result, { got: "hello", offloaded: 1, threads: 2, poolWorkers: 0 });
    const atExit = JSON.parse(/^EXITED (.*)$/m.exec(child.stdout)?.[1] ?? "null");
    assert.ok(atExit, child.stdout);
    assert.equal(atExit.exited, 2, "both worker threads had exited");
    assert.deepEqual(atExit.resources.filter((name: string) => name === "MessagePort"), [], "no worker MessagePort left open");
  });
});
