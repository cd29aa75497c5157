/**
 * Forged cluster messages for the issue #14 tests: the malformed messages
 * every node must survive, a seeded generator of random and mutated valid
 * messages (the fuzz test), and a raw Redis client that writes them where
 * nodes read (the stream, the public and the private channels).
 */
import { createClient } from "redis";
import { MessageType } from "socket.io-adapter";
import {
  decodePubSubPayload,
  decodeStreamFields,
  packMessage,
  skippableBroadcastRooms,
  toStreamFields,
  type AnyClusterMessage,
} from "../lib/cluster-messages";
import type { ClusterMessageCheck } from "../lib/cluster-validation";
import { mulberry32 } from "./random";

/** The uid forged messages claim (no node has it). */
export const FORGED_UID = "forged-uid";

const OPTS = { rooms: [], except: [], flags: {} };

/** A valid plain broadcast (as our nodes write it: `opts` first). */
export function validBroadcast(rooms: string[], packetData: unknown[], nsp = "/"): AnyClusterMessage {
  return { uid: FORGED_UID, nsp, type: MessageType.BROADCAST, data: { opts: { rooms, except: [], flags: {} }, packet: { type: 2, data: packetData, nsp } } };
}

export interface MalformedMessage {
  readonly name: string;
  /** The decoded message, or the raw pub/sub payload when it is not even MessagePack of an object. */
  readonly message: unknown;
  /** What the rejection reason must say. */
  readonly reason: RegExp;
}

/** The malformed messages of issue #14 and one per field the handling reads. */
export function malformedMessages(nsp = "/"): MalformedMessage[] {
  const base = { uid: FORGED_UID, nsp };
  const broadcast = (data: unknown) => ({ ...base, type: MessageType.BROADCAST, data });
  const packet = { type: 2, data: ["ev"] };
  return [
    { name: "MessagePack nil (0xC0)", message: Buffer.from([0xc0]), reason: /the message is not an object/ },
    { name: "MessagePack of an array", message: packMessage([1, 2]), reason: /the message is not an object/ },
    { name: "not MessagePack (a lone map header)", message: Buffer.from([0xdf]), reason: /not MessagePack|not an object/ },
    { name: "uid missing", message: { nsp, type: MessageType.HEARTBEAT }, reason: /^uid / },
    { name: "uid a number", message: { ...base, uid: 5, type: MessageType.HEARTBEAT }, reason: /^uid / },
    { name: "uid too long", message: { ...base, uid: "u".repeat(1000), type: MessageType.HEARTBEAT }, reason: /^uid / },
    { name: "nsp missing", message: { uid: FORGED_UID, type: MessageType.HEARTBEAT }, reason: /^nsp / },
    { name: "type unknown (99)", message: { ...base, type: 99 }, reason: /^type / },
    { name: "type a string", message: { ...base, type: "3" }, reason: /^type / },
    { name: "BROADCAST with no data", message: { ...base, type: MessageType.BROADCAST }, reason: /^BROADCAST: data is not an object/ },
    { name: "BROADCAST with data: null", message: broadcast(null), reason: /^BROADCAST: data is not an object/ },
    { name: "BROADCAST with no opts", message: broadcast({ packet }), reason: /data\.opts is not an object/ },
    { name: "BROADCAST with rooms a string", message: broadcast({ opts: { ...OPTS, rooms: "room" }, packet }), reason: /data\.opts\.rooms/ },
    { name: "BROADCAST with an object in except", message: broadcast({ opts: { ...OPTS, except: [{}] }, packet }), reason: /data\.opts\.except/ },
    { name: "BROADCAST with flags.volatile a string", message: broadcast({ opts: { ...OPTS, flags: { volatile: "yes" } }, packet }), reason: /data\.opts\.flags\.volatile/ },
    { name: "BROADCAST with no packet", message: broadcast({ opts: OPTS }), reason: /data\.packet is not an object/ },
    { name: "BROADCAST with packet data not an array", message: broadcast({ opts: OPTS, packet: { type: 2, data: "ev" } }), reason: /data\.packet\.data is not an array/ },
    { name: "BROADCAST of the reserved event disconnect", message: broadcast({ opts: OPTS, packet: { type: 2, data: ["disconnect"] } }), reason: /data\.packet\.data\[0\]/ },
    { name: "BROADCAST of a packet of type 5", message: broadcast({ opts: OPTS, packet: { type: 5, data: ["ev"] } }), reason: /data\.packet\.type/ },
    { name: "BROADCAST with requestId a number", message: broadcast({ opts: OPTS, packet, requestId: 7 }), reason: /data\.requestId/ },
    { name: "SOCKETS_JOIN with no rooms", message: { ...base, type: MessageType.SOCKETS_JOIN, data: { opts: OPTS } }, reason: /^SOCKETS_JOIN: data\.rooms/ },
    { name: "DISCONNECT_SOCKETS with close a string", message: { ...base, type: MessageType.DISCONNECT_SOCKETS, data: { opts: OPTS, close: "yes" } }, reason: /data\.close/ },
    { name: "FETCH_SOCKETS with data: {}", message: { ...base, type: MessageType.FETCH_SOCKETS, data: {} }, reason: /^FETCH_SOCKETS: data\.opts is not an object/ },
    { name: "FETCH_SOCKETS with no requestId", message: { ...base, type: MessageType.FETCH_SOCKETS, data: { opts: OPTS } }, reason: /data\.requestId/ },
    { name: "SERVER_SIDE_EMIT with packet: 5", message: { ...base, type: MessageType.SERVER_SIDE_EMIT, data: { packet: 5 } }, reason: /^SERVER_SIDE_EMIT: data\.packet is not an array/ },
    { name: "SERVER_SIDE_EMIT of the reserved event connection", message: { ...base, type: MessageType.SERVER_SIDE_EMIT, data: { packet: ["connection", {}] } }, reason: /data\.packet\[0\]/ },
    { name: "FETCH_SOCKETS_RESPONSE with sockets not an array", message: { ...base, type: MessageType.FETCH_SOCKETS_RESPONSE, data: { requestId: "r", sockets: 3 } }, reason: /data\.sockets is not an array/ },
    { name: "FETCH_SOCKETS_RESPONSE with a socket's rooms a number", message: { ...base, type: MessageType.FETCH_SOCKETS_RESPONSE, data: { requestId: "r", sockets: [{ id: "s", rooms: 5 }] } }, reason: /data\.sockets\[\]\.rooms/ },
    { name: "SERVER_SIDE_EMIT_RESPONSE with no requestId", message: { ...base, type: MessageType.SERVER_SIDE_EMIT_RESPONSE, data: { packet: 1 } }, reason: /data\.requestId/ },
    { name: "BROADCAST_CLIENT_COUNT negative", message: { ...base, type: MessageType.BROADCAST_CLIENT_COUNT, data: { requestId: "r", clientCount: -1 } }, reason: /data\.clientCount/ },
    { name: "BROADCAST_ACK with data: null", message: { ...base, type: MessageType.BROADCAST_ACK, data: null }, reason: /^BROADCAST_ACK: data is not an object/ },
  ];
}

/** The pub/sub payload of a malformed message. */
export function payloadOf(message: unknown): Buffer {
  return message instanceof Uint8Array ? Buffer.from(message) : packMessage(message);
}

/** Malformed stream entries (the stream form: string fields). */
export function malformedStreamEntries(nsp = "/"): { readonly name: string; readonly fields: Record<string, string> }[] {
  const base = { uid: FORGED_UID, nsp };
  return [
    { name: "stream: BROADCAST with no data", fields: { ...base, type: "3" } },
    { name: "stream: BROADCAST with data null (not JSON: read as base64 MessagePack)", fields: { ...base, type: "3", data: "null" } },
    { name: "stream: BROADCAST with data {} ", fields: { ...base, type: "3", data: "{}" } },
    { name: "stream: BROADCAST with truncated JSON", fields: { ...base, type: "3", data: '{"opts":{"rooms":[' } },
    { name: "stream: type not a number", fields: { ...base, type: "three", data: "{}" } },
    { name: "stream: FETCH_SOCKETS with data {}", fields: { ...base, type: "7", data: "{}" } },
    { name: "stream: SERVER_SIDE_EMIT with packet 5", fields: { ...base, type: "9", data: '{"packet":5}' } },
    { name: "stream: no uid", fields: { nsp, type: "3", data: "{}" } },
  ];
}

/** A plain node-redis connection to write forged messages and read channel lists. */
export interface RawRedis {
  publish(channel: string, payload: Buffer | string): Promise<void>;
  xAdd(stream: string, fields: Record<string, string>): Promise<string>;
  /** The private channels (`<prefix>#<nsp>#<uid>#`) the nodes subscribe to. */
  privateChannels(prefix?: string, nsp?: string): Promise<string[]>;
  close(): Promise<void>;
}

export async function connectRawRedis(url: string): Promise<RawRedis> {
  const client = createClient({ url });
  client.on("error", () => undefined); // the tests see failures through their commands
  await client.connect();
  return {
    publish: async (channel, payload) => {
      await client.sendCommand(["PUBLISH", channel, payload]);
    },
    xAdd: async (stream, fields) => String(await client.sendCommand(["XADD", stream, "*", ...Object.entries(fields).flat()])),
    privateChannels: async (prefix = "socket.io", nsp = "/") => {
      const channels = (await client.sendCommand(["PUBSUB", "CHANNELS", `${prefix}#${nsp}#*`])) as string[];
      return channels.map(String).filter((channel) => channel !== `${prefix}#${nsp}#` && channel !== `${prefix}#${nsp}#~sharded#`);
    },
    close: async () => {
      client.destroy();
    },
  };
}

/** One forged write: a stream entry, or a pub/sub payload on a channel. */
export type Forgery = { readonly kind: "stream"; readonly fields: Record<string, string> } | { readonly kind: "publish"; readonly channel: string; readonly payload: Buffer };

/**
 * `count` random writes, from `seed`: valid messages of every type mutated
 * (a field dropped, a value replaced by junk, the type changed), encoded for
 * the stream or pub/sub, some of those bytes or fields damaged, and some
 * plain random bytes. Channels are picked from `channels`. Left out: what
 * decodes to a valid DISCONNECT_SOCKETS (it would disconnect the test's
 * clients, as it should).
 */
export function forgeries(seed: number, count: number, channels: readonly string[], nsp = "/"): Forgery[] {
  const random = mulberry32(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const junk = (depth = 0): unknown => {
    switch (Math.floor(random() * (depth > 2 ? 7 : 9))) {
      case 0: return null;
      case 1: return Math.floor(random() * 2 ** 31) * (random() < 0.5 ? -1 : 1);
      case 2: return random() * 1e6;
      case 3: return pick(["", "x", "disconnect", "connection", "__proto__", "constructor", "toString", "𝔘", "a".repeat(300)]);
      case 4: return random() < 0.5;
      case 5: return Buffer.from(Array.from({ length: Math.floor(random() * 8) }, () => Math.floor(random() * 256)));
      case 6: return undefined;
      case 7: return Array.from({ length: Math.floor(random() * 4) }, () => junk(depth + 1));
      default: {
        const object: Record<string, unknown> = {};
        for (let i = Math.floor(random() * 4); i > 0; i--) object[pick(["opts", "rooms", "except", "flags", "packet", "data", "requestId", "type", "sockets", "id", "x"])] = junk(depth + 1);
        return object;
      }
    }
  };
  const templates = (): Record<string, unknown>[] => {
    const base = { uid: random() < 0.5 ? FORGED_UID : `forged-${Math.floor(random() * 1e9)}`, nsp };
    const opts = () => ({ rooms: random() < 0.5 ? [] : ["r1", 2], except: random() < 0.7 ? [] : ["r2"], flags: random() < 0.5 ? {} : { volatile: true, timeout: 100 } });
    const packet = () => ({ type: 2, data: ["fuzz", Math.floor(random() * 1000)], nsp });
    return [
      { ...base, type: MessageType.INITIAL_HEARTBEAT },
      { ...base, type: MessageType.HEARTBEAT },
      { ...base, type: MessageType.ADAPTER_CLOSE },
      { ...base, type: MessageType.BROADCAST, data: { opts: opts(), packet: packet() } },
      { ...base, type: MessageType.BROADCAST, data: { opts: opts(), packet: packet(), requestId: "fuzz-request" } },
      { ...base, type: MessageType.SOCKETS_JOIN, data: { opts: opts(), rooms: ["fuzz-room"] } },
      { ...base, type: MessageType.SOCKETS_LEAVE, data: { opts: opts(), rooms: ["fuzz-room"] } },
      { ...base, type: MessageType.DISCONNECT_SOCKETS, data: { opts: opts(), close: false } },
      { ...base, type: MessageType.FETCH_SOCKETS, data: { opts: opts(), requestId: "fuzz-request" } },
      { ...base, type: MessageType.SERVER_SIDE_EMIT, data: { packet: ["fuzz", 1] } },
      { ...base, type: MessageType.SERVER_SIDE_EMIT, data: { packet: ["fuzz", 2], requestId: "fuzz-request" } },
      { ...base, type: MessageType.FETCH_SOCKETS_RESPONSE, data: { requestId: "fuzz-request", sockets: [{ id: "s", rooms: ["s"], handshake: {}, data: {} }] } },
      { ...base, type: MessageType.SERVER_SIDE_EMIT_RESPONSE, data: { requestId: "fuzz-request", packet: 1 } },
      { ...base, type: MessageType.BROADCAST_CLIENT_COUNT, data: { requestId: "fuzz-request", clientCount: 1 } },
      { ...base, type: MessageType.BROADCAST_ACK, data: { requestId: "fuzz-request", packet: [1] } },
    ];
  };
  /** Replaces or deletes one value somewhere in `value` (in place). */
  const mutate = (value: Record<string, unknown>): void => {
    let target: Record<string, unknown> = value;
    for (let depth = 0; depth < 3; depth++) {
      const keys = Object.keys(target);
      if (keys.length === 0) break;
      const key = pick(keys);
      const child = target[key];
      if (child !== null && typeof child === "object" && !Buffer.isBuffer(child) && random() < 0.6) {
        target = child as Record<string, unknown>;
        continue;
      }
      if (random() < 0.3) delete target[key];
      else target[key] = key === "type" && random() < 0.5 ? Math.floor(random() * 16) : junk();
      return;
    }
    target[pick(["x", "data", "opts", "packet"])] = junk();
  };
  const damage = (bytes: Buffer): Buffer => {
    const copy = Buffer.from(bytes);
    if (random() < 0.5) return copy.subarray(0, Math.floor(random() * copy.length));
    for (let i = 1 + Math.floor(random() * 3); i > 0; i--) copy[Math.floor(random() * copy.length)] = Math.floor(random() * 256);
    return copy;
  };
  const streamFieldsOf = (message: Record<string, unknown>): Record<string, string> => {
    try {
      // Mutated identity fields may not be strings: XADD writes them as text.
      const fields = toStreamFields(message as unknown as AnyClusterMessage);
      for (const key of Object.keys(fields)) fields[key] = String(fields[key]);
      return fields;
    } catch {
      const fields: Record<string, string> = { uid: String(message.uid), nsp: String(message.nsp), type: String(message.type) };
      if (message.data !== undefined) fields.data = JSON.stringify(message.data) ?? "";
      return fields;
    }
  };

  const forge = (): Forgery => {
    const roll = random();
    if (roll < 0.1) {
      const bytes = Buffer.from(Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256)));
      return random() < 0.5
        ? { kind: "publish", channel: pick(channels), payload: bytes }
        : { kind: "stream", fields: { uid: FORGED_UID, nsp, type: String(Math.floor(random() * 16)), data: bytes.toString("base64") } };
    }
    const message = pick(templates());
    for (let n = 1 + Math.floor(random() * 2); n > 0; n--) mutate(message);
    if (roll < 0.55) {
      let payload = packMessage(message);
      if (random() < 0.3) payload = damage(payload);
      return { kind: "publish", channel: pick(channels), payload };
    }
    const fields = streamFieldsOf(message);
    if (random() < 0.2 && fields.data !== undefined) fields.data = fields.data.slice(0, Math.floor(random() * fields.data.length));
    if (random() < 0.1) fields.rooms = pick(['["r1"]', "[]", "{", '["nowhere"]']);
    return { kind: "stream", fields };
  };
  const out: Forgery[] = [];
  while (out.length < count) {
    const forgery = forge();
    const check = checkOf(forgery);
    if (check.valid && check.message.type === MessageType.DISCONNECT_SOCKETS) continue;
    out.push(forgery);
  }
  return out;
}

/** How the nodes' validation sees a forgery. */
export function checkOf(forgery: Forgery): ClusterMessageCheck {
  return forgery.kind === "publish" ? decodePubSubPayload(forgery.payload) : decodeStreamFields(forgery.fields);
}

/**
 * How many of `forged` a node of ours with no member in the rooms r1, 2 and
 * "nowhere" must drop at least (more when handling a valid one throws):
 * the invalid ones on its channels (`channels`) and the invalid stream
 * entries of `nsp` it cannot skip undecoded.
 */
export function rejectionsExpected(forged: readonly Forgery[], channels: readonly string[], nsp = "/"): number {
  let expected = 0;
  for (const forgery of forged) {
    if (checkOf(forgery).valid) continue;
    if (forgery.kind === "publish") {
      if (channels.includes(forgery.channel)) expected++;
    } else if (forgery.fields.nsp === nsp && skippableBroadcastRooms(forgery.fields) === undefined) {
      expected++;
    }
  }
  return expected;
}
