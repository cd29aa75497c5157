/**
 * The tail-latency storm at scale (issue 13): a socket.io server holding
 * about a million memberships (10,000 websocket clients × 100 rooms each by
 * default), steady membership churn, and small-room broadcasts at a fixed
 * offered rate, each carrying its send time; then a saturating run.
 *
 * Processes per adapter (the adapters in turn, alternating over rounds):
 *   - the server (`run.js --storm-server '<json>'`): http + `new Server(http,
 *     { adapter })`, websocket only. Client i says who it is in its CONNECT
 *     packet's auth and joins its rooms: K rooms drawn uniformly among
 *     R = clients·K/roomSize rooms, so rooms of about `roomSize`. During a
 *     run it measures its main thread's event-loop delay
 *     (`monitorEventLoopDelay`), GC pauses (a `PerformanceObserver` on 'gc')
 *     and CPU.
 *   - the clients (`run.js --storm-clients '<json>'`): bare TCP sockets
 *     speaking websocket, engine.io 4 and socket.io 5 by hand
 *     (raw-client.ts: frames read in place from one shared read buffer, no
 *     Buffer or string per message), so that 10,000 of them in one process
 *     stay far from being the bottleneck: socket.io-client costs several
 *     times more per connection and per message, and a `ws` client (this
 *     bench's first version) took about 21 µs of client CPU per message
 *     against about 14 µs here, most of the rest being the kernel's receive
 *     path. Each event's latency is the client's CLOCK_MONOTONIC
 *     at receipt minus the server's at the emit (same machine), in µs in a
 *     histogram.
 *
 * After connecting, an unmeasured warm-up: `warmUpMs` of the fixed-rate run
 * (the write path compiled, the connect burst's garbage collected), so that
 * neither adapter's measured tail holds its cold start.
 *
 * Fixed-rate run: every `tickMs` the server emits to `roomsPerTick` random
 * rooms, makes `churnPerTick` random sockets leave one of their rooms and
 * join another, and disconnects `reconnectPerTick` random sockets, whose
 * clients connect again at once and join their K rooms (memberships stay
 * about constant). The default offered rate (50
 * broadcasts of ~100, 5,000 deliveries per second) is about half of what a
 * loaded 2-core machine saturates at with either adapter: each delivery is
 * a websocket write, a syscall, which dominates both. Saturating run: emits to random
 * rooms back to back (an event-loop turn every `saturateBatch` emits; the
 * churn at the same rate per second as in the fixed-rate run, caught up
 * between turns) for the same duration; delivered per second = messages
 * received / (last receipt − start).
 */
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdir, stat, writeFile } from "node:fs/promises";
import { Session } from "node:inspector";
import { join } from "node:path";
import { constants as perfConstants, createHistogram, monitorEventLoopDelay, performance, PerformanceObserver } from "node:perf_hooks";
import { Server, type Socket } from "socket.io";
import { createAdapter, type ShardedAdapter } from "../lib/index";
import { CpuClock } from "./cpu";
import { awaitDeliveries, Child } from "./e2e";
import { RawSocketIoClient } from "./raw-client";
import { ADAPTERS, type AdapterKind } from "./protocol";
import { median, quantile } from "./stats";
import { Rng } from "./workload";

export interface StormConfig {
  readonly clients: number;
  /** Rooms per client (besides its own-id room). */
  readonly k: number;
  /** Mean room size: rooms = clients · k / roomSize. */
  readonly roomSize: number;
  readonly rounds: number;
  readonly seed: number;
  readonly workers: number;
  readonly offloadThreshold: number | undefined;
  readonly durationMs: number;
  /**
   * An unmeasured fixed-rate run of this length before the measured ones:
   * without it the measured run's first broadcasts ran cold (interpreted
   * write path) and the connect burst's garbage was still being collected,
   * both inside the 1% of deliveries that p99 is made of.
   */
  readonly warmUpMs: number;
  readonly tickMs: number;
  readonly roomsPerTick: number;
  readonly churnPerTick: number;
  /**
   * Sockets per tick the server disconnects; each client reconnects at once
   * and joins its K rooms again (leave all, connect, join: the connection
   * churn of the "connecting and disconnecting").
   */
  readonly reconnectPerTick: number;
  /** Emits per event-loop turn in the saturating run. */
  readonly saturateBatch: number;
  /** When set, the server writes a CPU profile of its main thread over each measured run to this directory. */
  readonly profileDir?: string;
}

export function stormDefaults(quick: boolean): StormConfig {
  return quick
    ? { clients: 1000, k: 20, roomSize: 50, rounds: 1, seed: 1, workers: 2, offloadThreshold: undefined, durationMs: 1500, warmUpMs: 500, tickMs: 10, roomsPerTick: 1, churnPerTick: 5, reconnectPerTick: 1, saturateBatch: 20 }
    : { clients: 10_000, k: 100, roomSize: 100, rounds: 2, seed: 1, workers: 2, offloadThreshold: undefined, durationMs: 5000, warmUpMs: 2000, tickMs: 20, roomsPerTick: 1, churnPerTick: 5, reconnectPerTick: 1, saturateBatch: 20 };
}

type RunKind = "fixed" | "saturating";

type GcKind = "minor" | "major" | "incremental" | "weakcb";

/** perf_hooks' `detail.kind` of a 'gc' entry. */
function gcKindOf(kind: number | undefined): GcKind {
  if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) return "minor";
  if (kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) return "major";
  if (kind === perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL) return "incremental";
  return "weakcb";
}

/** What the server measured during one run. */
export interface ServerRun {
  readonly startUs: number;
  readonly endUs: number;
  readonly emits: number;
  readonly expectedDeliveries: number;
  readonly churned: number;
  readonly reconnects: number;
  readonly eventLoopDelayP99Ms: number;
  readonly eventLoopDelayMaxMs: number;
  readonly gcPauses: number;
  readonly gcPauseP99Ms: number;
  readonly gcPauseMaxMs: number;
  /** GC pauses by kind (scavenge, mark-compact, incremental marking step, weak callbacks): count, total and longest, ms. */
  readonly gcByKind: Readonly<Record<GcKind, { readonly count: number; readonly totalMs: number; readonly maxMs: number }>>;
  readonly mainCpuMs: number;
  readonly workerCpuMs: number;
  /** The wall time the CPU numbers cover: the run and its 200 ms tail. */
  readonly cpuWindowMs: number;
  readonly memberships: number;
  /** Sharded: broadcasts offered to the workers during the run, and whether the pool had calibrated its threshold before it. */
  readonly pool?: { readonly offloaded: number; readonly calibratedBefore: boolean; readonly offloadThreshold: number };
}

export interface ClientCounts {
  readonly received: number;
  readonly lastUs: number;
  /** Delivery latency, ms. */
  readonly latency: { readonly p50: number; readonly p99: number; readonly p999: number; readonly max: number };
  readonly cpuMs: number;
  /** Frames the raw clients could not make sense of (see raw-client.ts). */
  readonly unexpectedFrames: number;
  /** Connections the server closed that the clients opened again. */
  readonly reconnected: number;
}

export interface StormRun {
  readonly adapter: AdapterKind;
  readonly round: number;
  readonly kind: RunKind;
  readonly server: ServerRun;
  readonly clients: ClientCounts;
  readonly deliveredPerSecond: number;
  readonly connectMs: number;
}

export interface StormSummary {
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly latencyP999Ms: number;
  readonly eventLoopDelayP99Ms: number;
  readonly gcPauseP99Ms: number;
  readonly fixedDeliveredPerSecond: number;
  readonly deliveredFraction: number;
  readonly saturatingDeliveredPerSecond: number;
  /** Server main-thread CPU per second of the fixed-rate run (same offered work for both adapters). */
  readonly fixedMainCpuMsPerSecond: number;
  /**
   * Server main-thread CPU per delivered message in the saturating run: what
   * delivered/s would be the inverse of with the main thread to itself, read
   * from CPU clocks, so that it does not move with the other load of a
   * shared machine as delivered/s does.
   */
  readonly saturatingMainCpuUsPerDelivery: number;
}

export interface StormResult {
  readonly config: StormConfig;
  readonly rooms: number;
  readonly memberships: number;
  readonly offeredPerSecond: number;
  readonly runs: StormRun[];
  readonly summary: Record<AdapterKind, StormSummary>;
  readonly elapsedSeconds: number;
}

interface ServerArgs {
  readonly adapter: AdapterKind;
  readonly config: StormConfig;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

function send(message: unknown): void {
  (process as NodeJS.Process & { send: (m: unknown) => boolean }).send(message);
}

function roomCount(config: StormConfig): number {
  return Math.max(config.k, Math.round((config.clients * config.k) / config.roomSize));
}

/** Client i's rooms: K distinct room indexes, uniform (seeded). */
function roomsOfClient(config: StormConfig, i: number): number[] {
  const rng = new Rng(config.seed * 1_000_003 + i);
  const r = roomCount(config);
  const rooms = new Set<number>();
  while (rooms.size < config.k) rooms.add(rng.below(r));
  return [...rooms];
}

// ---------------------------------------------------------------- server --

export async function stormServerMain(json: string): Promise<void> {
  const { adapter, config } = JSON.parse(json) as ServerArgs;
  await stat(__filename); // libuv's thread pool up before the baseline
  const clock = new CpuClock();
  clock.markBaseline();
  const http: HttpServer = createServer();
  const io =
    adapter === "sharded"
      ? new Server(http, { adapter: createAdapter({ workers: config.workers, offloadThreshold: config.offloadThreshold }), transports: ["websocket"] })
      : new Server(http, { transports: ["websocket"] });
  const r = roomCount(config);
  const name = (room: number) => `r${room}`;
  const sockets: (Socket | undefined)[] = new Array(config.clients);
  /** Each client's rooms as churn changed them (filled on first churn, emptied when it reconnects). */
  const current: (number[] | undefined)[] = new Array(config.clients);
  io.on("connection", (socket: Socket) => {
    const i = Number((socket.handshake.auth as { i?: unknown }).i);
    if (!Number.isInteger(i) || i < 0 || i >= config.clients) {
      socket.disconnect(true);
      return;
    }
    sockets[i] = socket;
    current[i] = undefined;
    void socket.join(roomsOfClient(config, i).map(name));
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  send({ type: "listening", port: (http.address() as AddressInfo).port });
  const rng = new Rng(config.seed ^ 0x5eed);

  process.on("message", (message: { type: string; kind?: RunKind; warmUp?: boolean }) => {
    if (message.type === "run") {
      void run(message.kind as RunKind, message.warmUp === true).then(send, (err) => send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) }));
    } else if (message.type === "memberships") {
      send({ type: "memberships", memberships: memberships(), connected: io.of("/").sockets.size });
    } else if (message.type === "exit") {
      io.close();
      process.exit(0);
    }
  });

  function memberships(): number {
    let m = 0;
    for (const [, rooms] of io.of("/").adapter.sids) m += rooms.size;
    return m;
  }

  /**
   * One socket leaves one of its rooms (not its own-id room) and joins
   * another: memberships stay constant. The rooms are tracked here, not read
   * from the adapter, so that the bench's own work is the same for both.
   */
  function churnOne(): boolean {
    const i = rng.below(config.clients);
    const socket = sockets[i];
    if (!socket) return false;
    const rooms = (current[i] ??= roomsOfClient(config, i));
    const j = rng.below(rooms.length);
    let join = rng.below(r);
    while (rooms.includes(join)) join = rng.below(r);
    void socket.leave(name(rooms[j]));
    void socket.join(name(join));
    rooms[j] = join;
    return true;
  }

  /** One socket is disconnected by the server (its client reconnects at once, and rejoins its rooms on connection). */
  function disconnectOne(): boolean {
    const i = rng.below(config.clients);
    const socket = sockets[i];
    if (!socket) return false;
    sockets[i] = undefined;
    socket.disconnect(true);
    return true;
  }

  /** A tick's membership churn: leave+join, then connection churn. */
  function churnTick(counts: { churned: number; reconnects: number }): void {
    for (let c = 0; c < config.churnPerTick; c++) if (churnOne()) counts.churned++;
    for (let c = 0; c < config.reconnectPerTick; c++) if (disconnectOne()) counts.reconnects++;
  }

  function emitToRandomRoom(): number {
    const room = name(rng.below(r));
    const size = io.of("/").adapter.rooms.get(room)?.size ?? 0;
    io.to(room).emit("m", nowUs());
    return size;
  }

  /** One run; a warm-up is the same work for `warmUpMs`, its numbers thrown away by the parent. */
  async function run(kind: RunKind, warmUp: boolean): Promise<{ type: "ran"; server: ServerRun }> {
    const durationMs = warmUp ? config.warmUpMs : config.durationMs;
    const gcPauses: number[] = [];
    const gcByKind: Record<GcKind, { count: number; totalMs: number; maxMs: number }> = {
      minor: { count: 0, totalMs: 0, maxMs: 0 },
      major: { count: 0, totalMs: 0, maxMs: 0 },
      incremental: { count: 0, totalMs: 0, maxMs: 0 },
      weakcb: { count: 0, totalMs: 0, maxMs: 0 },
    };
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        gcPauses.push(entry.duration);
        const kind = gcByKind[gcKindOf((entry as { detail?: { kind?: number } }).detail?.kind)];
        kind.count++;
        kind.totalMs += entry.duration;
        kind.maxMs = Math.max(kind.maxMs, entry.duration);
      }
    });
    observer.observe({ entryTypes: ["gc"] });
    clock.refresh();
    const eld = monitorEventLoopDelay({ resolution: 1 });
    let emits = 0;
    let expected = 0;
    const counts = { churned: 0, reconnects: 0 };
    const poolStats = () => (adapter === "sharded" ? (io.of("/").adapter as unknown as ShardedAdapter).stats().pool : undefined);
    const pool0 = poolStats();
    const profiler = config.profileDir === undefined || warmUp ? undefined : await startProfiler();
    const c0 = clock.sample();
    eld.enable();
    const start = process.hrtime.bigint();
    const startUs = Number(start / 1000n);
    const endNs = start + BigInt(durationMs) * 1_000_000n;
    const tickNs = BigInt(config.tickMs) * 1_000_000n;
    if (kind === "fixed") {
      for (let due = start; due < endNs; due += tickNs) {
        // A late tick still yields one event-loop turn: a server that falls
        // behind keeps writing to its sockets instead of bursting ticks.
        const wait = Number(due - process.hrtime.bigint()) / 1e6;
        await new Promise((resolve) => (wait > 0 ? setTimeout(resolve, wait) : setImmediate(resolve)));
        churnTick(counts);
        for (let e = 0; e < config.roomsPerTick; e++) {
          expected += emitToRandomRoom();
          emits++;
        }
      }
    } else {
      let nextChurn = start;
      while (process.hrtime.bigint() < endNs) {
        // The churn keeps its rate in time, however long a turn of emits takes.
        for (const now = process.hrtime.bigint(); now >= nextChurn; nextChurn += tickNs) churnTick(counts);
        for (let e = 0; e < config.saturateBatch; e++) {
          expected += emitToRandomRoom();
          emits++;
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    // The last writes leave the process asynchronously; keep measuring the loop a little.
    await new Promise((resolve) => setTimeout(resolve, 200));
    eld.disable();
    const c1 = clock.sample();
    const cpuWindowMs = Number(process.hrtime.bigint() - start) / 1e6;
    if (profiler !== undefined) await profiler.stopInto(join(config.profileDir as string, `storm-${adapter}-${kind}-${process.pid}.cpuprofile`));
    await new Promise((resolve) => setTimeout(resolve, 50)); // the last 'gc' entries
    observer.disconnect();
    const sorted = Float64Array.from(gcPauses).sort();
    const ms = (ns: number) => ns / 1e6;
    return {
      type: "ran",
      server: {
        startUs,
        endUs: nowUs(),
        emits,
        expectedDeliveries: expected,
        churned: counts.churned,
        reconnects: counts.reconnects,
        eventLoopDelayP99Ms: ms(eld.percentile(99)),
        eventLoopDelayMaxMs: ms(eld.max),
        gcPauses: sorted.length,
        gcPauseP99Ms: sorted.length > 0 ? quantile(sorted, 0.99) : 0,
        gcPauseMaxMs: sorted.length > 0 ? sorted[sorted.length - 1] : 0,
        gcByKind,
        mainCpuMs: ms(c1.main - c0.main),
        workerCpuMs: ms(c1.added - c0.added),
        cpuWindowMs,
        memberships: memberships(),
        pool: pool0 && {
          offloaded: (poolStats()?.offloaded ?? 0) - pool0.offloaded,
          calibratedBefore: pool0.calibration !== undefined && !pool0.calibrating,
          offloadThreshold: pool0.offloadThreshold,
        },
      },
    };
  }
}

/** A CPU profile of this thread (node:inspector), for `--scale-profile`: the measured window only, not the connect phase. */
async function startProfiler(): Promise<{ stopInto(file: string): Promise<void> }> {
  const session = new Session();
  session.connect();
  const post = <T>(method: string, params?: object) =>
    new Promise<T>((resolve, reject) => session.post(method, params, (err, result) => (err ? reject(err) : resolve(result as T))));
  await post("Profiler.enable");
  await post("Profiler.setSamplingInterval", { interval: 100 });
  await post("Profiler.start");
  return {
    async stopInto(file: string) {
      const { profile } = await post<{ profile: unknown }>("Profiler.stop");
      session.disconnect();
      await mkdir(join(file, ".."), { recursive: true });
      await writeFile(file, JSON.stringify(profile));
    },
  };
}

// --------------------------------------------------------------- clients --

interface ClientsArgs {
  readonly port: number;
  readonly clients: number;
}

/** Raw engine.io/socket.io websocket clients (raw-client.ts); see the file comment. */
export async function stormClientsMain(json: string): Promise<void> {
  const { port, clients } = JSON.parse(json) as ClientsArgs;
  let latency = createHistogram();
  let received = 0;
  let lastUs = 0;
  let cpu0 = process.cpuUsage();
  const offsetUs = nowUs() - performance.now() * 1000;
  const onStamp = (stampUs: number, receivedUs: number) => {
    received++;
    lastUs = receivedUs;
    latency.record(Math.max(1, Math.round(receivedUs - stampUs)));
  };
  const sockets: RawSocketIoClient[] = new Array(clients);
  let connectErrors = 0;
  let connectedCount = 0;
  let reconnected = 0;
  let exiting = false;
  /** Frames not understood by the connections already replaced. */
  let unexpectedFramesOfClosed = 0;
  // A connection the server closes (the connection churn) is opened again at once, under the same index.
  const open = (i: number): RawSocketIoClient =>
    (sockets[i] = new RawSocketIoClient(port, i, onStamp, offsetUs, () => {
      if (exiting) return;
      unexpectedFramesOfClosed += sockets[i].unexpectedFrames;
      reconnected++;
      open(i);
    }));

  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < clients) {
      if ((await open(next++).opened) === "connected") connectedCount++;
      else connectErrors++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(100, clients) }, worker));
  const connectMs = performance.now() - started;
  send({ type: "connected", connectMs, connected: connectedCount, connectErrors });

  process.on("message", (message: { type: string }) => {
    if (message.type === "reset") {
      latency = createHistogram();
      received = 0;
      lastUs = 0;
      reconnected = 0;
      cpu0 = process.cpuUsage();
      send({ type: "reset" });
    } else if (message.type === "count") {
      send({ type: "count", received });
    } else if (message.type === "report") {
      const cpu = process.cpuUsage(cpu0);
      const ms = (us: number) => us / 1000;
      const counts: ClientCounts = {
        received,
        lastUs,
        latency:
          received > 0
            ? { p50: ms(latency.percentile(50)), p99: ms(latency.percentile(99)), p999: ms(latency.percentile(99.9)), max: ms(latency.max) }
            : { p50: NaN, p99: NaN, p999: NaN, max: NaN },
        cpuMs: (cpu.user + cpu.system) / 1000,
        unexpectedFrames: sockets.reduce((sum, client) => sum + client.unexpectedFrames, unexpectedFramesOfClosed),
        reconnected,
      };
      send({ type: "report", counts });
    } else if (message.type === "exit") {
      exiting = true;
      for (const client of sockets) client.close();
      setTimeout(() => process.exit(0), 100);
    }
  });
}

// ---------------------------------------------------------------- parent --

/** "minor 4 (max 12.1 ms), major 1 (max 30.2 ms)": the kinds that occurred. */
function gcKindsText(server: ServerRun): string {
  const parts = Object.entries(server.gcByKind)
    .filter(([, k]) => k.count > 0)
    .map(([name, k]) => `${name} ${k.count}, max ${k.maxMs.toFixed(1)} ms`);
  return parts.length > 0 ? parts.join("; ") : "none";
}


/** Runs the fixed-rate and the saturating storm with each adapter in turn (alternating order over the rounds). */
export async function runStorm(config: StormConfig, script: string, log: (line: string) => void, live: Set<{ kill(): void }>): Promise<StormResult> {
  const started = performance.now();
  const rooms = roomCount(config);
  const memberships = config.clients * (config.k + 1);
  const offeredPerSecond = (config.roomsPerTick * config.roomSize * 1000) / config.tickMs;
  log(
    `[storm] ${config.clients} raw websocket clients × ${config.k} rooms of ~${config.roomSize} (${rooms} rooms, ${memberships} memberships with the own-id rooms);` +
      ` ${config.durationMs} ms at ${(config.roomsPerTick * 1000) / config.tickMs} broadcasts/s (~${Math.round(offeredPerSecond)} deliveries/s) with ${(config.churnPerTick * 1000) / config.tickMs} leave+join/s and ${(config.reconnectPerTick * 1000) / config.tickMs} disconnect+reconnect/s, then saturating`,
  );
  const runs: StormRun[] = [];
  for (let round = 0; round < config.rounds; round++) {
    const order = round % 2 === 0 ? ADAPTERS : [...ADAPTERS].reverse();
    for (const adapter of order) {
      // A large old space: the in-memory adapter holds ~1M memberships on its heap.
      const server = new Child("--storm-server", { adapter, config } satisfies ServerArgs, script, ["--max-old-space-size=4096"]);
      live.add(server);
      let clients: Child | undefined;
      try {
        const { port } = await server.next<{ port: number }>("listening", 60_000);
        clients = new Child("--storm-clients", { port, clients: config.clients } satisfies ClientsArgs, script);
        live.add(clients);
        const conn = await clients.next<{ connectMs: number; connected: number; connectErrors: number }>("connected", 600_000);
        if (conn.connected !== config.clients) throw new Error(`storm ${adapter}: ${conn.connected} of ${config.clients} clients connected (${conn.connectErrors} errors)`);
        // Every join landed?
        for (let waited = 0; ; waited += 100) {
          server.send({ type: "memberships" });
          const m = await server.next<{ memberships: number; connected: number }>("memberships");
          if (m.memberships >= memberships) break;
          if (waited > 60_000) throw new Error(`storm ${adapter}: ${m.memberships} of ${memberships} memberships after 60 s`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        log(`[storm] round ${round + 1} ${adapter}: ${config.clients} clients connected and joined in ${(conn.connectMs / 1000).toFixed(1)} s`);
        if (config.warmUpMs > 0) {
          server.send({ type: "run", kind: "fixed", warmUp: true });
          const { server: warm } = await server.next<{ server: ServerRun }>("ran", config.warmUpMs + 300_000);
          await awaitDeliveries(clients, warm.expectedDeliveries);
        }
        for (const kind of ["fixed", "saturating"] as const) {
          await new Promise((resolve) => setTimeout(resolve, 500));
          clients.send({ type: "reset" });
          await clients.next("reset");
          server.send({ type: "run", kind });
          const { server: srv } = await server.next<{ server: ServerRun }>("ran", config.durationMs + 300_000);
          await awaitDeliveries(clients, srv.expectedDeliveries);
          clients.send({ type: "report" });
          const { counts } = await clients.next<{ counts: ClientCounts }>("report");
          const deliveredPerSecond = counts.received / Math.max(1e-9, (counts.lastUs - srv.startUs) / 1e6);
          runs.push({ adapter, round, kind, server: srv, clients: counts, deliveredPerSecond, connectMs: conn.connectMs });
          log(
            `[storm] round ${round + 1} ${adapter.padEnd(9)} ${kind.padEnd(10)}: ${srv.emits} emits, delivered ${counts.received}/${srv.expectedDeliveries} = ${Math.round(deliveredPerSecond)}/s;` +
              ` latency p50 ${counts.latency.p50.toFixed(2)} / p99 ${counts.latency.p99.toFixed(2)} / p99.9 ${counts.latency.p999.toFixed(2)} ms;` +
              ` event-loop delay p99 ${srv.eventLoopDelayP99Ms.toFixed(2)} ms; GC pauses ${srv.gcPauses}, p99 ${srv.gcPauseP99Ms.toFixed(2)} ms (${gcKindsText(srv)});` +
              ` server main CPU ${srv.mainCpuMs.toFixed(0)} ms, workers ${srv.workerCpuMs.toFixed(0)} ms; clients CPU ${counts.cpuMs.toFixed(0)} ms; ${srv.churned} leave+join, ${srv.reconnects} reconnects (${counts.reconnected} by the clients)` +
              (srv.pool ? `; ${srv.pool.offloaded} broadcasts offloaded, threshold ${srv.pool.offloadThreshold} (${srv.pool.calibratedBefore ? "calibrated before the run" : "NOT calibrated yet"})` : ""),
          );
          if (counts.unexpectedFrames > 0) log(`[storm] WARNING: ${adapter} ${kind}: the clients got ${counts.unexpectedFrames} frames they could not parse`);
          if (counts.received !== srv.expectedDeliveries) log(`[storm] WARNING: ${adapter} ${kind}: ${counts.received} received, ${srv.expectedDeliveries} expected`);
        }
      } finally {
        await clients?.stop();
        await server.stop();
        if (clients) live.delete(clients);
        live.delete(server);
      }
    }
  }
  const summary = {} as Record<AdapterKind, StormSummary>;
  for (const adapter of ADAPTERS) {
    const fixed = runs.filter((r) => r.adapter === adapter && r.kind === "fixed");
    const saturating = runs.filter((r) => r.adapter === adapter && r.kind === "saturating");
    summary[adapter] = {
      latencyP50Ms: median(fixed.map((r) => r.clients.latency.p50)),
      latencyP99Ms: median(fixed.map((r) => r.clients.latency.p99)),
      latencyP999Ms: median(fixed.map((r) => r.clients.latency.p999)),
      eventLoopDelayP99Ms: median(fixed.map((r) => r.server.eventLoopDelayP99Ms)),
      gcPauseP99Ms: median(fixed.map((r) => r.server.gcPauseP99Ms)),
      fixedDeliveredPerSecond: median(fixed.map((r) => r.deliveredPerSecond)),
      deliveredFraction: median(fixed.map((r) => r.clients.received / Math.max(1, r.server.expectedDeliveries))),
      saturatingDeliveredPerSecond: median(saturating.map((r) => r.deliveredPerSecond)),
      fixedMainCpuMsPerSecond: median(fixed.map((r) => r.server.mainCpuMs / Math.max(1e-9, r.server.cpuWindowMs / 1000))),
      saturatingMainCpuUsPerDelivery: median(saturating.map((r) => (r.server.mainCpuMs * 1000) / Math.max(1, r.clients.received))),
    };
  }
  return { config, rooms, memberships, offeredPerSecond, runs, summary, elapsedSeconds: (performance.now() - started) / 1000 };
}
