/**
 * uWebSockets.js topics for one namespace's adapter, when socket.io runs on
 * `io.attachApp(app)`.
 *
 * Each websocket client of the namespace is subscribed to one topic per room
 * it is in and to the namespace's own topic, so that a broadcast whose
 * recipients are exactly a topic's subscribers (one room, or everyone, with
 * no except) is one publish: uWS writes the frame to every subscriber in C++.
 * A union or an except is one publish too, to a topic its websocket
 * recipients join for it and leave right after. Clients not on a
 * binary-capable uWS websocket (polling, base64) are written per socket by
 * the adapter.
 *
 * Unlike socket.io's own uWS patch of socket.io-adapter:
 * - topics are named per adapter instance and by room id, not `<nsp>\x1f<room>`:
 *   two servers on one app, or rooms `1` and `"1"`, cannot share a topic;
 * - a socket leaving the namespace (disconnect, or a namespace-level
 *   disconnect while its connection stays open for other namespaces) is
 *   unsubscribed from all of them;
 * - a socket is subscribed only once registered in the namespace, as the
 *   in-memory adapter writes only to registered sockets.
 *
 * The publish goes through the uWS app, recorded when `attachApp` was called
 * (uws-app.ts). An adapter set after `attachApp` cannot know the app: it
 * publishes through one subscribed websocket of the namespace (the
 * "publisher"), and as uWS never echoes a publish to its publisher, writes
 * that one socket itself when it is a recipient.
 *
 * A publish does all there is to do for a room whose members are all on uWS
 * websockets and have no `onAnyOutgoing` listeners: the members that need
 * the adapter after a publish are counted per room (and in the namespace),
 * so that the adapter visits a room's members only when one of them does.
 */
import type { EventEmitter } from "node:events";
import type { MembershipIndex } from "./membership-index";
import { unwatchOutgoingListeners, watchOutgoingListeners, type OutgoingListenerSocket, type OutgoingListenerWatcher } from "./outgoing-listeners";
import type { UwsApp } from "./uws-app";

/** The part of a uWebSockets.js WebSocket used here. */
export interface UwsWebSocket {
  subscribe(topic: string): boolean;
  unsubscribe(topic: string): boolean;
  publish(topic: string, message: string | ArrayBuffer | ArrayBufferView, isBinary?: boolean, compress?: boolean): boolean;
}

/** engine.io's Transport, as far as read here. */
interface EngineTransport {
  readonly name: string;
  readonly readyState: string;
  readonly supportsBinary?: boolean;
  readonly socket?: unknown;
}

/** engine.io's Socket (one client connection), as far as read here. */
export interface EngineConnection extends EventEmitter {
  readonly transport: EngineTransport;
}

/** Counters of {@link UwsTopics}, in the adapter's stats. */
export interface UwsStats {
  /** Broadcasts delivered by one topic publish. */
  readonly publishes: number;
  /** Sockets of this namespace subscribed to topics (on a uWS websocket). */
  readonly subscribedSockets: number;
  /** Whether publishes go through the uWS app (recorded at `attachApp`), not through one subscribed websocket. */
  readonly throughApp: boolean;
}

/**
 * Whether socket.io's engine is engine.io's uServer, which `attachApp` creates.
 * engine.io exports no marker for it and may be another copy than any we could
 * import, so its class is recognized by name.
 */
export function isUwsEngine(engine: unknown): boolean {
  for (let proto = engine === null || typeof engine !== "object" ? null : Object.getPrototypeOf(engine); proto !== null; proto = Object.getPrototypeOf(proto)) {
    if ((proto as { constructor?: { name?: string } }).constructor?.name === "uServer") return true;
  }
  return false;
}

/** The uWS websocket under a transport, if it is one that can take published frames as they are. */
function uwsWebSocketOf(transport: EngineTransport): UwsWebSocket | undefined {
  // A base64 client (`b64` query) must get binary frames re-encoded: written per socket.
  if (transport.name !== "websocket" || transport.supportsBinary === false || transport.readyState === "closed") return undefined;
  const ws = transport.socket as Partial<UwsWebSocket> | undefined;
  return typeof ws?.subscribe === "function" && typeof ws.unsubscribe === "function" && typeof ws.publish === "function" ? (ws as UwsWebSocket) : undefined;
}

/** Topic names are unique per adapter instance (within the process: a uWS app lives in one). */
let adapterSerial = 0;

/** Engine.IO's "message" packet type, in front of a text frame. */
const MESSAGE_PREFIX = "4";


/** A socket as {@link UwsTopics.track} takes it: socket.io's Socket, as far as read here. */
export interface TrackedSocket extends OutgoingListenerSocket {
  readonly conn: EngineConnection;
}

export class UwsTopics implements OutgoingListenerWatcher {
  private readonly prefix: string;
  private readonly everyoneTopic: string;
  /** The topic of one union or except broadcast, left by all right after its publish. */
  private readonly oneOffTopic: string;
  private readonly topics: (string | undefined)[] = [];
  /** The websocket of each subscribed slot. */
  private readonly wsBySlot: (UwsWebSocket | undefined)[] = [];
  /** The transport that websocket belongs to (its readyState tells whether the websocket is closed). */
  private readonly transportBySlot: (EngineTransport | undefined)[] = [];
  /** The connection of each registered slot, tracked or waiting for an upgrade. */
  private readonly connBySlot: (EngineConnection | undefined)[] = [];
  private readonly upgradeListeners = new Map<number, () => void>();
  /** The socket of each tracked slot, whose outgoing listeners are watched. */
  private readonly socketBySlot: (TrackedSocket | undefined)[] = [];
  /** Whether each tracked slot's socket has outgoing listeners. */
  private readonly listeningBySlot: boolean[] = [];
  /**
   * Whether each tracked slot needs the adapter after a publish: the publish
   * does not reach it (polling, base64), or it has outgoing listeners to call.
   */
  private readonly visitBySlot: boolean[] = [];
  /** How many of each room's members, and of the namespace's sockets, need the adapter after a publish. */
  private readonly visitsByRoom: number[] = [];
  private visits = 0;
  private publisherSlot = -1;
  private subscribed = 0;
  private publishes = 0;

  /** With `app` (recorded at `attachApp`), publishes go through it; otherwise through one subscribed websocket. */
  constructor(
    private readonly index: MembershipIndex,
    private readonly app: UwsApp | undefined,
  ) {
    this.prefix = `\x1esharded${adapterSerial++}\x1f`;
    this.everyoneTopic = `${this.prefix}*`;
    this.oneOffTopic = `${this.prefix}~`;
  }

  isTracked(slot: number): boolean {
    return this.connBySlot[slot] !== undefined;
  }

  /** Whether a publish reaches `slot`'s socket (it is written per socket otherwise). */
  publishesTo(slot: number): boolean {
    return this.wsBySlot[slot] !== undefined;
  }

  /**
   * Whether, after a publish to `roomId` (to everyone with -1), some socket
   * needs the adapter: one to write (not on a uWS websocket, or the publisher)
   * or one with outgoing listeners. Otherwise the publish did everything.
   */
  leavesWorkIn(roomId: number): boolean {
    if (this.app === undefined) return true; // the publisher, if a recipient, is written per socket
    return roomId === -1 ? this.visits > 0 : (this.visitsByRoom[roomId] ?? 0) > 0;
  }

  /**
   * Starts keeping `slot`'s subscriptions, once its socket is registered in
   * the namespace: subscribes it now on a uWS websocket, or at the upgrade of
   * its polling connection.
   */
  track(slot: number, socket: TrackedSocket): void {
    const conn = socket.conn;
    this.connBySlot[slot] = conn;
    this.socketBySlot[slot] = socket;
    this.listeningBySlot[slot] = watchOutgoingListeners(socket, this, slot);
    // Not on a websocket a publish can reach (base64), or waiting for an upgrade.
    if (!this.subscribeAll(slot, conn.transport) && conn.transport.name !== "websocket") {
      const onUpgrade = (): void => {
        this.upgradeListeners.delete(slot);
        if (this.connBySlot[slot] === conn && this.subscribeAll(slot, conn.transport)) this.updateVisit(slot);
      };
      this.upgradeListeners.set(slot, onUpgrade);
      conn.once("upgrade", onUpgrade);
    }
    this.updateVisit(slot);
  }

  /** `slot` joined `roomId` (called before listeners hear of it). */
  joined(slot: number, roomId: number): void {
    this.wsBySlot[slot]?.subscribe(this.topicOf(roomId));
    if (this.visitBySlot[slot] === true) this.visitsByRoom[roomId] = (this.visitsByRoom[roomId] ?? 0) + 1;
  }

  /** `slot` left `roomId` (called before the room id can be freed and reused). */
  left(slot: number, roomId: number): void {
    const ws = this.wsBySlot[slot];
    // uWS drops a closed websocket's subscriptions itself, and throws if it is used.
    if (ws !== undefined && this.isOpen(slot)) ws.unsubscribe(this.topicOf(roomId));
    if (this.visitBySlot[slot] === true) this.visitsByRoom[roomId]--;
  }

  /** `slot`'s socket leaves the namespace (after leaving its rooms). */
  untrack(slot: number): void {
    const conn = this.connBySlot[slot];
    if (conn === undefined) return;
    const onUpgrade = this.upgradeListeners.get(slot);
    if (onUpgrade !== undefined) {
      conn.off("upgrade", onUpgrade);
      this.upgradeListeners.delete(slot);
    }
    const socket = this.socketBySlot[slot];
    if (socket !== undefined) unwatchOutgoingListeners(socket);
    this.socketBySlot[slot] = undefined;
    this.listeningBySlot[slot] = false;
    const ws = this.wsBySlot[slot];
    if (ws !== undefined) {
      if (this.isOpen(slot)) ws.unsubscribe(this.everyoneTopic);
      this.wsBySlot[slot] = undefined;
      this.transportBySlot[slot] = undefined;
      this.subscribed--;
    }
    this.connBySlot[slot] = undefined;
    this.updateVisit(slot);
    if (slot === this.publisherSlot) this.publisherSlot = -1;
  }

  /** A tracked socket (`slot` is its slot) got its first outgoing listener, or lost its last. */
  outgoingListenersChanged(slot: number, listening: boolean): void {
    if (this.socketBySlot[slot] === undefined) return;
    this.listeningBySlot[slot] = listening;
    this.updateVisit(slot);
  }

  /**
   * Publishes `encoded` (socket.io-parser's output for one packet) to the
   * subscribers of `roomId` (of everyone with -1). Returns the slot of the
   * publisher socket, which the publish does not reach, or -1 (published
   * through the app, or nothing published: no socket of the namespace is
   * subscribed).
   */
  publish(roomId: number, encoded: readonly unknown[]): number {
    const topic = roomId === -1 ? this.everyoneTopic : this.topicOf(roomId);
    if (this.app !== undefined) {
      if (this.subscribed === 0) return -1;
      this.send(this.app, topic, encoded);
      this.publishes++;
      return -1;
    }
    const publisher = this.publisher();
    if (publisher === -1) return -1;
    this.send(this.wsBySlot[publisher] as UwsWebSocket, topic, encoded);
    this.publishes++;
    return publisher;
  }

  /**
   * Publishes `encoded` to exactly the first `count` of `slots` (subscribed
   * recipients of a union or an except): they join a topic for this one
   * publish and leave it at once. uWS still writes each of them from C++,
   * with no engine.io packet per socket, and in order with everything else
   * sent to them (leaving a topic first delivers what was published to it).
   * Returns the slots the publish did not reach (the publisher, if it is one
   * of them; a websocket closing meanwhile): the caller writes those.
   */
  publishToEach(slots: readonly number[], count: number, encoded: readonly unknown[]): number[] {
    const missed: number[] = [];
    if (count === 0) return missed;
    const publisher = this.app === undefined ? this.publisher() : -1;
    if (this.app === undefined && publisher === -1) return slots.slice(0, count);
    const topic = this.oneOffTopic;
    for (let i = 0; i < count; i++) {
      const slot = slots[i];
      if (slot === publisher || !this.isOpen(slot)) missed.push(slot);
      else (this.wsBySlot[slot] as UwsWebSocket).subscribe(topic);
    }
    this.send(this.app ?? (this.wsBySlot[publisher] as UwsWebSocket), topic, encoded);
    for (let i = 0; i < count; i++) {
      const slot = slots[i];
      if (slot !== publisher && this.isOpen(slot)) (this.wsBySlot[slot] as UwsWebSocket).unsubscribe(topic);
    }
    this.publishes++;
    return missed;
  }

  stats(): UwsStats {
    return { publishes: this.publishes, subscribedSockets: this.subscribed, throughApp: this.app !== undefined };
  }

  /** Drops every subscription (the adapter closes; its sockets are gone or going). */
  clear(): void {
    for (const [slot, onUpgrade] of this.upgradeListeners) this.connBySlot[slot]?.off("upgrade", onUpgrade);
    this.upgradeListeners.clear();
    for (const socket of this.socketBySlot) if (socket !== undefined) unwatchOutgoingListeners(socket);
    for (let slot = 0; slot < this.wsBySlot.length; slot++) {
      if (this.wsBySlot[slot] !== undefined && this.isOpen(slot)) this.wsBySlot[slot]?.unsubscribe(this.everyoneTopic);
    }
    this.wsBySlot.length = this.transportBySlot.length = this.connBySlot.length = 0;
    this.socketBySlot.length = this.listeningBySlot.length = this.visitBySlot.length = this.visitsByRoom.length = 0;
    this.visits = 0;
    this.publisherSlot = -1;
    this.subscribed = 0;
  }

  private send(through: UwsApp | UwsWebSocket, topic: string, encoded: readonly unknown[]): void {
    for (const part of encoded) {
      if (typeof part === "string") through.publish(topic, MESSAGE_PREFIX + part, false, false);
      else through.publish(topic, part as ArrayBuffer | ArrayBufferView, true, false);
    }
  }

  private subscribeAll(slot: number, transport: EngineTransport): boolean {
    const ws = uwsWebSocketOf(transport);
    if (ws === undefined) return false;
    this.wsBySlot[slot] = ws;
    this.transportBySlot[slot] = transport;
    this.subscribed++;
    ws.subscribe(this.everyoneTopic);
    for (const roomId of this.index.socketRoomIds(slot)) ws.subscribe(this.topicOf(roomId));
    return true;
  }

  /** Counts `slot` in its rooms' and the namespace's visits if it needs the adapter after a publish, out of them if not. */
  private updateVisit(slot: number): void {
    const visit = this.connBySlot[slot] !== undefined && (this.wsBySlot[slot] === undefined || this.listeningBySlot[slot] === true);
    if (visit === (this.visitBySlot[slot] === true)) return;
    this.visitBySlot[slot] = visit;
    const step = visit ? 1 : -1;
    this.visits += step;
    for (const roomId of this.index.socketRoomIds(slot)) this.visitsByRoom[roomId] = (this.visitsByRoom[roomId] ?? 0) + step;
  }

  /** A subscribed slot whose websocket is open, or -1. */
  private publisher(): number {
    if (this.publisherSlot !== -1 && this.isOpen(this.publisherSlot)) return this.publisherSlot;
    // Rare (the publisher left, or its connection is closing): any other will do.
    this.publisherSlot = -1;
    for (let slot = 0; slot < this.wsBySlot.length; slot++) {
      if (this.wsBySlot[slot] !== undefined && this.isOpen(slot)) return (this.publisherSlot = slot);
    }
    return -1;
  }

  private isOpen(slot: number): boolean {
    return this.transportBySlot[slot]?.readyState === "open";
  }

  private topicOf(roomId: number): string {
    return (this.topics[roomId] ??= this.prefix + roomId.toString(36));
  }
}
