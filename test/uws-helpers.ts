/**
 * socket.io on uWebSockets.js (`io.attachApp(app)`), for the tests and the
 * bench: a server on a loopback port, and the broadcast scenario that the
 * uWS tests run in every load order.
 */
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Server, type ServerOptions } from "socket.io";
import { Manager, io as connect, type Socket as ClientSocket } from "socket.io-client";
import * as uWS from "uWebSockets.js";
import { REPO_ROOT, settle, waitConnected } from "./client-helpers";

/** A socket.io-adapter `Adapter` class, as socket.io's `adapter` option takes it. */
export type AdapterOption = NonNullable<Partial<ServerOptions>["adapter"]>;

export interface UwsTestServer {
  readonly io: Server;
  readonly port: number;
  readonly url: string;
  /** Closes the server and its listen socket (clients are closed by the caller). */
  close(): Promise<void>;
}

/**
 * Starts socket.io on a uWS app listening on 127.0.0.1. With `adapterAfterAttach`,
 * the server starts with the in-memory adapter and the adapter is set after
 * `attachApp`, as a setup function that loads it late does.
 */
export async function startUwsServer(
  adapter: AdapterOption | undefined,
  serverOptions: Partial<ServerOptions> = {},
  adapterAfterAttach?: () => AdapterOption,
): Promise<UwsTestServer> {
  const app = uWS.App();
  const io = new Server({ ...serverOptions, ...(adapter ? { adapter } : {}) });
  io.attachApp(app);
  if (adapterAfterAttach) io.adapter(adapterAfterAttach());
  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) =>
    app.listen("127.0.0.1", 0, (socket) => (socket ? resolve(socket) : reject(new Error("uWS could not listen on 127.0.0.1")))),
  );
  const port = uWS.us_socket_local_port(listenSocket);
  return {
    io,
    port,
    url: `http://127.0.0.1:${port}`,
    async close() {
      await io.close();
      uWS.us_listen_socket_close(listenSocket);
    },
  };
}

/** How a scenario client connects. */
export type ClientTransport = "websocket" | "polling" | "upgrade" | "base64";

export function connectClient(url: string, transport: ClientTransport, auth: object): ClientSocket {
  return connect(url, {
    forceNew: true,
    reconnection: false,
    auth,
    transports: transport === "polling" ? ["polling"] : transport === "upgrade" ? ["polling", "websocket"] : ["websocket"],
    forceBase64: transport === "base64",
  });
}

/** Resolves once the client's connection runs on a websocket. */
export function waitUpgraded(client: ClientSocket): Promise<void> {
  const engine = client.io.engine;
  if (engine.transport.name === "websocket") return Promise.resolve();
  return new Promise((resolve) => engine.once("upgrade", () => resolve()));
}

/** One step of the scenario: what each client got (label -> events), and whether the adapter published. */
export interface StepResult {
  readonly step: string;
  readonly received: Record<string, string[]>;
  /** Increase of the sharded adapter's publish counter in "/" (null for another adapter). */
  readonly publishes: number | null;
}

export interface ScenarioResult {
  readonly steps: StepResult[];
  /** Transport of each client's server socket when it connected to "/". */
  readonly connectedOn: Record<string, string>;
}

/** The rooms each scenario client joins on connection (in `/`, but `mux/n2` in `/n2`). */
export const SCENARIO_ROOMS: Record<string, string[]> = {
  ws: ["r1", "r2"],
  polling: ["r1"],
  upgrade: ["r1", "r3"],
  base64: ["r1", "r2"],
  mux: ["r2", "r5"],
  "mux/n2": ["r1"],
};

const EVENTS = ["m", "bin"] as const;

/**
 * Connects websocket, polling, upgrading and base64 clients and one connection
 * multiplexing "/" and "/n2", then runs every broadcast shape and records who
 * got what. `publishes` reads the adapter's publish counter (sharded only).
 */
export async function runBroadcastScenario(server: UwsTestServer, publishes: () => number | null): Promise<ScenarioResult> {
  const { io, url } = server;
  const connectedOn: Record<string, string> = {};
  const join = (socket: import("socket.io").Socket): void => {
    const label = (socket.handshake.auth as { label?: string }).label ?? "";
    if (socket.nsp.name === "/") connectedOn[label] = socket.conn.transport.name;
    socket.join(SCENARIO_ROOMS[socket.nsp.name === "/" ? label : `${label}${socket.nsp.name}`] ?? []);
    socket.on("whoami", (callback: (label: string) => void) => callback(label));
  };
  io.on("connection", join);
  io.of("/n2").on("connection", join);

  const clients = new Map<string, ClientSocket>();
  for (const transport of ["ws", "polling", "upgrade", "base64"] as const) {
    const kind: ClientTransport = transport === "ws" ? "websocket" : transport;
    clients.set(transport, connectClient(url, kind, { label: transport }));
  }
  const manager = new Manager(url, { transports: ["websocket"], reconnection: false, forceNew: true });
  const muxRoot = manager.socket("/", { auth: { label: "mux" } });
  const muxN2 = manager.socket("/n2", { auth: { label: "mux" } });
  clients.set("mux/", muxRoot);
  clients.set("mux/n2", muxN2);
  muxRoot.connect();
  muxN2.connect();
  await Promise.all([...clients.values()].map((client) => waitConnected(client)));
  await waitUpgraded(clients.get("upgrade") as ClientSocket);

  const received: Record<string, string[]> = {};
  for (const [label, client] of clients) {
    received[label] = [];
    for (const event of EVENTS) {
      client.on(event, (...args: unknown[]) => {
        const shown = args.map((arg) => (Buffer.isBuffer(arg) || arg instanceof ArrayBuffer ? `bytes:${Buffer.from(arg as Buffer).toString("hex")}` : String(arg)));
        received[label].push(`${event}(${shown.join(",")})`);
      });
    }
    client.on("ask", (callback: (label: string) => void) => callback(label));
  }

  const steps: StepResult[] = [];
  const connected = (): ClientSocket[] => [...clients.values()].filter((client) => client.connected);
  const root = (): ClientSocket[] => connected().filter((client) => client !== muxN2);
  const step = async (name: string, act: () => void | Promise<void>): Promise<void> => {
    for (const label of Object.keys(received)) received[label].length = 0;
    const before = publishes();
    await act();
    await settle(io, root());
    if (muxN2.connected) await settle(io, [muxN2], "/n2");
    const after = publishes();
    const copy: Record<string, string[]> = {};
    // In arrival order: each client must get what is sent to it in the order it was sent.
    for (const [label, events] of Object.entries(received)) if (events.length > 0) copy[label] = [...events];
    steps.push({ step: name, received: copy, publishes: before === null || after === null ? null : after - before });
  };
  const idOf = (label: string): string => (clients.get(label) as ClientSocket).id as string;

  await step("one room", () => void io.to("r1").emit("m", "one room"));
  await step("everyone", () => void io.emit("m", "everyone"));
  for (const label of ["ws", "polling", "upgrade", "base64", "mux/"]) {
    await step(`own id of ${label}`, () => void io.to(idOf(label)).emit("m", `private ${label}`));
  }
  await step("binary to one room", () => void io.to("r2").emit("bin", Buffer.from([0, 1, 2, 255]), "text"));
  await step("binary to everyone", () => void io.emit("bin", Uint8Array.from([7, 8, 9])));
  await step("union of rooms", () => void io.to(["r1", "r2"]).emit("m", "union"));
  await step("everyone except a room", () => void io.except("r2").emit("m", "except"));
  await step("room except a room", () => void io.to("r1").except("r3").emit("m", "room except"));
  await step("other namespace, one room", () => void io.of("/n2").to("r1").emit("m", "n2 room"));
  await step("other namespace, everyone", () => void io.of("/n2").emit("m", "n2 everyone"));
  await step("volatile to one room", () => void io.volatile.to("r1").emit("m", "volatile"));
  await step("compress to one room", () => void io.compress(true).to("r1").emit("m", "compressed"));
  await step("acks from one room", async () => {
    const answers = (await io.timeout(20_000).to("r1").emitWithAck("ask")) as string[];
    received["ackers"] = [[...answers].sort().join(",")];
  });
  await step("ordering with direct emits", () => {
    const socket = io.of("/").sockets.get(idOf("ws"));
    socket?.emit("m", "direct 1");
    io.to("r1").emit("m", "published 2");
    socket?.emit("m", "direct 3");
    io.emit("m", "published 4");
  });
  await step("socketsJoin then one room", () => {
    io.in("r3").socketsJoin("r4");
    io.to("r4").emit("m", "joined r4");
  });
  await step("socketsLeave then one room", () => {
    io.in("r4").socketsLeave("r4");
    io.to("r4").emit("m", "left r4");
  });
  await step("leave then one room", () => {
    io.of("/").sockets.get(idOf("ws"))?.leave("r2");
    io.to("r2").emit("m", "after ws left r2");
  });
  // Namespace-level disconnect while the connection stays open for /n2, then back without rooms.
  const leftId = idOf("mux/");
  muxRoot.disconnect();
  await step("after a namespace-level disconnect", () => {
    io.to("r5").emit("m", "r5 after mux left /");
    io.to(leftId).emit("m", "old id after mux left /");
    io.emit("m", "everyone after mux left /");
  });
  muxRoot.auth = { label: "mux-back" };
  muxRoot.connect();
  await waitConnected(muxRoot);
  await step("after rejoining the namespace without rooms", () => {
    io.to("r5").emit("m", "r5 after mux rejoined");
    io.to("r2").emit("m", "r2 after mux rejoined");
  });
  const gone = ["polling", "ws"].map((label) => new Promise((resolve) => (clients.get(label) as ClientSocket).once("disconnect", resolve)));
  io.of("/").sockets.get(idOf("polling"))?.disconnect();
  io.of("/").sockets.get(idOf("ws"))?.disconnect();
  await Promise.all(gone);
  await step("after disconnects", () => {
    io.to("r1").emit("m", "r1 after disconnects");
    io.emit("m", "everyone after disconnects");
  });

  for (const client of clients.values()) client.disconnect();
  manager.engine?.close();
  return { steps, connectedOn };
}

/**
 * A scratch install in which the adapter package has its own copy of
 * socket.io-adapter (npm did not dedupe it with socket.io's): returns the
 * package directory to require, and the environment in which its other
 * dependencies resolve (NODE_PATH to this repository's node_modules).
 */
export function installWithSecondAdapterCopy(): { packageDir: string; env: NodeJS.ProcessEnv; remove(): void } {
  const root = mkdtempSync(join(tmpdir(), "sharded-uws-"));
  const modules = join(root, "node_modules");
  const packageDir = join(modules, "socket.io-sharded-adapter");
  cpSync(join(REPO_ROOT, "node_modules", "socket.io-adapter"), join(modules, "socket.io-adapter"), { recursive: true });
  cpSync(join(REPO_ROOT, "package.json"), join(packageDir, "package.json"));
  for (const dir of ["lib", "workers"]) cpSync(join(REPO_ROOT, "dist", dir), join(packageDir, "dist", dir), { recursive: true });
  return {
    packageDir,
    env: { ...process.env, NODE_PATH: join(REPO_ROOT, "node_modules") },
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

/**
 * Counts the packets written to `socket` one by one (through its client's
 * engine.io connection), as opposed to published to a uWS topic. A broadcast
 * writes synchronously: read the count right after the emits, before
 * anything else (such as settle()) writes to the socket.
 */
export function countPerSocketWrites(socket: import("socket.io").Socket): () => number {
  const client = socket.client as unknown as { writeToEngine(...args: unknown[]): void };
  const write = client.writeToEngine;
  let writes = 0;
  client.writeToEngine = function (this: unknown, ...args: unknown[]): void {
    writes++;
    write.apply(this, args);
  };
  return () => writes;
}
