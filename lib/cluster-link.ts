/**
 * The Redis connections behind one `createAdapter({ redis })` result, shared
 * by all its namespaces, as the official adapter shares them:
 *
 *   user's client ── XADD, PUBLISH, PUBSUB NUMSUB, sessions
 *   reader (one per stream) ── blocking XREAD loop ──> adapter of entry.nsp
 *   subscriber ── SUBSCRIBE <public>, <private>, <~sharded> channels per namespace
 *
 * Connections are opened with the first namespace and closed with the last.
 */
import createDebug from "debug";
import type { ResolvedRedisOptions } from "./options";
import { clusterWarnings } from "./rate-limited-warnings";
import { RedisLink, type StreamEntry } from "./redis-link";

const debug = createDebug("socket.io-sharded-adapter:cluster");

/** Longest pause between XREAD retries while Redis is unreachable. */
const MAX_RETRY_DELAY_MS = 1000;

/** What the link hands to a namespace's adapter. */
export interface ClusterMember {
  readonly namespace: string;
  readonly streamName: string;
  /** Channels this member listens on. */
  readonly channels: readonly string[];
  onStreamEntry(entry: StreamEntry): void;
  onPubSubMessage(payload: Buffer): void;
}

export class ClusterLink {
  readonly options: ResolvedRedisOptions;
  /** The user's client, for commands that do not block. */
  readonly commands: RedisLink;
  private readonly members = new Map<string, ClusterMember>();
  private readonly readers = new Map<string, AbortController>();
  private subscriber: Promise<RedisLink> | undefined;

  constructor(options: ResolvedRedisOptions) {
    this.options = options;
    this.commands = new RedisLink(options.client);
  }

  /**
   * Starts delivering a namespace's messages to `member`; resolves once its
   * channels are subscribed. A failed connection or SUBSCRIBE (Redis
   * unreachable, a client that refuses commands while reconnecting) is
   * retried with backoff until it succeeds; rejects only when `member` left
   * (or was replaced) before that.
   */
  async join(member: ClusterMember): Promise<void> {
    this.members.set(member.namespace, member);
    if (!this.readers.has(member.streamName)) this.startReading(member.streamName);
    let retryDelay = 0;
    for (let attempt = 1; ; attempt++) {
      if (this.members.get(member.namespace) !== member) throw new Error(`namespace ${member.namespace} left before its channels were subscribed`);
      try {
        const subscriber = await this.connectSubscriber();
        await subscriber.subscribe(member.channels, (_channel, payload) => member.onPubSubMessage(payload));
        if (attempt > 1) debug("namespace %s subscribed after %d attempts", member.namespace, attempt);
        return;
      } catch (error) {
        retryDelay = Math.min(MAX_RETRY_DELAY_MS, retryDelay === 0 ? 50 : retryDelay * 2);
        const text = `socket.io-sharded-adapter: could not subscribe to the channels of namespace "${member.namespace}" (${(error as Error).message}); retrying`;
        debug("%s in %d ms", text, retryDelay);
        clusterWarnings.warn("subscribe failed", text);
        await new Promise((resolve) => setTimeout(resolve, retryDelay).unref());
      }
    }
  }

  /** The subscriber connection, opened by the first caller; not cached when it fails, so that the next attempt opens a new one. */
  private async connectSubscriber(): Promise<RedisLink> {
    const connecting = (this.subscriber ??= this.commands.duplicate());
    try {
      return await connecting;
    } catch (error) {
      if (this.subscriber === connecting) this.subscriber = undefined;
      throw error;
    }
  }

  /**
   * Stops delivering to `member`; the last one out closes the connections.
   * Safe to call twice, and after a newer adapter of the same namespace joined
   * (the channels that one shares are kept).
   */
  leave(member: ClusterMember): void {
    const current = this.members.get(member.namespace);
    if (current === member) this.members.delete(member.namespace);
    const subscriber = this.subscriber;
    if (this.members.size === 0) {
      for (const reader of this.readers.values()) reader.abort();
      this.readers.clear();
      this.subscriber = undefined;
      void subscriber?.then((link) => link.disconnect(), () => undefined);
      return;
    }
    const kept = new Set(current === member ? [] : current?.channels);
    const channels = member.channels.filter((channel) => !kept.has(channel));
    void subscriber?.then((link) => link.unsubscribe(channels)).catch((error: Error) => debug("unsubscribe: %s", error.message));
  }

  private startReading(stream: string): void {
    const controller = new AbortController();
    this.readers.set(stream, controller);
    void this.read(stream, controller.signal);
  }

  /**
   * The XREAD loop of one stream, on a connection of its own (XREAD BLOCK
   * holds it). It reads after a concrete id, never after "$": first the id of
   * the stream's last entry when it started, then the last entry it read, so
   * that what is written while a read fails, or between two reads, is read
   * next time.
   */
  private async read(stream: string, signal: AbortSignal): Promise<void> {
    const { readCount, blockTimeInMs } = this.options;
    let reader: RedisLink | undefined;
    let offset: string | undefined;
    let retryDelay = 0;
    signal.addEventListener("abort", () => reader?.disconnect(), { once: true });
    while (!signal.aborted) {
      try {
        reader ??= await this.commands.duplicate();
        if (signal.aborted) break;
        offset ??= await reader.lastEntryId(stream);
        const entries = await reader.xRead(stream, offset, readCount, blockTimeInMs);
        retryDelay = 0;
        for (const entry of entries ?? []) {
          offset = entry.id;
          // Each member catches what goes wrong with one entry; this is the last guard.
          try {
            this.members.get(entry.fields.nsp)?.onStreamEntry(entry);
          } catch (error) {
            debug("entry %s of %s could not be handled: %s", entry.id, stream, (error as Error).message);
          }
        }
      } catch (error) {
        if (signal.aborted) break;
        // Redis unreachable or restarting: the client reconnects; retry with backoff.
        retryDelay = Math.min(MAX_RETRY_DELAY_MS, retryDelay === 0 ? 50 : retryDelay * 2);
        debug("XREAD on %s failed (%s), retrying in %d ms", stream, (error as Error).message, retryDelay);
        await new Promise((resolve) => setTimeout(resolve, retryDelay).unref());
      }
    }
    reader?.disconnect();
  }
}
