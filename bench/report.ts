/** The benchmark's output: result types, the comparison rows, and their text and Markdown forms. */
import type { ChartPoint } from "./chart";
import type { ClusterResult } from "./cluster";
import type { IpcClusterResult } from "./ipc-cluster";
import type { E2EResult } from "./e2e";
import { PUBLISHED_SHAPES, UWS_SHAPES, type UwsResult } from "./uws";
import type { StormResult, StormSummary } from "./storm";
import type { Calibration } from "../lib/calibration";
import type { AdapterKind, CrossoverResult, GcStormResult, MemoryReport, StatsSummary, TaskName, Timing } from "./protocol";

export interface AdapterTaskResult {
  /** Wall time per unit, ms, pooled over rounds. */
  readonly wall: StatsSummary;
  readonly mainCpuNsPerUnit: number;
  readonly processCpuNsPerUnit: number;
  /** CPU of the threads started with the adapter (the shard workers), per unit. */
  readonly workerCpuNsPerUnit: number;
  readonly eventLoopUtilization: number;
  readonly recipientsPerOp: number;
  readonly unitsPerIteration: number;
  readonly rounds: readonly { tinybench: StatsSummary; elapsedMs: number; mainCpuNsPerUnit: number }[];
  readonly pool?: { offloadedPerOp: number; shardsByWorkersPerOp: number; timeouts: number; workerFailures: number };
}

export interface TaskResult {
  readonly name: TaskName;
  readonly label: string;
  readonly unit: "op" | "membership";
  readonly recipientsPerOp: number;
  readonly adapters: Record<AdapterKind, AdapterTaskResult>;
}

export interface AdapterSetup {
  readonly populateNsPerMembership: number;
  readonly populateMainCpuNsPerMembership: number;
  readonly populateMs: number;
  readonly memory: MemoryReport;
}

export interface SizeResult {
  readonly label: string;
  readonly n: number;
  readonly k: number;
  readonly workload: Record<string, number | string>;
  readonly rounds: number;
  readonly timing: Timing;
  readonly elapsedSeconds: number;
  readonly setup: Record<AdapterKind, AdapterSetup>;
  /** Shard worker threads the sharded runner's CPU clock saw start with the adapter. */
  readonly workerThreads: number;
  readonly tasks: TaskResult[];
  /** Offload against main thread alone by broadcast size (measured in one cell per shape). */
  readonly crossover?: CrossoverResult;
}

export interface GcResult {
  readonly label: string;
  readonly memberships: number;
  readonly durationMs: number;
  readonly adapters: Record<AdapterKind, GcStormResult>;
}

export interface TargetRow {
  readonly target: string;
  /** Where it was evaluated (cell label, "GC", "end to end"). */
  readonly where: string;
  readonly kind: "time" | "bytes" | "ms" | "rate" | "count";
  /** The baseline: socket.io's in-memory adapter; for the cluster rows, the official @socket.io/redis-streams-adapter. */
  readonly inMemory: number;
  readonly sharded: number;
  readonly ratio: number;
  readonly op: "<=" | ">=";
  readonly bound: number;
  /** undefined: not measured in this run. */
  readonly met: boolean | undefined;
  /** The `Row.workload` of the same number in the cell's table, if any. */
  readonly rowKey?: string;
  /** No numeric target (the cluster rows of issue 6): shown for information, never judged. */
  readonly informational?: boolean;
  /** The bound applies to the sharded value itself (ns per recipient), not to the ratio. */
  readonly absolute?: boolean;
  /**
   * The best any adapter could reach, in what the row is judged on: what
   * every adapter pays (the task's floor row, measured in both runners,
   * their mean) over the in-memory adapter's cost, or for an absolute row
   * that cost itself.
   */
  readonly floor?: number;
}

export interface BenchResults {
  readonly date: string;
  readonly command: string;
  readonly git: { readonly commit: string; readonly uncommittedAdapterFiles: string[] };
  readonly machine: {
    readonly cpu: string;
    readonly cores: number;
    readonly node: string;
    readonly os: string;
    readonly memoryGiB: number;
    readonly loadAverageAtStart: number[];
    readonly loadAverageAtEnd: number[];
  };
  readonly config: {
    readonly mode: string;
    readonly workers: number;
    readonly offloadThreshold: number | "default";
    readonly seed: number;
    readonly zipf: number;
    readonly shapes: readonly string[];
    readonly threadCpuClock: boolean;
    readonly gcDurationMs: number;
  };
  readonly elapsedSeconds: number;
  readonly sizes: SizeResult[];
  /** Grid cells not run, and why. */
  readonly skipped: readonly { readonly label: string; readonly reason: string }[];
  readonly gc?: GcResult;
  readonly e2e?: E2EResult;
  /** The same clients on uWebSockets.js (`io.attachApp`, issue 11). */
  readonly uws?: UwsResult;
  /** Nodes linked through Redis: the official adapter against ours (issue 6). */
  readonly cluster?: ClusterResult;
  /** Node.js cluster mode (issue 12): 1 process vs a cluster, and the official cluster adapter against ours. */
  readonly ipcCluster?: IpcClusterResult;
  /** The tail-latency storm at about a million memberships (issue 13). */
  readonly scale?: StormResult;
  readonly rows: Row[];
  readonly targets: TargetRow[];
  readonly chart: { readonly file: string; readonly points: ChartPoint[] };
  readonly notes: string[];
}

export interface Row {
  readonly size: string;
  readonly workload: string;
  readonly kind: "time" | "bytes";
  /** ns for time rows, bytes for byte rows. */
  readonly inMemory: number;
  readonly sharded: number;
  readonly ratio: number;
}

const MS_TO_NS = 1e6;

/** A workload's row label: its label and, for broadcasts and calls, recipients per op. */
function taskBase(task: TaskResult): string {
  return `${task.label}${task.unit === "op" ? ` [${formatCount(task.recipientsPerOp)} rcpt]` : ""}`;
}

export function buildRows(sizes: readonly SizeResult[]): Row[] {
  const rows: Row[] = [];
  for (const size of sizes) {
    const push = (workload: string, kind: Row["kind"], inMemory: number, sharded: number) =>
      rows.push({ size: size.label, workload, kind, inMemory, sharded, ratio: sharded / inMemory });
    const mem = size.setup["in-memory"];
    const sh = size.setup.sharded;
    push("populate from empty, cold start (first population, once), per membership · wall", "time", mem.populateNsPerMembership, sh.populateNsPerMembership);
    push(
      "populate from empty, cold start (first population, once), per membership · main-thread CPU",
      "time",
      mem.populateMainCpuNsPerMembership,
      sh.populateMainCpuNsPerMembership,
    );
    push("main-thread heap per membership", "bytes", mem.memory.heapBytesPerMembership, sh.memory.heapBytesPerMembership);
    push("process RSS per membership", "bytes", mem.memory.rssBytesPerMembership, sh.memory.rssBytesPerMembership);
    for (const task of size.tasks) {
      const a = task.adapters["in-memory"];
      const b = task.adapters.sharded;
      const base = taskBase(task);
      push(`${base} · mean`, "time", a.wall.mean * MS_TO_NS, b.wall.mean * MS_TO_NS);
      push(`${base} · median`, "time", a.wall.p50 * MS_TO_NS, b.wall.p50 * MS_TO_NS);
      push(`${base} · p99`, "time", a.wall.p99 * MS_TO_NS, b.wall.p99 * MS_TO_NS);
      push(`${base} · main-thread CPU`, "time", a.mainCpuNsPerUnit, b.mainCpuNsPerUnit);
    }
  }
  return rows;
}

export function formatNs(ns: number): string {
  if (!Number.isFinite(ns)) return "n/a";
  if (ns < 1e3) return `${ns.toFixed(ns < 10 ? 2 : ns < 100 ? 1 : 0)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 2 : ns < 1e5 ? 1 : 0)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : ns < 1e8 ? 1 : 0)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "n/a";
  return `${bytes.toFixed(bytes < 10 ? 1 : 0)} B`;
}

export function formatCount(x: number): string {
  if (!Number.isFinite(x)) return "n/a";
  return Number.isInteger(x) ? String(x) : x.toFixed(2);
}

function cell(row: Row, value: number): string {
  return row.kind === "time" ? formatNs(value) : formatBytes(value);
}

function ratioText(ratio: number): string {
  return Number.isFinite(ratio) ? ratio.toFixed(ratio < 0.1 ? 3 : 2) : "n/a";
}

const HEADER = ["workload", "in-memory", "sharded", "ratio (sharded/in-memory)"];

/** Plain-text table for the terminal, one section per size. */
export function textTable(rows: readonly Row[]): string {
  const lines: string[] = [];
  const cells = rows.map((r) => [r.workload, cell(r, r.inMemory), cell(r, r.sharded), ratioText(r.ratio)]);
  const widths = HEADER.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join(" | ");
  let size = "";
  rows.forEach((r, i) => {
    if (r.size !== size) {
      size = r.size;
      lines.push("", size, line(HEADER), widths.map((w) => "-".repeat(w)).join("-+-"));
    }
    lines.push(line(cells[i]));
  });
  return lines.join("\n");
}

interface TargetSpec {
  readonly task: TaskName;
  readonly bound: number;
  /** The task measuring what any adapter pays for the same operation (see TargetRow.floor). */
  readonly floor?: TaskName;
}

/** Issue 13's targets for the adapter workloads: main-thread busy (CPU) ratio at N=100k K=10, on each shape. */
const TASK_TARGETS: readonly TargetSpec[] = [
  { task: "bcast-own-id", bound: 0.7, floor: "bcast-own-id-floor" },
  { task: "bcast-own-id-csr", bound: 0.8 },
  { task: "bcast-room", bound: 0.4 },
  { task: "bcast-to-room", bound: 0.5 },
  { task: "populate", bound: 0.6 },
  { task: "join", bound: 0.5 },
  { task: "leave", bound: 0.4 },
  { task: "bcast-all", bound: 0.2 },
  { task: "bcast-all-except", bound: 0.2 },
  { task: "fetch-big", bound: 0.2 },
  { task: "bcast-union", bound: 0.15 },
];
/** The union of 100 rooms at N=1M K=10, main-thread CPU per recipient, ns (issue 13). */
const UNION_NS_PER_RECIPIENT_AT_1M = 150;

/** The cells the targets are evaluated at, one per shape: N=100k K=10, else (quick, custom) the K=10 cell with the most workloads. */
export function headlineSizes(sizes: readonly SizeResult[]): SizeResult[] {
  const shapes = [...new Set(sizes.map(shapeOf))];
  return shapes.map((shape) => headlineSize(sizes.filter((s) => shapeOf(s) === shape))).filter((s) => s !== undefined);
}

/** The shape in a size label ("uniform N=..."). */
function shapeOf(size: SizeResult): string {
  return size.label.split(" ")[0];
}

function headlineSize(sizes: readonly SizeResult[]): SizeResult | undefined {
  const most = Math.max(...sizes.map((s) => s.tasks.length));
  return (
    sizes.find((s) => s.n === 100_000 && s.k === 10 && s.tasks.length === most) ??
    [...sizes].sort((a, b) => Number(b.k === 10) - Number(a.k === 10) || b.tasks.length - a.tasks.length || b.n - a.n)[0]
  );
}

function judge(ratio: number, op: "<=" | ">=", bound: number): boolean | undefined {
  if (!Number.isFinite(ratio)) return undefined;
  return op === "<=" ? ratio <= bound : ratio >= bound;
}

export function buildTargets(results: BenchResults): TargetRow[] {
  const targets: TargetRow[] = [];
  const push = (target: string, where: string, kind: TargetRow["kind"], inMemory: number, sharded: number, op: "<=" | ">=", bound: number, rowKey?: string, floor?: number) => {
    const ratio = sharded / inMemory;
    targets.push({ target, where, kind, inMemory, sharded, ratio, op, bound, met: judge(ratio, op, bound), rowKey, floor });
  };
  const taskTarget = (size: SizeResult, name: TaskName, bound: number, floorName?: TaskName) => {
    const task = size.tasks.find((t) => t.name === name);
    if (!task) {
      targets.push({ target: `${name}: main-thread CPU`, where: `${size.label}: not run`, kind: "time", inMemory: NaN, sharded: NaN, ratio: NaN, op: "<=", bound, met: undefined });
      return;
    }
    const inMemory = task.adapters["in-memory"].mainCpuNsPerUnit;
    const floor = size.tasks.find((t) => t.name === floorName);
    const floorNs = floor && (floor.adapters["in-memory"].mainCpuNsPerUnit + floor.adapters.sharded.mainCpuNsPerUnit) / 2;
    push(`${task.label}: main-thread CPU`, size.label, "time", inMemory, task.adapters.sharded.mainCpuNsPerUnit, "<=", bound, `${taskBase(task)} · main-thread CPU`, floorNs && floorNs / inMemory);
  };
  const headlines = headlineSizes(results.sizes);
  if (headlines.length === 0) {
    for (const spec of TASK_TARGETS) {
      targets.push({ target: `${spec.task}: main-thread CPU`, where: "not run", kind: "time", inMemory: NaN, sharded: NaN, ratio: NaN, op: "<=", bound: spec.bound, met: undefined });
    }
  }
  for (const size of headlines) {
    for (const spec of TASK_TARGETS) taskTarget(size, spec.task, spec.bound, spec.floor);
    // Populate from empty is also judged at K=1.
    const k1 = results.sizes.find((s) => shapeOf(s) === shapeOf(size) && s.n === size.n && s.k === 1);
    if (k1) taskTarget(k1, "populate", 0.6);
    const heap = "main-thread heap per membership";
    const rss = "process RSS per membership";
    push(heap, size.label, "bytes", size.setup["in-memory"].memory.heapBytesPerMembership, size.setup.sharded.memory.heapBytesPerMembership, "<=", 0.07, heap);
    push(rss, size.label, "bytes", size.setup["in-memory"].memory.rssBytesPerMembership, size.setup.sharded.memory.rssBytesPerMembership, "<=", 0.6, rss);
  }
  for (const size of results.sizes.filter((s) => s.n === 1_000_000 && s.k === 10)) {
    const task = size.tasks.find((t) => t.name === "bcast-union");
    if (!task) continue;
    const perRecipient = (adapter: AdapterKind) => task.adapters[adapter].mainCpuNsPerUnit / task.recipientsPerOp;
    const sharded = perRecipient("sharded");
    const floorTask = size.tasks.find((t) => t.name === "bcast-union-floor");
    const floor = floorTask && (floorTask.adapters["in-memory"].mainCpuNsPerUnit + floorTask.adapters.sharded.mainCpuNsPerUnit) / 2 / floorTask.recipientsPerOp;
    targets.push({
      target: `${task.label}: main-thread CPU per recipient`,
      where: size.label,
      kind: "time",
      inMemory: perRecipient("in-memory"),
      sharded,
      ratio: sharded / perRecipient("in-memory"),
      op: "<=",
      bound: UNION_NS_PER_RECIPIENT_AT_1M,
      met: judge(sharded, "<=", UNION_NS_PER_RECIPIENT_AT_1M),
      absolute: true,
      floor,
    });
  }
  const gc = results.gc;
  if (gc) {
    push(`GC pause p99 while broadcasting`, `${gc.label} (${(gc.memberships / 1e6).toFixed(1)}M memberships)`, "ms", gc.adapters["in-memory"].pauses.p99, gc.adapters.sharded.pauses.p99, "<=", 0.2);
  } else {
    targets.push({ target: "GC pause p99 while broadcasting", where: "not run", kind: "ms", inMemory: NaN, sharded: NaN, ratio: NaN, op: "<=", bound: 0.2, met: undefined });
  }
  const e2e = results.e2e;
  const e2eWhere = e2e ? `end to end, ${e2e.config.clients} clients` : "not run";
  const e = (f: (x: NonNullable<BenchResults["e2e"]>["summary"]["sharded"]) => number, adapter: AdapterKind) => (e2e ? f(e2e.summary[adapter]) : NaN);
  push("delivered messages per second", e2eWhere, "rate", e((x) => x.deliveredPerSecond, "in-memory"), e((x) => x.deliveredPerSecond, "sharded"), ">=", 1.0);
  push("server event-loop delay p99 during the storm", e2eWhere, "ms", e((x) => x.eventLoopDelayP99Ms, "in-memory"), e((x) => x.eventLoopDelayP99Ms, "sharded"), "<=", 1.0);
  const uws = results.uws;
  const uwsWhere = uws ? `uWS (attachApp), ${uws.config.clients} clients` : "not run";
  for (const shape of UWS_SHAPES) {
    // Issue 11: no worse where both publish; well below where only ours can avoid writing per socket in JS.
    const bound = PUBLISHED_SHAPES.includes(shape) ? 1.0 : 0.7;
    const perBroadcast = (adapter: AdapterKind) => (uws ? uws.summary[adapter][shape].mainCpuUsPerBroadcast * 1000 : NaN);
    // Judged on the median of the rounds' paired ratios (each round's two phases ran back to back).
    const ratio = uws ? uws.ratios[shape].mainCpu : NaN;
    const target = `uWS: main-thread CPU per broadcast, ${shape}`;
    targets.push({ target, where: uwsWhere, kind: "time", inMemory: perBroadcast("in-memory"), sharded: perBroadcast("sharded"), ratio, op: "<=", bound, met: judge(ratio, "<=", bound) });
  }
  const scale = results.scale;
  const scaleWhere = scale ? `storm: ${scale.config.clients} clients × ${scale.config.k} rooms, churn` : "not run";
  const sc = (f: (x: StormSummary) => number, adapter: AdapterKind) => (scale ? f(scale.summary[adapter]) : NaN);
  push("storm: delivery latency p99 at a fixed offered rate", scaleWhere, "ms", sc((x) => x.latencyP99Ms, "in-memory"), sc((x) => x.latencyP99Ms, "sharded"), "<=", 0.5);
  push("storm: delivered messages per second, saturating", scaleWhere, "rate", sc((x) => x.saturatingDeliveredPerSecond, "in-memory"), sc((x) => x.saturatingDeliveredPerSecond, "sharded"), ">=", 1.1);
  const cluster = results.cluster;
  const info = (target: string, where: string, kind: TargetRow["kind"], official: number, sharded: number) =>
    targets.push({ target, where, kind, inMemory: official, sharded, ratio: sharded / official, op: ">=", bound: NaN, met: undefined, informational: true });
  if (cluster) {
    const o = cluster.summary.official;
    const x = cluster.summary.sharded;
    const c = cluster.config;
    const twoWhere = `2 nodes via Redis, ${c.twoNode.clients} clients on the receiving node`;
    const roomsWhere = `${c.rooms.nodes} nodes × ${c.rooms.roomsPerNode} rooms × ${c.rooms.clientsPerRoom} clients, ${c.rooms.broadcasts} broadcasts`;
    info("cluster: broadcasts per second across nodes (vs official)", twoWhere, "rate", o.twoNode.broadcastsPerSecond, x.twoNode.broadcastsPerSecond);
    info("cluster #5226: stream messages processed per node (vs official)", roomsWhere, "count", o.rooms.processedPerNode, x.rooms.processedPerNode);
    info("cluster #5226: main-thread CPU per node per 1000 broadcasts (vs official)", roomsWhere, "ms", o.rooms.mainCpuMsPer1000, x.rooms.mainCpuMsPer1000);
  } else {
    for (const [target, kind] of [
      ["cluster: broadcasts per second across nodes (vs official)", "rate"],
      ["cluster #5226: stream messages processed per node (vs official)", "count"],
      ["cluster #5226: main-thread CPU per node per 1000 broadcasts (vs official)", "ms"],
    ] as const) {
      targets.push({ target, where: "not run", kind, inMemory: NaN, sharded: NaN, ratio: NaN, op: ">=", bound: NaN, met: undefined, informational: true });
    }
  }
  return targets;
}

function targetValue(t: TargetRow, v: number): string {
  switch (t.kind) {
    case "time":
      return formatNs(v);
    case "bytes":
      return formatBytes(v);
    case "ms":
      return Number.isFinite(v) ? `${v.toFixed(2)} ms` : "n/a";
    case "rate":
      return Number.isFinite(v) ? `${Math.round(v)}/s` : "n/a";
    case "count":
      return Number.isFinite(v) ? v.toFixed(Number.isInteger(v) ? 0 : 1) : "n/a";
  }
}

const mark = (t: { met: boolean | undefined; floor?: number; absolute?: boolean }) =>
  (t.met === undefined ? "not measured" : t.met ? "✅ met" : "❌ missed") +
  (t.floor === undefined ? "" : ` (floor ${t.absolute ? formatNs(t.floor) : t.floor.toFixed(2)})`);
const boundText = (t: { op: "<=" | ">="; bound: number; absolute?: boolean }) =>
  t.absolute ? `${t.op === "<=" ? "≤" : "≥"} ${t.bound} ns (sharded)` : `${t.op === "<=" ? "≤" : "≥"} ${t.bound < 0.1 || t.bound % 0.1 > 1e-9 ? t.bound.toFixed(2) : t.bound.toFixed(1)}`;
const ratio3 = (r: number) => (Number.isFinite(r) ? r.toFixed(3) : "n/a");

/** A plain-text table: first column left-aligned, the others right-aligned. */
function plainTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join(" | ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("-+-"), ...rows.map(line)].join("\n");
}

function mdTable(header: string[], rows: string[][]): string[] {
  return [`| ${header.join(" | ")} |`, `|${header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)];
}

/** Ratios (sharded / in-memory) of main-thread CPU per workload, one column per cell. */
function gridCells(results: BenchResults): { header: string[]; rows: string[][] } {
  const sizes = [...results.sizes].sort((a, b) => a.n - b.n || a.k - b.k);
  const header = ["ratio sharded/in-memory", ...sizes.map((s) => s.label.replace(/ R=.*/, ""))];
  const rows: string[][] = [];
  const val = (f: (s: SizeResult) => number) => sizes.map((s) => ratioText(f(s)));
  rows.push([
    "populate from empty, cold start, main-thread CPU",
    ...val((s) => s.setup.sharded.populateMainCpuNsPerMembership / s.setup["in-memory"].populateMainCpuNsPerMembership),
  ]);
  rows.push(["main-thread heap per membership", ...val((s) => s.setup.sharded.memory.heapBytesPerMembership / s.setup["in-memory"].memory.heapBytesPerMembership)]);
  rows.push(["process RSS per membership", ...val((s) => s.setup.sharded.memory.rssBytesPerMembership / s.setup["in-memory"].memory.rssBytesPerMembership)]);
  const names: TaskName[] = [];
  for (const s of sizes) for (const t of s.tasks) if (!names.includes(t.name)) names.push(t.name);
  for (const name of names) {
    const label = sizes.flatMap((s) => s.tasks).find((t) => t.name === name)!.label;
    rows.push([
      `${label}: main-thread CPU`,
      ...sizes.map((s) => {
        const t = s.tasks.find((x) => x.name === name);
        return t ? ratioText(t.adapters.sharded.mainCpuNsPerUnit / t.adapters["in-memory"].mainCpuNsPerUnit) : "-";
      }),
    ]);
    rows.push([
      `${label}: wall median`,
      ...sizes.map((s) => {
        const t = s.tasks.find((x) => x.name === name);
        return t ? ratioText(t.adapters.sharded.wall.p50 / t.adapters["in-memory"].wall.p50) : "-";
      }),
    ]);
  }
  return { header, rows };
}

export function gridTable(results: BenchResults): string {
  if (results.sizes.length === 0) return "";
  const { header, rows } = gridCells(results);
  return `Size grid (ratios; "-": workload not run in that cell)\n${plainTable(header, rows)}`;
}

function targetRows(results: BenchResults): string[][] {
  return results.targets.map((t) =>
    t.informational
      ? [t.target, t.where, targetValue(t, t.inMemory), targetValue(t, t.sharded), ratio3(t.ratio), "none (issue 6)", "informational"]
      : [t.target, t.where, targetValue(t, t.inMemory), targetValue(t, t.sharded), ratio3(t.ratio), boundText(t), mark(t)],
  );
}
function uwsRows(uws: UwsResult): string[][] {
  const rows: string[][] = [];
  for (const shape of UWS_SHAPES) {
    const a = uws.summary["in-memory"][shape];
    const b = uws.summary.sharded[shape];
    const paired = uws.ratios[shape];
    rows.push([`${shape}: main-thread CPU per broadcast`, `${a.mainCpuUsPerBroadcast.toFixed(1)} µs`, `${b.mainCpuUsPerBroadcast.toFixed(1)} µs`, ratio3(paired.mainCpu)]);
    rows.push([`${shape}: time inside emit() per broadcast`, `${a.emitUsPerBroadcast.toFixed(1)} µs`, `${b.emitUsPerBroadcast.toFixed(1)} µs`, ratio3(paired.emit)]);
    rows.push([`${shape}: delivered messages per second`, `${Math.round(a.deliveredPerSecond)}/s`, `${Math.round(b.deliveredPerSecond)}/s`, ratio3(b.deliveredPerSecond / a.deliveredPerSecond)]);
    rows.push([`${shape}: delivered / sent`, a.deliveredFraction.toFixed(4), b.deliveredFraction.toFixed(4), ratio3(b.deliveredFraction / a.deliveredFraction)]);
  }
  return rows;
}

const TARGET_HEADER = ["target (issue 13, GC and event-loop delay: issue 4; uWS rows: issue 11; cluster rows: issue 6)", "where", "in-memory (cluster rows: official)", "sharded", "ratio", "target", "result"];

function e2eRows(e2e: E2EResult): string[][] {
  const a = e2e.summary["in-memory"];
  const b = e2e.summary.sharded;
  const row = (label: string, x: number, y: number, f: (v: number) => string) => [label, f(x), f(y), ratio3(y / x)];
  const ms = (v: number) => `${v.toFixed(2)} ms`;
  return [
    row("delivered messages per second", a.deliveredPerSecond, b.deliveredPerSecond, (v) => `${Math.round(v)}/s`),
    row("delivered / sent", a.deliveredFraction, b.deliveredFraction, (v) => v.toFixed(4)),
    row("delivery latency p50", a.latencyP50Ms, b.latencyP50Ms, ms),
    row("delivery latency p99", a.latencyP99Ms, b.latencyP99Ms, ms),
    row("server event-loop delay p99", a.eventLoopDelayP99Ms, b.eventLoopDelayP99Ms, ms),
    row("server main-thread CPU per second of storm", a.mainCpuMsPerSecond, b.mainCpuMsPerSecond, (v) => `${v.toFixed(0)} ms`),
    row("server shard-worker CPU per second of storm", a.workerCpuMsPerSecond, b.workerCpuMsPerSecond, (v) => `${v.toFixed(0)} ms`),
    row("largest tick lateness", a.maxTickLagMs, b.maxTickLagMs, ms),
  ];
}

function scaleRows(scale: StormResult): string[][] {
  const a = scale.summary["in-memory"];
  const b = scale.summary.sharded;
  const row = (label: string, x: number, y: number, f: (v: number) => string) => [label, f(x), f(y), ratio3(y / x)];
  const ms = (v: number) => `${v.toFixed(2)} ms`;
  const rate = (v: number) => `${Math.round(v)}/s`;
  return [
    row("fixed rate: delivery latency p50", a.latencyP50Ms, b.latencyP50Ms, ms),
    row("fixed rate: delivery latency p99", a.latencyP99Ms, b.latencyP99Ms, ms),
    row("fixed rate: delivery latency p99.9", a.latencyP999Ms, b.latencyP999Ms, ms),
    row("fixed rate: server event-loop delay p99", a.eventLoopDelayP99Ms, b.eventLoopDelayP99Ms, ms),
    row("fixed rate: server GC pause p99", a.gcPauseP99Ms, b.gcPauseP99Ms, ms),
    row("fixed rate: delivered per second", a.fixedDeliveredPerSecond, b.fixedDeliveredPerSecond, rate),
    row("fixed rate: delivered / expected", a.deliveredFraction, b.deliveredFraction, (v) => v.toFixed(4)),
    row("fixed rate: server main-thread CPU per second", a.fixedMainCpuMsPerSecond, b.fixedMainCpuMsPerSecond, (v) => `${v.toFixed(0)} ms`),
    row("saturating: delivered per second", a.saturatingDeliveredPerSecond, b.saturatingDeliveredPerSecond, rate),
    row("saturating: server main-thread CPU per delivered message", a.saturatingMainCpuUsPerDelivery, b.saturatingMainCpuUsPerDelivery, (v) => `${v.toFixed(1)} µs`),
  ];
}

function scaleIntro(scale: StormResult): string {
  const c = scale.config;
  return (
    `${c.clients} raw websocket clients (engine.io/socket.io spoken by hand on bare TCP sockets, one process: bench/raw-client.ts) × ${c.k} rooms of ~${c.roomSize} (${scale.rooms} rooms, ${scale.memberships} memberships with the own-id rooms);` +
    ` ${c.durationMs} ms at ${(c.roomsPerTick * 1000) / c.tickMs} small-room broadcasts/s (~${Math.round(scale.offeredPerSecond)} deliveries/s offered) with ${(c.churnPerTick * 1000) / c.tickMs} leave+join and ${(c.reconnectPerTick * 1000) / c.tickMs} disconnect+reconnect (leave all, connect, join ${c.k} rooms) per second, then ${c.durationMs} ms saturating (broadcasts back to back, an event-loop turn every ${c.saturateBatch}), after an unmeasured ${c.warmUpMs} ms at the fixed rate;` +
    ` each payload is the server's monotonic clock at the emit; ${c.rounds} round(s), the adapters in turn, medians over rounds.`
  );
}

function gcRows(gc: GcResult): string[][] {
  const a = gc.adapters["in-memory"];
  const b = gc.adapters.sharded;
  const ms = (v: number) => `${v.toFixed(2)} ms`;
  const row = (label: string, x: number, y: number, f: (v: number) => string) => [label, f(x), f(y), ratio3(y / x)];
  const rows = [
    row("GC pause p50", a.pauses.p50, b.pauses.p50, ms),
    row("GC pause p99", a.pauses.p99, b.pauses.p99, ms),
    row("GC pause max", a.pauses.max, b.pauses.max, ms),
    row("GC pauses", a.pauses.count, b.pauses.count, String),
    row("GC pause total per second", (a.pauses.total / a.durationMs) * 1000, (b.pauses.total / b.durationMs) * 1000, ms),
    row("broadcasts per second", (a.broadcasts / a.durationMs) * 1000, (b.broadcasts / b.durationMs) * 1000, (v) => v.toFixed(0)),
    row("heap used at start", a.heapUsedBefore / 2 ** 20, b.heapUsedBefore / 2 ** 20, (v) => `${v.toFixed(0)} MiB`),
  ];
  for (const kind of [...new Set([...Object.keys(a.byKind), ...Object.keys(b.byKind)])].sort()) {
    const x = a.byKind[kind];
    const y = b.byKind[kind];
    const f = (s: GcStormResult["pauses"] | undefined) => (s ? `${s.count} × p50 ${s.p50.toFixed(2)} / max ${s.max.toFixed(2)} ms` : "0");
    rows.push([`${kind} GCs`, f(x), f(y), ""]);
  }
  const largest = (g: GcStormResult) => g.largest.map((p) => `${p.ms.toFixed(1)} (${p.kind.replace(/ \(.*/, "")}${p.flags ? `, flags ${p.flags}` : ""}, at ${(p.atMs / 1000).toFixed(1)} s)`).join("; ") || "-";
  rows.push(["longest pauses, ms", largest(a), largest(b), ""]);
  return rows;
}

function crossoverRows(c: CrossoverResult): string[][] {
  return c.points.map((p) => [
    formatCount(p.cost),
    formatCount(p.recipients),
    formatNs(p.mainOnlyNs),
    formatNs(p.offloadNs),
    ratio3(p.offloadNs / p.mainOnlyNs),
    String(p.timeouts),
  ]);
}
const CROSSOVER_HEADER = ["memberships visited", "recipients", "main thread alone", "main thread + workers", "ratio", "worker timeouts"];

/** The measured crossover against the threshold in effect, and what the calibration measured. */
export function crossoverSummary(c: CrossoverResult): string {
  const cal = c.calibration;
  return (
    `offloading wins from ${Number.isFinite(c.crossover) ? `${formatCount(c.crossover)} memberships` : "no measured size"} on; offloadThreshold in effect ${formatCount(c.offloadThreshold)}` +
    (cal
      ? ` (${c.calibratedThresholds ? `the median of the pool's calibrations, which chose ${c.calibratedThresholds.map(formatCount).join(", ")}; ` : ""}the latest: asking the workers costs ${signedNs(cal.offloadCostNs)}, ${formatNs(cal.aloneNsPerMembership)} per membership alone, ${formatNs(cal.offloadedNsPerMembership)} with the workers;` +
        ` ${warmUpSummary(cal)}; the calibration kept the main thread ${formatNs(cal.mainThreadNs)} in all, at most ${formatNs(cal.longestBlockNs)} at once)`
      : " (given)") +
    `; measured crossover / threshold in effect: ${crossoverRatio(c.crossover, c.offloadThreshold)}` +
    (c.recalibrated
      ? `. The calibration run again right after these points: ${formatCount(c.recalibrated.threshold)} (asking ${signedNs(c.recalibrated.offloadCostNs)}, ${formatNs(c.recalibrated.aloneNsPerMembership)} alone, ${formatNs(c.recalibrated.offloadedNsPerMembership)} with the workers; ${warmUpSummary(c.recalibrated)}; main thread ${formatNs(c.recalibrated.mainThreadNs)}, at most ${formatNs(c.recalibrated.longestBlockNs)} at once); crossover / that: ${crossoverRatio(c.crossover, c.recalibrated.threshold)}`
      : "")
  );
}

/** How the workers' warm-up before the calibration's probes ended. */
function warmUpSummary(cal: Calibration): string {
  // Results saved before the warm-up existed have no such fields.
  if (typeof cal.warmUpRounds !== "number") return "no warm-up of the workers";
  return `the workers ${cal.workersWarm ? "warm" : "still warming"} after ${cal.warmUpRounds} warm-up rounds, a worker's own ${formatNs(cal.workerNsPerMembership)} per membership`;
}

/** A fitted cost may come out negative (noise): shown with its sign. */
function signedNs(ns: number): string {
  return ns < 0 ? `−${formatNs(-ns)}` : formatNs(ns);
}

function crossoverRatio(crossover: number, threshold: number): string {
  return Number.isFinite(crossover) ? ratio3(crossover / threshold) : "n/a (the workers never won)";
}

/** The end of the terminal output: crossover, targets, GC and end to end. */
export function summaryText(results: BenchResults): string {
  const parts: string[] = [];
  for (const size of results.sizes) {
    if (size.crossover) parts.push(`Offload crossover, ${size.label}: ${crossoverSummary(size.crossover)}\n${plainTable(CROSSOVER_HEADER, crossoverRows(size.crossover))}`);
  }
  if (results.gc) parts.push(`GC while broadcasting, ${results.gc.label}\n${plainTable(["", "in-memory", "sharded", "ratio"], gcRows(results.gc))}`);
  if (results.e2e) parts.push(`End to end, ${results.e2e.config.clients} socket.io-client websocket connections\n${plainTable(["", "in-memory", "sharded", "ratio"], e2eRows(results.e2e))}`);
  if (results.uws) parts.push(`uWebSockets.js (io.attachApp), ${results.uws.config.clients} socket.io-client websocket connections\n${plainTable(["", "in-memory", "sharded", "ratio"], uwsRows(results.uws))}`);
  if (results.scale) parts.push(`Storm at scale (issue 13): ${scaleIntro(results.scale)}\n${plainTable(["", "in-memory", "sharded", "ratio"], scaleRows(results.scale))}`);
  if (results.cluster) parts.push(`Cluster through Redis (issue 6): the official @socket.io/redis-streams-adapter and ours\n${plainTable(["", "official", "sharded", "ratio"], clusterRows(results.cluster))}`);
  if (results.ipcCluster) {
    const [storm, locality] = ipcClusterRows(results.ipcCluster);
    parts.push(`Node.js cluster (issue 12): end-to-end storm, 1 process vs a cluster\n${plainTable(["", "1 process", `cluster of ${results.ipcCluster.config.storm.workers}`, "ratio"], storm)}`);
    parts.push(`Node.js cluster (issue 12), many small rooms (#5226): @socket.io/cluster-adapter and ours\n${plainTable(["", "official", "sharded", "ratio"], locality)}`);
  }
  parts.push(`Targets\n${plainTable(TARGET_HEADER, targetRows(results))}`);
  for (const skip of results.skipped) parts.push(`Skipped: ${skip.label}: ${skip.reason}`);
  return parts.join("\n\n");
}

export function markdown(results: BenchResults): string {
  const m = results.machine;
  const out: string[] = [];
  out.push("# socket.io-sharded-adapter benchmark: sharded vs socket.io's in-memory adapter", "");
  out.push(`- Command: \`${results.command}\``);
  out.push(`- Date: ${results.date}`);
  const g = results.git;
  out.push(
    `- Code: commit ${g.commit}` +
      (g.uncommittedAdapterFiles.length > 0 ? `, plus uncommitted changes in ${g.uncommittedAdapterFiles.join(", ")} (the build is of the work tree)` : ", adapter sources unmodified"),
  );
  out.push(`- Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}`);
  out.push(`- Load average at start / end: ${m.loadAverageAtStart.map((x) => x.toFixed(2)).join(" ")} / ${m.loadAverageAtEnd.map((x) => x.toFixed(2)).join(" ")}`);
  const c = results.config;
  out.push(
    `- Config: mode ${c.mode}; sharded adapter \`createAdapter({ workers: ${c.workers}${c.offloadThreshold === "default" ? "" : `, offloadThreshold: ${c.offloadThreshold}`} })\`` +
      ` (offloadThreshold ${c.offloadThreshold === "default" ? "the library default: calibrated at pool start" : c.offloadThreshold}); seed ${c.seed}; shapes ${c.shapes.join(", ")} (Zipf exponent ${c.zipf})`,
  );
  out.push(
    `- Total time: ${results.elapsedSeconds.toFixed(1)} s (` +
      [
        ...results.sizes.map((s) => `${s.label.replace(/ R=.*/, "")}: ${s.elapsedSeconds.toFixed(0)} s`),
        ...(results.e2e ? [`end to end: ${results.e2e.elapsedSeconds.toFixed(0)} s`] : []),
        ...(results.uws ? [`uWS: ${results.uws.elapsedSeconds.toFixed(0)} s`] : []),
        ...(results.cluster ? [`cluster: ${results.cluster.elapsedSeconds.toFixed(0)} s`] : []),
      ].join(", ") +
      ")",
    "",
  );
  out.push("Ratio = sharded / in-memory: below 1 the sharded adapter is faster (or smaller).", "");

  out.push("## Targets", "");
  out.push(
    "Issue 13's targets (GC pause and event-loop delay: issue 4's), as ratios sharded / in-memory on each workload shape, judged from this run's numbers. \"Main-thread busy\" is main-thread CPU per op (or per membership); wall times are in the tables below.",
    "",
  );
  out.push(...mdTable(TARGET_HEADER, targetRows(results)), "");
  const met = results.targets.filter((t) => t.met === true).length;
  const missed = results.targets.filter((t) => t.met === false).length;
  const informational = results.targets.filter((t) => t.informational).length;
  out.push(
    `${met} met, ${missed} missed, ${results.targets.length - met - missed - informational} not measured; ${informational} informational (the cluster rows: issue 6 sets no number, their baseline is the official Redis Streams adapter, not the in-memory one).`,
    "",
  );

  if (results.chart.file) {
    out.push("## Cost per recipient against N", "");
    out.push(`![main-thread CPU per recipient against N](${results.chart.file})`, "");
    if (results.chart.points.length > 0) {
      out.push(
        ...mdTable(
          ["workload (K=10)", "adapter", ...[...new Set(results.chart.points.map((p) => p.n))].map((n) => `N=${n}`)],
          [...new Set(results.chart.points.map((p) => `${p.label}\u0000${p.adapter}`))].map((key) => {
            const [label, adapter] = key.split("\u0000");
            return [
              label,
              adapter,
              ...[...new Set(results.chart.points.map((p) => p.n))].map((n) => {
                const p = results.chart.points.find((x) => x.label === label && x.adapter === adapter && x.n === n);
                return p ? `${formatNs(p.nsPerRecipient)} (${p.recipientsPerOp} rcpt)` : "-";
              }),
            ];
          }),
        ),
        "",
      );
    }
  }

  if (results.sizes.length > 0) {
    out.push("## Size grid", "");
    out.push(
      "Ratios sharded / in-memory per N×K cell (R = max(1000, N·K/100) rooms: a mean room of about 100). The headline cell runs every workload; the others run the reduced set. Absolute numbers are in each cell's section below.",
      "",
    );
    const { header, rows } = gridCells(results);
    out.push(...mdTable(header, rows), "");
  }
  if (results.skipped.length > 0) {
    out.push("Not run:", "");
    for (const skip of results.skipped) out.push(`- ${skip.label}: ${skip.reason}`);
    out.push("");
  }

  if (results.e2e) {
    const e = results.e2e;
    const s = e.config.schedule;
    out.push("## End to end: socket.io server and socket.io-client", "");
    out.push(
      `A real socket.io server (http on 127.0.0.1, random port) with each adapter in turn (${e.config.rounds} round(s), alternating order; medians over the rounds), and ${e.config.clients} socket.io-client websocket connections in a separate process.` +
        ` On connection each client joins ${e.config.k} rooms of ${e.workload.rooms} (Zipf 1; largest rooms ${e.workload.largestRooms}; ${e.workload.memberships} memberships with the own-id rooms).` +
        ` Storm: ${s.durationMs} ms, a tick every ${s.tickMs} ms; per tick ${s.roomsPerTick} emits to rooms drawn uniformly (so of skewed sizes), ${s.ownIdPerTick} to single sockets, every ${s.unionEvery}th tick one to a union of ${s.unionRooms} rooms, every ${s.everyoneEvery}th tick one to everyone;` +
        ` ${Math.round(e.summary["in-memory"].offeredPerSecond)} deliveries per second offered. The payload is the server's monotonic clock at the emit; latency is the client's clock at receipt minus that (same machine, same clock).` +
        " Delivered per second = messages received / (last receipt − storm start). Event-loop delay: `monitorEventLoopDelay({ resolution: 1 })` on the server's main thread over the storm and 5 ticks after the last one (at most 200 ms).",
      "",
    );
    out.push(...mdTable(["", "in-memory", "sharded", "ratio"], e2eRows(e)), "");
    out.push(
      ...mdTable(
        ["round", "adapter", "connect", "delivered / expected", "delivered/s", "latency p50 / p99 / max", "event-loop delay p50 / p99 / max", "server main / worker CPU", "client CPU", "emits offloaded to workers"],
        e.rounds.map((r) => [
          String(r.round + 1),
          r.adapter,
          `${(r.clients.connectMs / 1000).toFixed(1)} s`,
          `${r.clients.received} / ${r.server.expectedDeliveries}`,
          `${Math.round(r.deliveredPerSecond)}`,
          `${r.clients.latency.p50.toFixed(2)} / ${r.clients.latency.p99.toFixed(2)} / ${r.clients.latency.max.toFixed(1)} ms`,
          `${r.server.eventLoopDelay.p50.toFixed(2)} / ${r.server.eventLoopDelay.p99.toFixed(2)} / ${r.server.eventLoopDelay.max.toFixed(1)} ms`,
          `${r.server.mainCpuMs.toFixed(0)} / ${r.server.workerCpuMs.toFixed(0)} ms`,
          `${r.clients.cpuMs.toFixed(0)} ms`,
          r.adapter === "sharded" ? `${r.server.offloaded} of ${r.server.emits}` : "-",
        ]),
      ),
      "",
    );
  }

  if (results.uws) out.push(...uwsMarkdown(results.uws));
  if (results.scale) {
    out.push("## Storm at scale: about a million memberships, churn, small-room broadcasts", "", scaleIntro(results.scale), "");
    out.push(...mdTable(["", "in-memory", "sharded", "ratio"], scaleRows(results.scale)), "");
  }

  for (const size of results.sizes) {
    if (!size.crossover) continue;
    out.push(`## Offload crossover: ${size.label}`, "");
    out.push(
      "The sharded runner's own index and pool, unions of random rooms of growing total size: the main thread's busy time (wall, its wait for the workers included) selecting the recipients alone against with the workers, alternated, median of 15 each. Delivery is the same work either way and is left out. " +
        crossoverSummary(size.crossover) +
        ".",
      "",
    );
    out.push(...mdTable(CROSSOVER_HEADER, crossoverRows(size.crossover)), "");
  }

  if (results.cluster) out.push(...clusterMarkdown(results.cluster));
  if (results.ipcCluster) out.push(...ipcClusterMarkdown(results.ipcCluster));

  if (results.gc) {
    const gc = results.gc;
    out.push(`## GC while broadcasting: ${gc.label}, ${gc.memberships} memberships held`, "");
    out.push(
      `Each adapter's runner holds the populated membership and broadcasts back to back for ${gc.durationMs} ms (everyone, union of 100 rooms, one ~100 room, socket.to(room), 32 own-id rooms, in rotation, an event-loop turn before each), one adapter at a time;` +
        " a `PerformanceObserver` records every 'gc' entry of the main thread (its duration is the pause). No forced gc during the storm.",
      "",
    );
    out.push(...mdTable(["", "in-memory", "sharded", "ratio"], gcRows(gc)), "");
    const few = Math.min(gc.adapters["in-memory"].pauses.count, gc.adapters.sharded.pauses.count);
    if (few < 100) {
      out.push(
        `With ${few} pauses on one side, its p99 is (nearly) its longest pause: one pause stretched by another process on a loaded machine decides it. The pause count and the total GC time per second are the steadier comparison.`,
        "",
      );
    }
  }

  for (const size of results.sizes) {
    out.push(`## ${size.label}`, "");
    const w = size.workload;
    out.push(
      `Workload: ${w.sockets} sockets, each in its own-id room plus ${w.roomsPerSocket} of ${w.rooms} rooms (${w.zipfExponent === 0 ? "uniform" : `Zipf ${w.zipfExponent}`});` +
        ` ${w.memberships} memberships; largest rooms ${w.largestRoomSizes}; room size median ${w.roomSizeMedian}, p90 ${w.roomSizeP90}, p99 ${w.roomSizeP99};` +
        ` small room ${w.smallRoomSize}, biggest room ${w.bigRoomSize}; the 100 rooms hold ${w.hundredRoomsMemberships} memberships.` +
        ` ${size.rounds} round(s) per workload and adapter, tinybench ${size.timing.time} ms, ≥ ${size.timing.iterations} iterations, warmup ${size.timing.warmupTime} ms / ${size.timing.warmupIterations} iterations per round. Measured in ${size.elapsedSeconds.toFixed(1)} s.`,
      "",
    );
    const withTargets = results.targets.some((t) => t.where === size.label);
    out.push(`| ${HEADER.join(" | ")} |${withTargets ? " target | result |" : ""}`, `|---|---:|---:|---:|${withTargets ? "---:|---|" : ""}`);
    for (const r of results.rows.filter((x) => x.size === size.label)) {
      let extra = "";
      if (withTargets) {
        const t = results.targets.find((x) => x.where === size.label && x.rowKey === r.workload);
        extra = t ? ` ${boundText(t)} | ${mark(t)} |` : " | |";
      }
      out.push(`| ${r.workload} | ${cell(r, r.inMemory)} | ${cell(r, r.sharded)} | ${ratioText(r.ratio)} |${extra}`);
    }
    out.push(
      "",
      `Details (sharded pool: queries offloaded to the workers per op, and shards the workers answered per op, out of the worker count; shard-worker CPU is that of the ${size.workerThreads} threads that started with the sharded adapter; other threads = process CPU − main thread − shard workers: V8's GC and compiler helpers, libuv):`,
      "",
    );
    out.push(
      "| workload | recipients per op (join/leave: memberships per batch) | in-memory: wall mean ± rme, samples | sharded: wall mean ± rme, samples | process CPU (all threads) in-memory / sharded | sharded: shard-worker CPU | other threads in-memory / sharded | offloaded/op | worker shards/op |",
    );
    out.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (const t of size.tasks) {
      const a = t.adapters["in-memory"];
      const b = t.adapters.sharded;
      out.push(
        `| ${t.label} | ${formatCount(t.recipientsPerOp)} | ${formatNs(a.wall.mean * MS_TO_NS)} ± ${a.wall.rme.toFixed(1)}%, ${a.wall.samples} | ${formatNs(b.wall.mean * MS_TO_NS)} ± ${b.wall.rme.toFixed(1)}%, ${b.wall.samples}` +
          ` | ${formatNs(a.processCpuNsPerUnit)} / ${formatNs(b.processCpuNsPerUnit)} | ${formatNs(b.workerCpuNsPerUnit)}` +
          ` | ${formatNs(a.processCpuNsPerUnit - a.mainCpuNsPerUnit - a.workerCpuNsPerUnit)} / ${formatNs(b.processCpuNsPerUnit - b.mainCpuNsPerUnit - b.workerCpuNsPerUnit)}` +
          ` | ${b.pool ? b.pool.offloadedPerOp.toFixed(2) : "-"} | ${b.pool ? b.pool.shardsByWorkersPerOp.toFixed(2) : "-"} |`,
      );
    }
    const mi = size.setup["in-memory"].memory;
    const ms = size.setup.sharded.memory;
    out.push(
      "",
      `Memory after populating (after gc): heap used ${(mi.after.heapUsed / 2 ** 20).toFixed(1)} / ${(ms.after.heapUsed / 2 ** 20).toFixed(1)} MiB,` +
        ` RSS ${(mi.after.rss / 2 ** 20).toFixed(1)} / ${(ms.after.rss / 2 ** 20).toFixed(1)} MiB (in-memory / sharded);` +
        ` RSS before any membership ${(mi.rssBaseline / 2 ** 20).toFixed(1)} / ${(ms.rssBaseline / 2 ** 20).toFixed(1)} MiB (the sharded process includes its worker threads);` +
        ` \`external\` growth (includes SharedArrayBuffers) per membership ${formatBytes(mi.externalBytesPerMembership)} / ${formatBytes(ms.externalBytesPerMembership)};` +
        ` sharded shared memory ${ms.sharedMemoryBytes !== undefined ? (ms.sharedMemoryBytes / 2 ** 20).toFixed(1) + " MiB" : "n/a"};` +
        ` populating took ${(size.setup["in-memory"].populateMs / 1000).toFixed(1)} / ${(size.setup.sharded.populateMs / 1000).toFixed(1)} s.`,
      "",
    );
  }
  out.push("## How it is measured", "");
  for (const note of results.notes) out.push(`- ${note}`);
  out.push("");
  return out.join("\n");
}

function clusterRows(cluster: ClusterResult): string[][] {
  const o = cluster.summary.official;
  const x = cluster.summary.sharded;
  const c = cluster.config;
  const row = (label: string, a: number, b: number, f: (v: number) => string) => [label, f(a), f(b), ratio3(b / a)];
  const us = (v: number) => `${v.toFixed(1)} µs`;
  const ms = (v: number) => `${v.toFixed(2)} ms`;
  const two = `two nodes (${c.twoNode.clients} clients on B)`;
  const many = `${c.rooms.nodes} nodes, rooms of ${c.rooms.clientsPerRoom} (#5226)`;
  const perNode = (f: (p: ClusterResult["summary"]["sharded"]["rooms"]["perNode"][number]) => number, digits: number) => (s: ClusterResult["summary"]["sharded"]) =>
    s.rooms.perNode.map((p) => f(p).toFixed(digits)).join(" / ");
  const yes = (b: boolean) => (b ? "yes" : "NO");
  return [
    row(`${two}: broadcasts per second, every client served`, o.twoNode.broadcastsPerSecond, x.twoNode.broadcastsPerSecond, (v) => `${Math.round(v)}/s`),
    row(`${two}: latency A emit → client, p50`, o.twoNode.latencyP50Ms, x.twoNode.latencyP50Ms, ms),
    row(`${two}: latency A emit → client, p99`, o.twoNode.latencyP99Ms, x.twoNode.latencyP99Ms, ms),
    row(`${two}: main-thread CPU per broadcast, sender A`, o.twoNode.senderMainCpuUsPerBroadcast, x.twoNode.senderMainCpuUsPerBroadcast, us),
    row(`${two}: main-thread CPU per broadcast, receiver B`, o.twoNode.receiverMainCpuUsPerBroadcast, x.twoNode.receiverMainCpuUsPerBroadcast, us),
    [`${two}: B's shard-worker CPU per broadcast`, "-", us(x.twoNode.receiverWorkerCpuUsPerBroadcast), ""],
    [`${two}: every client got every broadcast once, in order`, yes(o.twoNode.exact), yes(x.twoNode.exact), ""],
    row(`${many}: stream entries read per node (mean)`, o.rooms.entriesReadPerNode, x.rooms.entriesReadPerNode, (v) => v.toFixed(0)),
    row(`${many}: messages processed per node (mean)`, o.rooms.processedPerNode, x.rooms.processedPerNode, (v) => v.toFixed(0)),
    [`${many}: processed, node by node`, perNode((p) => p.processed, 0)(o), perNode((p) => p.processed, 0)(x), ""],
    row(`${many}: main-thread CPU per node per 1000 broadcasts (mean)`, o.rooms.mainCpuMsPer1000, x.rooms.mainCpuMsPer1000, (v) => `${v.toFixed(1)} ms`),
    [`${many}: main-thread CPU per 1000, node by node, ms`, perNode((p) => p.mainCpuMsPer1000, 1)(o), perNode((p) => p.mainCpuMsPer1000, 1)(x), ""],
    row(`${many}: ≈ time in the adapter's stream-entry handler per node per 1000`, o.rooms.handlerMsPer1000, x.rooms.handlerMsPer1000, (v) => `${v.toFixed(1)} ms`),
    row(`${many}: entry handler per entry for another node's rooms (median)`, o.rooms.foreignUsPerEntry, x.rooms.foreignUsPerEntry, us),
    row(`${many}: entry handler per entry for this node's rooms (median)`, o.rooms.localUsPerEntry, x.rooms.localUsPerEntry, us),
    row(`${many}: entry handler per own entry (median)`, o.rooms.ownUsPerEntry, x.rooms.ownUsPerEntry, us),
    [`${many}: shard-worker CPU per node per 1000 broadcasts`, "-", `${x.rooms.workerCpuMsPer1000.toFixed(1)} ms`, ""],
    [`${many}: every targeted client got its message exactly once`, yes(o.rooms.exact), yes(x.rooms.exact), ""],
  ];
}

/** The storm rows (1 process, cluster) and the locality rows (official, sharded). */
function ipcClusterRows(result: IpcClusterResult): [string[][], string[][]] {
  const { process: one, cluster } = result.storm.summary;
  const o = result.locality.summary.official;
  const x = result.locality.summary.sharded;
  const row = (label: string, a: number, b: number, f: (v: number) => string) => [label, f(a), f(b), ratio3(b / a)];
  const ms = (v: number) => `${v.toFixed(2)} ms`;
  const yes = (b: boolean) => (b ? "yes" : "NO");
  const storm = [
    row("delivered messages per second", one.deliveredPerSecond, cluster.deliveredPerSecond, (v) => `${Math.round(v)}/s`),
    row("delivered / sent", one.deliveredFraction, cluster.deliveredFraction, (v) => `${(v * 100).toFixed(1)}%`),
    row("latency emit → client, p50", one.latencyP50Ms, cluster.latencyP50Ms, ms),
    row("latency emit → client, p99", one.latencyP99Ms, cluster.latencyP99Ms, ms),
    row("server main-thread CPU, ms per second (all workers)", one.mainCpuMsPerSecond, cluster.mainCpuMsPerSecond, (v) => v.toFixed(0)),
    ["primary CPU, ms per second", "-", cluster.primaryCpuMsPerSecond.toFixed(0), ""],
  ];
  const l = result.config.locality;
  const many = `${l.workers} workers, rooms of ${l.clientsPerRoom}`;
  const locality = [
    row(`${many}: IPC messages received per worker per 1000 broadcasts`, o.ipcReceivedPerWorkerPer1000, x.ipcReceivedPerWorkerPer1000, (v) => v.toFixed(0)),
    row(`${many}: main-thread CPU per worker per 1000 broadcasts`, o.mainCpuMsPerWorkerPer1000, x.mainCpuMsPerWorkerPer1000, (v) => `${v.toFixed(1)} ms`),
    row(`${many}: primary CPU per 1000 broadcasts`, o.primaryCpuMsPer1000, x.primaryCpuMsPer1000, (v) => `${v.toFixed(1)} ms`),
    [`${many}: every targeted client got its message exactly once`, yes(o.exact), yes(x.exact), ""],
  ];
  return [storm, locality];
}

function ipcClusterMarkdown(result: IpcClusterResult): string[] {
  const c = result.config;
  const e = c.storm.e2e;
  const l = c.locality;
  const [storm, locality] = ipcClusterRows(result);
  return [
    "## Node.js cluster (issue 12)",
    "",
    `End-to-end storm (the e2e part's workload and schedule: ${e.clients} websocket clients, ${e.schedule.durationMs} ms, clients in a process of their own): one server process with our adapter (\`workers: ${e.workers}\`) against a cluster of ${c.storm.workers} workers behind this package's \`setupPrimary()\`,` +
      ` each \`createAdapter({ cluster: true, workers: 1 })\` on a port of its own, client i on worker i mod ${c.storm.workers}, each worker sending its share of the emits (single-socket emits by the worker of their socket). ${e.rounds} round(s), alternating; medians. Ratio = cluster / 1 process.`,
    "",
    ...mdTable(["", "1 process", `cluster of ${c.storm.workers}`, "ratio"], storm),
    "",
    `Many small rooms (socket.io issue #5226): ${l.workers} workers × ${l.roomsPerWorker} rooms × ${l.clientsPerRoom} clients, each worker's clients in its own rooms; ${l.broadcasts} broadcasts per round (after ${l.warmupBroadcasts} of warm-up), each worker sending its share to random rooms of the other workers, \`emit("b", id, text)\` with ${l.payloadBytes} bytes of text.` +
      " Official: `@socket.io/cluster-adapter` 0.3.0, its primary and workers (every worker gets every other worker's broadcast). Ours: our primary and workers (the primary sends a broadcast only to the workers holding its rooms)." +
      ` IPC messages received: messages with the adapters' marker arriving on the worker's channel (heartbeats every ${c.heartbeatInterval / 1000} s: next to none). Main-thread CPU as in the Redis part. ${c.rounds} round(s), alternating; medians. Ratio = sharded / official. Measured in ${result.elapsedSeconds.toFixed(1)} s.`,
    "",
    ...mdTable(["", "official", "sharded", "ratio"], locality),
    "",
  ];
}

function clusterMarkdown(cluster: ClusterResult): string[] {
  const c = cluster.config;
  const out: string[] = [];
  out.push("## Cluster through Redis (issue 6): the official Redis Streams adapter and ours", "");
  out.push(
    `A redis-server ${cluster.redisVersion} per kind, started by the bench on a loopback port; each node a process (\`@socket.io/redis-streams-adapter\` 0.3.1 or ours with \`workers: 1\`, both over node-redis v5), socket.io-client websocket clients in other processes.` +
      ` Both kinds' clusters are up side by side and measured one at a time, alternating round by round (${c.rounds} rounds, A B then B A); medians over the rounds. Ratio = sharded / official. Measured in ${cluster.elapsedSeconds.toFixed(1)} s (start-up and connections included).`,
    "",
    `Two nodes: A broadcasts to one room whose ${c.twoNode.clients} members are all on B, for ${c.twoNode.durationMs} ms per round (after a ${c.twoNode.warmupMs} ms warm-up), at most ${c.twoNode.window} broadcasts outstanding (paced by the clients' acks).` +
      ` Many small rooms (socket.io issue #5226): ${c.rooms.nodes} nodes × ${c.rooms.roomsPerNode} rooms × ${c.rooms.clientsPerRoom} clients, each node's clients in its own rooms; ${c.rooms.broadcasts} broadcasts per round (after ${c.rooms.warmupBroadcasts} of warm-up), each node sending its share to random rooms of the other nodes, each broadcast \`emit("b", id, text)\` with ${c.rooms.payloadBytes} bytes of text.` +
      " A node reads every entry of the others; the official adapter decodes and applies each, ours skips undecoded the broadcasts to rooms with no member on the node." +
      " Entry handler: the method the stream reader calls per entry (official `onRawMessage`: decode + apply, its own entries included, which it decodes then drops; ours `onStreamEntry`: the room check, then decode + apply unless skipped), wrapped on the adapter instance and timed per call (hrtime; the median per kind of entry, since a call preempted by another process on a loaded machine takes milliseconds):" +
      " entries for another node's rooms (those ours skips), for this node's rooms (decoded, delivered to its clients), the node's own entries (told apart by the room names in the entry's data). The \"≈ time per 1000\" row is each kind's median × its entries: the part of a node's work the skip can save. The rest of the main-thread CPU (XREAD and parsing its reply, the node's own XADDs, deliveries, socket.io) is the same work for both.",
    "",
  );
  out.push(...mdTable(["", "official", "sharded", "ratio"], clusterRows(cluster)), "");
  out.push(
    ...mdTable(
      ["round", "adapter", "broadcasts", "broadcasts/s", "delivered / expected", "out of sequence", "latency p50 / p99 / max", "main CPU A / B", "B shard worker CPU", "clients' process CPU"],
      cluster.twoNode.map((r) => [
        String(r.round + 1),
        r.kind,
        String(r.broadcasts),
        String(Math.round(r.broadcastsPerSecond)),
        `${r.deliveries} / ${r.expectedDeliveries}`,
        String(r.orderErrors),
        `${r.latency.p50.toFixed(2)} / ${r.latency.p99.toFixed(2)} / ${r.latency.max.toFixed(1)} ms`,
        `${r.sender.mainCpuMs.toFixed(0)} / ${r.receiver.mainCpuMs.toFixed(0)} ms`,
        `${r.receiver.workerCpuMs.toFixed(0)} ms`,
        `${r.clientsCpuMs.toFixed(0)} ms`,
      ]),
    ),
    "",
  );
  out.push(
    ...mdTable(
      ["round", "adapter", "node", "emitted", "others' broadcasts (to this node)", "entries read", "processed", "skipped", "main CPU", "per 1000 broadcasts", "entry handler, median per call (entries): for others' rooms / this node's / own entries", "shard worker CPU", "delivered / expected (cluster)", "exact"],
      cluster.rooms.flatMap((r) =>
        r.nodes.map((n) => [
          String(r.round + 1),
          r.kind,
          n.name,
          String(n.emitted),
          `${n.othersBroadcasts} (${n.forThisNode})`,
          String(n.entriesRead),
          String(n.processed),
          String(n.skipped),
          `${n.cpu.mainCpuMs.toFixed(0)} ms`,
          `${((n.cpu.mainCpuMs * 1000) / r.broadcasts).toFixed(1)} ms`,
          [n.foreign, n.local, n.own].map((h) => `${h.p50Us.toFixed(1)} µs (${h.entries})`).join(" / "),
          `${n.cpu.workerCpuMs.toFixed(0)} ms`,
          `${r.check.received} / ${r.check.expected}`,
          r.exact ? "yes" : `NO (${r.check.missing} missing, ${r.check.duplicates} duplicates, ${r.check.unexpected} unexpected)`,
        ]),
      ),
    ),
    "",
  );
  return out;
}

function uwsMarkdown(uws: UwsResult): string[] {
  const c = uws.config;
  const out = ["## uWebSockets.js: `io.attachApp(app)` (issue 11)", ""];
  out.push(
    `socket.io on a uWS app (\`${uws.uwsPackage}\`) for each adapter, both servers up side by side (each with its own clients' process; in two sittings, the second with fresh processes started in the other order, since one process can stay ~10% dearer than another for its whole life) and each shape run on both at the same time, their ticks interleaved (one server's half a tick after the other's, which goes first alternating; ${c.rounds} round(s) of one room, everyone and own id, ${c.unpublishedRounds} of union and except; the values are medians over the rounds, the ratios medians of the rounds' paired ratios, listed below): socket.io's in-memory adapter as socket.io patches it for uWS (one room or everyone with no except: one \`app.publish\`), and ours (\`createAdapter({ workers: ${c.workers} })\`: it publishes one room, everyone and own-id rooms to its own topics).` +
      ` ${c.clients} socket.io-client websocket connections per server in a separate process, ${c.k} rooms each as in the end-to-end part. Per shape, the server emits ${UWS_SHAPES.map((x) => `${c.broadcasts[x]} × ${x}`).join(", ")} (union: ${c.unionRooms} rooms; except: everyone but one room), ${c.batch} per tick every ${c.tickMs} ms (a late tick still yields to the event loop first, so that uWS writes each tick's publishes apart), after a warm-up (every shape once at a fifth of its size, unmeasured); neither server sends engine.io heartbeats meanwhile (a burst of pings in some phases and not others is no broadcast's cost).` +
      " Main-thread CPU (process CPU minus the other threads, bench/cpu.ts) from the first emit until the clients have received everything (uWS writes published frames on the same thread after the emitting turn), divided by the broadcasts. Time inside emit() is the wall time of a tick's emit calls alone, divided by its broadcasts, median over the phase's ticks: how long one emit holds the event loop (socket.io's and the adapter's work, plus whatever uWS writes within `publish` rather than after the turn); informational, no target. Delivered per second = messages received / (last receipt − first emit).",
    "",
  );
  out.push(...mdTable(["", "in-memory", "sharded", "ratio"], uwsRows(uws)), "");
  out.push(
    ...mdTable(
      ["shape", "sharded / in-memory main-thread CPU, per round", "median", "time inside emit(), per round", "median"],
      UWS_SHAPES.map((shape) => {
        const r = uws.ratios[shape];
        return [shape, r.mainCpuPerRound.map(ratio3).join(", "), ratio3(r.mainCpu), r.emitPerRound.map(ratio3).join(", "), ratio3(r.emit)];
      }),
    ),
    "",
  );
  out.push(
    ...mdTable(
      ["round", "adapter", "shape", "delivered / expected", "delivered/s", "main CPU per broadcast", "in emit() (median tick)", "published (ours)"],
      uws.rounds.map((r) => [
        String(r.round + 1),
        r.adapter,
        r.phase.shape,
        `${r.delivered} / ${r.phase.expectedDeliveries}`,
        `${Math.round(r.deliveredPerSecond)}`,
        `${((r.phase.mainCpuMs * 1000) / r.phase.broadcasts).toFixed(1)} µs`,
        `${r.phase.emitUsPerBroadcast.toFixed(1)} µs`,
        r.adapter === "sharded" ? `${r.phase.published} of ${r.phase.broadcasts}` : "-",
      ]),
    ),
    "",
  );
  return out;
}
