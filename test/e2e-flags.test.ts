/**
 * Issue 2, point 7: the `volatile`, `compress` and `local` flags. Each
 * scenario runs on the in-memory adapter and on every sharded variant, and
 * compares both what each client received and the packet options socket.io
 * handed to each connection (`client.writeToEngine(packets, opts)`).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Socket } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import {
  assertPathTaken,
  IN_MEMORY,
  recordReceipts,
  serverSocketOf,
  settle,
  SHARDED_VARIANTS,
  waitWritable,
  withServer,
  type Variant,
} from "./helpers";

interface EngineWrite {
  readonly label: unknown;
  readonly volatile: unknown;
  readonly compress: unknown;
}

type Transport = { writable: boolean };

/** Records, per server socket, the options of each "m" packet written to its connection. */
function spyWrites(sockets: Socket[]): EngineWrite[][] {
  return sockets.map((socket) => {
    const writes: EngineWrite[] = [];
    const client = socket.client as unknown as { writeToEngine(packets: unknown[], opts: Record<string, unknown>): void };
    const original = client.writeToEngine.bind(client);
    client.writeToEngine = (packets, opts) => {
      const text = typeof packets[0] === "string" ? (packets[0] as string) : "";
      const match = /^2\["m","([^"]*)"/.exec(text);
      // Effective values: engine.io turns a missing `compress` into true on the
      // (shared) options object, so the raw value depends on recipient order.
      if (match) writes.push({ label: match[1], volatile: opts.volatile === true, compress: opts.compress !== false });
      return original(packets, opts);
    };
    return writes;
  });
}

function transportOf(socket: Socket): Transport {
  return (socket.conn as unknown as { transport: Transport }).transport;
}

interface FlagsObservation {
  received: unknown[][];
  writes: EngineWrite[][];
}

async function flagsScenario(variant: Variant): Promise<FlagsObservation> {
  return withServer(variant, async ({ io, connect }) => {
    const clients = await connect(4);
    const s = clients.map((client) => serverSocketOf(io, client));
    s[0].join("r");
    s[1].join(["r", "q"]);
    s[2].join("q");
    const receipts = recordReceipts(clients, "m");
    const writes = spyWrites(s);
    const step = async (emit: () => void) => {
      // Each flagged emit starts with every transport idle, so volatile packets are not dropped.
      await waitWritable(io, clients);
      emit();
      await settle(io, clients);
    };
    await step(() => io.volatile.to("r").emit("m", "volatile-to-r"));
    await step(() => io.volatile.emit("m", "volatile-all"));
    await step(() => io.compress(false).emit("m", "compress-false-all"));
    await step(() => io.compress(true).to("q").emit("m", "compress-true-to-q"));
    await step(() => io.local.emit("m", "local-all"));
    await step(() => io.local.to("r").except("q").emit("m", "local-r-except-q"));
    await step(() => io.volatile.compress(false).local.to(["r", "q"]).emit("m", "all-flags-r-q"));
    await step(() => s[0].volatile.broadcast.emit("m", "socket-volatile-broadcast"));
    await step(() => s[1].compress(false).to("q").emit("m", "socket-compress-false-to-q"));
    await step(() => s[2].local.to("r").emit("m", "socket-local-to-r"));
    assertPathTaken(io, variant);
    return { received: clients.map((client) => receipts.get(client)!.map((args) => args[0])), writes };
  });
}

/**
 * Volatile packets are dropped for a connection whose transport is busy
 * writing. A plain emit to "r" makes the transports of r's members busy
 * (the write callback is asynchronous), so the volatile emit that follows
 * synchronously reaches only the idle ones.
 */
async function volatileDropScenario(variant: Variant): Promise<FlagsObservation & { busy: boolean[] }> {
  return withServer(variant, async ({ io, connect }) => {
    const clients: ClientSocket[] = await connect(4);
    const s = clients.map((client) => serverSocketOf(io, client));
    s[0].join("r");
    s[1].join("r");
    const receipts = recordReceipts(clients, "m");
    const writes = spyWrites(s);
    await waitWritable(io, clients);
    io.to("r").emit("m", "plain-to-r");
    const busy = s.map((socket) => !transportOf(socket).writable);
    io.volatile.emit("m", "volatile-all");
    io.volatile.to("r").emit("m", "volatile-to-r");
    await settle(io, clients);
    assertPathTaken(io, variant);
    return { received: clients.map((client) => receipts.get(client)!.map((args) => args[0])), writes, busy };
  });
}

const labels = (writes: EngineWrite[][]) => writes.map((list) => list.map((write) => write.label));

describe("volatile, compress and local flags", () => {
  let reference: Promise<FlagsObservation> | undefined;
  const referenceObservation = () => (reference ??= flagsScenario(IN_MEMORY));

  test("in-memory reference: who gets what, and the packet options socket.io passes on", async () => {
    const { received, writes } = await referenceObservation();
    assert.deepEqual(received, [
      ["volatile-to-r", "volatile-all", "compress-false-all", "local-all", "local-r-except-q", "all-flags-r-q", "socket-local-to-r"],
      ["volatile-to-r", "volatile-all", "compress-false-all", "compress-true-to-q", "local-all", "all-flags-r-q", "socket-volatile-broadcast", "socket-local-to-r"],
      ["volatile-all", "compress-false-all", "compress-true-to-q", "local-all", "all-flags-r-q", "socket-volatile-broadcast", "socket-compress-false-to-q"],
      ["volatile-all", "compress-false-all", "local-all", "socket-volatile-broadcast"],
    ]);
    assert.deepEqual(labels(writes), received);
    const options = writes[1].map((write) => [write.label, write.volatile, write.compress]);
    assert.deepEqual(options, [
      ["volatile-to-r", true, true],
      ["volatile-all", true, true],
      ["compress-false-all", false, false],
      ["compress-true-to-q", false, true],
      ["local-all", false, true],
      ["all-flags-r-q", true, false],
      ["socket-volatile-broadcast", true, true],
      ["socket-local-to-r", false, true],
    ]);
  });

  for (const variant of SHARDED_VARIANTS) {
    test(`io.volatile / io.compress / io.local and socket flags deliver and pass options as in-memory [${variant.name}]`, async () => {
      const expected = await referenceObservation();
      const actual = await flagsScenario(variant);
      assert.deepEqual(actual, expected);
    });
  }

  let dropReference: Promise<FlagsObservation & { busy: boolean[] }> | undefined;
  for (const variant of [IN_MEMORY, ...SHARDED_VARIANTS]) {
    test(`a volatile packet is dropped exactly for the connections that are busy writing [${variant.name}]`, async () => {
      const actual = await volatileDropScenario(variant);
      // Precondition: r's members are busy, the others idle. Without it the test would prove nothing.
      assert.deepEqual(actual.busy, [true, true, false, false]);
      assert.deepEqual(actual.received, [["plain-to-r"], ["plain-to-r"], ["volatile-all"], ["volatile-all"]]);
      const expected = await (dropReference ??= volatileDropScenario(IN_MEMORY));
      assert.deepEqual(actual, expected);
    });
  }
});
