/**
 * A throwaway redis-server for the cluster tests: Debian's `redis-server`
 * binary (installed by `make test`) on a free loopback port, with no
 * persistence and its own temporary directory. It never touches the system
 * service on 6379.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Process id of the running redis-server (changes on restart). */
  readonly pid: number | undefined;
  /** Stops the server (SIGTERM by default) and waits until the process has exited. Idempotent. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the server, then starts a fresh one (empty data) on the same port and waits until it answers PING. */
  restart(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves when the server answers PING (or rejects after `timeoutMs`). */
  waitReady(timeoutMs?: number): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;
const LOG_LINES_KEPT = 40;

/** Every server started by this process, killed on exit whatever happens to the tests. */
const running = new Set<ChildProcess>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  const killAll = () => {
    for (const child of running) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    running.clear();
  };
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      killAll();
      process.kill(process.pid, signal);
    });
  }
}

/** Whether `redis-server` is on the PATH. */
export function redisServerAvailable(): boolean {
  const result = spawnSync("redis-server", ["--version"], { stdio: "ignore" });
  return result.error === undefined && result.status === 0;
}

const MISSING_BINARY =
  "redis-server is not installed (or not on the PATH). The Redis cluster tests need Debian's redis-server package: " +
  "run `make test` (its redis-server target installs it), or `apt-get install -y redis-server`.";

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Sends one inline PING; resolves true on +PONG, false on anything else (refused, loading, closed). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    let reply = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      reply += chunk.toString("latin1");
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
    socket.once("close", () => done(false));
  });
}

class RedisProcess implements RedisServer {
  readonly url: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly log: string[] = [];

  constructor(
    readonly port: number,
    private readonly dir: string,
  ) {
    this.url = `redis://127.0.0.1:${port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Spawns redis-server and waits until it answers PING; rejects if it exits first. */
  async start(): Promise<void> {
    const child = spawn(
      "redis-server",
      [
        "--port", String(this.port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", this.dir,
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--loglevel", "notice",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child = child;
    running.add(child);
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n")) {
        if (line.trim() === "") continue;
        this.log.push(line);
        if (this.log.length > LOG_LINES_KEPT) this.log.shift();
      }
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    let exitInfo: string | undefined;
    this.exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        exitInfo = `exited with ${signal ?? `code ${code}`}`;
        running.delete(child);
        resolve();
      });
      child.once("error", (error: NodeJS.ErrnoException) => {
        exitInfo = error.code === "ENOENT" ? MISSING_BINARY : `could not be spawned: ${error.message}`;
        running.delete(child);
        resolve();
      });
    });
    // Ready when our process has logged that it accepts connections (so the
    // port is really ours, not another process's) and it answers PING.
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (exitInfo !== undefined) {
        if (exitInfo === MISSING_BINARY) throw new Error(MISSING_BINARY);
        throw new Error(`redis-server on port ${this.port} ${exitInfo} before it was ready:\n${this.log.join("\n")}`);
      }
      if (this.log.some((line) => line.includes("Ready to accept connections")) && (await ping(this.port))) return;
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`redis-server on port ${this.port} was not ready within ${READY_TIMEOUT_MS} ms:\n${this.log.join("\n")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Kills the process (if running) and waits for its exit; keeps the directory. */
  async halt(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
    await this.exited;
    this.child = undefined;
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await this.halt(signal);
    rmSync(this.dir, { recursive: true, force: true });
  }

  async restart(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await this.halt(signal);
    // The listening socket is closed by the kernel with the process; the port
    // is free for the new server at once (redis sets SO_REUSEADDR).
    await this.start();
  }

  async waitReady(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await ping(this.port))) {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} not ready after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

}

/**
 * Starts a redis-server on a free 127.0.0.1 port and resolves once it answers
 * PING. `stop()` must be called when done (a process exit hook kills it
 * otherwise).
 */
export async function startRedisServer(): Promise<RedisServer> {
  if (!redisServerAvailable()) throw new Error(MISSING_BINARY);
  installExitHooks();
  let lastError: unknown;
  // The port is picked before redis binds it: another process may take it in
  // between, so a failed start is retried on another port.
  for (let attempt = 0; attempt < 5; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), "sio-redis-"));
    const server = new RedisProcess(await freePort(), dir);
    try {
      await server.start();
      return server;
    } catch (error) {
      lastError = error;
      await server.stop("SIGKILL");
      if (error instanceof Error && error.message === MISSING_BINARY) throw error;
    }
  }
  throw lastError;
}
