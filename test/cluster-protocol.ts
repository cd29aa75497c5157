/**
 * The IPC protocol between the cluster tests (parent) and each node process
 * (test/cluster-node.ts, started with child_process.fork). Both sides import
 * these types; values cross the channel as JSON, so binary payloads are
 * written as `{ $buffer: "<base64>" }` (see {@link encodeValue}).
 */

/**
 * Which adapter a node runs: through Redis (`official` is
 * @socket.io/redis-streams-adapter), or, as a Node.js cluster worker, through
 * the primary over IPC (`official-ipc` is @socket.io/cluster-adapter).
 */
export type AdapterKind = "official" | "sharded" | "official-ipc" | "sharded-ipc";

/** Whether a node of this kind is a cluster worker linked over IPC (no Redis). */
export function isIpcKind(kind: AdapterKind): boolean {
  return kind === "official-ipc" || kind === "sharded-ipc";
}
/**
 * Which Redis client library a node uses: node-redis, ioredis, or ioredis
 * with `lazyConnect: true, enableOfflineQueue: false` (commands fail, rather
 * than wait, while a connection is not ready; its duplicates inherit that).
 */
export type RedisClientKind = "redis" | "ioredis" | "ioredis-no-offline-queue";

/** What a node is started with (passed as one JSON argument). */
export interface NodeConfig {
  readonly name: string;
  readonly adapter: AdapterKind;
  readonly client: RedisClientKind;
  /** The Redis server (Redis kinds only). */
  readonly redisUrl?: string;
  /**
   * IPC kinds: the port the primary shares with @socket.io/sticky; the node
   * then serves the connections the primary hands it instead of listening on
   * a port of its own (`exclusive: true`).
   */
  readonly stickyPort?: number;
  readonly heartbeatInterval: number;
  readonly heartbeatTimeout: number;
  /** socket.io's `connectionStateRecovery` server option; absent: off. */
  readonly connectionStateRecovery?: RecoveryOptions;
}

/** socket.io's `connectionStateRecovery` option, as the harness passes it. */
export interface RecoveryOptions {
  readonly maxDisconnectionDuration: number;
  readonly skipMiddlewares?: boolean;
}

/** A JSON value, with Buffers written as `{ $buffer: base64 }`. */
export type WireValue = null | boolean | number | string | WireValue[] | { [key: string]: WireValue };

/** Targeting of a broadcast-like operation. */
export interface Target {
  readonly rooms?: readonly string[];
  readonly except?: readonly string[];
}

export interface BroadcastFlags {
  readonly volatile?: boolean;
  readonly local?: boolean;
  readonly compress?: boolean;
}

/** A socket as fetchSockets returns it, reduced to what crosses the IPC channel. */
export interface FetchedSocket {
  readonly id: string;
  readonly rooms: string[];
  readonly data: WireValue;
}

/** Requests the parent sends to a node, each answered by one {@link Reply}. */
export type Request =
  | ({ op: "broadcast"; event: string; args: WireValue[]; flags?: BroadcastFlags } & Target)
  | ({ op: "emitWithAck"; event: string; args: WireValue[]; timeout: number } & Target)
  | ({ op: "fetchSockets"; local?: boolean; timeout?: number } & Target)
  | ({ op: "socketsJoin"; join: string | string[] } & Target)
  | ({ op: "socketsLeave"; leave: string | string[] } & Target)
  | ({ op: "disconnectSockets"; close?: boolean } & Target)
  | { op: "serverSideEmit"; event: string; args: WireValue[] }
  /** socket.io gives no timeout option here: the cluster adapters wait 5 s for missing answers. */
  | { op: "serverSideEmitWithAck"; event: string; args: WireValue[] }
  /** What this node's `serverSideEmit` handler got so far (and forgets it when `clear`). */
  | { op: "serverSideReceived"; clear?: boolean }
  | { op: "serverCount" }
  /** The adapter's stats(), or null when the adapter has none. */
  | { op: "stats" }
  /** Sends `message` as is on the process's IPC channel (a cluster worker's: to its primary). */
  | { op: "ipcSend"; message: WireValue }
  /** Closes the socket.io server and the Redis clients, then exits. */
  | { op: "close" };

export type Op = Request["op"];

/** The result type of each request. */
export interface Results {
  broadcast: null;
  emitWithAck: { responses: WireValue[] } | { error: string };
  fetchSockets: FetchedSocket[];
  socketsJoin: null;
  socketsLeave: null;
  disconnectSockets: null;
  serverSideEmit: null;
  serverSideEmitWithAck: { responses: WireValue[] } | { error: string; responses: WireValue[] };
  serverSideReceived: ServerSideReceipt[];
  serverCount: number;
  stats: WireValue;
  ipcSend: null;
  close: null;
}

/** One call of a node's serverSideEmit handler. */
export interface ServerSideReceipt {
  readonly event: string;
  readonly args: WireValue[];
  readonly withAck: boolean;
}

/** Parent → node. */
export interface RequestMessage {
  readonly id: number;
  readonly request: Request;
}

/** Node → parent. */
export type NodeMessage =
  | { readonly type: "ready"; readonly name: string; readonly port: number; readonly pid: number }
  | { readonly type: "reply"; readonly id: number; readonly ok: true; readonly result: WireValue }
  | { readonly type: "reply"; readonly id: number; readonly ok: false; readonly error: string }
  /** Something the node wants in the test log (Redis client errors, reconnections). */
  | { readonly type: "log"; readonly name: string; readonly message: string };

/** Event names served by every node. */
export const EVENTS = {
  /** client → server: `join(rooms, ack)` */
  join: "join",
  /** client → server: `leave(rooms, ack)` */
  leave: "leave",
  /** client → server: `relay({ rooms, except, event, args }, ack)`: `socket.broadcast.to(rooms).except(except).emit(event, ...args)` */
  relay: "relay",
  /** The event every node's serverSideEmit handler listens to. */
  serverSide: "cluster-test",
} as const;

/** Arguments of the `relay` client event. */
export interface RelayRequest extends Target {
  readonly event: string;
  readonly args: WireValue[];
}

/** Turns a value with Buffers/Uint8Arrays into its wire form. */
export function encodeValue(value: unknown): WireValue {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return { $buffer: Buffer.from(value).toString("base64") };
  if (value instanceof ArrayBuffer) return { $buffer: Buffer.from(value).toString("base64") };
  if (Array.isArray(value)) return value.map(encodeValue);
  if (typeof value === "object") {
    const out: { [key: string]: WireValue } = {};
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) out[key] = encodeValue(item);
    return out;
  }
  if (typeof value === "boolean" || typeof value === "number" || typeof value === "string") return value;
  return String(value);
}

/** Turns a wire value back into a value with Buffers. */
export function decodeValue(value: WireValue): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(decodeValue);
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === "$buffer" && typeof value.$buffer === "string") return Buffer.from(value.$buffer, "base64");
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = decodeValue(item);
  return out;
}

/** Shorthand for a Buffer argument in a request. */
export function wireBuffer(bytes: Buffer | number[]): WireValue {
  return { $buffer: Buffer.from(bytes).toString("base64") };
}
