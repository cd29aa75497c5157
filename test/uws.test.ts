/**
 * socket.io on uWebSockets.js (`io.attachApp(app)`) with the sharded adapter:
 * real uWS from the registry, websocket, polling, upgrading, base64 and
 * multiplexed clients.
 *
 * The broadcast scenario (uws-helpers.ts) runs in child processes, so that
 * each load order starts from an unpatched socket.io-adapter: the adapter
 * package loaded before `attachApp` and after it, with socket.io's copy of
 * socket.io-adapter and with a second copy of its own (a scratch install).
 * Each must deliver as socket.io's in-memory adapter does, except where that
 * one is wrong (a socket back in a namespace without its rooms still gets
 * their broadcasts), and must publish exactly where a topic's subscribers are
 * the recipients.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import type { Socket } from "socket.io";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { createAdapter, type ShardedAdapter } from "../lib/index";
import { until } from "./api-helpers";
import { REPO_ROOT, runNode, serverSocketOf, settle, waitConnected } from "./helpers";
import { connectClient, countPerSocketWrites, installWithSecondAdapterCopy, startUwsServer, type AdapterOption, type ScenarioResult } from "./uws-helpers";

const CHILD = join(REPO_ROOT, "dist", "test", "uws-scenario-child.js");
const PACKAGE = join(REPO_ROOT, "dist", "lib", "index.js");

interface ChildOutput {
  result: ScenarioResult;
  patchedAtLoad: boolean;
  loadedFresh: boolean;
  sameAdapterCopy: boolean | null;
  throughApp: boolean | null;
}

async function runScenario(args: string[], env?: NodeJS.ProcessEnv): Promise<ChildOutput> {
  const child = await runNode([CHILD, ...args], { env, killAfterMs: 180_000 });
  assert.equal(child.killed, false, `scenario ${args.join(" ")} did not finish: ${child.stderr}`);
  assert.equal(child.code, 0, `scenario ${args.join(" ")} failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split("\n").pop() as string) as ChildOutput;
}

/** The step where socket.io's own uWS path is wrong, and what must be delivered instead. */
const LEAK_STEP = "after rejoining the namespace without rooms";
const LEAK_STEP_EXPECTED = { base64: ["m(r2 after mux rejoined)"] };
/** A volatile packet reaches a polling client only if it has a request pending: not deterministic. */
const VOLATILE_STEP = "volatile to one room";

/**
 * Publishes per step in "/": one per broadcast without acks or volatile (to the
 * room's or everyone's topic, or for a union or except to a one-off topic its
 * websocket recipients join), none for a room that does not exist.
 */
const EXPECTED_PUBLISHES: Record<string, number> = {
  "one room": 1,
  everyone: 1,
  "own id of ws": 1,
  "own id of polling": 1,
  "own id of upgrade": 1,
  "own id of base64": 1,
  "own id of mux/": 1,
  "binary to one room": 1,
  "binary to everyone": 1,
  "union of rooms": 1, // to a one-off topic of the websocket recipients
  "everyone except a room": 1,
  "room except a room": 1,
  "other namespace, one room": 0,
  "other namespace, everyone": 0,
  "volatile to one room": 0,
  "compress to one room": 1,
  "acks from one room": 0,
  "ordering with direct emits": 2,
  "socketsJoin then one room": 1,
  "socketsLeave then one room": 0, // the room is gone: nobody to publish to
  "leave then one room": 1,
  "after a namespace-level disconnect": 3,
  [LEAK_STEP]: 1,
  "after disconnects": 2,
};

function withoutPolling(received: Record<string, string[]>): Record<string, string[]> {
  const { polling: _ignored, ...rest } = received;
  return rest;
}

test("uWS: every broadcast shape in every load order, as the in-memory adapter delivers it, published where it can be", { timeout: 600_000 }, async (t) => {
  const reference = await runScenario(["in-memory", "before", PACKAGE]);
  const steps = reference.result.steps.map((step) => step.step);
  assert.deepEqual(steps, Object.keys(EXPECTED_PUBLISHES), "the scenario's steps changed: update EXPECTED_PUBLISHES");
  // The reference shows socket.io's own bug, so that this test knows it compares against it.
  assert.deepEqual(reference.result.steps.find((step) => step.step === LEAK_STEP)?.received["mux/"], ["m(r5 after mux rejoined)", "m(r2 after mux rejoined)"]);

  const copy = installWithSecondAdapterCopy();
  t.after(() => copy.remove());
  for (const order of ["before", "after"] as const) {
    for (const copies of [1, 2] as const) {
      await t.test(`loaded ${order} attachApp, ${copies} cop${copies === 1 ? "y" : "ies"} of socket.io-adapter`, async () => {
        const output =
          copies === 1 ? await runScenario(["sharded", order, PACKAGE]) : await runScenario(["sharded", order, copy.packageDir], copy.env);
        assert.equal(output.loadedFresh, true, "the package was loaded before the child meant to");
        assert.equal(output.patchedAtLoad, order === "after", "socket.io's patch of Adapter.prototype at load time");
        assert.equal(output.sameAdapterCopy, copies === 1, "whether the package uses socket.io's socket.io-adapter");
        // Set before attachApp, the adapter knows the app; set after, it publishes through a websocket.
        assert.equal(output.throughApp, order === "before", "whether the adapter publishes through the uWS app");
        const { connectedOn } = output.result;
        assert.equal(connectedOn.upgrade, "polling", "the upgrading client joins its rooms before its upgrade");
        assert.equal(connectedOn.ws, "websocket");
        for (const [i, step] of output.result.steps.entries()) {
          const expected = reference.result.steps[i];
          assert.equal(step.step, expected.step);
          if (step.step === LEAK_STEP) assert.deepEqual(step.received, LEAK_STEP_EXPECTED, step.step);
          else if (step.step === VOLATILE_STEP) assert.deepEqual(withoutPolling(step.received), withoutPolling(expected.received), step.step);
          else assert.deepEqual(step.received, expected.received, step.step);
          assert.equal(step.publishes, EXPECTED_PUBLISHES[step.step], `publishes in step "${step.step}"`);
        }
      });
    }
  }
});

/** A client that reconnects quickly, to come back within the recovery window. */
function reconnectingClient(url: string, transports: string[]): ClientSocket {
  return connect(url, { forceNew: true, transports, reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200, randomizationFactor: 0 });
}

test("uWS: connection state recovery replays published broadcasts, and connected clients get their offsets", { timeout: 120_000 }, async (t) => {
  const server = await startUwsServer(createAdapter({ workers: 1 }) as unknown as AdapterOption, {
    connectionStateRecovery: { maxDisconnectionDuration: 30_000 },
  });
  const clients: ClientSocket[] = [];
  t.after(async () => {
    for (const client of clients) client.disconnect();
    await server.close();
  });
  const { io } = server;
  io.on("connection", (socket: Socket) => {
    if (!socket.recovered) socket.join("room");
  });
  const leaver = reconnectingClient(server.url, ["websocket"]);
  const stayer = reconnectingClient(server.url, ["websocket"]);
  const poller = reconnectingClient(server.url, ["polling"]);
  clients.push(leaver, stayer, poller);
  await Promise.all(clients.map((client) => waitConnected(client)));
  const got = new Map<ClientSocket, unknown[]>(clients.map((client) => [client, []]));
  for (const client of clients) client.on("e", (value: unknown) => got.get(client)?.push(value));
  const adapter = io.of("/").adapter as unknown as ShardedAdapter;
  const publishes = (): number => adapter.stats().uws.publishes;
  let published = 0;

  let before = publishes();
  io.to("room").emit("e", 1);
  published += publishes() - before;
  await settle(io, clients);
  const gone = new Promise((resolve) => io.of("/").sockets.get(leaver.id as string)?.once("disconnect", () => resolve(undefined)));
  leaver.io.engine.close();
  await gone;
  before = publishes();
  io.to("room").emit("e", 2);
  io.emit("e", 3);
  io.to(["room", "elsewhere"]).emit("e", 4); // a union: published to a one-off topic, stored as well
  published += publishes() - before;
  await new Promise<void>((resolve) => leaver.once("connect", () => resolve()));
  assert.equal(leaver.recovered, true, "the leaver's session is recovered");
  await settle(io, clients);

  for (const client of clients) assert.deepEqual(got.get(client), [1, 2, 3, 4], client === leaver ? "leaver (recovered)" : "connected client");
  assert.equal(published, 4, "each one published");

  // The stayer's last offset is the last packet it got, published or not: after a drop it misses nothing.
  const goneAgain = new Promise((resolve) => io.of("/").sockets.get(stayer.id as string)?.once("disconnect", () => resolve(undefined)));
  stayer.io.engine.close();
  await goneAgain;
  io.to("room").emit("e", 5);
  await new Promise<void>((resolve) => stayer.once("connect", () => resolve()));
  assert.equal(stayer.recovered, true);
  await settle(io, clients);
  assert.deepEqual(got.get(stayer), [1, 2, 3, 4, 5]);
  // Back in its rooms: subscribed again, so the next one-room broadcast is published to it too.
  io.to("room").emit("e", 6);
  await settle(io, clients);
  for (const client of clients) assert.deepEqual(got.get(client)?.at(-1), 6);
  assert.equal(adapter.stats().uws.subscribedSockets, 2, "the two websocket clients, not the polling one");
});

test("uWS: a socket whose connection leaves and rejoins namespaces is subscribed only while it is in them", { timeout: 120_000 }, async (t) => {
  const server = await startUwsServer(createAdapter({ workers: 1 }) as unknown as AdapterOption);
  t.after(() => server.close());
  const { io } = server;
  io.on("connection", (socket: Socket) => socket.join(["a", "b"]));
  const clients = [connectClient(server.url, "websocket", {}), connectClient(server.url, "upgrade", {})];
  t.after(() => clients.forEach((client) => client.disconnect()));
  await Promise.all(clients.map((client) => waitConnected(client)));
  const adapter = io.of("/").adapter as unknown as ShardedAdapter;
  await until(() => adapter.stats().uws.subscribedSockets === 2, "both clients subscribed (the second after its upgrade)");
  const got: unknown[] = [];
  clients[0].on("e", (value: unknown) => got.push(value));
  const socket = io.of("/").sockets.get(clients[0].id as string) as Socket;
  socket.leave("a");
  io.to("a").emit("e", "a after leave");
  socket.join("c");
  io.to("c").emit("e", "c after join");
  await settle(io, clients);
  assert.deepEqual(got, ["c after join"]);
  socket.disconnect();
  await until(() => adapter.stats().uws.subscribedSockets === 1, "the disconnected socket unsubscribed");
});

test("uWS: onAnyOutgoing listeners hear each published broadcast once, as with per-socket writes", { timeout: 120_000 }, async (t) => {
  const server = await startUwsServer(createAdapter({ workers: 1 }) as unknown as AdapterOption);
  t.after(() => server.close());
  const { io } = server;
  io.on("connection", (socket: Socket) => socket.join(["a", "b"]));
  const clients = [connectClient(server.url, "websocket", {}), connectClient(server.url, "polling", {})];
  t.after(() => clients.forEach((client) => client.disconnect()));
  await Promise.all(clients.map((client) => waitConnected(client)));
  const heard = clients.map(() => [] as unknown[]);
  const got = clients.map(() => [] as unknown[]);
  clients.forEach((client, i) => {
    io.of("/").sockets.get(client.id as string)?.onAnyOutgoing((event: string, value: unknown) => {
      if (event === "e") heard[i].push(value);
    });
    client.on("e", (value: unknown) => got[i].push(value));
  });
  const adapter = io.of("/").adapter as unknown as ShardedAdapter;
  const before = adapter.stats().uws.publishes;
  io.to("a").emit("e", "room");
  io.emit("e", "everyone");
  io.to(clients[0].id as string).emit("e", "own id");
  io.to(["a", "b"]).emit("e", "union");
  io.except("b").emit("e", "nobody");
  assert.equal(adapter.stats().uws.publishes - before, 4, "all but the except (which has no recipient) published");
  await settle(io, clients);
  assert.deepEqual(heard, [
    ["room", "everyone", "own id", "union"],
    ["room", "everyone", "union"],
  ]);
  assert.deepEqual(got, heard, "what the listeners heard is what the clients got");
});

for (const setAfterAttach of [false, true]) {
  const how = setAfterAttach ? "set after attachApp: through one websocket" : "set before attachApp: through the app";
  test(`uWS, adapter ${how}; polling clients written once each`, { timeout: 120_000 }, async (t) => {
    const adapterOption = (): AdapterOption => createAdapter({ workers: 1 }) as unknown as AdapterOption;
    const server = setAfterAttach ? await startUwsServer(undefined, {}, adapterOption) : await startUwsServer(adapterOption());
    t.after(() => server.close());
    const { io } = server;
    io.on("connection", (socket: Socket) => socket.join("a"));
    const clients = [connectClient(server.url, "websocket", {}), connectClient(server.url, "websocket", {}), connectClient(server.url, "polling", {})];
    t.after(() => clients.forEach((client) => client.disconnect()));
    await Promise.all(clients.map((client) => waitConnected(client)));
    const adapter = io.of("/").adapter as unknown as ShardedAdapter;
    await until(() => adapter.stats().uws.subscribedSockets === 2, "both websocket clients subscribed");
    assert.equal(adapter.stats().uws.throughApp, !setAfterAttach);
    const got = clients.map(() => [] as unknown[]);
    clients.forEach((client, i) => client.on("e", (value: unknown) => got[i].push(value)));
    const writes = clients.map((client) => countPerSocketWrites(serverSocketOf(io, client)));

    const before = adapter.stats().uws.publishes;
    io.to("a").emit("e", "room");
    io.emit("e", "everyone");
    clients.forEach((client, i) => io.to(client.id as string).emit("e", `own ${i}`));
    const written = writes.map((count) => count());
    assert.equal(adapter.stats().uws.publishes - before, 5, "each broadcast published once");
    assert.equal(written[2], 3, "the polling client is written each broadcast");
    if (setAfterAttach) {
      // uWS does not send a publish back to its publisher: it is written per socket, each broadcast to it once.
      assert.deepEqual([...written.slice(0, 2)].sort(), [0, 3], "one websocket (the publisher) written per socket");
    } else {
      assert.deepEqual(written.slice(0, 2), [0, 0], "no websocket client written per socket");
    }
    await settle(io, clients);
    assert.deepEqual(got, [0, 1, 2].map((i) => ["room", "everyone", `own ${i}`]), "each client got each broadcast once");

    // A namespace made after attachApp publishes the same way (its adapter finds the app recorded, or not).
    const otherNsp = io.of("/other");
    const other = connectClient(`${server.url}/other`, "websocket", {});
    t.after(() => other.disconnect());
    await waitConnected(other);
    const otherGot: unknown[] = [];
    other.on("e", (value: unknown) => otherGot.push(value));
    const otherAdapter = otherNsp.adapter as unknown as ShardedAdapter;
    otherNsp.emit("e", "other");
    assert.deepEqual(otherAdapter.stats().uws, { publishes: 1, subscribedSockets: 1, throughApp: !setAfterAttach });
    await settle(io, [other], "/other");
    assert.deepEqual(otherGot, ["other"]);
  });
}

test("uWS: published broadcasts call onAnyOutgoing listeners added before or after connection, and not once removed", { timeout: 120_000 }, async (t) => {
  const server = await startUwsServer(createAdapter({ workers: 1 }) as unknown as AdapterOption);
  t.after(() => server.close());
  const { io } = server;
  const heard = new Map<string, unknown[]>();
  const listenerOf = new Map<string, (event: string, value: unknown) => void>();
  const listen = (socket: Socket, label: string): void => {
    heard.set(label, heard.get(label) ?? []);
    const listener = (event: string, value: unknown): void => {
      if (event === "e") heard.get(label)?.push(value);
    };
    listenerOf.set(label, listener);
    socket.onAnyOutgoing(listener);
  };
  // A listener added before the socket is registered in the namespace (and subscribed).
  io.use((socket, next) => {
    if ((socket.handshake.auth as { early?: boolean }).early) listen(socket, "early");
    next();
  });
  io.on("connection", (socket: Socket) => socket.join("a"));
  const early = connectClient(server.url, "websocket", { early: true });
  const late = connectClient(server.url, "websocket", {});
  const clients = [early, late];
  t.after(() => clients.forEach((client) => client.disconnect()));
  await Promise.all(clients.map((client) => waitConnected(client)));
  const adapter = io.of("/").adapter as unknown as ShardedAdapter;
  await until(() => adapter.stats().uws.subscribedSockets === 2, "both clients subscribed");
  assert.equal(adapter.stats().uws.throughApp, true);
  const got = clients.map(() => [] as unknown[]);
  clients.forEach((client, i) => client.on("e", (value: unknown) => got[i].push(value)));
  const before = adapter.stats().uws.publishes;
  const earlySocket = serverSocketOf(io, early);
  const lateSocket = serverSocketOf(io, late);

  io.to("a").emit("e", 1);
  io.to(late.id as string).emit("e", "own late 1");
  listen(lateSocket, "late");
  io.to("a").emit("e", 2);
  io.to(late.id as string).emit("e", "own late 2");
  io.emit("e", "everyone 3");
  earlySocket.offAnyOutgoing(listenerOf.get("early"));
  io.to("a").emit("e", 4);
  lateSocket.offAnyOutgoing();
  io.to("a").emit("e", 5);
  io.emit("e", "everyone 6");
  assert.equal(adapter.stats().uws.publishes - before, 8, "each broadcast published");
  await settle(io, clients);
  assert.deepEqual(Object.fromEntries(heard), {
    early: [1, 2, "everyone 3"],
    late: [2, "own late 2", "everyone 3", 4],
  });
  assert.deepEqual(got, [
    [1, 2, "everyone 3", 4, 5, "everyone 6"],
    [1, "own late 1", 2, "own late 2", "everyone 3", 4, 5, "everyone 6"],
  ]);
});
