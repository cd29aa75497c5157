/**
 * Test helpers: a real socket.io server on a loopback port and real
 * socket.io-client websocket connections to it.
 */
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server, type ServerOptions, type Socket } from "socket.io";
import { Adapter } from "socket.io-adapter";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { createAdapter, type ShardedAdapterOptions } from "../lib/index";

export type AdapterKind = "sharded" | "in-memory";
export const ADAPTER_KINDS: readonly AdapterKind[] = ["sharded", "in-memory"];

export interface TestServer {
  readonly io: Server;
  readonly http: HttpServer;
  readonly port: number;
  /** Connects `count` websocket clients to `namespace` and waits until all are connected. */
  connect(count: number, namespace?: string, options?: Parameters<typeof connect>[1]): Promise<ClientSocket[]>;
  /** Closes every client, then the server. */
  close(): Promise<void>;
}

/**
 * Starts a socket.io server on 127.0.0.1 with the sharded adapter (default)
 * or socket.io's in-memory adapter.
 */
export async function startServer(
  kind: AdapterKind = "sharded",
  serverOptions: Partial<ServerOptions> = {},
  adapterOptions: ShardedAdapterOptions = { workers: 2 },
): Promise<TestServer> {
  const http = createServer();
  const adapter = kind === "sharded" ? createAdapter(adapterOptions) : undefined;
  const io = new Server(http, { ...serverOptions, ...(adapter ? { adapter } : {}) });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const port = (http.address() as AddressInfo).port;
  const clients: ClientSocket[] = [];
  return {
    io,
    http,
    port,
    async connect(count, namespace = "/", options = {}) {
      const batch = Array.from({ length: count }, () =>
        connect(`http://127.0.0.1:${port}${namespace}`, {
          transports: ["websocket"],
          forceNew: true,
          reconnection: false,
          ...options,
        }),
      );
      clients.push(...batch);
      await Promise.all(batch.map((client) => waitConnected(client)));
      return batch;
    },
    async close() {
      for (const client of clients) client.disconnect();
      await io.close();
    },
  };
}

export function waitConnected(client: ClientSocket): Promise<void> {
  if (client.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("connect_error", reject);
  });
}

/** Resolves with the arguments of the next `event` on `emitter`. */
export function once<T extends unknown[] = unknown[]>(
  emitter: { once(event: string, listener: (...args: T) => void): unknown },
  event: string,
): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (...args: T) => resolve(args)));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Server-side socket of a connected client. */
export function serverSocketOf(io: Server, client: ClientSocket, namespace = "/"): Socket {
  const socket = io.of(namespace).sockets.get(client.id as string);
  if (!socket) throw new Error(`no server socket for client ${client.id}`);
  return socket;
}

/**
 * Records every `event` each client receives, so a test can emit, then
 * `settle()` and compare who got what.
 */
export function recordReceipts(clients: ClientSocket[], event: string): Map<ClientSocket, unknown[][]> {
  const receipts = new Map<ClientSocket, unknown[][]>();
  for (const client of clients) {
    receipts.set(client, []);
    client.on(event, (...args: unknown[]) => receipts.get(client)!.push(args));
  }
  return receipts;
}

/**
 * Waits until the server's pending writes have reached every client: a ping
 * event round-trips through each client after everything sent before it.
 */
export async function settle(io: Server, clients: ClientSocket[], namespace = "/"): Promise<void> {
  await Promise.all(
    clients.map(
      (client) =>
        new Promise<void>((resolve) => {
          client.once("__settle", () => resolve());
          serverSocketOf(io, client, namespace).emit("__settle");
        }),
    ),
  );
}

export { Adapter as InMemoryAdapter };
