/**
 * Validation of cluster messages from other nodes, defined once for every
 * transport (Redis streams and pub/sub here; any other channel between nodes
 * can call it too).
 *
 * Whatever can write to the channel between nodes reaches every node, so a
 * message is checked before socket.io-adapter's `ClusterAdapter` code reads
 * it: that code trusts the shapes of socket.io-adapter's `ClusterMessage` and
 * `ClusterResponse` types and throws (or delivers bad packets to clients) on
 * anything else.
 *
 * ```ts
 * const check = validateClusterMessage(decoded);
 * if (!check.valid) return drop(check.reason); // e.g. "BROADCAST: data.opts.rooms is not an array of rooms"
 * adapter.onMessage(check.message);
 * ```
 *
 * What is checked is what the handling reads: `uid`, `nsp`, `type`, and each
 * type's `data` fields (broadcast options, packets, request ids, responses).
 * Values socket.io passes through untouched (socket `data`, ack arguments,
 * the arguments of events) are not inspected. Optional fields may be `null`
 * as well as absent: MessagePack writes `undefined` as nil.
 */
import { MessageType } from "socket.io-adapter";
import type { AnyClusterMessage } from "./cluster-messages";

/** The result of {@link validateClusterMessage}. */
export type ClusterMessageCheck =
  | { readonly valid: true; readonly message: AnyClusterMessage }
  | {
      readonly valid: false;
      /**
       * What is wrong, naming the message type and field. Never contains
       * values from the message, so it also serves as the kind of rejection
       * (for counting and rate-limited logging).
       */
      readonly reason: string;
    };

/** Longest accepted node uid (socket.io-adapter's are 16 hex digits; uids end up in channel names). */
export const MAX_UID_LENGTH = 128;

/** socket.io-parser's EVENT packet type: the only packet a broadcast carries (BINARY_EVENT is chosen at encoding). */
const EVENT_PACKET_TYPE = 2;
/** Event names socket.io-client rejects in an EVENT packet (socket.io-parser's RESERVED_EVENTS): it would drop the connection. */
const CLIENT_RESERVED_EVENTS = new Set(["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]);
/** Event names `serverSideEmit` refuses (socket.io's namespace RESERVED_EVENTS, and EventEmitter's own). */
const SERVER_RESERVED_EVENTS = new Set(["connect", "connection", "new_namespace", "newListener", "removeListener"]);
const BOOLEAN_FLAGS = ["volatile", "compress", "local", "broadcast", "binary", "expectSingleResponse"] as const;

/**
 * Checks that `value` (a decoded message from another node) has the shape
 * socket.io-adapter's cluster code reads for its `type`. Never throws.
 */
export function validateClusterMessage(value: unknown): ClusterMessageCheck {
  const reason = invalidityOf(value);
  return reason === undefined ? { valid: true, message: value as AnyClusterMessage } : { valid: false, reason };
}

function invalidityOf(value: unknown): string | undefined {
  if (!isRecord(value)) return "the message is not an object";
  const { uid, nsp, type } = value;
  if (typeof uid !== "string" || uid.length === 0 || uid.length > MAX_UID_LENGTH) return `uid is not a string of 1 to ${MAX_UID_LENGTH} characters`;
  if (typeof nsp !== "string") return "nsp is not a string";
  if (typeof type !== "number" || !Number.isInteger(type) || MessageType[type] === undefined) return "type is not a known MessageType";
  const name = MessageType[type];
  const problem = invalidityOfData(type as MessageType, value.data);
  return problem === undefined ? undefined : `${name}: ${problem}`;
}

function invalidityOfData(type: MessageType, data: unknown): string | undefined {
  switch (type) {
    case MessageType.INITIAL_HEARTBEAT:
    case MessageType.HEARTBEAT:
    case MessageType.ADAPTER_CLOSE:
      return undefined; // nothing read but uid
  }
  if (!isRecord(data)) return "data is not an object";
  switch (type) {
    case MessageType.BROADCAST:
      return invalidityOfOptions(data.opts) ?? invalidityOfEventPacket(data.packet) ?? invalidityOfOptionalRequestId(data.requestId);
    case MessageType.SOCKETS_JOIN:
    case MessageType.SOCKETS_LEAVE:
      return invalidityOfOptions(data.opts) ?? (isRoomList(data.rooms) ? undefined : "data.rooms is not an array of rooms (strings or numbers)");
    case MessageType.DISCONNECT_SOCKETS:
      return invalidityOfOptions(data.opts) ?? (isOptional(data.close, "boolean") ? undefined : "data.close is not a boolean");
    case MessageType.FETCH_SOCKETS:
      return invalidityOfOptions(data.opts) ?? invalidityOfRequestId(data.requestId);
    case MessageType.SERVER_SIDE_EMIT:
      return invalidityOfServerSidePacket(data.packet) ?? invalidityOfOptionalRequestId(data.requestId);
    case MessageType.FETCH_SOCKETS_RESPONSE:
      return invalidityOfRequestId(data.requestId) ?? invalidityOfSockets(data.sockets);
    case MessageType.SERVER_SIDE_EMIT_RESPONSE:
    case MessageType.BROADCAST_ACK:
      return invalidityOfRequestId(data.requestId); // packet: any value the other side's ack got
    case MessageType.BROADCAST_CLIENT_COUNT: {
      const count = data.clientCount;
      return invalidityOfRequestId(data.requestId) ?? (isCount(count) ? undefined : "data.clientCount is not a non-negative integer");
    }
  }
}

/** Broadcast options as `encodeOptions` writes them: `{ rooms, except, flags }`. */
function invalidityOfOptions(opts: unknown): string | undefined {
  if (!isRecord(opts)) return "data.opts is not an object";
  if (!isRoomList(opts.rooms)) return "data.opts.rooms is not an array of rooms (strings or numbers)";
  if (!isRoomList(opts.except)) return "data.opts.except is not an array of rooms (strings or numbers)";
  const flags = opts.flags;
  if (flags === undefined || flags === null) return undefined;
  if (!isRecord(flags)) return "data.opts.flags is not an object";
  for (const flag of BOOLEAN_FLAGS) if (!isOptional(flags[flag], "boolean")) return `data.opts.flags.${flag} is not a boolean`;
  const timeout = flags.timeout;
  if (timeout !== undefined && timeout !== null && !(typeof timeout === "number" && timeout >= 0 && Number.isFinite(timeout))) return "data.opts.flags.timeout is not a non-negative number";
  return undefined;
}

/** A broadcast's packet: an EVENT whose data socket.io-client accepts (else it drops the connection). */
function invalidityOfEventPacket(packet: unknown): string | undefined {
  if (!isRecord(packet)) return "data.packet is not an object";
  if (packet.type !== EVENT_PACKET_TYPE) return "data.packet.type is not EVENT (2)";
  const args = packet.data;
  if (!Array.isArray(args)) return "data.packet.data is not an array";
  const event: unknown = args[0];
  if (typeof event !== "number" && (typeof event !== "string" || CLIENT_RESERVED_EVENTS.has(event))) {
    return "data.packet.data[0] is not an event name (a number, or a string socket.io does not reserve)";
  }
  if (packet.id !== undefined && packet.id !== null && !isCount(packet.id)) return "data.packet.id is not a non-negative integer";
  if (packet.nsp !== undefined && packet.nsp !== null && typeof packet.nsp !== "string") return "data.packet.nsp is not a string";
  return undefined;
}

/** A serverSideEmit's arguments: the event name first. */
function invalidityOfServerSidePacket(packet: unknown): string | undefined {
  if (!Array.isArray(packet)) return "data.packet is not an array";
  const event: unknown = packet[0];
  if (typeof event !== "string" || SERVER_RESERVED_EVENTS.has(event)) return "data.packet[0] is not an event name (a string socket.io does not reserve)";
  return undefined;
}

/** fetchSockets answers: what socket.io's RemoteSocket is built from. */
function invalidityOfSockets(sockets: unknown): string | undefined {
  if (!Array.isArray(sockets)) return "data.sockets is not an array";
  for (const socket of sockets) {
    if (!isRecord(socket)) return "data.sockets[] holds a non-object";
    if (typeof socket.id !== "string") return "data.sockets[].id is not a string";
    if (!isRoomList(socket.rooms)) return "data.sockets[].rooms is not an array of rooms (strings or numbers)";
    if (socket.handshake !== undefined && socket.handshake !== null && !isRecord(socket.handshake)) return "data.sockets[].handshake is not an object";
  }
  return undefined;
}

function invalidityOfRequestId(requestId: unknown): string | undefined {
  return typeof requestId === "string" && requestId.length > 0 ? undefined : "data.requestId is not a non-empty string";
}

function invalidityOfOptionalRequestId(requestId: unknown): string | undefined {
  return requestId === undefined ? undefined : invalidityOfRequestId(requestId);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

function isRoomList(value: unknown): value is (string | number)[] {
  if (!Array.isArray(value)) return false;
  for (const room of value) if (typeof room !== "string" && typeof room !== "number") return false;
  return true;
}

function isOptional(value: unknown, type: "boolean" | "string"): boolean {
  return value === undefined || value === null || typeof value === type;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
