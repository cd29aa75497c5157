/**
 * The primary of the Node.js cluster tests (issue #12), forked by
 * test/ipc-cluster-helpers.ts: runs this package's setupPrimary() or
 * @socket.io/cluster-adapter's, forks the workers (test/cluster-node.ts with
 * an IPC kind) when the test asks, and relays the test's requests to them and
 * their replies back. With `sticky`, it also shares one port with the workers
 * through @socket.io/sticky. Exits (killing its workers) when the test goes away.
 */
import cluster, { type Worker } from "node:cluster";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { NodeMessage } from "./cluster-protocol";
import type { PrimaryConfig, PrimaryReport, PrimaryRequest } from "./ipc-cluster-helpers";

const configArgument = process.argv[2];
if (typeof process.send !== "function" || configArgument === undefined) {
  console.error("ipc-cluster-primary: run by test/ipc-cluster-helpers.ts with fork(), with a JSON PrimaryConfig argument");
  process.exit(configArgument === undefined && typeof process.send !== "function" ? 0 : 1);
}
const config = JSON.parse(configArgument!) as PrimaryConfig;

function report(message: PrimaryReport): void {
  if (process.connected) process.send!(message);
}

const workers = new Map<number, Worker>();

function relayPrimaryStats(): unknown {
  return primary === undefined ? null : primary.stats();
}

cluster.setupPrimary({ exec: join(__dirname, "cluster-node.js"), args: [], serialization: "advanced", silent: false });

// eslint-disable-next-line @typescript-eslint/no-require-imports
const primary = config.primary === "sharded" ? (require("../lib/index") as typeof import("../lib/index")).setupPrimary(config.primaryOptions ?? {}) : undefined;
if (config.primary === "official") {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require("@socket.io/cluster-adapter") as typeof import("@socket.io/cluster-adapter")).setupPrimary();
}

function fork(slot: number, nodeConfig: object): void {
  const worker = cluster.fork({ SIO_CLUSTER_NODE_CONFIG: JSON.stringify(nodeConfig) });
  workers.set(slot, worker);
  worker.on("message", (message: NodeMessage | { type?: unknown; source?: unknown }) => {
    // Only the test's own replies: the channel also carries the adapters' messages.
    if (typeof message !== "object" || message === null || "source" in message) return;
    if (message.type === "ready" || message.type === "reply" || message.type === "log") report({ kind: "fromNode", slot, message: message as NodeMessage });
  });
  // @socket.io/sticky hands a new connection to a worker whose channel may
  // have just closed (the test tearing down): Node then emits "error" on the
  // Worker, which with no listener would end this primary before it reports
  // the exits the test waits for. The connection is lost, as it would be in
  // production; anything else is still thrown.
  worker.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "ERR_IPC_CHANNEL_CLOSED") throw error;
  });
  worker.once("exit", (code, signal) => {
    report({ kind: "exit", slot, code, signal: signal as NodeJS.Signals | null });
  });
}

process.on("message", (request: PrimaryRequest) => {
  switch (request.kind) {
    case "fork":
      fork(request.slot, request.config);
      return;
    case "toNode": {
      const worker = workers.get(request.slot);
      if (worker !== undefined && worker.isConnected()) worker.send(request.message as object);
      return;
    }
    case "kill":
      workers.get(request.slot)?.process.kill(request.signal);
      return;
    case "stats":
      report({ kind: "stats", id: request.id, stats: relayPrimaryStats() });
      return;
  }
});

// The test is gone: so are the workers.
process.on("disconnect", () => {
  for (const worker of workers.values()) worker.process.kill("SIGKILL");
  process.exit(0);
});

async function main(): Promise<void> {
  let stickyPort: number | undefined;
  if (config.sticky) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { setupMaster } = require("@socket.io/sticky") as typeof import("@socket.io/sticky");
    const http = createServer();
    setupMaster(http, { loadBalancingMethod: "round-robin" });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    stickyPort = (http.address() as AddressInfo).port;
  }
  report({ kind: "ready", pid: process.pid, stickyPort });
}

void main();
