/**
 * End to end on uWebSockets.js (`io.attachApp(app)`, issue #11): the same
 * clients and rooms as bench/e2e.ts, on a uWS app, for socket.io's in-memory
 * adapter (with socket.io's own uWS patch of it) and ours, side by side.
 *
 * Per broadcast shape (one room, everyone, one socket's own-id room, a union
 * of rooms, everyone except one room), the server emits a fixed number of
 * broadcasts, a batch per tick, and measures its main thread's CPU from the
 * first emit until the clients have everything (uWS writes published frames
 * after the emitting turn, on the same thread); the clients' process (the
 * `--e2e-clients` child of e2e.ts) counts what arrives. Every shape is run
 * once at a fifth of its size first, unmeasured (warm-up). Reported per shape:
 * main-thread CPU per broadcast, time inside emit() and delivered messages
 * per second; the ratios are the medians of the rounds' paired ratios (each
 * round runs a shape on both servers at the same time, their ticks
 * interleaved: see runTogether). Every tick goes back to the event loop, so
 * that uWS writes each tick's publishes before the next tick.
 *
 * Neither server sends engine.io heartbeats while measuring (see
 * HEARTBEAT_OFF): they are no broadcast's cost, and came in bursts that made
 * the short phases' CPU swing by a third.
 *
 *   node dist/bench/run.js --only=uws
 */
import { stat } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { Server } from "socket.io";
import * as uWS from "uWebSockets.js";
import { createAdapter, type ShardedAdapter } from "../lib/index";
import { CpuClock } from "./cpu";
import { Child, e2eWorkload, joinClientsToTheirRooms, type E2EConfig } from "./e2e";
import { ADAPTERS, type AdapterKind } from "./protocol";
import { Rng, type Workload } from "./workload";
import { median } from "./stats";

export const UWS_SHAPES = ["one room", "everyone", "own id", "union", "except"] as const;
export type UwsShape = (typeof UWS_SHAPES)[number];

/** The shapes a topic publish serves (both adapters publish them): target ≤ 1.0; the others ≤ 0.7. */
export const PUBLISHED_SHAPES: readonly UwsShape[] = ["one room", "everyone", "own id"];

export interface UwsConfig {
  readonly clients: number;
  /** Rooms per client besides its own-id room. */
  readonly k: number;
  /** Rounds of the published shapes (one room, everyone, own id), whose ratios are near 1 and need them. */
  readonly rounds: number;
  /** Rounds of union and except, whose ratios are far from their bound (and whose in-memory phases are long). */
  readonly unpublishedRounds: number;
  readonly seed: number;
  readonly workers: number;
  /** Broadcasts per shape and round. */
  readonly broadcasts: Record<UwsShape, number>;
  /** Broadcasts per tick (one event-loop turn), and ms between ticks. */
  readonly batch: number;
  readonly tickMs: number;
  readonly unionRooms: number;
}

export function uwsDefaults(quick: boolean): UwsConfig {
  return {
    clients: quick ? 300 : 1500,
    k: 3,
    // Many short paired rounds rather than a few long ones: the load of this
    // shared machine drifts, and the median of paired ratios shrugs off a round it hit.
    rounds: quick ? 1 : 8,
    unpublishedRounds: quick ? 1 : 3,
    seed: 1,
    workers: 2,
    broadcasts: quick
      ? { "one room": 400, everyone: 60, "own id": 400, union: 100, except: 60 }
      : { "one room": 1500, everyone: 200, "own id": 2000, union: 400, except: 150 },
    // 10 broadcasts every 10 ms: an everyone burst stays far below uWS's
    // per-socket backpressure limit (64 KiB), beyond which uWS drops.
    batch: 10,
    tickMs: 10,
    unionRooms: 5,
  };
}

interface ServerArgs {
  readonly adapter: AdapterKind;
  readonly config: UwsConfig;
}

/** What the server measured for one shape. */
export interface UwsPhase {
  readonly shape: UwsShape;
  readonly broadcasts: number;
  readonly expectedDeliveries: number;
  readonly startUs: number;
  /** Main-thread CPU from the first emit until the parent said the clients had everything. */
  readonly mainCpuMs: number;
  /** Wall time inside the emit calls (socket.io's and the adapter's synchronous work, and whatever uWS does within publish). */
  readonly emitMs: number;
  /**
   * The median over the phase's ticks of a tick's wall time inside emit()
   * divided by its broadcasts: how long one emit holds the event loop,
   * without the ticks during which another process preempted this one.
   */
  readonly emitUsPerBroadcast: number;
  readonly workerCpuMs: number;
  /** Broadcasts our adapter published to a uWS topic (its stats); NaN for in-memory. */
  readonly published: number;
}

export interface UwsShapeRound {
  readonly adapter: AdapterKind;
  readonly round: number;
  readonly phase: UwsPhase;
  readonly delivered: number;
  readonly deliveredPerSecond: number;
}

export interface UwsShapeSummary {
  readonly mainCpuUsPerBroadcast: number;
  /** Wall time inside emit() per broadcast: how long one emit holds the event loop. */
  readonly emitUsPerBroadcast: number;
  readonly deliveredPerSecond: number;
  readonly deliveredFraction: number;
}

export interface UwsPairedRatios {
  readonly mainCpuPerRound: number[];
  readonly emitPerRound: number[];
  readonly mainCpu: number;
  readonly emit: number;
}

export interface UwsResult {
  readonly config: UwsConfig;
  readonly uwsPackage: string;
  readonly rounds: UwsShapeRound[];
  /** Medians over the rounds, per adapter and shape. */
  readonly summary: Record<AdapterKind, Record<UwsShape, UwsShapeSummary>>;
  /** Per shape, sharded / in-memory in each round (the two phases back to back), and their median. */
  readonly ratios: Record<UwsShape, UwsPairedRatios>;
  readonly elapsedSeconds: number;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** The share of each shape's broadcasts sent once, unmeasured, before the measured phases. */
const WARM_UP_FRACTION = 0.2;

/**
 * engine.io pings every socket every 25 s by default. The clients connect
 * within a few seconds, so their pings (a timer, a write and a pong each) come
 * in a burst that some phases catch and others do not: up to all 1,500 in a
 * phase, a third of an own-id phase's CPU. A heartbeat is no broadcast's cost,
 * and is the same for both adapters: neither server pings during the part.
 */
const HEARTBEAT_OFF = { pingInterval: 60 * 60_000, pingTimeout: 60_000 };

function send(message: unknown): void {
  (process as NodeJS.Process & { send: (m: unknown) => boolean }).send(message);
}

/** The rooms and sizes of e2e.ts's workload for these clients. */
function workloadOf(config: UwsConfig): Workload {
  return e2eWorkload({ clients: config.clients, k: config.k, seed: config.seed } as E2EConfig);
}

interface Target {
  readonly to: string[];
  readonly except: string | undefined;
  readonly recipients: number;
}

/** The broadcasts of one shape, identical in every process that builds them. */
function targetsOf(shape: UwsShape, config: UwsConfig, w: Workload, ids: readonly string[], fraction: number): Target[] {
  const rng = new Rng(config.seed + UWS_SHAPES.indexOf(shape) * 101);
  const { n, k, r } = w.params;
  const inRooms = (client: number, rooms: Set<number>): boolean => {
    for (let j = 0; j < k; j++) if (rooms.has(w.roomsOf[client * k + j])) return true;
    return false;
  };
  const count = (rooms: Set<number>): number => {
    let members = 0;
    for (let c = 0; c < n; c++) if (inRooms(c, rooms)) members++;
    return members;
  };
  const targets: Target[] = [];
  for (let i = 0; i < Math.ceil(config.broadcasts[shape] * fraction); i++) {
    if (shape === "one room") {
      const room = rng.below(r);
      targets.push({ to: [w.roomNames[room]], except: undefined, recipients: w.roomSizes[room] });
    } else if (shape === "everyone") {
      targets.push({ to: [], except: undefined, recipients: n });
    } else if (shape === "own id") {
      targets.push({ to: [ids[rng.below(n)]], except: undefined, recipients: 1 });
    } else if (shape === "union") {
      const rooms = new Set<number>();
      while (rooms.size < Math.min(config.unionRooms, r)) rooms.add(rng.below(r));
      targets.push({ to: [...rooms].map((x) => w.roomNames[x]), except: undefined, recipients: count(rooms) });
    } else {
      const room = rng.below(r);
      targets.push({ to: [], except: w.roomNames[room], recipients: n - w.roomSizes[room] });
    }
  }
  return targets;
}

// ---------------------------------------------------------------- server --

export async function uwsServerMain(json: string): Promise<void> {
  const { adapter, config } = JSON.parse(json) as ServerArgs;
  await stat(__filename); // libuv's thread pool up before the baseline
  const clock = new CpuClock();
  clock.markBaseline();
  const w = workloadOf(config);
  const app = uWS.App();
  const io =
    adapter === "sharded"
      ? new Server({ adapter: createAdapter({ workers: config.workers }), transports: ["websocket"], ...HEARTBEAT_OFF })
      : new Server({ transports: ["websocket"], ...HEARTBEAT_OFF });
  io.attachApp(app);
  const ids = joinClientsToTheirRooms(io, w, config);
  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) =>
    app.listen("127.0.0.1", 0, (socket) => (socket ? resolve(socket) : reject(new Error("uWS could not listen on 127.0.0.1")))),
  );
  send({ type: "listening", port: uWS.us_socket_local_port(listenSocket) });

  const nsp = io.of("/");
  const published = (): number => (adapter === "sharded" ? (nsp.adapter as unknown as ShardedAdapter).stats().uws.publishes : NaN);
  let running:
    | { shape: UwsShape; c0: ReturnType<CpuClock["sample"]>; startUs: number; broadcasts: number; expected: number; published0: number; emitMs: number; tickEmitUs: number[] }
    | undefined;

  process.on("message", (message: { type: string; shape?: UwsShape; fraction?: number; delayMs?: number }) => {
    if (message.type === "phase") {
      phase(message.shape as UwsShape, message.fraction ?? 1, message.delayMs ?? 0).catch((err: unknown) => send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) }));
    } else if (message.type === "done") {
      // The clients have everything: stop the clock.
      const c1 = clock.sample();
      const r = running as NonNullable<typeof running>;
      running = undefined;
      const result: UwsPhase = {
        shape: r.shape,
        broadcasts: r.broadcasts,
        expectedDeliveries: r.expected,
        startUs: r.startUs,
        mainCpuMs: (c1.main - r.c0.main) / 1e6,
        emitMs: r.emitMs,
        emitUsPerBroadcast: median(r.tickEmitUs),
        workerCpuMs: (c1.added - r.c0.added) / 1e6,
        published: published() - r.published0,
      };
      send({ type: "phased", phase: result });
    } else if (message.type === "exit") {
      void io.close();
      uWS.us_listen_socket_close(listenSocket);
      process.exit(0);
    }
  });

  /** Emits `shape`'s broadcasts, the first `delayMs` from now (see runTogether). */
  async function phase(shape: UwsShape, fraction: number, delayMs: number): Promise<void> {
    if (nsp.sockets.size !== config.clients) throw new Error(`uws ${adapter}: ${nsp.sockets.size} of ${config.clients} clients connected`);
    const targets = targetsOf(shape, config, w, ids, fraction);
    clock.refresh();
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    const published0 = published();
    const c0 = clock.sample();
    const startUs = nowUs();
    const phaseRun = { shape, c0, startUs, broadcasts: targets.length, expected: targets.reduce((s, t) => s + t.recipients, 0), published0, emitMs: 0, tickEmitUs: [] as number[] };
    running = phaseRun;
    const start = performance.now();
    for (let i = 0; i < targets.length; i += config.batch) {
      const due = start + (i / config.batch) * config.tickMs;
      const wait = due - performance.now();
      // Back to the event loop between ticks even when late, so that uWS
      // writes each tick's publishes (after the turn) before the next tick:
      // late ticks run in one turn would be written in fewer, bigger batches,
      // cheaper per broadcast for whichever adapter fell behind. uWS writes in
      // a check handle that runs before setImmediate's.
      await new Promise((resolve) => (wait > 0 ? setTimeout(resolve, wait) : setImmediate(resolve)));
      const tickStart = performance.now();
      const end = Math.min(i + config.batch, targets.length);
      for (let j = i; j < end; j++) {
        const target = targets[j];
        const stamp = nowUs();
        const operator = target.except === undefined ? io.to(target.to) : io.except(target.except);
        operator.emit("m", stamp);
      }
      const tickMs = performance.now() - tickStart;
      phaseRun.emitMs += tickMs;
      phaseRun.tickEmitUs.push((tickMs * 1000) / (end - i));
    }
    send({ type: "emitted", expectedDeliveries: phaseRun.expected, startUs });
  }
}

// ---------------------------------------------------------------- parent --


/** One adapter's server and its clients' process, up for the whole part. */
interface UwsStand {
  readonly adapter: AdapterKind;
  readonly server: Child;
  readonly clients: Child;
  /** Messages the clients had received before the current phase. */
  receivedBefore: number;
}

async function startStand(adapter: AdapterKind, config: UwsConfig, script: string, live: Set<{ kill(): void }>): Promise<UwsStand> {
  const server = new Child("--uws-server", { adapter, config } satisfies ServerArgs, script);
  live.add(server);
  const { port } = await server.next<{ port: number }>("listening", 60_000);
  const clients = new Child("--e2e-clients", { port, clients: config.clients }, script);
  live.add(clients);
  const conn = await clients.next<{ connected: number; connectErrors: number }>("connected", 180_000);
  if (conn.connected !== config.clients) throw new Error(`uws ${adapter}: ${conn.connected} of ${config.clients} clients connected (${conn.connectErrors} errors)`);
  return { adapter, server, clients, receivedBefore: 0 };
}

/** Runs one phase (a shape's broadcasts) on `stand`, starting in `delayMs`; returns it with what the clients received. */
async function runPhase(stand: UwsStand, shape: UwsShape, fraction: number, delayMs: number): Promise<{ phase: UwsPhase; delivered: number; deliveredPerSecond: number }> {
  const { server, clients } = stand;
  server.send({ type: "phase", shape, fraction, delayMs });
  const { expectedDeliveries, startUs } = await server.next<{ expectedDeliveries: number; startUs: number }>("emitted", 300_000);
  // Until every delivery arrived, or nothing arrived for 2 s.
  let received = stand.receivedBefore;
  let lastUs = startUs;
  let idleSince = performance.now();
  for (;;) {
    clients.send({ type: "count" });
    const count = await clients.next<{ received: number; lastUs: number }>("count");
    if (count.received !== received) idleSince = performance.now();
    received = count.received;
    lastUs = count.lastUs;
    if (received - stand.receivedBefore >= expectedDeliveries || performance.now() - idleSince > 2000) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  server.send({ type: "done" });
  const { phase } = await server.next<{ phase: UwsPhase }>("phased");
  const delivered = received - stand.receivedBefore;
  stand.receivedBefore = received;
  return { phase, delivered, deliveredPerSecond: delivered / Math.max(1e-9, (lastUs - startUs) / 1e6) };
}

/**
 * Runs `shape` on both stands at the same time, their ticks interleaved: the
 * first stand's every `tickMs`, the second's half a tick later. Run one after
 * the other, two phases a few seconds apart met different loads on this
 * shared machine (other processes come and go): the work outside emit(),
 * uWS's writes to the clients over loopback (which the kernel charges to the
 * writer), swung threefold from phase to phase. Interleaved, both share
 * whatever load there is; the order alternates (who goes first in each tick).
 */
async function runTogether(order: readonly UwsStand[], shape: UwsShape, fraction: number, tickMs: number): Promise<{ phase: UwsPhase; delivered: number; deliveredPerSecond: number }[]> {
  return Promise.all(order.map((stand, i) => runPhase(stand, shape, fraction, (i * tickMs) / order.length)));
}

/**
 * Runs every shape on both adapters, in two sittings. In each, both servers
 * (each with its clients' process) stay up, and each round runs each shape
 * on both at once, interleaved (see runTogether). The second sitting starts
 * fresh processes in the other order: with the same adapter on both
 * servers, one process stayed ~10% dearer than the other for its whole
 * life, and pairing within a sitting cannot remove that; swapping which
 * adapter gets which start position halfway cancels it.
 */
export async function runUws(config: UwsConfig, script: string, log: (line: string) => void, live: Set<{ kill(): void }>): Promise<UwsResult> {
  const started = performance.now();
  const { name, version } = require("uWebSockets.js/package.json") as { name: string; version: string };
  const uwsPackage = `${name}@${version}`;
  log(`[uws] ${config.clients} websocket clients per adapter on uWebSockets.js (${uwsPackage}), ${config.k} rooms each; shapes ${UWS_SHAPES.join(", ")}`);
  const rounds: UwsShapeRound[] = [];
  const totalRounds = Math.max(config.rounds, config.unpublishedRounds);
  const sittings = totalRounds > 1 ? 2 : 1;
  for (let sitting = 0; sitting < sittings; sitting++) {
    const startOrder = sitting === 0 ? ADAPTERS : [...ADAPTERS].reverse();
    const firstRound = Math.floor((sitting * totalRounds) / sittings);
    const endRound = Math.floor(((sitting + 1) * totalRounds) / sittings);
    log(`[uws] sitting ${sitting + 1} of ${sittings}: servers started ${startOrder.join(", then ")}; rounds ${firstRound + 1} to ${endRound}`);
    await runSitting(config, script, log, live, startOrder, firstRound, endRound, rounds);
  }
  const summary = {} as Record<AdapterKind, Record<UwsShape, UwsShapeSummary>>;
  for (const adapter of ADAPTERS) {
    summary[adapter] = {} as Record<UwsShape, UwsShapeSummary>;
    for (const shape of UWS_SHAPES) {
      const list = rounds.filter((r) => r.adapter === adapter && r.phase.shape === shape);
      summary[adapter][shape] = {
        mainCpuUsPerBroadcast: median(list.map((r) => cpuUsPerBroadcast(r.phase))),
        emitUsPerBroadcast: median(list.map((r) => r.phase.emitUsPerBroadcast)),
        deliveredPerSecond: median(list.map((r) => r.deliveredPerSecond)),
        deliveredFraction: median(list.map((r) => r.delivered / r.phase.expectedDeliveries)),
      };
    }
  }
  const ratios = {} as Record<UwsShape, UwsPairedRatios>;
  for (const shape of UWS_SHAPES) {
    const pairs = Array.from({ length: roundsOf(shape, config) }, (_, round) => pairedRatios(rounds, round, shape));
    const mainCpuPerRound = pairs.map((p) => p.mainCpu);
    const emitPerRound = pairs.map((p) => p.emit);
    ratios[shape] = { mainCpuPerRound, emitPerRound, mainCpu: median(mainCpuPerRound), emit: median(emitPerRound) };
    log(`[uws] ${shape}: sharded / in-memory main CPU per round ${mainCpuPerRound.map((x) => x.toFixed(3)).join(", ")}: median ${ratios[shape].mainCpu.toFixed(3)}`);
  }
  return { config, uwsPackage, rounds, summary, ratios, elapsedSeconds: (performance.now() - started) / 1000 };
}

/** One sitting of runUws: both servers started in `startOrder`, warmed up, then rounds [firstRound, endRound), appended to `rounds`. */
async function runSitting(
  config: UwsConfig,
  script: string,
  log: (line: string) => void,
  live: Set<{ kill(): void }>,
  startOrder: readonly AdapterKind[],
  firstRound: number,
  endRound: number,
  rounds: UwsShapeRound[],
): Promise<void> {
  const stands: UwsStand[] = [];
  try {
    for (const adapter of startOrder) stands.push(await startStand(adapter, config, script, live));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const report = (stand: UwsStand, shape: UwsShape, warmUp: boolean, done: { phase: UwsPhase; delivered: number }): void => {
      if (done.delivered !== done.phase.expectedDeliveries) {
        log(`[uws] WARNING: ${stand.adapter} ${shape}${warmUp ? " (warm-up)" : ""}: ${done.delivered} messages received, ${done.phase.expectedDeliveries} expected`);
      }
    };
    // A fifth of every shape first, not reported: the JIT warm, the connection burst's garbage collected.
    for (const shape of UWS_SHAPES) {
      const done = await runTogether(stands, shape, WARM_UP_FRACTION, config.tickMs);
      stands.forEach((stand, i) => report(stand, shape, true, done[i]));
    }
    for (let round = firstRound; round < endRound; round++) {
      for (const [s, shape] of UWS_SHAPES.entries()) {
        if (round >= roundsOf(shape, config)) continue;
        // Which goes first in each tick alternates from round to round, and from shape to shape.
        const order = (round + s) % 2 === 0 ? stands : [...stands].reverse();
        const together = await runTogether(order, shape, 1, config.tickMs);
        for (const [i, stand] of order.entries()) {
          const done = together[i];
          report(stand, shape, false, done);
          const { phase, delivered, deliveredPerSecond } = done;
          rounds.push({ adapter: stand.adapter, round, phase, delivered, deliveredPerSecond });
          log(
            `[uws] round ${round + 1} ${stand.adapter.padEnd(9)} ${shape.padEnd(8)}: ${phase.broadcasts} broadcasts, delivered ${delivered}/${phase.expectedDeliveries} = ${Math.round(deliveredPerSecond)}/s;` +
              ` main CPU ${cpuUsPerBroadcast(phase).toFixed(1)} µs per broadcast (${phase.emitUsPerBroadcast.toFixed(1)} µs in emit, median tick)${stand.adapter === "sharded" ? `, ${phase.published} published` : ""}`,
          );
        }
        const pair = pairedRatios(rounds, round, shape);
        log(`[uws] round ${round + 1} ${shape}: sharded / in-memory ${pair.mainCpu.toFixed(3)} main CPU, ${pair.emit.toFixed(3)} in emit`);
      }
    }
  } finally {
    for (const stand of stands) {
      await stand.clients.stop();
      await stand.server.stop();
      live.delete(stand.clients);
      live.delete(stand.server);
    }
  }
}

function roundsOf(shape: UwsShape, config: UwsConfig): number {
  return PUBLISHED_SHAPES.includes(shape) ? config.rounds : config.unpublishedRounds;
}

function cpuUsPerBroadcast(phase: UwsPhase): number {
  return (phase.mainCpuMs * 1000) / phase.broadcasts;
}

/** Sharded / in-memory for `shape` in `round` (NaN for a phase that did not run). */
function pairedRatios(rounds: readonly UwsShapeRound[], round: number, shape: UwsShape): { mainCpu: number; emit: number } {
  const phaseOf = (adapter: AdapterKind) => rounds.find((r) => r.round === round && r.adapter === adapter && r.phase.shape === shape)?.phase;
  const a = phaseOf("in-memory");
  const b = phaseOf("sharded");
  if (a === undefined || b === undefined) return { mainCpu: NaN, emit: NaN };
  return { mainCpu: cpuUsPerBroadcast(b) / cpuUsPerBroadcast(a), emit: b.emitUsPerBroadcast / a.emitUsPerBroadcast };
}
