/**
 * Multi-process harness for the Redis cluster tests (issue #6): N node
 * processes (test/cluster-node.ts), each with its own adapter and Redis client
 * library, and socket.io-client websocket clients on each node, recording
 * everything they receive.
 *
 * Exact-delivery checks rely on a fence: after the operation under test, the
 * origin node broadcasts a fence token to every client, and the check waits
 * until every connected client has it. Messages from one node reach the others
 * in the order it sent them, so whatever the operation delivered is in by then.
 */
import assert from "node:assert/strict";
import { fork } from "node:child_process";
import { join } from "node:path";
import { after, before } from "node:test";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import {
  encodeValue,
  type AdapterKind,
  type NodeConfig,
  type NodeMessage,
  type Op,
  type RecoveryOptions,
  type RedisClientKind,
  type Request,
  type RequestMessage,
  type Results,
  type WireValue,
} from "./cluster-protocol";
import { startRedisServer, type RedisServer } from "./redis-server";

export type { AdapterKind, RecoveryOptions, RedisClientKind } from "./cluster-protocol";

export interface NodeSpec {
  readonly adapter: AdapterKind;
  /** Redis client library; default `redis` (node-redis). */
  readonly client?: RedisClientKind;
}

export const OFFICIAL: NodeSpec = { adapter: "official" };
export const SHARDED: NodeSpec = { adapter: "sharded" };

/**
 * The test file's redis-server: started before its tests, stopped after them.
 * Call at the top level of the file; the object returned stands for the
 * running server (its url, port and methods reach it once started).
 */
export function redisServerForFile(): RedisServer {
  let server: RedisServer | undefined;
  before(async () => {
    server = await startRedisServer();
  });
  after(async () => {
    await server?.stop();
  });
  const running = (): RedisServer => {
    if (server === undefined) throw new Error("the test file's redis-server starts in before(): use it from a hook or a test");
    return server;
  };
  return {
    get url() {
      return running().url;
    },
    get port() {
      return running().port;
    },
    get pid() {
      return running().pid;
    },
    stop: (signal) => running().stop(signal),
    restart: (signal) => running().restart(signal),
    waitReady: (timeoutMs) => running().waitReady(timeoutMs),
  };
}

export interface ClusterOptions {
  readonly redis: RedisServer;
  readonly nodes: readonly NodeSpec[];
  /** Clients connected to each node at start. Default 2. */
  readonly clientsPerNode?: number;
  /** Default 200 ms. */
  readonly heartbeatInterval?: number;
  /** Default 1000 ms. */
  readonly heartbeatTimeout?: number;
  /** socket.io's `connectionStateRecovery` on every node. Default: off. */
  readonly connectionStateRecovery?: RecoveryOptions;
}

const NODE_SCRIPT = join(__dirname, "cluster-node.js");
const REQUEST_TIMEOUT_MS = 20_000;
const START_TIMEOUT_MS = 20_000;

export const FENCE_EVENT = "__fence";

export interface WaitOptions {
  readonly timeout?: number;
  readonly interval?: number;
  readonly message?: string | (() => string);
}

/** Polls `condition` until it is true; rejects with `message` after `timeout` ms (default 10 s). */
export async function waitUntil(condition: () => boolean | Promise<boolean>, options: WaitOptions = {}): Promise<void> {
  const { timeout = 10_000, interval = 10 } = options;
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) {
      const message = typeof options.message === "function" ? options.message() : options.message;
      throw new Error(`timed out after ${timeout} ms waiting for ${message ?? "a condition"}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

let uniqueCounter = 0;
/** A name no other test of this process uses. */
export function unique(prefix: string): string {
  return `${prefix}-${process.pid}-${++uniqueCounter}`;
}

/**
 * The channel to a node process: a child process forked by the test, or a
 * cluster worker reached through its primary (test/ipc-cluster-helpers.ts).
 */
export interface NodeProcess {
  send(message: RequestMessage): unknown;
  kill(signal: NodeJS.Signals): unknown;
  on(event: "message", listener: (message: NodeMessage) => void): unknown;
  off(event: "message", listener: (message: NodeMessage) => void): unknown;
  once(event: "exit", listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
}

/** Starts a node for the test: a child process of the test (the Redis nodes). */
function forkNode(config: NodeConfig): NodeProcess {
  return fork(NODE_SCRIPT, [JSON.stringify(config)], { stdio: ["ignore", "inherit", "inherit", "ipc"] }) as unknown as NodeProcess;
}

/** One node process. */
export class ClusterNode {
  port = 0;
  pid = 0;
  alive = true;
  readonly exited: Promise<void>;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void; op: Op }>();

  private constructor(
    readonly name: string,
    readonly spec: Required<NodeSpec>,
    readonly process: NodeProcess,
  ) {
    this.exited = new Promise((resolve) => {
      process.once("exit", (code, signal) => {
        this.alive = false;
        for (const { reject, op } of this.pending.values()) reject(new Error(`node ${name} exited (${signal ?? code}) during ${op}`));
        this.pending.clear();
        resolve();
      });
    });
    process.on("message", (message: NodeMessage) => {
      if (message.type === "log") console.log(`# [${message.name}] ${message.message}`);
      if (message.type !== "reply") return;
      const entry = this.pending.get(message.id);
      if (!entry) return;
      this.pending.delete(message.id);
      if (message.ok) entry.resolve(message.result);
      else entry.reject(new Error(`node ${name}, ${entry.op}: ${message.error}`));
    });
  }

  /** Starts a node (by default a child process of the test) and waits for its `ready` message. */
  static async start(config: NodeConfig, launch: (config: NodeConfig) => NodeProcess = forkNode): Promise<ClusterNode> {
    const child = launch(config);
    const node = new ClusterNode(config.name, { adapter: config.adapter, client: config.client }, child);
    let timer: NodeJS.Timeout | undefined;
    const ready = await Promise.race([
      new Promise<Extract<NodeMessage, { type: "ready" }>>((resolve) => {
        const onMessage = (message: NodeMessage) => {
          if (message.type !== "ready") return;
          child.off("message", onMessage);
          resolve(message);
        };
        child.on("message", onMessage);
      }),
      node.exited.then(() => {
        throw new Error(`node ${config.name} (${config.adapter}, ${config.client}) exited before it was ready`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`node ${config.name} not ready after ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      }),
    ])
      .catch(async (error: unknown) => {
        await node.kill();
        throw error;
      })
      .finally(() => clearTimeout(timer));
    node.port = ready.port;
    node.pid = ready.pid;
    return node;
  }

  get label(): string {
    return `${this.name} (${this.spec.adapter}/${this.spec.client})`;
  }

  /** Sends one request and resolves with its result. */
  request<O extends Op>(request: Extract<Request, { op: O }>, timeout = REQUEST_TIMEOUT_MS): Promise<Results[O]> {
    if (!this.alive) return Promise.reject(new Error(`node ${this.name} is not running`));
    const id = this.nextId++;
    return new Promise<Results[O]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`node ${this.name}: no reply to ${request.op} within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as Results[O]);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
        op: request.op,
      });
      const message: RequestMessage = { id, request };
      this.process.send(message);
    });
  }

  serverCount(): Promise<number> {
    return this.request({ op: "serverCount" });
  }

  /** SIGKILL, and waits until the process is gone. */
  async kill(): Promise<void> {
    if (this.alive) this.process.kill("SIGKILL");
    await this.exited;
  }

  /** Asks the node to close its server and Redis clients; SIGKILL after 3 s. */
  async close(): Promise<void> {
    if (!this.alive) return;
    this.request({ op: "close" }, 3000).catch(() => undefined);
    const timer = setTimeout(() => this.process.kill("SIGKILL"), 3000);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface Receipt {
  readonly event: string;
  readonly args: WireValue[];
}

/** What socket.io-client keeps of a session for connection state recovery (private fields of its Socket). */
interface ClientSessionInternals {
  /** The private session id the server gave in its CONNECT packet (only with connection state recovery). */
  _pid?: string;
  /** The offset of the last event received (the last argument of each recoverable event). */
  _lastOffset?: string;
}

/** The session a client would recover: what socket.io-client sends as `auth.pid` and `auth.offset` on reconnection. */
export interface ClientSession {
  readonly pid: string;
  readonly offset: string;
}

/** How clients reach the nodes: websocket (default), or HTTP long-polling (behind sticky sessions). */
export type ClientTransport = "websocket" | "polling";

/** A new client socket to `node` (no automatic reconnection). */
function clientSocket(node: ClusterNode, name: string, autoConnect: boolean, transport: ClientTransport = "websocket"): ClientSocket {
  return connect(`http://127.0.0.1:${node.port}`, {
    transports: [transport],
    forceNew: true,
    reconnection: false,
    autoConnect,
    auth: { name },
  });
}

/** Resolves when `socket` connects, rejects on a connect_error or after 10 s. */
function connected(socket: ClientSocket, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
    };
    const onConnect = () => {
      done();
      resolve();
    };
    const onError = (error: Error) => {
      done();
      reject(error);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what}: not connected after 10 s`));
    }, 10_000);
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
  });
}

/**
 * A socket.io-client websocket client connected to one node, recording what it
 * receives. With connection state recovery on, it can lose its transport and
 * reconnect, to the same node or to another one ({@link reconnect}); what it
 * receives over all its connections is recorded in one list.
 */
export class TestClient {
  readonly received: Receipt[] = [];
  disconnectReason: string | undefined;
  private currentNode: ClusterNode;
  private currentSocket: ClientSocket;

  constructor(
    readonly name: string,
    node: ClusterNode,
    socket: ClientSocket,
  ) {
    this.currentNode = node;
    this.currentSocket = socket;
    this.listen(socket);
  }

  /** The node it is (or was last) connected to. */
  get node(): ClusterNode {
    return this.currentNode;
  }

  get socket(): ClientSocket {
    return this.currentSocket;
  }

  private listen(socket: ClientSocket): void {
    const name = this.name;
    socket.onAny((event: string, ...args: unknown[]) => {
      const last = args[args.length - 1];
      const ack = typeof last === "function" ? (last as (answer: unknown) => void) : undefined;
      const data = ack ? args.slice(0, -1) : args;
      this.received.push({ event, args: data.map(encodeValue) });
      // Every client answers acks with its name, unless the first argument
      // is `{ silent: [names] }` and lists it.
      if (ack) {
        const first = data[0] as { silent?: unknown } | undefined;
        const silent = first && typeof first === "object" && Array.isArray(first.silent) && first.silent.includes(name);
        if (!silent) ack(name);
      }
    });
    socket.on("disconnect", (reason) => {
      this.disconnectReason = reason;
    });
  }

  get id(): string {
    return this.socket.id as string;
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  /** Whether its last connection recovered the previous session (socket.io-client's `socket.recovered`). */
  get recovered(): boolean {
    return Boolean(this.socket.recovered);
  }

  /** The session socket.io-client would recover on reconnection (connection state recovery must be on, and an event received). */
  get session(): ClientSession {
    const { _pid: pid, _lastOffset: offset } = this.socket as unknown as ClientSessionInternals;
    if (typeof pid !== "string" || typeof offset !== "string") throw new Error(`client ${this.name} has no session to recover (pid ${pid}, offset ${offset})`);
    return { pid, offset };
  }

  /**
   * Closes its transport (`socket.io.engine.close()`): the server sees a
   * "transport close", a disconnection after which it keeps the session when
   * connection state recovery is on. Resolves once the client saw the disconnection.
   */
  async closeTransport(): Promise<void> {
    const socket = this.socket;
    const disconnected = new Promise<void>((resolve) => socket.once("disconnect", () => resolve()));
    socket.io.engine.close();
    await disconnected;
  }

  /**
   * Connects again after {@link closeTransport}, with the session of the last
   * connection, and resolves once connected. To its node: through the same
   * socket.io-client Manager, as the client does when it reconnects on its
   * own. To another node: through a new Manager whose socket carries the
   * previous `_pid` and `_lastOffset`, so that its CONNECT packet is the one
   * socket.io-client sends on reconnection (`auth` plus `{ pid, offset }`), and
   * `socket.recovered` tells whether the server restored that session.
   */
  async reconnect(node: ClusterNode = this.node): Promise<void> {
    if (this.connected) throw new Error(`client ${this.name} is still connected`);
    if (node === this.node) {
      const ready = connected(this.socket, `client ${this.name} reconnecting to ${node.label}`);
      this.socket.connect();
      await ready;
      return;
    }
    const { pid, offset } = this.session;
    const socket = clientSocket(node, this.name, false);
    Object.assign(socket as unknown as ClientSessionInternals, { _pid: pid, _lastOffset: offset });
    // The old socket is done: close its Manager.
    this.socket.disconnect();
    this.currentSocket = socket;
    this.currentNode = node;
    this.listen(socket);
    const ready = connected(socket, `client ${this.name} reconnecting to ${node.label}`);
    socket.connect();
    await ready;
  }

  /** How many times `event` arrived with `tag` as its first argument (or at all, without `tag`). */
  count(event: string, tag?: WireValue): number {
    return this.received.filter((receipt) => receipt.event === event && (tag === undefined || isDeepStrictEqual(receipt.args[0], tag))).length;
  }

  /** The receipts of `event` with `tag` as first argument. */
  receipts(event: string, tag?: WireValue): Receipt[] {
    return this.received.filter((receipt) => receipt.event === event && (tag === undefined || isDeepStrictEqual(receipt.args[0], tag)));
  }

  async join(...rooms: string[]): Promise<void> {
    await this.socket.timeout(5000).emitWithAck("join", rooms);
  }

  async leave(...rooms: string[]): Promise<void> {
    await this.socket.timeout(5000).emitWithAck("leave", rooms);
  }

  /** Asks its node to `socket.broadcast.to(rooms).except(except).emit(event, ...args)` for this client's socket. */
  async relay(event: string, args: WireValue[], target: { rooms?: string[]; except?: string[] } = {}): Promise<void> {
    await this.socket.timeout(5000).emitWithAck("relay", { event, args, ...target });
  }

  disconnect(): void {
    this.socket.disconnect();
  }
}

function isDeepStrictEqual(a: unknown, b: unknown): boolean {
  try {
    assert.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

/** Connects one client named `name` to `node` (over websocket unless told) and waits until it is connected. */
export async function connectClient(node: ClusterNode, name: string, transport?: ClientTransport): Promise<TestClient> {
  const socket = clientSocket(node, name, false, transport);
  const client = new TestClient(name, node, socket);
  const ready = connected(socket, `client ${name} connecting to ${node.label}`);
  socket.connect();
  await ready;
  return client;
}

/** N nodes, their clients, and the helpers the tests share. */
export class Cluster {
  readonly clients: TestClient[] = [];
  /** How {@link connect} connects one client to a node (behind sticky sessions: see test/ipc-cluster-helpers.ts). */
  connector: (node: ClusterNode, name: string) => Promise<TestClient> = (node, name) => connectClient(node, name);

  constructor(
    /** The Redis server linking the nodes (none for cluster workers linked over IPC). */
    readonly redis: RedisServer | undefined,
    readonly nodes: ClusterNode[],
  ) {}

  get liveNodes(): ClusterNode[] {
    return this.nodes.filter((node) => node.alive);
  }

  /** Clients still connected. */
  get connectedClients(): TestClient[] {
    return this.clients.filter((client) => client.connected);
  }

  clientsOf(node: ClusterNode): TestClient[] {
    return this.clients.filter((client) => client.node === node);
  }

  client(name: string): TestClient {
    const client = this.clients.find((candidate) => candidate.name === name);
    if (!client) throw new Error(`no client named ${name}`);
    return client;
  }

  /** Connects `count` more clients to `node`, named `<node>c<i>` unless `prefix` is given. */
  async connect(node: ClusterNode, count: number, prefix = `${node.name}c`): Promise<TestClient[]> {
    const start = this.clients.filter((client) => client.name.startsWith(prefix)).length;
    const batch = await Promise.all(Array.from({ length: count }, (_, i) => this.connector(node, `${prefix}${start + i}`)));
    this.clients.push(...batch);
    return batch;
  }

  /** serverCount() of every live node. */
  async serverCounts(): Promise<number[]> {
    return Promise.all(this.liveNodes.map((node) => node.serverCount()));
  }

  /**
   * Waits until the live nodes see each other: serverCount equals their number
   * on each, and a broadcast from each reaches every connected client (the
   * official adapter only reads stream entries added after its first XREAD).
   */
  async waitFormed(timeout = 15_000): Promise<void> {
    const expected = this.liveNodes.length;
    let counts: number[] = [];
    await waitUntil(
      async () => {
        counts = await this.serverCounts();
        return counts.every((count) => count === expected);
      },
      { timeout, interval: 25, message: () => `serverCount ${expected} on every node (got ${counts.join(", ")})` },
    );
    for (const node of this.liveNodes) await this.fence(node, { timeout, resend: 250 });
  }

  /**
   * Broadcasts a fence token from `origin` to everyone and waits until every
   * connected client has it. With `resend`, sends a new token every `resend`
   * ms until one gets through everywhere (for when the cluster may still be
   * forming or reconnecting). Resolves with the time it took.
   */
  async fence(origin: ClusterNode, options: { timeout?: number; resend?: number } = {}): Promise<number> {
    const started = Date.now();
    const { timeout = 10_000, resend } = options;
    const tokens: string[] = [];
    const send = async () => {
      const token = unique(`fence-${origin.name}`);
      tokens.push(token);
      await origin.request({ op: "broadcast", event: FENCE_EVENT, args: [token] });
    };
    await send();
    let lastSent = Date.now();
    const missing = () =>
      this.connectedClients.filter((client) => !tokens.some((token) => client.count(FENCE_EVENT, token) > 0)).map((client) => client.name);
    const everyoneHasOne = () => this.connectedClients.every((client) => tokens.some((token) => client.count(FENCE_EVENT, token) > 0));
    const everyoneHasSameOne = () => tokens.some((token) => this.connectedClients.every((client) => client.count(FENCE_EVENT, token) > 0));
    await waitUntil(
      async () => {
        if (resend === undefined ? everyoneHasOne() : everyoneHasSameOne()) return true;
        if (resend !== undefined && Date.now() - lastSent >= resend) {
          await send();
          lastSent = Date.now();
        }
        return false;
      },
      { timeout, interval: 5, message: () => `fence from ${origin.label} to reach ${missing().join(", ")}` },
    );
    return Date.now() - started;
  }

  /**
   * After a fence from `origin`: asserts that each client in `expected` got
   * exactly one `event` tagged `tag`, and no other connected client got any.
   */
  async expectDelivered(origin: ClusterNode, event: string, tag: WireValue, expected: readonly TestClient[], what = event): Promise<void> {
    // The expected ones first (faster failure message when one is missing), then the fence.
    await waitUntil(() => expected.every((client) => client.count(event, tag) > 0 || !client.connected), {
      timeout: 10_000,
      message: () => `${what} to reach ${expected.filter((client) => client.count(event, tag) === 0).map((c) => c.name).join(", ")}`,
    });
    await this.fence(origin);
    const actual: Record<string, number> = {};
    const wanted: Record<string, number> = {};
    for (const client of this.clients) {
      if (!client.connected && !expected.includes(client)) continue;
      const count = client.count(event, tag);
      if (count > 0) actual[client.name] = count;
    }
    for (const client of expected) wanted[client.name] = 1;
    assert.deepEqual(actual, wanted, `${what}: deliveries per client (from ${origin.label})`);
  }

  /** Closes every client, then every node (in parallel). */
  async close(): Promise<void> {
    for (const client of this.clients) client.disconnect();
    await Promise.all(this.nodes.map((node) => node.close()));
  }
}

/**
 * Starts the nodes (in parallel), connects `clientsPerNode` clients to each,
 * and waits until the cluster is formed. Nodes are named n0, n1...; clients
 * n0c0, n0c1... On failure everything started is stopped again.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const { redis, clientsPerNode = 2, heartbeatInterval = 200, heartbeatTimeout = 1000, connectionStateRecovery } = options;
  const started = await Promise.allSettled(
    options.nodes.map((spec, i) =>
      ClusterNode.start({
        name: `n${i}`,
        adapter: spec.adapter,
        client: spec.client ?? "redis",
        redisUrl: redis.url,
        heartbeatInterval,
        heartbeatTimeout,
        ...(connectionStateRecovery ? { connectionStateRecovery } : {}),
      }),
    ),
  );
  const nodes = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  const cluster = new Cluster(redis, nodes);
  try {
    const failure = started.find((result) => result.status === "rejected");
    if (failure) throw (failure as PromiseRejectedResult).reason;
    for (const node of nodes) await cluster.connect(node, clientsPerNode);
    await cluster.waitFormed();
    return cluster;
  } catch (error) {
    await cluster.close();
    throw error;
  }
}

/** A short label for a fleet, e.g. `sharded+official+sharded (ioredis)`. */
export function fleetName(nodes: readonly NodeSpec[]): string {
  const kinds = nodes.map((node) => node.adapter + (node.client !== undefined && node.client !== "redis" ? `/${node.client}` : ""));
  return kinds.join(" + ");
}

/** The sorted names of `clients`. */
export function names(clients: readonly { name: string }[]): string[] {
  return clients.map((client) => client.name).sort();
}
