/**
 * Issue #6, the socket.io #5226 skip: a sharded node skips, without decoding
 * it, a stream broadcast whose target rooms have no member on it. Broadcasts
 * from each node to rooms whose members live on one node, on several, with
 * except rooms, to everyone: every client gets exactly what the in-memory
 * semantics say, once, and `adapter.stats().cluster` shows which node skipped
 * what. Only broadcasts from another sharded node are skipped: the official
 * adapter's entries carry no room list, and a broadcast to everyone (with or
 * without except rooms) has none either.
 *
 * Also: a room joined on a node (socket.join there, or socketsJoin from
 * another node) gets its broadcasts on that node at once, and the
 * peers/officialNodes counters of the sharded nodes.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  fleetName,
  OFFICIAL,
  redisServerForFile,
  SHARDED,
  startCluster,
  unique,
  waitUntil,
  type Cluster,
  type ClusterNode,
  type NodeSpec,
  type TestClient,
} from "./cluster-helpers";
import type { Target } from "./cluster-protocol";

const FLEETS: readonly (readonly NodeSpec[])[] = [
  [SHARDED, SHARDED, SHARDED],
  [SHARDED, OFFICIAL, SHARDED],
];

/** `adapter.stats().cluster` of a sharded node. */
interface ClusterCounters {
  entriesRead: number;
  broadcastsSkipped: number;
  peers: number;
  officialNodes: number;
  rejected: number;
  lastRejection: string | null;
}

async function countersOf(node: ClusterNode): Promise<ClusterCounters> {
  const stats = (await node.request({ op: "stats" })) as { cluster?: ClusterCounters } | null;
  assert.ok(stats !== null && typeof stats.cluster === "object", `${node.label} has stats().cluster: ${JSON.stringify(stats)}`);
  return stats.cluster!;
}

const redis = redisServerForFile();

for (const nodes of FLEETS) {
  describe(`broadcasts skipped by nodes without members (#5226), ${fleetName(nodes)}`, () => {
    let cluster: Cluster;
    // solo0/solo1/solo2 have members on one node only, shared on n0 and n2, wide on every node.
    const layout: Record<string, string[]> = {
      n0c0: ["solo0", "wide"],
      n0c1: ["solo0", "shared"],
      n1c0: ["solo1"],
      n1c1: ["wide"],
      n2c0: ["shared", "wide"],
      n2c1: ["solo2"],
    };
    /** Rooms joined during the tests, by client name (besides the layout's). */
    const extra = new Map<string, Set<string>>();
    const inRoom = (client: TestClient, room: string) =>
      room === client.id || (layout[client.name] ?? []).includes(room) || (extra.get(client.name)?.has(room) ?? false);
    const initial = () => cluster.clients.filter((client) => client.name in layout);
    /** The in-memory adapter's semantics: who `target` reaches. */
    const reached = ({ rooms = [], except = [] }: Target) =>
      initial().filter((client) => (rooms.length === 0 || rooms.some((room) => inRoom(client, room))) && !except.some((room) => inRoom(client, room)));
    const sharded = () => cluster.nodes.filter((node) => node.spec.adapter === "sharded");
    /** Whether `node` skips a broadcast to `target` from `origin`: both sharded, a room list, and no member of those rooms on `node`. */
    const skips = (node: ClusterNode, origin: ClusterNode, { rooms = [] }: Target) =>
      node !== origin &&
      node.spec.adapter === "sharded" &&
      origin.spec.adapter === "sharded" &&
      rooms.length > 0 &&
      !cluster.clientsOf(node).some((client) => client.name in layout && rooms.some((room) => inRoom(client, room)));

    before(async () => {
      cluster = await startCluster({ redis, nodes, clientsPerNode: 2 });
      await Promise.all(Object.entries(layout).map(([name, rooms]) => cluster.client(name).join(...rooms)));
    });
    after(async () => {
      await cluster?.close();
    });

    /** Counters of every sharded node. */
    const snapshot = async () => new Map(await Promise.all(sharded().map(async (node) => [node, await countersOf(node)] as const)));

    /**
     * Broadcasts `news` to each target from `origin`, checks exact delivery
     * after each (one fence each), then that every sharded node read each
     * entry of the others once and skipped exactly the broadcasts it had no
     * member for. `prelude` runs first, inside the counted window, and adds
     * `entries` stream entries of `origin` (e.g. a socketsJoin).
     */
    async function broadcastAndCount(origin: ClusterNode, targets: readonly Target[], prelude?: { run: () => Promise<void>; entries: number }): Promise<void> {
      const before = await snapshot();
      await prelude?.run();
      for (const target of targets) {
        const tag = unique("news");
        await origin.request({ op: "broadcast", event: "news", args: [tag], ...target });
        await cluster.expectDelivered(origin, "news", tag, reached(target), `from ${origin.name} to ${JSON.stringify(target)}`);
      }
      const after = await snapshot();
      for (const node of sharded()) {
        const delta = { entriesRead: after.get(node)!.entriesRead - before.get(node)!.entriesRead, broadcastsSkipped: after.get(node)!.broadcastsSkipped - before.get(node)!.broadcastsSkipped };
        // Each target: one broadcast and one fence, both stream entries of `origin`.
        const wanted = {
          entriesRead: node === origin ? 0 : 2 * targets.length + (prelude?.entries ?? 0),
          broadcastsSkipped: targets.filter((target) => skips(node, origin, target)).length,
        };
        assert.deepEqual(delta, wanted, `counters of ${node.label} for ${targets.length} broadcasts from ${origin.label}`);
      }
    }

    test("stats().cluster: entriesRead, broadcastsSkipped, peers, officialNodes, and nothing rejected", async () => {
      const officials = cluster.nodes.filter((node) => node.spec.adapter === "official").length;
      for (const node of sharded()) {
        // officialNodes is as of the last serverCount().
        assert.equal(await node.serverCount(), nodes.length);
        const counters = await countersOf(node);
        assert.deepEqual(Object.keys(counters).sort(), ["broadcastsSkipped", "entriesRead", "lastRejection", "officialNodes", "peers", "rejected", "unconfirmedPeers"]);
        // Nothing our nodes or official ones write is dropped as malformed.
        assert.equal(counters.rejected, 0, `${node.name}: rejected (${counters.lastRejection})`);
        assert.equal(counters.peers, sharded().length - 1, `${node.name}: sharded peers`);
        assert.equal(counters.officialNodes, officials, `${node.name}: official nodes`);
      }
    });

    for (let originIndex = 0; originIndex < nodes.length; originIndex++) {
      test(`broadcasts from n${originIndex} (${nodes[originIndex]!.adapter}): exact delivery, skipped where no member is`, async () => {
        const origin = cluster.nodes[originIndex]!;
        const n1c0 = cluster.client("n1c0");
        const targets: Target[] = [
          { rooms: ["solo0"] },
          { rooms: ["solo1"] },
          { rooms: ["solo2"] },
          { rooms: ["shared"] },
          { rooms: ["wide"] },
          { rooms: ["solo1", "solo2"] },
          { rooms: ["solo0", "shared"] },
          { rooms: ["wide"], except: ["solo0"] },
          { rooms: ["shared"], except: ["wide"] },
          { rooms: ["solo2"], except: ["shared"] },
          // Members on n2, all excepted: n2 must decode it to know.
          { rooms: ["solo2", "shared"], except: ["solo2", "shared"] },
          { rooms: [n1c0.id] },
          { rooms: [unique("nobody")] },
          {},
          { except: ["solo1"] },
          { except: ["wide", "solo0"] },
        ];
        await broadcastAndCount(origin, targets);
      });
    }

    test("a room joined with socket.join on a node: its broadcasts are delivered there at once, skipped again after leave", async () => {
      const [origin, , joiner] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
      const late = unique("late");
      const n1c1 = cluster.client("n1c1");
      const n2c1 = cluster.client("n2c1");
      const track = (client: TestClient, room: string, joined: boolean) => {
        const rooms = extra.get(client.name) ?? new Set<string>();
        if (joined) rooms.add(room);
        else rooms.delete(room);
        extra.set(client.name, rooms);
      };
      try {
        await n1c1.join(late);
        track(n1c1, late, true);
        await broadcastAndCount(origin, [{ rooms: [late] }]); // n2 skips
        await n2c1.join(late);
        track(n2c1, late, true);
        await broadcastAndCount(origin, [{ rooms: [late] }]); // n2 delivers
        await n2c1.leave(late);
        track(n2c1, late, false);
        await broadcastAndCount(origin, [{ rooms: [late] }]); // n2 skips again
      } finally {
        await n1c1.leave(late).catch(() => undefined);
        track(n1c1, late, false);
      }
    });

    test("a room joined with socketsJoin from another node: the next broadcast is delivered, not skipped", async () => {
      const [n0, n1, n2] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
      const n2c1 = cluster.client("n2c1");
      const track = (room: string) => extra.set(n2c1.name, new Set([...(extra.get(n2c1.name) ?? []), room]));

      // From the broadcasting node itself, then at once a broadcast: the stream orders them, no wait needed.
      const room = unique("sj");
      await broadcastAndCount(n0, [{ rooms: [room] }]); // nobody: n2 skips
      track(room);
      // n2c1 gets it (the socketsJoin is one more stream entry of n0).
      await broadcastAndCount(n0, [{ rooms: [room] }], { run: async () => void (await n0.request({ op: "socketsJoin", join: room, rooms: ["solo2"] })), entries: 1 });

      // From a third node (in the mixed fleet, the official one): once the join is in on n2, broadcasts from n0 reach it.
      const room2 = unique("sj-third");
      await broadcastAndCount(n0, [{ rooms: [room2] }]);
      await n1.request({ op: "socketsJoin", join: room2, rooms: ["solo2"] });
      await waitUntil(async () => (await n2.request({ op: "fetchSockets", rooms: [room2], local: true })).length === 1, {
        timeout: 5000,
        message: `socketsJoin(${room2}) from ${n1.label} to reach n2`,
      });
      // Every node has read the socketsJoin entry once a fence from n1 is everywhere (kept out of the counted window).
      await cluster.fence(n1);
      track(room2);
      await broadcastAndCount(n0, [{ rooms: [room2] }]);

      await n0.request({ op: "socketsLeave", leave: [room, room2] });
      // Read and applied everywhere once a later fence from n0 is.
      await cluster.fence(n0);
      assert.deepEqual(await n2.request({ op: "fetchSockets", rooms: [room, room2], local: true }), [], "socketsLeave applied on n2");
      extra.delete(n2c1.name);
      await broadcastAndCount(n0, [{ rooms: [room] }, { rooms: [room2] }]); // skipped again on n2
    });

    test("after all of the above, no node of ours dropped any message as malformed", async () => {
      for (const node of sharded()) {
        const counters = await countersOf(node);
        assert.equal(counters.rejected, 0, `${node.name}: rejected (${counters.lastRejection})`);
      }
    });
  });
}
