/**
 * The calibrated default offloadThreshold: the formula and its bounds, and
 * a real pool that calibrates when its workers start, unless the option is
 * given. No timing is asserted: only that what is measured is used, bounded.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Server } from "socket.io";
import { MAX_CALIBRATED_THRESHOLD, measureCollectCost, MIN_CALIBRATED_THRESHOLD, thresholdFrom, UNCALIBRATED_THRESHOLD } from "../lib/calibration";
import { createAdapter } from "../lib/index";
import { shardedAdapterOf, sleep } from "./helpers";

test("thresholdFrom: offloading pays once wake-up + c·M/S < c·M, bounded", () => {
  // 1 ms to wake a worker, 50 ns per membership, 3 shards: 1e6 / (50 · 2/3) = 30,000.
  assert.equal(thresholdFrom(1_000_000, 50, 3), 30_000);
  // Twice the shards: each saves more, the threshold drops.
  assert.ok(thresholdFrom(1_000_000, 50, 6) < thresholdFrom(1_000_000, 50, 3));
  assert.equal(thresholdFrom(1, 50, 3), MIN_CALIBRATED_THRESHOLD);
  assert.equal(thresholdFrom(1e12, 50, 3), MAX_CALIBRATED_THRESHOLD);
  assert.equal(thresholdFrom(NaN, 50, 3), UNCALIBRATED_THRESHOLD);
  // A cost that is not a cost: the measurement failed, the default stays.
  assert.equal(thresholdFrom(1_000_000, 0, 3), UNCALIBRATED_THRESHOLD);
});

test("measureCollectCost measures a positive, finite cost per membership", () => {
  const ns = measureCollectCost();
  assert.ok(Number.isFinite(ns) && ns > 0, `got ${ns}`);
});

async function poolStatsOnceCalibrated(io: Server) {
  const adapter = shardedAdapterOf(io);
  assert.ok(adapter);
  for (let waited = 0; adapter.stats().pool.calibration === undefined && waited < 60_000; waited += 50) await sleep(50);
  return adapter.stats().pool;
}

test("a pool without offloadThreshold calibrates it when its workers start, within bounds", async () => {
  const io = new Server({ adapter: createAdapter({ workers: 2 }) });
  try {
    const before = shardedAdapterOf(io)!.stats().pool;
    if (before.calibration === undefined) assert.equal(before.offloadThreshold, UNCALIBRATED_THRESHOLD);
    const stats = await poolStatsOnceCalibrated(io);
    const calibration = stats.calibration;
    assert.ok(calibration, "calibrated within 60 s");
    assert.ok(calibration.wakeNs > 0 && Number.isFinite(calibration.wakeNs), `wake-up ${calibration.wakeNs}`);
    assert.ok(calibration.nsPerMembership > 0, `cost ${calibration.nsPerMembership}`);
    assert.equal(calibration.threshold, thresholdFrom(calibration.wakeNs, calibration.nsPerMembership, 3));
    assert.equal(stats.offloadThreshold, calibration.threshold);
    assert.ok(stats.offloadThreshold >= MIN_CALIBRATED_THRESHOLD && stats.offloadThreshold <= MAX_CALIBRATED_THRESHOLD);
    // Calibration tasks are not broadcasts.
    assert.equal(stats.offloaded, 0);
    assert.equal(stats.shardsByWorkers, 0);
  } finally {
    await shardedAdapterOf(io)!.close(); // the server has no http server to close: stop the pool
  }
});

test("an explicit offloadThreshold wins: no calibration", async () => {
  const io = new Server({ adapter: createAdapter({ workers: 1, offloadThreshold: 1234 }) });
  try {
    await sleep(500);
    const stats = shardedAdapterOf(io)!.stats().pool;
    assert.equal(stats.offloadThreshold, 1234);
    assert.equal(stats.calibration, undefined);
  } finally {
    await shardedAdapterOf(io)!.close(); // the server has no http server to close: stop the pool
  }
});
