/**
 * The child processes of the cluster benchmark (bench/cluster.ts), forked
 * from this file (`dist/bench/cluster-node.js`, not run.js, and with lazy
 * requires, so that starting 4 nodes at once costs as little as it can):
 *
 *   - a node (`cluster-node.js --cluster-node '<json>'`): an http server and a
 *     socket.io Server on a free loopback port, linked to the other nodes
 *     through a redis-server by the official `@socket.io/redis-streams-adapter`
 *     or by ours (`createAdapter({ redis, workers: 1 })`), both over a
 *     node-redis v5 client. A client that connects with `auth.room` joins that
 *     room; one with `auth.control` is the pacing channel of the two-node
 *     case. On command it samples its CPU clocks and stream counters, sends a
 *     paced stream of broadcasts to one room (two-node case), or emits a list
 *     of broadcasts to rooms (many-rooms case);
 *   - the clients (`cluster-node.js --cluster-clients '<json>'`): socket.io-client
 *     websocket connections to the nodes, which record what they receive.
 *
 * Stream counters: ours reports `adapter.stats().cluster` (`entriesRead`:
 * entries of other nodes read for the namespace; `broadcastsSkipped`: those
 * dropped undecoded because no local socket is in their rooms). The official
 * adapter decodes and applies every entry it reads; this process counts them
 * by wrapping its adapter's `onRawMessage(rawMessage, offset)` (what its
 * stream reader calls for every entry of the namespace, its own included:
 * entries of other nodes are counted as read and processed, its own apart).
 */
import { stat } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createHistogram, performance, type RecordableHistogram } from "node:perf_hooks";
import type { Socket } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { CpuClock, type CpuSample } from "./cpu";

export type ClusterAdapterKind = "official" | "sharded";
export const CLUSTER_ADAPTERS: readonly ClusterAdapterKind[] = ["official", "sharded"];

export interface ClusterNodeArgs {
  readonly kind: ClusterAdapterKind;
  readonly name: string;
  readonly redisUrl: string;
  readonly heartbeatInterval: number;
  readonly heartbeatTimeout: number;
}

/** Stream entries of other nodes this node read, and how many it decoded and applied. */
export interface StreamCounters {
  readonly entriesRead: number;
  readonly processed: number;
  readonly skipped: number;
  /**
   * Entries through the adapter's per-entry handler (official
   * `onRawMessage`: decode + apply; ours `onStreamEntry`: the room check, then
   * decode + apply unless skipped) since the last reset, and the wall time of
   * each call: other nodes' entries for rooms of other nodes (`foreign`),
   * other nodes' entries for this node's rooms (`local`), and this node's own
   * entries (`own`: the official adapter decodes them, then drops them; ours
   * drops them on the uid). Reading the stream (XREAD, parsing its reply) is
   * outside, and the same for both.
   */
  readonly foreign: HandlerTimes;
  readonly local: HandlerTimes;
  readonly own: HandlerTimes;
}

/**
 * Wall time per call, µs (hrtime around each call). The median is the
 * number to use: on a loaded machine a call is now and then preempted for
 * milliseconds, which the mean takes in. (CPU clocks do not help here:
 * getrusage counts every thread, the GC helpers running beside the call
 * included, and the thread's own schedstat is up to a tick stale.)
 */
export interface HandlerTimes {
  readonly entries: number;
  readonly p50Us: number;
  readonly meanUs: number;
}

export interface NodeSample {
  readonly type: "sample";
  readonly cpu: CpuSample;
  readonly counters: StreamCounters;
  /** `serverCount()` when asked for (a Redis round trip), else NaN. */
  readonly serverCount: number;
  readonly sockets: number;
  readonly workerThreads: number;
}

export interface BlastResult {
  readonly type: "blasted";
  readonly sent: number;
  readonly acked: number;
  readonly startUs: number;
  /** When the last ack arrived (every broadcast delivered to every client). */
  readonly endUs: number;
  readonly cpu0: CpuSample;
  readonly cpu1: CpuSample;
  readonly drained: boolean;
}

export type ClusterNodeCommand =
  /** `resetTimes`: after the reply, the per-entry handler times start again (the counts in `counters` are since the last reset). */
  | { readonly type: "sample"; readonly serverCount?: boolean; readonly resetTimes?: boolean }
  | { readonly type: "blast"; readonly room: string; readonly durationMs: number; readonly window: number }
  /** Emits `("b", id, payload)` to each room in turn. */
  | { readonly type: "emit"; readonly rooms: readonly string[]; readonly ids: readonly number[]; readonly payload: string; readonly perTurn: number }
  | { readonly type: "exit" };

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

function send(message: unknown): void {
  if (process.connected) (process as NodeJS.Process & { send: (m: unknown) => boolean }).send(message);
}

function sendError(err: unknown): void {
  send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
}

// ------------------------------------------------------------------ node --

export async function clusterNodeMain(json: string): Promise<void> {
  const args = JSON.parse(json) as ClusterNodeArgs;
  process.on("disconnect", () => process.exit(0)); // never outlive the bench
  await stat(__filename); // libuv's thread pool up before the baseline
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createClient } = require("redis") as typeof import("redis");
  const redis = createClient({ url: args.redisUrl });
  redis.on("error", (error: Error) => process.stderr.write(`cluster node ${args.name}: redis: ${error.message}\n`));
  await redis.connect();
  const clock = new CpuClock();
  // Threads that start after this (our adapter's shard worker) are told apart from the main thread.
  clock.markBaseline();
  let adapter: unknown;
  if (args.kind === "official") {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const official = require("@socket.io/redis-streams-adapter") as typeof import("@socket.io/redis-streams-adapter");
    adapter = official.createAdapter(redis, { heartbeatInterval: args.heartbeatInterval, heartbeatTimeout: args.heartbeatTimeout });
  } else {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sharded = require("../lib/index") as typeof import("../lib/index");
    adapter = sharded.createAdapter({ redis: redis as never, workers: 1, heartbeatInterval: args.heartbeatInterval, heartbeatTimeout: args.heartbeatTimeout });
  }
  const http = createServer();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Server } = require("socket.io") as typeof import("socket.io");
  const io = new Server(http, { adapter: adapter as never, transports: ["websocket"] });
  const nsp = io.of("/");

  // Every stream entry of the namespace goes through one method of the adapter, which the
  // stream reader looks up on the instance: official `onRawMessage(rawMessage, offset)`,
  // ours `onStreamEntry(entry)`. Wrapped to count (official) and time (both) them.
  // An entry is for this node's rooms if its data names one ("n<i>-r<j>", see cluster.ts).
  const tag = `"${args.name}-r`;
  const times = { foreign: createHistogram(), local: createHistogram(), own: createHistogram() };
  let officialRead = 0;
  const a = nsp.adapter as unknown as Record<string, unknown> & { uid: string };
  const method = args.kind === "official" ? "onRawMessage" : "onStreamEntry";
  if (typeof a[method] !== "function") throw new Error(`the ${args.kind} adapter has no ${method}: update bench/cluster-node.ts`);
  const original = (a[method] as (...x: unknown[]) => void).bind(a);
  const fieldsOf = args.kind === "official" ? (x: unknown) => x as { uid?: string; data?: string } : (x: unknown) => (x as { fields: { uid?: string; data?: string } }).fields;
  a[method] = (x: unknown, offset?: unknown) => {
    const fields = fieldsOf(x);
    const histogram = fields.uid === a.uid ? times.own : fields.data?.includes(tag) ? times.local : times.foreign;
    if (histogram !== times.own) officialRead++;
    const t0 = process.hrtime.bigint();
    try {
      original(x, offset);
    } finally {
      histogram.record(Math.max(1, Number(process.hrtime.bigint() - t0)));
    }
  };
  const counters = (): StreamCounters => {
    const handler = (h: RecordableHistogram): HandlerTimes =>
      h.count === 0 ? { entries: 0, p50Us: NaN, meanUs: NaN } : { entries: h.count, p50Us: h.percentile(50) / 1000, meanUs: h.mean / 1000 };
    const byKind = { foreign: handler(times.foreign), local: handler(times.local), own: handler(times.own) };
    if (args.kind === "official") return { entriesRead: officialRead, processed: officialRead, skipped: 0, ...byKind };
    const c = (nsp.adapter as unknown as { stats(): { cluster: { entriesRead: number; broadcastsSkipped: number } } }).stats().cluster;
    return { entriesRead: c.entriesRead, processed: c.entriesRead - c.broadcastsSkipped, skipped: c.broadcastsSkipped, ...byKind };
  };
  const resetTimes = () => {
    for (const h of Object.values(times)) h.reset();
  };

  // Two-node pacing: the clients' process acks how many broadcasts every client has received.
  let acked = 0;
  let onAck: (() => void) | undefined;
  io.on("connection", (socket: Socket) => {
    const auth = socket.handshake.auth as { room?: unknown; control?: unknown };
    if (typeof auth.room === "string") void socket.join(auth.room);
    if (auth.control === true) {
      socket.on("ack", (complete: number) => {
        if (complete > acked) acked = complete;
        onAck?.();
      });
    }
  });

  let sent = 0;
  async function blast(room: string, durationMs: number, window: number): Promise<BlastResult> {
    clock.refresh();
    const cpu0 = clock.sample();
    const startUs = nowUs();
    const deadline = performance.now() + durationMs;
    let running = true;
    let drained = false;
    let endUs = startUs;
    const first = sent;
    await new Promise<void>((resolve) => {
      const finish = () => {
        onAck = undefined;
        clearTimeout(guard);
        resolve();
      };
      // Never wait for ever: a lost broadcast would stall the window.
      const guard = setTimeout(finish, durationMs + 10_000);
      const pump = () => {
        if (running && performance.now() >= deadline) running = false;
        while (running && sent - acked < window) {
          io.to(room).emit("m", sent, nowUs());
          sent++;
        }
        if (!running && acked >= sent) {
          drained = true;
          endUs = nowUs();
          finish();
        }
      };
      onAck = pump;
      // When the window is full and acks are slow, the deadline is still noticed.
      const tick = setInterval(() => {
        if (onAck === undefined) clearInterval(tick);
        else pump();
      }, 20);
      pump();
    });
    const cpu1 = clock.sample();
    return { type: "blasted", sent: sent - first, acked: acked - first, startUs, endUs: drained ? endUs : nowUs(), cpu0, cpu1, drained };
  }

  async function emit(rooms: readonly string[], ids: readonly number[], payload: string, perTurn: number): Promise<{ type: "emitted"; ms: number }> {
    const t0 = performance.now();
    for (let i = 0; i < rooms.length; i++) {
      io.to(rooms[i]).emit("b", ids[i], payload);
      // An application emits from event handlers: give the loop a turn now and then.
      if ((i + 1) % perTurn === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    return { type: "emitted", ms: performance.now() - t0 };
  }

  let queue = Promise.resolve();
  process.on("message", (message: ClusterNodeCommand) => {
    queue = queue.then(async () => {
      try {
        switch (message.type) {
          case "sample": {
            clock.refresh();
            const reply: NodeSample = {
              type: "sample",
              cpu: clock.sample(),
              counters: counters(),
              serverCount: message.serverCount ? await nsp.adapter.serverCount() : NaN,
              sockets: nsp.sockets.size,
              workerThreads: clock.addedThreadCount,
            };
            send(reply);
            if (message.resetTimes) resetTimes();
            break;
          }
          case "blast":
            send(await blast(message.room, message.durationMs, message.window));
            break;
          case "emit":
            send(await emit(message.rooms, message.ids, message.payload, message.perTurn));
            break;
          case "exit":
            // At once: no io.close(), whose adapters would wait for their blocking XREADs and
            // whose 1,000s of socket closes the other nodes' clients would see one by one.
            // The connections die with the process (measurements are over by then).
            process.exit(0);
        }
      } catch (err) {
        sendError(err);
      }
    });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  send({ type: "listening", port: (http.address() as AddressInfo).port });
}

// --------------------------------------------------------------- clients --

export interface ClusterClientsArgs {
  /** One entry per client: the node's port and the room it joins. */
  readonly clients: readonly { readonly port: number; readonly room: string }[];
  /** Two-node case: the sending node's port, for the ack channel. */
  readonly controlPort?: number;
  /** Two-node case: ack every this many completed broadcasts (and whenever none is outstanding). */
  readonly ackEvery?: number;
}

export interface TwoNodeClientReport {
  readonly type: "two-node-report";
  /** Broadcasts received by every client. */
  readonly complete: number;
  readonly received: number;
  /** Messages that did not carry the next sequence number of their client (lost, repeated or reordered). */
  readonly orderErrors: number;
  readonly latency: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly cpuMs: number;
}

export interface RoomsCheck {
  readonly type: "rooms-check";
  readonly expected: number;
  readonly received: number;
  /** Messages a targeted client did not get. */
  readonly missing: number;
  /** Messages a client got more than once (counting each extra copy). */
  readonly duplicates: number;
  /** Messages a client got that were not for its room. */
  readonly unexpected: number;
  readonly cpuMs: number;
}

export type ClusterClientsCommand =
  | { readonly type: "reset" }
  | { readonly type: "count" }
  | { readonly type: "two-node-report" }
  | { readonly type: "rooms-check"; readonly rooms: readonly string[]; readonly ids: readonly number[] }
  | { readonly type: "exit" };

/** Ring of per-sequence receipt counts; larger than any pacing window. */
const RING = 1 << 16;

/**
 * The clients' process. Started with `{}` it waits for a `connect` command
 * with its arguments (so that it can start while the nodes do).
 */
export async function clusterClientsMain(json: string): Promise<void> {
  process.on("disconnect", () => process.exit(0));
  const given = JSON.parse(json) as Partial<ClusterClientsArgs>;
  const args: ClusterClientsArgs =
    given.clients !== undefined
      ? (given as ClusterClientsArgs)
      : await new Promise<ClusterClientsArgs>((resolve) => {
          const onConnect = (message: { type: string; args?: ClusterClientsArgs }) => {
            if (message.type === "exit") process.exit(0);
            if (message.type !== "connect" || !message.args) return;
            process.off("message", onConnect);
            resolve(message.args);
          };
          process.on("message", onConnect);
          send({ type: "started" });
        });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { io: connect } = require("socket.io-client") as typeof import("socket.io-client");
  const n = args.clients.length;
  const sockets: ClientSocket[] = [];
  // performance.now() and hrtime share CLOCK_MONOTONIC: one bigint read, then cheap reads.
  const offsetUs = nowUs() - performance.now() * 1000;
  let latency = createHistogram();
  let cpu0 = process.cpuUsage();

  // Two-node case: every client gets every sequence number once, in order.
  const lastSeq = new Int32Array(n).fill(-1);
  const counts = new Uint32Array(RING);
  let complete = 0;
  let maxSeq = -1;
  let ackedSent = 0;
  let orderErrors = 0;
  let received = 0;
  let control: ClientSocket | undefined;
  const ackEvery = args.ackEvery ?? 8;

  // Many-rooms case: what each client received.
  let got: number[][] = Array.from({ length: n }, () => []);

  const onSeq = (i: number, seq: number, stamp: number) => {
    const now = performance.now() * 1000 + offsetUs;
    received++;
    latency.record(Math.max(1, Math.round(now - stamp)));
    if (seq !== lastSeq[i] + 1) orderErrors++;
    lastSeq[i] = seq;
    if (seq > maxSeq) maxSeq = seq;
    if (seq < complete) return; // a repeat
    const slot = seq % RING;
    if (++counts[slot] < n || seq !== complete) return;
    while (counts[complete % RING] >= n) {
      counts[complete % RING] = 0;
      complete++;
    }
    if (complete - ackedSent >= ackEvery || complete === maxSeq + 1) {
      ackedSent = complete;
      control?.emit("ack", complete);
    }
  };

  const started = performance.now();
  let connectErrors = 0;
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const { port, room } = args.clients[i];
      const socket = connect(`http://127.0.0.1:${port}`, { transports: ["websocket"], forceNew: true, reconnection: false, auth: { room }, timeout: 30_000 });
      socket.on("m", (seq: number, stamp: number) => onSeq(i, seq, stamp));
      socket.on("b", (id: number) => got[i].push(id));
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
  // At most 100 handshakes in flight, as the end-to-end clients.
  await Promise.all(Array.from({ length: Math.min(100, n) }, worker));
  if (args.controlPort !== undefined) {
    control = connect(`http://127.0.0.1:${args.controlPort}`, { transports: ["websocket"], forceNew: true, reconnection: false, auth: { control: true } });
    await new Promise<void>((resolve, reject) => {
      control!.once("connect", () => resolve());
      control!.once("connect_error", reject);
    });
  }
  send({ type: "connected", connectMs: performance.now() - started, connected: sockets.filter((s) => s.connected).length, connectErrors });

  process.on("message", (message: ClusterClientsCommand) => {
    const cpuMs = () => {
      const c = process.cpuUsage(cpu0);
      return (c.user + c.system) / 1000;
    };
    switch (message.type) {
      case "reset":
        latency = createHistogram();
        received = 0;
        orderErrors = 0;
        got = Array.from({ length: n }, () => []);
        cpu0 = process.cpuUsage();
        send({ type: "reset" });
        break;
      case "count":
        send({ type: "count", received: received + got.reduce((s, g) => s + g.length, 0), complete });
        break;
      case "two-node-report": {
        const ms = (us: number) => us / 1000;
        const report: TwoNodeClientReport = {
          type: "two-node-report",
          complete,
          received,
          orderErrors,
          latency: received > 0 ? { p50: ms(latency.percentile(50)), p99: ms(latency.percentile(99)), max: ms(latency.max) } : { p50: NaN, p99: NaN, max: NaN },
          cpuMs: cpuMs(),
        };
        send(report);
        break;
      }
      case "rooms-check": {
        const byRoom = new Map<string, number[]>();
        for (let b = 0; b < message.rooms.length; b++) {
          let list = byRoom.get(message.rooms[b]);
          if (!list) byRoom.set(message.rooms[b], (list = []));
          list.push(message.ids[b]);
        }
        let expected = 0;
        let total = 0;
        let missing = 0;
        let duplicates = 0;
        let unexpected = 0;
        for (let i = 0; i < n; i++) {
          const want = new Set(byRoom.get(args.clients[i].room) ?? []);
          expected += want.size;
          total += got[i].length;
          const seen = new Set<number>();
          for (const id of got[i]) {
            if (seen.has(id)) duplicates++;
            else if (!want.has(id)) unexpected++;
            seen.add(id);
          }
          for (const id of want) if (!seen.has(id)) missing++;
        }
        const check: RoomsCheck = { type: "rooms-check", expected, received: total, missing, duplicates, unexpected, cpuMs: cpuMs() };
        send(check);
        break;
      }
      case "exit":
        // The connections close with the process (the nodes see them go).
        process.exit(0);
    }
  });
}

const mains: Record<string, (json: string) => Promise<void>> = { "--cluster-node": clusterNodeMain, "--cluster-clients": clusterClientsMain };
if (require.main === module) {
  const main = mains[process.argv[2]];
  if (!main) {
    process.stderr.write(`usage: node ${process.argv[1]} --cluster-node|--cluster-clients '<json>' (started by bench/cluster.ts)\n`);
    process.exit(2);
  }
  main(process.argv[3]).catch((err) => {
    sendError(err);
    process.stderr.write(`${process.argv[2].slice(2)}: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
