/**
 * The package as a new user gets it: `npm pack`, then the tarball installed
 * into scratch folders beside socket.io (its lowest supported version with
 * socket.io-adapter's lowest, the latest 4.6.x and 4.7.x, and the latest 4.x
 * from the registry today) and socket.io-client, as `npm install` resolves
 * them, not as our lockfile pins them. In each folder:
 * - `npm ls` finds one copy of socket.io-adapter (ours must dedupe with socket.io's);
 * - the README's TypeScript compiles under `strict`, `nodenext`, `skipLibCheck: false`,
 *   as an ES module and as CommonJS;
 * - a CommonJS and an ES module script start a server, connect a real client,
 *   broadcast through the workers, close, and exit by themselves with code 0.
 * The peer ranges in package.json are what this matrix proves.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { REPO_ROOT, runNode } from "./helpers";

/** The body both scripts share; `api` is what the import gave them. */
const SCENARIO = `
async function main(api, how) {
  const { createAdapter, ShardedAdapter, ReadOnlyViewError, InvalidOptionError } = api;
  const { Adapter } = requireFromHere("socket.io-adapter");
  const http = createServer();
  const io = new Server(http, { adapter: createAdapter({ workers: 2, offloadThreshold: 0 }) });
  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
  const { port } = http.address();
  io.on("connection", (socket) => socket.join("room"));
  const client = ioc("http://127.0.0.1:" + port, { transports: ["websocket"], reconnection: false });
  const got = await new Promise((resolve, reject) => {
    client.on("connect_error", reject);
    client.on("hello", (text) => resolve(text));
    client.on("connect", () => setImmediate(() => io.to("room").emit("hello", "hi from " + how)));
  });
  const adapter = io.of("/").adapter;
  let readOnly = false;
  try { adapter.rooms.clear(); } catch (err) { readOnly = err instanceof ReadOnlyViewError; }
  let invalid = false;
  try { createAdapter({ workers: 0 }); } catch (err) { invalid = err instanceof InvalidOptionError; }
  const result = {
    how,
    got,
    isSharded: adapter instanceof ShardedAdapter,
    isAdapter: adapter instanceof Adapter,
    offloaded: adapter.stats().pool.offloaded >= 1,
    workers: adapter.stats().pool.workers,
    readOnly,
    invalid,
  };
  client.disconnect();
  await io.close();
  // Served again after close, as socket.io allows: the adapter takes its pool back.
  const http2 = createServer();
  io.attach(http2);
  await new Promise((resolve) => http2.listen(0, "127.0.0.1", resolve));
  const again = ioc("http://127.0.0.1:" + http2.address().port, { transports: ["websocket"], reconnection: false });
  result.joinedAfterRestart = await new Promise((resolve, reject) => {
    again.on("connect_error", reject);
    again.on("hello", (text) => resolve(text === "again"));
    again.on("connect", () => setImmediate(() => io.to("room").emit("hello", "again")));
  });
  again.disconnect();
  await io.close();
  console.log("RESULT " + JSON.stringify(result));
  // No process.exit(): the process must end by itself once io.close() stopped the pool.
}
`;

const CJS = `"use strict";
const { createServer } = require("node:http");
const { Server } = require("socket.io");
const { io: ioc } = require("socket.io-client");
const api = require("socket.io-sharded-adapter");
const requireFromHere = require;
${SCENARIO}
console.log("RESOLVED " + require.resolve("socket.io-sharded-adapter"));
main(api, "require").catch((err) => { console.error(err); process.exitCode = 1; });
`;

const ESM = `import { createServer } from "node:http";
import { createRequire } from "node:module";
import { Server } from "socket.io";
import { io as ioc } from "socket.io-client";
import * as api from "socket.io-sharded-adapter";
import { createAdapter } from "socket.io-sharded-adapter";
import defaultExport from "socket.io-sharded-adapter";
const requireFromHere = createRequire(import.meta.url);
${SCENARIO}
const required = createRequire(import.meta.url)("socket.io-sharded-adapter");
console.log("RESOLVED " + import.meta.resolve("socket.io-sharded-adapter"));
console.log("SAME " + JSON.stringify({
  namedIsNamespace: createAdapter === api.createAdapter,
  sameAsRequire: createAdapter === required.createAdapter && api.ShardedAdapter === required.ShardedAdapter,
  defaultIsCjs: defaultExport === required,
}));
console.log("NAMES " + JSON.stringify(Object.keys(api)));
await main(api, "import");
`;


/** The README's usage, typed as a user writes it (compiled as .mts and as .cts). */
const TYPESCRIPT = `import { createServer } from "node:http";
import { Server } from "socket.io";
import { Adapter } from "socket.io-adapter";
import { createAdapter, InvalidOptionError, type ShardedAdapter, type ShardedAdapterStats } from "socket.io-sharded-adapter";

const httpServer = createServer();
const io = new Server(httpServer, { adapter: createAdapter({ workers: 2 }) });
const stats: ShardedAdapterStats = (io.of("/").adapter as ShardedAdapter).stats();
const base: Adapter = io.of("/").adapter as ShardedAdapter;
const isAdapter: boolean = io.of("/").adapter instanceof Adapter;
const tuned = new Server({ adapter: createAdapter({ workers: 8, offloadThreshold: 50_000, workerTimeout: 500 }) });
export const checks = [stats.memberships, base.rooms.size, isAdapter, tuned, InvalidOptionError] as const;
`;

const TSCONFIG = {
  compilerOptions: {
    strict: true,
    module: "nodenext",
    moduleResolution: "nodenext",
    target: "ES2022",
    skipLibCheck: false,
    noEmit: true,
    types: ["node"],
  },
  files: ["usage.mts", "usage.cts"],
};

/** One scratch project: what `npm install` is asked for. */
interface Consumer {
  readonly name: string;
  readonly socketIo: string;
  /** Forces socket.io-adapter's version (the lowest the peer range allows). */
  readonly adapterOverride?: string;
  /** Why the typings of this socket.io itself cannot be checked (skipLibCheck on for it; the usage is still checked). */
  readonly libCheckUnavailable?: string;
}

const MATRIX: readonly Consumer[] = [
  {
    name: "socket.io 4.6.0 with socket.io-adapter 2.5.4 (the lowest versions supported)",
    socketIo: "4.6.0",
    adapterOverride: "2.5.4",
    libCheckUnavailable: "socket.io 4.6.0's own index.d.ts imports engine.io/build/server, which nodenext cannot resolve (fixed in 4.6.1)",
  },
  { name: "latest socket.io 4.6.x", socketIo: "~4.6.0" },
  { name: "latest socket.io 4.7.x", socketIo: "~4.7.0" },
  { name: "latest socket.io 4.x", socketIo: "^4" },
];

const ROOT_PACKAGE = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
  name: string;
  version: string;
  peerDependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  [key: string]: unknown;
};

function npm(args: string[], cwd: string): string {
  return execFileSync("npm", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024 });
}

/** Versions of `name` anywhere in the tree `npm ls --all --json` prints. */
function versionsInTree(tree: { dependencies?: Record<string, unknown> }, name: string, found = new Set<string>()): Set<string> {
  for (const [dep, node] of Object.entries(tree.dependencies ?? {})) {
    const info = node as { version?: string; dependencies?: Record<string, unknown> };
    if (dep === name && info.version) found.add(info.version);
    versionsInTree(info, name, found);
  }
  return found;
}

let scratch = "";
let tarball = "";

before(() => {
  scratch = mkdtempSync(join(tmpdir(), "sio-sharded-consumer-"));
  const packed = JSON.parse(npm(["pack", "--json", "--pack-destination", scratch], REPO_ROOT)) as { filename: string }[];
  tarball = join(scratch, packed[0].filename);
});

after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

test("the tarball ships the build, the sources its maps point at, the typings and the LICENSE, and nothing of the tests", () => {
  const files = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).split("\n").filter(Boolean).map((f) => f.replace(/^package\//, ""));
  for (const file of ["LICENSE", "README.md", "package.json", "dist/lib/index.js", "dist/lib/index.mjs", "dist/lib/index.d.ts", "dist/workers/shard-worker.js"]) {
    assert.ok(files.includes(file), `${file} is in the tarball`);
  }
  assert.deepEqual(files.filter((f) => /^(dist\/)?(test|bench)\//.test(f)), [], "no tests or benchmarks");
  const unpacked = join(scratch, "unpacked");
  mkdirSync(unpacked);
  execFileSync("tar", ["-xzf", tarball, "-C", unpacked]);
  let maps = 0;
  for (const map of files.filter((f) => f.endsWith(".js.map"))) {
    const { sources } = JSON.parse(readFileSync(join(unpacked, "package", map), "utf8")) as { sources: string[] };
    for (const source of sources) {
      const resolved = join(unpacked, "package", map, "..", source);
      assert.ok(existsSync(resolved), `${map} points at ${source}, which is shipped`);
    }
    maps++;
  }
  assert.ok(maps > 0, "source maps are shipped");
  // The peer ranges start where the matrix's lowest versions do.
  assert.equal(ROOT_PACKAGE.peerDependencies["socket.io"], `^${MATRIX[0].socketIo}`);
  assert.equal(ROOT_PACKAGE.peerDependencies["socket.io-adapter"], `^${MATRIX[0].adapterOverride}`);
  for (const field of ["license", "description", "engines", "peerDependencies"]) assert.ok(ROOT_PACKAGE[field], `package.json has ${field}`);
  for (const [name, range] of Object.entries(ROOT_PACKAGE.dependencies as Record<string, string>)) {
    assert.match(range, /^\^/, `runtime dependency ${name} takes a range, so consumers dedupe it`);
  }
});

for (const consumer of MATRIX) {
  describe(`the packed package beside ${consumer.name}`, () => {
    const project = () => join(scratch, consumer.socketIo.replace(/[^0-9a-z.]/gi, "_") + (consumer.adapterOverride ? "-adapter-" + consumer.adapterOverride : ""));

    before(() => {
      const dir = project();
      mkdirSync(dir);
      const manifest: Record<string, unknown> = { name: "consumer", private: true };
      if (consumer.adapterOverride) manifest.overrides = { "socket.io-adapter": consumer.adapterOverride };
      writeFileSync(join(dir, "package.json"), JSON.stringify(manifest));
      npm(
        [
          "install",
          "--no-audit",
          "--no-fund",
          "--prefer-offline",
          tarball,
          `socket.io@${consumer.socketIo}`,
          "socket.io-client@^4",
          `@types/node@${ROOT_PACKAGE.devDependencies["@types/node"].split(".")[0]}`,
        ],
        dir,
      );
      writeFileSync(join(dir, "consumer.cjs"), CJS);
      writeFileSync(join(dir, "consumer.mjs"), ESM);
      writeFileSync(join(dir, "usage.mts"), TYPESCRIPT);
      writeFileSync(join(dir, "usage.cts"), TYPESCRIPT);
      const compilerOptions = { ...TSCONFIG.compilerOptions, skipLibCheck: consumer.libCheckUnavailable !== undefined };
      writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ ...TSCONFIG, compilerOptions }));
    });

    test("npm ls: one copy of socket.io-adapter, the one socket.io uses", () => {
      const tree = JSON.parse(npm(["ls", "--all", "--json"], project())) as { dependencies?: Record<string, unknown> };
      const versions = versionsInTree(tree, "socket.io-adapter");
      assert.equal(versions.size, 1, `socket.io-adapter versions installed: ${[...versions].join(", ")}`);
      if (consumer.adapterOverride) assert.deepEqual([...versions], [consumer.adapterOverride]);
      const nested = join(project(), "node_modules", "socket.io-sharded-adapter", "node_modules", "socket.io-adapter");
      assert.equal(existsSync(nested), false, "no nested socket.io-adapter under ours");
    });

    const libCheck = consumer.libCheckUnavailable ? `skipLibCheck true: ${consumer.libCheckUnavailable}` : "skipLibCheck false";
    test(`the README's TypeScript compiles under strict nodenext, ${libCheck} (ESM and CJS)`, () => {
      const tsc = join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc");
      try {
        execFileSync(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: project(), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      } catch (error) {
        const { stdout, stderr } = error as { stdout: string; stderr: string };
        assert.fail(`tsc failed:\n${stdout}\n${stderr}`);
      }
    });

    test('require("socket.io-sharded-adapter") serves a real client and the process exits by itself', async () => {
      const child = await runNode(["consumer.cjs"], { cwd: project(), killAfterMs: 60_000 });
      assert.equal(child.killed, false, `the CommonJS consumer did not exit by itself\n${child.stdout}\n${child.stderr}`);
      assert.equal(child.code, 0, child.stderr);
      assert.match(/^RESOLVED (.*)$/m.exec(child.stdout)?.[1] ?? "", /node_modules[\\/]socket\.io-sharded-adapter[\\/]dist[\\/]lib[\\/]index\.js$/);
      const result = /^RESULT (.*)$/m.exec(child.stdout)?.[1];
      assert.ok(result, child.stdout);
      assert.deepEqual(JSON.parse(result), expectedResult("require"));
    });

    test("import from an ES module serves a real client, shares the CommonJS instance, and exits by itself", async () => {
      const child = await runNode(["consumer.mjs"], { cwd: project(), killAfterMs: 60_000 });
      assert.equal(child.killed, false, `the ES module consumer did not exit by itself\n${child.stdout}\n${child.stderr}`);
      assert.equal(child.code, 0, child.stderr);
      assert.match(/^RESOLVED (.*)$/m.exec(child.stdout)?.[1] ?? "", /node_modules\/socket\.io-sharded-adapter\/dist\/lib\/index\.mjs$/);
      const same = JSON.parse(/^SAME (.*)$/m.exec(child.stdout)?.[1] ?? "null");
      assert.deepEqual(same, { namedIsNamespace: true, sameAsRequire: true, defaultIsCjs: true });
      const names: string[] = JSON.parse(/^NAMES (.*)$/m.exec(child.stdout)?.[1] ?? "[]");
      for (const name of ["createAdapter", "ShardedAdapter", "ShardedClusterAdapter", "ShardedAdapterError", "ReadOnlyViewError", "InvalidOptionError", "default"]) {
        assert.ok(names.includes(name), `the ES module entry should export ${name}: ${names.join(", ")}`);
      }
      const result = /^RESULT (.*)$/m.exec(child.stdout)?.[1];
      assert.ok(result, child.stdout);
      assert.deepEqual(JSON.parse(result), expectedResult("import"));
    });
  });
}

test("package.json main/exports point at built files that exist", () => {
  assert.equal(ROOT_PACKAGE.name, "socket.io-sharded-adapter");
  const exports = ROOT_PACKAGE.exports as Record<string, Record<string, string>>;
  assert.equal(ROOT_PACKAGE.main, "./dist/lib/index.js");
  assert.equal(exports["."].require, "./dist/lib/index.js");
  assert.equal(exports["."].import, "./dist/lib/index.mjs");
  for (const file of [ROOT_PACKAGE.main, ROOT_PACKAGE.types, exports["."].require, exports["."].import, exports["."].types, "./dist/workers/shard-worker.js"]) {
    assert.ok(existsSync(join(REPO_ROOT, file as string)), `${String(file)} should exist after the build`);
  }
});

function expectedResult(how: string) {
  return { how, got: `hi from ${how}`, isSharded: true, isAdapter: true, offloaded: true, workers: 2, readOnly: true, invalid: true, joinedAfterRestart: true };
}
