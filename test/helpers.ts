/**
 * Test helpers: a real socket.io server on a loopback port and real
 * socket.io-client websocket connections to it.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Server, type ServerOptions, type Socket } from "socket.io";
import { Adapter } from "socket.io-adapter";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { createAdapter, ShardedAdapter, type ShardedAdapterOptions } from "../lib/index";
import { REPO_ROOT, serverSocketOf, settle, waitConnected } from "./client-helpers";

export { REPO_ROOT, serverSocketOf, settle, waitConnected };

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


/** Resolves with the arguments of the next `event` on `emitter`. */
export function once<T extends unknown[] = unknown[]>(
  emitter: { once(event: string, listener: (...args: T) => void): unknown },
  event: string,
): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (...args: T) => resolve(args)));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));


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


export { Adapter as InMemoryAdapter };

// ---------------------------------------------------------------------------
// Added for the end-to-end suites (test/e2e-*.test.ts).
// ---------------------------------------------------------------------------

/** One way of running the adapter under test: a kind plus the options it gets. */
export interface Variant {
  readonly name: string;
  readonly kind: AdapterKind;
  readonly adapterOptions: ShardedAdapterOptions;
  /** Whether every broadcast must go through the worker pool (offloadThreshold 0). */
  readonly workerPath: boolean;
}

/** socket.io's own in-memory adapter: the behavioural reference. */
export const IN_MEMORY: Variant = { name: "in-memory", kind: "in-memory", adapterOptions: {}, workerPath: false };

/**
 * The sharded adapter with its real defaults, with several shards on the
 * main-thread path, and on the worker path with 1, 2 and 3 workers.
 */
export const SHARDED_VARIANTS: readonly Variant[] = [
  { name: "sharded defaults", kind: "sharded", adapterOptions: {}, workerPath: false },
  { name: "sharded workers=3 main-thread path", kind: "sharded", adapterOptions: { workers: 3 }, workerPath: false },
  { name: "sharded workers=2 offloadThreshold=0", kind: "sharded", adapterOptions: { workers: 2, offloadThreshold: 0 }, workerPath: true },
  { name: "sharded workers=1 offloadThreshold=0", kind: "sharded", adapterOptions: { workers: 1, offloadThreshold: 0 }, workerPath: true },
  { name: "sharded workers=3 offloadThreshold=0", kind: "sharded", adapterOptions: { workers: 3, offloadThreshold: 0 }, workerPath: true },
];

/** The reference first, then every sharded variant. */
export const ALL_VARIANTS: readonly Variant[] = [IN_MEMORY, ...SHARDED_VARIANTS];

export function startVariant(variant: Variant, serverOptions: Partial<ServerOptions> = {}): Promise<TestServer> {
  return startServer(variant.kind, serverOptions, variant.adapterOptions);
}

/** Runs `body` with a fresh server of `variant`, and always closes it. */
export async function withServer<T>(
  variant: Variant,
  body: (server: TestServer) => Promise<T>,
  serverOptions: Partial<ServerOptions> = {},
): Promise<T> {
  const server = await startVariant(variant, serverOptions);
  try {
    return await body(server);
  } finally {
    await server.close();
  }
}

/** The namespace's adapter as a ShardedAdapter, or undefined for another adapter. */
export function shardedAdapterOf(io: Server, namespace = "/"): ShardedAdapter | undefined {
  const adapter = io.of(namespace).adapter;
  return adapter instanceof ShardedAdapter ? adapter : undefined;
}

/**
 * Asserts that the broadcasts so far took the path `variant` promises:
 * some went through the workers when offloadThreshold is 0, none otherwise.
 */
export function assertPathTaken(io: Server, variant: Variant, namespace = "/"): void {
  if (variant.kind !== "sharded") return;
  const adapter = shardedAdapterOf(io, namespace);
  assert.ok(adapter, `namespace ${namespace} should use the sharded adapter`);
  const { offloaded } = adapter.stats().pool;
  if (variant.workerPath) assert.ok(offloaded > 0, `expected broadcasts through the worker pool, stats: ${JSON.stringify(adapter.stats())}`);
  else assert.equal(offloaded, 0, "expected every broadcast to stay on the main thread");
}

/** Gives socket ids stable names (S0, S1, ...) so two runs can be compared. */
export class IdNames {
  private readonly names = new Map<string, string>();

  /** Registers ids in order: the first gets S0, and so on. */
  constructor(ids: Iterable<string> = []) {
    for (const id of ids) this.name(id);
  }

  name(id: string): string {
    let name = this.names.get(id);
    if (name === undefined) {
      name = `S${this.names.size}`;
      this.names.set(id, name);
    }
    return name;
  }

  /** A room: socket-id rooms become their socket's name, other rooms stay as they are (type included). */
  room(room: string | number): string | number {
    return typeof room === "string" && this.names.has(room) ? (this.names.get(room) as string) : room;
  }

  /** Replaces every known id inside a string (for util.inspect output). */
  text(value: string): string {
    let out = value;
    for (const [id, name] of this.names) out = out.split(id).join(name);
    return out;
  }
}

/**
 * Resolves once each client's engine.io transport on the server is writable
 * again (nothing in flight), so that a volatile packet is not dropped.
 */
export async function waitWritable(io: Server, clients: ClientSocket[], namespace = "/"): Promise<void> {
  for (const client of clients) {
    const conn = serverSocketOf(io, client, namespace).conn as unknown as {
      transport: { writable: boolean; once(event: string, listener: () => void): unknown };
    };
    while (!conn.transport.writable) {
      await new Promise<void>((resolve) => conn.transport.once("drain", resolve));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}

export interface ChildResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** True if the child did not exit by itself within the bound and was killed. */
  readonly killed: boolean;
}

/**
 * Runs `node args...` and resolves when it exits. A child still running after
 * `killAfterMs` is killed and reported as `killed` (a liveness bound, not a
 * timing measurement).
 */
export function runNode(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; killAfterMs?: number } = {}): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let killed = false;
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, options.killAfterMs ?? 30_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, killed });
    });
  });
}

/** Labels each client received for `recordReceipts`-style logs (first argument of each event). */
export function firstArgs(receipts: Map<ClientSocket, unknown[][]>, clients: ClientSocket[]): unknown[][] {
  return clients.map((client) => (receipts.get(client) ?? []).map((args) => args[0]));
}
