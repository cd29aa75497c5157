/**
 * The Redis link's connections and timers over an adapter's life, in one
 * process: opened with the first namespace, closed with the last, nothing
 * left running after io.close() (even when it comes before the subscription
 * completed), and a namespace closed alone leaves the others linked.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";
import { Redis as IoRedis } from "ioredis";
import { createClient } from "redis";
import { Server } from "socket.io";
import { io as ioClient } from "socket.io-client";
import { MessageType } from "socket.io-adapter";
import { packMessage } from "../lib/cluster-messages";
import { createAdapter, InvalidOptionError, ShardedClusterAdapter } from "../lib/index";
import { redisServerForFile } from "./cluster-helpers";

const redis = redisServerForFile();

async function connectedClient() {
  const client = createClient({ url: redis.url });
  client.on("error", () => undefined);
  await client.connect();
  return client;
}

/** Connections the server has, by name of the last command (blocked XREADs, subscribers...). */
async function clientCount(observer: Awaited<ReturnType<typeof connectedClient>>): Promise<number> {
  const list = String(await observer.sendCommand(["CLIENT", "LIST"]));
  return list.split("\n").filter((line) => line.trim() !== "").length;
}

async function waitFor(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function timers(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
}

test("connections open with the first namespace and close with the last; no timer is left", async () => {
  const observer = await connectedClient();
  const client = await connectedClient();
  const baseline = await clientCount(observer);
  const timersBefore = timers();
  const io = new Server(createServer(), { adapter: createAdapter({ redis: client, workers: 1, heartbeatInterval: 100, heartbeatTimeout: 300 }) });
  const main = io.of("/").adapter as unknown as ShardedClusterAdapter;
  const other = io.of("/other").adapter as unknown as ShardedClusterAdapter;
  assert.ok(main instanceof ShardedClusterAdapter);
  // A reader (blocked XREAD) and a subscriber, shared by both namespaces.
  await waitFor(async () => (await clientCount(observer)) === baseline + 2, "the reader and the subscriber");
  await waitFor(async () => (await observer.sendCommand(["PUBSUB", "NUMSUB", "socket.io#/other#"]))?.toString().endsWith("1") ?? false, "/other subscribed");

  await other.close();
  // /other unsubscribed, / still linked.
  await waitFor(async () => String(await observer.sendCommand(["PUBSUB", "NUMSUB", "socket.io#/other#"])) === "socket.io#/other#,0", "/other unsubscribed");
  assert.equal(String(await observer.sendCommand(["PUBSUB", "NUMSUB", "socket.io#/#"])), "socket.io#/#,1");
  assert.equal(await clientCount(observer), baseline + 2);

  await new Promise<void>((resolve) => io.close(() => resolve()));
  await waitFor(async () => (await clientCount(observer)) === baseline, "the link's connections closed");
  assert.equal(timers(), timersBefore, "heartbeat and peer-check timers cleared");
  await client.quit();
  await observer.quit();
});

test("io.close() before the subscription completes leaves nothing subscribed or running", async () => {
  const observer = await connectedClient();
  const client = await connectedClient();
  const baseline = await clientCount(observer);
  const timersBefore = timers();
  const io = new Server(createServer(), { adapter: createAdapter({ redis: client, workers: 1, heartbeatInterval: 100, heartbeatTimeout: 300 }) });
  io.of("/"); // constructed, subscription in flight
  await new Promise<void>((resolve) => io.close(() => resolve()));
  await waitFor(async () => (await clientCount(observer)) === baseline, "the link's connections closed");
  assert.equal(String(await observer.sendCommand(["PUBSUB", "NUMSUB", "socket.io#/#"])), "socket.io#/#,0");
  await new Promise((resolve) => setTimeout(resolve, 300)); // longer than heartbeatInterval: no heartbeat timer may start late
  assert.equal(timers(), timersBefore);
  await client.quit();
  await observer.quit();
});

test("ShardedClusterAdapter used without createAdapter({ redis }) says how to create it", () => {
  // The main namespace is created by the Server constructor.
  assert.throws(() => new Server({ adapter: ShardedClusterAdapter }), /createAdapter\(\{ redis \}\)/);
  assert.throws(() => createAdapter({ redis: { not: "a client" } as never }), InvalidOptionError);
});

test("both client libraries fit the redis option's type, and the result fits socket.io's adapter option", async (t) => {
  // Compile-time part: these lines only build if the typings accept both clients.
  const withNodeRedis = (client: ReturnType<typeof createClient>) => new Server(createServer(), { adapter: createAdapter({ redis: client }) });
  const withIoRedis = (client: IoRedis) =>
    new Server(createServer(), { adapter: createAdapter({ redis: client, heartbeatInterval: 100, heartbeatTimeout: 300 }) });
  // Run-time part: an ioredis client links as well.
  const client = new IoRedis(redis.url);
  client.on("error", () => undefined);
  t.after(() => client.disconnect());
  const io = withIoRedis(client);
  assert.equal(await io.of("/").adapter.serverCount(), 1);
  await new Promise<void>((resolve) => io.close(() => resolve()));
  assert.equal(typeof withNodeRedis, "function");
});

test("connection state recovery through Redis replays what was stored for recovery: events, not volatile ones", async (t) => {
  const servers: Server[] = [];
  const clients: Awaited<ReturnType<typeof connectedClient>>[] = [];
  t.after(async () => {
    for (const io of servers) await new Promise<void>((resolve) => io.close(() => resolve()));
    for (const client of clients) await client.quit();
  });
  async function node(): Promise<{ io: Server; port: number }> {
    const client = await connectedClient();
    clients.push(client);
    const http = createServer();
    const io = new Server(http, {
      adapter: createAdapter({ redis: client, workers: 1, heartbeatInterval: 100, heartbeatTimeout: 300 }),
      connectionStateRecovery: { maxDisconnectionDuration: 10_000 },
    });
    servers.push(io);
    io.on("connection", (socket) => socket.on("join", (room: string, done: () => void) => (socket.join(room), done())));
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    return { io, port: (http.address() as { port: number }).port };
  }
  const a = await node();
  const b = await node();
  await waitFor(async () => (await a.io.of("/").adapter.serverCount()) === 2 && (await b.io.of("/").adapter.serverCount()) === 2, "the nodes to see each other");
  const socket = ioClient(`http://127.0.0.1:${a.port}`, { transports: ["websocket"], reconnectionDelay: 50 });
  t.after(() => socket.disconnect());
  const got: unknown[][] = [];
  socket.on("m", (...args: unknown[]) => got.push(args.slice(0, 1)));
  await new Promise<void>((resolve) => socket.on("connect", resolve));
  await socket.emitWithAck("join", "r1");
  // A live broadcast from B proves B's stream reader is running.
  await waitFor(async () => (b.io.to("r1").emit("m", "live"), got.some(([m]) => m === "live")), "a live broadcast from B");
  const id = socket.id;
  socket.io.engine.close();
  await waitFor(async () => !socket.connected, "the transport to close");
  b.io.to("r1").volatile.emit("m", "volatile");
  b.io.to("r1").emit("m", "missed");
  await waitFor(async () => socket.connected, "the reconnection");
  await waitFor(async () => got.some(([m]) => m === "missed"), "the missed event");
  assert.equal(socket.recovered, true);
  assert.equal(socket.id, id);
  assert.ok(!got.some(([m]) => m === "volatile"), "a volatile event is not replayed");
  assert.equal(got.filter(([m]) => m === "missed").length, 1);
});

/**
 * Subscribes to the private channel of `uid`, as a node with that uid does
 * before its first heartbeat: heartbeats from a uid with no subscriber
 * behind it are not counted (issue #14).
 */
async function subscribeAsNode(client: Awaited<ReturnType<typeof connectedClient>>, uid: string): Promise<() => Promise<void>> {
  const subscriber = client.duplicate();
  subscriber.on("error", () => undefined);
  await subscriber.connect();
  await subscriber.subscribe(`socket.io#/#${uid}#`, () => undefined);
  return async () => void subscriber.destroy();
}

/** Publishes a cluster message as another node of ours would (pub/sub, MessagePack). */
async function publishAsNode(client: Awaited<ReturnType<typeof connectedClient>>, message: object): Promise<void> {
  await client.sendCommand(["PUBLISH", "socket.io#/#", packMessage({ nsp: "/", ...message })]);
}

test("a node of ours dropped for silence is counted again by any message it sends, not only a heartbeat", async (t) => {
  const client = await connectedClient();
  const peer = await connectedClient();
  const io = new Server(createServer(), { adapter: createAdapter({ redis: client, workers: 1, heartbeatInterval: 100, heartbeatTimeout: 300 }) });
  t.after(async () => {
    await new Promise<void>((resolve) => io.close(() => resolve()));
    await client.quit();
    await peer.quit();
  });
  const adapter = io.of("/").adapter;
  await waitFor(async () => String(await peer.sendCommand(["PUBSUB", "NUMSUB", "socket.io#/#"])) === "socket.io#/#,1", "the adapter subscribed");
  t.after(await subscribeAsNode(peer, "busy-peer"));
  await publishAsNode(peer, { uid: "busy-peer", type: MessageType.HEARTBEAT });
  await waitFor(async () => (await adapter.serverCount()) === 2, "the peer counted");
  await waitFor(async () => (await adapter.serverCount()) === 1, "the silent peer dropped after heartbeatTimeout");
  // A busy node publishes often enough never to send a heartbeat.
  await publishAsNode(peer, { uid: "busy-peer", type: MessageType.SERVER_SIDE_EMIT, data: { packet: ["ping"] } });
  await waitFor(async () => (await adapter.serverCount()) === 2, "the peer counted again");
});

test("close() settles a fetchSockets still waiting for another node", async (t) => {
  const client = await connectedClient();
  const peer = await connectedClient();
  t.after(async () => {
    await client.quit();
    await peer.quit();
  });
  const io = new Server(createServer(), { adapter: createAdapter({ redis: client, workers: 1, heartbeatInterval: 100, heartbeatTimeout: 5000 }) });
  const adapter = io.of("/").adapter;
  await waitFor(async () => String(await peer.sendCommand(["PUBSUB", "NUMSUB", "socket.io#/#"])) === "socket.io#/#,1", "the adapter subscribed");
  // A peer that never answers.
  t.after(await subscribeAsNode(peer, "mute-peer"));
  await publishAsNode(peer, { uid: "mute-peer", type: MessageType.HEARTBEAT });
  await waitFor(async () => (await adapter.serverCount()) === 2, "the peer counted");
  const rejected = assert.rejects(io.fetchSockets(), /was closed before the other nodes answered/);
  await new Promise((resolve) => setTimeout(resolve, 50));
  await new Promise<void>((resolve) => io.close(() => resolve()));
  await rejected;
});

test("io.close() then io.attach(): the node links up again; broadcasts, fetchSockets and serverCount cross nodes as before", { timeout: 60_000 }, async () => {
  const clients = await Promise.all([connectedClient(), connectedClient()]);
  const options = { workers: 1, heartbeatInterval: 100, heartbeatTimeout: 1000 };
  const [httpA, httpB] = [createServer(), createServer()];
  const ioA = new Server(httpA, { adapter: createAdapter({ redis: clients[0], ...options }) });
  const ioB = new Server(httpB, { adapter: createAdapter({ redis: clients[1], ...options }) });
  for (const io of [ioA, ioB]) io.on("connection", (socket) => socket.join("room"));
  ioB.on("ping", (ack: (reply: string) => void) => ack("pong"));
  const listen = async (http: ReturnType<typeof createServer>) => {
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    return (http.address() as { port: number }).port;
  };
  await listen(httpB);
  await listen(httpA);
  await waitFor(async () => (await ioA.of("/").adapter.serverCount()) === 2 && (await ioB.of("/").adapter.serverCount()) === 2, "A and B see each other");
  assert.deepEqual(await ioA.serverSideEmitWithAck("ping"), ["pong"]);
  await ioA.close();

  const httpA2 = createServer();
  ioA.attach(httpA2);
  const port = await listen(httpA2);
  const socket = ioClient(`http://127.0.0.1:${port}`, { transports: ["websocket"], reconnection: false });
  const received: string[] = [];
  socket.on("news", (text: string) => received.push(text));
  await new Promise<void>((resolve, reject) => {
    socket.on("connect", () => resolve());
    socket.on("connect_error", reject);
  });
  try {
    await waitFor(async () => (await ioA.of("/").adapter.serverCount()) === 2 && (await ioB.of("/").adapter.serverCount()) === 2, "the reopened node counted again");
    await waitFor(async () => (await ioB.in("room").fetchSockets()).length === 1, "B fetches A's socket");
    ioB.to("room").emit("news", "from B");
    await waitFor(async () => received.length === 1, "B's broadcast reaches A's client");
    assert.deepEqual(received, ["from B"]);
    assert.deepEqual(await ioA.serverSideEmitWithAck("ping"), ["pong"]);
    // A sends nothing else now: only its heartbeats keep it counted by B past heartbeatTimeout.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal(await ioB.of("/").adapter.serverCount(), 2, "the reopened node heartbeats again");
  } finally {
    socket.disconnect();
    await ioA.close();
    await ioB.close();
    for (const client of clients) await client.quit();
  }
});
