/**
 * The Redis commands the cluster adapter sends, over either client library.
 *
 * Both node-redis and ioredis can send a raw command (`sendCommand`, `call`)
 * and return RESP2 replies untouched, so every command but pub/sub is written
 * once, here, and the replies are parsed once. Pub/sub differs between the
 * two and is the only place that branches on the library.
 */
import createDebug from "debug";
import type { IoRedisClient, NodeRedisClient, RedisClient } from "./options";
import { clusterWarnings } from "./rate-limited-warnings";

const debug = createDebug("socket.io-sharded-adapter:redis");

/** One stream entry: its id and its field/value pairs. */
export interface StreamEntry {
  readonly id: string;
  readonly fields: Record<string, string>;
}

type Argument = string | Buffer;
type MessageListener = (channel: string, payload: Buffer) => void;

/** What an ioredis connection has beyond {@link IoRedisClient}, to be connected on demand. */
interface IoRedisConnection extends IoRedisClient {
  readonly status: string;
  connect(): Promise<unknown>;
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** Resolves when an ioredis connection is ready: connects a lazy one, waits for one still connecting. */
async function untilReady(connection: IoRedisConnection): Promise<void> {
  if (connection.status === "ready") return;
  if (connection.status === "wait") {
    await connection.connect();
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const onReady = () => {
      connection.off("end", onEnd);
      resolve();
    };
    const onEnd = () => {
      connection.off("ready", onReady);
      reject(new Error("the duplicated ioredis connection ended before it was ready"));
    };
    connection.once("ready", onReady);
    connection.once("end", onEnd);
  });
}

/** ioredis has a `sendCommand` too (of another shape); `callBuffer` is its own. */
function isNodeRedis(client: RedisClient): client is NodeRedisClient {
  return typeof (client as { callBuffer?: unknown }).callBuffer !== "function";
}

/** A Redis connection with the commands the adapter needs. */
export class RedisLink {
  private readonly client: RedisClient;
  private readonly listeners = new Map<string, MessageListener>();
  private ioRedisDispatch: ((channel: Buffer, payload: Buffer) => void) | undefined;

  constructor(client: RedisClient) {
    this.client = client;
  }

  /**
   * A new connection to the same server (for blocking reads and
   * subscriptions), connected and ready whatever the client's options: a
   * duplicate inherits ioredis' `lazyConnect` (it would never connect) and
   * `enableOfflineQueue: false` (its first commands would fail). Rejects, and
   * closes the copy, when it cannot connect.
   */
  async duplicate(): Promise<RedisLink> {
    const copy = this.client.duplicate();
    // A duplicate's errors (e.g. while Redis restarts) are logged; the
    // library reconnects and the callers retry.
    copy.on("error", (error: Error) => debug("connection error: %s", error.message));
    const link = new RedisLink(copy);
    try {
      if (isNodeRedis(copy)) await copy.connect();
      else await untilReady(copy as IoRedisConnection);
    } catch (error) {
      link.disconnect();
      throw error;
    }
    return link;
  }

  /** Sends a command and returns the raw RESP2 reply. */
  command(args: readonly Argument[]): Promise<unknown> {
    const client = this.client;
    if (isNodeRedis(client)) return client.sendCommand([...args]);
    const [name, ...rest] = args;
    return client.call(name as string, ...rest);
  }

  /** XADD with approximate trimming; resolves the new entry's id. */
  async xAdd(stream: string, fields: Record<string, string>, maxLen: number): Promise<string> {
    const args: Argument[] = ["XADD", stream, "MAXLEN", "~", String(maxLen), "*"];
    for (const key in fields) args.push(key, fields[key]);
    return String(await this.command(args));
  }

  /** Blocking XREAD of one stream after `offset`; null when the block time passed with nothing new. */
  async xRead(stream: string, offset: string, count: number, blockMs: number): Promise<StreamEntry[] | null> {
    const reply = (await this.command(["XREAD", "BLOCK", String(blockMs), "COUNT", String(count), "STREAMS", stream, offset])) as
      | [string, RawEntry[]][]
      | null;
    if (reply === null || reply.length === 0) return null;
    return reply[0][1].map(toEntry);
  }

  /** The id of the stream's last entry; "0-0" when the stream is empty or does not exist. */
  async lastEntryId(stream: string): Promise<string> {
    const reply = (await this.command(["XREVRANGE", stream, "+", "-", "COUNT", "1"])) as RawEntry[];
    return reply.length === 0 ? "0-0" : String(reply[0][0]);
  }

  /** XRANGE from `start` to `end` (inclusive, "+" for the end). */
  async xRange(stream: string, start: string, end: string): Promise<StreamEntry[]> {
    const reply = (await this.command(["XRANGE", stream, start, end])) as RawEntry[];
    return reply.map(toEntry);
  }

  publish(channel: string, payload: Buffer): Promise<unknown> {
    return this.command(["PUBLISH", channel, payload]);
  }

  /** Subscribers of each channel (PUBSUB NUMSUB), in the order given. */
  async numSub(channels: readonly string[]): Promise<number[]> {
    const reply = (await this.command(["PUBSUB", "NUMSUB", ...channels])) as (string | number | Buffer)[];
    const counts: number[] = [];
    for (let i = 1; i < reply.length; i += 2) counts.push(Number(reply[i]));
    return counts;
  }

  /** SET with an expiry in milliseconds. */
  setWithExpiry(key: string, value: string, expiryMs: number): Promise<unknown> {
    return this.command(["SET", key, value, "PX", String(expiryMs)]);
  }

  /** GET then DEL, atomically (a script: GETDEL needs Redis 6.2, MULTI would need a connection of its own). */
  async getAndDelete(key: string): Promise<string | null> {
    const reply = await this.command(["EVAL", "local v = redis.call('GET', KEYS[1]); redis.call('DEL', KEYS[1]); return v", "1", key]);
    return reply === null || reply === undefined ? null : String(reply);
  }

  /** Subscribes to channels; `listener` gets each message's channel and raw payload. */
  async subscribe(channels: readonly string[], listener: MessageListener): Promise<void> {
    for (const channel of channels) this.listeners.set(channel, listener);
    const client = this.client;
    if (isNodeRedis(client)) {
      await client.subscribe([...channels], (payload, channel) => this.dispatch(channel, payload), true);
      return;
    }
    if (this.ioRedisDispatch === undefined) {
      this.ioRedisDispatch = (channel, payload) => this.dispatch(channel, payload);
      client.on("messageBuffer", this.ioRedisDispatch as (...args: never[]) => void);
    }
    await client.subscribe(...channels);
  }

  /**
   * Hands a message to its listener. Nothing may throw back into the client
   * library: node-redis would drop its pub/sub handler for good. Listeners
   * catch their own errors; this is the last guard.
   */
  private dispatch(channel: Buffer | string, payload: Buffer): void {
    try {
      const name = channel.toString();
      this.listeners.get(name)?.(name, payload);
    } catch (error) {
      debug("pub/sub listener threw: %s", (error as Error).message);
      clusterWarnings.warn("pub/sub listener threw", `socket.io-sharded-adapter: a pub/sub message handler threw (${(error as Error).message}); the message was dropped`);
    }
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    for (const channel of channels) this.listeners.delete(channel);
    const client = this.client;
    if (isNodeRedis(client)) await client.unsubscribe([...channels]);
    else await client.unsubscribe(...channels);
  }

  /** Closes the connection at once (pending blocking reads fail). */
  disconnect(): void {
    const client = this.client as (NodeRedisClient | IoRedisClient) & { destroy?: () => void; disconnect?: () => unknown };
    try {
      if (typeof client.destroy === "function") client.destroy();
      else if (typeof client.disconnect === "function") void Promise.resolve(client.disconnect()).catch(() => undefined);
    } catch (error) {
      debug("disconnect: %s", (error as Error).message);
    }
  }
}

type RawEntry = [string, (string | Buffer)[]];

function toEntry([id, values]: RawEntry): StreamEntry {
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < values.length; i += 2) fields[String(values[i])] = String(values[i + 1]);
  return { id: String(id), fields };
}
