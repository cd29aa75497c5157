/**
 * Issue #14: nodes whose ioredis client has `lazyConnect: true` and
 * `enableOfflineQueue: false` (their duplicated connections inherit both:
 * they must be connected explicitly, and any command sent before they are
 * ready fails instead of waiting), beside node-redis nodes and an official
 * node with the same options: the whole cluster protocol works across them.
 * And a stream reader whose connection is killed resumes after the last
 * entry it read: an entry written while it reconnects is delivered.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createClient } from "redis";
import { toStreamFields } from "../lib/cluster-messages";
import { connectRawRedis, validBroadcast, type RawRedis } from "./cluster-forgery";
import { fleetName, names, redisServerForFile, startCluster, unique, waitUntil, type Cluster, type NodeSpec } from "./cluster-helpers";

const NO_OFFLINE_QUEUE = "ioredis-no-offline-queue";
const FLEET: readonly NodeSpec[] = [
  { adapter: "sharded", client: NO_OFFLINE_QUEUE },
  { adapter: "sharded", client: NO_OFFLINE_QUEUE },
  { adapter: "sharded", client: "redis" },
  { adapter: "official", client: NO_OFFLINE_QUEUE },
];

const redis = redisServerForFile();

describe(`lazyConnect + enableOfflineQueue: false, ${fleetName(FLEET)}`, () => {
  let cluster: Cluster;
  let raw: RawRedis;
  before(async () => {
    cluster = await startCluster({ redis, nodes: FLEET, clientsPerNode: 2 });
    raw = await connectRawRedis(redis.url);
  });
  after(async () => {
    await raw?.close();
    await cluster?.close();
  });

  test("serverCount, broadcasts to everyone and to a room, acks, fetchSockets and serverSideEmit with acks, from every node", async () => {
    const counts = await cluster.serverCounts();
    assert.deepEqual(counts, FLEET.map(() => FLEET.length), "serverCount on every node");
    const roomMembers = [cluster.client("n0c1"), cluster.client("n2c0"), cluster.client("n3c1")];
    const room = unique("room");
    for (const client of roomMembers) await client.join(room);
    const everyone = cluster.clients.map((client) => client.id).sort();
    for (const node of cluster.nodes) {
      const toAll = unique(`all-${node.name}`);
      await node.request({ op: "broadcast", event: "news", args: [toAll] });
      await cluster.expectDelivered(node, "news", toAll, cluster.clients, `broadcast from ${node.label}`);
      const toRoom = unique(`room-${node.name}`);
      await node.request({ op: "broadcast", event: "news", args: [toRoom], rooms: [room] });
      await cluster.expectDelivered(node, "news", toRoom, roomMembers, `broadcast to a room from ${node.label}`);
      const acks = await node.request({ op: "emitWithAck", event: "question", args: [unique("ack")], timeout: 5000 });
      assert.deepEqual("responses" in acks ? [...acks.responses].sort() : acks, names(cluster.clients), `emitWithAck from ${node.label}`);
      const fetched = await node.request({ op: "fetchSockets", timeout: 5000 });
      assert.deepEqual(fetched.map((socket) => socket.id).sort(), everyone, `fetchSockets from ${node.label}`);
      const sse = await node.request({ op: "serverSideEmitWithAck", event: "cluster-test", args: [unique("sse")] });
      const others = cluster.nodes.filter((other) => other !== node).map((other) => other.name);
      assert.deepEqual("responses" in sse ? [...sse.responses].sort() : sse, others, `serverSideEmit with acks from ${node.label}`);
    }
  });

  test("stream readers killed (CLIENT KILL): an entry written before they reconnect is delivered once by every sharded node", async () => {
    const admin = createClient({ url: redis.url });
    admin.on("error", () => undefined);
    await admin.connect();
    try {
      const list = String(await admin.sendCommand(["CLIENT", "LIST"]));
      const readers = list.split("\n").filter((line) => / cmd=xread /.test(line)).map((line) => /\bid=(\d+)/.exec(line)![1]!);
      assert.ok(readers.length >= FLEET.length, `one blocked XREAD per node (found ${readers.length})`);
      for (const id of readers) await admin.sendCommand(["CLIENT", "KILL", "ID", id]);
      const tag = unique("while-reconnecting");
      await raw.xAdd("socket.io", toStreamFields(validBroadcast([], ["news", tag])));
      const shardedClients = cluster.clients.filter((client) => client.node.spec.adapter === "sharded");
      await waitUntil(() => shardedClients.every((client) => client.count("news", tag) > 0), {
        timeout: 15_000,
        message: () => `the entry to reach ${shardedClients.filter((client) => client.count("news", tag) === 0).map((c) => c.name).join(", ")}`,
      });
      for (const node of cluster.nodes) await cluster.fence(node, { timeout: 15_000, resend: 250 });
      for (const client of shardedClients) assert.equal(client.count("news", tag), 1, `${client.name} got it once`);
    } finally {
      admin.destroy();
    }
  });
});
