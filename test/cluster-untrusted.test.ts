/**
 * Issue #14: Redis is the trust boundary between nodes. Malformed messages
 * written straight to the stream and to the public and private channels,
 * forged heartbeats, a forged #5226 `rooms` field, and a fuzz run of a few
 * thousand random and mutated messages: every node stays up, counts what it
 * drops in `stats().cluster.rejected`, and broadcasts and fetchSockets round
 * trips across the nodes still work. The nodes use node-redis, ioredis, and
 * ioredis with `lazyConnect` and `enableOfflineQueue: false`.
 *
 * No official node here: it survives these messages too, but it forwards a
 * broadcast packet it does not check (an event named "disconnect", data that
 * is not an array) to its clients, and socket.io-client drops the connection
 * on it ("parse error"), which would fail the round-trip checks.
 *
 * The fuzz run is seeded: it prints its seed, and FUZZ_SEED=<seed> replays it.
 */
import assert from "node:assert/strict";
import { after, before, describe, test, type TestContext } from "node:test";
import {
  SHARDED,
  redisServerForFile,
  startCluster,
  unique,
  waitUntil,
  type Cluster,
  type ClusterNode,
} from "./cluster-helpers";
import {
  connectRawRedis,
  forgeries,
  malformedMessages,
  malformedStreamEntries,
  payloadOf,
  rejectionsExpected,
  validBroadcast,
  type RawRedis,
} from "./cluster-forgery";
import { MessageType } from "socket.io-adapter";
import { packMessage, toStreamFields } from "../lib/cluster-messages";

const PUBLIC_CHANNEL = "socket.io#/#";
const STREAM = "socket.io";

/** `stats().cluster` of a sharded node (the fields these tests read). */
interface ClusterCounters {
  rejected: number;
  lastRejection: string | null;
  peers: number;
  unconfirmedPeers: number;
}

async function countersOf(node: ClusterNode): Promise<ClusterCounters> {
  const stats = (await node.request({ op: "stats" })) as { cluster?: ClusterCounters } | null;
  assert.ok(stats?.cluster !== undefined, `${node.label} has stats().cluster`);
  return stats.cluster;
}

const redis = redisServerForFile();

describe("untrusted input from Redis: sharded nodes on node-redis, ioredis, ioredis without offline queue", () => {
  let cluster: Cluster;
  let raw: RawRedis;
  const sharded = () => cluster.nodes.filter((node) => node.spec.adapter === "sharded");

  before(async () => {
    // A long heartbeatTimeout: a phantom node wrongly counted would stay counted for the whole test.
    cluster = await startCluster({
      redis,
      nodes: [SHARDED, { adapter: "sharded", client: "ioredis" }, { adapter: "sharded", client: "ioredis-no-offline-queue" }],
      clientsPerNode: 2,
      heartbeatInterval: 200,
      heartbeatTimeout: 10_000,
    });
    raw = await connectRawRedis(redis.url);
  });
  after(async () => {
    await raw?.close();
    await cluster?.close();
  });

  /** Waits until each sharded node dropped at least `count` more messages than `before`, and returns the counters. */
  async function waitRejected(before: number[], count: number, what: string): Promise<ClusterCounters[]> {
    let counters: ClusterCounters[] = [];
    await waitUntil(
      async () => {
        counters = await Promise.all(sharded().map(countersOf));
        return counters.every((c, i) => c.rejected >= before[i]! + count);
      },
      { timeout: 15_000, interval: 25, message: () => `${what}: rejected ${counters.map((c) => c.rejected).join(", ")}, wanted ${before.map((n) => n + count).join(", ")}` },
    );
    return counters;
  }

  const rejectedNow = async () => (await Promise.all(sharded().map(countersOf))).map((c) => c.rejected);

  /** Every node up; a broadcast from each node reaches every client once; fetchSockets from each node returns every client. */
  async function assertHealthy(what: string): Promise<void> {
    for (const node of cluster.nodes) assert.ok(node.alive, `${node.label} still running after ${what}`);
    const everyone = cluster.clients.map((client) => client.id).sort();
    for (const node of cluster.nodes) {
      const tag = unique(`after-${node.name}`);
      await node.request({ op: "broadcast", event: "news", args: [tag] });
      await cluster.expectDelivered(node, "news", tag, cluster.clients, `broadcast from ${node.name} after ${what}`);
      const fetched = await node.request({ op: "fetchSockets", timeout: 8000 });
      assert.deepEqual(fetched.map((socket) => socket.id).sort(), everyone, `fetchSockets from ${node.label} after ${what}`);
    }
  }

  test("each malformed pub/sub message, on the public channel and on every private channel", async (t) => {
    const privateChannels = await raw.privateChannels();
    assert.equal(privateChannels.length, cluster.nodes.length, `one private channel per node: ${privateChannels.join(", ")}`);
    const messages = malformedMessages();
    for (const [i, { name, message, reason }] of messages.entries()) {
      const before = await rejectedNow();
      for (const channel of [PUBLIC_CHANNEL, ...privateChannels]) await raw.publish(channel, payloadOf(message));
      // Each sharded node gets it twice: on the public channel and on its own private one.
      const counters = await waitRejected(before, 2, name);
      for (const [n, c] of counters.entries()) {
        assert.match((c.lastRejection ?? "").replace(/^pub\/sub message: /, ""), reason, `${sharded()[n]!.label}: reason for ${name}`);
      }
      // The full round trip after the issue's own examples and every fifth other one, and after the last.
      if (i < 12 || i % 5 === 0 || i === messages.length - 1) await assertHealthy(name);
    }
    t.diagnostic(`${messages.length} malformed messages on ${privateChannels.length + 1} channels; counters: ${(await rejectedNow()).join(", ")}`);
  });

  test("each malformed stream entry", async () => {
    for (const { name, fields } of malformedStreamEntries()) {
      const before = await rejectedNow();
      await raw.xAdd(STREAM, fields);
      await waitRejected(before, 1, name);
    }
    await assertHealthy("the malformed stream entries");
  });

  test("a rooms field forged onto a broadcast to everyone: every node delivers it (as official nodes, which ignore the field)", async () => {
    const tag = unique("forged-rooms");
    const fields = { ...toStreamFields(validBroadcast([], ["news", tag])), rooms: JSON.stringify(["nowhere"]) };
    await raw.xAdd(STREAM, fields);
    await cluster.expectDelivered(cluster.nodes[0]!, "news", tag, cluster.clients, "broadcast to everyone with a forged rooms field");
  });

  test("1000 heartbeats from made-up uids: not counted, fetchSockets and serverCount unaffected", async () => {
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 1000; i++) {
      const type = i % 10 === 0 ? MessageType.INITIAL_HEARTBEAT : MessageType.HEARTBEAT;
      writes.push(raw.publish(PUBLIC_CHANNEL, packMessage({ uid: `phantom-${i}`, nsp: "/", type })));
    }
    await Promise.all(writes);
    // A malformed message after them, on the same channel: once it is counted, the heartbeats were read.
    const before = await rejectedNow();
    await raw.publish(PUBLIC_CHANNEL, Buffer.from([0xc0]));
    await waitRejected(before, 1, "the marker after the heartbeats");
    await waitUntil(async () => (await Promise.all(sharded().map(countersOf))).every((c) => c.unconfirmedPeers === 0), {
      timeout: 10_000,
      message: "the phantom uids to be checked and dropped",
    });
    for (const node of cluster.nodes) assert.equal(await node.serverCount(), cluster.nodes.length, `serverCount on ${node.label}`);
    for (const node of sharded()) assert.equal((await countersOf(node)).peers, sharded().length - 1, `peers of ${node.label}`);
    // fetchSockets waits for the real nodes only: a 3 s timeout would fail if a phantom were awaited.
    const everyone = cluster.clients.map((client) => client.id).sort();
    for (const node of cluster.nodes) {
      const fetched = await node.request({ op: "fetchSockets", timeout: 3000 });
      assert.deepEqual(fetched.map((socket) => socket.id).sort(), everyone, `fetchSockets from ${node.label}`);
    }
    const sse = await cluster.nodes[0]!.request({ op: "serverSideEmitWithAck", event: "cluster-test", args: ["after-phantoms"] });
    assert.deepEqual("responses" in sse ? [...sse.responses].sort() : sse, ["n1", "n2"], "serverSideEmit with acks from n0");
  });

  test("fuzz: a few thousand random and mutated messages on the stream and both kinds of channel", async (t: TestContext) => {
    const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
    t.diagnostic(`fuzz seed ${seed} (replay with FUZZ_SEED=${seed})`);
    console.log(`# cluster-untrusted fuzz seed ${seed}`);
    const privateChannels = await raw.privateChannels();
    const channels = [PUBLIC_CHANNEL, ...privateChannels];
    const forged = forgeries(seed, 3000, channels);
    const before = await rejectedNow();
    for (let i = 0; i < forged.length; i += 100) {
      await Promise.all(
        forged.slice(i, i + 100).map((forgery) => (forgery.kind === "publish" ? raw.publish(forgery.channel, forgery.payload) : raw.xAdd(STREAM, forgery.fields).then(() => undefined))),
      );
    }
    // Each sharded node drops at least the invalid messages of the public channel and of the stream,
    // plus those of its own private channel (which one is its own is not known here: the least of them).
    const expected = Math.min(...privateChannels.map((channel) => rejectionsExpected(forged, [PUBLIC_CHANNEL, channel])));
    const counters = await waitRejected(before, expected, `the fuzz run (seed ${seed})`);
    t.diagnostic(`${forged.length} forged writes; each sharded node dropped at least ${expected}; counters moved by ${counters.map((c, i) => c.rejected - before[i]!).join(", ")}`);
    await assertHealthy(`the fuzz run (seed ${seed})`);
    const counts = await cluster.serverCounts();
    assert.deepEqual(counts, cluster.nodes.map(() => cluster.nodes.length), "serverCount on every node after the fuzz run");
  });
});
