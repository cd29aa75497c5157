/**
 * socket.io keeps its namespaces across `io.close()` and serves them again
 * after `io.attach()` or `io.listen()`: the adapter must too, as the
 * in-memory adapter does. And nothing a client does during shutdown may
 * throw, nor may the adapter keep the process alive after it.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { Server } from "socket.io";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { createAdapter } from "../lib/index";
import { ADAPTER_KINDS, runNode, waitConnected, type AdapterKind } from "./helpers";

interface Observed {
  delivered: string[];
  acks: unknown[];
  rooms: string[];
  fetched: number;
}

/** One serving round: two clients connect, join, get a room broadcast and answer an ack. */
async function serveRound(io: Server, port: number, round: string): Promise<Observed> {
  const clients: ClientSocket[] = [0, 1].map(() => connect(`http://127.0.0.1:${port}`, { transports: ["websocket"], forceNew: true, reconnection: false }));
  const delivered: string[] = [];
  for (const client of clients) {
    client.on("news", (text: string) => delivered.push(text));
    client.on("ask", (question: string, answer: (reply: string) => void) => answer(`${question}!`));
  }
  await Promise.all(clients.map(waitConnected));
  await new Promise((resolve) => setImmediate(resolve));
  io.to("room").emit("news", `news ${round}`);
  const acks = (await io.to("room").timeout(10_000).emitWithAck("ask", round)) as unknown[];
  const observed = {
    delivered,
    acks,
    rooms: [...io.of("/").adapter.rooms.keys()].filter((room) => room === "room"),
    fetched: (await io.in("room").fetchSockets()).length,
  };
  for (const client of clients) client.disconnect();
  return observed;
}

async function listen(http: ReturnType<typeof createServer>): Promise<number> {
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  return (http.address() as AddressInfo).port;
}

async function closeAndRestart(kind: AdapterKind, how: "attach" | "listen"): Promise<Observed[]> {
  const http = createServer();
  const io = new Server(http, kind === "sharded" ? { adapter: createAdapter({ workers: 2, offloadThreshold: 0 }) } : {});
  io.on("connection", (socket) => socket.join("room"));
  const rounds = [await serveRound(io, await listen(http), "first")];
  await io.close();
  let port: number;
  if (how === "attach") {
    const http2 = createServer();
    io.attach(http2);
    port = await listen(http2);
  } else {
    const probe = createServer();
    port = await listen(probe); // a free port for io.listen()
    await new Promise((resolve) => probe.close(resolve));
    io.listen(port);
  }
  try {
    rounds.push(await serveRound(io, port, "second"));
  } finally {
    await io.close();
  }
  return rounds;
}

for (const how of ["attach", "listen"] as const) {
  test(`io.close() then io.${how}() serves joins, broadcasts, acks and fetchSockets again, as with the in-memory adapter`, { timeout: 120_000 }, async () => {
    const observed = new Map<AdapterKind, Observed[]>();
    for (const kind of ADAPTER_KINDS) observed.set(kind, await closeAndRestart(kind, how));
    const expected = ["first", "second"].map((round) => ({
      delivered: [`news ${round}`, `news ${round}`],
      acks: [`${round}!`, `${round}!`],
      rooms: ["room"],
      fetched: 2,
    }));
    assert.deepEqual(observed.get("in-memory"), expected, "the reference");
    assert.deepEqual(observed.get("sharded"), expected);
  });
}

for (const kind of ADAPTER_KINDS) {
  test(`${kind}: io.close() with 60 clients mid-handshake throws nothing, and the process exits by itself`, { timeout: 120_000 }, async () => {
    const child = await runNode([join(__dirname, "shutdown-child.js"), kind, "60"], { killAfterMs: 60_000 });
    assert.equal(child.killed, false, `the process did not exit by itself after io.close()\n${child.stdout}\n${child.stderr}`);
    assert.equal(child.code, 0, child.stderr);
    const result = JSON.parse(/^RESULT (.*)$/m.exec(child.stdout)?.[1] ?? "null") as { connectedBeforeClose: boolean; uncaught: string[] } | null;
    assert.ok(result, child.stdout);
    assert.deepEqual(result, { connectedBeforeClose: true, uncaught: [] });
  });
}
