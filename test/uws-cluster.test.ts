/**
 * Two nodes linked through Redis, each socket.io on uWebSockets.js
 * (`io.attachApp`): a broadcast from one node reaches the other node's
 * clients (websocket and polling) once each, through that node's uWS topics.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createClient } from "redis";
import type { Socket } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { createAdapter, type ShardedClusterAdapter } from "../lib/index";
import { redisServerForFile, waitUntil } from "./cluster-helpers";
import { waitConnected } from "./helpers";
import { connectClient, startUwsServer, type AdapterOption, type UwsTestServer } from "./uws-helpers";

const redis = redisServerForFile();

test("uWS + Redis: another node's broadcasts are published to this node's topics, each client once", { timeout: 120_000 }, async (t) => {
  const nodes: UwsTestServer[] = [];
  const clients: ClientSocket[] = [];
  const redisClients: ReturnType<typeof createClient>[] = [];
  t.after(async () => {
    for (const client of clients) client.disconnect();
    for (const node of nodes) await node.close();
    for (const client of redisClients) client.destroy();
  });
  for (let i = 0; i < 2; i++) {
    const client = createClient({ url: redis.url });
    await client.connect();
    redisClients.push(client);
    const adapter = createAdapter({ redis: client, workers: 1, heartbeatInterval: 200, heartbeatTimeout: 2000 });
    nodes.push(await startUwsServer(adapter as unknown as AdapterOption));
  }
  const [sender, receiver] = nodes;
  receiver.io.on("connection", (socket: Socket) => {
    socket.join((socket.handshake.auth as { rooms: string[] }).rooms);
  });
  clients.push(
    connectClient(receiver.url, "websocket", { rooms: ["r1"] }),
    connectClient(receiver.url, "websocket", { rooms: ["r1", "r2"] }),
    connectClient(receiver.url, "polling", { rooms: ["r1"] }),
  );
  await Promise.all(clients.map((client) => waitConnected(client)));
  const got = clients.map(() => [] as unknown[]);
  clients.forEach((client, i) => client.on("e", (value: unknown) => got[i].push(value)));
  await waitUntil(async () => (await sender.io.of("/").adapter.serverCount()) === 2, { timeout: 20_000, message: "the nodes to see each other" });

  const receiverAdapter = receiver.io.of("/").adapter as unknown as ShardedClusterAdapter;
  const publishesBefore = receiverAdapter.stats().uws.publishes;
  sender.io.to("r1").emit("e", "room");
  sender.io.emit("e", "everyone");
  sender.io.to(["r1", "r2"]).emit("e", "union");
  sender.io.except("r2").emit("e", "except");
  const expected = [
    ["room", "everyone", "union", "except"],
    ["room", "everyone", "union"],
    ["room", "everyone", "union", "except"],
  ];
  await waitUntil(() => got.every((values, i) => values.length >= expected[i].length), {
    timeout: 30_000,
    message: () => `the broadcasts to arrive (got ${JSON.stringify(got)})`,
  });
  // Anything duplicated would arrive right behind: give it the time to.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(got, expected);
  assert.equal(receiverAdapter.stats().uws.publishes - publishesBefore, 4, "the receiving node published each broadcast once");
});
