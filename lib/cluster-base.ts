/**
 * What the two linked adapters (Redis, lib/cluster-adapter.ts; Node.js
 * cluster, lib/ipc-adapter.ts) share: their base class and the wire form of
 * BroadcastOptions in socket.io-adapter's cluster messages.
 */
import { Adapter, ClusterAdapterWithHeartbeat, type MessageType, type BroadcastFlags, type BroadcastOptions, type ClusterAdapterOptions } from "socket.io-adapter";
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

/** The parts of ClusterAdapterWithHeartbeat that its typings keep private. */
export interface HeartbeatInternals {
  heartbeatTimer: NodeJS.Timeout | undefined;
  cleanupTimer: NodeJS.Timeout | undefined;
  /** uid -> when last heard from. */
  nodesMap: Map<string, number>;
  customRequests: Map<string, { type: MessageType; timeout: NodeJS.Timeout; resolve: (...args: unknown[]) => void; responses: unknown[] }>;
  _opts: { heartbeatTimeout: number };
  removeNode(uid: string): void;
}

/**
 * Undoes ClusterAdapterWithHeartbeat.close() for an adapter that socket.io
 * uses again (after `io.close()`, `io.attach()`): close() clears the timers
 * but keeps them, and a cleared timer's refresh() never fires, so without
 * this the node would not send another heartbeat. The nodes heard before the
 * close are forgotten; they answer the next hello.
 */
export function restartHeartbeat(adapter: ClusterAdapterWithHeartbeat): void {
  const state = adapter as unknown as HeartbeatInternals;
  clearTimeout(state.heartbeatTimer);
  state.heartbeatTimer = undefined;
  clearInterval(state.cleanupTimer);
  state.nodesMap.clear();
  // As ClusterAdapterWithHeartbeat's constructor sets it up.
  state.cleanupTimer = setInterval(() => {
    const now = Date.now();
    state.nodesMap.forEach((lastSeen, uid) => {
      if (now - lastSeen > state._opts.heartbeatTimeout) state.removeNode(uid);
    });
  }, 1000);
}
