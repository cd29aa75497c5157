/**
 * The sharded adapter in a Node.js cluster worker, linked to the other
 * workers through the primary over the IPC channel.
 *
 * socket.io-adapter's `ClusterAdapterWithHeartbeat` speaks the cluster
 * protocol (broadcasts, acks across workers, fetchSockets, serverSideEmit,
 * heartbeats and serverCount); this class gives it the sharded storage
 * ({@link withShardedMembership}) and the transport of
 * `@socket.io/cluster-adapter` (see ipc-messages.ts), so that its workers and
 * primary mix with ours.
 *
 * Beyond the official adapter (socket.io issue #5226): a broadcast to rooms in
 * which this worker has no member is dropped before anything walks or encodes
 * it, and under this package's primary the worker tells the primary which
 * rooms it holds, so that such broadcasts are not even sent to it.
 *
 * Connection state recovery is kept in this worker (as without a cluster):
 * a client recovers its session when it reconnects to the same worker. A
 * worker with recovery on takes every broadcast (no skip, no routing), since
 * it stores them for its disconnected clients too.
 */
import {
  ClusterAdapterWithHeartbeat,
  MessageType,
  type BroadcastOptions,
  type ClusterMessage,
  type ClusterResponse,
} from "socket.io-adapter";
import type { Namespace } from "socket.io";
import { type AdapterContext, type ShardedAdapterStats, withShardedMembership } from "./adapter";
import { ClusterBase, decodeOptions, encodeOptions, restartHeartbeat, type HeartbeatInternals, type WireOptions } from "./cluster-base";
import type { IpcLink, IpcLinkStats, IpcMember } from "./ipc-link";
import { ADAPTER_SOURCE, SHARDED_SOURCE, type IpcAdapterMessage, type RoomsMessage } from "./ipc-messages";

/** What every namespace of one `createAdapter({ cluster: true })` result shares. */
export interface IpcContext extends AdapterContext {
  readonly link: IpcLink;
}

/** Counters of the cluster link, in {@link ShardedIpcAdapter.stats}. */
export interface IpcStats extends IpcLinkStats {
  /** This adapter's uid in the cluster protocol. */
  readonly uid: string;
  /** Other adapters of this namespace heard from within heartbeatTimeout (the workers, official ones included). */
  readonly peers: number;
  /** Broadcasts of other workers dropped unwalked: this worker had no member in their rooms. */
  readonly broadcastsSkipped: number;
  /** Room changes sent to the primary (with this package's primary only). */
  readonly roomUpdatesSent: number;
}

export interface ShardedIpcAdapterStats extends ShardedAdapterStats {
  readonly ipc: IpcStats;
}

const heartbeatFetchSockets = ClusterAdapterWithHeartbeat.prototype.fetchSockets as (this: ShardedIpcAdapter, opts: BroadcastOptions) => Promise<unknown[]>;

/**
 * A Socket.IO adapter with sharded room membership, linked to the other
 * workers of a Node.js cluster. Create it with `createAdapter({ cluster: true })`.
 */
export class ShardedIpcAdapter extends withShardedMembership(ClusterBase) implements IpcMember {
  /** Set on the class `createAdapter({ cluster: true })` returns. */
  protected static context: IpcContext | undefined;

  readonly namespace: string;
  private readonly link: IpcLink;
  private broadcastsSkipped = 0;
  private roomUpdatesSent = 0;
  /** Set once this adapter sent its rooms to a routing primary: from then on, changes follow. */
  private announcing = false;
  /** Room changes not yet sent: true = got its first member, false = lost its last. */
  private readonly roomChanges = new Map<string, boolean>();
  /**
   * Rooms by routing key (`String(room)`: the messages carry strings), with
   * how many of this adapter's rooms share it (the rooms 5 and "5" do): a key
   * is announced with its first room and withdrawn with its last.
   */
  private readonly roomsByKey = new Map<string, number>();
  private flushScheduled = false;
  private leaving = false;
  /**
   * With connection state recovery on, a broadcast to rooms whose members all
   * disconnected must still be stored for them: this worker then takes every
   * broadcast (no skip, no room routing).
   */
  private readonly takesEveryBroadcast: boolean;

  constructor(nsp: Namespace) {
    const context = new.target.context;
    if (context === undefined) throw new TypeError("ShardedIpcAdapter is created by createAdapter({ cluster: true })");
    const { heartbeatInterval, heartbeatTimeout } = context.link.options;
    super(nsp, { heartbeatInterval, heartbeatTimeout });
    this.link = context.link;
    this.namespace = nsp.name;
    this.takesEveryBroadcast = Boolean((nsp.server as unknown as { opts: { connectionStateRecovery?: unknown } }).opts.connectionStateRecovery);
    this.on("create-room", (room: unknown) => this.countRoom(String(room), 1));
    this.on("delete-room", (room: unknown) => this.countRoom(String(room), -1));
    this.linkUp();
  }

  /** Joins the link, tells a routing primary its rooms, says hello; again when a closed adapter reopens. */
  private linkUp(): void {
    this.leaving = false;
    this.announcing = false;
    this.link.join(this);
    if (this.link.routedByRoom) this.onRoutingPrimary();
    // Tell the others we are here; they answer with a heartbeat.
    this.init();
  }

  /** A closed adapter that socket.io uses again (after `io.close()`, `io.attach()`) rejoins the other workers. */
  override reopen(): void {
    const closed = this.leaving;
    super.reopen();
    if (!closed) return;
    restartHeartbeat(this);
    this.linkUp();
  }

  /** Sends a broadcast to the other workers, then delivers it to this worker's sockets. */
  override broadcast(packet: { type: number; data: unknown[]; id?: number }, opts: BroadcastOptions): Promise<void> {
    if (!opts.flags?.local && !this.leaving) {
      // A copy of the arguments: local delivery may append a recovery offset
      // while the message still waits in the send queue.
      this.publish({ type: MessageType.BROADCAST, data: { packet: { ...packet, data: [...packet.data] }, opts: encodeOptions(opts) } });
    }
    void super.broadcast(packet, opts);
    return Promise.resolve();
  }

  /** Sockets of every worker that `opts` selects (this worker's first). */
  override fetchSockets(opts: BroadcastOptions): Promise<unknown[]> {
    if (opts.flags?.local || this.leaving) return super.fetchSockets(opts);
    // ClusterAdapterWithHeartbeat's request (answers counted per peer uid),
    // whose local part goes through the sharded storage.
    return heartbeatFetchSockets.call(this, opts);
  }

  override stats(): ShardedIpcAdapterStats {
    return {
      ...super.stats(),
      ipc: {
        ...this.link.stats(),
        uid: this.uid,
        peers: (this as unknown as HeartbeatInternals).nodesMap.size,
        broadcastsSkipped: this.broadcastsSkipped,
        roomUpdatesSent: this.roomUpdatesSent,
      },
    };
  }

  /** Says goodbye to the other workers; requests still waiting for them get what arrived. */
  override close(): Promise<void> {
    const closing = Promise.resolve(super.close());
    if (this.leaving) return closing;
    this.leaving = true;
    const requests = (this as unknown as HeartbeatInternals).customRequests;
    for (const [requestId, request] of requests) {
      clearTimeout(request.timeout);
      if (request.type === MessageType.FETCH_SOCKETS) request.resolve(request.responses);
      else request.resolve(new Error(`the adapter of namespace "${this.namespace}" was closed before the other workers answered`), request.responses);
      requests.delete(requestId);
    }
    this.link.leave(this);
    return closing;
  }

  /** @internal Called by the link with each validated message of this namespace. */
  onIpcMessage(message: IpcAdapterMessage): void {
    if (message.uid === this.uid || this.leaving) return;
    if (message.type === MessageType.BROADCAST && message.data.requestId === undefined) {
      // A plain broadcast: delivered through the sharded path, or dropped
      // unwalked when no socket here is in its rooms.
      (this as unknown as HeartbeatInternals).nodesMap.set(message.uid, Date.now());
      const { packet, opts } = message.data as unknown as { packet: { type: number; data: unknown[] }; opts: WireOptions };
      if (opts.rooms.length > 0 && !this.takesEveryBroadcast && !this.hasMembersIn(opts.rooms)) {
        this.broadcastsSkipped++;
        return;
      }
      void super.broadcast(packet, decodeOptions(opts));
      return;
    }
    this.onMessage(message as ClusterMessage);
  }

  /** @internal The primary routes by room: send it this adapter's rooms once, then each change. */
  onRoutingPrimary(): void {
    if (this.announcing || this.leaving || this.takesEveryBroadcast) return;
    this.announcing = true;
    this.roomChanges.clear();
    this.roomsByKey.clear();
    for (const room of this.rooms.keys()) {
      const key = String(room);
      this.roomsByKey.set(key, (this.roomsByKey.get(key) ?? 0) + 1);
    }
    this.sendRooms(true, [...this.roomsByKey.keys()], []);
  }

  protected override doPublish(message: ClusterMessage): Promise<string> {
    (message as IpcAdapterMessage).source = ADAPTER_SOURCE;
    // Rooms first: a worker told of a join (by serverSideEmit, say) that then
    // broadcasts to the room must find the primary already routing it here.
    this.flushRoomChanges();
    this.link.send(message);
    // No offsets: connection state recovery stays in this worker.
    return Promise.resolve("");
  }

  protected override doPublishResponse(requesterUid: string, response: ClusterResponse): Promise<void> {
    const message = response as IpcAdapterMessage;
    message.source = ADAPTER_SOURCE;
    message.requesterUid = requesterUid;
    this.flushRoomChanges();
    this.link.send(message);
    return Promise.resolve();
  }

  private countRoom(key: string, delta: 1 | -1): void {
    if (!this.announcing || this.leaving) return;
    const count = (this.roomsByKey.get(key) ?? 0) + delta;
    if (count > 0) this.roomsByKey.set(key, count);
    else this.roomsByKey.delete(key);
    if (delta === 1 ? count === 1 : count === 0) this.noteRoomChange(key, delta === 1);
  }

  /**
   * Records a room's first member or last one leaving; the changes of one
   * synchronous run (a connection's joins, a socketsJoin) go in one message.
   */
  private noteRoomChange(room: string, added: boolean): void {
    if (!this.announcing || this.leaving) return;
    const earlier = this.roomChanges.get(room);
    // Added then removed (or the reverse) within one run: the primary's view is already right.
    if (earlier !== undefined && earlier !== added) this.roomChanges.delete(room);
    else this.roomChanges.set(room, added);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => this.flushRoomChanges());
  }

  private flushRoomChanges(): void {
    this.flushScheduled = false;
    if (this.roomChanges.size === 0 || this.leaving) return;
    const add: string[] = [];
    const remove: string[] = [];
    for (const [room, added] of this.roomChanges) (added ? add : remove).push(room);
    this.roomChanges.clear();
    this.sendRooms(false, add, remove);
  }

  private sendRooms(reset: boolean, add: string[], remove: string[]): void {
    const message: RoomsMessage = { source: SHARDED_SOURCE, kind: "rooms", uid: this.uid, nsp: this.namespace, reset, add, remove };
    this.roomUpdatesSent++;
    this.link.send(message);
  }
}

