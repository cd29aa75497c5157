/**
 * Issue #14, without Redis: the validation of cluster messages
 * (lib/cluster-validation.ts), the trusted form of the #5226 `rooms` field
 * (skippableBroadcastRooms), the rate-limited warnings and the peer
 * candidates.
 *
 * The reference for "valid" is socket.io-adapter itself: every message its
 * ClusterAdapter publishes (requests from real io.emit/socketsJoin/...
 * calls, and the responses it sends to requests) must pass, after the trip
 * through either wire form (pub/sub MessagePack, stream fields).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Server } from "socket.io";
import { ClusterAdapter, MessageType, type ClusterMessage, type ClusterResponse } from "socket.io-adapter";
import {
  decodePubSubPayload,
  decodeStreamFields,
  packMessage,
  skippableBroadcastRooms,
  toStreamFields,
  type AnyClusterMessage,
} from "../lib/cluster-messages";
import { ClusterPeers } from "../lib/cluster-peers";
import { validateClusterMessage } from "../lib/cluster-validation";
import { RateLimitedWarnings } from "../lib/rate-limited-warnings";
import { malformedMessages, validBroadcast } from "./cluster-forgery";
import { closeDetached, connectFake } from "./fake-sockets";

/** socket.io-adapter's ClusterAdapter with its transport replaced by a list. */
class CapturingAdapter extends ClusterAdapter {
  static readonly published: AnyClusterMessage[] = [];
  protected override doPublish(message: ClusterMessage): Promise<string> {
    CapturingAdapter.published.push(structuredClone(message));
    return Promise.resolve("1-0");
  }
  protected override doPublishResponse(_uid: string, response: ClusterResponse): Promise<void> {
    CapturingAdapter.published.push(structuredClone(response));
    return Promise.resolve();
  }
  override serverCount(): Promise<number> {
    return Promise.resolve(2);
  }
  receive(message: ClusterMessage): void {
    this.onMessage(message);
  }
}

describe("messages socket.io-adapter's ClusterAdapter publishes are valid", () => {
  let io: Server;
  before(async () => {
    io = new Server({ adapter: CapturingAdapter as never });
    const nsp = io.of("/");
    const fake = connectFake(nsp, "socket-a") as ReturnType<typeof connectFake> & Record<string, unknown>;
    Object.assign(fake, { handshake: { headers: {}, time: "now", address: "::1", query: {}, auth: {} }, rooms: new Set(["socket-a", "r1"]), data: { n: 1 }, acks: new Map() });
    fake.join("r1");
    nsp.on("ask", (_arg: unknown, ack: (answer: unknown) => void) => ack("answer"));

    io.emit("plain", 1, "two", { three: [3] });
    io.to("r1").except(["r2", 7 as unknown as string]).volatile.compress(false).emit("binary", Buffer.from([1, 2, 3]));
    io.timeout(10).emit("with-ack", 1, () => undefined);
    io.to("r1").socketsJoin(["r3", "r4"]);
    io.except("r1").socketsLeave("r3");
    io.in("r9").disconnectSockets(true);
    io.serverSideEmit("server-side", { a: 1 });
    io.serverSideEmit("server-side-ack", 1, () => undefined);
    await io.timeout(10).fetchSockets().catch(() => undefined);
    // Requests from another node, which this one answers.
    const adapter = nsp.adapter as unknown as CapturingAdapter;
    const opts = { rooms: [], except: [], flags: {} };
    adapter.receive({ uid: "other", nsp: "/", type: MessageType.FETCH_SOCKETS, data: { opts, requestId: "req-1" } });
    adapter.receive({ uid: "other", nsp: "/", type: MessageType.SERVER_SIDE_EMIT, data: { requestId: "req-2", packet: ["ask", 1] } });
    adapter.receive({ uid: "other", nsp: "/", type: MessageType.BROADCAST, data: { opts, packet: { type: 2, data: ["hello"] }, requestId: "req-3" } });
    await new Promise((resolve) => setTimeout(resolve, 50));
  });
  after(() => closeDetached(io));

  test("each type was captured", () => {
    const types = new Set(CapturingAdapter.published.map((message) => MessageType[message.type]));
    for (const type of ["BROADCAST", "SOCKETS_JOIN", "SOCKETS_LEAVE", "DISCONNECT_SOCKETS", "FETCH_SOCKETS", "SERVER_SIDE_EMIT", "FETCH_SOCKETS_RESPONSE", "SERVER_SIDE_EMIT_RESPONSE", "BROADCAST_CLIENT_COUNT"]) {
      assert.ok(types.has(type), `${type} captured (got ${[...types].join(", ")})`);
    }
  });

  test("each passes, as decoded from pub/sub and from stream fields", () => {
    for (const message of CapturingAdapter.published) {
      const label = `${MessageType[message.type]} ${JSON.stringify(message).slice(0, 120)}`;
      assert.deepEqual(validateClusterMessage(message), { valid: true, message }, label);
      const fromPubSub = decodePubSubPayload(packMessage(message));
      assert.ok(fromPubSub.valid, `${label} via pub/sub: ${fromPubSub.valid ? "" : fromPubSub.reason}`);
      const fromStream = decodeStreamFields(toStreamFields(message));
      assert.ok(fromStream.valid, `${label} via the stream: ${fromStream.valid ? "" : fromStream.reason}`);
    }
  });
});

describe("malformed messages are rejected with a reason that names the field", () => {
  for (const { name, message, reason } of malformedMessages()) {
    test(name, () => {
      const check = message instanceof Uint8Array ? decodePubSubPayload(message) : validateClusterMessage(message);
      assert.equal(check.valid, false, `${name} accepted`);
      assert.match((check as { reason: string }).reason, reason);
    });
  }

  test("a reason never quotes the message (it is the kind counted and logged)", () => {
    const check = validateClusterMessage({ uid: "u", nsp: "/", type: 3, data: { opts: { rooms: ["secret-room", {}], except: [] }, packet: {} } });
    assert.equal(check.valid, false);
    assert.doesNotMatch((check as { reason: string }).reason, /secret/);
  });

  test("stream entries: bad type text, undecodable data", () => {
    assert.match((decodeStreamFields({ uid: "u", nsp: "/", type: "3x" }) as { reason: string }).reason, /type is not a decimal/);
    assert.match((decodeStreamFields({ uid: "u", nsp: "/", type: "3", data: "{not json" }) as { reason: string }).reason, /neither JSON nor base64/);
    assert.match((decodeStreamFields({ uid: "u", nsp: "/", type: "3" }) as { reason: string }).reason, /^BROADCAST: data is not an object/);
    assert.match((decodeStreamFields({ nsp: "/", type: "1" }) as { reason: string }).reason, /^uid /);
  });
});

describe("the #5226 rooms field is trusted only when data says the same rooms", () => {
  const fieldsOf = (rooms: string[], packetData: unknown[] = ["ev", 1]) => toStreamFields(validBroadcast(rooms, packetData));

  test("our own entries to rooms carry it, and it reads back", () => {
    const fields = fieldsOf(["a", "b"]);
    assert.equal(fields.rooms, '["a","b"]');
    assert.deepEqual(skippableBroadcastRooms(fields), ["a", "b"]);
  });

  test("a broadcast to everyone has none", () => {
    assert.equal(fieldsOf([]).rooms, undefined);
  });

  test("a forged rooms field on a broadcast to everyone is not trusted", () => {
    assert.equal(skippableBroadcastRooms({ ...fieldsOf([]), rooms: '["a"]' }), undefined);
  });

  test("a rooms field that differs from data's rooms is not trusted", () => {
    assert.equal(skippableBroadcastRooms({ ...fieldsOf(["a"]), rooms: '["b"]' }), undefined);
  });

  test("a second opts, a second rooms, a requestId or a \\u escape after the prefix makes it decode", () => {
    const base = fieldsOf(["a"]);
    const prefix = '{"opts":{"rooms":["a"],"except":';
    for (const tail of ['[],"flags":{}},"packet":{"type":2,"data":["x"]},"opts":{"rooms":[],"except":[],"flags":{}}}', '[],"rooms":[],"flags":{}},"packet":{}}', '[],"flags":{}},"packet":{},"requestId":"r"}', '[],"flags":{}},"packet":{},"\\u006fpts":{}}']) {
      assert.equal(skippableBroadcastRooms({ ...base, data: prefix + tail }), undefined, tail);
    }
  });

  test("a payload that mentions rooms is decoded (no field written), a binary one too", () => {
    assert.equal(fieldsOf(["a"], ["ev", { rooms: 1 }]).rooms, undefined);
    assert.equal(fieldsOf(["a"], ["ev", Buffer.from([1])]).rooms, undefined);
  });

  test("not a broadcast, or no member-less room list: not skippable", () => {
    assert.equal(skippableBroadcastRooms({ ...fieldsOf(["a"]), type: "4" }), undefined);
    assert.equal(skippableBroadcastRooms({ ...fieldsOf(["a"]), rooms: "[]", data: '{"opts":{"rooms":[],"except":[]}}' }), undefined);
  });
});

describe("RateLimitedWarnings", () => {
  test("the first of a kind at once, then one per interval with the count left out", () => {
    const written: string[] = [];
    let now = 0;
    const warnings = new RateLimitedWarnings((text) => written.push(text), 1000, () => now);
    warnings.warn("a", "A");
    warnings.warn("a", "A");
    warnings.warn("b", "B");
    now = 999;
    warnings.warn("a", "A");
    assert.deepEqual(written, ["A", "B"]);
    now = 1000;
    warnings.warn("a", "A");
    assert.deepEqual(written, ["A", "B", "A (and 2 more of this kind since the last warning)"]);
  });

  test("kinds are bounded: a flood of distinct kinds writes a bounded number of warnings", () => {
    const written: string[] = [];
    const warnings = new RateLimitedWarnings((text) => written.push(text), 1000, () => 0);
    for (let i = 0; i < 10_000; i++) warnings.warn(`kind ${i}`, `text ${i}`);
    assert.ok(written.length <= 101, `${written.length} warnings written`);
  });

  test("a sink that throws does not reach the caller", () => {
    const warnings = new RateLimitedWarnings(() => {
      throw new Error("log down");
    });
    assert.doesNotThrow(() => warnings.warn("a", "A"));
  });
});

describe("ClusterPeers", () => {
  test("a heartbeat makes a candidate; only confirmed ones are counted", () => {
    const peers = new ClusterPeers(4, 10);
    assert.equal(peers.heardHeartbeat("real", 1), true);
    assert.equal(peers.heardHeartbeat("forged", 1), true);
    assert.equal(peers.size, 0);
    peers.settle(["real", "forged"], [true, false]);
    assert.deepEqual([...peers.uids()], ["real"]);
    assert.equal(peers.candidateCount, 0);
    assert.equal(peers.isKnown("forged"), false);
    // Known ones count again at once, with any message.
    peers.forget("real");
    assert.equal(peers.size, 0);
    peers.heardFrom("real", 5);
    assert.equal(peers.size, 1);
    assert.equal(peers.heardHeartbeat("real", 6), false);
  });

  test("candidates are bounded, oldest dropped first; silent peers are found by deadline", () => {
    const peers = new ClusterPeers(3, 10);
    for (let i = 0; i < 1000; i++) peers.heardHeartbeat(`forged-${i}`, i);
    assert.equal(peers.candidateCount, 3);
    assert.deepEqual(peers.pendingCandidates(), ["forged-997", "forged-998", "forged-999"]);
    peers.settle(["forged-998", "forged-999"], [true, true]);
    assert.deepEqual(peers.silentSince(999), ["forged-998"]);
  });

  test("remembered uids are bounded", () => {
    const peers = new ClusterPeers(10, 2);
    for (const uid of ["a", "b", "c"]) {
      peers.heardHeartbeat(uid, 0);
      peers.settle([uid], [true]);
    }
    assert.deepEqual([peers.isKnown("a"), peers.isKnown("b"), peers.isKnown("c")], [false, true, true]);
  });
});
