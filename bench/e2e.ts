/**
 * End to end: a real socket.io server (http on 127.0.0.1, a random port)
 * with one adapter, real socket.io-client websocket connections from another
 * process, and a broadcast storm on a fixed schedule.
 *
 * Three processes per adapter, so that nothing but the server runs on the
 * server's main thread:
 *   - the parent (bench/run.ts, `runEndToEnd`) orchestrates;
 *   - the server (`run.js --e2e-server '<json>'`): `new Server(http, { adapter })`;
 *     on connection, client i joins its rooms (a seeded skewed workload, K
 *     rooms per client plus its own-id room). On command it runs the storm:
 *     every tick it emits to a few rooms, now and then to everyone, to a union
 *     of rooms, and to a few single sockets (own-id rooms); each payload is the
 *     server's monotonic clock (µs) at the emit. It measures its main thread's
 *     event-loop delay (`monitorEventLoopDelay`) and CPU during the storm;
 *   - the clients (`run.js --e2e-clients '<json>'`): `io(url, { transports:
 *     ["websocket"], forceNew: true })` per client; each received message is
 *     counted and its latency (own monotonic clock minus the payload: same
 *     machine, same CLOCK_MONOTONIC) recorded in a histogram.
 * The adapters run in turn (never at the same time), in alternating order
 * over the rounds.
 */
import { fork, type ChildProcess } from "node:child_process";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { stat } from "node:fs/promises";
import { createHistogram, monitorEventLoopDelay, performance } from "node:perf_hooks";
import { Server, type Socket } from "socket.io";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { createAdapter, type ShardedAdapter } from "../lib/index";
import { CpuClock } from "./cpu";
import { ADAPTERS, type AdapterKind } from "./protocol";
import { buildWorkload, Rng, type Workload } from "./workload";
import { median } from "./stats";

export interface StormSchedule {
  /** Length of the storm, ms. */
  readonly durationMs: number;
  /** Interval between ticks, ms. */
  readonly tickMs: number;
  /** Rooms emitted to (one emit each) per tick, drawn uniformly among the rooms: sizes follow the skew. */
  readonly roomsPerTick: number;
  /** Every this many ticks, one emit to everyone. */
  readonly everyoneEvery: number;
  /** Every this many ticks, one emit to the union of `unionRooms` rooms. */
  readonly unionEvery: number;
  readonly unionRooms: number;
  /** Emits to single sockets (their own-id rooms) per tick. */
  readonly ownIdPerTick: number;
}

export interface E2EConfig {
  readonly clients: number;
  /** Rooms per client besides its own-id room. */
  readonly k: number;
  readonly rounds: number;
  readonly seed: number;
  readonly workers: number;
  readonly offloadThreshold: number | undefined;
  readonly schedule: StormSchedule;
}

export interface ServerArgs {
  readonly adapter: AdapterKind;
  readonly config: E2EConfig;
  /**
   * As worker `index` of `count` in a Node.js cluster (bench/ipc-cluster.ts):
   * `createAdapter({ cluster: true })`, a port of its own, and its share of
   * the storm: every count-th emit, and the single-socket emits to its own
   * clients (client i connects to worker i % count).
   */
  readonly cluster?: { readonly index: number; readonly count: number };
}

export interface ClientArgs {
  readonly port: number;
  /** Client i connects to ports[i % ports.length] (default: [port]). */
  readonly ports?: readonly number[];
  readonly clients: number;
}

/** What one adapter's server measured during one storm. */
export interface ServerStorm {
  readonly startUs: number;
  readonly endUs: number;
  readonly emits: number;
  readonly expectedDeliveries: number;
  /** Largest lateness of a tick against its schedule, ms. */
  readonly maxTickLagMs: number;
  /** Event-loop delay of the server's main thread, ms (monitorEventLoopDelay, resolution 1 ms). */
  readonly eventLoopDelay: { readonly p50: number; readonly p99: number; readonly max: number; readonly mean: number };
  readonly mainCpuMs: number;
  readonly processCpuMs: number;
  readonly workerCpuMs: number;
  readonly connected: number;
  readonly memberships: number;
  /** Broadcasts the sharded adapter handed to its shard workers (offloadThreshold); 0 for in-memory. */
  readonly offloaded: number;
}

export interface ClientReport {
  readonly received: number;
  readonly firstUs: number;
  readonly lastUs: number;
  /** Delivery latency, ms. */
  readonly latency: { readonly p50: number; readonly p99: number; readonly max: number; readonly mean: number };
  readonly cpuMs: number;
  readonly connectMs: number;
  readonly connectErrors: number;
}

export interface E2ERound {
  readonly adapter: AdapterKind;
  readonly round: number;
  readonly server: ServerStorm;
  readonly clients: ClientReport;
  /** received / (last receive − storm start). */
  readonly deliveredPerSecond: number;
  readonly offeredPerSecond: number;
}

export interface E2EAdapterSummary {
  readonly deliveredPerSecond: number;
  readonly offeredPerSecond: number;
  readonly deliveredFraction: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly eventLoopDelayP99Ms: number;
  readonly mainCpuMsPerSecond: number;
  readonly workerCpuMsPerSecond: number;
  readonly maxTickLagMs: number;
}

export interface E2EResult {
  readonly config: E2EConfig;
  readonly workload: { readonly rooms: number; readonly largestRooms: string; readonly memberships: number };
  readonly rounds: E2ERound[];
  /** Medians over the rounds, per adapter. */
  readonly summary: Record<AdapterKind, E2EAdapterSummary>;
  readonly elapsedSeconds: number;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

function send(message: unknown): void {
  (process as NodeJS.Process & { send: (m: unknown) => boolean }).send(message);
}

/**
 * On each connection, client `i` (its `auth.i`) joins its K rooms of `w`;
 * returns the socket ids by client index, filled as they connect.
 */
export function joinClientsToTheirRooms(io: Server, w: Workload, config: { clients: number; k: number }): string[] {
  const ids: string[] = new Array(config.clients).fill("");
  io.on("connection", (socket: Socket) => {
    const i = Number((socket.handshake.auth as { i?: unknown }).i);
    if (!Number.isInteger(i) || i < 0 || i >= config.clients) {
      socket.disconnect(true);
      return;
    }
    ids[i] = socket.id;
    const rooms: string[] = [];
    for (let j = 0; j < config.k; j++) rooms.push(w.roomNames[w.roomsOf[i * config.k + j]]);
    void socket.join(rooms);
  });
  return ids;
}

export function e2eWorkload(config: E2EConfig): Workload {
  // Mean room size 100 (as in the adapter benchmark), at least 20 rooms.
  const r = Math.max(20, Math.round((config.clients * config.k) / 100));
  return buildWorkload({ n: config.clients, k: config.k, r, zipf: 1, seed: config.seed, hundredRooms: false });
}

/** Each tick's emits, identical in every process that builds it from the same config. */
interface Emit {
  readonly rooms: string[] | "everyone" | { readonly ownId: number };
  readonly recipients: number;
}

function stormPlan(config: E2EConfig, w: Workload): Emit[][] {
  const s = config.schedule;
  const rng = new Rng(config.seed + 7);
  const ticks = Math.max(1, Math.round(s.durationMs / s.tickMs));
  const r = w.params.r;
  const k = w.params.k;
  const unionSize = (rooms: number[]) => {
    const wanted = new Set(rooms);
    let count = 0;
    for (let c = 0; c < w.params.n; c++) {
      for (let j = 0; j < k; j++) {
        if (wanted.has(w.roomsOf[c * k + j])) {
          count++;
          break;
        }
      }
    }
    return count;
  };
  const plan: Emit[][] = [];
  for (let t = 0; t < ticks; t++) {
    const tick: Emit[] = [];
    for (let i = 0; i < s.roomsPerTick; i++) {
      const room = rng.below(r);
      tick.push({ rooms: [w.roomNames[room]], recipients: w.roomSizes[room] });
    }
    if (s.unionEvery > 0 && t % s.unionEvery === 0) {
      const rooms = new Set<number>();
      while (rooms.size < Math.min(s.unionRooms, r)) rooms.add(rng.below(r));
      tick.push({ rooms: [...rooms].map((x) => w.roomNames[x]), recipients: unionSize([...rooms]) });
    }
    if (s.everyoneEvery > 0 && t % s.everyoneEvery === Math.floor(s.everyoneEvery / 2)) tick.push({ rooms: "everyone", recipients: w.params.n });
    for (let i = 0; i < s.ownIdPerTick; i++) tick.push({ rooms: { ownId: rng.below(w.params.n) }, recipients: 1 });
    plan.push(tick);
  }
  return plan;
}

// ---------------------------------------------------------------- server --

export async function e2eServerMain(json: string): Promise<void> {
  const { adapter, config, cluster } = JSON.parse(json) as ServerArgs;
  await stat(__filename); // libuv's thread pool up before the baseline
  const clock = new CpuClock();
  clock.markBaseline();
  const w = e2eWorkload(config);
  const plan = stormPlan(config, w);
  const http: HttpServer = createServer();
  const io =
    cluster !== undefined
      ? new Server(http, { adapter: createAdapter({ cluster: true, workers: 1, offloadThreshold: config.offloadThreshold }), transports: ["websocket"] })
      : adapter === "sharded"
        ? new Server(http, { adapter: createAdapter({ workers: config.workers, offloadThreshold: config.offloadThreshold }), transports: ["websocket"] })
        : new Server(http, { transports: ["websocket"] });
  /** Whether this process sends the `ordinal`-th emit of the plan (always, but in a cluster). */
  const mine = (emit: Emit, ordinal: number) =>
    cluster === undefined || (typeof emit.rooms === "object" && !Array.isArray(emit.rooms) ? emit.rooms.ownId % cluster.count === cluster.index : ordinal % cluster.count === cluster.index);
  const ids = joinClientsToTheirRooms(io, w, config);
  // A cluster worker on port 0 would share the primary's port: `exclusive` gives it one of its own.
  await new Promise<void>((resolve) => http.listen({ port: 0, host: "127.0.0.1", exclusive: true }, resolve));
  send({ type: "listening", port: (http.address() as AddressInfo).port });

  process.on("message", (message: { type: string }) => {
    if (message.type === "storm") {
      void storm().then(send, (err) => send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) }));
    } else if (message.type === "exit") {
      io.close();
      process.exit(0);
    }
  });

  async function storm(): Promise<{ type: "stormed"; storm: ServerStorm }> {
    const nsp = io.of("/");
    let memberships = 0;
    for (const [, rooms] of nsp.adapter.sids) memberships += rooms.size;
    const connected = nsp.sockets.size;
    const offloaded = () => (adapter === "sharded" ? (nsp.adapter as unknown as ShardedAdapter).stats().pool.offloaded : 0);
    const offloaded0 = offloaded();
    clock.refresh();
    const eld = monitorEventLoopDelay({ resolution: 1 });
    const tickNs = config.schedule.tickMs * 1e6;
    let emits = 0;
    let expected = 0;
    let maxLagNs = 0;
    let ordinal = 0;
    const c0 = clock.sample();
    eld.enable();
    const start = process.hrtime.bigint();
    const startUs = Number(start / 1000n);
    for (let t = 0; t < plan.length; t++) {
      const due = start + BigInt(Math.round(t * tickNs));
      const wait = Number(due - process.hrtime.bigint()) / 1e6;
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      maxLagNs = Math.max(maxLagNs, Number(process.hrtime.bigint() - due));
      for (const emit of plan[t]) {
        if (!mine(emit, ordinal++)) continue;
        const stamp = nowUs();
        if (emit.rooms === "everyone") io.emit("m", stamp);
        else if (Array.isArray(emit.rooms)) io.to(emit.rooms).emit("m", stamp);
        else io.to(ids[emit.rooms.ownId]).emit("m", stamp);
        emits++;
        expected += emit.recipients;
      }
    }
    // The last tick's writes leave the process asynchronously; keep measuring the loop a little.
    await new Promise((resolve) => setTimeout(resolve, Math.min(200, config.schedule.tickMs * 5)));
    eld.disable();
    const c1 = clock.sample();
    const ms = (ns: number) => ns / 1e6;
    return {
      type: "stormed",
      storm: {
        startUs,
        endUs: nowUs(),
        emits,
        expectedDeliveries: expected,
        maxTickLagMs: ms(maxLagNs),
        eventLoopDelay: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max), mean: ms(eld.mean) },
        mainCpuMs: ms(c1.main - c0.main),
        processCpuMs: ms(c1.process - c0.process),
        workerCpuMs: ms(c1.added - c0.added),
        connected,
        memberships,
        offloaded: offloaded() - offloaded0,
      },
    };
  }
}

// --------------------------------------------------------------- clients --

export async function e2eClientsMain(json: string): Promise<void> {
  const { port, ports = [port], clients } = JSON.parse(json) as ClientArgs;
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const sockets: ClientSocket[] = [];
  const latency = createHistogram();
  let received = 0;
  let firstUs = 0;
  let lastUs = 0;
  let connectErrors = 0;
  // performance.now() and hrtime share CLOCK_MONOTONIC: one bigint read, then cheap reads.
  const offsetUs = nowUs() - performance.now() * 1000;
  const onMessage = (stamp: number) => {
    const now = performance.now() * 1000 + offsetUs;
    if (received === 0) firstUs = now;
    lastUs = now;
    received++;
    latency.record(Math.max(1, Math.round(now - stamp)));
  };
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  // At most 100 handshakes in flight (the server's listen backlog is 511).
  let next = 0;
  const worker = async () => {
    while (next < clients) {
      const i = next++;
      const socket = connect(urls[i % urls.length], { transports: ["websocket"], forceNew: true, reconnection: false, auth: { i }, timeout: 30_000 });
      socket.on("m", onMessage);
      sockets.push(socket);
      await new Promise<void>((resolve) => {
        socket.once("connect", () => resolve());
        socket.once("connect_error", () => {
          connectErrors++;
          resolve();
        });
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(100, clients) }, worker));
  const connectMs = performance.now() - started;
  send({ type: "connected", connectMs, connected: sockets.filter((s) => s.connected).length, connectErrors });

  process.on("message", (message: { type: string }) => {
    if (message.type === "report") {
      const cpu = process.cpuUsage(cpu0);
      const ms = (us: number) => us / 1000;
      const report: ClientReport = {
        received,
        firstUs,
        lastUs,
        latency: received > 0 ? { p50: ms(latency.percentile(50)), p99: ms(latency.percentile(99)), max: ms(latency.max), mean: ms(latency.mean) } : { p50: NaN, p99: NaN, max: NaN, mean: NaN },
        cpuMs: (cpu.user + cpu.system) / 1000,
        connectMs,
        connectErrors,
      };
      send({ type: "report", report });
    } else if (message.type === "count") {
      send({ type: "count", received, lastUs });
    } else if (message.type === "exit") {
      for (const socket of sockets) socket.disconnect();
      setTimeout(() => process.exit(0), 100);
    }
  });
}

// ---------------------------------------------------------------- parent --

export class Child {
  private readonly queue: unknown[] = [];
  private waiters: ((m: unknown) => void)[] = [];
  private failure: Error | undefined;
  readonly process: ChildProcess;

  constructor(flag: string, args: unknown, script: string, extraArgv: string[] = []) {
    this.process = fork(script, [flag, JSON.stringify(args)], {
      execArgv: [...process.execArgv, ...extraArgv],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.process.on("message", (m: { type: string; message?: string }) => {
      if (m.type === "error") this.fail(new Error(`${flag} failed:\n${m.message}`));
      else {
        const waiter = this.waiters.shift();
        if (waiter) waiter(m);
        else this.queue.push(m);
      }
    });
    this.process.on("exit", (code, signal) => this.fail(new Error(`${flag} exited (code ${code}, signal ${signal})`)));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w({ type: "error", error: err });
  }

  async next<T>(type: string, timeoutMs = 120_000): Promise<T> {
    const m = (this.queue.shift() ??
      (this.failure
        ? { type: "error", error: this.failure }
        : await new Promise<unknown>((resolve) => {
            const timer = setTimeout(() => resolve({ type: "error", error: new Error(`timed out waiting for ${type}`) }), timeoutMs);
            this.waiters.push((x) => {
              clearTimeout(timer);
              resolve(x);
            });
          }))) as { type: string; error?: Error };
    if (m.type === "error") throw m.error;
    if (m.type !== type) throw new Error(`expected ${type}, got ${m.type}`);
    return m as T;
  }

  send(message: unknown): void {
    this.process.send(message as never);
  }

  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.process.once("exit", () => resolve()));
    this.send({ type: "exit" });
    const timer = setTimeout(() => this.process.kill("SIGKILL"), 5_000);
    await gone;
    clearTimeout(timer);
  }

  kill(): void {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill("SIGKILL");
  }
}


/** Waits until every expected delivery arrived at a clients process (asked with "count"), or nothing arrived for 2 s. */
export async function awaitDeliveries(clients: Child, expectedDeliveries: number): Promise<void> {
  let last = -1;
  let idleSince = performance.now();
  for (;;) {
    clients.send({ type: "count" });
    const { received } = await clients.next<{ received: number }>("count");
    if (received >= expectedDeliveries) return;
    if (received !== last) {
      last = received;
      idleSince = performance.now();
    } else if (performance.now() - idleSince > 2000) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits for the deliveries (see {@link awaitDeliveries}), then asks the clients for their report. */
export async function clientsReport(clients: Child, expectedDeliveries: number): Promise<ClientReport> {
  await awaitDeliveries(clients, expectedDeliveries);
  clients.send({ type: "report" });
  const { report } = await clients.next<{ report: ClientReport }>("report");
  return report;
}

/** Runs the storm with each adapter in turn (alternating order over the rounds). */
export async function runEndToEnd(config: E2EConfig, script: string, log: (line: string) => void, live: Set<{ kill(): void }>): Promise<E2EResult> {
  const started = performance.now();
  const w = e2eWorkload(config);
  const plan = stormPlan(config, w);
  const offered = plan.reduce((s, tick) => s + tick.reduce((x, e) => x + e.recipients, 0), 0);
  const offeredPerSecond = offered / (config.schedule.durationMs / 1000);
  const sorted = Array.from(w.roomSizes).sort((a, b) => b - a);
  log(
    `[e2e] ${config.clients} websocket clients, ${config.k} rooms each of ${w.params.r} (largest ${sorted.slice(0, 3).join(",")}); storm ${config.schedule.durationMs} ms,` +
      ` ${plan.reduce((s, t) => s + t.length, 0)} emits, ${offered} deliveries offered (${Math.round(offeredPerSecond)}/s)`,
  );
  const rounds: E2ERound[] = [];
  for (let round = 0; round < config.rounds; round++) {
    const order = round % 2 === 0 ? ADAPTERS : [...ADAPTERS].reverse();
    for (const adapter of order) {
      const server = new Child("--e2e-server", { adapter, config } satisfies ServerArgs, script);
      live.add(server);
      let clients: Child | undefined;
      try {
        const { port } = await server.next<{ port: number }>("listening", 60_000);
        clients = new Child("--e2e-clients", { port, clients: config.clients } satisfies ClientArgs, script);
        live.add(clients);
        const conn = await clients.next<{ connectMs: number; connected: number; connectErrors: number }>("connected", 180_000);
        if (conn.connected !== config.clients) throw new Error(`e2e ${adapter}: ${conn.connected} of ${config.clients} clients connected (${conn.connectErrors} errors)`);
        // Let the last joins land and the connection burst's garbage settle.
        await new Promise((resolve) => setTimeout(resolve, 500));
        server.send({ type: "storm" });
        const { storm } = await server.next<{ storm: ServerStorm }>("stormed", config.schedule.durationMs + 120_000);
        if (storm.connected !== config.clients) throw new Error(`e2e ${adapter}: the server saw ${storm.connected} of ${config.clients} clients`);
        const report = await clientsReport(clients, storm.expectedDeliveries);
        const deliveredPerSecond = report.received / Math.max(1e-9, (report.lastUs - storm.startUs) / 1e6);
        rounds.push({ adapter, round, server: storm, clients: report, deliveredPerSecond, offeredPerSecond });
        log(
          `[e2e] round ${round + 1} ${adapter.padEnd(9)}: connected ${config.clients} in ${(report.connectMs / 1000).toFixed(1)} s; delivered ${report.received}/${storm.expectedDeliveries}` +
            ` = ${Math.round(deliveredPerSecond)}/s; latency p50 ${report.latency.p50.toFixed(2)} ms, p99 ${report.latency.p99.toFixed(2)} ms;` +
            ` server event-loop delay p99 ${storm.eventLoopDelay.p99.toFixed(2)} ms; server main CPU ${storm.mainCpuMs.toFixed(0)} ms, workers ${storm.workerCpuMs.toFixed(0)} ms; max tick lag ${storm.maxTickLagMs.toFixed(1)} ms`,
        );
        if (report.received !== storm.expectedDeliveries) {
          log(`[e2e] WARNING: ${adapter}: ${report.received} messages received, ${storm.expectedDeliveries} expected`);
        }
      } finally {
        await clients?.stop();
        await server.stop();
        if (clients) live.delete(clients);
        live.delete(server);
      }
    }
  }
  const summary = {} as Record<AdapterKind, E2EAdapterSummary>;
  for (const adapter of ADAPTERS) {
    const list = rounds.filter((r) => r.adapter === adapter);
    const seconds = (r: E2ERound) => (r.server.endUs - r.server.startUs) / 1e6;
    summary[adapter] = {
      deliveredPerSecond: median(list.map((r) => r.deliveredPerSecond)),
      offeredPerSecond,
      deliveredFraction: median(list.map((r) => r.clients.received / r.server.expectedDeliveries)),
      latencyP50Ms: median(list.map((r) => r.clients.latency.p50)),
      latencyP99Ms: median(list.map((r) => r.clients.latency.p99)),
      eventLoopDelayP99Ms: median(list.map((r) => r.server.eventLoopDelay.p99)),
      mainCpuMsPerSecond: median(list.map((r) => r.server.mainCpuMs / seconds(r))),
      workerCpuMsPerSecond: median(list.map((r) => r.server.workerCpuMs / seconds(r))),
      maxTickLagMs: Math.max(...list.map((r) => r.server.maxTickLagMs)),
    };
  }
  return {
    config,
    workload: { rooms: w.params.r, largestRooms: sorted.slice(0, 5).join(","), memberships: w.memberships },
    rounds,
    summary,
    elapsedSeconds: (performance.now() - started) / 1000,
  };
}
