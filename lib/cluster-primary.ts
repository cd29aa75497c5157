/**
 * The primary of a Node.js cluster: relays the adapter messages between its
 * workers, as `@socket.io/cluster-adapter`'s setupPrimary does (responses to
 * the requester's worker only, everything else to every other worker), so
 * that its workers and ours can be mixed under either primary.
 *
 * Beyond the official primary:
 * - room routing: our workers tell it which rooms each of their adapters
 *   holds (a snapshot, then changes); a plain broadcast (and socketsJoin,
 *   socketsLeave, disconnectSockets) to rooms goes only to the workers with a
 *   member in one of them. Workers that never sent their rooms (official
 *   ones, or ours before their snapshot) get everything.
 * - failure: when a worker exits, its rooms are forgotten and the other
 *   workers get an ADAPTER_CLOSE for each of its adapters, so that their
 *   serverCount drops at once rather than after heartbeatTimeout.
 * - bounded memory: each worker's messages go through a bounded sender
 *   (ipc-sender.ts): a stalled worker costs at most `maxQueued` waiting
 *   messages, the oldest dropped and counted.
 * - every message is validated first; bad ones are dropped and counted.
 */
import cluster, { type Worker } from "node:cluster";
import createDebug from "debug";
import { MessageType } from "socket.io-adapter";
import { InvalidOptionError } from "./errors";
import { BoundedSender, DEFAULT_SENDER_LIMITS, type IpcEndpoint, type SenderStats } from "./ipc-sender";
import {
  ADAPTER_SOURCE,
  RESPONSE_TYPES,
  routingRoomsOf,
  SHARDED_SOURCE,
  sourceOf,
  validateAdapterMessage,
  validateShardedMessage,
  type HelloMessage,
  type IpcAdapterMessage,
  type RoomsMessage,
} from "./ipc-messages";

const debug = createDebug("socket.io-sharded-adapter:primary");

/** Options of {@link setupPrimary}. */
export interface PrimaryOptions {
  /**
   * Send a room broadcast (and socketsJoin, socketsLeave, disconnectSockets
   * with rooms) only to the workers holding one of its rooms. A join is seen
   * here when its worker's update arrives: a broadcast relayed before that
   * misses the new member, as if it had been sent just before the join. Off:
   * every worker gets everything and skips what it has no member for, in the
   * official primary's order. Default: false (the official primary's
   * behaviour; turn it on to cut IPC traffic when rooms are local to workers).
   */
  roomRouting?: boolean;
  /** Messages to one worker handed to its channel and not yet written out. Default: 1024. */
  maxInFlight?: number;
  /** Messages to one worker waiting behind those; beyond this the oldest is dropped. Default: 10000. */
  maxQueued?: number;
}

/** Counters of {@link ClusterPrimary.stats}. */
export interface PrimaryStats {
  /** Workers connected now. */
  readonly workers: number;
  /** Adapter messages received from the workers. */
  readonly received: number;
  /** Copies sent to workers (a broadcast to 3 workers counts 3). */
  readonly forwarded: number;
  /** Copies not sent because the worker had no member in the target rooms. */
  readonly routedAway: number;
  /** Messages dropped by validation (or whose handling threw). */
  readonly invalid: number;
  /** Responses whose requester is not known (its worker is gone). */
  readonly unroutable: number;
  /** Of all workers' senders: dropped from full queues, waiting now, failed writes. */
  readonly dropped: number;
  readonly queued: number;
  readonly failed: number;
  /** Per worker id: what its sender did, and how many adapters of it send their rooms. */
  readonly perWorker: Readonly<Record<string, SenderStats & { readonly routedAdapters: number }>>;
}

/** What {@link setupPrimary} returns. */
export interface ClusterPrimary {
  stats(): PrimaryStats;
  /** Stops relaying (removes the cluster listeners). */
  close(): void;
}

/** One adapter (one namespace of one server) in a worker. */
interface AdapterEntry {
  readonly workerId: number;
  readonly nsp: string;
  /** Its rooms, once it sent them; undefined: it gets every broadcast. */
  rooms: Set<string> | undefined;
}

/** What the primary knows of one worker. */
interface WorkerEntry {
  readonly worker: Worker;
  readonly sender: BoundedSender;
  readonly uids: Set<string>;
}

/** Room -> uids of the adapters holding it, per namespace. */
type RoomTable = Map<string, Map<string, Set<string>>>;

function limitIn(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 10_000_000) {
    throw new InvalidOptionError(option, value, "an integer from 1 to 10000000");
  }
  return value;
}

/**
 * Relays the adapter messages between the cluster's workers. Call it once, in
 * the primary, before forking. Works for workers running
 * `createAdapter({ cluster: true })` and `@socket.io/cluster-adapter`'s
 * adapter alike. For packets with binary data, fork the workers with
 * `cluster.setupPrimary({ serialization: "advanced" })`, as for the official adapter.
 *
 * @throws Error when not called in a cluster primary; InvalidOptionError for a bad option.
 */
export function setupPrimary(options: PrimaryOptions = {}): ClusterPrimary {
  if (!cluster.isPrimary) throw new Error("socket.io-sharded-adapter: setupPrimary() is called in the cluster's primary process, not in a worker");
  if (typeof options !== "object" || options === null) throw new InvalidOptionError("options", options, "an object");
  const limits = {
    maxInFlight: limitIn("maxInFlight", options.maxInFlight, DEFAULT_SENDER_LIMITS.maxInFlight),
    maxQueued: limitIn("maxQueued", options.maxQueued, DEFAULT_SENDER_LIMITS.maxQueued),
  };
  const roomRouting = options.roomRouting ?? false;
  if (typeof roomRouting !== "boolean") throw new InvalidOptionError("roomRouting", roomRouting, "a boolean");
  return new PrimaryRelay(limits, roomRouting);
}

class PrimaryRelay implements ClusterPrimary {
  private readonly workers = new Map<number, WorkerEntry>();
  private readonly adapters = new Map<string, AdapterEntry>();
  private readonly roomTable: RoomTable = new Map();
  private received = 0;
  private forwarded = 0;
  private routedAway = 0;
  private invalid = 0;
  private unroutable = 0;
  /** Counters of the senders of workers that are gone. */
  private goneTotals = { dropped: 0, failed: 0 };
  private readonly onMessage = (worker: Worker, message: unknown) => this.receive(worker, message);
  private readonly onExit = (worker: Worker) => this.forgetWorker(worker);
  private static readonly hello: HelloMessage = { source: SHARDED_SOURCE, kind: "hello" };

  constructor(
    private readonly limits: { maxInFlight: number; maxQueued: number },
    /** Without it no hello is sent: no worker sends its rooms, every worker gets everything. */
    private readonly roomRouting: boolean,
  ) {
    cluster.on("message", this.onMessage);
    cluster.on("disconnect", this.onExit);
    cluster.on("exit", this.onExit);
  }

  close(): void {
    cluster.off("message", this.onMessage);
    cluster.off("disconnect", this.onExit);
    cluster.off("exit", this.onExit);
  }

  stats(): PrimaryStats {
    let dropped = this.goneTotals.dropped;
    let failed = this.goneTotals.failed;
    let queued = 0;
    const perWorker: Record<string, SenderStats & { routedAdapters: number }> = {};
    for (const [id, entry] of this.workers) {
      const sender = entry.sender.stats();
      dropped += sender.dropped;
      failed += sender.failed;
      queued += sender.queued;
      let routedAdapters = 0;
      for (const uid of entry.uids) if (this.adapters.get(uid)?.rooms !== undefined) routedAdapters++;
      perWorker[id] = { ...sender, routedAdapters };
    }
    return {
      workers: this.workers.size,
      received: this.received,
      forwarded: this.forwarded,
      routedAway: this.routedAway,
      invalid: this.invalid,
      unroutable: this.unroutable,
      dropped,
      queued,
      failed,
      perWorker,
    };
  }

  private entryOf(worker: Worker): WorkerEntry {
    let entry = this.workers.get(worker.id);
    if (entry === undefined) {
      entry = { worker, sender: new BoundedSender(worker as unknown as IpcEndpoint, this.limits), uids: new Set() };
      this.workers.set(worker.id, entry);
    }
    return entry;
  }

  private receive(worker: Worker, message: unknown): void {
    const source = sourceOf(message);
    if (source === undefined) return; // the application's own messages
    try {
      if (source === SHARDED_SOURCE) this.receiveRooms(worker, message);
      else this.relay(worker, message);
    } catch (error) {
      this.invalid++;
      debug("message from worker %d could not be handled: %s", worker.id, (error as Error).message);
    }
  }

  /** An adapter message: to the requester's worker (responses), or to every other worker that may need it. */
  private relay(worker: Worker, value: unknown): void {
    const problem = validateAdapterMessage(value);
    if (problem !== null) {
      this.invalid++;
      debug("invalid message from worker %d dropped: %s", worker.id, problem);
      return;
    }
    const message = value as IpcAdapterMessage;
    this.received++;
    if (!this.register(worker, message.uid, message.nsp)) return;
    if (RESPONSE_TYPES.has(message.type)) {
      const requester = this.adapters.get(message.requesterUid as string);
      const target = requester === undefined ? undefined : this.workers.get(requester.workerId);
      if (target === undefined) {
        this.unroutable++;
        return;
      }
      this.forward(target, message);
      return;
    }
    if (message.type === MessageType.ADAPTER_CLOSE) this.forgetAdapter(message.uid);
    const rooms = routingRoomsOf(message);
    const holders = rooms === undefined ? undefined : this.workersHolding(message.nsp, rooms);
    for (const [id, entry] of this.workers) {
      if (id === worker.id) continue;
      if (holders !== undefined && !holders.has(id)) {
        this.routedAway++;
        continue;
      }
      this.forward(entry, message);
    }
  }

  /**
   * Notes that `uid` is an adapter of `worker`. A new one gets a hello (the
   * answer is its rooms, from our workers only). False: the uid belongs to
   * another worker (a forged or colliding message, dropped).
   */
  private register(worker: Worker, uid: string, nsp: string): boolean {
    const entry = this.entryOf(worker);
    const known = this.adapters.get(uid);
    if (known !== undefined) {
      if (known.workerId === worker.id && known.nsp === nsp) return true;
      this.invalid++;
      debug("worker %d sent a message as adapter %s of worker %d (%s): dropped", worker.id, uid, known.workerId, known.nsp);
      return false;
    }
    this.adapters.set(uid, { workerId: worker.id, nsp, rooms: undefined });
    entry.uids.add(uid);
    if (this.roomRouting) entry.sender.send(PrimaryRelay.hello);
    return true;
  }

  private forward(entry: WorkerEntry, message: IpcAdapterMessage): void {
    this.forwarded++;
    entry.sender.send(message);
  }

  /** The workers to which a message for `rooms` of `nsp` goes: those with an unrouted adapter of `nsp`, and the holders. */
  private workersHolding(nsp: string, rooms: readonly string[]): Set<number> | undefined {
    const targets = new Set<number>();
    for (const [id, entry] of this.workers) {
      for (const uid of entry.uids) {
        const adapter = this.adapters.get(uid);
        if (adapter !== undefined && adapter.nsp === nsp && adapter.rooms === undefined) {
          targets.add(id);
          break;
        }
      }
    }
    const table = this.roomTable.get(nsp);
    if (table === undefined) return targets;
    for (const room of rooms) {
      // Keyed as the workers announce them (number rooms travel as numbers in broadcasts).
      const uids = table.get(String(room));
      if (uids === undefined) continue;
      for (const uid of uids) {
        const adapter = this.adapters.get(uid);
        if (adapter !== undefined) targets.add(adapter.workerId);
      }
    }
    return targets;
  }

  /** A worker's room changes for one of its adapters. */
  private receiveRooms(worker: Worker, value: unknown): void {
    const problem = validateShardedMessage(value);
    if (problem !== null || (value as { kind: string }).kind !== "rooms") {
      this.invalid++;
      debug("invalid routing message from worker %d dropped: %s", worker.id, problem ?? "a primary does not take hellos");
      return;
    }
    const message = value as RoomsMessage;
    if (!this.register(worker, message.uid, message.nsp)) return;
    const adapter = this.adapters.get(message.uid) as AdapterEntry;
    let table = this.roomTable.get(message.nsp);
    if (table === undefined) this.roomTable.set(message.nsp, (table = new Map()));
    if (message.reset) {
      this.dropRooms(message.uid, adapter);
      adapter.rooms = new Set();
    } else if (adapter.rooms === undefined) {
      // Changes before a snapshot cannot be applied: it keeps getting everything.
      this.invalid++;
      return;
    }
    const rooms = adapter.rooms as Set<string>;
    for (const room of message.add) {
      if (rooms.has(room)) continue;
      rooms.add(room);
      let holders = table.get(room);
      if (holders === undefined) table.set(room, (holders = new Set()));
      holders.add(message.uid);
    }
    for (const room of message.remove) {
      if (!rooms.delete(room)) continue;
      this.removeHolder(table, room, message.uid);
    }
  }

  private removeHolder(table: Map<string, Set<string>>, room: string, uid: string): void {
    const holders = table.get(room);
    if (holders === undefined) return;
    holders.delete(uid);
    if (holders.size === 0) table.delete(room);
  }

  private dropRooms(uid: string, adapter: AdapterEntry): void {
    const rooms = adapter.rooms;
    if (rooms === undefined) return;
    const table = this.roomTable.get(adapter.nsp);
    if (table !== undefined) {
      for (const room of rooms) this.removeHolder(table, room, uid);
      if (table.size === 0) this.roomTable.delete(adapter.nsp);
    }
    adapter.rooms = undefined;
  }

  private forgetAdapter(uid: string): void {
    const adapter = this.adapters.get(uid);
    if (adapter === undefined) return;
    this.dropRooms(uid, adapter);
    this.adapters.delete(uid);
    this.workers.get(adapter.workerId)?.uids.delete(uid);
  }

  /**
   * A worker exited or lost its channel: forget its adapters and rooms, drop
   * what waits for it, and tell the others its adapters are gone (the message
   * every adapter sends when it closes), in the official format.
   */
  private forgetWorker(worker: Worker): void {
    const entry = this.workers.get(worker.id);
    if (entry === undefined) return;
    this.workers.delete(worker.id);
    const sender = entry.sender.stats();
    this.goneTotals.dropped += sender.dropped + sender.queued;
    this.goneTotals.failed += sender.failed;
    entry.sender.clear();
    for (const uid of [...entry.uids]) {
      const nsp = this.adapters.get(uid)?.nsp;
      this.forgetAdapter(uid);
      if (nsp === undefined) continue;
      const farewell = { source: ADAPTER_SOURCE, type: MessageType.ADAPTER_CLOSE, uid, nsp } as IpcAdapterMessage;
      for (const other of this.workers.values()) this.forward(other, farewell);
    }
    debug("worker %d is gone: its adapters and rooms are forgotten", worker.id);
  }
}
