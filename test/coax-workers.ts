/** Test-only instrumentation shared by the differential tests. */
import type { Adapter } from "socket.io-adapter";
import { CLAIM_SHARD_BITS, CONTROL_CLAIM } from "../lib/protocol";

/**
 * Left alone, the main thread claims every shard of these small queries
 * before a worker has even woken up, and the workers' answers would go
 * untested. This wraps the adapter's (private) index so that, before the main
 * thread answers a shard it claimed, it spins (at most 2 ms) until the
 * workers it just handed the query have claimed the others. It changes
 * timing only, never what is computed. Returns false, leaving the adapter
 * alone, if the internals it relies on are not there.
 */
export function coaxWorkers(adapter: Adapter): boolean {
  const internals = adapter as unknown as {
    index?: { shardCount: number; collectShardInto?: (...args: unknown[]) => number };
    pool?: { control?: unknown };
  };
  const { index, pool } = internals;
  const original = index?.collectShardInto;
  if (!index || !pool || typeof original !== "function" || !(pool.control instanceof Int32Array)) return false;
  const shardMask = (1 << CLAIM_SHARD_BITS) - 1;
  index.collectShardInto = function (...args: unknown[]): number {
    const control = pool.control as Int32Array;
    const deadline = performance.now() + 2;
    while ((Atomics.load(control, CONTROL_CLAIM) & shardMask) < index.shardCount && performance.now() < deadline) {
      // spin: the workers were handed this query a moment ago
    }
    return original.apply(this, args);
  };
  return true;
}
