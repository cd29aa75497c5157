/**
 * The wire format between nodes, written once: that of the official
 * `@socket.io/redis-streams-adapter` (0.3.x), so that a fleet can mix its
 * nodes with ours and migrate node by node.
 *
 *   stream entry (XADD <stream> MAXLEN ~ <maxLen> *):
 *     uid   the sending adapter's uid
 *     nsp   the namespace
 *     type  socket.io-adapter's MessageType, as a decimal string
 *     data  JSON of the message data, or base64 of its MessagePack when it holds binary
 *     rooms (ours only) JSON of a broadcast's target rooms: a node with no
 *           member in any of them skips the entry without decoding `data`.
 *           The official adapter ignores fields it does not know. Written,
 *           and trusted, only when `data` is JSON that starts with the same
 *           rooms (see {@link skippableBroadcastRooms}).
 *
 *   pub/sub (PUBLISH, payload = MessagePack of the whole message):
 *     <prefix>#<nsp>#         requests every node must answer (broadcast with
 *                             ack, fetchSockets, serverSideEmit) and, from our
 *                             nodes only, heartbeats
 *     <prefix>#<nsp>#<uid>#   responses to the node with that uid
 *     <prefix>#<nsp>#~sharded#  subscribed to by our nodes only, so that
 *                             PUBSUB NUMSUB tells ours from official nodes
 *
 *   session (connection state recovery): SET <sessionKeyPrefix><pid>
 *     base64(MessagePack(session)) PX maxDisconnectionDuration
 */
import { Packr, Unpackr } from "msgpackr";
import { MessageType, type ClusterMessage, type ClusterResponse, type Room } from "socket.io-adapter";
import { validateClusterMessage, type ClusterMessageCheck } from "./cluster-validation";

/** A message or response of socket.io-adapter's cluster protocol. */
export type AnyClusterMessage = ClusterMessage | ClusterResponse;

/** Field of our stream entries that lists a broadcast's rooms. */
export const ROOMS_FIELD = "rooms";

// Standard MessagePack (no msgpackr records), as @msgpack/msgpack reads and
// writes it: maps decode to objects, undefined encodes as nil.
const packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

export function packMessage(value: unknown): Buffer {
  return packr.pack(value);
}

export function unpackMessage<T>(payload: Uint8Array): T {
  return unpackr.unpack(payload) as T;
}

/** The stream a namespace's messages go to (the official adapter's hashing, negative remainders included). */
export function streamNameOf(namespace: string, streamName: string, streamCount: number): string {
  if (streamCount === 1) return streamName;
  return `${streamName}-${hashCode(namespace) % streamCount}`;
}

function hashCode(text: string): number {
  let hash = 0;
  for (let i = 0; i < text.length; i++) {
    hash = hash * 31 + text.charCodeAt(i);
    hash |= 0;
  }
  return hash;
}

export function publicChannelOf(prefix: string, namespace: string): string {
  return `${prefix}#${namespace}#`;
}

export function privateChannelOf(prefix: string, namespace: string, uid: string): string {
  return `${prefix}#${namespace}#${uid}#`;
}

export function shardedChannelOf(prefix: string, namespace: string): string {
  return `${prefix}#${namespace}#~sharded#`;
}

/**
 * Whether a message goes through pub/sub rather than the stream: requests
 * that every node answers right away (not replayed to recover a session),
 * and our heartbeats (kept out of the stream that sessions are recovered from).
 */
export function isEphemeral(message: AnyClusterMessage): boolean {
  switch (message.type) {
    case MessageType.BROADCAST:
      return (message.data as { requestId?: string }).requestId !== undefined;
    case MessageType.SERVER_SIDE_EMIT:
    case MessageType.FETCH_SOCKETS:
    case MessageType.INITIAL_HEARTBEAT:
    case MessageType.HEARTBEAT:
    case MessageType.ADAPTER_CLOSE:
      return true;
    default:
      return false;
  }
}

const MAY_CONTAIN_BINARY = new Set<MessageType>([
  MessageType.BROADCAST,
  MessageType.FETCH_SOCKETS_RESPONSE,
  MessageType.SERVER_SIDE_EMIT,
  MessageType.SERVER_SIDE_EMIT_RESPONSE,
  MessageType.BROADCAST_ACK,
]);

/** A message as stream entry fields. */
export function toStreamFields(message: AnyClusterMessage): Record<string, string> {
  const fields: Record<string, string> = { uid: message.uid as string, nsp: message.nsp as string, type: String(message.type) };
  const data = (message as { data?: unknown }).data;
  if (data) {
    fields.data = MAY_CONTAIN_BINARY.has(message.type) && hasBinary(data) ? packMessage(data).toString("base64") : JSON.stringify(data);
  }
  if (message.type === MessageType.BROADCAST) {
    const rooms = (data as { opts: { rooms: unknown[] } }).opts.rooms;
    if (rooms.length > 0) {
      fields[ROOMS_FIELD] = JSON.stringify(rooms);
      // Only where a reader may trust it; elsewhere it would decode anyway.
      if (skippableBroadcastRooms(fields) === undefined) delete fields[ROOMS_FIELD];
    }
  }
  return fields;
}

/**
 * The target rooms of a stream entry that a node may skip without decoding
 * `data` when it has no member in any of them; undefined when the entry must
 * be decoded.
 *
 * The `rooms` field is trusted only when it says what `data` says, so that a
 * node of ours skips exactly what an official node would deliver to nobody
 * (an entry with a forged `rooms` field and a broadcast to everyone in `data`
 * is decoded and delivered). That is checked without parsing `data`: it must
 * be the JSON our nodes write, `{"opts":{"rooms":<the rooms field>,"except":`,
 * and the rest of it must hold none of the keys a second `opts`, `rooms` or a
 * `requestId` would need (JSON.parse keeps the last of duplicate keys), nor
 * any \u escape (which could spell them). A payload that happens to contain
 * those words is decoded: slower, never wrong.
 */
export function skippableBroadcastRooms(fields: Readonly<Record<string, string>>): Room[] | undefined {
  const roomsText = fields[ROOMS_FIELD];
  const data = fields.data;
  if (roomsText === undefined || data === undefined || fields.type !== BROADCAST_TYPE_TEXT) return undefined;
  if (!isStreamIdentity(fields)) return undefined;
  const prefix = `{"opts":{"rooms":${roomsText},"except":`;
  if (!data.startsWith(prefix)) return undefined;
  for (const marker of UNSKIPPABLE_MARKERS) if (data.indexOf(marker, prefix.length) !== -1) return undefined;
  let rooms: unknown;
  try {
    rooms = JSON.parse(roomsText);
  } catch {
    return undefined;
  }
  if (!Array.isArray(rooms) || rooms.length === 0 || !rooms.every((room) => typeof room === "string" || typeof room === "number")) return undefined;
  return rooms as Room[];
}

const BROADCAST_TYPE_TEXT = String(MessageType.BROADCAST);
const UNSKIPPABLE_MARKERS = ['"opts"', '"rooms"', '"requestId"', "\\u"];

function isStreamIdentity(fields: Readonly<Record<string, string>>): boolean {
  return typeof fields.uid === "string" && fields.uid.length > 0 && typeof fields.nsp === "string";
}

/**
 * A stream entry back into a validated message (the official adapter's
 * decoding: `data` is JSON when it starts with "{", base64 MessagePack otherwise).
 */
export function decodeStreamFields(fields: Readonly<Record<string, string>>): ClusterMessageCheck {
  if (!/^[0-9]{1,3}$/.test(fields.type ?? "")) return { valid: false, reason: "stream entry: type is not a decimal MessageType" };
  const message: Record<string, unknown> = { uid: fields.uid, nsp: fields.nsp, type: parseInt(fields.type as string, 10) };
  const data = fields.data;
  if (data) {
    try {
      message.data = data.startsWith("{") ? JSON.parse(data) : unpackMessage(Buffer.from(data, "base64"));
    } catch {
      return { valid: false, reason: "stream entry: data is neither JSON nor base64 MessagePack" };
    }
  }
  return validateClusterMessage(message);
}

/** A pub/sub payload (MessagePack of the whole message) into a validated message. */
export function decodePubSubPayload(payload: Uint8Array): ClusterMessageCheck {
  let message: unknown;
  try {
    message = unpackMessage(payload);
  } catch {
    return { valid: false, reason: "pub/sub payload: not MessagePack" };
  }
  return validateClusterMessage(message);
}

/** As socket.io's has-binary: Buffers, ArrayBuffers and typed arrays anywhere in the value. */
export function hasBinary(value: unknown, viaToJSON = false): boolean {
  if (!value || typeof value !== "object") return false;
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return true;
  if (Array.isArray(value)) return value.some((item) => hasBinary(item));
  for (const key in value) {
    if (Object.prototype.hasOwnProperty.call(value, key) && hasBinary((value as Record<string, unknown>)[key])) return true;
  }
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  return typeof toJSON === "function" && !viaToJSON ? hasBinary(toJSON.call(value), true) : false;
}
