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
import { ShardedIpcAdapter, type IpcContext } from "./ipc-adapter";
import { IpcLink } from "./ipc-link";
import { resolveOptions, type RedisClient, type ShardedAdapterOptions } from "./options";

export { ShardedAdapter, type ShardedAdapterStats, type ShardedMembership } from "./adapter";
export { ShardedClusterAdapter, type ClusterStats, type ShardedClusterAdapterStats } from "./cluster-adapter";
export { InvalidOptionError, ReadOnlyViewError, ShardedAdapterError } from "./errors";
export type { IoRedisClient, NodeRedisClient, RedisClient, ShardedAdapterOptions } from "./options";
export type { Calibration } from "./calibration";
export type { PoolStats, ShardPool } from "./shard-pool";
export type { UwsStats } from "./uws-topics";
// Node.js cluster mode (issue #12): workers linked through the primary over IPC.
export { ShardedIpcAdapter, type IpcStats, type ShardedIpcAdapterStats } from "./ipc-adapter";
export type { IpcLinkStats } from "./ipc-link";
export type { SenderStats } from "./ipc-sender";
export { setupPrimary, type ClusterPrimary, type PrimaryOptions, type PrimaryStats } from "./cluster-primary";

/**
 * Returns the adapter constructor to pass as socket.io's `adapter` option.
 * All namespaces of the server (dynamic ones included) share one worker pool,
 * started with the first namespace and stopped when the last adapter closes.
 *
 * With `redis` (a connected node-redis or ioredis client), the server is
 * linked to the other nodes through Redis Streams, in the format of the
 * official `@socket.io/redis-streams-adapter`, which it can run beside.
 *
 * With `cluster: true` (in a Node.js cluster worker), it is linked to the
 * other workers through the primary (which runs {@link setupPrimary}, or
 * `@socket.io/cluster-adapter`'s), in the format of `@socket.io/cluster-adapter`.
 *
 * @throws InvalidOptionError if an option is out of range or of the wrong type.
 */
export function createAdapter(options: ShardedAdapterOptions & { redis: RedisClient }): typeof ShardedClusterAdapter;
export function createAdapter(options: ShardedAdapterOptions & { cluster: true }): typeof ShardedIpcAdapter;
export function createAdapter(options?: ShardedAdapterOptions): typeof ShardedAdapter;
export function createAdapter(options?: ShardedAdapterOptions): typeof ShardedAdapter | typeof ShardedClusterAdapter | typeof ShardedIpcAdapter {
  const resolved = resolveOptions(options);
  const context = createContext(resolved);
  if (resolved.cluster !== undefined) {
    const ipcContext: IpcContext = { ...context, link: new IpcLink(resolved.cluster) };
    return named(
      class extends ShardedIpcAdapter {
        protected static override context = ipcContext;
      },
      ShardedIpcAdapter.name,
    );
  }
  if (resolved.redis !== undefined) {
    const clusterContext: ClusterContext = { ...context, link: new ClusterLink(resolved.redis) };
    return named(
      class extends ShardedClusterAdapter {
        protected static override context = clusterContext;
      },
      ShardedClusterAdapter.name,
    );
  }
  return named(
    class extends ShardedAdapter {
      protected static override context = context;
    },
    ShardedAdapter.name,
  );
}

/** The configured subclass keeps its base's name (it shows in stack traces and `adapter.constructor.name`). */
function named<T extends abstract new (...args: never[]) => unknown>(adapterClass: T, name: string): T {
  return Object.defineProperty(adapterClass, "name", { value: name });
}
