/**
 * Several namespaces, static and dynamic (`io.of(/^\/dyn-\d+$/)`), on one
 * server: they share one worker pool, a broadcast in one never reaches
 * another, and closing one namespace's adapter leaves the others working.
 * Compared with socket.io's in-memory adapter where the behaviour is theirs.
 */
import assert from "node:assert/strict";
import { availableParallelism } from "node:os";
import { test } from "node:test";
import type { Namespace, Server } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { ShardedAdapter } from "../lib/index";
import {
  acrossVariants,
  bounded,
  Names,
  SHARDED_DEFAULTS,
  SHARDED_OFFLOADED,
  until,
  withApiServer,
  type ApiVariant,
} from "./api-helpers";
import { serverSocketOf, settle, type TestServer } from "./helpers";

const DYNAMIC = /^\/dyn-\d+$/;

/** socket.io types io.of(regex) as a Namespace; it is a ParentNamespace with its children. */
const childrenOf = (parent: Namespace) => (parent as unknown as { children: Set<Namespace> }).children;

/** The worker count a variant's options ask for (the default: one less than the cores, 1 to 4). */
function configuredWorkers(variant: ApiVariant): number {
  return variant.adapterOptions.workers ?? Math.max(1, Math.min(4, availableParallelism() - 1));
}

function sharded(io: Server, name: string): ShardedAdapter {
  const adapter = io.of(name).adapter;
  assert.ok(adapter instanceof ShardedAdapter, `namespace ${name} should use the sharded adapter`);
  return adapter;
}

/** The pool object behind an adapter (white box: the one thing "shared" means). */
const poolOf = (adapter: ShardedAdapter) => (adapter as unknown as { pool: object }).pool;

interface Clients {
  readonly byNamespace: Map<string, ClientSocket[]>;
  /** Every event "ev" each client got, by "namespace#index". */
  readonly receipts: Record<string, unknown[]>;
}

async function connectNamespaces(server: TestServer, namespaces: readonly string[], perNamespace: number): Promise<Clients> {
  const byNamespace = new Map<string, ClientSocket[]>();
  const receipts: Record<string, unknown[]> = {};
  for (const name of namespaces) {
    const clients = await server.connect(perNamespace, name);
    byNamespace.set(name, clients);
    clients.forEach((client, i) => {
      const key = `${name}#${i}`;
      receipts[key] = [];
      client.on("ev", (label: unknown, cb?: (reply: string) => void) => {
        receipts[key].push(label);
        if (typeof cb === "function") cb("ok");
      });
    });
  }
  return { byNamespace, receipts };
}

async function settleAll(io: Server, clients: Clients): Promise<void> {
  for (const [name, list] of clients.byNamespace) {
    const connected = list.filter((client) => client.connected);
    if (connected.length > 0) await settle(io, connected, name);
  }
}

test("namespaces: static and dynamic namespaces share one pool with the configured workers", async (t) => {
  for (const variant of [SHARDED_DEFAULTS, SHARDED_OFFLOADED]) {
    await t.test(variant.name, () =>
      bounded(variant.name, withApiServer(variant, async (server) => {
        const { io } = server;
        io.of("/a");
        io.of("/b");
        const parent = io.of(DYNAMIC);
        const names = ["/", "/a", "/b", "/dyn-1", "/dyn-2", "/dyn-30"];
        const clients = await connectNamespaces(server, names, 2);
        assert.equal(childrenOf(parent).size, 3, "three dynamic children were created");
        const adapters = names.map((name) => sharded(io, name));
        const pool = poolOf(adapters[0]);
        for (const [i, adapter] of adapters.entries()) assert.equal(poolOf(adapter), pool, `${names[i]} uses the pool of "/"`);
        const workers = configuredWorkers(variant);
        assert.equal((pool as { workerThreads(): readonly unknown[] }).workerThreads().length, workers);

        // A broadcast in one namespace moves the shared counters, seen from every namespace.
        const before = adapters[0].stats().pool;
        io.of("/a").emit("ev", "a");
        parent.emit("ev", "dyn");
        await settleAll(io, clients);
        const after = adapters.map((adapter) => adapter.stats().pool);
        for (const [i, stats] of after.entries()) {
          assert.deepEqual(stats, after[0], `${names[i]} reports the same pool counters`);
          assert.equal(stats.workers, workers, `${names[i]}: workers stays the configured count`);
        }
        if (variant.offloaded) assert.equal(after[0].offloaded, before.offloaded + 4, "one offloaded broadcast in /a and one per dynamic child");
        else assert.equal(after[0].offloaded, 0);
        assert.deepEqual(clients.receipts, {
          "/#0": [],
          "/#1": [],
          "/a#0": ["a"],
          "/a#1": ["a"],
          "/b#0": [],
          "/b#1": [],
          "/dyn-1#0": ["dyn"],
          "/dyn-1#1": ["dyn"],
          "/dyn-2#0": ["dyn"],
          "/dyn-2#1": ["dyn"],
          "/dyn-30#0": ["dyn"],
          "/dyn-30#1": ["dyn"],
        });
      })),
    );
  }
});

test("namespaces: a broadcast or utility in one namespace never reaches another (same room names)", async (t) => {
  const names = ["/", "/a", "/dyn-1", "/dyn-2"];
  await acrossVariants(t, (variant: ApiVariant) =>
    withApiServer(variant, async (server) => {
      const { io } = server;
      io.of("/a");
      const parent = io.of(DYNAMIC);
      const clients = await connectNamespaces(server, names, 3);
      const ids = new Names("?");
      for (const name of names) {
        clients.byNamespace.get(name)!.forEach((client, i) => {
          ids.add(client.id as string, `${name}#${i}`);
          const socket = serverSocketOf(io, client, name);
          socket.join("same");
          if (i === 0) socket.join("x");
          client.on("ask", (label: string, cb: (reply: string) => void) => cb(`${name}#${i}:${label}`));
        });
      }
      io.to("same").emit("ev", "root-same");
      io.of("/a").to("same").emit("ev", "a-same");
      io.of("/a").except("x").emit("ev", "a-except-x");
      parent.to("x").emit("ev", "dyn-parent-x");
      io.of("/dyn-1").emit("ev", "dyn1-all");
      io.except("x").emit("ev", "root-except-x");
      io.of("/dyn-2").to("x").except("nothing").emit("ev", "dyn2-x");
      serverSocketOf(io, clients.byNamespace.get("/")![1]).to("same").emit("ev", "root-socket-to-same");
      io.of("/a").in("same").except("x").socketsJoin("joinedA");
      io.of("/dyn-1").in("x").socketsLeave("same");
      await settleAll(io, clients);

      const perNamespace: Record<string, unknown> = {};
      for (const name of names) {
        const nsp: Namespace = io.of(name);
        const rooms: Record<string, string[]> = {};
        for (const room of ["same", "x", "joinedA"]) rooms[room] = ids.sorted(nsp.adapter.rooms.get(room) ?? []);
        perNamespace[name] = {
          rooms,
          fetchSame: ids.sorted((await nsp.in("same").fetchSockets()).map((s) => s.id)),
          acks: ((await nsp.to("x").timeout(10_000).emitWithAck("ask", "hi")) as string[]).sort(),
          allSockets: ids.sorted(await nsp.allSockets()),
        };
      }
      return { receipts: clients.receipts, perNamespace };
    }),
    (observed) => {
      const three = (name: string, labels: string[][]) => Object.fromEntries(labels.map((l, i) => [`${name}#${i}`, l]));
      assert.deepEqual(observed.receipts, {
        ...three("/", [["root-same", "root-socket-to-same"], ["root-same", "root-except-x"], ["root-same", "root-except-x", "root-socket-to-same"]]),
        ...three("/a", [["a-same"], ["a-same", "a-except-x"], ["a-same", "a-except-x"]]),
        ...three("/dyn-1", [["dyn-parent-x", "dyn1-all"], ["dyn1-all"], ["dyn1-all"]]),
        ...three("/dyn-2", [["dyn-parent-x", "dyn2-x"], [], []]),
      });
      const members = (name: string, ...i: number[]) => i.map((n) => `${name}#${n}`);
      assert.deepEqual(observed.perNamespace, {
        "/": {
          rooms: { same: members("/", 0, 1, 2), x: members("/", 0), joinedA: [] },
          fetchSame: members("/", 0, 1, 2),
          acks: ["/#0:hi"],
          allSockets: members("/", 0, 1, 2),
        },
        "/a": {
          rooms: { same: members("/a", 0, 1, 2), x: members("/a", 0), joinedA: members("/a", 1, 2) },
          fetchSame: members("/a", 0, 1, 2),
          acks: ["/a#0:hi"],
          allSockets: members("/a", 0, 1, 2),
        },
        "/dyn-1": {
          rooms: { same: members("/dyn-1", 1, 2), x: members("/dyn-1", 0), joinedA: [] },
          fetchSame: members("/dyn-1", 1, 2),
          acks: ["/dyn-1#0:hi"],
          allSockets: members("/dyn-1", 0, 1, 2),
        },
        "/dyn-2": {
          rooms: { same: members("/dyn-2", 0, 1, 2), x: members("/dyn-2", 0), joinedA: [] },
          fetchSame: members("/dyn-2", 0, 1, 2),
          acks: ["/dyn-2#0:hi"],
          allSockets: members("/dyn-2", 0, 1, 2),
        },
      });
    },
  );
});

test("namespaces: closing one namespace's adapter leaves the others working (offloaded broadcasts too)", async (t) => {
  await acrossVariants(t, (variant: ApiVariant) =>
    withApiServer(variant, async (server) => {
      const { io } = server;
      io.of("/a");
      io.of("/b");
      const parent = io.of(DYNAMIC);
      const names = ["/", "/a", "/b", "/dyn-1"];
      const clients = await connectNamespaces(server, names, 2);
      for (const name of names) for (const client of clients.byNamespace.get(name)!) serverSocketOf(io, client, name).join("r");

      await io.of("/a").adapter.close();
      const offloadedBefore = variant.kind === "sharded" ? sharded(io, "/").stats().pool.offloaded : 0;

      io.to("r").emit("ev", "root-r");
      io.emit("ev", "root-all");
      io.of("/b").to("r").emit("ev", "b-r");
      parent.emit("ev", "dyn");
      const acks = ((await io.of("/b").timeout(10_000).emitWithAck("ev", "b-ack")) as unknown[]).length;
      const fetched = (await io.in("r").fetchSockets()).length;
      io.of("/b").in("r").socketsJoin("r2");
      await settleAll(io, clients);

      // The closed one keeps serving, as the in-memory adapter's does (its close() is a no-op).
      io.of("/a").to("r").emit("ev", "a-after-close");
      const fetchedInClosed = (await io.of("/a").in("r").fetchSockets()).length;
      await settleAll(io, clients);
      if (variant.kind === "sharded") {
        const stats = sharded(io, "/").stats().pool;
        assert.equal(stats.workers, configuredWorkers(variant), "the pool keeps its workers");
        if (variant.offloaded) assert.ok(stats.offloaded >= offloadedBefore + 4, `broadcasts after the close were offloaded (${offloadedBefore} -> ${stats.offloaded})`);
      }
      const others = clients.receipts;
      return { others, acks, fetched, fetchedInClosed, r2: io.of("/b").adapter.rooms.get("r2")?.size ?? 0 };
    }),
    (observed) => {
      assert.deepEqual(observed, {
        others: {
          "/#0": ["root-r", "root-all"],
          "/#1": ["root-r", "root-all"],
          "/b#0": ["b-r", "b-ack"],
          "/b#1": ["b-r", "b-ack"],
          "/dyn-1#0": ["dyn"],
          "/dyn-1#1": ["dyn"],
          "/a#0": ["a-after-close"],
          "/a#1": ["a-after-close"],
        },
        acks: 2,
        fetched: 2,
        fetchedInClosed: 2,
        r2: 2,
      });
    },
  );
});

test("namespaces: dynamic children cleaned up when empty (cleanupEmptyChildNamespaces) come and go without disturbing the others", async (t) => {
  await acrossVariants(t, (variant: ApiVariant) =>
    withApiServer(
      variant,
      async (server) => {
        const { io } = server;
        const parent = io.of(DYNAMIC);
        const root = await connectNamespaces(server, ["/"], 2);
        for (const client of root.byNamespace.get("/")!) serverSocketOf(io, client).join("r");
        const nsps = (io as unknown as { _nsps: Map<string, Namespace> })._nsps;
        const rounds: unknown[] = [];
        const adapters: unknown[] = [];
        for (let round = 0; round < 3; round++) {
          const [child] = await server.connect(1, "/dyn-7");
          const got: unknown[] = [];
          child.on("ev", (label: unknown) => got.push(label));
          serverSocketOf(io, child, "/dyn-7").join("r");
          parent.to("r").emit("ev", `dyn-r-${round}`);
          io.to("r").emit("ev", `root-r-${round}`);
          await settle(io, [child], "/dyn-7");
          const adapter = io.of("/dyn-7").adapter;
          child.disconnect();
          await until(() => !nsps.has("/dyn-7"), "the empty child namespace is removed");
          rounds.push({
            got,
            // a new child namespace (and adapter) each round
            fresh: !adapters.includes(adapter),
            poolWorkers: adapter instanceof ShardedAdapter ? sharded(io, "/").stats().pool.workers === configuredWorkers(variant) : true,
          });
          adapters.push(adapter);
        }
        io.to("r").emit("ev", "root-last");
        await settleAll(io, root);
        if (variant.offloaded) assert.ok(sharded(io, "/").stats().pool.offloaded > 0);
        return { rounds, root: root.receipts, children: childrenOf(parent).size };
      },
      { cleanupEmptyChildNamespaces: true },
    ),
    (observed) => {
      assert.deepEqual(observed, {
        rounds: [0, 1, 2].map((round) => ({ got: [`dyn-r-${round}`], fresh: true, poolWorkers: true })),
        root: {
          "/#0": ["root-r-0", "root-r-1", "root-r-2", "root-last"],
          "/#1": ["root-r-0", "root-r-1", "root-r-2", "root-last"],
        },
        children: 0,
      });
    },
  );
});
