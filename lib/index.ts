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
import { resolveOptions, type ShardedAdapterOptions } from "./options";

export { ShardedAdapter, type ShardedAdapterStats } from "./adapter";
export { AdapterClosedError, InvalidOptionError, ReadOnlyViewError, ShardedAdapterError } from "./errors";
export type { ShardedAdapterOptions } from "./options";
export type { PoolStats, ShardPool } from "./shard-pool";

/**
 * Returns the adapter constructor to pass as socket.io's `adapter` option.
 * All namespaces of the server (dynamic ones included) share one worker pool,
 * started with the first namespace and stopped when the last adapter closes.
 *
 * @throws InvalidOptionError if an option is out of range or of the wrong type.
 */
export function createAdapter(options?: ShardedAdapterOptions): typeof ShardedAdapter {
  const context = createContext(resolveOptions(options));
  return class extends ShardedAdapter {
    protected static override context = context;
  };
}
