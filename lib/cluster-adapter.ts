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
 *
 * Everything read from Redis is untrusted: each message is validated
 * (cluster-validation.ts) and handled inside its own try/catch; a bad one is
 * dropped, counted in `stats().cluster.rejected` and reported with a
 * rate-limited warning, and the node goes on.
 */
import { randomBytes } from "node:crypto";
import createDebug from "debug";
import {
  ClusterAdapter,
  MessageType,
  type BroadcastOptions,
  type ClusterMessage,
  type ClusterResponse,
  type PrivateSessionId,
  type Room,
  type Session,
} from "socket.io-adapter";
import type { Namespace } from "socket.io";
import { type AdapterContext, type ShardedAdapterStats, withShardedMembership } from "./adapter";
import { ClusterBase, decodeOptions, encodeOptions, restartHeartbeat, type WireOptions } from "./cluster-base";
import type { ClusterLink, ClusterMember } from "./cluster-link";
import {
  decodePubSubPayload,
  decodeStreamFields,
  isEphemeral,
  packMessage,
  privateChannelOf,
  publicChannelOf,
  shardedChannelOf,
  skippableBroadcastRooms,
  streamNameOf,
  toStreamFields,
  unpackMessage,
} from "./cluster-messages";
import { ClusterPeers } from "./cluster-peers";
import type { ClusterMessageCheck } from "./cluster-validation";
import type { ResolvedRedisOptions } from "./options";
import { clusterWarnings } from "./rate-limited-warnings";
import type { StreamEntry } from "./redis-link";

const debug = createDebug("socket.io-sharded-adapter:cluster");

/** socket.io-adapter's default wait for fetchSockets and serverSideEmit answers. */
const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
/** socket.io-parser's EVENT packet type. */
const EVENT_PACKET = 2;
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
  /** Uids heard in heartbeats that no subscriber confirmed yet (see cluster-peers.ts). */
  readonly unconfirmedPeers: number;
  /** Messages from Redis (stream entries and pub/sub) dropped as malformed, or whose handling threw. */
  readonly rejected: number;
  /** Why the last one was dropped (null before any). */
  readonly lastRejection: string | null;
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
  /** Our peers: nodes that send heartbeats, once a subscriber confirmed each. */
  private readonly peers = new ClusterPeers();
  /** A confirmation of peer candidates is under way (one at a time). */
  private confirming = false;
  /** State of the answer to INITIAL_HEARTBEATs: one at a time, so that a flood of them is not echoed one for one. */
  private heartbeatAnswer: "idle" | "sending" | "again" = "idle";
  private readonly pending = new Map<string, PendingRequest>();
  private peerCheck: NodeJS.Timeout | undefined;
  /** Counts linkUp() calls: a subscription that completes after a newer one began is left to the newer. */
  private linkGeneration = 0;
  private officialNodes = 0;
  private entriesRead = 0;
  private broadcastsSkipped = 0;
  private rejected = 0;
  private lastRejection: string | null = null;
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
    this.linkUp();
  }

  /** Subscribes this namespace's channels, reads its stream and says hello; again when a closed adapter reopens. */
  private linkUp(): void {
    const generation = ++this.linkGeneration;
    this.leaving = false;
    this.peerCheck = setInterval(() => this.forgetSilentPeers(), Math.min(1000, this.redis.heartbeatTimeout / 2));
    this.peerCheck.unref();
    this.link.join(this).then(
      () => {
        if (generation !== this.linkGeneration) return;
        if (this.leaving) return this.link.leave(this);
        this.linked = true;
        // Tell the others we are here; they answer with a heartbeat.
        this.init();
        this.confirmPeers();
      },
      (error: Error) => debug("namespace %s could not subscribe: %s", this.nsp.name, error.message),
    );
  }

  /** A closed adapter that socket.io uses again (after `io.close()`, `io.attach()`) links up again. */
  override reopen(): void {
    const closed = this.leaving;
    super.reopen();
    if (!closed) return;
    restartHeartbeat(this);
    this.linkUp();
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
      // `opts` first: the #5226 skip reads the rooms at the start of the JSON (cluster-messages.ts).
      this.publishAndReturnOffset({ type: MessageType.BROADCAST, data: { opts: encodeOptions(opts), packet } }).catch((error: Error) =>
        debug("broadcast not published: %s", error.message),
      );
    } else {
      try {
        const offset = await this.publishAndReturnOffset({
          type: MessageType.BROADCAST,
          data: { opts: encodeOptions(opts), packet },
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
    await this.refreshNodeCounts();
    return 1 + this.peers.size + this.officialNodes;
  }

  /** Sockets of every node that `opts` selects (this node's first, in the in-memory adapter's order). */
  override async fetchSockets(opts: BroadcastOptions): Promise<unknown[]> {
    const local: unknown[] = await super.fetchSockets(opts); // this node's (the mixin's local fetch)
    if (opts.flags?.local || this.leaving) return local;
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
    if (this.leaving) {
      // Closed: no other node to reach (nor a channel to hear answers on).
      if (typeof ack === "function") ack(null, []);
      return;
    }
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
    const session = decodeSession(raw);
    if (session === null) {
      this.reject("persisted session", "not a MessagePack session (sid, pid, rooms)");
      return null as unknown as Session;
    }
    // As the official adapter: page through what followed the offset, up to a limit.
    for (let page = 0; page < 100; page++) {
      const entries = await commands.xRange(this.streamName, nextOffset(offset), "+");
      if (entries.length === 0) break;
      for (const entry of entries) {
        offset = entry.id;
        if (entry.fields.nsp !== this.nsp.name || entry.fields.type !== String(MessageType.BROADCAST)) continue;
        const check = decodeStreamFields(entry.fields);
        if (!check.valid) {
          this.reject("stream entry", check.reason);
          continue;
        }
        const { packet, opts } = (check.message as { data: { packet: { type: number; data: unknown[] }; opts: WireOptions } }).data;
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
      cluster: {
        entriesRead: this.entriesRead,
        broadcastsSkipped: this.broadcastsSkipped,
        peers: this.peers.size,
        officialNodes: this.officialNodes,
        unconfirmedPeers: this.peers.candidateCount,
        rejected: this.rejected,
        lastRejection: this.lastRejection,
      },
    };
  }

  /** Says goodbye to the other nodes and stops reading. */
  override close(): Promise<void> {
    this.leaving = true;
    this.linked = false;
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

  /** @internal Called by the link for each stream entry of this namespace. Never throws. */
  onStreamEntry(entry: StreamEntry): void {
    try {
      const { fields } = entry;
      if (fields.uid === this.uid) return; // our own entry, delivered when published
      this.entriesRead++;
      const rooms = skippableBroadcastRooms(fields);
      if (rooms !== undefined && !this.hasMembersIn(rooms)) {
        this.heardFrom(fields.uid as string, MessageType.BROADCAST);
        this.broadcastsSkipped++;
        return;
      }
      this.handle(decodeStreamFields(fields), "stream entry", entry.id);
    } catch (error) {
      this.reject("stream entry", `handling threw: ${(error as Error).message}`);
    }
  }

  /** @internal Called by the link for each pub/sub message on this namespace's channels. Never throws. */
  onPubSubMessage(payload: Buffer): void {
    try {
      this.handle(decodePubSubPayload(payload), "pub/sub message");
    } catch (error) {
      this.reject("pub/sub message", `handling threw: ${(error as Error).message}`);
    }
  }

  private handle(check: ClusterMessageCheck, source: string, offset?: string): void {
    if (!check.valid) return this.reject(source, check.reason);
    this.onMessage(check.message as ClusterMessage, offset);
  }

  /** Drops a message from Redis: counted, and reported (rate-limited per kind, not only under DEBUG). */
  private reject(source: string, reason: string): void {
    this.rejected++;
    this.lastRejection = `${source}: ${reason}`;
    debug("namespace %s dropped a %s: %s", this.nsp.name, source, reason);
    clusterWarnings.warn(
      this.lastRejection,
      `socket.io-sharded-adapter: namespace "${this.nsp.name}" dropped a ${source} from Redis (${reason}); ` +
        `stats().cluster.rejected counts them (this warning is rate-limited)`,
    );
  }

  /**
   * Handles a message of another node (validated: see cluster-validation.ts).
   * Heartbeats are handled here rather than by ClusterAdapterWithHeartbeat,
   * which would count every uid it hears as a node and echo every
   * INITIAL_HEARTBEAT; the other requests go to socket.io-adapter's
   * ClusterAdapter.
   */
  override onMessage(message: ClusterMessage, offset?: string): void {
    const uid = message.uid;
    if (uid === this.uid || message.nsp !== this.nsp.name) return;
    this.heardFrom(uid, message.type);
    switch (message.type) {
      case MessageType.INITIAL_HEARTBEAT:
        this.answerInitialHeartbeat();
        return;
      case MessageType.HEARTBEAT:
        return;
      case MessageType.ADAPTER_CLOSE:
        this.forgetPeer(uid);
        return;
      case MessageType.BROADCAST:
        if (message.data.requestId !== undefined) break;
        {
          // A plain broadcast: delivered through the sharded path (in any order, by the workers when big).
          const { packet, opts } = message.data as { packet: { type: number; data: unknown[] }; opts: WireOptions };
          const decoded = decodeOptions(opts);
          if (offset !== undefined) (this as unknown as ClusterAdapterInternals).addOffsetIfNecessary(packet, decoded, offset);
          super.broadcast(packet, decoded);
        }
        return;
    }
    (ClusterAdapter.prototype as unknown as { onMessage(message: ClusterMessage, offset?: string): void }).onMessage.call(this, message, offset);
  }

  override onResponse(response: ClusterResponse): void {
    if (response.type === MessageType.FETCH_SOCKETS_RESPONSE || response.type === MessageType.SERVER_SIDE_EMIT_RESPONSE) {
      const request = this.pending.get(response.data.requestId);
      const uid = response.uid as string;
      if (request === undefined || request.answered.has(uid)) return;
      request.answered.add(uid);
      if (response.type === MessageType.FETCH_SOCKETS_RESPONSE) request.responses.push(...response.data.sockets);
      else request.responses.push(response.data.packet);
      if (!request.missing.delete(uid) && !this.peers.isKnown(uid) && request.anonymous > 0) request.anonymous--;
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
    await this.refreshNodeCounts();
    const missing = new Set(this.peers.uids());
    if (missing.size + this.officialNodes === 0) return finish(null, responses);
    const requestId = randomId();
    const timer = setTimeout(() => {
      const request = this.pending.get(requestId);
      if (request === undefined) return;
      this.pending.delete(requestId);
      // Worded as socket.io-adapter's ClusterAdapter (and the official adapter) word it.
      const received = request.answered.size;
      const expected = received + request.missing.size + request.anonymous;
      finish(new Error(`timeout reached: only ${received} responses received out of ${expected}`), request.responses);
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
   * One PUBSUB NUMSUB for the node counts. Official nodes send no
   * heartbeats: they are counted as the subscribers of the namespace's public
   * channel that did not also subscribe to our marker channel. And each peer
   * candidate (a uid heard in a heartbeat) is confirmed by a subscriber on its
   * private channel, or forgotten. Redis unreachable: the last counts stand.
   */
  private async refreshNodeCounts(): Promise<boolean> {
    if (!this.linked || this.leaving) return false;
    const candidates = this.peers.pendingCandidates();
    const prefix = this.redis.channelPrefix;
    try {
      const channels = [this.publicChannel, this.shardedChannel, ...candidates.map((uid) => privateChannelOf(prefix, this.nsp.name, uid))];
      const [all = 0, ours = 0, ...subscribed] = await this.link.commands.numSub(channels);
      this.officialNodes = Math.max(0, all - ours);
      this.peers.settle(
        candidates,
        candidates.map((_, i) => (subscribed[i] ?? 0) > 0),
      );
      return true;
    } catch (error) {
      debug("PUBSUB NUMSUB failed: %s", (error as Error).message);
      return false;
    }
  }

  /** Confirms the peer candidates in the background, one NUMSUB at a time, until none is left (or Redis fails). */
  private confirmPeers(): void {
    if (this.confirming || this.peers.candidateCount === 0 || !this.linked || this.leaving) return;
    this.confirming = true;
    void this.refreshNodeCounts().then((succeeded) => {
      this.confirming = false;
      if (succeeded) this.confirmPeers();
    });
  }

  /** A new node said hello: answer with a heartbeat, at most one in flight (and one more after it). */
  private answerInitialHeartbeat(): void {
    if (this.heartbeatAnswer !== "idle") {
      this.heartbeatAnswer = "again";
      return;
    }
    this.heartbeatAnswer = "sending";
    void this.publishAndReturnOffset({ type: MessageType.HEARTBEAT })
      .catch((error: Error) => debug("heartbeat not published: %s", error.message))
      .then(() => {
        const again = this.heartbeatAnswer === "again";
        this.heartbeatAnswer = "idle";
        if (again && !this.leaving) this.answerInitialHeartbeat();
      });
  }

  private heardFrom(uid: string, type: MessageType): void {
    if (uid === EMITTER_UID) return;
    const now = Date.now();
    if (type === MessageType.INITIAL_HEARTBEAT || type === MessageType.HEARTBEAT) {
      if (this.peers.heardHeartbeat(uid, now)) this.confirmPeers();
    } else {
      // Any message of a node of ours counts: a busy node publishes often
      // enough never to send a heartbeat, and one dropped while Redis was
      // away comes back with its next message of any kind.
      this.peers.heardFrom(uid, now);
    }
  }

  private forgetSilentPeers(): void {
    for (const uid of this.peers.silentSince(Date.now() - this.redis.heartbeatTimeout)) this.forgetPeer(uid);
  }

  /** A peer left or went silent: stop counting it and stop waiting for its answers. */
  private forgetPeer(uid: string): void {
    if (!this.peers.forget(uid)) return;
    debug("node %s of namespace %s is gone", uid, this.nsp.name);
    for (const [requestId, request] of this.pending) {
      request.missing.delete(uid);
      this.completeIfAnswered(requestId, request);
    }
  }
}

/** Whether a stored broadcast reaches a socket in `rooms` (as the official adapter decides it). */
function isIncluded(rooms: Room[], opts: { rooms: Room[]; except: Room[] }): boolean {
  const included = opts.rooms.length === 0 || rooms.some((room) => opts.rooms.includes(room));
  return included && rooms.every((room) => !opts.except.includes(room));
}

/** A persisted session read back from Redis, or null when it is not one. */
function decodeSession(raw: string): Session | null {
  let session: unknown;
  try {
    session = unpackMessage(Buffer.from(raw, "base64"));
  } catch {
    return null;
  }
  if (typeof session !== "object" || session === null) return null;
  const { sid, pid, rooms } = session as Partial<Session>;
  if (typeof sid !== "string" || typeof pid !== "string" || !Array.isArray(rooms)) return null;
  if (!rooms.every((room) => typeof room === "string" || typeof room === "number")) return null;
  return { ...(session as Session), missedPackets: [] };
}

function nextOffset(offset: string): string {
  const [timestamp, sequence] = offset.split("-");
  return `${timestamp}-${parseInt(sequence, 10) + 1}`;
}

function randomId(): string {
  return randomBytes(8).toString("hex");
}
