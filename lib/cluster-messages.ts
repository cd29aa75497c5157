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
 *           The official adapter ignores fields it does not know.
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
import { MessageType, type ClusterMessage, type ClusterResponse } from "socket.io-adapter";

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
    if (rooms.length > 0) fields[ROOMS_FIELD] = JSON.stringify(rooms);
  }
  return fields;
}

/** A stream entry back into a message; throws on malformed data. */
export function fromStreamFields(fields: Record<string, string>): AnyClusterMessage {
  const message = { uid: fields.uid, nsp: fields.nsp, type: parseInt(fields.type, 10) } as AnyClusterMessage & { data?: unknown };
  const data = fields.data;
  if (data) message.data = data.startsWith("{") ? JSON.parse(data) : unpackMessage(Buffer.from(data, "base64"));
  return message;
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
