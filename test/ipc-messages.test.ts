/**
 * Issue #12, the pieces of cluster mode that need no cluster: the validation
 * of IPC messages (everything from another process is untrusted), which
 * messages the primary routes by room, and the bounded sender.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { MessageType } from "socket.io-adapter";
import { routingRoomsOf, validateAdapterMessage, validateShardedMessage, type IpcAdapterMessage } from "../lib/ipc-messages";
import { BoundedSender, type IpcEndpoint } from "../lib/ipc-sender";

const opts = { rooms: ["a"], except: [], flags: {} };
const base = { source: "_sio_adapter", uid: "u1", nsp: "/" };

test("validateAdapterMessage accepts the official shapes and names what is wrong in others", () => {
  const good: object[] = [
    { ...base, type: MessageType.INITIAL_HEARTBEAT },
    { ...base, type: MessageType.HEARTBEAT },
    { ...base, type: MessageType.ADAPTER_CLOSE },
    { ...base, type: MessageType.BROADCAST, data: { packet: { type: 2, data: ["e", Buffer.from([1])] }, opts } },
    { ...base, type: MessageType.BROADCAST, data: { packet: { type: 2, data: ["e"] }, opts: { rooms: [], except: [] }, requestId: "r" } },
    { ...base, type: MessageType.SOCKETS_JOIN, data: { opts, rooms: ["b"] } },
    { ...base, type: MessageType.SOCKETS_LEAVE, data: { opts, rooms: ["b"] } },
    { ...base, type: MessageType.DISCONNECT_SOCKETS, data: { opts, close: true } },
    { ...base, type: MessageType.FETCH_SOCKETS, data: { opts, requestId: "r" } },
    { ...base, type: MessageType.FETCH_SOCKETS_RESPONSE, requesterUid: "u2", data: { requestId: "r", sockets: [{ id: "s", handshake: {}, rooms: ["s"], data: {} }] } },
    { ...base, type: MessageType.SERVER_SIDE_EMIT, data: { packet: ["hello", 1] } },
    { ...base, type: MessageType.SERVER_SIDE_EMIT_RESPONSE, requesterUid: "u2", data: { requestId: "r", packet: "ok" } },
    { ...base, type: MessageType.BROADCAST_CLIENT_COUNT, requesterUid: "u2", data: { requestId: "r", clientCount: 3 } },
    { ...base, type: MessageType.BROADCAST_ACK, requesterUid: "u2", data: { requestId: "r", packet: ["x"] } },
  ];
  for (const message of good) assert.equal(validateAdapterMessage(message), null, JSON.stringify(message));
  const bad: [unknown, RegExp][] = [
    [null, /not an adapter message/],
    ["text", /not an adapter message/],
    [{ ...base, source: "other", type: 2 }, /not an adapter message/],
    [{ ...base, uid: "", type: 2 }, /uid/],
    [{ ...base, uid: "x".repeat(2000), type: 2 }, /uid/],
    [{ ...base, nsp: 3, type: 2 }, /nsp/],
    [{ ...base, type: "3" }, /type/],
    [{ ...base, type: 1.5 }, /type/],
    [{ ...base, type: 42, data: {} }, /type is not a known MessageType/],
    [{ ...base, type: MessageType.BROADCAST }, /data is not an object/],
    [{ ...base, type: MessageType.BROADCAST, data: { packet: { type: 2 }, opts } }, /data\.packet/],
    [{ ...base, type: MessageType.BROADCAST, data: { packet: { type: 2, data: ["e"] }, opts: { rooms: [{}], except: [] } } }, /rooms/],
    [{ ...base, type: MessageType.BROADCAST, data: { packet: { type: 2, data: ["e"] }, opts: { rooms: [], except: "x" } } }, /opts\.except/],
    [{ ...base, type: MessageType.BROADCAST, data: { packet: { type: 2, data: ["e"] }, opts: { rooms: [], except: [], flags: 5 } } }, /opts\.flags/],
    [{ ...base, type: MessageType.FETCH_SOCKETS, data: { opts } }, /requestId/],
    [{ ...base, type: MessageType.FETCH_SOCKETS_RESPONSE, data: { requestId: "r", sockets: [] } }, /requesterUid/],
    [{ ...base, type: MessageType.FETCH_SOCKETS_RESPONSE, requesterUid: "u2", data: { requestId: "r", sockets: [{ id: 1 }] } }, /sockets\[\]\.id/],
    [{ ...base, type: MessageType.BROADCAST_CLIENT_COUNT, requesterUid: "u2", data: { requestId: "r", clientCount: -1 } }, /clientCount/],
    [{ ...base, type: MessageType.DISCONNECT_SOCKETS, data: { opts, close: "yes" } }, /close/],
    [{ ...base, type: MessageType.SERVER_SIDE_EMIT, data: { packet: "hello" } }, /packet/],
  ];
  for (const [message, reason] of bad) assert.match(validateAdapterMessage(message) ?? "accepted", reason, JSON.stringify(message));
});

test("validateShardedMessage: hello and rooms messages only", () => {
  assert.equal(validateShardedMessage({ source: "_sio_sharded", kind: "hello" }), null);
  assert.equal(validateShardedMessage({ source: "_sio_sharded", kind: "rooms", uid: "u", nsp: "/", reset: false, add: ["a"], remove: [] }), null);
  assert.match(validateShardedMessage({ source: "_sio_sharded", kind: "rooms", uid: "u", nsp: "/", reset: false, add: [1], remove: [] }) ?? "", /add\/remove/);
  assert.match(validateShardedMessage({ source: "_sio_sharded", kind: "rooms", uid: "u", nsp: "/", add: [], remove: [] }) ?? "", /reset/);
  assert.match(validateShardedMessage({ source: "_sio_sharded", kind: "other" }) ?? "", /unknown kind/);
});

test("routingRoomsOf: plain broadcasts and socket operations with rooms; never acks, requests or responses", () => {
  const message = (type: MessageType, data: object) => ({ ...base, type, data }) as unknown as IpcAdapterMessage;
  const packet = { type: 2, data: [] };
  assert.deepEqual(routingRoomsOf(message(MessageType.BROADCAST, { packet, opts })), ["a"]);
  assert.equal(routingRoomsOf(message(MessageType.BROADCAST, { packet, opts, requestId: "r" })), undefined);
  assert.equal(routingRoomsOf(message(MessageType.BROADCAST, { packet, opts: { rooms: [], except: [] } })), undefined);
  assert.deepEqual(routingRoomsOf(message(MessageType.SOCKETS_JOIN, { opts, rooms: ["b"] })), ["a"]);
  assert.deepEqual(routingRoomsOf(message(MessageType.DISCONNECT_SOCKETS, { opts })), ["a"]);
  assert.equal(routingRoomsOf(message(MessageType.FETCH_SOCKETS, { opts, requestId: "r" })), undefined);
  assert.equal(routingRoomsOf(message(MessageType.SERVER_SIDE_EMIT, { packet: [] })), undefined);
});

/** An endpoint whose writes complete only when the test says so. */
class StalledEndpoint implements IpcEndpoint {
  readonly written: object[] = [];
  readonly callbacks: ((error: Error | null) => void)[] = [];
  send(message: object, _handle: undefined, _options: object, callback: (error: Error | null) => void): boolean {
    if ((message as { poison?: boolean }).poison) throw new Error("could not be cloned");
    this.written.push(message);
    this.callbacks.push(callback);
    return true;
  }
  complete(count: number, error: Error | null = null): void {
    for (const callback of this.callbacks.splice(0, count)) callback(error);
  }
}

test("BoundedSender: at most maxInFlight unwritten, at most maxQueued waiting, oldest dropped and counted, order kept", () => {
  const endpoint = new StalledEndpoint();
  const sender = new BoundedSender(endpoint, { maxInFlight: 2, maxQueued: 3 });
  for (let i = 0; i < 10; i++) sender.send({ i });
  assert.deepEqual(endpoint.written, [{ i: 0 }, { i: 1 }]);
  assert.deepEqual(sender.stats(), { sent: 2, inFlight: 2, queued: 3, dropped: 5, failed: 0 });
  endpoint.complete(2);
  assert.deepEqual(endpoint.written.slice(2), [{ i: 7 }, { i: 8 }], "the newest three were kept, oldest first");
  endpoint.complete(1, new Error("EPIPE"));
  assert.deepEqual(endpoint.written.slice(4), [{ i: 9 }]);
  endpoint.complete(2);
  assert.deepEqual(sender.stats(), { sent: 5, inFlight: 0, queued: 0, dropped: 5, failed: 1 });
  // A message the channel cannot serialize is counted, and does not block the next.
  sender.send({ poison: true });
  sender.send({ i: 10 });
  assert.deepEqual(sender.stats(), { sent: 7, inFlight: 1, queued: 0, dropped: 5, failed: 2 });
  // Many more than the queue, through a ring that wraps.
  for (let i = 11; i < 1000; i++) sender.send({ i });
  assert.equal(sender.stats().queued, 3);
  endpoint.complete(1);
  endpoint.complete(2);
  endpoint.complete(1);
  assert.deepEqual(endpoint.written.slice(-3), [{ i: 997 }, { i: 998 }, { i: 999 }]);
});
