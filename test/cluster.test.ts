/**
 * Issue #6: nodes linked through Redis. Three node processes on loopback
 * (test/cluster-node.ts), two socket.io-client websocket clients on each, and
 * every cross-node operation, for each fleet:
 *
 * - official ×3: @socket.io/redis-streams-adapter 0.3.1 everywhere, the
 *   reference the harness is checked against;
 * - sharded ×3: this package's `createAdapter({ redis })`;
 * - sharded + official + sharded: interop, with operations started both on a
 *   sharded node and on the official one.
 */
import { fleetName, OFFICIAL, redisServerForFile, SHARDED, startCluster, type NodeSpec } from "./cluster-helpers";
import { describeClusterOperations } from "./cluster-operations";

interface Fleet {
  readonly nodes: readonly NodeSpec[];
  /** Indexes of the nodes the operations are started from. */
  readonly origins: readonly number[];
  /** Only a broadcast and fetchSockets (for the client-library variants). */
  readonly basicOnly?: boolean;
}

const FLEETS: readonly Fleet[] = [
  { nodes: [OFFICIAL, OFFICIAL, OFFICIAL], origins: [0] },
  { nodes: [SHARDED, SHARDED, SHARDED], origins: [0] },
  // Interop: operations from a sharded node and from the official one.
  { nodes: [SHARDED, OFFICIAL, SHARDED], origins: [0, 1] },
  // ioredis instead of node-redis.
  { nodes: [{ adapter: "official", client: "ioredis" }, OFFICIAL, { adapter: "official", client: "ioredis" }], origins: [0], basicOnly: true },
  { nodes: [{ adapter: "sharded", client: "ioredis" }, OFFICIAL, { adapter: "sharded", client: "ioredis" }], origins: [0, 1], basicOnly: true },
];

const redis = redisServerForFile();

for (const fleet of FLEETS) {
  const nodes = fleet.nodes.map((node) => node.adapter);
  describeClusterOperations(`cluster ${fleetName(fleet.nodes)}`, { nodes, origins: fleet.origins, basicOnly: fleet.basicOnly }, async () => {
    const cluster = await startCluster({ redis, nodes: fleet.nodes, clientsPerNode: 2 });
    return { cluster, stop: () => cluster.close() };
  });
}
