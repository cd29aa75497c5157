/**
 * What the two linked adapters (Redis, lib/cluster-adapter.ts; Node.js
 * cluster, lib/ipc-adapter.ts) share: their base class and the wire form of
 * BroadcastOptions in socket.io-adapter's cluster messages.
 */
import { Adapter, ClusterAdapterWithHeartbeat, type BroadcastFlags, type BroadcastOptions, type ClusterAdapterOptions } from "socket.io-adapter";
import type { Namespace } from "socket.io";

/**
 * ClusterAdapterWithHeartbeat with its constructor made reachable (its typings
 * declare it protected) and Adapter's statics kept, so that the resulting class
 * still fits socket.io's `adapter` option (`typeof Adapter`).
 */
export const ClusterBase = ClusterAdapterWithHeartbeat as unknown as (abstract new (nsp: Namespace, opts: ClusterAdapterOptions) => ClusterAdapterWithHeartbeat) &
  Omit<typeof Adapter, "prototype">;

/** BroadcastOptions as the cluster messages carry them (the typings say string rooms; numbers travel too). */
export interface WireOptions {
  rooms: string[];
  except: string[];
  flags: BroadcastFlags;
}

export function encodeOptions(opts: BroadcastOptions): WireOptions {
  return { rooms: [...opts.rooms] as string[], except: [...(opts.except ?? [])] as string[], flags: opts.flags ?? {} };
}

export function decodeOptions(opts: WireOptions): BroadcastOptions {
  return { rooms: new Set(opts.rooms), except: new Set(opts.except), flags: opts.flags ?? {} };
}
