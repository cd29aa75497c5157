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
 * The app itself is not reachable from socket.io or engine.io once attached,
 * so the publish goes through one subscribed websocket of the namespace (the
 * "publisher"); uWS never echoes a publish to its publisher, so the adapter
 * writes that one socket itself when it is a recipient.
 */
import type { EventEmitter } from "node:events";
import type { MembershipIndex } from "./membership-index";

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

export class UwsTopics {
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
  private publisherSlot = -1;
  private subscribed = 0;
  private publishes = 0;

  constructor(private readonly index: MembershipIndex) {
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
   * Starts keeping `slot`'s subscriptions, once its socket is registered in
   * the namespace: subscribes it now on a uWS websocket, or at the upgrade of
   * its polling connection.
   */
  track(slot: number, conn: EngineConnection): void {
    this.connBySlot[slot] = conn;
    if (this.subscribeAll(slot, conn.transport)) return;
    if (conn.transport.name === "websocket") return; // a websocket publish cannot reach (base64)
    const onUpgrade = (): void => {
      this.upgradeListeners.delete(slot);
      if (this.connBySlot[slot] === conn) this.subscribeAll(slot, conn.transport);
    };
    this.upgradeListeners.set(slot, onUpgrade);
    conn.once("upgrade", onUpgrade);
  }

  /** `slot` joined `roomId` (called before listeners hear of it). */
  joined(slot: number, roomId: number): void {
    this.wsBySlot[slot]?.subscribe(this.topicOf(roomId));
  }

  /** `slot` left `roomId` (called before the room id can be freed and reused). */
  left(slot: number, roomId: number): void {
    const ws = this.wsBySlot[slot];
    // uWS drops a closed websocket's subscriptions itself, and throws if it is used.
    if (ws !== undefined && this.isOpen(slot)) ws.unsubscribe(this.topicOf(roomId));
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
    const ws = this.wsBySlot[slot];
    if (ws !== undefined) {
      if (this.isOpen(slot)) ws.unsubscribe(this.everyoneTopic);
      this.wsBySlot[slot] = undefined;
      this.transportBySlot[slot] = undefined;
      this.subscribed--;
    }
    this.connBySlot[slot] = undefined;
    if (slot === this.publisherSlot) this.publisherSlot = -1;
  }

  /**
   * Publishes `encoded` (socket.io-parser's output for one packet) to the
   * subscribers of `roomId` (of everyone with -1). Returns the publisher's
   * slot, which the publish does not reach, or -1 if nothing was published
   * (no socket of the namespace is subscribed).
   */
  publish(roomId: number, encoded: readonly unknown[]): number {
    const publisher = this.publisher();
    if (publisher === -1) return -1;
    this.send(publisher, roomId === -1 ? this.everyoneTopic : this.topicOf(roomId), encoded);
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
    const publisher = this.publisher();
    if (publisher === -1) return slots.slice(0, count);
    const topic = this.oneOffTopic;
    for (let i = 0; i < count; i++) {
      const slot = slots[i];
      if (slot === publisher || !this.isOpen(slot)) missed.push(slot);
      else (this.wsBySlot[slot] as UwsWebSocket).subscribe(topic);
    }
    this.send(publisher, topic, encoded);
    for (let i = 0; i < count; i++) {
      const slot = slots[i];
      if (slot !== publisher && this.isOpen(slot)) (this.wsBySlot[slot] as UwsWebSocket).unsubscribe(topic);
    }
    this.publishes++;
    return missed;
  }

  stats(): UwsStats {
    return { publishes: this.publishes, subscribedSockets: this.subscribed };
  }

  /** Drops every subscription (the adapter closes; its sockets are gone or going). */
  clear(): void {
    for (const [slot, onUpgrade] of this.upgradeListeners) this.connBySlot[slot]?.off("upgrade", onUpgrade);
    this.upgradeListeners.clear();
    for (let slot = 0; slot < this.wsBySlot.length; slot++) {
      if (this.wsBySlot[slot] !== undefined && this.isOpen(slot)) this.wsBySlot[slot]?.unsubscribe(this.everyoneTopic);
    }
    this.wsBySlot.length = this.transportBySlot.length = this.connBySlot.length = 0;
    this.publisherSlot = -1;
    this.subscribed = 0;
  }

  private send(publisher: number, topic: string, encoded: readonly unknown[]): void {
    const ws = this.wsBySlot[publisher] as UwsWebSocket;
    for (const part of encoded) {
      if (typeof part === "string") ws.publish(topic, MESSAGE_PREFIX + part, false, false);
      else ws.publish(topic, part as ArrayBuffer | ArrayBufferView, true, false);
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
