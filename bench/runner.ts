/**
 * One adapter's side of the benchmark, in its own process (forked by
 * bench/run.ts with --expose-gc): it builds a real socket.io `Server` with
 * that adapter, registers the workload's fake sockets in `io.of("/")`,
 * joins them through `adapter.addAll` as socket.io does, measures memory,
 * then runs the workloads the parent asks for, one at a time, with tinybench.
 *
 * Each adapter gets its own process so that its heap (and its GC) is its own,
 * and RSS per membership is that adapter's alone. Both processes stay alive
 * for the whole size, and the parent alternates between them workload by
 * workload, so both are measured side by side under the same machine noise.
 */
import { stat } from "node:fs/promises";
import { constants as perfConstants, performance, PerformanceObserver, type PerformanceEntry } from "node:perf_hooks";
import type { Namespace } from "socket.io";
import { Server } from "socket.io";
import { Adapter as InMemoryAdapter, type Adapter, type BroadcastOptions } from "socket.io-adapter";
import type { Bench as BenchClass } from "tinybench";
import { createAdapter, type ShardedAdapter } from "../lib/index";
import { CpuClock } from "./cpu";
import { registerFakeSockets, WriteCounter, type FakeSocket } from "./fake-sockets";
import type { MembershipIndex } from "../lib/membership-index";
import type { ShardPool } from "../lib/shard-pool";
import type { CrossoverPoint, CrossoverResult, GcPauseSummary, GcStormResult, ParentMessage, ReadyMessage, RunCommand, RunnerArgs, RunResult, TaskName, Timing } from "./protocol";
import { rssSnapshot } from "./rss-breakdown";
import { quantile } from "./stats";
import { buildWorkload, describeWorkload, Digest, roomsOfSocket, type Workload } from "./workload";

// tinybench is ESM-only; a real dynamic import keeps this file CommonJS.
const importEsm = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<typeof import("tinybench")>;

const POPULATE_CHUNK = 1000;
/** Room every socket of the biggest room joins in the socketsJoin workload (and leaves after). */
const SOCKETS_JOIN_ROOM = "sockets-join-target";

declare const gc: (() => void) | undefined;

function send(message: RunResult | ReadyMessage | GcStormResult | CrossoverResult | { type: "error"; message: string }): void {
  (process as NodeJS.Process & { send: (m: unknown) => boolean }).send(message);
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Above this heap, one full gc takes ~0.5 s: `fullGc` does one instead of two. */
const BIG_HEAP = 512 * 2 ** 20;

async function fullGc(): Promise<void> {
  if (typeof gc !== "function") throw new Error("runner needs --expose-gc");
  gc();
  await tick();
  if (process.memoryUsage().heapUsed < BIG_HEAP) gc();
}

/**
 * A full gc, then time for V8's background threads to give back what it freed
 * (the unmapper releases freed pages and the array buffer sweeper frees
 * backing stores after the gc returns): RSS read straight after the gc swung
 * by up to ~15 MB (14 B per membership at N=100k K=10) with whether they had
 * finished yet, seen in /proc/self/smaps read just after `memoryUsage()`.
 */
async function settledGc(): Promise<void> {
  await fullGc();
  await new Promise((resolve) => setTimeout(resolve, MEMORY_SETTLE_MS));
}
const MEMORY_SETTLE_MS = 200;

const nowNs = (): number => Number(process.hrtime.bigint());

/** Short-lived garbage allocated by {@link warmYoungGeneration}: a few times V8's largest young generation. */
const YOUNG_GENERATION_WARM_BYTES = 96 * 2 ** 20;
let warmSink = 0;

/**
 * Allocates short-lived garbage until every page of V8's young generation
 * has been written. Whether those pages are resident after a gc depends on
 * where the last scavenge left off, so without this the RSS baseline of
 * either adapter's runner swings by ~20 MB from run to run (measured:
 * 108-116 or 132-139 MB for the sharded runner, 92-101 or 115-118 MB for the
 * in-memory one, with the same RSS after populating), and that swing landed
 * in "RSS per membership". Populating writes them all anyway.
 */
function warmYoungGeneration(): void {
  const objectBytes = 64 * 8;
  for (let i = 0; i < YOUNG_GENERATION_WARM_BYTES / objectBytes; i++) warmSink += new Array<number>(64).fill(i).length;
}

/** One workload, ready to run: what an iteration does and what it counts. */
interface TaskDef {
  /** Ops per tinybench iteration (1 for everything but the sub-µs own-id broadcast). */
  readonly inner: number;
  /** Units (ops or memberships) one iteration reports. */
  readonly unitsPerIteration: number;
  /** One op; `i` increments across iterations (for rotating inputs). */
  readonly op: (i: number) => void;
  readonly beforeEach?: () => void;
  readonly afterEach?: () => void | Promise<void>;
  /** Runs the op once with recipient recording; returns the recipients. */
  readonly check: () => Promise<{ count: number; digest: string }>;
  /** The recipients of the checked op according to the workload itself. */
  readonly expected: number;
  /** Recipients counted so far (writes, joins, fetched sockets or memberships). */
  readonly recipientCounter: () => number;
  /** Ops per iteration for recipientsPerOp. */
  readonly opsPerIteration: number;
}

class Runner {
  private readonly counter = new WriteCounter();
  private readonly io: Server;
  private readonly nsp: Namespace;
  private readonly adapter: Adapter;
  private readonly sockets: FakeSocket[];
  private readonly packet = { type: 2, data: ["ev", 1], nsp: "/" };
  private fetched = 0;
  private membershipsMoved = 0;
  private Bench!: typeof BenchClass;
  private readonly clock = new CpuClock();

  constructor(
    private readonly args: RunnerArgs,
    private readonly w: Workload,
  ) {
    // Threads started from here on (the sharded adapter's shard workers) are
    // accounted apart; runnerMain has already started libuv's thread pool.
    this.clock.markBaseline();
    // With recovery on, socket.io gives the in-memory side its SessionAwareAdapter.
    const recovery = args.recovery ? { connectionStateRecovery: {} } : {};
    this.io =
      args.adapter === "sharded"
        ? new Server({ ...recovery, adapter: createAdapter({ workers: args.workers, offloadThreshold: args.offloadThreshold }) })
        : new Server(recovery);
    this.nsp = this.io.of("/");
    this.adapter = this.nsp.adapter;
    this.sockets = registerFakeSockets(this.nsp, w.ids, this.counter);
  }

  private get sharded(): ShardedAdapter | undefined {
    return this.args.adapter === "sharded" ? (this.adapter as unknown as ShardedAdapter) : undefined;
  }

  async start(): Promise<void> {
    this.Bench = (await importEsm("tinybench")).Bench;
    const threadCpuClock = this.clock.mainThreadAvailable;
    // Let the shard workers boot and the pool's start-up calibrations (tasks
    // that allocate test tables in the workers) finish, so that both are in
    // the baseline, not in the per-membership growth.
    const sharded = this.sharded;
    const poolStarting = (): boolean => {
      const pool = sharded?.stats().pool;
      return pool !== undefined && (pool.workers < this.args.workers || (this.args.offloadThreshold === undefined && (pool.calibrating || pool.calibration === undefined)));
    };
    for (let waited = 0; poolStarting() && waited < 10_000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    this.clock.refresh();
    const workerThreads = this.clock.addedThreadCount;
    warmYoungGeneration();
    await settledGc();
    const before = process.memoryUsage();
    const rssBefore = rssSnapshot();

    const w = this.w;
    const n = w.params.n;
    const started = nowNs();
    let populateNs = 0;
    let populateCpuNs = 0;
    const overhead = this.clockOverhead();
    for (let start = 0; start < n; start += POPULATE_CHUNK) {
      const end = Math.min(n, start + POPULATE_CHUNK);
      const sets: Set<string>[] = [];
      for (let s = start; s < end; s++) sets.push(roomsOfSocket(w, s));
      const c0 = this.clock.sample();
      const t0 = nowNs();
      for (let s = start; s < end; s++) this.adapter.addAll(w.ids[s], sets[s - start]);
      populateNs += nowNs() - t0;
      populateCpuNs += this.clock.sample().main - c0.main - overhead;
    }
    const populateMs = (nowNs() - started) / 1e6;
    await settledGc();
    const after = process.memoryUsage();
    const rssAfter = rssSnapshot();
    const m = w.memberships;
    send({
      type: "ready",
      adapter: this.args.adapter,
      digest: w.digest,
      workload: describeWorkload(w),
      populateNsPerMembership: populateNs / m,
      populateMs,
      populateMainCpuNsPerMembership: populateCpuNs / m,
      memory: {
        before,
        after,
        heapBytesPerMembership: (after.heapUsed - before.heapUsed) / m,
        rssBytesPerMembership: (after.rss - before.rss) / m,
        // `external` includes `arrayBuffers` (and so the SharedArrayBuffers).
        externalBytesPerMembership: (after.external - before.external) / m,
        rssBaseline: before.rss,
        sharedMemoryBytes: sharded?.stats().sharedMemoryBytes,
        rssParts: rssBefore && rssAfter ? { before: rssBefore, after: rssAfter } : undefined,
      },
      fingerprint: this.fingerprint(),
      threadCpuClock,
      workerThreads,
    });
  }

  /** Membership state digest: sockets, rooms, memberships and a few room sizes. */
  private fingerprint(): string {
    const w = this.w;
    const d = new Digest();
    let memberships = 0;
    for (const [, rooms] of this.adapter.sids) memberships += rooms.size;
    d.add(this.adapter.sids.size).add(this.adapter.rooms.size).add(memberships);
    for (const room of [w.smallRoom, w.bigRoom, ...w.hundredRooms]) d.add(this.adapter.rooms.get(w.roomNames[room])?.size ?? -1);
    d.add(this.adapter.rooms.has(SOCKETS_JOIN_ROOM) ? 1 : 0);
    return `${this.adapter.sids.size}s/${this.adapter.rooms.size}r/${memberships}m/${d.hex()}`;
  }

  private opts(rooms: string[], except: string[] = []): BroadcastOptions {
    return { rooms: new Set(rooms), except: new Set(except), flags: {} };
  }

  private unionOf(rooms: Int32Array): Set<number> {
    const w = this.w;
    const wanted = new Set(rooms);
    const members = new Set<number>();
    for (let s = 0; s < w.params.n; s++) {
      for (let j = 0; j < w.params.k; j++) if (wanted.has(w.roomsOf[s * w.params.k + j])) members.add(s);
    }
    return members;
  }

  private broadcastDef(optsList: BroadcastOptions[], expected: number, inner = 1): TaskDef {
    const adapter = this.adapter;
    const packet = this.packet;
    const count = optsList.length;
    const counter = this.counter;
    return {
      inner,
      unitsPerIteration: inner,
      opsPerIteration: inner,
      op: count === 1 ? () => adapter.broadcast(packet, optsList[0]) : (i) => adapter.broadcast(packet, optsList[i % count]),
      check: async () => {
        counter.startRecording();
        adapter.broadcast(packet, optsList[0]);
        return counter.stopRecording();
      },
      expected,
      recipientCounter: () => counter.writes,
    };
  }

  /**
   * What every adapter's broadcast costs at least once it knows its
   * recipients: the steps of socket.io-adapter's broadcast (its encoding,
   * then per recipient the write) with no adapter involved. `recipientSets`
   * (workload socket indexes) rotate as the broadcasts' do; `lookUp` finds
   * each socket by id in the namespace (one Map lookup) instead of holding
   * it already. Measured in each runner's process beside the adapter's own
   * rows: the best ratio any adapter could reach is this over the in-memory row.
   */
  private floorDef(recipientSets: readonly (readonly number[])[], lookUp: boolean): TaskDef {
    const nsp = this.nsp;
    const packet = this.packet;
    const encoderHolder = { encoder: (nsp.server as unknown as { encoder: unknown }).encoder };
    const encode = (InMemoryAdapter.prototype as unknown as { _encode: (packet: object, packetOpts: object) => unknown[] })._encode;
    const sets = recipientSets.map((set) => set.map((s) => this.sockets[s]));
    const idSets = recipientSets.map((set) => set.map((s) => this.w.ids[s]));
    const sockets = nsp.sockets as unknown as Map<string, FakeSocket>;
    const broadcast = (i: number) => {
      const packetOpts = { preEncoded: true, volatile: undefined, compress: undefined };
      packet.nsp = nsp.name;
      const encoded = encode.call(encoderHolder, packet, packetOpts);
      const which = i % sets.length;
      if (lookUp) {
        for (const id of idSets[which]) sockets.get(id)?.client.writeToEngine(encoded, packetOpts);
      } else {
        for (const socket of sets[which]) socket.client.writeToEngine(encoded, packetOpts);
      }
    };
    const inner = sets.length > 1 ? 32 : 1;
    return {
      ...this.broadcastDef([this.opts([])], sets[0].length, inner),
      op: broadcast,
      check: async () => {
        this.counter.startRecording();
        broadcast(0);
        return this.counter.stopRecording();
      },
    };
  }

  private define(task: TaskName): TaskDef {
    const w = this.w;
    const { n, k } = w.params;
    const adapter = this.adapter;
    const names = (rooms: Iterable<number>) => Array.from(rooms, (room) => w.roomNames[room]);
    const small = w.roomNames[w.smallRoom];
    const big = w.roomNames[w.bigRoom];
    switch (task) {
      case "bcast-room":
        return this.broadcastDef([this.opts([small])], w.roomSizes[w.smallRoom]);
      case "bcast-to-room":
        return this.broadcastDef([this.opts([small], [w.ids[w.smallRoomSender]])], w.roomSizes[w.smallRoom] - 1);
      case "bcast-own-id":
        return this.broadcastDef(
          Array.from(w.ownIdSockets, (s) => this.opts([w.ids[s]])),
          1,
          32,
        );
      case "bcast-own-id-floor":
        // io.to(socketId): the socket found by its id, one Map lookup, as any adapter must.
        return this.floorDef(Array.from(w.ownIdSockets, (s) => [s]), true);
      case "bcast-union-floor":
        // The union's recipients in socket creation order (the cheapest order to visit them in), already found.
        return this.floorDef([[...this.unionOf(w.hundredRooms)].sort((a, b) => a - b)], false);
      case "bcast-own-id-csr": {
        if (!this.args.recovery) throw new Error("bcast-own-id-csr needs a runner with recovery on");
        const optsList = Array.from(w.ownIdSockets, (s) => this.opts([w.ids[s]]));
        const count = optsList.length;
        // A fresh packet per broadcast, as socket.io's socket.emit() makes:
        // both adapters append the offset to packet.data.
        const fresh = () => ({ type: 2, data: ["ev", 1], nsp: "/" });
        return {
          ...this.broadcastDef(optsList, 1, 32),
          op: (i) => adapter.broadcast(fresh(), optsList[i % count]),
          check: async () => {
            this.counter.startRecording();
            adapter.broadcast(fresh(), optsList[0]);
            return this.counter.stopRecording();
          },
        };
      }
      case "populate": {
        // The whole namespace leaves every room (untimed: the rooms are
        // deleted as they empty), then joins again from empty, socket by
        // socket in connection order as on start-up.
        const sets = Array.from({ length: n }, (_, s) => roomsOfSocket(w, s));
        const units = w.memberships;
        return {
          inner: 1,
          unitsPerIteration: units,
          opsPerIteration: 1,
          beforeEach: () => {
            for (let s = 0; s < n; s++) adapter.delAll(w.ids[s]);
            if (adapter.rooms.size !== 0) throw new Error(`populate: ${adapter.rooms.size} rooms left after every socket left`);
          },
          op: () => {
            for (let s = 0; s < n; s++) adapter.addAll(w.ids[s], sets[s]);
            this.membershipsMoved += 2 * units;
          },
          check: async () => ({ count: units, digest: "-" }),
          expected: units,
          recipientCounter: () => this.membershipsMoved / 2,
        };
      }
      case "bcast-union":
        return this.broadcastDef([this.opts(names(w.hundredRooms))], this.unionOf(w.hundredRooms).size);
      case "bcast-all":
        return this.broadcastDef([this.opts([])], n);
      case "bcast-all-except":
        return this.broadcastDef([this.opts([], names(w.hundredRooms))], n - this.unionOf(w.hundredRooms).size);
      case "fetch-big": {
        const opts = this.opts([big]);
        const counter = this.counter;
        return {
          inner: 1,
          unitsPerIteration: 1,
          opsPerIteration: 1,
          op: () => {
            void adapter.fetchSockets(opts).then((sockets) => {
              this.fetched += sockets.length;
            });
          },
          check: async () => {
            const sockets = (await adapter.fetchSockets(opts)) as FakeSocket[];
            counter.startRecording();
            for (const socket of sockets) counter.note(socket.index);
            return counter.stopRecording();
          },
          expected: w.roomSizes[w.bigRoom],
          recipientCounter: () => this.fetched,
        };
      }
      case "sockets-join-big": {
        const opts = this.opts([big]);
        const members: string[] = [];
        for (let s = 0; s < n; s++) {
          for (let j = 0; j < k; j++) if (w.roomsOf[s * k + j] === w.bigRoom) members.push(w.ids[s]);
        }
        const target = [SOCKETS_JOIN_ROOM];
        const undo = () => {
          for (const id of members) adapter.del(id, SOCKETS_JOIN_ROOM);
        };
        const counter = this.counter;
        return {
          inner: 1,
          unitsPerIteration: 1,
          opsPerIteration: 1,
          op: () => adapter.addSockets(opts, target),
          afterEach: undo,
          check: async () => {
            counter.startRecording();
            adapter.addSockets(opts, target);
            const result = counter.stopRecording();
            const joined = adapter.rooms.get(SOCKETS_JOIN_ROOM)?.size ?? 0;
            undo();
            if (joined !== result.count) throw new Error(`socketsJoin: ${result.count} joins but the room has ${joined} members`);
            return result;
          },
          expected: members.length,
          recipientCounter: () => counter.joins,
        };
      }
      case "join":
      case "leave": {
        // Steady-state churn in the populated adapter: a batch of sockets
        // leaves and joins again (their rooms as on connect), rotating through
        // all sockets. Only the measured half is timed.
        // N/100 sockets, at least 100, at most 2000 (at N=1M a batch of 10k would take the in-memory adapter ~0.4 s).
        const batch = Math.min(2000, Math.max(100, Math.floor(n / 100)));
        const batches = Math.floor(n / batch);
        let next = 0;
        let current = 0;
        let sets: Set<string>[] = [];
        const pick = () => {
          current = (next++ % batches) * batch;
          sets = [];
          for (let s = current; s < current + batch; s++) sets.push(roomsOfSocket(w, s));
        };
        const addBatch = () => {
          for (let j = 0; j < batch; j++) adapter.addAll(w.ids[current + j], sets[j]);
          this.membershipsMoved += batch * (k + 1);
        };
        const delBatch = () => {
          for (let j = 0; j < batch; j++) adapter.delAll(w.ids[current + j]);
          this.membershipsMoved += batch * (k + 1);
        };
        const units = batch * (k + 1);
        const common = {
          inner: 1,
          unitsPerIteration: units,
          opsPerIteration: 1,
          check: async () => ({ count: units, digest: "-" }),
          expected: units,
          recipientCounter: () => this.membershipsMoved / 2,
        };
        return task === "join"
          ? {
              ...common,
              beforeEach: () => {
                pick();
                delBatch();
              },
              op: addBatch,
            }
          : {
              ...common,
              beforeEach: pick,
              op: delBatch,
              afterEach: addBatch,
            };
      }
    }
  }

  async run(command: RunCommand): Promise<RunResult> {
    const startedAt = nowNs();
    const def = this.define(command.task);
    const check = await def.check();
    await fullGc();
    const wall = await this.wallPass(def, command);
    await fullGc();
    const cpu = await this.cpuPass(def, command.timing);
    return {
      type: "result",
      adapter: this.args.adapter,
      task: command.task,
      unitsPerIteration: def.unitsPerIteration,
      ...wall,
      ...cpu,
      check: { ...check, expected: def.expected },
      fingerprint: this.fingerprint(),
      elapsedMs: (nowNs() - startedAt) / 1e6,
    };
  }

  /**
   * The timed pass, with tinybench: wall time per unit from hrtime around the
   * op only, recipients per op, the pool's counters and event-loop utilization.
   */
  private async wallPass(def: TaskDef, command: RunCommand) {
    const timing = command.timing;
    const inner = def.inner;
    const op = def.op;
    const units = def.unitsPerIteration;
    let iterations = 0;
    let measuring = false;
    let recipients0 = 0;
    let recipients1 = 0;
    let elu0 = performance.eventLoopUtilization();
    let elu = 0;
    let pool0 = this.sharded?.stats().pool;
    let pool1 = pool0;
    let cursor = 0;

    const bench = new this.Bench({
      time: timing.time,
      iterations: timing.iterations,
      warmupTime: timing.warmupTime,
      warmupIterations: timing.warmupIterations,
      retainSamples: true,
      throws: true,
      timestampProvider: "hrtimeNow",
    });
    const userBefore = def.beforeEach;
    bench.add(
      command.task,
      () => {
        const t0 = nowNs();
        for (let i = 0; i < inner; i++) op(cursor++);
        const ms = (nowNs() - t0) / 1e6;
        if (measuring) iterations++;
        return { overriddenDuration: ms / units, overriddenIterationCost: ms };
      },
      {
        async: false,
        // Every iteration starts from a fresh event-loop turn, as a broadcast
        // from an event handler would: pending worker replies are handled.
        beforeEach: async () => {
          await tick();
          if (userBefore) userBefore();
        },
        afterEach: def.afterEach,
        beforeAll: (mode) => {
          if (mode !== "run") return;
          measuring = true;
          recipients0 = def.recipientCounter();
          pool0 = this.sharded?.stats().pool;
          elu0 = performance.eventLoopUtilization();
        },
        afterAll: async (mode) => {
          if (mode !== "run") return;
          measuring = false;
          await tick(); // let the last fetchSockets promise settle
          recipients1 = def.recipientCounter();
          elu = performance.eventLoopUtilization(elu0).utilization;
          pool1 = this.sharded?.stats().pool;
        },
      },
    );
    await bench.run();
    const result = bench.tasks[0].result;
    if (result.state !== "completed") {
      throw result.state === "errored" ? result.error : new Error(`task ended as ${result.state}`);
    }
    const latency = result.latency;
    const ops = iterations * def.opsPerIteration;
    return {
      samples: Float64Array.from(latency.samples ?? []),
      tinybench: {
        mean: latency.mean,
        p50: latency.p50,
        p99: latency.p99,
        min: latency.min,
        max: latency.max,
        rme: latency.rme,
        samples: latency.samplesCount,
      },
      units: iterations * units,
      eventLoopUtilization: elu,
      recipientsPerOp: (recipients1 - recipients0) / ops,
      pool:
        pool0 && pool1
          ? {
              offloadedPerOp: (pool1.offloaded - pool0.offloaded) / ops,
              shardsByWorkersPerOp: (pool1.shardsByWorkers - pool0.shardsByWorkers) / ops,
              timeouts: pool1.timeouts - pool0.timeouts,
              workerFailures: pool1.workerFailures - pool0.workerFailures,
            }
          : undefined,
    };
  }

  /**
   * The CPU-accounting pass, separate from the timed one because reading the
   * CPU clocks costs tens of µs (see cpu.ts), which must stay out of
   * tinybench's samples. The same ops run with the same event-loop turn
   * before each. Workloads without per-iteration setup are accounted as one
   * block (clocks read at both ends only, the CPU of as many empty event-loop
   * turns subtracted); the others (join, leave, socketsJoin, whose ops take
   * milliseconds) per op, so that their untimed setup stays out.
   */
  private async cpuPass(def: TaskDef, timing: Timing) {
    const clock = this.clock;
    clock.refresh();
    const inner = def.inner;
    const op = def.op;
    const budgetNs = timing.time * 0.3 * 1e6;
    let mainCpu = 0;
    let processCpu = 0;
    let workerCpu = 0;
    let wall = 0;
    let iterations = 0;
    let cursor = 0;
    const minIterations = Math.max(3, Math.ceil(timing.iterations / 3));
    if (def.beforeEach || def.afterEach) {
      const overhead = this.clockOverhead();
      const started = nowNs();
      while (iterations < minIterations || nowNs() - started < budgetNs) {
        await tick();
        if (def.beforeEach) def.beforeEach();
        const s0 = clock.sample();
        const t0 = nowNs();
        for (let i = 0; i < inner; i++) op(cursor++);
        wall += nowNs() - t0;
        const s1 = clock.sample();
        // The clock reads' own cost is main-thread CPU, in both clocks.
        mainCpu += s1.main - s0.main - overhead;
        processCpu += s1.process - s0.process - overhead;
        workerCpu += s1.added - s0.added;
        iterations++;
        if (def.afterEach) await def.afterEach();
      }
    } else {
      const emptyBefore = await this.emptyTurnCpu();
      const started = nowNs();
      const s0 = clock.sample();
      while (iterations < minIterations || nowNs() - started < budgetNs) {
        await tick();
        const t0 = nowNs();
        for (let i = 0; i < inner; i++) op(cursor++);
        wall += nowNs() - t0;
        iterations++;
      }
      await tick(); // let the last fetchSockets promise settle, as the turns measured in `empty` do
      const s1 = clock.sample();
      const empty = Math.min(emptyBefore, await this.emptyTurnCpu());
      // The event-loop turns' own cost is main-thread CPU, in both clocks;
      // other threads' CPU during the block (GC helpers, shard workers) is the ops'.
      mainCpu = s1.main - s0.main - empty * (iterations + 1);
      processCpu = s1.process - s0.process - empty * (iterations + 1);
      workerCpu = s1.added - s0.added;
    }
    const units = iterations * def.unitsPerIteration;
    return {
      mainCpuNsPerUnit: mainCpu / units,
      processCpuNsPerUnit: processCpu / units,
      workerCpuNsPerUnit: workerCpu / units,
      cpuIterations: iterations,
      cpuPassWallNsPerUnit: wall / units,
    };
  }

  /**
   * GC under load: broadcasts back to back for `durationMs` (everyone, union
   * of 100 rooms, one room, socket.to(room), 32 own-id rooms, in rotation,
   * one event-loop turn before each), with a PerformanceObserver recording
   * every 'gc' entry of the main thread (kind and flags as perf_hooks.constants). No forced gc in between: what is
   * measured is what the held membership and the broadcasts make V8 do.
   */
  async gcStorm(durationMs: number): Promise<GcStormResult> {
    const defs = (["bcast-all", "bcast-union", "bcast-room", "bcast-to-room", "bcast-own-id"] as const).map((t) => this.define(t));
    await fullGc();
    const entries: { duration: number; kind: string; at: number; flags: number }[] = [];
    const kinds: Record<number, string> = {
      [perfConstants.NODE_PERFORMANCE_GC_MINOR]: "minor (scavenge)",
      [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: "major (mark-compact)",
      [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental marking",
      [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: "weak callbacks",
    };
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number; flags?: number } })[]) {
        entries.push({
          duration: entry.duration,
          kind: kinds[entry.detail?.kind ?? 0] ?? `kind ${entry.detail?.kind}`,
          at: entry.startTime - startedAt,
          flags: entry.detail?.flags ?? 0,
        });
      }
    });
    observer.observe({ entryTypes: ["gc"] });
    await tick();
    const heapUsedBefore = process.memoryUsage().heapUsed;
    const startedAt = performance.now();
    const writes0 = this.counter.writes;
    this.clock.refresh();
    const s0 = this.clock.sample();
    const started = nowNs();
    let broadcasts = 0;
    let cursor = 0;
    for (let i = 0; nowNs() - started < durationMs * 1e6; i++) {
      await tick();
      const def = defs[i % defs.length];
      for (let j = 0; j < def.inner; j++) def.op(cursor++);
      broadcasts += def.inner;
    }
    const elapsed = (nowNs() - started) / 1e6;
    await tick();
    const s1 = this.clock.sample();
    const heapUsedAfter = process.memoryUsage().heapUsed;
    // PerformanceObserver callbacks are delivered asynchronously: let the last ones arrive.
    await new Promise((resolve) => setTimeout(resolve, 50));
    observer.disconnect();
    const summarize = (durations: number[]): GcPauseSummary => {
      const sorted = Float64Array.from(durations).sort();
      const total = durations.reduce((a, b) => a + b, 0);
      return sorted.length === 0
        ? { count: 0, p50: 0, p99: 0, max: 0, mean: 0, total: 0 }
        : { count: sorted.length, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted[sorted.length - 1], mean: total / sorted.length, total };
    };
    const byKind: Record<string, GcPauseSummary> = {};
    for (const kind of new Set(entries.map((e) => e.kind))) byKind[kind] = summarize(entries.filter((e) => e.kind === kind).map((e) => e.duration));
    return {
      type: "gc-storm",
      adapter: this.args.adapter,
      durationMs: elapsed,
      broadcasts,
      recipients: this.counter.writes - writes0,
      pauses: summarize(entries.map((e) => e.duration)),
      byKind,
      largest: [...entries].sort((a, b) => b.duration - a.duration).slice(0, 5).map((e) => ({ ms: e.duration, kind: e.kind, atMs: e.at, flags: e.flags })),
      heapUsedBefore,
      heapUsedAfter,
      mainCpuMs: (s1.main - s0.main) / 1e6,
      workerCpuMs: (s1.added - s0.added) / 1e6,
    };
  }

  /**
   * Where offloading starts to pay (sharded runner only): for unions of
   * random rooms of growing total size, the main thread's busy time (wall,
   * waiting for the workers included) of the pool's cooperative answer
   * against the main thread answering alone, alternated, medians of `reps`.
   * Only the recipient selection differs between the two ways; delivery is
   * the same work either way, so it is left out.
   */
  async crossover(reps: number): Promise<CrossoverResult> {
    const sharded = this.sharded;
    if (!sharded) throw new Error("crossover: sharded runner only");
    // The adapter's own index and pool (private): what its broadcasts use.
    const { index, pool } = sharded as unknown as { index: MembershipIndex; pool: ShardPool };
    const w = this.w;
    const order = Array.from(w.roomNames.keys()).filter((room) => w.roomSizes[room] > 0);
    for (let i = order.length - 1; i > 0; i--) {
      const j = (Math.imul(i, 0x9e3779b1) >>> 0) % (i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const total = w.params.n * w.params.k;
    const sizes: number[] = [];
    for (let size = 1000; size <= total; size *= size.toString().startsWith("2") ? 2.5 : 2) sizes.push(Math.round(size));
    const out = index.borrowRecipients();
    const points: CrossoverPoint[] = [];
    try {
      for (const size of sizes) {
        const names: string[] = [];
        let cost = 0;
        for (let i = 0; i < order.length && cost < size; i++) {
          names.push(w.roomNames[order[i]]);
          cost += w.roomSizes[order[i]];
        }
        const query = index.internQuery(new Set(names), undefined);
        const mainOnly: number[] = [];
        const offload: number[] = [];
        let recipients = 0;
        let timeouts = 0;
        for (let r = 0; r < reps; r++) {
          for (const way of r % 2 === 0 ? [0, 1] : [1, 0]) {
            await tick();
            const t0 = nowNs();
            let count = way === 0 ? index.collectLocally(query, out) : pool.collect(index, query, out);
            // A worker that did not answer within workerTimeout: the adapter
            // then answers on the main thread, and so does this, timed in.
            if (count === undefined) {
              timeouts++;
              count = index.collectLocally(query, out);
            }
            const dt = nowNs() - t0;
            recipients = count;
            (way === 0 ? mainOnly : offload).push(dt);
          }
        }
        const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
        points.push({ cost: query.cost, recipients, mainOnlyNs: median(mainOnly), offloadNs: median(offload), timeouts });
      }
    } finally {
      index.returnRecipients(out);
    }
    let crossover = NaN;
    for (let i = points.length - 1; i >= 0 && points[i].offloadNs < points[i].mainOnlyNs; i--) crossover = points[i].cost;
    const stats = pool.stats();
    // The pool's calibration once more, right after the points: in the machine's state they were measured in.
    const recalibrated = await pool.recalibrate();
    return { type: "crossover", points, crossover, offloadThreshold: stats.offloadThreshold, calibration: stats.calibration, calibratedThresholds: stats.calibratedThresholds, recalibrated };
  }

  /**
   * Main-thread CPU of one empty event-loop turn (setImmediate): the median
   * of 5 blocks of 400 turns, so that one block disturbed by another process
   * (on a loaded machine) does not inflate what is subtracted from the ops.
   */
  private async emptyTurnCpu(): Promise<number> {
    const turns = 400;
    for (let i = 0; i < 100; i++) await tick();
    const blocks: number[] = [];
    for (let b = 0; b < 5; b++) {
      const s0 = this.clock.sample();
      for (let i = 0; i < turns; i++) await tick();
      const s1 = this.clock.sample();
      blocks.push((s1.main - s0.main) / turns);
    }
    return blocks.sort((x, y) => x - y)[2];
  }

  /** Main-thread CPU that two clock reads around an empty op account for (median of many). */
  private clockOverhead(): number {
    const main: number[] = [];
    for (let i = 0; i < 101; i++) {
      const s0 = this.clock.sample();
      const s1 = this.clock.sample();
      main.push(s1.main - s0.main);
    }
    return main.sort((a, b) => a - b)[50];
  }

  /**
   * Closes the adapter (the sharded one stops its workers). Not `io.close()`:
   * that would call `_onclose` on every socket, which fake sockets lack.
   */
  async close(): Promise<void> {
    await this.adapter.close();
  }
}

/** Entry point of a runner process: `run.js --runner '<RunnerArgs as JSON>'`. */
export async function runnerMain(json: string): Promise<void> {
  const args = JSON.parse(json) as RunnerArgs;
  // Start libuv's thread pool now, so that its threads are not taken for shard workers.
  await stat(__filename);
  const workload = buildWorkload(args.workload);
  const runner = new Runner(args, workload);
  let queue = Promise.resolve();
  process.on("message", (message: ParentMessage) => {
    queue = queue.then(async () => {
      if (message.type === "exit") {
        await runner.close();
        process.exit(0);
      }
      try {
        if (message.type === "gc-storm") send(await runner.gcStorm(message.durationMs));
        else if (message.type === "crossover") send(await runner.crossover(message.reps));
        else send(await runner.run(message));
      } catch (err) {
        send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      }
    });
  });
  try {
    await runner.start();
  } catch (err) {
    send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
}
