import assert from "node:assert/strict";
import { availableParallelism } from "node:os";
import { test } from "node:test";
import { createAdapter, InvalidOptionError } from "../lib/index";

test("createAdapter rejects bad options with an error naming the option", () => {
  const bad: [string, unknown][] = [
    ["workers", 0],
    ["workers", -1],
    ["workers", 1.5],
    ["workers", "x"],
    ["workers", NaN],
    ["workers", availableParallelism() * 100],
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

test("createAdapter accepts valid options and starts no thread until a namespace uses it", () => {
  const before = process.getActiveResourcesInfo().length;
  createAdapter();
  createAdapter({ workers: 1, offloadThreshold: 0, workerTimeout: 50 });
  createAdapter({ resourceLimits: { maxOldGenerationSizeMb: 64 } });
  assert.equal(process.getActiveResourcesInfo().length, before);
});
