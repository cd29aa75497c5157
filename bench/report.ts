/** The benchmark's output: result types, the comparison rows, and their text and Markdown forms. */
import type { AdapterKind, MemoryReport, StatsSummary, TaskName, Timing } from "./protocol";

export interface AdapterTaskResult {
  /** Wall time per unit, ms, pooled over rounds. */
  readonly wall: StatsSummary;
  readonly mainCpuNsPerUnit: number;
  readonly processCpuNsPerUnit: number;
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
  readonly populateMs: number;
  readonly memory: MemoryReport;
}

export interface SizeResult {
  readonly label: string;
  readonly workload: Record<string, number | string>;
  readonly elapsedSeconds: number;
  readonly setup: Record<AdapterKind, AdapterSetup>;
  readonly tasks: TaskResult[];
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
    readonly rounds: number;
    readonly timing: Timing;
    readonly workers: number;
    readonly offloadThreshold: number | "default";
    readonly seed: number;
    readonly zipf: number;
    readonly threadCpuClock: boolean;
  };
  readonly elapsedSeconds: number;
  readonly sizes: SizeResult[];
  readonly rows: Row[];
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

export function buildRows(sizes: readonly SizeResult[]): Row[] {
  const rows: Row[] = [];
  for (const size of sizes) {
    const push = (workload: string, kind: Row["kind"], inMemory: number, sharded: number) =>
      rows.push({ size: size.label, workload, kind, inMemory, sharded, ratio: sharded / inMemory });
    const mem = size.setup["in-memory"];
    const sh = size.setup.sharded;
    push("populate from empty (addAll), per membership", "time", mem.populateNsPerMembership, sh.populateNsPerMembership);
    push("main-thread heap per membership", "bytes", mem.memory.heapBytesPerMembership, sh.memory.heapBytesPerMembership);
    push("process RSS per membership", "bytes", mem.memory.rssBytesPerMembership, sh.memory.rssBytesPerMembership);
    for (const task of size.tasks) {
      const a = task.adapters["in-memory"];
      const b = task.adapters.sharded;
      const rcpt = task.unit === "op" ? ` [${formatCount(task.recipientsPerOp)} rcpt]` : "";
      const base = `${task.label}${rcpt}`;
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
      ` (offloadThreshold ${c.offloadThreshold === "default" ? "default 20000" : c.offloadThreshold}); ${c.rounds} round(s) per workload and adapter, alternating order;` +
      ` tinybench time ${c.timing.time} ms, ≥ ${c.timing.iterations} iterations, warmup ${c.timing.warmupTime} ms / ${c.timing.warmupIterations} iterations per round; seed ${c.seed}, Zipf exponent ${c.zipf}`,
  );
  out.push(`- Total time: ${results.elapsedSeconds.toFixed(1)} s`, "");
  out.push("Ratio = sharded / in-memory: below 1 the sharded adapter is faster (or smaller).", "");
  for (const size of results.sizes) {
    out.push(`## ${size.label}`, "");
    const w = size.workload;
    out.push(
      `Workload: ${w.sockets} sockets, each in its own-id room plus ${w.roomsPerSocket} of ${w.rooms} rooms (Zipf ${w.zipfExponent});` +
        ` ${w.memberships} memberships; largest rooms ${w.largestRoomSizes}; room size median ${w.roomSizeMedian}, p90 ${w.roomSizeP90}, p99 ${w.roomSizeP99};` +
        ` small room ${w.smallRoomSize}, biggest room ${w.bigRoomSize}; the 100 rooms hold ${w.hundredRoomsMemberships} memberships. Measured in ${size.elapsedSeconds.toFixed(1)} s.`,
      "",
    );
    out.push(`| ${HEADER.join(" | ")} |`, "|---|---:|---:|---:|");
    for (const r of results.rows.filter((x) => x.size === size.label)) {
      out.push(`| ${r.workload} | ${cell(r, r.inMemory)} | ${cell(r, r.sharded)} | ${ratioText(r.ratio)} |`);
    }
    out.push("", "Details (sharded pool: queries offloaded to the workers per op, and shards the workers answered per op, out of the worker count):", "");
    out.push("| workload | recipients per op (join/leave: memberships per batch) | in-memory: wall mean ± rme, samples | sharded: wall mean ± rme, samples | process CPU (all threads) in-memory / sharded | offloaded/op | worker shards/op |");
    out.push("|---|---:|---:|---:|---:|---:|---:|");
    for (const t of size.tasks) {
      const a = t.adapters["in-memory"];
      const b = t.adapters.sharded;
      out.push(
        `| ${t.label} | ${formatCount(t.recipientsPerOp)} | ${formatNs(a.wall.mean * MS_TO_NS)} ± ${a.wall.rme.toFixed(1)}%, ${a.wall.samples} | ${formatNs(b.wall.mean * MS_TO_NS)} ± ${b.wall.rme.toFixed(1)}%, ${b.wall.samples}` +
          ` | ${formatNs(a.processCpuNsPerUnit)} / ${formatNs(b.processCpuNsPerUnit)} | ${b.pool ? b.pool.offloadedPerOp.toFixed(2) : "-"} | ${b.pool ? b.pool.shardsByWorkersPerOp.toFixed(2) : "-"} |`,
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
        ` sharded shared memory ${ms.sharedMemoryBytes !== undefined ? (ms.sharedMemoryBytes / 2 ** 20).toFixed(1) + " MiB" : "n/a"}.`,
      "",
    );
  }
  out.push("## How it is measured", "");
  for (const note of results.notes) out.push(`- ${note}`);
  out.push("");
  return out.join("\n");
}
