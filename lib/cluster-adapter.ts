/**
 * The sharded adapter linked to other Socket.IO servers through Redis.
 *
 * socket.io-adapter's `ClusterAdapterWithHeartbeat` speaks the cluster
 * protocol (message types, acks across nodes, heartbeats); this class gives it
 * the sharded storage ({@link withShardedMembership}) and a Redis transport in
 * the format of `@socket.io/redis-streams-adapter` (see cluster-messages.ts),
 * so that nodes running either adapter work together.
 *
 * Beyond the official adapter: a node skips, without decoding it, a stream
 * broadcast to rooms in which it has no member (socket.io issue #5226: with
 * many nodes and small rooms, every node otherwise processes every broadcast),
 * and it ignores its own entries before decoding them.
 */
import { randomBytes } from "node:crypto";
import createDebug from "debug";
import {
  Adapter,
  ClusterAdapterWithHeartbeat,
  MessageType,
  type BroadcastOptions,
  type ClusterAdapterOptions,
  type ClusterMessage,
  type ClusterResponse,
  type PrivateSessionId,
  type Room,
  type Session,
} from "socket.io-adapter";
import type { Namespace } from "socket.io";
import { type AdapterContext, type ShardedAdapterStats, withShardedMembership } from "./adapter";
import type { ClusterLink, ClusterMember } from "./cluster-link";
import {
  fromStreamFields,
  isEphemeral,
  packMessage,
  privateChannelOf,
  publicChannelOf,
  ROOMS_FIELD,
  shardedChannelOf,
  streamNameOf,
  toStreamFields,
  unpackMessage,
  type AnyClusterMessage,
} from "./cluster-messages";
import type { ResolvedRedisOptions } from "./options";
import type { StreamEntry } from "./redis-link";

const debug = createDebug("socket.io-sharded-adapter:cluster");

/** socket.io-adapter's default wait for fetchSockets and serverSideEmit answers. */
const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
/** socket.io-parser's EVENT packet type. */
const EVENT_PACKET = 2;
/** Uids of our nodes remembered after they went silent (each node restart brings a new uid). */
const MAX_REMEMBERED_HEARTBEATERS = 10_000;
/** The uid under which @socket.io/redis-emitter publishes (not a node). */
const EMITTER_UID = "emitter";

/** What every namespace of one `createAdapter({ redis })` result shares. */
export interface ClusterContext extends AdapterContext {
  readonly link: ClusterLink;
}

/** Counters of the Redis link of one namespace, in {@link ShardedClusterAdapter.stats}. */
export interface ClusterStats {
  /** Stream entries of other nodes read for this namespace. */
  readonly entriesRead: number;
  /** Of those, broadcasts skipped without decoding: this node had no member in their rooms. */
  readonly broadcastsSkipped: number;
  /** Other nodes running this adapter, known by their heartbeats. */
  readonly peers: number;
  /** Other nodes running the official adapter (subscribers of the namespace's channel that send no heartbeats), at the last serverCount(). */
  readonly officialNodes: number;
}

export interface ShardedClusterAdapterStats extends ShardedAdapterStats {
  readonly cluster: ClusterStats;
}

/** A fetchSockets or serverSideEmit waiting for the other nodes' answers. */
interface PendingRequest {
  readonly type: MessageType.FETCH_SOCKETS | MessageType.SERVER_SIDE_EMIT;
  /** Our peers that have not answered. */
  readonly missing: Set<string>;
  /** Official nodes (known by count only) that have not answered. */
  anonymous: number;
  readonly answered: Set<string>;
  readonly responses: unknown[];
  readonly timer: NodeJS.Timeout;
  readonly finish: (error: Error | null) => void;
}

/** BroadcastOptions as the cluster messages carry them (the typings say string rooms; numbers travel too). */
type EncodedOptions = { rooms: string[]; except: string[]; flags: NonNullable<BroadcastOptions["flags"]> };

/**
 * ClusterAdapterWithHeartbeat with its constructor made reachable (its typings
 * declare it protected) and Adapter's statics kept, so that the resulting class
 * still fits socket.io's `adapter` option (`typeof Adapter`).
 */
const ClusterBase = ClusterAdapterWithHeartbeat as unknown as (abstract new (nsp: Namespace, opts: ClusterAdapterOptions) => ClusterAdapterWithHeartbeat) &
  Omit<typeof Adapter, "prototype">;

/** The parts of ClusterAdapter that its typings keep private. */
interface ClusterAdapterInternals {
  addOffsetIfNecessary(packet: { data: unknown[] }, opts: BroadcastOptions, offset: string): void;
}

/**
 * A Socket.IO adapter with sharded room membership, linked to the other
 * nodes through Redis Streams. Create it with `createAdapter({ redis })`.
 */
export class ShardedClusterAdapter extends withShardedMembership(ClusterBase) implements ClusterMember {
  /** Set on the class `createAdapter({ redis })` returns. */
  protected static context: ClusterContext | undefined;

  readonly namespace: string;
  readonly streamName: string;
  readonly channels: readonly string[];
  private readonly link: ClusterLink;
  private readonly redis: ResolvedRedisOptions;
  private readonly publicChannel: string;
  private readonly shardedChannel: string;
  /** Our peers (nodes that send heartbeats): uid -> last time heard from. */
  private readonly peers = new Map<string, number>();
  /**
   * Every uid that ever sent a heartbeat (bounded, oldest dropped first): an
   * answer from one of ours that was dropped for silence must not be taken
   * for an official node's answer.
   */
  private readonly heartbeaters = new Set<string>();
  private readonly pending = new Map<string, PendingRequest>();
  private readonly peerCheck: NodeJS.Timeout;
  private officialNodes = 0;
  private entriesRead = 0;
  private broadcastsSkipped = 0;
  private linked = false;
  /** Set by close(): a subscription that completes afterwards is undone, and no heartbeat starts. */
  private leaving = false;

  constructor(nsp: Namespace) {
    const context = new.target.context;
    if (context === undefined) throw new TypeError("ShardedClusterAdapter is created by createAdapter({ redis })");
    const redis = context.link.options;
    super(nsp, { heartbeatInterval: redis.heartbeatInterval, heartbeatTimeout: redis.heartbeatTimeout });
    this.link = context.link;
    this.redis = redis;
    this.namespace = nsp.name;
    this.streamName = streamNameOf(nsp.name, redis.streamName, redis.streamCount);
    this.publicChannel = publicChannelOf(redis.channelPrefix, nsp.name);
    this.shardedChannel = shardedChannelOf(redis.channelPrefix, nsp.name);
    this.channels = [this.publicChannel, privateChannelOf(redis.channelPrefix, nsp.name, this.uid), this.shardedChannel];
    this.peerCheck = setInterval(() => this.forgetSilentPeers(), Math.min(1000, redis.heartbeatTimeout / 2));
    this.peerCheck.unref();
    this.link.join(this).then(
      () => {
        if (this.leaving) return this.link.leave(this);
        this.linked = true;
        // Tell the others we are here; they answer with a heartbeat.
        this.init();
      },
      (error: Error) => debug("namespace %s could not subscribe: %s", nsp.name, error.message),
    );
  }

  /**
   * Publishes a broadcast to the other nodes and delivers it to this node's
   * sockets. With connection state recovery on, local delivery waits for the
   * stream offset that recovering clients need (as the official adapter);
   * otherwise it does not wait for Redis, so this node's clients are served
   * even while Redis is unreachable.
   */
  override async broadcast(packet: { type: number; data: unknown[]; id?: number }, opts: BroadcastOptions): Promise<void> {
    if (opts.flags?.local || this.leaving) return super.broadcast(packet, opts);
    if (!this.nsp.server.opts.connectionStateRecovery) {
      this.publishAndReturnOffset({ type: MessageType.BROADCAST, data: { packet, opts: encodeOptions(opts) } }).catch((error: Error) =>
        debug("broadcast not published: %s", error.message),
      );
    } else {
      try {
        const offset = await this.publishAndReturnOffset({
          type: MessageType.BROADCAST,
          data: { packet, opts: encodeOptions(opts) },
        });
        (this as unknown as ClusterAdapterInternals).addOffsetIfNecessary(packet, opts, offset);
      } catch (error) {
        debug("broadcast not published: %s", (error as Error).message);
      }
    }
    super.broadcast(packet, opts);
  }

  /** Number of nodes: this one, our peers heard from within heartbeatTimeout, and official nodes counted by Redis. */
  override async serverCount(): Promise<number> {
    if (this.leaving) return 1;
    await this.countOfficialNodes();
    return 1 + this.peers.size + this.officialNodes;
  }

  /** Sockets of every node that `opts` selects (this node's first, in the in-memory adapter's order). */
  override async fetchSockets(opts: BroadcastOptions): Promise<unknown[]> {
    const local: unknown[] = await super.fetchSockets(opts); // this node's (the mixin's local fetch)
    if (opts.flags?.local) return local;
    return new Promise((resolve, reject) => {
      void this.request(MessageType.FETCH_SOCKETS, opts.flags?.timeout, local, (error, responses) => (error ? reject(error) : resolve(responses)), (requestId) => ({
        type: MessageType.FETCH_SOCKETS,
        data: { opts: encodeOptions(opts), requestId },
      }));
    });
  }

  /** Emits to the other nodes' `serverSideEmit` listeners; with a trailing callback, collects their answers. */
  override async serverSideEmit(packet: unknown[]): Promise<void> {
    const ack = packet[packet.length - 1];
    if (typeof ack !== "function") {
      this.publish({ type: MessageType.SERVER_SIDE_EMIT, data: { packet } });
      return;
    }
    packet.pop();
    await this.request(MessageType.SERVER_SIDE_EMIT, undefined, [], (error, responses) => ack(error, responses), (requestId) => ({
      type: MessageType.SERVER_SIDE_EMIT,
      data: { requestId, packet },
    }));
  }

  /** Sessions are kept in Redis, as the official adapter keeps them, so that any node can restore them. */
  override persistSession(session: Session | Omit<Session, "missedPackets">): void {
    const key = this.redis.sessionKeyPrefix + session.pid;
    const maxDisconnectionDuration = (this.nsp.server.opts.connectionStateRecovery as { maxDisconnectionDuration?: number }).maxDisconnectionDuration ?? 120_000;
    void this.link.commands
      .setWithExpiry(key, packMessage(session).toString("base64"), maxDisconnectionDuration)
      .catch((error: Error) => debug("session %s not persisted: %s", session.pid, error.message));
  }

  /**
   * The session and the broadcasts it missed, read back from the stream
   * (null when the session expired or its offset left the stream).
   */
  override async restoreSession(pid: PrivateSessionId, offset: string): Promise<Session> {
    if (!/^[0-9]+-[0-9]+$/.test(offset)) return null as unknown as Session;
    const commands = this.link.commands;
    const [raw, atOffset] = await Promise.all([commands.getAndDelete(this.redis.sessionKeyPrefix + pid), commands.xRange(this.streamName, offset, offset)]);
    if (raw === null || atOffset.length === 0) return null as unknown as Session;
    const session = unpackMessage<Session>(Buffer.from(raw, "base64"));
    session.missedPackets = [];
    // As the official adapter: page through what followed the offset, up to a limit.
    for (let page = 0; page < 100; page++) {
      const entries = await commands.xRange(this.streamName, nextOffset(offset), "+");
      if (entries.length === 0) break;
      for (const entry of entries) {
        offset = entry.id;
        if (entry.fields.nsp !== this.nsp.name || entry.fields.type !== String(MessageType.BROADCAST)) continue;
        const { packet, opts } = (fromStreamFields(entry.fields) as { data: { packet: { type: number; data: unknown[] }; opts: EncodedOptions } }).data;
        // Only what got an offset when it was sent (ClusterAdapter's rule, as
        // SessionAwareAdapter stores): events, not volatile. The official
        // adapter replays volatile events too.
        if (packet.type === EVENT_PACKET && opts.flags?.volatile === undefined && isIncluded(session.rooms, opts)) {
          packet.data.push(entry.id);
          session.missedPackets.push(packet.data);
        }
      }
    }
    return session;
  }

  override stats(): ShardedClusterAdapterStats {
    return {
      ...super.stats(),
      cluster: { entriesRead: this.entriesRead, broadcastsSkipped: this.broadcastsSkipped, peers: this.peers.size, officialNodes: this.officialNodes },
    };
  }

  /** Says goodbye to the other nodes and stops reading. */
  override close(): Promise<void> {
    this.leaving = true;
    clearInterval(this.peerCheck);
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.peers.clear();
    for (const request of pending) {
      clearTimeout(request.timer);
      request.finish(new Error(`the adapter of namespace "${this.nsp.name}" was closed before the other nodes answered`));
    }
    const closing = Promise.resolve(super.close());
    this.link.leave(this);
    return closing;
  }

  /** @internal Called by the link for each stream entry of this namespace. */
  onStreamEntry(entry: StreamEntry): void {
    const { fields } = entry;
    if (fields.uid === this.uid) return; // our own entry, delivered when published
    this.entriesRead++;
    this.heardFrom(fields.uid, MessageType.BROADCAST);
    const rooms = fields[ROOMS_FIELD];
    if (rooms !== undefined && fields.type === String(MessageType.BROADCAST) && !this.hasMembersIn(JSON.parse(rooms) as Room[])) {
      this.broadcastsSkipped++;
      return;
    }
    this.onMessage(fromStreamFields(fields) as ClusterMessage, entry.id);
  }

  /** @internal Called by the link for each pub/sub message on this namespace's channels. */
  onPubSubMessage(payload: Buffer): void {
    let message: AnyClusterMessage;
    try {
      message = unpackMessage<AnyClusterMessage>(payload);
    } catch (error) {
      debug("invalid pub/sub payload: %s", (error as Error).message);
      return;
    }
    this.onMessage(message as ClusterMessage);
  }

  override onMessage(message: ClusterMessage, offset?: string): void {
    const uid = message.uid;
    if (uid === this.uid || message.nsp !== this.nsp.name) return;
    if (typeof uid === "string") this.heardFrom(uid, message.type);
    if (message.type === MessageType.ADAPTER_CLOSE && typeof uid === "string") this.forgetPeer(uid);
    if (message.type === MessageType.BROADCAST && (message.data as { requestId?: string }).requestId === undefined) {
      // A plain broadcast: delivered through the sharded path (in any order, by the workers when big).
      const { packet, opts } = message.data as { packet: { type: number; data: unknown[] }; opts: EncodedOptions };
      const decoded = decodeOptions(opts);
      if (offset !== undefined) (this as unknown as ClusterAdapterInternals).addOffsetIfNecessary(packet, decoded, offset);
      super.broadcast(packet, decoded);
      return;
    }
    super.onMessage(message, offset);
  }

  override onResponse(response: ClusterResponse): void {
    if (response.type === MessageType.FETCH_SOCKETS_RESPONSE || response.type === MessageType.SERVER_SIDE_EMIT_RESPONSE) {
      const request = this.pending.get(response.data.requestId);
      const uid = response.uid as string;
      if (request === undefined || request.answered.has(uid)) return;
      request.answered.add(uid);
      if (response.type === MessageType.FETCH_SOCKETS_RESPONSE) request.responses.push(...response.data.sockets);
      else request.responses.push(response.data.packet);
      if (!request.missing.delete(uid) && !this.heartbeaters.has(uid) && request.anonymous > 0) request.anonymous--;
      this.completeIfAnswered(response.data.requestId, request);
      return;
    }
    super.onResponse(response);
  }

  protected override async doPublish(message: ClusterMessage): Promise<string> {
    const commands = this.link.commands;
    if (isEphemeral(message)) {
      await commands.publish(this.publicChannel, packMessage(message));
      return "";
    }
    return commands.xAdd(this.streamName, toStreamFields(message), this.redis.maxLen);
  }

  protected override async doPublishResponse(requesterUid: string, response: ClusterResponse): Promise<void> {
    await this.link.commands.publish(privateChannelOf(this.redis.channelPrefix, this.nsp.name, requesterUid), packMessage(response));
  }

  /** Sends a request every other node answers, and calls `finish` with the answers (or a timeout error and those received). */
  private async request(
    type: PendingRequest["type"],
    timeout: number | undefined,
    responses: unknown[],
    finish: (error: Error | null, responses: unknown[]) => void,
    message: (requestId: string) => Parameters<ShardedClusterAdapter["publish"]>[0],
  ): Promise<void> {
    await this.countOfficialNodes();
    const missing = new Set(this.peers.keys());
    if (missing.size + this.officialNodes === 0) return finish(null, responses);
    const requestId = randomId();
    const timer = setTimeout(() => {
      const request = this.pending.get(requestId);
      if (request === undefined) return;
      this.pending.delete(requestId);
      const count = request.missing.size + request.anonymous;
      finish(new Error(`timeout reached: missing ${count} responses`), request.responses);
    }, timeout || DEFAULT_REQUEST_TIMEOUT_MS);
    this.pending.set(requestId, {
      type,
      missing,
      anonymous: this.officialNodes,
      answered: new Set(),
      responses,
      timer,
      finish: (error) => finish(error, responses),
    });
    this.publish(message(requestId));
  }

  private completeIfAnswered(requestId: string, request: PendingRequest): void {
    if (request.missing.size > 0 || request.anonymous > 0) return;
    clearTimeout(request.timer);
    this.pending.delete(requestId);
    request.finish(null);
  }

  /**
   * Official nodes send no heartbeats: they are counted as the subscribers of
   * the namespace's public channel that did not also subscribe to our marker
   * channel. Redis unreachable: the last count stands.
   */
  private async countOfficialNodes(): Promise<void> {
    if (!this.linked) return;
    try {
      const [all, ours] = await this.link.commands.numSub([this.publicChannel, this.shardedChannel]);
      this.officialNodes = Math.max(0, all - ours);
    } catch (error) {
      debug("PUBSUB NUMSUB failed: %s", (error as Error).message);
    }
  }

  private heardFrom(uid: string, type: MessageType): void {
    if (uid === EMITTER_UID) return;
    if (type === MessageType.INITIAL_HEARTBEAT || type === MessageType.HEARTBEAT) {
      if (!this.heartbeaters.has(uid)) {
        if (this.heartbeaters.size >= MAX_REMEMBERED_HEARTBEATERS) this.heartbeaters.delete(this.heartbeaters.values().next().value as string);
        this.heartbeaters.add(uid);
      }
      this.peers.set(uid, Date.now());
    } else if (this.heartbeaters.has(uid)) {
      // Any message of a node of ours counts: a busy node publishes often
      // enough never to send a heartbeat, and one dropped while Redis was
      // away comes back with its next message of any kind.
      this.peers.set(uid, Date.now());
    }
  }

  private forgetSilentPeers(): void {
    const deadline = Date.now() - this.redis.heartbeatTimeout;
    for (const [uid, lastSeen] of this.peers) if (lastSeen < deadline) this.forgetPeer(uid);
  }

  /** A peer left or went silent: stop counting it and stop waiting for its answers. */
  private forgetPeer(uid: string): void {
    if (!this.peers.delete(uid)) return;
    debug("node %s of namespace %s is gone", uid, this.nsp.name);
    for (const [requestId, request] of this.pending) {
      request.missing.delete(uid);
      this.completeIfAnswered(requestId, request);
    }
  }
}

function encodeOptions(opts: BroadcastOptions): EncodedOptions {
  return { rooms: [...opts.rooms] as string[], except: [...(opts.except ?? [])] as string[], flags: opts.flags ?? {} };
}

function decodeOptions(opts: EncodedOptions): BroadcastOptions {
  return { rooms: new Set(opts.rooms), except: new Set(opts.except), flags: opts.flags };
}

/** Whether a stored broadcast reaches a socket in `rooms` (as the official adapter decides it). */
function isIncluded(rooms: Room[], opts: { rooms: Room[]; except: Room[] }): boolean {
  const included = opts.rooms.length === 0 || rooms.some((room) => opts.rooms.includes(room));
  return included && rooms.every((room) => !opts.except.includes(room));
}

function nextOffset(offset: string): string {
  const [timestamp, sequence] = offset.split("-");
  return `${timestamp}-${parseInt(sequence, 10) + 1}`;
}

function randomId(): string {
  return randomBytes(8).toString("hex");
}
