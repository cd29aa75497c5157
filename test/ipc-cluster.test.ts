/**
 * Issue #12: a Node.js cluster, workers linked through the primary over IPC.
 * The test forks a primary (test/ipc-cluster-primary.ts) that forks the
 * workers, each on its own port (`exclusive: true`), with websocket clients
 * on chosen workers; and one run through @socket.io/sticky on one shared
 * port with polling clients.
 *
 * - every cross-worker operation (test/cluster-operations.ts, the suite the
 *   Redis fleets pass) from each kind of worker, under this package's primary
 *   and under @socket.io/cluster-adapter's, ours mixed with official workers;
 * - room routing: the primary sends a room broadcast only to the workers
 *   holding the room (official workers get everything); a worker drops
 *   unwalked a broadcast to rooms it has no member in;
 * - a worker SIGKILLed mid-test, restarted; bad IPC messages; a stalled
 *   worker and the primary's bounded queue; connection state recovery.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { names, sleep, unique, waitUntil, type Cluster, type ClusterNode } from "./cluster-helpers";
import { describeClusterOperations } from "./cluster-operations";
import type { WireValue } from "./cluster-protocol";
import { startIpcCluster, waitServerCount, type IpcCluster } from "./ipc-cluster-helpers";
import type { PrimaryStats, ShardedIpcAdapterStats } from "../lib/index";

describeClusterOperations(
  "node cluster, this package's primary: sharded + sharded + official workers",
  { nodes: ["sharded-ipc", "sharded-ipc", "official-ipc"], origins: [0, 2] },
  async () => {
    const started = await startIpcCluster({ primary: "sharded", workers: ["sharded-ipc", "sharded-ipc", "official-ipc"], primaryOptions: { roomRouting: true } });
    return { cluster: started.cluster, stop: started.stop };
  },
);

describeClusterOperations(
  "node cluster, @socket.io/cluster-adapter's primary: sharded + official + sharded workers",
  { nodes: ["sharded-ipc", "official-ipc", "sharded-ipc"], origins: [0, 1] },
  async () => {
    const started = await startIpcCluster({ primary: "official", workers: ["sharded-ipc", "official-ipc", "sharded-ipc"] });
    return { cluster: started.cluster, stop: started.stop };
  },
);

async function adapterStats(node: ClusterNode): Promise<ShardedIpcAdapterStats> {
  return (await node.request({ op: "stats" })) as unknown as ShardedIpcAdapterStats;
}

async function primaryStats(running: IpcCluster): Promise<PrimaryStats> {
  return (await running.primary.stats()) as PrimaryStats;
}

describe("node cluster: room routing (#5226)", () => {
  let running: IpcCluster;
  let cluster: Cluster;
  before(async () => {
    // Heartbeats go to every worker: a long interval keeps them out of the windows that count messages received.
    running = await startIpcCluster({
      primary: "sharded",
      workers: ["sharded-ipc", "sharded-ipc", "official-ipc"],
      primaryOptions: { roomRouting: true },
      heartbeatInterval: 60_000,
      heartbeatTimeout: 120_000,
    });
    cluster = running.cluster;
  });
  after(async () => {
    await running?.stop();
  });

  test("the primary sends a room broadcast only to the workers holding the room, and to official workers", async () => {
    const [n0, n1, n2] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const room = unique("n1-only");
    await cluster.client("n1c0").join(room);
    const n2Room = unique("n2-only");
    await cluster.client("n2c1").join(n2Room);
    // The join reaches the primary before the next request's broadcast (one channel, in order).
    const before = await primaryStats(running);
    const n1Before = (await adapterStats(n1)).ipc;
    const tag = unique("routed");
    for (let i = 0; i < 5; i++) await n0.request({ op: "broadcast", event: "news", args: [tag], rooms: [room] });
    await waitUntil(() => cluster.client("n1c0").count("news", tag) === 5, { message: "5 broadcasts to reach n1c0" });
    await cluster.fence(n0);
    assert.deepEqual(
      cluster.clients.filter((client) => client.count("news", tag) > 0).map((client) => client.name),
      ["n1c0"],
    );
    const afterStats = await primaryStats(running);
    // n0 sent 5 broadcasts (and fences, which go everywhere): n1 and the official n2 get them, n0 is the sender.
    assert.equal(afterStats.routedAway - before.routedAway, 0, "no other sharded worker to route away from");
    assert.equal((await adapterStats(n1)).ipc.broadcastsSkipped, n1Before.broadcastsSkipped, "n1 delivered them all");

    // From the official worker, to a room only n1 holds: n0 (ours, no member) does not get them.
    const n0Before = (await adapterStats(n0)).ipc;
    const before2 = await primaryStats(running);
    const tag2 = unique("routed-from-official");
    for (let i = 0; i < 5; i++) await n2.request({ op: "broadcast", event: "news", args: [tag2], rooms: [room] });
    await waitUntil(() => cluster.client("n1c0").count("news", tag2) === 5, { message: "5 broadcasts from n2 to reach n1c0" });
    const after2 = await primaryStats(running);
    assert.equal(after2.routedAway - before2.routedAway, 5, "n0 skipped by the primary for each of the 5");
    const n0After = (await adapterStats(n0)).ipc;
    assert.equal(n0After.received - n0Before.received, 0, "n0 received none of them");

    // To a room of the official worker only: both sharded workers are skipped.
    const before3 = await primaryStats(running);
    const tag3 = unique("to-official-room");
    await n0.request({ op: "broadcast", event: "news", args: [tag3], rooms: [n2Room] });
    await cluster.expectDelivered(n0, "news", tag3, [cluster.client("n2c1")], "to the official worker's room");
    const after3 = await primaryStats(running);
    assert.equal(after3.routedAway - before3.routedAway, 1, "n1 skipped (n0 is the sender, n2 is official)");
    assert.ok(after3.perWorker, "per-worker stats");
    assert.deepEqual(
      Object.values(after3.perWorker).map((worker) => worker.routedAdapters).sort(),
      [0, 1, 1],
      "two workers send their rooms, the official one does not",
    );
  });

  test("a number room is routed as its string (the rooms messages carry String(room)); nothing is rejected", async () => {
    const [n0] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const room = 700_000 + Math.floor(Math.random() * 100_000);
    // The harness types rooms as strings; socket.io takes numbers too.
    await cluster.client("n1c0").join(room as unknown as string);
    const tag = unique("number-room");
    await n0.request({ op: "broadcast", event: "news", args: [tag], rooms: [room as unknown as string] });
    await waitUntil(() => cluster.client("n1c0").count("news", tag) === 1, { message: "the broadcast to a number room reaches n1c0" });
    await cluster.fence(n0);
    assert.deepEqual(
      cluster.clients.filter((client) => client.count("news", tag) > 0).map((client) => client.name),
      ["n1c0"],
    );
  });

  test("a room left by its last member is forgotten by the primary", async () => {
    const [n0, n1] = cluster.nodes as [ClusterNode, ClusterNode];
    const room = unique("brief");
    await cluster.client("n1c1").join(room);
    await cluster.client("n1c1").leave(room);
    const before = await primaryStats(running);
    await n0.request({ op: "broadcast", event: "news", args: [unique("nobody")], rooms: [room] });
    await cluster.fence(n0);
    const after = await primaryStats(running);
    assert.equal(after.routedAway - before.routedAway, 1, "n1 no longer holds the room");
    assert.equal((await adapterStats(n1)).ipc.invalid, 0);
  });
});

for (const setup of [
  { label: "official primary", primary: "official", primaryOptions: undefined },
  { label: "this package's primary with its default (roomRouting: false)", primary: "sharded", primaryOptions: undefined },
] as const) {
  describe(`node cluster: a worker drops unwalked a broadcast to rooms it has no member in (${setup.label})`, () => {
    let running: IpcCluster;
    before(async () => {
      running = await startIpcCluster({ primary: setup.primary, primaryOptions: setup.primaryOptions, workers: ["sharded-ipc", "sharded-ipc"] });
    });
    after(async () => {
      await running?.stop();
    });

    test("broadcastsSkipped counts them; members still get theirs; no room updates are sent", async () => {
      const cluster = running.cluster;
      const [n0, n1] = cluster.nodes as [ClusterNode, ClusterNode];
      const room = unique("n0-room");
      await cluster.client("n0c0").join(room);
      const before = (await adapterStats(n0)).ipc;
      const n1Before = (await adapterStats(n1)).ipc;
      const tag = unique("skipped");
      for (let i = 0; i < 3; i++) await n1.request({ op: "broadcast", event: "news", args: [tag], rooms: [unique("nobody-here")] });
      await n1.request({ op: "broadcast", event: "news", args: [tag], rooms: [room] });
      await cluster.expectDelivered(n1, "news", tag, [cluster.client("n0c0")], "to n0's room");
      const after = (await adapterStats(n0)).ipc;
      assert.equal(after.broadcastsSkipped - before.broadcastsSkipped, 3);
      assert.equal(after.routingPrimary, false, "no hello from the primary");
      assert.equal((await adapterStats(n1)).ipc.roomUpdatesSent, n1Before.roomUpdatesSent, "no room updates without a routing primary");
      if (setup.primary === "sharded") assert.equal((await primaryStats(running)).routedAway, 0, "nothing routed away");
    });
  });
}

describe("node cluster: failure", () => {
  for (const primary of ["sharded", "official"] as const) {
    test(`a worker SIGKILLed mid-test (${primary} primary): the others keep delivering, serverCount drops, a restarted worker rejoins`, async () => {
      const running = await startIpcCluster({ primary, workers: ["sharded-ipc", "official-ipc", "sharded-ipc"], heartbeatInterval: 200, heartbeatTimeout: 1500 });
      try {
        const cluster = running.cluster;
        const [n0, n1, n2] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
        const room = unique("doomed-room");
        await cluster.client("n2c0").join(room);
        await cluster.client("n1c0").join(room);
        // A stream of broadcasts from n0 while n2 dies.
        let streaming = true;
        let sent = 0;
        const stream = (async () => {
          while (streaming) {
            await n0.request({ op: "broadcast", event: "tick", args: [sent++] });
            await sleep(5);
          }
        })();
        await sleep(100);
        await n2.kill();
        // Our primary tells the others at once; under the official one the heartbeat timeout does.
        await waitServerCount(n0, 2);
        await waitServerCount(n1, 2);
        await sleep(100);
        streaming = false;
        await stream;
        const live = cluster.connectedClients.filter((client) => client.node !== n2);
        await cluster.fence(n0);
        for (const client of live) assert.equal(client.count("tick"), sent, `${client.name} got every tick`);

        // A room broadcast still reaches the living member; fetchSockets answers without the dead worker.
        const tag = unique("after-kill");
        await n0.request({ op: "broadcast", event: "news", args: [tag], rooms: [room] });
        await cluster.expectDelivered(n0, "news", tag, [cluster.client("n1c0")], "to the room after the kill");
        const sockets = await n1.request({ op: "fetchSockets", timeout: 3000 });
        assert.deepEqual(
          sockets.map((socket) => (socket.data as { client: string }).client).sort(),
          names(live),
        );
        if (primary === "sharded") {
          const stats = await primaryStats(running);
          assert.equal(stats.workers, 2, "the primary forgot the dead worker");
          assert.equal(Object.keys(stats.perWorker).length, 2);
        }

        // The application restarts a worker: it rejoins.
        const n3 = await running.addWorker("sharded-ipc", 1);
        for (const node of [n0, n1, n3]) assert.equal(await node.serverCount(), 3, node.name);
        const tag2 = unique("after-restart");
        await n3.request({ op: "broadcast", event: "news", args: [tag2] });
        await cluster.expectDelivered(n3, "news", tag2, cluster.connectedClients, "from the restarted worker");
      } finally {
        await running.stop();
      }
    });
  }
});

describe("node cluster: untrusted IPC input and bounded queues", () => {
  let running: IpcCluster;
  let cluster: Cluster;
  before(async () => {
    running = await startIpcCluster({ primary: "sharded", workers: ["sharded-ipc", "sharded-ipc"], primaryOptions: { maxInFlight: 4, maxQueued: 50 } });
    cluster = running.cluster;
  });
  after(async () => {
    await running?.stop();
  });

  test("bad messages to the primary and to a worker are dropped and counted; nothing stops", async () => {
    const [n0, n1] = cluster.nodes as [ClusterNode, ClusterNode];
    const bad: WireValue[] = [
      { source: "_sio_adapter" },
      { source: "_sio_adapter", uid: 5, nsp: "/", type: 3 },
      { source: "_sio_adapter", uid: "x", nsp: "/", type: 3, data: { packet: "no", opts: {} } },
      { source: "_sio_adapter", uid: "x", nsp: "/", type: 3, data: { packet: { type: 2, data: [] }, opts: { rooms: "r", except: [] } } },
      { source: "_sio_adapter", uid: "x", nsp: "/", type: 8, data: { requestId: "r", sockets: [] } },
      { source: "_sio_adapter", uid: "x", nsp: "/", type: 99, data: {} },
      { source: "_sio_sharded", kind: "rooms", uid: "x", nsp: "/", reset: "yes", add: [], remove: [] },
      { source: "_sio_sharded", kind: "evil" },
    ];
    const before = await primaryStats(running);
    for (const message of bad) await n0.request({ op: "ipcSend", message });
    // A message forged as another worker's adapter.
    const n1Uid = (await adapterStats(n1)).ipc.uid;
    await n0.request({ op: "ipcSend", message: { source: "_sio_adapter", uid: n1Uid, nsp: "/", type: 2 } });
    await waitUntil(async () => (await primaryStats(running)).invalid - before.invalid === bad.length + 1, {
      message: `the primary to count ${bad.length + 1} invalid messages`,
    });

    // Straight to a worker (as if the primary were broken).
    const workerBefore = (await adapterStats(n1)).ipc;
    const n1Channel = n1.process;
    for (const message of bad.slice(0, 6)) n1Channel.send(message as never);
    n1Channel.send({ source: "_sio_sharded", kind: "rooms", uid: "x", nsp: "/", reset: true, add: [], remove: [] } as never);
    await waitUntil(async () => (await adapterStats(n1)).ipc.invalid - workerBefore.invalid === 7, { message: "the worker to count 7 invalid messages" });

    const tag = unique("still-working");
    await n0.request({ op: "broadcast", event: "news", args: [tag] });
    await cluster.expectDelivered(n0, "news", tag, cluster.connectedClients, "after the bad messages");
    assert.equal(await n1.serverCount(), 2);
  });

  test("a stalled worker: the primary keeps at most maxQueued messages for it, drops the oldest, counts them; it catches up", async () => {
    const [n0, n1] = cluster.nodes as [ClusterNode, ClusterNode];
    const big = "x".repeat(32 * 1024);
    n1.process.kill("SIGSTOP");
    try {
      // ~6 MB for n1: far beyond what the socket buffers hold.
      await Promise.all(Array.from({ length: 200 }, (_, i) => n0.request({ op: "broadcast", event: "bulk", args: [i, big] })));
      let stats = await primaryStats(running);
      await waitUntil(
        async () => {
          stats = await primaryStats(running);
          return stats.dropped > 0;
        },
        { timeout: 10_000, message: () => `drops at the primary (${JSON.stringify(stats)})` },
      );
      assert.ok(stats.queued <= 50, `queued ${stats.queued}`);
      const n1Stats = Object.values(stats.perWorker).find((worker) => worker.dropped > 0)!;
      assert.ok(n1Stats.inFlight <= 4 && n1Stats.queued <= 50, JSON.stringify(n1Stats));
    } finally {
      n1.process.kill("SIGCONT");
    }
    // It reads again: the newest broadcasts reach its clients, and the cluster works.
    await waitUntil(() => cluster.clientsOf(n1).every((client) => client.count("bulk", 199) > 0), { timeout: 20_000, message: "n1's clients to get the last one" });
    for (const client of cluster.clientsOf(n1)) {
      const got = client.receipts("bulk").map((receipt) => receipt.args[0] as number);
      assert.ok(got.length < 200, `${client.name} lost the oldest (${got.length})`);
    }
    await cluster.waitFormed(20_000);
  });
});

describe("node cluster: connection state recovery", () => {
  let running: IpcCluster;
  before(async () => {
    running = await startIpcCluster({
      primary: "sharded",
      workers: ["sharded-ipc", "sharded-ipc"],
      connectionStateRecovery: { maxDisconnectionDuration: 30_000 },
    });
  });
  after(async () => {
    await running?.stop();
  });

  test("a client reconnecting to its worker gets what it missed from any worker; on another worker it starts a new session", async () => {
    const cluster = running.cluster;
    const [n0, n1] = cluster.nodes as [ClusterNode, ClusterNode];
    const client = cluster.client("n0c0");
    await client.join("kept");
    await n1.request({ op: "broadcast", event: "news", args: [unique("first")] });
    await waitUntil(() => client.count("news") > 0, { message: "a first event (for an offset)" });
    await client.closeTransport();
    const missed = unique("missed");
    await n1.request({ op: "broadcast", event: "news", args: [missed], rooms: ["kept"] });
    await n0.request({ op: "broadcast", event: "news", args: [missed + "-local"] });
    await sleep(200);
    await client.reconnect();
    assert.equal(client.recovered, true, "recovered on the same worker");
    await waitUntil(() => client.count("news", missed) === 1 && client.count("news", missed + "-local") === 1, {
      message: "the missed broadcasts (from the other worker and from its own)",
    });

    const other = cluster.client("n0c1");
    await n1.request({ op: "broadcast", event: "news", args: [unique("offset")] });
    await waitUntil(() => other.count("news") > 0, { message: "an offset for n0c1" });
    await other.closeTransport();
    await other.reconnect(n1);
    assert.equal(other.recovered, false, "another worker has not its session (as with @socket.io/cluster-adapter)");
  });
});

describeClusterOperations(
  "node cluster behind @socket.io/sticky (one shared port, polling clients), this package's primary: sharded + official + sharded workers",
  { nodes: ["sharded-ipc", "official-ipc", "sharded-ipc"], origins: [0, 1], polling: true },
  async () => {
    const started = await startIpcCluster({ primary: "sharded", workers: ["sharded-ipc", "official-ipc", "sharded-ipc"], sticky: true });
    return { cluster: started.cluster, stop: started.stop };
  },
);
