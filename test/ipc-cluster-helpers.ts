/**
 * Harness of the Node.js cluster tests (issue #12): the test forks a primary
 * (test/ipc-cluster-primary.ts), which forks the workers (test/cluster-node.ts
 * with an IPC kind) and relays the test's requests to them. Each worker is a
 * {@link ClusterNode} of test/cluster-helpers.ts, reached through the primary,
 * so the Redis tests' Cluster, clients and fences work unchanged.
 */
import { fork, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { join } from "node:path";
import { Cluster, ClusterNode, connectClient, waitUntil, type NodeProcess, type TestClient } from "./cluster-helpers";
import type { PrimaryOptions } from "../lib/index";
import type { AdapterKind, NodeConfig, NodeMessage, RecoveryOptions, RequestMessage } from "./cluster-protocol";

/** Which setupPrimary() the primary runs. */
export type PrimaryKind = "sharded" | "official";

/** What the primary is started with (one JSON argument). */
export interface PrimaryConfig {
  readonly primary: PrimaryKind;
  /** Share one port with the workers through @socket.io/sticky. */
  readonly sticky: boolean;
  /** This package's setupPrimary() options. */
  readonly primaryOptions?: PrimaryOptions;
}

/** Test -> primary. */
export type PrimaryRequest =
  | { readonly kind: "fork"; readonly slot: number; readonly config: NodeConfig }
  | { readonly kind: "toNode"; readonly slot: number; readonly message: RequestMessage | object }
  | { readonly kind: "kill"; readonly slot: number; readonly signal: NodeJS.Signals }
  | { readonly kind: "stats"; readonly id: number };

/** Primary -> test. */
export type PrimaryReport =
  | { readonly kind: "ready"; readonly pid: number; readonly stickyPort: number | undefined }
  | { readonly kind: "fromNode"; readonly slot: number; readonly message: NodeMessage }
  | { readonly kind: "exit"; readonly slot: number; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  | { readonly kind: "stats"; readonly id: number; readonly stats: unknown };

const PRIMARY_SCRIPT = join(__dirname, "ipc-cluster-primary.js");

/** A worker as the test sees it: a NodeProcess whose messages go through the primary. */
class WorkerChannel extends EventEmitter implements NodeProcess {
  constructor(
    private readonly primary: IpcPrimary,
    readonly slot: number,
  ) {
    super();
  }

  send(message: RequestMessage | object): boolean {
    return this.primary.request({ kind: "toNode", slot: this.slot, message });
  }

  kill(signal: NodeJS.Signals): boolean {
    return this.primary.request({ kind: "kill", slot: this.slot, signal });
  }
}

/** What every worker of a test cluster is started with. */
interface WorkerSettings {
  readonly heartbeatInterval: number;
  readonly heartbeatTimeout: number;
  readonly connectionStateRecovery?: RecoveryOptions;
}

/** The primary process of one test cluster. */
export class IpcPrimary {
  stickyPort: number | undefined;
  private readonly channels = new Map<number, WorkerChannel>();
  private nextSlot = 0;
  private nextStatsId = 1;
  private readonly statsWaiting = new Map<number, (stats: unknown) => void>();
  readonly exited: Promise<void>;
  private readonly exitedSlots = new Set<number>();

  private constructor(
    readonly kind: PrimaryKind,
    readonly process: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => process.once("exit", () => resolve()));
    // A primary that is gone reports no more exits: its workers are gone for the test (no wait on them hangs).
    process.once("exit", (code, signal) => {
      for (const [slot, channel] of this.channels) if (!this.exitedSlots.has(slot)) channel.emit("exit", code, signal);
    });
    process.on("message", (report: PrimaryReport) => {
      switch (report.kind) {
        case "fromNode":
          this.channels.get(report.slot)?.emit("message", report.message);
          return;
        case "exit":
          this.exitedSlots.add(report.slot);
          this.channels.get(report.slot)?.emit("exit", report.code, report.signal);
          return;
        case "stats":
          this.statsWaiting.get(report.id)?.(report.stats);
          this.statsWaiting.delete(report.id);
          return;
      }
    });
  }

  static async start(config: PrimaryConfig): Promise<IpcPrimary> {
    const child = fork(PRIMARY_SCRIPT, [JSON.stringify(config)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const primary = new IpcPrimary(config.primary, child);
    const ready = await new Promise<Extract<PrimaryReport, { kind: "ready" }>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the cluster primary was not ready after 20 s")), 20_000);
      child.on("message", (report: PrimaryReport) => {
        if (report.kind !== "ready") return;
        clearTimeout(timer);
        resolve(report);
      });
      child.once("exit", (code) => reject(new Error(`the cluster primary exited (${code}) before it was ready`)));
    });
    primary.stickyPort = ready.stickyPort;
    return primary;
  }

  request(request: PrimaryRequest): boolean {
    if (!this.process.connected) return false;
    this.process.send(request);
    return true;
  }

  /** Forks a worker running `adapter` and waits until it is ready. */
  startWorker(name: string, adapter: AdapterKind, settings: WorkerSettings): Promise<ClusterNode> {
    const slot = this.nextSlot++;
    const config: NodeConfig = { name, adapter, client: "redis", ...settings, ...(this.stickyPort !== undefined ? { stickyPort: this.stickyPort } : {}) };
    return ClusterNode.start(config, (nodeConfig) => {
      const channel = new WorkerChannel(this, slot);
      this.channels.set(slot, channel);
      this.request({ kind: "fork", slot, config: nodeConfig });
      return channel;
    });
  }

  /** This package's primary's stats() (null under the official primary). */
  stats(): Promise<unknown> {
    const id = this.nextStatsId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no stats from the primary within 10 s")), 10_000);
      this.statsWaiting.set(id, (stats) => {
        clearTimeout(timer);
        resolve(stats);
      });
      this.request({ kind: "stats", id });
    });
  }

  /** Ends the primary (its workers with it). */
  async stop(): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      this.process.disconnect();
      const timer = setTimeout(() => this.process.kill("SIGKILL"), 5000);
      await this.exited;
      clearTimeout(timer);
    }
  }
}

export interface IpcClusterOptions {
  readonly primary: PrimaryKind;
  /** The adapter of each worker. */
  readonly workers: readonly AdapterKind[];
  /** One shared port through @socket.io/sticky, clients over HTTP long-polling. Default: false (a port per worker, websocket). */
  readonly sticky?: boolean;
  /** Clients per worker. Default 2. */
  readonly clientsPerWorker?: number;
  readonly heartbeatInterval?: number;
  readonly heartbeatTimeout?: number;
  /** This package's setupPrimary() options. */
  readonly primaryOptions?: PrimaryOptions;
  /** socket.io's `connectionStateRecovery` on every worker. Default: off. */
  readonly connectionStateRecovery?: RecoveryOptions;
}

/** A test cluster: its primary and the Cluster of its workers (nodes n0, n1...; clients n0c0...). */
export interface IpcCluster {
  readonly primary: IpcPrimary;
  readonly cluster: Cluster;
  /** Forks one more worker, connects `clients` clients to it, and waits until every worker counts it. */
  addWorker(adapter: AdapterKind, clients?: number): Promise<ClusterNode>;
  stop(): Promise<void>;
}

/** Starts a primary and its workers, connects the clients and waits until the cluster is formed. */
export async function startIpcCluster(options: IpcClusterOptions): Promise<IpcCluster> {
  const { clientsPerWorker = 2, heartbeatInterval = 200, heartbeatTimeout = 1500, sticky = false } = options;
  const heartbeat: WorkerSettings = { heartbeatInterval, heartbeatTimeout, ...(options.connectionStateRecovery ? { connectionStateRecovery: options.connectionStateRecovery } : {}) };
  const primary = await IpcPrimary.start({ primary: options.primary, sticky, primaryOptions: options.primaryOptions });
  const cluster = new Cluster(undefined, []);
  let workerCount = 0;
  const addWorker = async (adapter: AdapterKind, clients = clientsPerWorker): Promise<ClusterNode> => {
    const node = await primary.startWorker(`n${workerCount++}`, adapter, heartbeat);
    cluster.nodes.push(node);
    if (!sticky) await cluster.connect(node, clients);
    await cluster.waitFormed();
    return node;
  };
  const stop = async () => {
    await cluster.close();
    await primary.stop();
  };
  try {
    const started = await Promise.all(options.workers.map((adapter) => primary.startWorker(`n${workerCount++}`, adapter, heartbeat)));
    cluster.nodes.push(...started);
    if (sticky) {
      // Every client goes to the one port and the primary picks its worker.
      cluster.connector = connectThroughSticky;
      for (let k = 0; k < clientsPerWorker * started.length; k++) await cluster.connect(started[k % started.length]!, 1);
    } else {
      for (const node of started) await cluster.connect(node, clientsPerWorker);
    }
    await cluster.waitFormed();
    return { primary, cluster, addWorker, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Connects a polling client through @socket.io/sticky until it lands on
 * `node` (the primary picks the worker: round-robin, so within a few tries).
 * A try may also fail outright: sticky binds a session to its worker when
 * the worker's IPC message reaches the primary, and the client's second
 * request can arrive first (then another worker answers "Session ID unknown").
 */
async function connectThroughSticky(node: ClusterNode, name: string): Promise<TestClient> {
  let lastProblem = "";
  for (let attempt = 0; attempt < 20; attempt++) {
    let client: TestClient;
    try {
      client = await connectClient(node, name, "polling");
    } catch (error) {
      lastProblem = (error as Error).message;
      continue;
    }
    const local = await node.request({ op: "fetchSockets", local: true });
    if (local.some((socket) => socket.id === client.id)) return client;
    lastProblem = "placed on another worker";
    client.disconnect();
  }
  throw new Error(`client ${name}: not connected to ${node.label} through sticky sessions in 20 tries (last: ${lastProblem})`);
}

/** Waits until `node`'s serverCount is `expected`. */
export async function waitServerCount(node: ClusterNode, expected: number, timeout = 15_000): Promise<number> {
  let count = 0;
  const started = Date.now();
  await waitUntil(
    async () => {
      count = await node.serverCount();
      return count === expected;
    },
    { timeout, interval: 50, message: () => `serverCount ${expected} on ${node.label} (got ${count})` },
  );
  return Date.now() - started;
}
