/**
 * `make bench` / `make bench-quick`: socket.io's in-memory adapter and the
 * sharded adapter, measured side by side on the same synthetic workload and
 * reported as ratios (sharded / in-memory).
 *
 *   node dist/bench/run.js            N=100k and N=10k (a few minutes)
 *   node dist/bench/run.js --quick    N=10k only, short budgets (< 1 minute)
 *
 * Options (mainly for investigating one workload):
 *   --sizes=100000,10000   socket counts (R = N/10 rooms, K = 10 rooms per socket)
 *   --only=bcast-all,join  run only these workloads (names: see bench/protocol.ts)
 *   --rounds=2 --time=1000 rounds per workload and adapter, tinybench ms per round
 *   --seed=1 --zipf=1 --workers=2 --offload-threshold=20000
 *   --no-write             print only, do not write bench/results/
 *
 * This process only orchestrates. Each adapter runs in a child process of its
 * own (bench/runner.ts, forked with --expose-gc, so the Makefile needs no
 * flag); both children are alive for a whole size and the parent alternates
 * between them, workload by workload and round by round (A B, then B A).
 * Progress goes to stderr, the table to stdout, and the results to
 * bench/results/latest.{json,md} (plus <mode>.{json,md}).
 */
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, release, totalmem, type as osType } from "node:os";
import { join, relative } from "node:path";
import {
  ADAPTERS,
  TASKS,
  type AdapterKind,
  type ReadyMessage,
  type RunnerArgs,
  type RunnerMessage,
  type RunResult,
  type TaskInfo,
  type Timing,
} from "./protocol";
import { buildRows, formatCount, formatNs, markdown, textTable, type AdapterTaskResult, type BenchResults, type SizeResult, type TaskResult } from "./report";
import { runnerMain } from "./runner";
import { concat, summarize } from "./stats";

interface Config {
  mode: "full" | "quick" | "custom";
  sizes: number[];
  k: number;
  rounds: number;
  timing: Timing;
  seed: number;
  zipf: number;
  workers: number;
  offloadThreshold: number | undefined;
  only: TaskInfo[];
  write: boolean;
}

function parseArgs(argv: readonly string[]): Config {
  const quick = argv.includes("--quick");
  const config: Config = {
    mode: quick ? "quick" : "full",
    sizes: quick ? [10_000] : [100_000, 10_000],
    k: 10,
    rounds: quick ? 2 : 3,
    timing: quick
      ? { time: 150, iterations: 5, warmupTime: 50, warmupIterations: 2 }
      : { time: 1000, iterations: 8, warmupTime: 200, warmupIterations: 2 },
    seed: 1,
    zipf: 1,
    workers: 2,
    offloadThreshold: undefined,
    only: [...TASKS],
    write: true,
  };
  for (const arg of argv) {
    if (arg === "--quick") continue;
    const [key, value = ""] = arg.replace(/^--/, "").split("=");
    const num = () => {
      const x = Number(value);
      if (!Number.isFinite(x) || value === "") throw new Error(`${arg}: expected a number`);
      return x;
    };
    switch (key) {
      case "sizes":
        config.sizes = value.split(",").map(Number);
        config.mode = "custom";
        break;
      case "only":
        config.only = value.split(",").map((name) => {
          const task = TASKS.find((t) => t.name === name);
          if (!task) throw new Error(`unknown workload ${name}; known: ${TASKS.map((t) => t.name).join(", ")}`);
          return task;
        });
        config.mode = "custom";
        break;
      case "rounds":
        config.rounds = num();
        config.mode = "custom";
        break;
      case "time":
        config.timing = { ...config.timing, time: num() };
        config.mode = "custom";
        break;
      case "seed":
        config.seed = num();
        config.mode = "custom";
        break;
      case "zipf":
        config.zipf = num();
        config.mode = "custom";
        break;
      case "workers":
        config.workers = num();
        config.mode = "custom";
        break;
      case "offload-threshold":
        config.offloadThreshold = num();
        config.mode = "custom";
        break;
      case "no-write":
        config.write = false;
        break;
      default:
        throw new Error(`unknown option ${arg}`);
    }
  }
  return config;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

class BenchAbort extends Error {}

function abort(message: string): never {
  throw new BenchAbort(message);
}

/** A runner process for one adapter and one size. */
class RunnerHandle {
  private readonly child: ChildProcess;
  private waiting: { resolve: (m: RunnerMessage) => void; reject: (e: Error) => void } | undefined;
  private exited = false;

  constructor(
    readonly adapter: AdapterKind,
    args: RunnerArgs,
  ) {
    const execArgv = [...process.execArgv.filter((a) => a !== "--expose-gc"), "--expose-gc"];
    this.child = fork(__filename, ["--runner", JSON.stringify(args)], {
      execArgv,
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.child.on("message", (message: RunnerMessage) => {
      const waiting = this.waiting;
      this.waiting = undefined;
      if (!waiting) return;
      if (message.type === "error") waiting.reject(new BenchAbort(`${this.adapter} runner failed:\n${message.message}`));
      else waiting.resolve(message);
    });
    this.child.on("exit", (code, signal) => {
      this.exited = true;
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.reject(new BenchAbort(`${this.adapter} runner exited (code ${code}, signal ${signal})`));
    });
  }

  private next(): Promise<RunnerMessage> {
    if (this.exited) return Promise.reject(new BenchAbort(`${this.adapter} runner is gone`));
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  async ready(): Promise<ReadyMessage> {
    const message = await this.next();
    if (message.type !== "ready") abort(`${this.adapter} runner: expected ready, got ${message.type}`);
    return message;
  }

  async run(task: TaskInfo, timing: Timing): Promise<RunResult> {
    const reply = this.next();
    this.child.send({ type: "run", task: task.name, timing });
    const message = await reply;
    if (message.type !== "result") abort(`${this.adapter} runner: expected a result, got ${message.type}`);
    return message;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.send({ type: "exit" });
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await gone;
    clearTimeout(timer);
  }

  kill(): void {
    if (!this.exited) this.child.kill("SIGKILL");
  }
}

const live = new Set<RunnerHandle>();
/** Whether every runner could read per-thread CPU clocks (Linux /proc). */
let threadCpuClock = true;

function sizeLabel(n: number, k: number, r: number): string {
  const short = (x: number) => (x >= 1000 && x % 1000 === 0 ? `${x / 1000}k` : String(x));
  return `N=${short(n)} K=${k} R=${short(r)}`;
}

function checkEqual(what: string, a: unknown, b: unknown): void {
  if (a !== b) abort(`CORRECTNESS MISMATCH: ${what}: in-memory ${String(a)} vs sharded ${String(b)}`);
}

async function runSize(config: Config, n: number, progress: { done: number; total: number }): Promise<SizeResult> {
  const k = config.k;
  const r = Math.max(k, Math.round(n / 10));
  const label = sizeLabel(n, k, r);
  const started = performance.now();
  const workload = { n, k, r, zipf: config.zipf, seed: config.seed };
  const runners = {} as Record<AdapterKind, RunnerHandle>;
  const ready = {} as Record<AdapterKind, ReadyMessage>;
  // Populate one at a time, so that neither measurement competes with the other for the 2 cores.
  for (const adapter of ADAPTERS) {
    log(`[${label}] ${adapter}: building the workload and populating...`);
    const handle = new RunnerHandle(adapter, { adapter, workload, workers: config.workers, offloadThreshold: config.offloadThreshold });
    live.add(handle);
    runners[adapter] = handle;
    ready[adapter] = await handle.ready();
    const m = ready[adapter];
    threadCpuClock &&= m.threadCpuClock;
    log(
      `[${label}] ${adapter}: populated ${m.workload.memberships} memberships in ${m.populateMs.toFixed(0)} ms` +
        ` (${formatNs(m.populateNsPerMembership)}/membership in addAll); heap ${m.memory.heapBytesPerMembership.toFixed(1)} B/membership,` +
        ` RSS ${m.memory.rssBytesPerMembership.toFixed(1)} B/membership`,
    );
  }
  checkEqual(`${label}: workload digest`, ready["in-memory"].digest, ready.sharded.digest);
  checkEqual(`${label}: membership state after populating`, ready["in-memory"].fingerprint, ready.sharded.fingerprint);

  const tasks: TaskResult[] = [];
  for (const [t, task] of config.only.entries()) {
    const runs: Record<AdapterKind, RunResult[]> = { "in-memory": [], sharded: [] };
    for (let round = 0; round < config.rounds; round++) {
      const order: AdapterKind[] = (t + round) % 2 === 0 ? ["in-memory", "sharded"] : ["sharded", "in-memory"];
      for (const adapter of order) {
        const result = await runners[adapter].run(task, config.timing);
        runs[adapter].push(result);
        progress.done++;
        const unit = task.unit === "op" ? "op" : "membership";
        log(
          `[${label}] (${progress.done}/${progress.total}) ${task.name.padEnd(16)} ${adapter.padEnd(9)} round ${round + 1}:` +
            ` mean ${formatNs(result.tinybench.mean * 1e6)}/${unit}, p99 ${formatNs(result.tinybench.p99 * 1e6)},` +
            ` main CPU ${formatNs(result.mainCpuNsPerUnit)} (wall ${formatNs(result.cpuPassWallNsPerUnit)} in that pass), rcpt/op ${formatCount(result.recipientsPerOp)},` +
            ` ${result.tinybench.samples} samples${result.pool ? `, offloaded/op ${result.pool.offloadedPerOp.toFixed(2)}, worker shards/op ${result.pool.shardsByWorkersPerOp.toFixed(2)}` : ""}` +
            ` [${(result.elapsedMs / 1000).toFixed(1)} s]`,
        );
        if (result.check.count !== result.check.expected) {
          abort(`CORRECTNESS MISMATCH: ${label} ${task.name} on ${adapter}: ${result.check.count} recipients, the workload says ${result.check.expected}`);
        }
        if (result.recipientsPerOp !== result.check.count) {
          abort(`CORRECTNESS MISMATCH: ${label} ${task.name} on ${adapter}: ${result.recipientsPerOp} recipients per timed op, ${result.check.count} in the checked op`);
        }
        if (result.pool && (result.pool.timeouts > 0 || result.pool.workerFailures > 0)) {
          log(`[${label}] WARNING: ${task.name}: ${result.pool.timeouts} worker timeouts, ${result.pool.workerFailures} worker failures`);
        }
      }
      const a = runs["in-memory"][round];
      const b = runs.sharded[round];
      checkEqual(`${label} ${task.name}: recipients per op`, a.recipientsPerOp, b.recipientsPerOp);
      checkEqual(`${label} ${task.name}: recipients of the checked op`, a.check.count, b.check.count);
      checkEqual(`${label} ${task.name}: recipient digest`, a.check.digest, b.check.digest);
      checkEqual(`${label} ${task.name}: membership state after the run`, a.fingerprint, b.fingerprint);
    }
    const pooled = (adapter: AdapterKind): AdapterTaskResult => {
      const list = runs[adapter];
      const units = list.reduce((s, x) => s + x.units, 0);
      const weighted = (f: (x: RunResult) => number) => list.reduce((s, x) => s + f(x) * x.units, 0) / units;
      const pools = list.map((x) => x.pool).filter((x) => x !== undefined);
      return {
        wall: summarize(concat(list.map((x) => x.samples))),
        mainCpuNsPerUnit: weighted((x) => x.mainCpuNsPerUnit),
        processCpuNsPerUnit: weighted((x) => x.processCpuNsPerUnit),
        eventLoopUtilization: list.reduce((s, x) => s + x.eventLoopUtilization, 0) / list.length,
        recipientsPerOp: list[0].recipientsPerOp,
        unitsPerIteration: list[0].unitsPerIteration,
        rounds: list.map((x) => ({ tinybench: x.tinybench, elapsedMs: x.elapsedMs, mainCpuNsPerUnit: x.mainCpuNsPerUnit })),
        pool:
          pools.length > 0
            ? {
                offloadedPerOp: pools.reduce((s, p) => s + p.offloadedPerOp, 0) / pools.length,
                shardsByWorkersPerOp: pools.reduce((s, p) => s + p.shardsByWorkersPerOp, 0) / pools.length,
                timeouts: pools.reduce((s, p) => s + p.timeouts, 0),
                workerFailures: pools.reduce((s, p) => s + p.workerFailures, 0),
              }
            : undefined,
      };
    };
    tasks.push({
      name: task.name,
      label: task.label,
      unit: task.unit,
      recipientsPerOp: runs["in-memory"][0].recipientsPerOp,
      adapters: { "in-memory": pooled("in-memory"), sharded: pooled("sharded") },
    });
  }
  for (const adapter of ADAPTERS) {
    await runners[adapter].stop();
    live.delete(runners[adapter]);
  }
  const setup = (adapter: AdapterKind) => ({
    populateNsPerMembership: ready[adapter].populateNsPerMembership,
    populateMs: ready[adapter].populateMs,
    memory: ready[adapter].memory,
  });
  return {
    label,
    workload: ready["in-memory"].workload,
    elapsedSeconds: (performance.now() - started) / 1000,
    setup: { "in-memory": setup("in-memory"), sharded: setup("sharded") },
    tasks,
  };
}

const NOTES = [
  "Each adapter runs in its own Node process (forked with --expose-gc) holding a real socket.io `Server` (`new Server()` for in-memory, `new Server({ adapter: createAdapter(...) })` for sharded) and `io.of(\"/\")`, whose `nsp.sockets` holds fake sockets: `client.writeToEngine` counts, `notifyOutgoingListeners` is absent, `join()` calls `adapter.addAll(id, new Set(rooms))` as socket.io does. Both processes build the identical seeded workload and stay alive side by side; the parent alternates them per workload and round (A B, then B A).",
  "Workload: each socket joins its own-id room plus K distinct rooms drawn from R rooms with Zipf popularity (P(rank i) ∝ 1/i^s), all in one `addAll(id, new Set([id, ...rooms]))`. The small room is the room whose size is closest to 100; its sender is one of its members; the 100 rooms are drawn at random among rooms of size about N/1000; the biggest room is the most popular one.",
  "Broadcasts are real packets: `adapter.broadcast({ type: 2, data: [\"ev\", 1], nsp: \"/\" }, { rooms, except, flags: {} })`, so socket.io's encoding and ws frame precomputation are included, equally for both. The own-id broadcast cycles through 1024 sockets, 32 broadcasts per tinybench iteration (the timer would dominate single sub-microsecond samples); everything else is one op per iteration. fetchSockets and addSockets are the adapter methods `io.fetchSockets()`/`io.socketsJoin()` end in; socketsJoin is undone after each iteration (untimed).",
  "join / leave: steady-state churn in the populated adapter: each iteration takes the next batch of N/100 sockets (at least 100); join times `addAll` of the batch after an untimed `delAll`, leave times `delAll` of the batch followed by an untimed `addAll`. Reported per membership (batch × (K+1)). `populate from empty` is the one-off first population of the whole namespace, also per membership.",
  "Wall time: tinybench (hrtime) samples, one per iteration, pooled over the rounds; `median` and `p99` are percentiles of those per-iteration samples (on a shared, noisy machine the median is the steadiest of the three). Before every iteration the runner yields one event-loop turn (setImmediate, untimed), as a broadcast from an event handler would, so the sharded adapter's worker replies are handled between broadcasts.",
  "Main-thread CPU: process CPU (getrusage, exact) minus the CPU of every other thread of the process (shard workers, V8 helpers; /proc/self/task/<tid>/schedstat, exact while they sleep), from a separate accounting pass after the timed one (same ops, same event-loop turn before each, 30% of the time budget), because reading those clocks costs tens of µs and must stay out of tinybench's samples. Hookless workloads are accounted as one block minus the measured CPU of as many empty event-loop turns; join, leave and socketsJoin per op (minus the clock reads' own cost). It excludes time asleep in Atomics.wait and time preempted by other processes, and includes V8 work the ops cause between turns (incremental GC), so on a loaded machine it is often below the wall mean and sometimes above it. `performance.eventLoopUtilization()` is recorded in the JSON but is ~1.0 for these synchronous loops (it counts Atomics.wait as busy): there it equals wall time. Process CPU (all threads) is in the details table.",
  "Memory: in each runner, after the fake sockets are registered and (sharded) the workers have started, `global.gc()` and `process.memoryUsage()`; then every socket joins its rooms; gc again and measure. Heap = heapUsed growth, RSS = rss growth (SharedArrayBuffers count in RSS and external, not in the heap), both divided by N × (K+1) memberships.",
  "Correctness side check: before timing, each workload's op runs once on each adapter with recipients recorded; recipient count and an order-independent digest of recipient sockets must match between adapters and the count must match the workload's own computation; recipients per timed op and a membership-state fingerprint after each run must match too. Any mismatch aborts the run with a non-zero exit.",
];

async function main(): Promise<void> {
  const config = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const loadStart = loadavg();
  const command = ["node", relative(process.cwd(), process.argv[1]) || process.argv[1], ...process.argv.slice(2)].join(" ");
  const progress = { done: 0, total: config.sizes.length * config.only.length * config.rounds * ADAPTERS.length };
  log(`bench: ${command} — sizes ${config.sizes.join(", ")}, ${config.only.length} workloads, ${config.rounds} rounds, ${config.timing.time} ms per round`);
  const sizes: SizeResult[] = [];
  for (const n of config.sizes) sizes.push(await runSize(config, n, progress));

  const elapsedSeconds = (performance.now() - started) / 1000;
  const rows = buildRows(sizes);
  const results: BenchResults = {
    date: new Date().toISOString(),
    command,
    git: gitState(),
    machine: {
      cpu: cpus()[0]?.model ?? "unknown",
      cores: availableParallelism(),
      node: process.version,
      os: `${osType()} ${release()}`,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      loadAverageAtStart: loadStart,
      loadAverageAtEnd: loadavg(),
    },
    config: {
      mode: config.mode,
      rounds: config.rounds,
      timing: config.timing,
      workers: config.workers,
      offloadThreshold: config.offloadThreshold ?? "default",
      seed: config.seed,
      zipf: config.zipf,
      threadCpuClock,
    },
    elapsedSeconds,
    sizes,
    rows,
    notes: NOTES,
  };
  process.stdout.write(`${textTable(rows)}\n\n`);
  log(`bench: done in ${elapsedSeconds.toFixed(1)} s`);
  if (config.write) {
    const dir = join(__dirname, "..", "..", "bench", "results");
    mkdirSync(dir, { recursive: true });
    const json = JSON.stringify(results, null, 2) + "\n";
    const md = markdown(results);
    for (const name of ["latest", config.mode]) {
      writeAtomic(join(dir, `${name}.json`), json);
      writeAtomic(join(dir, `${name}.md`), md);
    }
    log(`bench: wrote ${relative(process.cwd(), join(dir, "latest.json"))}, latest.md, ${config.mode}.json, ${config.mode}.md`);
  }
}

/** The commit measured, and the adapter sources that differ from it (the build is of the work tree). */
function gitState(): { commit: string; uncommittedAdapterFiles: string[] } {
  const root = join(__dirname, "..", "..");
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
    const status = execFileSync("git", ["status", "--porcelain", "--", "lib", "workers", "package.json", "package-lock.json"], { cwd: root, encoding: "utf8" });
    return { commit, uncommittedAdapterFiles: status.split("\n").filter((l) => l.trim() !== "").map((l) => l.slice(3)) };
  } catch {
    return { commit: "unknown", uncommittedAdapterFiles: [] };
  }
}

function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

if (process.argv[2] === "--runner") {
  runnerMain(process.argv[3]).catch((err) => {
    process.stderr.write(`runner: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
} else {
  main().catch((err) => {
    for (const handle of live) handle.kill();
    if (err instanceof BenchAbort) {
      process.stderr.write(`\n!!! BENCH ABORTED !!!\n${err.message}\n\n`);
    } else {
      process.stderr.write(`\nbench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    }
    process.exit(1);
  });
}
