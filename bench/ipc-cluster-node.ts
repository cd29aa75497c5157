/**
 * The processes of the Node.js cluster benchmark (bench/ipc-cluster.ts),
 * forked from this file (`dist/bench/ipc-cluster-node.js`):
 *
 *   - a primary (`--ipc-primary '<json>'`): this package's `setupPrimary()`
 *     or `@socket.io/cluster-adapter`'s; forks the workers and speaks for
 *     them to the bench, so that the bench sees one child per cluster:
 *       storm mode: the workers are end-to-end servers (bench/e2e.ts, run.js
 *       --e2e-server with `cluster`); the primary answers `listening` with
 *       every worker's port, and `storm` with the workers' storms summed;
 *       rooms mode: the workers are `--ipc-node` processes; the primary
 *       answers `sample` (every worker's, and its own CPU) and `emit` (each
 *       worker emits its list);
 *   - a worker of the rooms mode (`--ipc-node '<json>'`): an http server and
 *     a socket.io Server on a port of its own (`exclusive`), with the official
 *     cluster adapter or ours; a client that connects with `auth.room` joins
 *     it. It counts the adapter messages the primary sends it (every message
 *     of the IPC channel with the adapters' marker).
 */
import cluster, { type Worker } from "node:cluster";
import { stat } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Socket } from "socket.io";
import { CpuClock, type CpuSample } from "./cpu";
import type { ServerArgs, ServerStorm } from "./e2e";

/** Which adapter (and primary) a cluster runs: @socket.io/cluster-adapter's, or ours. */
export type IpcKind = "official" | "sharded";
export const IPC_KINDS: readonly IpcKind[] = ["official", "sharded"];

export interface IpcPrimaryArgs {
  readonly kind: IpcKind;
  readonly workers: number;
  readonly heartbeatInterval: number;
  readonly heartbeatTimeout: number;
  /** Storm mode: each worker is an end-to-end server with these arguments (its `cluster` share added). */
  readonly storm?: Omit<ServerArgs, "cluster">;
}

export interface IpcNodeArgs {
  readonly kind: IpcKind;
  readonly name: string;
  readonly heartbeatInterval: number;
  readonly heartbeatTimeout: number;
}

export interface IpcWorkerSample {
  readonly cpu: CpuSample;
  /** Adapter messages received from the primary so far. */
  readonly ipcReceived: number;
  readonly serverCount: number;
  readonly sockets: number;
}

export interface IpcClusterSample {
  readonly type: "sample";
  readonly workers: IpcWorkerSample[];
  /** The primary's process CPU, ns. */
  readonly primaryCpuNs: number;
}

export type IpcPrimaryCommand =
  | { readonly type: "sample" }
  | { readonly type: "emit"; readonly perWorker: readonly { readonly rooms: readonly string[]; readonly ids: readonly number[] }[]; readonly payload: string; readonly perTurn: number }
  | { readonly type: "storm" }
  | { readonly type: "exit" };

/** The workers' storms as one: the earliest start, the latest end, sums, and the worst loop delay and lag. */
export interface ClusterStorm extends ServerStorm {
  readonly primaryCpuMs: number;
}

const ADAPTER_SOURCE = "_sio_adapter";

function send(message: unknown): void {
  if (process.connected) (process as NodeJS.Process & { send: (m: unknown) => boolean }).send(message);
}

function sendError(err: unknown): void {
  send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
}

// --------------------------------------------------------------- primary --

export async function ipcPrimaryMain(json: string): Promise<void> {
  const args = JSON.parse(json) as IpcPrimaryArgs;
  process.on("disconnect", () => exit());
  if (args.kind === "sharded") {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require("../lib/index") as typeof import("../lib/index")).setupPrimary({ roomRouting: true });
  } else {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require("@socket.io/cluster-adapter") as typeof import("@socket.io/cluster-adapter")).setupPrimary();
  }
  const workers: Worker[] = [];
  const waiting = new Map<Worker, ((m: { type: string }) => void)[]>();
  const next = <T>(worker: Worker, type: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const list = waiting.get(worker) ?? [];
      list.push((m) => (m.type === type ? resolve(m as T) : reject(new Error(`worker ${worker.id}: expected ${type}, got ${JSON.stringify(m).slice(0, 500)}`))));
      waiting.set(worker, list);
    });
  for (let index = 0; index < args.workers; index++) {
    if (args.storm !== undefined) {
      const serverArgs: ServerArgs = { ...args.storm, cluster: { index, count: args.workers } };
      cluster.setupPrimary({ exec: join(__dirname, "run.js"), args: ["--e2e-server", JSON.stringify(serverArgs)] });
    } else {
      const nodeArgs: IpcNodeArgs = { kind: args.kind, name: `w${index}`, heartbeatInterval: args.heartbeatInterval, heartbeatTimeout: args.heartbeatTimeout };
      cluster.setupPrimary({ exec: __filename, args: ["--ipc-node", JSON.stringify(nodeArgs)] });
    }
    const worker = cluster.fork();
    workers.push(worker);
    worker.on("message", (m: { type?: unknown; source?: unknown }) => {
      if (typeof m !== "object" || m === null || m.source !== undefined || typeof m.type !== "string") return;
      if (m.type === "error") {
        send(m);
        return;
      }
      waiting.get(worker)?.shift()?.(m as { type: string });
    });
    worker.on("exit", (code, signal) => sendError(new Error(`cluster worker ${index} exited (code ${code}, signal ${signal})`)));
  }
  const ports = (await Promise.all(workers.map((w) => next<{ port: number }>(w, "listening")))).map((m) => m.port);

  function exit(): never {
    for (const worker of workers) worker.process.kill("SIGKILL");
    process.exit(0);
  }

  const sample = async (): Promise<IpcClusterSample> => {
    const samples = await Promise.all(
      workers.map((w) => {
        w.send({ type: "sample" });
        return next<{ sample: IpcWorkerSample }>(w, "sample");
      }),
    );
    const u = process.cpuUsage();
    return { type: "sample", workers: samples.map((s) => s.sample), primaryCpuNs: (u.user + u.system) * 1000 };
  };

  const storm = async (): Promise<ClusterStorm> => {
    const cpu0 = process.cpuUsage();
    const storms = (
      await Promise.all(
        workers.map((w) => {
          w.send({ type: "storm" });
          return next<{ storm: ServerStorm }>(w, "stormed");
        }),
      )
    ).map((m) => m.storm);
    const cpu = process.cpuUsage(cpu0);
    const sum = (f: (s: ServerStorm) => number) => storms.reduce((total, s) => total + f(s), 0);
    const max = (f: (s: ServerStorm) => number) => Math.max(...storms.map(f));
    return {
      startUs: Math.min(...storms.map((s) => s.startUs)),
      endUs: max((s) => s.endUs),
      emits: sum((s) => s.emits),
      expectedDeliveries: sum((s) => s.expectedDeliveries),
      maxTickLagMs: max((s) => s.maxTickLagMs),
      eventLoopDelay: {
        p50: max((s) => s.eventLoopDelay.p50),
        p99: max((s) => s.eventLoopDelay.p99),
        max: max((s) => s.eventLoopDelay.max),
        mean: max((s) => s.eventLoopDelay.mean),
      },
      mainCpuMs: sum((s) => s.mainCpuMs),
      processCpuMs: sum((s) => s.processCpuMs),
      workerCpuMs: sum((s) => s.workerCpuMs),
      connected: sum((s) => s.connected),
      memberships: sum((s) => s.memberships),
      offloaded: sum((s) => s.offloaded),
      primaryCpuMs: (cpu.user + cpu.system) / 1000,
    };
  };

  let queue = Promise.resolve();
  process.on("message", (message: IpcPrimaryCommand) => {
    queue = queue.then(async () => {
      try {
        switch (message.type) {
          case "sample":
            send(await sample());
            break;
          case "emit":
            await Promise.all(
              workers.map((w, i) => {
                w.send({ type: "emit", ...message.perWorker[i], payload: message.payload, perTurn: message.perTurn });
                return next(w, "emitted");
              }),
            );
            send({ type: "emitted" });
            break;
          case "storm":
            send({ type: "stormed", storm: await storm() });
            break;
          case "exit":
            exit();
        }
      } catch (err) {
        sendError(err);
      }
    });
  });
  send({ type: "listening", port: ports[0], ports });
}

// ------------------------------------------------------- rooms-mode worker --

export async function ipcNodeMain(json: string): Promise<void> {
  const args = JSON.parse(json) as IpcNodeArgs;
  process.on("disconnect", () => process.exit(0));
  await stat(__filename); // libuv's thread pool up before the baseline
  const clock = new CpuClock();
  clock.markBaseline();
  let ipcReceived = 0;
  process.on("message", (m: { source?: unknown }) => {
    if (typeof m === "object" && m !== null && m.source === ADAPTER_SOURCE) ipcReceived++;
  });
  const heartbeat = { heartbeatInterval: args.heartbeatInterval, heartbeatTimeout: args.heartbeatTimeout };
  const adapter =
    args.kind === "official"
      ? // eslint-disable-next-line @typescript-eslint/no-require-imports
        (require("@socket.io/cluster-adapter") as typeof import("@socket.io/cluster-adapter")).createAdapter(heartbeat)
      : // eslint-disable-next-line @typescript-eslint/no-require-imports
        (require("../lib/index") as typeof import("../lib/index")).createAdapter({ cluster: true, workers: 1, ...heartbeat });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Server } = require("socket.io") as typeof import("socket.io");
  const http = createServer();
  const io = new Server(http, { adapter: adapter as never, transports: ["websocket"] });
  const nsp = io.of("/");
  io.on("connection", (socket: Socket) => {
    const room = (socket.handshake.auth as { room?: unknown }).room;
    if (typeof room === "string") void socket.join(room);
  });

  async function emit(rooms: readonly string[], ids: readonly number[], payload: string, perTurn: number): Promise<void> {
    for (let i = 0; i < rooms.length; i++) {
      io.to(rooms[i]).emit("b", ids[i], payload);
      // An application emits from event handlers: give the loop a turn now and then.
      if ((i + 1) % perTurn === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }

  process.on("message", (message: { type?: unknown; rooms?: string[]; ids?: number[]; payload?: string; perTurn?: number }) => {
    if (typeof message !== "object" || message === null || typeof message.type !== "string") return;
    void (async () => {
      try {
        switch (message.type) {
          case "sample": {
            clock.refresh();
            const sample: IpcWorkerSample = { cpu: clock.sample(), ipcReceived, serverCount: await nsp.adapter.serverCount(), sockets: nsp.sockets.size };
            send({ type: "sample", sample });
            break;
          }
          case "emit":
            await emit(message.rooms ?? [], message.ids ?? [], message.payload ?? "", message.perTurn ?? 20);
            send({ type: "emitted", ms: performance.now() });
            break;
        }
      } catch (err) {
        sendError(err);
      }
    })();
  });
  await new Promise<void>((resolve) => http.listen({ port: 0, host: "127.0.0.1", exclusive: true }, resolve));
  send({ type: "listening", port: (http.address() as AddressInfo).port });
}

const mains: Record<string, (json: string) => Promise<void>> = { "--ipc-primary": ipcPrimaryMain, "--ipc-node": ipcNodeMain };
if (require.main === module) {
  const main = mains[process.argv[2]];
  if (!main) {
    process.stderr.write(`usage: node ${process.argv[1]} --ipc-primary|--ipc-node '<json>' (started by bench/ipc-cluster.ts)\n`);
    process.exit(2);
  }
  main(process.argv[3]).catch((err) => {
    sendError(err);
    process.stderr.write(`${process.argv[2].slice(2)}: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
