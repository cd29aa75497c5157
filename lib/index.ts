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
import type { Namespace } from "socket.io";
import { ShardedAdapter } from "./adapter";
import { resolveOptions, type ShardedAdapterOptions } from "./options";
import { ShardPool } from "./shard-pool";

export { ShardedAdapter, type ShardedAdapterStats } from "./adapter";
export { AdapterClosedError, InvalidOptionError, ReadOnlyViewError, ShardedAdapterError } from "./errors";
export type { ShardedAdapterOptions } from "./options";
export type { PoolStats, ShardPool } from "./shard-pool";

/** The constructor `createAdapter()` returns, as socket.io's `adapter` option takes it. */
export type ShardedAdapterConstructor = new (nsp: Namespace) => ShardedAdapter;

/**
 * Returns the adapter constructor to pass as socket.io's `adapter` option.
 * All namespaces of the server (dynamic ones included) share one worker pool,
 * started with the first namespace and stopped when the last adapter closes.
 *
 * @throws InvalidOptionError if an option is out of range or of the wrong type.
 */
export function createAdapter(options?: ShardedAdapterOptions): typeof ShardedAdapter & ShardedAdapterConstructor {
  const resolved = resolveOptions(options);
  const pool = new ShardPool(resolved);
  return class extends ShardedAdapter {
    constructor(nsp: Namespace) {
      super(nsp, pool, resolved);
    }
  } as typeof ShardedAdapter & ShardedAdapterConstructor;
}
