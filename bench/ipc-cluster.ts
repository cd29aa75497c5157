/**
 * Node.js cluster mode (issue #12): socket.io workers linked through the
 * primary over IPC. Two parts, each kind measured in turn, alternating the
 * order round by round (A B, then B A):
 *
 * - storm: the end-to-end storm of bench/e2e.ts (same workload, schedule and
 *   clients, in a process of their own) against one server process with our
 *   adapter (`createAdapter({ workers })`, as the e2e part) and against a
 *   cluster of `stormWorkers` workers behind this package's primary, each a
 *   server with `createAdapter({ cluster: true, workers: 1 })` on a port of
 *   its own, client i on worker i % workers, each worker sending its share of
 *   the storm (every other emit; the single-socket emits by the worker of
 *   their socket). Reported: deliveries per second, latency p50/p99.
 *
 * - locality (socket.io issue #5226): `workers` workers, each with
 *   `roomsPerWorker` rooms of `clientsPerRoom` clients all connected to it;
 *   every worker broadcasts to random rooms of the other workers (the plan of
 *   bench/cluster.ts). @socket.io/cluster-adapter (its primary and workers)
 *   against ours (our primary, which sends a broadcast only to the workers
 *   holding its rooms). Reported per worker: adapter messages received over
 *   IPC and main-thread CPU, the primary's CPU, and whether every targeted
 *   client got its message exactly once.
 */
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { payloadOf, roomName, roomsPlan, type Plan } from "./cluster";
import type { ClusterClientsArgs, RoomsCheck } from "./cluster-node";
import { Child, clientsReport, e2eWorkload, type ClientArgs, type ClientReport, type E2EConfig, type ServerArgs, type ServerStorm } from "./e2e";
import { IPC_KINDS, type ClusterStorm, type IpcClusterSample, type IpcKind, type IpcPrimaryArgs, type IpcPrimaryCommand } from "./ipc-cluster-node";
import { median, mean } from "./stats";

export type StormKind = "process" | "cluster";
const STORM_KINDS: readonly StormKind[] = ["process", "cluster"];

export interface IpcClusterConfig {
  readonly rounds: number;
  readonly seed: number;
  /** Long, so that heartbeats add next to no IPC messages while measuring. */
  readonly heartbeatInterval: number;
  readonly heartbeatTimeout: number;
  readonly storm: { readonly e2e: E2EConfig; readonly workers: number };
  readonly locality: {
    readonly workers: number;
    readonly roomsPerWorker: number;
    readonly clientsPerRoom: number;
    readonly broadcasts: number;
    readonly warmupBroadcasts: number;
    readonly perTurn: number;
    readonly payloadBytes: number;
  };
}

export function ipcClusterDefaults(quick: boolean, e2e: E2EConfig): IpcClusterConfig {
  return {
    rounds: quick ? 1 : 2,
    seed: 1,
    heartbeatInterval: 60_000,
    heartbeatTimeout: 120_000,
    storm: { e2e: { ...e2e, rounds: quick ? 1 : 2 }, workers: 2 },
    locality: { workers: 4, roomsPerWorker: quick ? 30 : 100, clientsPerRoom: 2, broadcasts: quick ? 500 : 2000, warmupBroadcasts: quick ? 150 : 500, perTurn: 20, payloadBytes: 200 },
  };
}

export interface IpcStormRound {
  readonly kind: StormKind;
  readonly round: number;
  readonly server: ServerStorm;
  readonly primaryCpuMs: number;
  readonly clients: ClientReport;
  readonly deliveredPerSecond: number;
}

export interface IpcStormSummary {
  readonly deliveredPerSecond: number;
  readonly deliveredFraction: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  /** Main-thread CPU of the server(s), summed over the workers, ms per second of storm. */
  readonly mainCpuMsPerSecond: number;
  readonly primaryCpuMsPerSecond: number;
}

export interface LocalityWorkerResult {
  readonly name: string;
  /** Adapter messages the primary sent it during the phase. */
  readonly ipcReceived: number;
  readonly mainCpuMs: number;
}

export interface LocalityRound {
  readonly kind: IpcKind;
  readonly round: number;
  readonly broadcasts: number;
  readonly seconds: number;
  readonly workers: LocalityWorkerResult[];
  readonly primaryCpuMs: number;
  readonly check: Omit<RoomsCheck, "type">;
  readonly exact: boolean;
}

export interface LocalitySummary {
  /** Means over the workers of the medians over the rounds, per 1000 broadcasts of the cluster. */
  readonly ipcReceivedPerWorkerPer1000: number;
  readonly mainCpuMsPerWorkerPer1000: number;
  readonly primaryCpuMsPer1000: number;
  readonly exact: boolean;
}

export interface IpcClusterResult {
  readonly config: IpcClusterConfig;
  readonly storm: { readonly rounds: IpcStormRound[]; readonly summary: Record<StormKind, IpcStormSummary> };
  readonly locality: { readonly rounds: LocalityRound[]; readonly summary: Record<IpcKind, LocalitySummary> };
  readonly elapsedSeconds: number;
}

type Live = Set<{ kill(): void }>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const NODE_SCRIPT = join(__dirname, "ipc-cluster-node.js");
const CLIENTS_SCRIPT = join(__dirname, "cluster-node.js");

async function stopAll(children: (Child | undefined)[], live: Live): Promise<void> {
  await Promise.all(
    children.map(async (child) => {
      if (child === undefined) return;
      try {
        await child.stop();
      } catch {
        child.kill();
      }
      live.delete(child);
    }),
  );
}

// ------------------------------------------------------------------ storm --

async function stormRound(kind: StormKind, round: number, config: IpcClusterConfig, runScript: string, log: (line: string) => void, live: Live): Promise<IpcStormRound> {
  const e2e = config.storm.e2e;
  const storm: Omit<ServerArgs, "cluster"> = { adapter: "sharded", config: e2e };
  const primaryArgs: IpcPrimaryArgs = { kind: "sharded", workers: config.storm.workers, heartbeatInterval: config.heartbeatInterval, heartbeatTimeout: config.heartbeatTimeout, storm };
  const server = kind === "process" ? new Child("--e2e-server", storm, runScript) : new Child("--ipc-primary", primaryArgs, NODE_SCRIPT);
  live.add(server);
  let clients: Child | undefined;
  try {
    const { port, ports } = await server.next<{ port: number; ports?: number[] }>("listening", 60_000);
    clients = new Child("--e2e-clients", { port, ports: ports ?? [port], clients: e2e.clients } satisfies ClientArgs, runScript);
    live.add(clients);
    const conn = await clients.next<{ connected: number; connectErrors: number }>("connected", 180_000);
    if (conn.connected !== e2e.clients) throw new Error(`ipc-cluster ${kind}: ${conn.connected} of ${e2e.clients} clients connected (${conn.connectErrors} errors)`);
    await sleep(500);
    server.send({ type: "storm" });
    const { storm: result } = await server.next<{ storm: ServerStorm | ClusterStorm }>("stormed", e2e.schedule.durationMs + 120_000);
    const report = await clientsReport(clients, result.expectedDeliveries);
    const deliveredPerSecond = report.received / Math.max(1e-9, (report.lastUs - result.startUs) / 1e6);
    const primaryCpuMs = "primaryCpuMs" in result ? result.primaryCpuMs : 0;
    log(
      `[ipc-cluster] round ${round + 1} storm, ${kind === "process" ? "1 process" : `cluster of ${config.storm.workers}`}: delivered ${report.received}/${result.expectedDeliveries} = ${Math.round(deliveredPerSecond)}/s;` +
        ` latency p50 ${report.latency.p50.toFixed(2)} ms, p99 ${report.latency.p99.toFixed(2)} ms; server main CPU ${result.mainCpuMs.toFixed(0)} ms${kind === "cluster" ? `, primary ${primaryCpuMs.toFixed(0)} ms` : ""}`,
    );
    if (report.received !== result.expectedDeliveries) log(`[ipc-cluster] WARNING: storm ${kind}: ${report.received} messages received, ${result.expectedDeliveries} expected`);
    return { kind, round, server: result, primaryCpuMs, clients: report, deliveredPerSecond };
  } finally {
    await stopAll([clients, server], live);
  }
}

function summarizeStorm(rounds: IpcStormRound[], kind: StormKind): IpcStormSummary {
  const list = rounds.filter((r) => r.kind === kind);
  const seconds = (r: IpcStormRound) => (r.server.endUs - r.server.startUs) / 1e6;
  return {
    deliveredPerSecond: median(list.map((r) => r.deliveredPerSecond)),
    deliveredFraction: median(list.map((r) => r.clients.received / r.server.expectedDeliveries)),
    latencyP50Ms: median(list.map((r) => r.clients.latency.p50)),
    latencyP99Ms: median(list.map((r) => r.clients.latency.p99)),
    mainCpuMsPerSecond: median(list.map((r) => r.server.mainCpuMs / seconds(r))),
    primaryCpuMsPerSecond: median(list.map((r) => r.primaryCpuMs / seconds(r))),
  };
}

// --------------------------------------------------------------- locality --

/** One kind's cluster for the locality case: its primary (which speaks for its workers) and its clients' process. */
class LocalityCluster {
  primary: Child | undefined;
  clients: Child | undefined;
  ports: number[] = [];

  constructor(
    readonly kind: IpcKind,
    private readonly config: IpcClusterConfig,
    private readonly live: Live,
  ) {}

  async start(): Promise<void> {
    const c = this.config;
    this.primary = new Child("--ipc-primary", { kind: this.kind, workers: c.locality.workers, heartbeatInterval: c.heartbeatInterval, heartbeatTimeout: c.heartbeatTimeout } satisfies IpcPrimaryArgs, NODE_SCRIPT);
    this.live.add(this.primary);
    this.clients = new Child("--cluster-clients", {}, CLIENTS_SCRIPT);
    this.live.add(this.clients);
    this.ports = (await this.primary.next<{ ports: number[] }>("listening", 60_000)).ports;
    const l = c.locality;
    const clients: { port: number; room: string }[] = [];
    for (let w = 0; w < l.workers; w++) {
      for (let r = 0; r < l.roomsPerWorker; r++) for (let k = 0; k < l.clientsPerRoom; k++) clients.push({ port: this.ports[w], room: roomName(w, r) });
    }
    await this.clients.next("started", 60_000);
    this.clients.send({ type: "connect", args: { clients } satisfies ClusterClientsArgs });
    const conn = await this.clients.next<{ connected: number; connectErrors: number }>("connected", 120_000);
    if (conn.connected !== clients.length) throw new Error(`ipc-cluster ${this.kind}: ${conn.connected} of ${clients.length} clients connected (${conn.connectErrors} errors)`);
    // Until every worker counts every worker (and our workers' rooms reached the primary).
    const deadline = performance.now() + 20_000;
    for (;;) {
      const counts = (await this.sample()).workers.map((w) => w.serverCount);
      if (counts.every((n) => n === l.workers)) break;
      if (performance.now() > deadline) throw new Error(`ipc-cluster ${this.kind}: the workers count ${counts.join(", ")} servers, not ${l.workers}`);
      await sleep(50);
    }
    await sleep(200);
  }

  async sample(): Promise<IpcClusterSample> {
    this.primary!.send({ type: "sample" } satisfies IpcPrimaryCommand);
    return this.primary!.next<IpcClusterSample>("sample");
  }

  async phase(plan: Plan): Promise<{ workers: LocalityWorkerResult[]; primaryCpuMs: number; check: Omit<RoomsCheck, "type">; seconds: number }> {
    const l = this.config.locality;
    const clients = this.clients!;
    clients.send({ type: "reset" });
    await clients.next("reset");
    const s0 = await this.sample();
    const t0 = performance.now();
    const perWorker = Array.from({ length: l.workers }, (_, w) => {
      const mine = plan.from.map((f, b) => (f === w ? b : -1)).filter((b) => b >= 0);
      return { rooms: mine.map((b) => plan.rooms[b]), ids: mine.map((b) => plan.ids[b]) };
    });
    this.primary!.send({ type: "emit", perWorker, payload: payloadOf(l.payloadBytes), perTurn: l.perTurn } satisfies IpcPrimaryCommand);
    await this.primary!.next("emitted", 120_000);
    const expected = plan.rooms.length * l.clientsPerRoom;
    let last = -1;
    let idleSince = performance.now();
    for (;;) {
      clients.send({ type: "count" });
      const { received } = await clients.next<{ received: number }>("count");
      if (received >= expected) break;
      if (received !== last) {
        last = received;
        idleSince = performance.now();
      } else if (performance.now() - idleSince > 2000) break;
      await sleep(20);
    }
    // What is still in flight to workers without clients of the target arrives with no one waiting for it: a moment for it.
    await sleep(100);
    const s1 = await this.sample();
    const seconds = (performance.now() - t0) / 1000;
    clients.send({ type: "rooms-check", rooms: plan.rooms, ids: plan.ids });
    const { type: _, ...check } = await clients.next<RoomsCheck>("rooms-check");
    const workers = s1.workers.map((w, i): LocalityWorkerResult => ({
      name: `w${i}`,
      ipcReceived: w.ipcReceived - s0.workers[i].ipcReceived,
      mainCpuMs: (w.cpu.main - s0.workers[i].cpu.main) / 1e6,
    }));
    return { workers, primaryCpuMs: (s1.primaryCpuNs - s0.primaryCpuNs) / 1e6, check, seconds };
  }

  async stop(): Promise<void> {
    await stopAll([this.clients, this.primary], this.live);
  }
}

const exactly = (x: Omit<RoomsCheck, "type">) => x.missing === 0 && x.duplicates === 0 && x.unexpected === 0 && x.received === x.expected;

function summarizeLocality(rounds: LocalityRound[], kind: IpcKind, config: IpcClusterConfig, warmupExact: boolean): LocalitySummary {
  const list = rounds.filter((r) => r.kind === kind);
  const per1000 = (x: number) => (x * 1000) / config.locality.broadcasts;
  const perWorker = (f: (w: LocalityWorkerResult) => number) =>
    mean(Array.from({ length: config.locality.workers }, (_, i) => median(list.map((r) => per1000(f(r.workers[i]))))));
  return {
    ipcReceivedPerWorkerPer1000: perWorker((w) => w.ipcReceived),
    mainCpuMsPerWorkerPer1000: perWorker((w) => w.mainCpuMs),
    primaryCpuMsPer1000: median(list.map((r) => per1000(r.primaryCpuMs))),
    exact: warmupExact && list.every((r) => r.exact),
  };
}

// ------------------------------------------------------------------- run --

export async function runIpcCluster(config: IpcClusterConfig, runScript: string, log: (line: string) => void, live: Live): Promise<IpcClusterResult> {
  const started = performance.now();
  const order = <T>(kinds: readonly T[], round: number) => (round % 2 === 0 ? kinds : [...kinds].reverse());
  const e2e = config.storm.e2e;
  const w = e2eWorkload(e2e);
  log(
    `[ipc-cluster] storm: ${e2e.clients} websocket clients, ${e2e.k} rooms each of ${w.params.r}, ${e2e.schedule.durationMs} ms, 1 process (workers: ${e2e.workers}) vs a cluster of ${config.storm.workers} (workers: 1 each);` +
      ` locality: ${config.locality.workers} workers × ${config.locality.roomsPerWorker} rooms × ${config.locality.clientsPerRoom} clients, ${config.locality.broadcasts} broadcasts per round; ${config.rounds} round(s)`,
  );
  const stormRounds: IpcStormRound[] = [];
  for (let round = 0; round < e2e.rounds; round++) {
    for (const kind of order(STORM_KINDS, round)) stormRounds.push(await stormRound(kind, round, config, runScript, log, live));
  }

  const l = config.locality;
  const clusters = IPC_KINDS.map((kind) => new LocalityCluster(kind, config, live));
  const localityRounds: LocalityRound[] = [];
  const warmupExact: Record<string, boolean> = {};
  try {
    const starts = await Promise.allSettled(clusters.map((x) => x.start()));
    for (const s of starts) if (s.status === "rejected") throw s.reason;
    const layout = { nodes: l.workers, roomsPerNode: l.roomsPerWorker };
    for (const x of clusters) {
      const warm = await x.phase(roomsPlan(layout, l.warmupBroadcasts, config.seed * 1000 + 999, 1_000_000));
      warmupExact[x.kind] = exactly(warm.check);
      if (!warmupExact[x.kind]) log(`[ipc-cluster] WARNING: ${x.kind}: warm-up: ${warm.check.received}/${warm.check.expected} received, ${warm.check.missing} missing`);
    }
    for (let round = 0; round < config.rounds; round++) {
      const plan = roomsPlan(layout, l.broadcasts, config.seed * 1000 + round, round * l.broadcasts);
      for (const kind of order(IPC_KINDS, round)) {
        const phase = await clusters.find((x) => x.kind === kind)!.phase(plan);
        const run: LocalityRound = { kind, round, broadcasts: l.broadcasts, seconds: phase.seconds, workers: phase.workers, primaryCpuMs: phase.primaryCpuMs, check: phase.check, exact: exactly(phase.check) };
        localityRounds.push(run);
        const per1000 = (x: number) => ((x * 1000) / l.broadcasts).toFixed(1);
        log(
          `[ipc-cluster] round ${round + 1} locality ${kind.padEnd(8)}: ${l.broadcasts} broadcasts in ${phase.seconds.toFixed(2)} s; IPC messages received per worker ${run.workers.map((x) => x.ipcReceived).join(", ")};` +
            ` main-thread CPU per 1000 broadcasts ${run.workers.map((x) => per1000(x.mainCpuMs)).join(", ")} ms, primary ${per1000(run.primaryCpuMs)} ms;` +
            ` delivered ${phase.check.received}/${phase.check.expected}, ${run.exact ? "each exactly once" : "NOT EXACT"}`,
        );
      }
    }
  } finally {
    await Promise.all(clusters.map((x) => x.stop()));
  }
  const stormSummary = { process: summarizeStorm(stormRounds, "process"), cluster: summarizeStorm(stormRounds, "cluster") };
  const localitySummary = {} as Record<IpcKind, LocalitySummary>;
  for (const kind of IPC_KINDS) localitySummary[kind] = summarizeLocality(localityRounds, kind, config, warmupExact[kind] ?? false);
  const elapsedSeconds = (performance.now() - started) / 1000;
  const s = stormSummary;
  const o = localitySummary.official;
  const x = localitySummary.sharded;
  log(
    `[ipc-cluster] done in ${elapsedSeconds.toFixed(1)} s: storm ${Math.round(s.process.deliveredPerSecond)}/s in 1 process, ${Math.round(s.cluster.deliveredPerSecond)}/s in a cluster of ${config.storm.workers} (p99 ${s.process.latencyP99Ms.toFixed(1)} / ${s.cluster.latencyP99Ms.toFixed(1)} ms);` +
      ` locality: IPC messages per worker per 1000 broadcasts ${o.ipcReceivedPerWorkerPer1000.toFixed(0)} official, ${x.ipcReceivedPerWorkerPer1000.toFixed(0)} sharded; main-thread CPU per worker per 1000 ${o.mainCpuMsPerWorkerPer1000.toFixed(1)} / ${x.mainCpuMsPerWorkerPer1000.toFixed(1)} ms`,
  );
  return { config, storm: { rounds: stormRounds, summary: stormSummary }, locality: { rounds: localityRounds, summary: localitySummary }, elapsedSeconds };
}
