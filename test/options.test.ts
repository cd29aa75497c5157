import assert from "node:assert/strict";
import { test } from "node:test";
import cluster from "node:cluster";
import IoRedis from "ioredis";
import { createClient } from "redis";
import { createAdapter, InvalidOptionError, setupPrimary, ShardedAdapter, ShardedClusterAdapter } from "../lib/index";

test("createAdapter rejects bad options with an error naming the option", () => {
  const bad: [string, unknown][] = [
    ["workers", 0],
    ["workers", -1],
    ["workers", 1.5],
    ["workers", "x"],
    ["workers", NaN],
    ["workers", 65],
    ["offloadThreshold", -1],
    ["offloadThreshold", "big"],
    ["workerTimeout", 0],
    ["resourceLimits", 5],
    ["wokers", 2],
  ];
  for (const [option, value] of bad) {
    assert.throws(
      () => createAdapter({ [option]: value } as never),
      (err: unknown) => err instanceof InvalidOptionError && err.option === option && err.message.includes(`"${option}"`),
      `${option}: ${String(value)}`,
    );
  }
  assert.throws(() => createAdapter("x" as never), InvalidOptionError);
});

test("the workers range is the same on every machine: 1 to 64, whatever the cores", () => {
  for (const workers of [1, 8, 64]) assert.doesNotThrow(() => createAdapter({ workers }), `workers: ${workers}`);
  assert.throws(() => createAdapter({ workers: 65 }), /option "workers" must be an integer from 1 to 64, got 65/);
});

test("createAdapter(client), the official Redis adapter's call form, says to write createAdapter({ redis: client })", () => {
  // Neither client connects: createAdapter must refuse them before any command.
  const nodeRedis = createClient({ url: "redis://127.0.0.1:1" });
  const ioredis = new IoRedis({ port: 1, lazyConnect: true });
  try {
    for (const [name, client] of [["node-redis", nodeRedis], ["ioredis", ioredis]] as const) {
      assert.throws(
        () => createAdapter(client as never),
        (err: unknown) =>
          err instanceof InvalidOptionError &&
          err.option === "options" &&
          err.message.includes("not a Redis client") &&
          err.message.includes("createAdapter({ redis: client })"),
        name,
      );
    }
  } finally {
    ioredis.disconnect();
  }
});

test("the class createAdapter() returns is named after what it is", () => {
  assert.equal(createAdapter().name, "ShardedAdapter");
  const client = { duplicate: () => client, sendCommand: async () => null, connect: async () => undefined, on: () => client };
  assert.equal(createAdapter({ redis: client as never }).name, "ShardedClusterAdapter");
  assert.ok(createAdapter().prototype instanceof ShardedAdapter);
  assert.ok(createAdapter({ redis: client as never }).prototype instanceof ShardedClusterAdapter);
});

test("createAdapter accepts valid options and starts no thread until a namespace uses it", () => {
  const before = process.getActiveResourcesInfo().length;
  createAdapter();
  createAdapter({ workers: 1, offloadThreshold: 0, workerTimeout: 50 });
  createAdapter({ resourceLimits: { maxOldGenerationSizeMb: 64 } });
  assert.equal(process.getActiveResourcesInfo().length, before);
});

test("Redis options: a bad client or value is refused with an error naming the option", () => {
  // A stand-in with the methods createAdapter checks for; no command is sent
  // before a namespace uses the adapter.
  const client = { duplicate: () => client, sendCommand: async () => null, connect: async () => undefined, on: () => client };
  const bad: [string, unknown][] = [
    ["redis", {}],
    ["redis", "redis://localhost"],
    ["redis", null],
    ["redis", { ...client, masters: [] }], // node-redis createCluster()
    ["redis", { ...client, isCluster: true }], // ioredis Cluster
    ["heartbeatInterval", 0],
    ["heartbeatTimeout", "10s"],
    ["streamName", ""],
    ["streamCount", 0],
    ["channelPrefix", 7],
    ["maxLen", -5],
    ["readCount", 1.5],
    ["blockTimeInMs", 0],
    ["sessionKeyPrefix", ""],
  ];
  for (const [option, value] of bad) {
    const options = option === "redis" ? { redis: value } : { redis: client, [option]: value };
    assert.throws(
      () => createAdapter(options as never),
      (err: unknown) => err instanceof InvalidOptionError && err.option === option && err.message.includes(`"${option}"`),
      `${option}: ${String(value)}`,
    );
  }
  // A timeout not above the interval would declare every node dead between two heartbeats.
  assert.throws(() => createAdapter({ redis: client as never, heartbeatInterval: 5000, heartbeatTimeout: 5000 }), /heartbeatTimeout.*greater than heartbeatInterval/);
  // Redis-only options without a client are a mistake, not silently ignored.
  assert.throws(() => createAdapter({ heartbeatInterval: 1000 }), /"heartbeatInterval" must be given only with the redis option/);
  assert.doesNotThrow(() => createAdapter({ redis: client as never, heartbeatInterval: 100, heartbeatTimeout: 300, streamCount: 4 }));
});

test("cluster option: a boolean, not with redis or its options, heartbeats checked as in Redis mode, only in a process with IPC", () => {
  const client = { duplicate: () => client, sendCommand: async () => null, connect: async () => undefined, on: () => client };
  const bad: [string, Record<string, unknown>][] = [
    ["cluster", { cluster: "yes" }],
    ["cluster", { cluster: 1 }],
    ["cluster", { cluster: true, redis: client }],
    ["streamName", { cluster: true, streamName: "s" }],
    ["maxLen", { cluster: true, maxLen: 10 }],
    ["heartbeatInterval", { cluster: true, heartbeatInterval: 0 }],
    ["heartbeatTimeout", { cluster: true, heartbeatTimeout: "10s" }],
    ["heartbeatTimeout", { cluster: true, heartbeatInterval: 5000, heartbeatTimeout: 5000 }],
  ];
  for (const [option, options] of bad) {
    assert.throws(
      () => createAdapter(options as never),
      (err: unknown) => err instanceof InvalidOptionError && err.option === option && err.message.includes(`"${option}"`),
      JSON.stringify(options, (key, value) => (key === "redis" ? "<client>" : value)),
    );
  }
  assert.doesNotThrow(() => createAdapter({ cluster: false }));
  // node --test runs each file without an IPC channel: no primary to link to.
  assert.equal(typeof process.send, "undefined");
  assert.throws(() => createAdapter({ cluster: true }), /"cluster" must be used in a process with an IPC channel to its primary \(a Node\.js cluster worker\)/);
});

test("setupPrimary: options checked; stats start at zero; close() removes its listeners", () => {
  assert.throws(() => setupPrimary({ maxQueued: 0 }), (err: unknown) => err instanceof InvalidOptionError && err.option === "maxQueued");
  assert.throws(() => setupPrimary({ maxInFlight: 1.5 }), (err: unknown) => err instanceof InvalidOptionError && err.option === "maxInFlight");
  assert.throws(() => setupPrimary({ roomRouting: "yes" as never }), (err: unknown) => err instanceof InvalidOptionError && err.option === "roomRouting");
  const listeners = cluster.listenerCount("message");
  const primary = setupPrimary({ maxQueued: 10 });
  assert.equal(cluster.listenerCount("message"), listeners + 1);
  assert.deepEqual(primary.stats(), { workers: 0, received: 0, forwarded: 0, routedAway: 0, invalid: 0, unroutable: 0, dropped: 0, queued: 0, failed: 0, perWorker: {} });
  primary.close();
  assert.equal(cluster.listenerCount("message"), listeners);
});
