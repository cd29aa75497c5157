/**
 * Cluster (issue #6): socket.io servers linked through Redis Streams, the
 * official `@socket.io/redis-streams-adapter` 0.3.1 against ours
 * (`createAdapter({ redis, workers: 1 })`), both over node-redis v5. Each
 * kind has a redis-server of its own (Debian's binary, test/redis-server.ts,
 * on a free loopback port, no persistence). Every node is a process of its
 * own (bench/cluster-node.ts), and so are the socket.io-client websocket
 * connections. Both kinds' clusters are started together and stay up; their
 * measurements alternate, round by round (A B, then B A), one at a time, the
 * other cluster idle (its readers blocked in XREAD), so that the changing
 * load of a shared machine falls on both alike.
 *
 * Two nodes: A (no client) broadcasts to a room whose members, N clients, are
 * all connected to B, so every broadcast crosses Redis: XADD by A, XREAD by B,
 * delivered by B. A keeps at most `window` broadcasts outstanding: the
 * clients' process acks (over a control connection to A) how many broadcasts
 * every client has received. Reported: broadcasts per second delivered to
 * every client, A-emit → client latency, main-thread CPU per broadcast on A
 * and B.
 *
 * Many small rooms (socket.io issue #5226): `nodes` nodes, each with
 * `roomsPerNode` rooms of `clientsPerRoom` clients all connected to it; every
 * node broadcasts to random rooms of the other nodes. Each node reads every
 * entry of the stream; the official adapter decodes and applies each, ours
 * skips, undecoded, a broadcast whose rooms have no member on the node.
 * Reported per node: stream entries read, messages processed, main-thread CPU
 * per 1000 broadcasts of the cluster; and whether every targeted client got
 * its message exactly once.
 *
 * Order: the many-rooms case runs first on all `nodes` nodes (a warm-up
 * phase per kind, then the rounds); then all nodes but n0 and n1 stop (and
 * the many-rooms clients), and n0 (A) and n1 (B) run the two-node case with
 * clients of their own (a warm-up blast per kind, then the rounds), so that
 * node start-up is paid once. `CLUSTER_TRACE=1` prints how long each step
 * took.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { startRedisServer, type RedisServer } from "../test/redis-server";
import {
  CLUSTER_ADAPTERS,
  type BlastResult,
  type ClusterAdapterKind,
  type ClusterClientsArgs,
  type ClusterNodeArgs,
  type HandlerTimes,
  type NodeSample,
  type RoomsCheck,
  type StreamCounters,
  type TwoNodeClientReport,
} from "./cluster-node";
import { Child } from "./e2e";
import { Rng } from "./workload";
import { median, mean } from "./stats";

export interface ClusterConfig {
  readonly rounds: number;
  readonly seed: number;
  /** Passed to both adapters (the official 0.3.1 sends no heartbeat); long, so that heartbeats add no stream entries during a measurement. */
  readonly heartbeatInterval: number;
  readonly heartbeatTimeout: number;
  readonly twoNode: {
    readonly clients: number;
    readonly warmupMs: number;
    /** Of one blast (one per round and kind). */
    readonly durationMs: number;
    /** Broadcasts A may have outstanding (not yet received by every client). */
    readonly window: number;
    readonly ackEvery: number;
  };
  readonly rooms: {
    readonly nodes: number;
    readonly roomsPerNode: number;
    readonly clientsPerRoom: number;
    /** Broadcasts of the whole cluster per round and kind (each node sends 1/nodes of them). */
    readonly broadcasts: number;
    readonly warmupBroadcasts: number;
    /** A node yields one event-loop turn after this many emits. */
    readonly perTurn: number;
    /** Length of the text each broadcast carries besides its id (a chat message, say): decoding cost grows with it, and the skip avoids decoding. */
    readonly payloadBytes: number;
  };
}

export function clusterDefaults(quick: boolean): ClusterConfig {
  return {
    rounds: quick ? 2 : 4,
    seed: 1,
    heartbeatInterval: 60_000,
    heartbeatTimeout: 120_000,
    twoNode: { clients: 20, warmupMs: quick ? 150 : 400, durationMs: quick ? 400 : 1000, window: 64, ackEvery: 8 },
    rooms: {
      nodes: 4,
      roomsPerNode: quick ? 30 : 200,
      clientsPerRoom: 2,
      broadcasts: quick ? 500 : 2000,
      warmupBroadcasts: quick ? 150 : 1000,
      perTurn: 20,
      payloadBytes: 200,
    },
  };
}

export interface CpuDelta {
  readonly mainCpuMs: number;
  /** The threads started with the adapter (ours: its shard worker; official: none). */
  readonly workerCpuMs: number;
  readonly processCpuMs: number;
}

export interface TwoNodeRun {
  readonly kind: ClusterAdapterKind;
  readonly round: number;
  readonly broadcasts: number;
  readonly seconds: number;
  readonly broadcastsPerSecond: number;
  readonly deliveries: number;
  readonly expectedDeliveries: number;
  readonly orderErrors: number;
  /** Every broadcast acked by the clients before the drain timeout. */
  readonly drained: boolean;
  readonly latency: TwoNodeClientReport["latency"];
  readonly sender: CpuDelta;
  readonly receiver: CpuDelta;
  readonly clientsCpuMs: number;
  readonly connectMs: number;
}

/** One node's share of a phase: its stream counters over the phase (see StreamCounters), and more. */
export interface RoomsNodeResult extends StreamCounters {
  readonly name: string;
  readonly emitted: number;
  /** Broadcasts of the other nodes in the phase. */
  readonly othersBroadcasts: number;
  /** Of those, the ones to this node's rooms. */
  readonly forThisNode: number;
  readonly cpu: CpuDelta;
}

export interface RoomsRun {
  readonly kind: ClusterAdapterKind;
  readonly round: number;
  readonly broadcasts: number;
  readonly seconds: number;
  readonly nodes: RoomsNodeResult[];
  readonly check: Omit<RoomsCheck, "type">;
  readonly exact: boolean;
  readonly connectMs: number;
}

export interface ClusterKindSummary {
  readonly twoNode: {
    readonly broadcastsPerSecond: number;
    readonly latencyP50Ms: number;
    readonly latencyP99Ms: number;
    readonly senderMainCpuUsPerBroadcast: number;
    readonly receiverMainCpuUsPerBroadcast: number;
    readonly receiverWorkerCpuUsPerBroadcast: number;
    readonly exact: boolean;
  };
  readonly rooms: {
    /** Per node (index), medians over the rounds. */
    readonly perNode: {
      readonly entriesRead: number;
      readonly processed: number;
      readonly mainCpuMsPer1000: number;
      readonly workerCpuMsPer1000: number;
      /** Time in the adapter's per-entry handler (all entries, each kind's median per call × its entries), per 1000 broadcasts. */
      readonly handlerMsPer1000: number;
    }[];
    /** Means over the nodes. */
    readonly entriesReadPerNode: number;
    readonly processedPerNode: number;
    readonly mainCpuMsPer1000: number;
    readonly workerCpuMsPer1000: number;
    readonly handlerMsPer1000: number;
    /** Median time of a handler call, µs (median over the rounds of the nodes' mean): other nodes' entries for other nodes' rooms, for this node's rooms, own entries. */
    readonly foreignUsPerEntry: number;
    readonly localUsPerEntry: number;
    readonly ownUsPerEntry: number;
    readonly exact: boolean;
  };
}

export interface ClusterResult {
  readonly config: ClusterConfig;
  readonly redisVersion: string;
  readonly twoNode: TwoNodeRun[];
  readonly rooms: RoomsRun[];
  readonly summary: Record<ClusterAdapterKind, ClusterKindSummary>;
  readonly elapsedSeconds: number;
}

type Live = Set<{ kill(): void }>;

const TRACE = process.env.CLUSTER_TRACE === "1";
let traceT0 = performance.now();
const trace = (what: string) => {
  if (!TRACE) return;
  const now = performance.now();
  process.stderr.write(`  [trace] ${what}: ${(now - traceT0).toFixed(0)} ms\n`);
  traceT0 = now;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function cpuDelta(a: NodeSample["cpu"], b: NodeSample["cpu"]): CpuDelta {
  return { mainCpuMs: (b.main - a.main) / 1e6, workerCpuMs: (b.added - a.added) / 1e6, processCpuMs: (b.process - a.process) / 1e6 };
}

async function sample(node: Child, serverCount = false, resetTimes = false): Promise<NodeSample> {
  node.send({ type: "sample", serverCount, resetTimes });
  return node.next<NodeSample>("sample");
}

export interface Plan {
  readonly rooms: string[];
  readonly ids: number[];
  /** Sending node of each broadcast. */
  readonly from: number[];
  /** Node whose room each broadcast targets. */
  readonly to: number[];
}

export const roomName = (node: number, room: number) => `n${node}-r${room}`;

/** ASCII text of `bytes` characters. */
export function payloadOf(bytes: number): string {
  const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua ";
  return words.repeat(Math.ceil(bytes / words.length)).slice(0, bytes);
}

/** `count` broadcasts, node i sending every nodes-th, each to a random room of another node (seeded: the same for both kinds). */
export function roomsPlan(layout: { readonly nodes: number; readonly roomsPerNode: number }, count: number, seed: number, firstId: number): Plan {
  const { nodes, roomsPerNode } = layout;
  const rng = new Rng(seed);
  const plan: Plan = { rooms: [], ids: [], from: [], to: [] };
  for (let b = 0; b < count; b++) {
    const from = b % nodes;
    const to = (from + 1 + rng.below(nodes - 1)) % nodes;
    plan.rooms.push(roomName(to, rng.below(roomsPerNode)));
    plan.ids.push(firstId + b);
    plan.from.push(from);
    plan.to.push(to);
  }
  return plan;
}

const exactly = (x: Omit<RoomsCheck, "type">) => x.missing === 0 && x.duplicates === 0 && x.unexpected === 0 && x.received === x.expected;

/**
 * One adapter kind's cluster: its own redis-server, `rooms.nodes` node
 * processes and two clients' processes (many-rooms, two-node), alive for the
 * whole cluster part so that the two kinds' measurements can alternate.
 */
class KindCluster {
  readonly children: Child[] = [];
  redis: RedisServer | undefined;
  nodes: Child[] = [];
  ports: number[] = [];
  roomsClients: Child | undefined;
  twoNodeClients: Child | undefined;
  roomsConnectMs = NaN;
  twoNodeConnectMs = NaN;

  constructor(
    readonly kind: ClusterAdapterKind,
    private readonly config: ClusterConfig,
    private readonly live: Live,
  ) {}

  private fork(flag: string, args: unknown): Child {
    const child = new Child(flag, args, join(__dirname, "cluster-node.js"));
    this.children.push(child);
    this.live.add(child);
    return child;
  }

  /** Starts redis-server, the nodes and the (idle) clients' processes; resolves when the nodes listen. */
  async start(): Promise<void> {
    const redis = await startRedisServer();
    this.redis = redis;
    this.live.add(this.redisGuard);
    this.nodes = Array.from({ length: this.config.rooms.nodes }, (_, i) =>
      this.fork("--cluster-node", {
        kind: this.kind,
        name: `n${i}`,
        redisUrl: redis.url,
        heartbeatInterval: this.config.heartbeatInterval,
        heartbeatTimeout: this.config.heartbeatTimeout,
      } satisfies ClusterNodeArgs),
    );
    this.roomsClients = this.fork("--cluster-clients", {});
    this.twoNodeClients = this.fork("--cluster-clients", {});
    this.ports = await Promise.all(this.nodes.map(async (node) => (await node.next<{ port: number }>("listening", 60_000)).port));
  }

  private readonly redisGuard = { kill: () => void this.redis?.stop("SIGKILL") };

  private async connect(clients: Child, args: ClusterClientsArgs): Promise<number> {
    await clients.next("started", 60_000);
    clients.send({ type: "connect", args });
    const conn = await clients.next<{ connectMs: number; connected: number; connectErrors: number }>("connected", 120_000);
    if (conn.connected !== args.clients.length) throw new Error(`cluster ${this.kind}: ${conn.connected} of ${args.clients.length} clients connected (${conn.connectErrors} errors)`);
    return conn.connectMs;
  }

  /** Until every node counts every node (Redis subscriptions in place), then a moment for the stream readers. */
  async waitLinked(nodes: Child[]): Promise<void> {
    const deadline = performance.now() + 15_000;
    for (;;) {
      const counts = await Promise.all(nodes.map(async (n) => (await sample(n, true)).serverCount));
      if (counts.every((c) => c === nodes.length)) break;
      if (performance.now() > deadline) throw new Error(`cluster ${this.kind}: the nodes count ${counts.join(", ")} servers, not ${nodes.length}`);
      await sleep(50);
    }
    await sleep(150);
  }

  // -------------------------------------------------------- many rooms --

  async connectRooms(): Promise<void> {
    const c = this.config.rooms;
    const clients: { port: number; room: string }[] = [];
    for (let i = 0; i < c.nodes; i++) {
      for (let r = 0; r < c.roomsPerNode; r++) for (let k = 0; k < c.clientsPerRoom; k++) clients.push({ port: this.ports[i], room: roomName(i, r) });
    }
    this.roomsConnectMs = await this.connect(this.roomsClients!, { clients });
    await this.waitLinked(this.nodes);
  }

  /** Every node emits its share of `plan`; measured until every client has its messages and every node has read every entry of the others. */
  async roomsPhase(plan: Plan): Promise<{ nodes: RoomsNodeResult[]; check: Omit<RoomsCheck, "type">; seconds: number }> {
    const c = this.config.rooms;
    const clients = this.roomsClients!;
    const nodes = this.nodes;
    clients.send({ type: "reset" });
    await clients.next("reset");
    const s0 = await Promise.all(nodes.map((n) => sample(n, false, true)));
    const t0 = performance.now();
    await Promise.all(
      nodes.map((node, i) => {
        const mine = plan.from.map((f, b) => (f === i ? b : -1)).filter((b) => b >= 0);
        node.send({ type: "emit", rooms: mine.map((b) => plan.rooms[b]), ids: mine.map((b) => plan.ids[b]), payload: payloadOf(c.payloadBytes), perTurn: c.perTurn });
        return node.next("emitted", 60_000);
      }),
    );
    const expected = plan.rooms.length * c.clientsPerRoom;
    const others = nodes.map((_, i) => plan.from.filter((f) => f !== i).length);
    let last = -1;
    let idleSince = performance.now();
    let samples: NodeSample[];
    for (;;) {
      clients.send({ type: "count" });
      const { received } = await clients.next<{ received: number }>("count");
      samples = await Promise.all(nodes.map((n) => sample(n)));
      const read = samples.map((x, i) => x.counters.entriesRead - s0[i].counters.entriesRead);
      if (received >= expected && read.every((r, i) => r >= others[i])) break;
      const progress = received + read.reduce((a, b) => a + b, 0);
      if (progress !== last) {
        last = progress;
        idleSince = performance.now();
      } else if (performance.now() - idleSince > 2000) break;
      await sleep(20);
    }
    const seconds = (performance.now() - t0) / 1000;
    clients.send({ type: "rooms-check", rooms: plan.rooms, ids: plan.ids });
    const { type: _, ...check } = await clients.next<RoomsCheck>("rooms-check");
    const results = nodes.map((_, i): RoomsNodeResult => {
      const a = s0[i].counters;
      const b = samples[i].counters;
      return {
        name: `n${i}`,
        emitted: plan.from.filter((f) => f === i).length,
        othersBroadcasts: others[i],
        forThisNode: plan.to.filter((t) => t === i).length,
        entriesRead: b.entriesRead - a.entriesRead,
        processed: b.processed - a.processed,
        skipped: b.skipped - a.skipped,
        // Handler times were reset with the first sample: the last one holds this phase's.
        foreign: b.foreign,
        local: b.local,
        own: b.own,
        cpu: cpuDelta(s0[i].cpu, samples[i].cpu),
      };
    });
    return { nodes: results, check, seconds };
  }

  /** The many-rooms clients and all nodes but n0 and n1 go; n0 (A) and n1 (B) stay for the two-node case. */
  async shrinkToTwo(): Promise<void> {
    await this.stop([this.roomsClients!, ...this.nodes.slice(2)]);
  }

  // ---------------------------------------------------------- two nodes --

  async connectTwoNode(): Promise<void> {
    const c = this.config.twoNode;
    this.twoNodeConnectMs = await this.connect(this.twoNodeClients!, {
      clients: Array.from({ length: c.clients }, () => ({ port: this.ports[1], room: "room" })),
      controlPort: this.ports[0],
      ackEvery: c.ackEvery,
    });
  }

  async blast(durationMs: number): Promise<{ blast: BlastResult; b0: NodeSample; b1: NodeSample; report: TwoNodeClientReport }> {
    const c = this.config.twoNode;
    const [a, b] = this.nodes;
    const clients = this.twoNodeClients!;
    clients.send({ type: "reset" });
    await clients.next("reset");
    const b0 = await sample(b);
    a.send({ type: "blast", room: "room", durationMs, window: c.window });
    const blast = await a.next<BlastResult>("blasted", durationMs + 30_000);
    const b1 = await sample(b);
    clients.send({ type: "two-node-report" });
    const report = await clients.next<TwoNodeClientReport>("two-node-report");
    if (!blast.drained) throw new Error(`cluster ${this.kind}: two nodes: ${blast.acked} of ${blast.sent} broadcasts reached every client within 10 s of the end`);
    return { blast, b0, b1, report };
  }

  /** Stops these children (default: all, and redis-server) at the same time; kills those that do not exit. */
  async stop(children: Child[] = this.children): Promise<void> {
    await Promise.all(
      children.map(async (child) => {
        try {
          await child.stop();
        } catch {
          child.kill();
        }
        this.live.delete(child);
      }),
    );
    if (children === this.children && this.redis) {
      await this.redis.stop();
      this.live.delete(this.redisGuard);
    }
  }
}

function roomsRun(kind: ClusterAdapterKind, round: number, config: ClusterConfig, phase: Awaited<ReturnType<KindCluster["roomsPhase"]>>, connectMs: number, log: (line: string) => void): RoomsRun {
  const c = config.rooms;
  const run: RoomsRun = { kind, round, broadcasts: c.broadcasts, seconds: phase.seconds, nodes: phase.nodes, check: phase.check, exact: exactly(phase.check), connectMs };
  const per1000 = (ms: number) => ((ms * 1000) / c.broadcasts).toFixed(1);
  log(
    `[cluster] round ${round + 1} ${c.nodes} nodes ${kind.padEnd(8)}: ${c.broadcasts} broadcasts to rooms of ${c.clientsPerRoom}, done in ${phase.seconds.toFixed(2)} s;` +
      ` per node read/processed ${run.nodes.map((n) => `${n.entriesRead}/${n.processed}`).join(", ")};` +
      ` main-thread CPU per 1000 broadcasts ${run.nodes.map((n) => per1000(n.cpu.mainCpuMs)).join(", ")} ms,` +
      ` ≈ in the adapter's entry handler ${run.nodes.map((n) => per1000(handlerMs(n))).join(", ")} ms;` +
      ` delivered ${phase.check.received}/${phase.check.expected}, ${run.exact ? "each exactly once" : "NOT EXACT"}`,
  );
  if (!run.exact) {
    const x = phase.check;
    log(`[cluster] WARNING: ${c.nodes} nodes ${kind}: ${x.received}/${x.expected} received, ${x.missing} missing, ${x.duplicates} duplicates, ${x.unexpected} unexpected`);
  }
  return run;
}

function twoNodeRun(kind: ClusterAdapterKind, round: number, config: ClusterConfig, result: Awaited<ReturnType<KindCluster["blast"]>>, connectMs: number, log: (line: string) => void): TwoNodeRun {
  const { blast, b0, b1, report } = result;
  const c = config.twoNode;
  const seconds = (blast.endUs - blast.startUs) / 1e6;
  const run: TwoNodeRun = {
    kind,
    round,
    broadcasts: blast.sent,
    seconds,
    broadcastsPerSecond: blast.acked / seconds,
    deliveries: report.received,
    expectedDeliveries: blast.sent * c.clients,
    orderErrors: report.orderErrors,
    drained: blast.drained,
    latency: report.latency,
    sender: cpuDelta(blast.cpu0, blast.cpu1),
    receiver: cpuDelta(b0.cpu, b1.cpu),
    clientsCpuMs: report.cpuMs,
    connectMs,
  };
  const us = (ms: number) => ((ms * 1000) / blast.sent).toFixed(1);
  log(
    `[cluster] round ${round + 1} two nodes ${kind.padEnd(8)}: ${blast.sent} broadcasts to ${c.clients} clients in ${seconds.toFixed(2)} s = ${Math.round(run.broadcastsPerSecond)}/s;` +
      ` latency p50 ${run.latency.p50.toFixed(2)} ms, p99 ${run.latency.p99.toFixed(2)} ms; main-thread CPU per broadcast A ${us(run.sender.mainCpuMs)} µs, B ${us(run.receiver.mainCpuMs)} µs` +
      (kind === "sharded" ? ` (B's shard worker ${us(run.receiver.workerCpuMs)} µs)` : "") +
      `; clients' process ${us(run.clientsCpuMs)} µs`,
  );
  if (run.deliveries !== run.expectedDeliveries || run.orderErrors !== 0) {
    log(`[cluster] WARNING: two nodes ${kind}: ${run.deliveries} of ${run.expectedDeliveries} deliveries, ${run.orderErrors} out of sequence`);
  }
  return run;
}

/** Time in the handler, ms: each kind's median per call × its entries. */
const handlerMs = (n: RoomsNodeResult) => [n.foreign, n.local, n.own].reduce((s, h) => s + (h.entries > 0 ? (h.p50Us * h.entries) / 1000 : 0), 0);

/** Time of a handler call, µs: median over the rounds of the mean over the nodes of their medians. */
function usPerEntry(runs: RoomsRun[], f: (n: RoomsNodeResult) => HandlerTimes): number {
  return median(runs.map((run) => mean(run.nodes.map((n) => f(n).p50Us).filter((x) => Number.isFinite(x)))));
}

function summarizeKind(kind: ClusterAdapterKind, config: ClusterConfig, twoNode: TwoNodeRun[], rooms: RoomsRun[], warmupExact: boolean): ClusterKindSummary {
  const t = twoNode.filter((r) => r.kind === kind);
  const r = rooms.filter((x) => x.kind === kind);
  const per = (f: (run: TwoNodeRun) => number) => median(t.map(f));
  const per1000 = (ms: number) => (ms * 1000) / config.rooms.broadcasts;
  const perNode = Array.from({ length: config.rooms.nodes }, (_, i) => ({
    entriesRead: median(r.map((x) => x.nodes[i].entriesRead)),
    processed: median(r.map((x) => x.nodes[i].processed)),
    mainCpuMsPer1000: median(r.map((x) => per1000(x.nodes[i].cpu.mainCpuMs))),
    workerCpuMsPer1000: median(r.map((x) => per1000(x.nodes[i].cpu.workerCpuMs))),
    handlerMsPer1000: median(r.map((x) => per1000(handlerMs(x.nodes[i])))),
  }));
  return {
    twoNode: {
      broadcastsPerSecond: per((x) => x.broadcastsPerSecond),
      latencyP50Ms: per((x) => x.latency.p50),
      latencyP99Ms: per((x) => x.latency.p99),
      senderMainCpuUsPerBroadcast: per((x) => (x.sender.mainCpuMs * 1000) / x.broadcasts),
      receiverMainCpuUsPerBroadcast: per((x) => (x.receiver.mainCpuMs * 1000) / x.broadcasts),
      receiverWorkerCpuUsPerBroadcast: per((x) => (x.receiver.workerCpuMs * 1000) / x.broadcasts),
      exact: t.every((x) => x.drained && x.deliveries === x.expectedDeliveries && x.orderErrors === 0),
    },
    rooms: {
      perNode,
      entriesReadPerNode: mean(perNode.map((x) => x.entriesRead)),
      processedPerNode: mean(perNode.map((x) => x.processed)),
      mainCpuMsPer1000: mean(perNode.map((x) => x.mainCpuMsPer1000)),
      workerCpuMsPer1000: mean(perNode.map((x) => x.workerCpuMsPer1000)),
      handlerMsPer1000: mean(perNode.map((x) => x.handlerMsPer1000)),
      foreignUsPerEntry: usPerEntry(r, (n) => n.foreign),
      localUsPerEntry: usPerEntry(r, (n) => n.local),
      ownUsPerEntry: usPerEntry(r, (n) => n.own),
      exact: warmupExact && r.every((x) => x.exact),
    },
  };
}

/**
 * Both cases for both kinds. The two kinds' clusters (a redis-server each,
 * their nodes and clients) are alive side by side, idle but for the one
 * measured: the measurements alternate between kinds round by round (A B,
 * then B A), so that a change in the machine's load falls on both.
 */
export async function runCluster(config: ClusterConfig, log: (line: string) => void, live: Live): Promise<ClusterResult> {
  const started = performance.now();
  const clusters = CLUSTER_ADAPTERS.map((kind) => new KindCluster(kind, config, live));
  const byKind = (kind: ClusterAdapterKind) => clusters.find((x) => x.kind === kind)!;
  const order = (round: number) => (round % 2 === 0 ? CLUSTER_ADAPTERS : [...CLUSTER_ADAPTERS].reverse());
  const twoNode: TwoNodeRun[] = [];
  const rooms: RoomsRun[] = [];
  const warmupExact: Record<string, boolean> = {};
  let redisVersion = "unknown";
  const c = config.rooms;
  try {
    trace("start");
    // allSettled: if one kind fails to start, the other has finished forking before everything is stopped.
    const starts = await Promise.allSettled(clusters.map((x) => x.start()));
    for (const s of starts) if (s.status === "rejected") throw s.reason;
    redisVersion = /v=(\S+)/.exec(execFileSync("redis-server", ["--version"], { encoding: "utf8" }))?.[1] ?? "unknown";
    log(
      `[cluster] redis-server ${redisVersion}, one per kind; ${c.nodes} nodes × ${c.roomsPerNode} rooms × ${c.clientsPerRoom} clients, ${c.broadcasts} broadcasts to the other nodes' rooms per round;` +
        ` then two nodes: ${config.twoNode.clients} clients on B, A broadcasts for ${config.twoNode.durationMs} ms per round (window ${config.twoNode.window}); ${config.rounds} round(s)`,
    );
    trace("nodes listening");
    await Promise.all(clusters.map((x) => x.connectRooms()));
    log(`[cluster] ${c.nodes * c.roomsPerNode * c.clientsPerRoom} clients per kind connected: ${clusters.map((x) => `${x.kind} in ${(x.roomsConnectMs / 1000).toFixed(1)} s`).join(", ")}`);
    trace("rooms: clients connected, linked");
    for (const x of clusters) {
      const warm = await x.roomsPhase(roomsPlan(config.rooms, c.warmupBroadcasts, config.seed * 1000 + 999, 1_000_000));
      warmupExact[x.kind] = exactly(warm.check);
      if (!warmupExact[x.kind]) log(`[cluster] WARNING: ${x.kind}: warm-up: ${warm.check.received}/${warm.check.expected} received, ${warm.check.missing} missing, ${warm.check.duplicates} duplicates, ${warm.check.unexpected} unexpected`);
    }
    trace("rooms: warm-up");
    for (let round = 0; round < config.rounds; round++) {
      const plan = roomsPlan(config.rooms, c.broadcasts, config.seed * 1000 + round, round * c.broadcasts);
      for (const kind of order(round)) rooms.push(roomsRun(kind, round, config, await byKind(kind).roomsPhase(plan), byKind(kind).roomsConnectMs, log));
    }
    trace("rooms: measured");
    await Promise.all(clusters.map((x) => x.shrinkToTwo()));
    await Promise.all(clusters.map((x) => x.connectTwoNode()));
    trace("two nodes: shrunk, clients connected");
    for (const x of clusters) await x.blast(config.twoNode.warmupMs);
    trace("two nodes: warm-up");
    for (let round = 0; round < config.rounds; round++) {
      for (const kind of order(round)) twoNode.push(twoNodeRun(kind, round, config, await byKind(kind).blast(config.twoNode.durationMs), byKind(kind).twoNodeConnectMs, log));
    }
    trace("two nodes: measured");
  } finally {
    await Promise.all(clusters.map((x) => x.stop()));
    trace("stopped");
  }
  const summary = {} as Record<ClusterAdapterKind, ClusterKindSummary>;
  for (const kind of CLUSTER_ADAPTERS) summary[kind] = summarizeKind(kind, config, twoNode, rooms, warmupExact[kind] ?? false);
  const elapsedSeconds = (performance.now() - started) / 1000;
  const s = summary;
  log(
    `[cluster] done in ${elapsedSeconds.toFixed(1)} s: two nodes ${Math.round(s.official.twoNode.broadcastsPerSecond)}/s official, ${Math.round(s.sharded.twoNode.broadcastsPerSecond)}/s sharded;` +
      ` ${c.nodes} nodes: processed per node ${s.official.rooms.processedPerNode.toFixed(0)} official, ${s.sharded.rooms.processedPerNode.toFixed(0)} sharded,` +
      ` main-thread CPU per node per 1000 broadcasts ${s.official.rooms.mainCpuMsPer1000.toFixed(1)} / ${s.sharded.rooms.mainCpuMsPer1000.toFixed(1)} ms,` +
      ` ≈ in the entry handler ${s.official.rooms.handlerMsPer1000.toFixed(1)} / ${s.sharded.rooms.handlerMsPer1000.toFixed(1)} ms;` +
      ` entry handler median per entry for another node's rooms ${s.official.rooms.foreignUsPerEntry.toFixed(1)} / ${s.sharded.rooms.foreignUsPerEntry.toFixed(1)} µs, for its own rooms ${s.official.rooms.localUsPerEntry.toFixed(1)} / ${s.sharded.rooms.localUsPerEntry.toFixed(1)} µs`,
  );
  return { config, redisVersion, twoNode, rooms, summary, elapsedSeconds };
}
