/**
 * What the orchestrating process (bench/run.ts) and the per-adapter runner
 * processes (bench/runner.ts) say to each other, and the workload list.
 */
import type { Calibration } from "../lib/calibration";
import type { RssSnapshot } from "./rss-breakdown";
import type { WorkloadParams } from "./workload";

export type AdapterKind = "in-memory" | "sharded";
export const ADAPTERS: readonly AdapterKind[] = ["in-memory", "sharded"];

export type TaskName =
  | "populate"
  | "join"
  | "leave"
  | "bcast-room"
  | "bcast-to-room"
  | "bcast-own-id"
  | "bcast-own-id-floor"
  | "bcast-own-id-csr"
  | "bcast-union"
  | "bcast-union-floor"
  | "bcast-all"
  | "bcast-all-except"
  | "fetch-big"
  | "sockets-join-big";

export interface TaskInfo {
  readonly name: TaskName;
  /** Row label in the report. */
  readonly label: string;
  /** What one reported unit is: a broadcast/call, or one membership. */
  readonly unit: "op" | "membership";
  /** What "recipients per op" counts for this workload. */
  readonly recipients: "writes" | "sockets" | "joins" | "memberships";
  /** Run in a server with connection state recovery on (a runner pair of its own). */
  readonly recovery?: boolean;
  /** Iteration budget of its own (populate: each iteration refills the whole namespace). */
  readonly timing?: Timing;
}

/** Slow whole-namespace workloads: one warm-up and two measured iterations per round. */
const WHOLE_NAMESPACE_TIMING: Timing = { time: 0, iterations: 2, warmupTime: 0, warmupIterations: 1 };

export const TASKS: readonly TaskInfo[] = [
  {
    name: "populate",
    label: "populate from empty (addAll into an emptied namespace), per membership",
    unit: "membership",
    recipients: "memberships",
    timing: WHOLE_NAMESPACE_TIMING,
  },
  { name: "join", label: "join into existing rooms (addAll), per membership", unit: "membership", recipients: "memberships" },
  { name: "leave", label: "leave all (delAll), per membership", unit: "membership", recipients: "memberships" },
  { name: "bcast-room", label: "broadcast to one room (~100)", unit: "op", recipients: "writes" },
  { name: "bcast-to-room", label: "socket.to(room): ~100 room except sender", unit: "op", recipients: "writes" },
  { name: "bcast-own-id", label: "own-id room, io.to(socketId), no recovery", unit: "op", recipients: "writes" },
  {
    name: "bcast-own-id-floor",
    label: "own-id floor: socket.io-adapter's encoding and one write, the recipient known (no adapter)",
    unit: "op",
    recipients: "writes",
  },
  {
    name: "bcast-own-id-csr",
    label: "own-id room with connection state recovery (socket.emit)",
    unit: "op",
    recipients: "writes",
    recovery: true,
  },
  { name: "bcast-union", label: "union of 100 rooms", unit: "op", recipients: "writes" },
  {
    name: "bcast-union-floor",
    label: "union floor: socket.io-adapter's encoding and the writes, the recipients' sockets known (no adapter)",
    unit: "op",
    recipients: "writes",
  },
  { name: "bcast-all", label: "everyone", unit: "op", recipients: "writes" },
  { name: "bcast-all-except", label: "everyone except 100 rooms", unit: "op", recipients: "writes" },
  { name: "fetch-big", label: "fetchSockets(biggest room)", unit: "op", recipients: "sockets" },
  { name: "sockets-join-big", label: "socketsJoin: biggest room joins a new room", unit: "op", recipients: "joins" },
];

/**
 * The reduced workload set run across the size grid (the full set runs at
 * the headline size only): churn, the cheapest and the smallest broadcasts,
 * and the two big ones whose cost per recipient the chart plots.
 */
export const GRID_TASKS: readonly TaskName[] = ["populate", "join", "leave", "bcast-own-id", "bcast-room", "bcast-union", "bcast-all"];

/** tinybench budgets for one run of one task on one adapter. */
export interface Timing {
  /** Measured time budget per task run, ms. */
  readonly time: number;
  /** Minimum measured iterations. */
  readonly iterations: number;
  readonly warmupTime: number;
  readonly warmupIterations: number;
}

export interface RunnerArgs {
  readonly adapter: AdapterKind;
  readonly workload: WorkloadParams;
  readonly workers: number;
  readonly offloadThreshold: number | undefined;
  /** The server has connection state recovery on (socket.io then uses SessionAwareAdapter for in-memory). */
  readonly recovery: boolean;
}

export interface MemoryReport {
  /** process.memoryUsage() after gc, before any membership was added (sockets registered). */
  readonly before: NodeJS.MemoryUsage;
  /** The same after every socket joined its rooms, after gc. */
  readonly after: NodeJS.MemoryUsage;
  readonly heapBytesPerMembership: number;
  readonly rssBytesPerMembership: number;
  /** `external` growth, which includes `arrayBuffers` (SharedArrayBuffers land here, not in the heap). */
  readonly externalBytesPerMembership: number;
  /** RSS of the process before any membership (worker threads included). */
  readonly rssBaseline: number;
  readonly sharedMemoryBytes?: number;
  /** /proc/self/smaps by part at the same two points (Linux only; see rss-breakdown.ts). */
  readonly rssParts?: { readonly before: RssSnapshot; readonly after: RssSnapshot };
}

export interface ReadyMessage {
  readonly type: "ready";
  readonly adapter: AdapterKind;
  readonly digest: string;
  readonly workload: Record<string, number | string>;
  /** Initial population from empty, per membership. */
  readonly populateNsPerMembership: number;
  readonly populateMs: number;
  /** Main-thread CPU of the same initial population, per membership. */
  readonly populateMainCpuNsPerMembership: number;
  readonly memory: MemoryReport;
  readonly fingerprint: string;
  readonly threadCpuClock: boolean;
  /** Threads started with the adapter (the shard workers), as seen by the CPU clock. */
  readonly workerThreads: number;
}

export interface RunCommand {
  readonly type: "run";
  readonly task: TaskName;
  readonly timing: Timing;
}

/** Broadcast continuously for `durationMs` while recording the main thread's GC pauses. */
export interface GcStormCommand {
  readonly type: "gc-storm";
  readonly durationMs: number;
}

/** Offload against main thread alone, by broadcast size (sharded runner only). */
export interface CrossoverCommand {
  readonly type: "crossover";
  /** Repetitions of each (size, way) pair, alternating the two ways. */
  readonly reps: number;
}

export interface CrossoverPoint {
  /** Memberships the query visits (its cost, as compared with offloadThreshold). */
  readonly cost: number;
  readonly recipients: number;
  /** Median wall time the main thread is busy (waiting for the workers included), ns. */
  readonly mainOnlyNs: number;
  readonly offloadNs: number;
  /** Offloaded answers a worker did not finish within workerTimeout (then answered on the main thread, timed in). */
  readonly timeouts: number;
}

export interface CrossoverResult {
  readonly type: "crossover";
  readonly points: readonly CrossoverPoint[];
  /** The smallest measured cost from which offloading wins at every larger size, or NaN if it never does. */
  readonly crossover: number;
  /** offloadThreshold the adapter uses (calibrated at pool start unless given). */
  readonly offloadThreshold: number;
  /** What the pool's latest calibration measured, if one ran. */
  readonly calibration?: Calibration;
  /** The thresholds the pool's calibrations chose (at start, then its follow-ups); the one in effect is their median. */
  readonly calibratedThresholds?: readonly number[];
  /** The same calibration run again right after the crossover's points (the machine's load then, not at pool start). */
  readonly recalibrated?: Calibration;
}

export interface GcPauseSummary {
  readonly count: number;
  /** Pause durations, ms. */
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
  /** Sum of pauses, ms. */
  readonly total: number;
}

export interface GcStormResult {
  readonly type: "gc-storm";
  readonly adapter: AdapterKind;
  readonly durationMs: number;
  readonly broadcasts: number;
  readonly recipients: number;
  /** Every 'gc' PerformanceEntry of the main thread during the storm. */
  readonly pauses: GcPauseSummary;
  /** The same per kind (perf_hooks.constants.NODE_PERFORMANCE_GC_*: minor = scavenge, major = mark-compact, incremental marking, weak callbacks). */
  readonly byKind: Record<string, GcPauseSummary>;
  /** The five longest pauses: duration, kind, when (ms after the storm started), and perf_hooks flags. */
  readonly largest: { readonly ms: number; readonly kind: string; readonly atMs: number; readonly flags: number }[];
  /** Heap used before and after the storm (no forced gc in between), bytes. */
  readonly heapUsedBefore: number;
  readonly heapUsedAfter: number;
  readonly mainCpuMs: number;
  readonly workerCpuMs: number;
}

export interface StatsSummary {
  readonly mean: number;
  readonly p50: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
  readonly rme: number;
  readonly samples: number;
}

export interface RunResult {
  readonly type: "result";
  readonly adapter: AdapterKind;
  readonly task: TaskName;
  /** Ops (or memberships) per tinybench iteration. */
  readonly unitsPerIteration: number;
  /** Per-iteration samples, ms per unit (an iteration's mean). */
  readonly samples: Float64Array;
  /** tinybench's own statistics of this run, ms per unit. */
  readonly tinybench: StatsSummary;
  readonly units: number;
  /** Main thread on-CPU ns per unit, from the CPU-accounting pass (NaN where /proc is unavailable). */
  readonly mainCpuNsPerUnit: number;
  /** All threads' CPU ns per unit, from the same pass. */
  readonly processCpuNsPerUnit: number;
  /** CPU ns per unit of the threads started with the adapter (the shard workers; 0 for in-memory). */
  readonly workerCpuNsPerUnit: number;
  /** Iterations of the CPU-accounting pass. */
  readonly cpuIterations: number;
  /** Wall time per unit of the ops in the CPU-accounting pass (a cross-check of the timed pass). */
  readonly cpuPassWallNsPerUnit: number;
  /** performance.eventLoopUtilization() over the measured phase. */
  readonly eventLoopUtilization: number;
  /** Recipients (writes, sockets or joins) per op, over the measured phase. */
  readonly recipientsPerOp: number;
  /** Recipients of one checked op and their order-independent digest. */
  readonly check: { count: number; digest: string; expected: number };
  /** Membership state after the run, to compare adapters. */
  readonly fingerprint: string;
  readonly pool?: { offloadedPerOp: number; shardsByWorkersPerOp: number; timeouts: number; workerFailures: number };
  readonly elapsedMs: number;
}

export interface ErrorMessage {
  readonly type: "error";
  readonly message: string;
}

export type RunnerMessage = ReadyMessage | RunResult | GcStormResult | CrossoverResult | ErrorMessage;
export type ParentMessage = RunCommand | GcStormCommand | CrossoverCommand | { readonly type: "exit" };
