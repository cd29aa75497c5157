import { availableParallelism } from "node:os";
import type { ResourceLimits } from "node:worker_threads";
import createDebug from "debug";
import { InvalidOptionError } from "./errors";

const debug = createDebug("socket.io-sharded-adapter");

/** Options of {@link createAdapter}. Every field is optional. */
export interface ShardedAdapterOptions {
  /**
   * Worker threads per `createAdapter()` result, 1 to 64 on any machine;
   * membership is split into `workers + 1` shards (one share is the main
   * thread's). More workers than cores is allowed (they share the cores).
   * Default: one less than the cores (at least 1, at most 4).
   */
  workers?: number;
  /**
   * A broadcast whose rooms and except-rooms hold at least this many
   * memberships in all (for a broadcast to everyone: its except-rooms; the
   * pass over every socket is no walk) is answered by the shard workers in parallel with the
   * main thread; smaller ones are answered on the main thread from shared
   * memory, with no round-trip. fetchSockets, socketsJoin, socketsLeave and
   * disconnectSockets are never offloaded (their order is visible). Default:
   * calibrated when the workers start, where broadcasts timed on the main
   * thread alone and with the workers cross (see `calibration.ts`), between
   * 10,000 and 1,000,000 (100,000 until the calibration has run);
   * `adapter.stats().pool` shows the value in effect and what was measured.
   */
  offloadThreshold?: number;
  /**
   * Milliseconds the main thread waits for a worker that claimed a share of
   * a broadcast and has not finished it (it died or is stuck) before it
   * computes the broadcast itself. Default: 500.
   */
  workerTimeout?: number;
  /** Passed to each worker thread (see `node:worker_threads`). */
  resourceLimits?: ResourceLimits;
  /**
   * A connected Redis client (node-redis v4/v5 or ioredis): links this
   * server to the others through Redis Streams, in the format of
   * `@socket.io/redis-streams-adapter`. Without it the adapter is local.
   */
  redis?: RedisClient;
  /**
   * In a Node.js cluster worker: links this server to the other workers
   * through the primary, over the IPC channel, in the format of
   * `@socket.io/cluster-adapter` (the primary runs `setupPrimary()`, this
   * package's or the official one). Not with `redis`. Default: false.
   */
  cluster?: boolean;
  /** Milliseconds between heartbeats to the other nodes (Redis or cluster mode). Default: 5000. */
  heartbeatInterval?: number;
  /** Milliseconds without a message after which another node counts as gone (Redis or cluster mode). Default: 10000. */
  heartbeatTimeout?: number;
  /** Name of the Redis stream (Redis only; as the official adapter). Default: "socket.io". */
  streamName?: string;
  /** Number of streams the namespaces are spread over (Redis only). Default: 1. */
  streamCount?: number;
  /** Prefix of the pub/sub channels (Redis only). Default: "socket.io". */
  channelPrefix?: string;
  /** Approximate maximum length of the stream (Redis only). Default: 10000. */
  maxLen?: number;
  /** Entries read from the stream per XREAD (Redis only). Default: 100. */
  readCount?: number;
  /** How long one XREAD blocks, in milliseconds (Redis only). Default: 5000. */
  blockTimeInMs?: number;
  /** Prefix of the keys of persisted sessions (Redis only, connection state recovery). Default: "sio:session:". */
  sessionKeyPrefix?: string;
}

/**
 * A connected Redis client: node-redis (v4, v5) or ioredis. Only the raw
 * command and pub/sub methods are used, so the two behave the same.
 */
export type RedisClient = NodeRedisClient | IoRedisClient;

/** The part of a node-redis client the adapter uses. */
export interface NodeRedisClient {
  sendCommand(args: (string | Buffer)[]): Promise<unknown>;
  duplicate(): NodeRedisClient;
  connect(): Promise<unknown>;
  subscribe(channels: string | string[], listener: (message: Buffer, channel: Buffer) => void, bufferMode: true): Promise<unknown>;
  unsubscribe(channels: string | string[]): Promise<unknown>;
  on(event: "error", listener: (error: Error) => void): unknown;
}

/** The part of an ioredis client the adapter uses. */
export interface IoRedisClient {
  call(command: string, ...args: (string | Buffer | number)[]): Promise<unknown>;
  duplicate(): IoRedisClient;
  disconnect(): void;
  subscribe(...channels: string[]): Promise<unknown>;
  unsubscribe(...channels: string[]): Promise<unknown>;
  on(event: string, listener: (...args: never[]) => void): unknown;
}

/** Options of the Redis link, with defaults filled in. */
export interface ResolvedRedisOptions {
  readonly client: RedisClient;
  readonly heartbeatInterval: number;
  readonly heartbeatTimeout: number;
  readonly streamName: string;
  readonly streamCount: number;
  readonly channelPrefix: string;
  readonly maxLen: number;
  readonly readCount: number;
  readonly blockTimeInMs: number;
  readonly sessionKeyPrefix: string;
}

/** Options of the cluster (IPC) link, with defaults filled in. */
export interface ResolvedClusterOptions {
  readonly heartbeatInterval: number;
  readonly heartbeatTimeout: number;
}

/** {@link ShardedAdapterOptions} with every default filled in. */
export interface ResolvedOptions {
  readonly workers: number;
  /** undefined: calibrated by the pool (see `calibration.ts`). */
  readonly offloadThreshold: number | undefined;
  readonly workerTimeout: number;
  readonly resourceLimits: ResourceLimits | undefined;
  readonly redis: ResolvedRedisOptions | undefined;
  readonly cluster: ResolvedClusterOptions | undefined;
}

/**
 * Most workers accepted, the same on every machine, so that a configuration
 * valid on one host is valid on all (a thread per core is a default, not a
 * limit: piscina runs more threads than cores).
 */
export const MAX_WORKERS = 64;

function defaultWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

function integerIn(option: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
    throw new InvalidOptionError(option, value, range);
  }
  return value;
}

/** Validates `options`; throws {@link InvalidOptionError} naming the first bad one. */
export function resolveOptions(options: ShardedAdapterOptions | undefined): ResolvedOptions {
  if (options === undefined || options === null) options = {};
  if (typeof options !== "object") throw new InvalidOptionError("options", options, "an object");
  if (isRedisClient(options)) {
    // The official @socket.io/redis-streams-adapter takes the client first.
    throw new InvalidOptionError(
      "options",
      options,
      "an options object",
      "socket.io-sharded-adapter: createAdapter() takes an options object, not a Redis client: " +
        "write createAdapter({ redis: client }) to link the servers through Redis",
    );
  }
  const known = new Set(["workers", "offloadThreshold", "workerTimeout", "resourceLimits", "redis", "cluster", ...REDIS_ONLY]);
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw new InvalidOptionError(key, (options as Record<string, unknown>)[key], `one of ${[...known].join(", ")} (unknown option)`);
  }
  const workers = integerIn("workers", options.workers, 1, MAX_WORKERS, defaultWorkers());
  if (workers > availableParallelism()) debug("%d workers on %d cores: they share the cores", workers, availableParallelism());
  const offloadThreshold = options.offloadThreshold === undefined ? undefined : integerIn("offloadThreshold", options.offloadThreshold, 0, Number.MAX_SAFE_INTEGER, 0);
  const workerTimeout = integerIn("workerTimeout", options.workerTimeout, 1, 600_000, 500);
  const resourceLimits = options.resourceLimits;
  if (resourceLimits !== undefined && (typeof resourceLimits !== "object" || resourceLimits === null)) {
    throw new InvalidOptionError("resourceLimits", resourceLimits, "an object (see worker_threads ResourceLimits)");
  }
  const cluster = resolveClusterOptions(options);
  return { workers, offloadThreshold, workerTimeout, resourceLimits, redis: cluster ? undefined : resolveRedisOptions(options), cluster };
}

/** Heartbeats of the Redis and cluster modes: the defaults and checks of socket.io-adapter's ClusterAdapterWithHeartbeat. */
function resolveHeartbeatOptions(options: ShardedAdapterOptions): { heartbeatInterval: number; heartbeatTimeout: number } {
  const heartbeatInterval = integerIn("heartbeatInterval", options.heartbeatInterval, 1, 3_600_000, 5000);
  const heartbeatTimeout = integerIn("heartbeatTimeout", options.heartbeatTimeout, 1, 3_600_000, 10_000);
  if (heartbeatTimeout <= heartbeatInterval) {
    throw new InvalidOptionError("heartbeatTimeout", heartbeatTimeout, `greater than heartbeatInterval (${heartbeatInterval})`);
  }
  return { heartbeatInterval, heartbeatTimeout };
}

/** The cluster (IPC) mode: `cluster: true` in a process with an IPC channel, without `redis` and its options. */
function resolveClusterOptions(options: ShardedAdapterOptions): ResolvedClusterOptions | undefined {
  const cluster = options.cluster;
  if (cluster === undefined || cluster === false) return undefined;
  if (cluster !== true) throw new InvalidOptionError("cluster", cluster, "a boolean");
  if (options.redis !== undefined) throw new InvalidOptionError("cluster", cluster, "false when redis is given (one link: Redis or the cluster's IPC)");
  const stray = REDIS_ONLY.find((key) => key !== "heartbeatInterval" && key !== "heartbeatTimeout" && options[key] !== undefined);
  if (stray !== undefined) throw new InvalidOptionError(stray, options[stray], "given only with the redis option (it configures the Redis link)");
  const heartbeat = resolveHeartbeatOptions(options);
  if (typeof process.send !== "function") {
    throw new InvalidOptionError("cluster", cluster, "used in a process with an IPC channel to its primary (a Node.js cluster worker)");
  }
  return heartbeat;
}

const REDIS_ONLY = [
  "heartbeatInterval",
  "heartbeatTimeout",
  "streamName",
  "streamCount",
  "channelPrefix",
  "maxLen",
  "readCount",
  "blockTimeInMs",
  "sessionKeyPrefix",
] as const;

function isRedisClient(value: unknown): value is RedisClient {
  if (typeof value !== "object" || value === null) return false;
  const client = value as Partial<Record<string, unknown>>;
  return typeof client.duplicate === "function" && (typeof client.sendCommand === "function" || typeof client.call === "function");
}

function nonEmptyString(option: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || value === "") throw new InvalidOptionError(option, value, "a non-empty string");
  return value;
}

function resolveRedisOptions(options: ShardedAdapterOptions): ResolvedRedisOptions | undefined {
  const client = options.redis;
  if (client === undefined) {
    const stray = REDIS_ONLY.find((key) => options[key] !== undefined);
    if (stray !== undefined) throw new InvalidOptionError(stray, options[stray], "given only with the redis option (it configures the Redis link)");
    return undefined;
  }
  if (!isRedisClient(client)) throw new InvalidOptionError("redis", client, "a connected node-redis (v4/v5) or ioredis client");
  const shape = client as { masters?: unknown; isCluster?: unknown };
  if (Array.isArray(shape.masters) || shape.isCluster === true) {
    throw new InvalidOptionError("redis", client, "a client of one Redis server (Redis Cluster clients are not supported)");
  }
  const { heartbeatInterval, heartbeatTimeout } = resolveHeartbeatOptions(options);
  return {
    client,
    heartbeatInterval,
    heartbeatTimeout,
    streamName: nonEmptyString("streamName", options.streamName, "socket.io"),
    streamCount: integerIn("streamCount", options.streamCount, 1, 1024, 1),
    channelPrefix: nonEmptyString("channelPrefix", options.channelPrefix, "socket.io"),
    maxLen: integerIn("maxLen", options.maxLen, 1, Number.MAX_SAFE_INTEGER, 10_000),
    readCount: integerIn("readCount", options.readCount, 1, 1_000_000, 100),
    blockTimeInMs: integerIn("blockTimeInMs", options.blockTimeInMs, 1, 3_600_000, 5000),
    sessionKeyPrefix: nonEmptyString("sessionKeyPrefix", options.sessionKeyPrefix, "sio:session:"),
  };
}
