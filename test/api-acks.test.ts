/**
 * Broadcasts with acknowledgements through the public API
 * (`io.to(room).timeout(ms).emit(ev, data, cb)`, `emitWithAck`,
 * `socket.to(room).timeout(ms).emit`), with real clients, compared between
 * socket.io's in-memory adapter and the sharded adapter (defaults, and every
 * selection through the workers).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Server, Socket } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { acrossVariants, assertOffloaded, withApiServer, type ApiVariant } from "./api-helpers";
import { once, serverSocketOf } from "./helpers";

/** Long enough never to fire when every client answers (loopback). */
const GENEROUS_MS = 10_000;
/** The timeout of the scenarios where one client never answers in time. */
const PARTIAL_MS = 1500;

interface Reply {
  from: string;
  arg: unknown;
  bin: Buffer;
}

/** What one ack broadcast produced: its error (message) and its responses, sorted by client. */
interface AckOutcome {
  op: string;
  error: string | null;
  responses: { from: string; arg: unknown; bin: number[] }[] | null;
}

function outcome(op: string, err: Error | null, responses: unknown): AckOutcome {
  const list = responses === null || responses === undefined ? null : (responses as Reply[]);
  return {
    op,
    error: err ? err.message : null,
    responses: list
      ? list
          .map((reply) => ({ from: reply.from, arg: reply.arg, bin: [...reply.bin] }))
          .sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0))
      : null,
  };
}

/** Emits with a callback and resolves with what the callback got (asserting it is called once). */
function emitWithCallback(op: string, emit: (cb: (err: Error | null, responses: unknown) => void) => void): Promise<AckOutcome> {
  return new Promise((resolve, reject) => {
    let calls = 0;
    emit((err, responses) => {
      calls++;
      if (calls > 1) reject(new Error(`${op}: the ack callback was called ${calls} times`));
      else resolve(outcome(op, err, responses));
    });
  });
}

/** `emitWithAck`, with a rejection turned into the same shape (error message and `err.responses`). */
async function awaitAck(op: string, promise: Promise<unknown>): Promise<AckOutcome> {
  try {
    return outcome(op, null, await promise);
  } catch (err) {
    assert.ok(err instanceof Error, `${op}: rejected with a non-Error`);
    return outcome(op, err, (err as Error & { responses?: unknown }).responses);
  }
}

type Behaviour = "answer" | "hold" | "disconnect";

/**
 * Clients c0..c(n-1) answer "ask" with { from, arg, bin }, except: a "hold"
 * client keeps its callback until the server emits "release" to it, then
 * answers and emits "released" (so the server knows the late answer has
 * arrived); a "disconnect" client disconnects instead of answering.
 */
function answerAsks(clients: ClientSocket[], behaviours: Record<number, Behaviour> = {}): Map<number, unknown[]> {
  const received = new Map<number, unknown[]>();
  clients.forEach((client, i) => {
    received.set(i, []);
    const behaviour = behaviours[i] ?? "answer";
    client.on("ask", (arg: unknown, cb: (reply: Reply) => void) => {
      received.get(i)!.push(arg);
      const reply = () => cb({ from: `c${i}`, arg, bin: Buffer.from([i, 255]) });
      if (behaviour === "answer") return reply();
      if (behaviour === "disconnect") return client.disconnect();
      client.once("release", () => {
        reply();
        client.emit("released");
      });
    });
  });
  return received;
}

/** Releases the held answers of a silent client and waits until all `count` have reached the server. */
async function release(io: Server, client: ClientSocket, count: number): Promise<void> {
  if (count === 0) return;
  const socket = serverSocketOf(io, client);
  let left = count;
  const released = new Promise<void>((resolve) => {
    const onReleased = () => {
      if (--left > 0) return;
      socket.off("released", onReleased);
      resolve();
    };
    socket.on("released", onReleased);
  });
  socket.emit("release");
  await released;
}

function pendingAcks(io: Server): number {
  let pending = 0;
  for (const socket of io.of("/").sockets.values()) pending += (socket as unknown as { acks: Map<number, unknown> }).acks.size;
  return pending;
}

const asSorted = (received: Map<number, unknown[]>) =>
  Object.fromEntries([...received].map(([i, args]) => [`c${i}`, [...args].sort()]));

test("acks: every client in the selection answers (io.to/except/timeout, emitWithAck, socket.to, socket.broadcast)", async (t) => {
  const expected = (names: string[], arg: unknown) => names.map((from) => ({ from, arg, bin: [Number(from.slice(1)), 255] }));
  await acrossVariants(
    t,
    (variant: ApiVariant) =>
      withApiServer(variant, async (server) => {
        const { io } = server;
        const clients = await server.connect(5);
        const sockets: Socket[] = clients.map((client) => serverSocketOf(io, client));
        // c0..c3 in "r", c3 also in "x", c4 in neither; c1 also in the numeric room 7.
        for (const socket of sockets.slice(0, 4)) socket.join("r");
        sockets[3].join("x");
        sockets[1].join(7 as unknown as string);
        const received = answerAsks(clients);

        const outcomes: AckOutcome[] = [];
        outcomes.push(await emitWithCallback("io.to(r).emit(cb)", (cb) => io.to("r").timeout(GENEROUS_MS).emit("ask", "a1", cb)));
        outcomes.push(await awaitAck("io.to(r).emitWithAck", io.to("r").timeout(GENEROUS_MS).emitWithAck("ask", "a2")));
        outcomes.push(await awaitAck("io.to(r).except(x).emitWithAck", io.to("r").except("x").timeout(GENEROUS_MS).emitWithAck("ask", "a3")));
        outcomes.push(await awaitAck("io.emitWithAck (everyone)", io.timeout(GENEROUS_MS).emitWithAck("ask", "a4")));
        outcomes.push(await awaitAck("io.to([x, 7]).emitWithAck", io.to(["x", 7 as unknown as string]).timeout(GENEROUS_MS).emitWithAck("ask", "a5")));
        outcomes.push(await awaitAck("io.to(nobody).emitWithAck", io.to("nobody").timeout(GENEROUS_MS).emitWithAck("ask", "a6")));
        outcomes.push(await emitWithCallback("socket.to(r).emit(cb)", (cb) => sockets[0].to("r").timeout(GENEROUS_MS).emit("ask", "a7", cb)));
        outcomes.push(await awaitAck("socket.to(r).except(x).emitWithAck", sockets[0].to("r").except("x").timeout(GENEROUS_MS).emitWithAck("ask", "a8")));
        outcomes.push(await awaitAck("socket.broadcast.emitWithAck", sockets[0].broadcast.timeout(GENEROUS_MS).emitWithAck("ask", "a9")));
        outcomes.push(await awaitAck("io.except(r).emitWithAck", io.except("r").timeout(GENEROUS_MS).emitWithAck("ask", "a10")));
        assertOffloaded(server, variant);
        return { outcomes, received: asSorted(received), pendingAcks: pendingAcks(io) };
      }),
    (observed) => {
      assert.deepEqual(observed.outcomes, [
        { op: "io.to(r).emit(cb)", error: null, responses: expected(["c0", "c1", "c2", "c3"], "a1") },
        { op: "io.to(r).emitWithAck", error: null, responses: expected(["c0", "c1", "c2", "c3"], "a2") },
        { op: "io.to(r).except(x).emitWithAck", error: null, responses: expected(["c0", "c1", "c2"], "a3") },
        { op: "io.emitWithAck (everyone)", error: null, responses: expected(["c0", "c1", "c2", "c3", "c4"], "a4") },
        { op: "io.to([x, 7]).emitWithAck", error: null, responses: expected(["c1", "c3"], "a5") },
        { op: "io.to(nobody).emitWithAck", error: null, responses: [] },
        { op: "socket.to(r).emit(cb)", error: null, responses: expected(["c1", "c2", "c3"], "a7") },
        { op: "socket.to(r).except(x).emitWithAck", error: null, responses: expected(["c1", "c2"], "a8") },
        { op: "socket.broadcast.emitWithAck", error: null, responses: expected(["c1", "c2", "c3", "c4"], "a9") },
        { op: "io.except(r).emitWithAck", error: null, responses: expected(["c4"], "a10") },
      ]);
      assert.deepEqual(observed.received, {
        c0: ["a1", "a2", "a3", "a4"],
        c1: ["a1", "a2", "a3", "a4", "a5", "a7", "a8", "a9"],
        c2: ["a1", "a2", "a3", "a4", "a7", "a8", "a9"],
        c3: ["a1", "a2", "a4", "a5", "a7", "a9"],
        c4: ["a10", "a4", "a9"],
      });
      assert.equal(observed.pendingAcks, 0, "no ack callback should stay registered on a socket");
    },
  );
});

test("acks: a client that does not answer in time (or disconnects) gives the timeout error with the partial responses", async (t) => {
  await acrossVariants(
    t,
    (variant: ApiVariant) =>
      withApiServer(variant, async (server) => {
        const { io } = server;
        const clients = await server.connect(8);
        const sockets = clients.map((client) => serverSocketOf(io, client));
        for (const socket of sockets.slice(0, 4)) socket.join("r");
        sockets[3].join("x");
        // c5..c7 in "d", where c6 disconnects instead of answering.
        for (const socket of sockets.slice(5)) socket.join("d");
        // c2 holds its answers until released.
        const received = answerAsks(clients, { 2: "hold", 6: "disconnect" });
        const c6Gone = once(sockets[6], "disconnect");
        // Every operation at once (each waits for its own timeout), then c2's
        // late answers arrive: no callback is called again.
        const calls: AckOutcome[] = [];
        const outcomes = await Promise.all([
          emitWithCallback("io.to(r).timeout().emit(cb)", (cb) =>
            io.to("r").timeout(PARTIAL_MS).emit("ask", "p1", (err: Error | null, responses: unknown) => {
              calls.push(outcome("p1", err, responses));
              cb(err, responses);
            }),
          ),
          awaitAck("io.to(r).emitWithAck", io.to("r").timeout(PARTIAL_MS).emitWithAck("ask", "p2")),
          awaitAck("io.to(r).except(x).emitWithAck", io.to("r").except("x").timeout(PARTIAL_MS).emitWithAck("ask", "p3")),
          emitWithCallback("socket.to(r).timeout().emit(cb)", (cb) => sockets[0].to("r").timeout(PARTIAL_MS).emit("ask", "p4", cb)),
          // Only silent c2 is selected: nothing at all comes back.
          awaitAck("io.to(c2).emitWithAck", io.to(sockets[2].id).timeout(PARTIAL_MS).emitWithAck("ask", "p5")),
          awaitAck("io.to(d).emitWithAck", io.to("d").timeout(PARTIAL_MS).emitWithAck("ask", "d1")),
        ]);
        const [c6Reason] = await c6Gone;
        const ackedAfterTimeout = pendingAcks(io);
        // As many answers as c2 holds (5 when every operation reached it).
        await release(io, clients[2], received.get(2)!.length);
        assertOffloaded(server, variant);
        return {
          outcomes,
          calls: calls.length,
          ackedAfterTimeout,
          pendingAtEnd: pendingAcks(io),
          received: asSorted(received),
          c6Reason,
          connected: io.of("/").sockets.size,
        };
      }),
    (observed) => {
      const partial = (names: string[], arg: string) => names.map((from) => ({ from, arg, bin: [Number(from.slice(1)), 255] }));
      const timedOut = "operation has timed out";
      assert.deepEqual(observed.outcomes, [
        { op: "io.to(r).timeout().emit(cb)", error: timedOut, responses: partial(["c0", "c1", "c3"], "p1") },
        { op: "io.to(r).emitWithAck", error: timedOut, responses: partial(["c0", "c1", "c3"], "p2") },
        { op: "io.to(r).except(x).emitWithAck", error: timedOut, responses: partial(["c0", "c1"], "p3") },
        { op: "socket.to(r).timeout().emit(cb)", error: timedOut, responses: partial(["c1", "c3"], "p4") },
        { op: "io.to(c2).emitWithAck", error: timedOut, responses: [] },
        { op: "io.to(d).emitWithAck", error: timedOut, responses: partial(["c5", "c7"], "d1") },
      ]);
      assert.equal(observed.calls, 1, "the callback runs once, the late answer is dropped");
      assert.equal(observed.ackedAfterTimeout, 0, "the timeout unregisters the ack from every socket");
      assert.equal(observed.pendingAtEnd, 0);
      assert.deepEqual(observed.received, {
        c0: ["p1", "p2", "p3"],
        c1: ["p1", "p2", "p3", "p4"],
        c2: ["p1", "p2", "p3", "p4", "p5"],
        c3: ["p1", "p2", "p4"],
        c4: [],
        c5: ["d1"],
        c6: ["d1"],
        c7: ["d1"],
      });
      assert.equal(observed.c6Reason, "client namespace disconnect");
      assert.equal(observed.connected, 7);
    },
  );
});
