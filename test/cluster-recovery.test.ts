/**
 * Issue #6, connection state recovery across nodes: with socket.io's
 * `connectionStateRecovery` on, a client whose transport closed reconnects,
 * to the node it was on or to another one, and gets its socket back (same id,
 * same rooms) with the broadcasts it missed, exactly once and in order. The
 * session and the missed packets are kept in Redis (a session key and the
 * stream), in the official adapter's format, so that a session persisted by
 * one adapter is restored by the other.
 *
 * Fleets of two nodes: official ×2 (the reference), sharded ×2, and
 * sharded + official with the client starting on either node, so that every
 * persist → restore pair is exercised: sharded → sharded, sharded → official,
 * official → sharded, official → official.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createClient } from "redis";
import {
  fleetName,
  OFFICIAL,
  SHARDED,
  startCluster,
  unique,
  waitUntil,
  type Cluster,
  type ClusterNode,
  type NodeSpec,
  type TestClient,
} from "./cluster-helpers";
import { wireBuffer, type Target, type WireValue } from "./cluster-protocol";
import { startRedisServer, type RedisServer } from "./redis-server";

/** Both adapters' default session key prefix. */
const SESSION_KEY_PREFIX = "sio:session:";
const RECOVERY = { maxDisconnectionDuration: 10_000 };

interface Fleet {
  readonly nodes: readonly [NodeSpec, NodeSpec];
  /** Nodes the roaming client starts on. */
  readonly starts: readonly number[];
}

const FLEETS: readonly Fleet[] = [
  { nodes: [OFFICIAL, OFFICIAL], starts: [0] },
  { nodes: [SHARDED, SHARDED], starts: [0] },
  { nodes: [SHARDED, OFFICIAL], starts: [0, 1] },
];

let redis: RedisServer;
let keys: ReturnType<typeof createClient>;
before(async () => {
  redis = await startRedisServer();
  keys = createClient({ url: redis.url });
  await keys.connect();
});
after(async () => {
  keys?.destroy();
  await redis?.stop();
});

/** The tags of the `news` events a client got, in the order it got them. */
function newsOf(client: TestClient): string[] {
  return client.receipts("news").map((receipt) => receipt.args[0] as string);
}

for (const fleet of FLEETS) {
  describe(`connection state recovery, ${fleetName(fleet.nodes)}`, () => {
    let cluster: Cluster;

    before(async () => {
      cluster = await startCluster({ redis, nodes: fleet.nodes, clientsPerNode: 2, connectionStateRecovery: RECOVERY });
    });
    after(async () => {
      await cluster?.close();
    });

    for (const start of fleet.starts) {
      for (const end of [start, 1 - start]) {
        const from = fleet.nodes[start]!.adapter;
        const to = fleet.nodes[end]!.adapter;
        const where = end === start ? `to the same node (n${start}, ${from})` : `to the other node (n${start} ${from} → n${end} ${to})`;

        test(`a client whose transport closed reconnects ${where}: same id and rooms, the missed broadcasts once, in order`, async (t) => {
          const [a, b] = cluster.nodes as [ClusterNode, ClusterNode];
          const home = cluster.nodes[start]!;
          const away = cluster.nodes[end]!;
          const r1 = unique("r1");
          const r2 = unique("r2");
          // r1 has members on its home node only (so the other node, when sharded, skips r1 broadcasts until the roamer comes back there):
          // hc0 (home) in r1 and r2, hc1 (home) in r2, oc0 (other node) in r2, oc1 (other node) in neither; the roamer in r1.
          const other = cluster.nodes[1 - start]!;
          const names = [`${home.name}c0`, `${home.name}c1`, `${other.name}c0`, `${other.name}c1`];
          const [hc0, hc1, oc0, oc1] = names.map((name) => cluster.client(name)) as [TestClient, TestClient, TestClient, TestClient];
          const [roamer] = (await cluster.connect(home, 1, unique("roamer") + "-")) as [TestClient];
          // Gone after the test, passed or failed (it would get the next tests' broadcasts to everyone).
          t.after(() => roamer.disconnect());
          await Promise.all([hc0.join(r1, r2), hc1.join(r2), oc0.join(r2), roamer.join(r1)]);
          const members: Record<string, TestClient[]> = { [r1]: [hc0, roamer], [r2]: [hc0, hc1, oc0] };
          const everyone = [hc0, hc1, oc0, oc1, roamer];
          // Socket ids now (a client's socket.id is unset while it is disconnected).
          const ids = new Map(everyone.map((client) => [client, client.id]));
          /** The in-memory semantics: who a broadcast to `rooms` except `except` reaches. */
          const reached = ({ rooms = [], except = [] }: Target) =>
            everyone.filter((client) => {
              const inRoom = (room: string) => room === ids.get(client) || (members[room]?.includes(client) ?? false);
              return (rooms.length === 0 || rooms.some(inRoom)) && !except.some(inRoom);
            });

          /** Every broadcast of this test, in the order sent. */
          const sent: { tag: string; target: Target }[] = [];
          const broadcast = async (origin: ClusterNode, tag: string, target: Target, extra: WireValue[] = []) => {
            sent.push({ tag, target });
            await origin.request({ op: "broadcast", event: "news", args: [tag, ...extra], ...target });
            // Exact delivery to the connected clients; the fence also orders the stream (the next broadcast comes after).
            await cluster.expectDelivered(
              origin,
              "news",
              tag,
              reached(target).filter((client) => client.connected),
              `${tag} from ${origin.name} (${JSON.stringify(target)})`,
            );
          };

          const before = unique("before");
          await broadcast(a, before, { rooms: [r1] });
          const id = roamer.id;
          const { pid } = roamer.session;

          await roamer.closeTransport();
          // The node persists the session when it sees the transport close.
          await waitUntil(async () => (await keys.exists(SESSION_KEY_PREFIX + pid)) === 1, {
            timeout: 5000,
            message: `session ${pid} stored in Redis by ${home.label}`,
          });

          // While it is away: broadcasts from both nodes, some for it, some not.
          const bytes = wireBuffer([0, 1, 2, 254, 255]);
          const missed: { origin: ClusterNode; tag: string; target: Target; extra?: WireValue[] }[] = [
            { origin: a, tag: unique("r1-from-a"), target: { rooms: [r1] } },
            { origin: b, tag: unique("r1-from-b"), target: { rooms: [r1] } },
            // Binary: stored in the stream as base64 MessagePack rather than JSON.
            { origin: a, tag: unique("r1-binary-from-a"), target: { rooms: [r1] }, extra: [bytes, { nested: bytes }] },
            { origin: a, tag: unique("r2-from-a"), target: { rooms: [r2] } },
            { origin: b, tag: unique("all-but-r1-from-b"), target: { except: [r1] } },
            { origin: b, tag: unique("all-from-b"), target: {} },
            { origin: a, tag: unique("r2-r1-from-a"), target: { rooms: [r2, r1] } },
            { origin: b, tag: unique("r1-but-r2-from-b"), target: { rooms: [r1], except: [r2] } },
            { origin: a, tag: unique("r2-but-r1-from-a"), target: { rooms: [r2], except: [r1] } },
            { origin: a, tag: unique("its-id-from-a"), target: { rooms: [id] } },
            { origin: b, tag: unique("all-but-its-id-from-b"), target: { except: [id] } },
            { origin: b, tag: unique("r1-but-its-id-from-b"), target: { rooms: [r1], except: [id] } },
          ];
          for (const { origin, tag, target, extra } of missed) await broadcast(origin, tag, target, extra);
          const forRoamer = missed.filter(({ target }) => reached(target).includes(roamer)).map(({ tag }) => tag);
          assert.equal(forRoamer.length, 7, "seven of the missed broadcasts target the roamer");

          await roamer.reconnect(away);
          assert.equal(roamer.node, away);
          assert.equal(roamer.recovered, true, `the session was recovered by ${away.label}`);
          assert.equal(roamer.id, id, "socket id kept");
          assert.equal(await keys.exists(SESSION_KEY_PREFIX + pid), 0, "the session key is consumed");
          // Its rooms were restored on the node it came back to.
          const inR1 = await away.request({ op: "fetchSockets", rooms: [r1], local: true });
          const restored = inR1.find((socket) => socket.id === id);
          assert.ok(restored, `${away.name} has the recovered socket in ${r1}`);
          assert.deepEqual([...restored.rooms].sort(), [id, r1].sort(), "rooms of the recovered socket");

          // Broadcasts after its return reach it live, from both nodes.
          const afterA = unique("after-from-a");
          const afterB = unique("after-from-b");
          await broadcast(a, afterA, { rooms: [r1] });
          await broadcast(b, afterB, { rooms: [r1] });

          assert.deepEqual(newsOf(roamer), [before, ...forRoamer, afterA, afterB], "news the roamer got, in order, over both connections");
          // The binary one came back intact (plus its offset, a string, as the last argument).
          const binary = roamer.receipts("news", missed[2]!.tag)[0]!;
          assert.deepEqual(binary.args.slice(0, 3), [missed[2]!.tag, bytes, { nested: bytes }], "binary payload of a missed broadcast");
          assert.match(String(binary.args[3]), /^[0-9]+-[0-9]+$/, "offset of a missed broadcast");
          // Everyone got exactly their share, in order (expectDelivered checked each broadcast; here the sequences).
          const ours = new Set(sent.map(({ tag }) => tag));
          for (const client of everyone) {
            const wanted = sent.filter(({ target }) => reached(target).includes(client)).map(({ tag }) => tag);
            assert.deepEqual(newsOf(client).filter((tag) => ours.has(tag)), wanted, `news at ${client.name}`);
          }
        });
      }
    }

    test("a session whose key is gone from Redis is not recovered on the other node: new id, no missed packets", async (t) => {
      const home = cluster.nodes[0]!;
      const [roamer] = (await cluster.connect(home, 1, unique("stranger") + "-")) as [TestClient];
      t.after(() => roamer.disconnect());
      const tag = unique("hello");
      await home.request({ op: "broadcast", event: "news", args: [tag], rooms: [roamer.id] });
      await cluster.expectDelivered(home, "news", tag, [roamer], "to the stranger");
      const id = roamer.id;
      await roamer.closeTransport();
      await waitUntil(async () => (await keys.exists(SESSION_KEY_PREFIX + roamer.session.pid)) === 1, { timeout: 5000, message: "session stored" });
      await keys.del(SESSION_KEY_PREFIX + roamer.session.pid);
      await roamer.reconnect(cluster.nodes[1]!);
      assert.equal(roamer.recovered, false);
      assert.notEqual(roamer.id, id);
      assert.deepEqual(newsOf(roamer), [tag]);
    });
  });
}
