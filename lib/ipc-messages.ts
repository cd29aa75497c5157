/**
 * The IPC wire format between the workers of a Node.js cluster and its
 * primary, written once for both sides.
 *
 * Adapter messages are those of `@socket.io/cluster-adapter` (0.3.x), so that
 * its workers and primary mix with ours: socket.io-adapter's ClusterMessage
 * or ClusterResponse as a plain object, marked with
 *
 *   source        "_sio_adapter"
 *   requesterUid  (responses only) the uid of the adapter that asked; the
 *                 primary sends the response to that adapter's worker only
 *
 * Our own messages (the room routing of the primary) carry another marker,
 * "_sio_sharded", which the official primary and workers ignore:
 *
 *   primary -> worker  { kind: "hello" }   this primary routes broadcasts by room;
 *                      the worker answers with a room snapshot per namespace
 *   worker -> primary  { kind: "rooms", uid, nsp, reset, add, remove }
 *                      rooms of one adapter (uid) that got their first member
 *                      (add) or lost their last (remove); `reset` replaces
 *                      what the primary knew of that adapter
 *
 * Everything here arrives from another process: {@link validateAdapterMessage}
 * and {@link validateShardedMessage} check a value before anything reads it.
 */
import { validateClusterMessage } from "./cluster-validation";
import type { WireOptions } from "./cluster-base";
import { MessageType, type ClusterMessage, type ClusterResponse } from "socket.io-adapter";

/** The marker of `@socket.io/cluster-adapter`'s messages. */
export const ADAPTER_SOURCE = "_sio_adapter";
/** The marker of our room-routing messages. */
export const SHARDED_SOURCE = "_sio_sharded";

/** An adapter message as it crosses the IPC channel. */
export type IpcAdapterMessage = (ClusterMessage | ClusterResponse) & {
  source: typeof ADAPTER_SOURCE;
  uid: string;
  nsp: string;
  requesterUid?: string;
};

/** The primary announces that it routes broadcasts by room. */
export interface HelloMessage {
  readonly source: typeof SHARDED_SOURCE;
  readonly kind: "hello";
}

/** A worker's change to the rooms one of its adapters holds. */
export interface RoomsMessage {
  readonly source: typeof SHARDED_SOURCE;
  readonly kind: "rooms";
  readonly uid: string;
  readonly nsp: string;
  readonly reset: boolean;
  readonly add: readonly string[];
  readonly remove: readonly string[];
}

export type ShardedMessage = HelloMessage | RoomsMessage;

export type { WireOptions };

/** Responses: sent to the requester's worker only. */
export const RESPONSE_TYPES: ReadonlySet<number> = new Set([
  MessageType.FETCH_SOCKETS_RESPONSE,
  MessageType.SERVER_SIDE_EMIT_RESPONSE,
  MessageType.BROADCAST_CLIENT_COUNT,
  MessageType.BROADCAST_ACK,
]);

/** Longest uid, namespace or request id accepted (socket.io-adapter's are 16 hex digits). */
const MAX_ID_LENGTH = 1024;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_ID_LENGTH;
}

function isStringArray(value: unknown): value is string[] {
  if (!Array.isArray(value)) return false;
  for (const item of value) if (typeof item !== "string") return false;
  return true;
}

/**
 * Why `value` is not a well-formed adapter message, or null when it is one
 * (then it can be read as an {@link IpcAdapterMessage}). `value` must carry
 * the {@link ADAPTER_SOURCE} marker (check it first: other senders share the channel).
 */
export function validateAdapterMessage(value: unknown): string | null {
  if (!isRecord(value) || value.source !== ADAPTER_SOURCE) return "not an adapter message";
  if (!isId(value.uid)) return "uid is not a string id";
  if (typeof value.nsp !== "string" || value.nsp.length > MAX_ID_LENGTH) return "nsp is not a namespace name";
  const type = value.type;
  if (typeof type !== "number" || !Number.isInteger(type)) return "type is not a message type";
  if (RESPONSE_TYPES.has(type) && !isId(value.requesterUid)) return "a response without requesterUid";
  // The message itself is socket.io-adapter's, as through Redis: one check for both links.
  const check = validateClusterMessage(value);
  return check.valid ? null : check.reason;
}

/** Why `value` is not one of our room-routing messages, or null. */
export function validateShardedMessage(value: unknown): string | null {
  if (!isRecord(value) || value.source !== SHARDED_SOURCE) return "not a room-routing message";
  if (value.kind === "hello") return null;
  if (value.kind !== "rooms") return `unknown kind ${String(value.kind)}`;
  if (!isId(value.uid)) return "uid is not a string id";
  if (typeof value.nsp !== "string" || value.nsp.length > MAX_ID_LENGTH) return "nsp is not a namespace name";
  if (typeof value.reset !== "boolean") return "reset is not a boolean";
  if (!isStringArray(value.add) || !isStringArray(value.remove)) return "add/remove are not arrays of rooms";
  return null;
}

/** Whether `value` carries one of the two markers (anything else on the channel is the application's). */
export function sourceOf(value: unknown): typeof ADAPTER_SOURCE | typeof SHARDED_SOURCE | undefined {
  if (!isRecord(value)) return undefined;
  const source = value.source;
  return source === ADAPTER_SOURCE || source === SHARDED_SOURCE ? source : undefined;
}

/**
 * The rooms a message selects sockets by, when the primary may send it only
 * to the workers that hold one of them: plain broadcasts (not those waiting
 * for acks, whose sender counts every server's answer) and socketsJoin,
 * socketsLeave, disconnectSockets, all with target rooms. Undefined: every worker.
 */
export function routingRoomsOf(message: IpcAdapterMessage): readonly string[] | undefined {
  const data = (message as { data?: { opts?: WireOptions; requestId?: string } }).data;
  switch (message.type) {
    case MessageType.BROADCAST:
    case MessageType.SOCKETS_JOIN:
    case MessageType.SOCKETS_LEAVE:
    case MessageType.DISCONNECT_SOCKETS: {
      if (message.type === MessageType.BROADCAST && data?.requestId !== undefined) return undefined;
      const rooms = data?.opts?.rooms;
      return rooms !== undefined && rooms.length > 0 ? rooms : undefined;
    }
    default:
      return undefined;
  }
}
