/**
 * Issue 2, point 8: the built package as a new user gets it. A temporary
 * project has `node_modules/socket.io-sharded-adapter` linked to this
 * repository (and socket.io / socket.io-client linked from our
 * node_modules); a CommonJS and an ES module script each start a server with
 * the adapter, connect a client, broadcast through the workers, close, and
 * must exit by themselves with code 0.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { REPO_ROOT, runNode } from "./helpers";

/** The body both scripts share; `api` is what the import gave them. */
const SCENARIO = `
async function main(api, how) {
  const { createAdapter, ShardedAdapter, ReadOnlyViewError, InvalidOptionError } = api;
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
    offloaded: adapter.stats().pool.offloaded >= 1,
    workers: adapter.stats().pool.workers,
    readOnly,
    invalid,
  };
  client.disconnect();
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

/** A directory symlink, as `npm link` would make. */
function link(target: string, path: string): void {
  symlinkSync(target, path, "dir");
}

describe("the built package, as a new user imports it", () => {
  let project = "";

  before(() => {
    project = mkdtempSync(join(tmpdir(), "sio-sharded-consumer-"));
    const modules = join(project, "node_modules");
    mkdirSync(modules);
    link(REPO_ROOT, join(modules, "socket.io-sharded-adapter"));
    for (const dep of ["socket.io", "socket.io-client"]) link(join(REPO_ROOT, "node_modules", dep), join(modules, dep));
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true }));
    writeFileSync(join(project, "consumer.cjs"), CJS);
    writeFileSync(join(project, "consumer.mjs"), ESM);
  });

  after(() => {
    if (project) rmSync(project, { recursive: true, force: true });
  });

  test("package.json main/exports point at built files that exist", () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8"));
    assert.equal(pkg.name, "socket.io-sharded-adapter");
    assert.equal(pkg.main, "./dist/lib/index.js");
    assert.equal(pkg.exports["."].require, "./dist/lib/index.js");
    assert.equal(pkg.exports["."].import, "./dist/lib/index.mjs");
    for (const file of [pkg.main, pkg.types, pkg.exports["."].require, pkg.exports["."].import, pkg.exports["."].types, "./dist/workers/shard-worker.js"]) {
      assert.ok(existsSync(join(REPO_ROOT, file)), `${file} should exist after the build`);
    }
  });

  const expectedResult = (how: string) => ({
    how,
    got: `hi from ${how}`,
    isSharded: true,
    offloaded: true,
    workers: 2,
    readOnly: true,
    invalid: true,
  });

  test('require("socket.io-sharded-adapter") works and the process exits by itself', async () => {
    const child = await runNode(["consumer.cjs"], { cwd: project, killAfterMs: 30_000 });
    assert.equal(child.killed, false, `the CommonJS consumer did not exit by itself\n${child.stdout}\n${child.stderr}`);
    assert.equal(child.code, 0, child.stderr);
    const resolved = /^RESOLVED (.*)$/m.exec(child.stdout)?.[1] ?? "";
    assert.match(resolved, /dist[\\/]lib[\\/]index\.js$/);
    const result = /^RESULT (.*)$/m.exec(child.stdout)?.[1];
    assert.ok(result, child.stdout);
    assert.deepEqual(JSON.parse(result), expectedResult("require"));
  });

  test('import { createAdapter } from "socket.io-sharded-adapter" works, shares the CommonJS instance, and exits by itself', async () => {
    const child = await runNode(["consumer.mjs"], { cwd: project, killAfterMs: 30_000 });
    assert.equal(child.killed, false, `the ES module consumer did not exit by itself\n${child.stdout}\n${child.stderr}`);
    assert.equal(child.code, 0, child.stderr);
    const resolved = /^RESOLVED (.*)$/m.exec(child.stdout)?.[1] ?? "";
    assert.match(resolved, /dist\/lib\/index\.mjs$/);
    const same = JSON.parse(/^SAME (.*)$/m.exec(child.stdout)?.[1] ?? "null");
    assert.deepEqual(same, {
      namedIsNamespace: true,
      sameAsRequire: true,
      defaultIsCjs: true,
    });
    const names: string[] = JSON.parse(/^NAMES (.*)$/m.exec(child.stdout)?.[1] ?? "[]");
    for (const name of ["createAdapter", "ShardedAdapter", "ShardedAdapterError", "ReadOnlyViewError", "InvalidOptionError", "AdapterClosedError", "default"]) {
      assert.ok(names.includes(name), `the ES module entry should export ${name}: ${names.join(", ")}`);
    }
    const result = /^RESULT (.*)$/m.exec(child.stdout)?.[1];
    assert.ok(result, child.stdout);
    assert.deepEqual(JSON.parse(result), expectedResult("import"));
  });
});
