/**
 * socket.io-sharded-adapter: room membership in shared memory, big
 * broadcasts answered by worker threads.
 *
 * ```ts
 * import { Server } from "socket.io";
 * import { createAdapter } from "socket.io-sharded-adapter";
 * const io = new Server(httpServer, { adapter: createAdapter({ workers: 2 }) });
 * ```
 */
import { createContext, ShardedAdapter } from "./adapter";
import { ShardedClusterAdapter, type ClusterContext } from "./cluster-adapter";
import { ClusterLink } from "./cluster-link";
import { resolveOptions, type RedisClient, type ShardedAdapterOptions } from "./options";

export { ShardedAdapter, type ShardedAdapterStats, type ShardedMembership } from "./adapter";
export { ShardedClusterAdapter, type ClusterStats, type ShardedClusterAdapterStats } from "./cluster-adapter";
export { AdapterClosedError, InvalidOptionError, ReadOnlyViewError, ShardedAdapterError } from "./errors";
export type { IoRedisClient, NodeRedisClient, RedisClient, ShardedAdapterOptions } from "./options";
export type { Calibration } from "./calibration";
export type { PoolStats, ShardPool } from "./shard-pool";

/**
 * Returns the adapter constructor to pass as socket.io's `adapter` option.
 * All namespaces of the server (dynamic ones included) share one worker pool,
 * started with the first namespace and stopped when the last adapter closes.
 *
 * With `redis` (a connected node-redis or ioredis client), the server is
 * linked to the other nodes through Redis Streams, in the format of the
 * official `@socket.io/redis-streams-adapter`, which it can run beside.
 *
 * @throws InvalidOptionError if an option is out of range or of the wrong type.
 */
export function createAdapter(options: ShardedAdapterOptions & { redis: RedisClient }): typeof ShardedClusterAdapter;
export function createAdapter(options?: ShardedAdapterOptions): typeof ShardedAdapter;
export function createAdapter(options?: ShardedAdapterOptions): typeof ShardedAdapter | typeof ShardedClusterAdapter {
  const resolved = resolveOptions(options);
  const context = createContext(resolved);
  if (resolved.redis !== undefined) {
    const clusterContext: ClusterContext = { ...context, link: new ClusterLink(resolved.redis) };
    return class extends ShardedClusterAdapter {
      protected static override context = clusterContext;
    };
  }
  return class extends ShardedAdapter {
    protected static override context = context;
  };
}
