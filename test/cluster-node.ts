/**
 * One node of the multi-process cluster tests: an http server and a
 * socket.io Server on a free loopback port, linked to the other nodes through
 * Redis by the adapter its config names. Started by test/cluster-helpers.ts
 * with `fork(dist/test/cluster-node.js, [JSON config])`; driven over IPC
 * (test/cluster-protocol.ts). Exits when the parent goes away.
 *
 * With an IPC kind it is a Node.js cluster worker instead, forked by
 * test/ipc-cluster-primary.ts with its config in the environment
 * (SIO_CLUSTER_NODE_CONFIG), linked to the other workers through the primary;
 * the test's requests reach it through the primary.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server, type Namespace, type Socket } from "socket.io";
import {
  EVENTS,
  decodeValue,
  encodeValue,
  isIpcKind,
  type NodeConfig,
  type NodeMessage,
  type RelayRequest,
  type Request,
  type RequestMessage,
  type Results,
  type ServerSideReceipt,
  type Target,
  type WireValue,
} from "./cluster-protocol";

const configArgument = process.env.SIO_CLUSTER_NODE_CONFIG ?? process.argv[2];
if (typeof process.send !== "function" || configArgument === undefined) {
  // Not a test: only test/cluster-helpers.ts starts it (and it must never fall
  // back to a default Redis on 6379).
  console.error("cluster-node: run by test/cluster-helpers.ts with fork(), with a JSON NodeConfig argument");
  process.exit(configArgument === undefined && typeof process.send !== "function" ? 0 : 1);
}
const config = JSON.parse(configArgument!) as NodeConfig;
const overIpc = isIpcKind(config.adapter);

function send(message: NodeMessage): void {
  if (process.connected) process.send!(message);
}

function log(message: string): void {
  send({ type: "log", name: config.name, message });
}

/** Minimal view of a Redis client that both libraries satisfy. */
interface RedisClientHandle {
  readonly client: unknown;
  close(): Promise<void>;
}

async function connectRedis(): Promise<RedisClientHandle> {
  if (overIpc) return { client: undefined, close: async () => undefined };
  if (config.redisUrl === undefined) throw new Error(`a ${config.adapter} node needs redisUrl`);
  let failing = false;
  const onError = (error: Error) => {
    // Reconnecting clients repeat the same error: report the first of a run.
    if (!failing) log(`redis client error: ${error.message}`);
    failing = true;
  };
  const onReady = () => {
    if (failing) log("redis client ready again");
    failing = false;
  };
  if (config.client === "ioredis" || config.client === "ioredis-no-offline-queue") {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Redis } = require("ioredis") as typeof import("ioredis");
    const client = new Redis(config.redisUrl, { lazyConnect: true, enableOfflineQueue: config.client === "ioredis" });
    client.on("error", onError);
    client.on("ready", onReady);
    await client.connect();
    return { client, close: async () => void client.disconnect() };
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createClient } = require("redis") as typeof import("redis");
  const client = createClient({ url: config.redisUrl });
  client.on("error", onError);
  client.on("ready", onReady);
  await client.connect();
  return { client, close: async () => void client.destroy() };
}

function adapterFor(redisClient: unknown): unknown {
  const { heartbeatInterval, heartbeatTimeout } = config;
  if (config.adapter === "official-ipc") {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const official = require("@socket.io/cluster-adapter") as typeof import("@socket.io/cluster-adapter");
    return official.createAdapter({ heartbeatInterval, heartbeatTimeout });
  }
  if (config.adapter === "sharded-ipc") {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sharded = require("../lib/index") as typeof import("../lib/index");
    return sharded.createAdapter({ cluster: true, workers: 1, heartbeatInterval, heartbeatTimeout });
  }
  if (config.adapter === "official") {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const official = require("@socket.io/redis-streams-adapter") as typeof import("@socket.io/redis-streams-adapter");
    return official.createAdapter(redisClient, { heartbeatInterval, heartbeatTimeout });
  }
  // The sharded adapter's Redis mode (issue #6). Loaded lazily so that the
  // official-only fleets do not depend on it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sharded = require("../lib/index") as typeof import("../lib/index");
  const options = { redis: redisClient, workers: 1, heartbeatInterval, heartbeatTimeout };
  return sharded.createAdapter(options as Parameters<typeof sharded.createAdapter>[0]);
}

/** `nsp.to(rooms).except(except)`, the starting point of every targeted operation. */
function operator(nsp: Namespace, target: Target) {
  return nsp.to([...(target.rooms ?? [])]).except([...(target.except ?? [])]);
}

async function main(): Promise<void> {
  const redis = await connectRedis();
  const http = createServer();
  const io = new Server(http, {
    adapter: adapterFor(redis.client) as never,
    ...(config.connectionStateRecovery ? { connectionStateRecovery: { ...config.connectionStateRecovery } } : {}),
  });
  const nsp = io.of("/");

  io.on("connection", (socket: Socket) => {
    const auth = socket.handshake.auth as { name?: unknown };
    socket.data = { node: config.name, client: typeof auth.name === "string" ? auth.name : null };
    socket.on(EVENTS.join, async (rooms: string[], ack?: () => void) => {
      await socket.join(rooms);
      if (typeof ack === "function") ack();
    });
    socket.on(EVENTS.leave, async (rooms: string[], ack?: () => void) => {
      for (const room of rooms) await socket.leave(room);
      if (typeof ack === "function") ack();
    });
    socket.on(EVENTS.relay, (relay: RelayRequest, ack?: () => void) => {
      socket.broadcast
        .to([...(relay.rooms ?? [])])
        .except([...(relay.except ?? [])])
        .emit(relay.event, ...relay.args.map(decodeValue));
      if (typeof ack === "function") ack();
    });
  });

  const serverSideReceived: ServerSideReceipt[] = [];
  nsp.on(EVENTS.serverSide, (...args: unknown[]) => {
    const last = args[args.length - 1];
    const withAck = typeof last === "function";
    const data = withAck ? args.slice(0, -1) : args;
    serverSideReceived.push({ event: EVENTS.serverSide, args: data.map(encodeValue), withAck });
    if (withAck) (last as (answer: unknown) => void)(config.name);
  });

  async function handle(request: Request): Promise<Results[keyof Results]> {
    switch (request.op) {
      case "broadcast": {
        let op = operator(nsp, request);
        if (request.flags?.volatile) op = op.volatile;
        if (request.flags?.local) op = op.local;
        if (request.flags?.compress !== undefined) op = op.compress(request.flags.compress);
        op.emit(request.event, ...request.args.map(decodeValue));
        return null;
      }
      case "emitWithAck": {
        try {
          const responses: unknown[] = await operator(nsp, request)
            .timeout(request.timeout)
            .emitWithAck(request.event, ...request.args.map(decodeValue));
          return { responses: responses.map(encodeValue) };
        } catch (error) {
          return { error: (error as Error).message };
        }
      }
      case "fetchSockets": {
        let op = operator(nsp, request);
        if (request.local) op = op.local;
        if (request.timeout !== undefined) op = op.timeout(request.timeout);
        const sockets = await op.fetchSockets();
        return sockets.map((socket) => ({ id: socket.id, rooms: [...socket.rooms], data: encodeValue(socket.data) }));
      }
      case "socketsJoin":
        operator(nsp, request).socketsJoin(request.join);
        return null;
      case "socketsLeave":
        operator(nsp, request).socketsLeave(request.leave);
        return null;
      case "disconnectSockets":
        operator(nsp, request).disconnectSockets(request.close ?? false);
        return null;
      case "serverSideEmit":
        nsp.serverSideEmit(request.event, ...request.args.map(decodeValue));
        return null;
      case "serverSideEmitWithAck":
        return new Promise((resolve) => {
          nsp.serverSideEmit(request.event, ...request.args.map(decodeValue), (error: Error | null, responses: unknown[]) => {
            const encoded = (responses ?? []).map(encodeValue);
            resolve(error ? { error: error.message, responses: encoded } : { responses: encoded });
          });
        });
      case "serverSideReceived": {
        const copy = [...serverSideReceived];
        if (request.clear) serverSideReceived.length = 0;
        return copy;
      }
      case "serverCount":
        return await nsp.adapter.serverCount();
      case "stats": {
        const adapter = nsp.adapter as unknown as { stats?: () => unknown };
        return typeof adapter.stats === "function" ? encodeValue(await adapter.stats()) : null;
      }
      case "ipcSend":
        process.send!(decodeValue(request.message) as object);
        return null;
      case "close":
        setImmediate(() => void shutdown(0));
        return null;
    }
  }

  let closing = false;
  async function shutdown(code: number): Promise<void> {
    if (closing) return;
    closing = true;
    // Some adapters keep blocking reads open for seconds: never wait for them.
    setTimeout(() => process.exit(code), 2000).unref();
    try {
      await io.close();
      await redis.close();
    } catch {
      // exiting anyway
    }
    process.exit(code);
  }

  process.on("message", (message: RequestMessage) => {
    // A cluster worker's channel also carries the adapters' and sticky sessions' messages.
    if (typeof message !== "object" || message === null || typeof message.id !== "number" || message.request === undefined) return;
    handle(message.request).then(
      (result) => send({ type: "reply", id: message.id, ok: true, result: result as WireValue }),
      (error: unknown) => send({ type: "reply", id: message.id, ok: false, error: error instanceof Error ? error.stack ?? error.message : String(error) }),
    );
  });
  // The parent died or closed the channel: never outlive it.
  process.on("disconnect", () => void shutdown(0));

  let port: number;
  if (config.stickyPort !== undefined) {
    // The primary accepts the connections and hands each one to a worker.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { setupWorker } = require("@socket.io/sticky") as typeof import("@socket.io/sticky");
    setupWorker(io);
    port = config.stickyPort;
  } else {
    // A cluster worker listening on port 0 would share one port through the primary: `exclusive` gives it its own.
    await new Promise<void>((resolve) => http.listen({ port: 0, host: "127.0.0.1", exclusive: true }, resolve));
    port = (http.address() as AddressInfo).port;
  }
  send({ type: "ready", name: config.name, port, pid: process.pid });
}

main().catch((error: unknown) => {
  log(`node failed to start: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
