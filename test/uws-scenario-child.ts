/**
 * Child process of uws.test.ts: runs the uWS broadcast scenario with the
 * adapter loaded in a given order relative to `io.attachApp`, in a fresh
 * process so that socket.io's patch of socket.io-adapter starts from scratch.
 *
 *   node dist/test/uws-scenario-child.js <sharded|in-memory> <before|after> <adapter package dir>
 *
 * Prints one JSON line: the scenario result, whether socket.io's
 * `Adapter.prototype.broadcast` was already patched when the adapter package
 * loaded, whether it was not loaded before (nothing here imports it),
 * whether the package uses socket.io's copy of socket.io-adapter, and whether
 * the adapter of "/" published through the uWS app (null for in-memory).
 */
import { Adapter } from "socket.io-adapter";
import { runBroadcastScenario, startUwsServer, type AdapterOption } from "./uws-helpers";

type Package = typeof import("../lib/index");

async function main(): Promise<void> {
  const [kind, order, packageDir] = process.argv.slice(2);
  if ((kind !== "sharded" && kind !== "in-memory") || (order !== "before" && order !== "after") || !packageDir) {
    throw new Error(`usage: uws-scenario-child <sharded|in-memory> <before|after> <package dir>; got ${process.argv.slice(2).join(" ")}`);
  }
  const originalBroadcast = Adapter.prototype.broadcast;
  let patchedAtLoad = false;
  let loaded: Package | undefined;
  let loadedFresh = false;
  const load = (): Package => {
    patchedAtLoad = Adapter.prototype.broadcast !== originalBroadcast;
    loadedFresh = require.cache[require.resolve(packageDir)] === undefined;
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the point is when it loads
    return (loaded = require(packageDir) as Package);
  };
  if (kind === "sharded" && order === "before") load();
  const makeAdapter = (): AdapterOption => (loaded ?? load()).createAdapter({ workers: 1 }) as unknown as AdapterOption;
  const server =
    kind === "in-memory"
      ? await startUwsServer(undefined)
      : order === "before"
        ? await startUwsServer(makeAdapter())
        : await startUwsServer(undefined, {}, makeAdapter);
  const uwsStats = (): { publishes: number; throughApp: boolean } | null => {
    const adapter = server.io.of("/").adapter as unknown as { stats?: () => { uws?: { publishes: number; throughApp: boolean } } };
    return typeof adapter.stats === "function" ? (adapter.stats().uws ?? null) : null;
  };
  const result = await runBroadcastScenario(server, () => uwsStats()?.publishes ?? null);
  const throughApp = uwsStats()?.throughApp ?? null;
  let sameAdapterCopy: boolean | null = null;
  if (loaded !== undefined) {
    let proto: object | null = loaded.ShardedAdapter.prototype;
    while (proto !== null && (proto as { constructor: { name: string } }).constructor.name !== "Adapter") proto = Object.getPrototypeOf(proto);
    sameAdapterCopy = proto === Adapter.prototype;
  }
  await server.close();
  process.stdout.write(`${JSON.stringify({ result, patchedAtLoad, loadedFresh, sameAdapterCopy, throughApp })}\n`);
  process.exit(0);
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
