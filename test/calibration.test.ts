/**
 * The calibrated default offloadThreshold: the model and its bounds on
 * injected measurements, the workers' warm-up rule on injected reports, the
 * probe table it times broadcasts on, the probe loop with an injected pool,
 * and a real pool that calibrates when its workers start, unless the option
 * is given. No timing is asserted: only that what is measured is used,
 * bounded, and that the warm-up goes on until the reports stop falling and
 * no further than its bound.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Server } from "socket.io";
import {
  calibrateOffload,
  MAX_CALIBRATED_THRESHOLD,
  MIN_CALIBRATED_THRESHOLD,
  MIN_PROBE_ROUNDS,
  modelFrom,
  PROBE_MEMBERSHIPS,
  PROBE_ROUNDS,
  SMALL_PROBE_ROOMS,
  thresholdFrom,
  UNCALIBRATED_THRESHOLD,
  WARM_UP_PASSES,
  WARM_UP_ROUNDS,
  type CalibrationPool,
  type CalibrationProbe,
} from "../lib/calibration";
import type { WarmUpResult } from "../lib/protocol";
import { isWarm, MAX_WARM_UP_ROUNDS, WARM_UP_FALL, WARM_UP_WINDOW, WorkerWarmUp } from "../lib/worker-warm-up";
import { createAdapter } from "../lib/index";
import { resolveOptions } from "../lib/options";
import { PROBE_ROOM_SIZE, ProbeTable } from "../lib/probe-table";
import { FOLLOW_UP_CALIBRATIONS, FOLLOW_UP_DELAY_MS, medianThreshold, ShardPool } from "../lib/shard-pool";
import { LIST_COUNT, LIST_HEAD, LIST_TAIL, NODE_ROOM, NODE_ROOM_NEXT, NODE_ROOM_PREV, NODE_SLOT, NODE_STRIDE, NONE, roomListOffset, viewTables, type RecipientQuery } from "../lib/shared-tables";
import { shardedAdapterOf, sleep } from "./helpers";

const probe = (memberships: number, aloneNs: number, offloadedNs: number): CalibrationProbe => ({ memberships, recipients: memberships, aloneNs, offloadedNs });

// Alone: 10 ns per membership; with the workers: 350 µs to ask, then 5 ns per membership.
const SMALL = probe(10_000, 100_000, 400_000);
const LARGE = probe(110_000, 1_100_000, 900_000);

test("thresholdFrom: offloading pays from where the two lines through the probes cross", () => {
  // 400 µs + 5·(M − 10k) = 100 µs + 10·(M − 10k) at M = 70k.
  assert.equal(thresholdFrom(SMALL, LARGE, 3), 70_000);
  assert.deepEqual(modelFrom(SMALL, LARGE, 3), { aloneNsPerMembership: 10, offloadedNsPerMembership: 5, offloadCostNs: 350_000, threshold: 70_000 });
  // Twice the cost of asking: twice the threshold. Workers saving more per membership: lower.
  assert.equal(thresholdFrom(probe(10_000, 100_000, 750_000), probe(110_000, 1_100_000, 1_250_000), 3), 140_000);
  assert.ok(thresholdFrom(SMALL, probe(110_000, 1_100_000, 700_000), 3) < 70_000);
  // The probes in either order of measurement, the same lines: only their sizes say which is which.
  assert.equal(thresholdFrom(probe(20_000, 200_000, 450_000), LARGE, 3), 70_000);
});

test("thresholdFrom: bounded, and the workers saving nothing per membership keeps offload for the largest broadcasts only", () => {
  // Asking costs nothing (or less than answering alone): the minimum, not 0 or below.
  assert.equal(thresholdFrom(probe(10_000, 100_000, 50_000), probe(110_000, 1_100_000, 500_000), 3), MIN_CALIBRATED_THRESHOLD);
  assert.equal(thresholdFrom(probe(10_000, 100_000, 100_000), LARGE, 3), MIN_CALIBRATED_THRESHOLD);
  // A huge cost of asking (a machine paused in the small offloaded probe): the maximum.
  assert.equal(thresholdFrom(probe(10_000, 100_000, 1e10), probe(110_000, 1_100_000, 1e10 + 500_000), 3), MAX_CALIBRATED_THRESHOLD);
  // The workers save nothing per membership (no core free for them), or less than nothing.
  assert.equal(thresholdFrom(SMALL, probe(110_000, 1_100_000, 1_400_000), 3), MAX_CALIBRATED_THRESHOLD);
  assert.equal(thresholdFrom(SMALL, probe(110_000, 1_100_000, 3_000_000), 3), MAX_CALIBRATED_THRESHOLD);
  // Alone measured slower on the small probe than on the large one (a pause), or barely slower: no gain measured.
  assert.equal(thresholdFrom(probe(10_000, 2_000_000, 400_000), probe(110_000, 1_100_000, 900_000), 3), MAX_CALIBRATED_THRESHOLD);
  assert.equal(thresholdFrom(probe(10_000, 100_000, 400_000), probe(110_000, 90_000, 900_000), 3), MAX_CALIBRATED_THRESHOLD);
});

test("thresholdFrom: workers better than a perfect split are noise: the line with the workers through the large probe at c/S", () => {
  // With the workers, the small probe paused: 5.1 ms, more than the large one (2.1 ms). Alone, 10 ns per membership.
  const paused = probe(10_000, 100_000, 5_100_000);
  const large = probe(110_000, 1_100_000, 2_100_000);
  const model = modelFrom(paused, large, 3);
  assert.equal(model.offloadedNsPerMembership, 10 / 3);
  // 1 ms behind at 110k, catching up 20/3 ns per membership: from 260k on.
  assert.equal(model.threshold, 260_000);
  assert.equal(thresholdFrom(paused, large, 2), 310_000, "2 shards: c/2 at best");
  assert.ok(thresholdFrom(paused, large, 5) < 260_000, "5 shards: c/5 at best");
  // A slope above c/S is measured, whatever the shard count.
  assert.equal(thresholdFrom(SMALL, LARGE, 5), 70_000);
});

test("thresholdFrom: a measurement that is not one leaves the uncalibrated default", () => {
  assert.equal(thresholdFrom(probe(10_000, NaN, 400_000), LARGE, 3), UNCALIBRATED_THRESHOLD);
  assert.equal(thresholdFrom(SMALL, probe(110_000, 1_100_000, Infinity), 3), UNCALIBRATED_THRESHOLD);
  assert.equal(thresholdFrom(SMALL, SMALL, 3), UNCALIBRATED_THRESHOLD, "one size: no slope");
  assert.equal(thresholdFrom(SMALL, LARGE, NaN), UNCALIBRATED_THRESHOLD, "no shard count");
  assert.equal(thresholdFrom(LARGE, SMALL, 3), UNCALIBRATED_THRESHOLD, "sizes swapped");
});

/** Every (room, shard) list of `table` walked from its head: checks its links, returns the distinct slots of rooms [0, roomCount). */
function walkLists(table: ProbeTable, roomCount: number): Set<number> {
  const { nodes, roomLists, rooms, shardCount } = viewTables(table.tables);
  const slots = new Set<number>();
  for (let room = 0; room < table.roomCount; room++) {
    const inRoom = new Set<number>();
    for (let shard = 0; shard < shardCount; shard++) {
      const at = roomListOffset(roomLists, room, shard);
      let count = 0;
      let prev = NONE;
      for (let node = rooms[at + LIST_HEAD]; node !== NONE; node = nodes[node * NODE_STRIDE + NODE_ROOM_NEXT]) {
        assert.ok(count++ < PROBE_ROOM_SIZE, `room ${room} shard ${shard}: the list does not end`);
        const slot = nodes[node * NODE_STRIDE + NODE_SLOT];
        assert.equal(nodes[node * NODE_STRIDE + NODE_ROOM], room);
        assert.equal(nodes[node * NODE_STRIDE + NODE_ROOM_PREV], prev);
        assert.equal(slot % shardCount, shard, "a slot's memberships are in its shard");
        assert.ok(!inRoom.has(slot), `slot ${slot} twice in room ${room}`);
        inRoom.add(slot);
        if (room < roomCount) slots.add(slot);
        prev = node;
      }
      assert.equal(rooms[at + LIST_TAIL], prev);
      assert.equal(rooms[at + LIST_COUNT], count);
    }
    assert.equal(inRoom.size, PROBE_ROOM_SIZE);
  }
  return slots;
}

function answerSet(out: Int32Array, count: number): Set<number> {
  const slots = new Set(out.subarray(0, count));
  assert.equal(slots.size, count, "no duplicate recipient");
  return slots;
}

function filledProbeTable(shardCount: number, memberships: number, seed: number): ProbeTable {
  const table = new ProbeTable(shardCount, memberships, seed);
  assert.equal(table.fillRooms(table.roomCount), true);
  return table;
}

test("the probe table: valid lists in the shared layout; answered alone and shard by shard like the lists say, over runs too", () => {
  assert.throws(() => new ProbeTable(3, 1000, 1), /power of two/);
  const table = filledProbeTable(3, 1 << 13, 7);
  assert.equal(table.roomCount, (1 << 13) / PROBE_ROOM_SIZE);
  const out = new Int32Array(table.slotCapacity);
  for (const roomCount of [1, 8, table.roomCount]) {
    const expected = walkLists(table, roomCount);
    const query = table.unionOf(roomCount);
    assert.equal(query.rooms.length * PROBE_ROOM_SIZE, roomCount * PROBE_ROOM_SIZE);
    // Walked once (lists), twice (runs made), three times (from the runs).
    for (let walk = 0; walk < 3; walk++) assert.deepEqual(answerSet(out, table.collectLocally(query, out)), expected, `walk ${walk}`);
    let n = 0;
    for (let shard = 0; shard < table.shardCount; shard++) n = table.collectShardInto(shard, query, out, n);
    assert.deepEqual(answerSet(out, n), expected, "shard by shard");
  }
  // Random rooms over as many sockets as memberships: a union of them all reaches most sockets, not all.
  const all = walkLists(table, table.roomCount).size;
  assert.ok(all > table.memberships / 2 && all < table.memberships, `${all} distinct of ${table.memberships}`);
});

test("the probe table written a few rooms at a time is the table written at once", () => {
  const stepwise = new ProbeTable(2, 1 << 12, 11);
  assert.throws(() => stepwise.unionOf(1), /fillRooms first/);
  let steps = 1;
  while (!stepwise.fillRooms(5)) steps++;
  assert.equal(steps, Math.ceil(stepwise.roomCount / 5));
  assert.equal(stepwise.fillRooms(5), true, "nothing left to write");
  const atOnce = filledProbeTable(2, 1 << 12, 11);
  const [a, b] = [viewTables(stepwise.tables), viewTables(atOnce.tables)];
  assert.deepEqual(a.nodes, b.nodes);
  assert.deepEqual(a.rooms, b.rooms);
  assert.deepEqual(a.sockets, b.sockets);
  assert.notDeepEqual(viewTables(filledProbeTable(2, 1 << 12, 12).tables).nodes, b.nodes, "another seed, other rooms");
});

test("isWarm: a worker's reports have stopped falling once the fastest of the last few is no more than WARM_UP_FALL below the fastest before", () => {
  const flat = Array.from({ length: WARM_UP_WINDOW + 1 }, () => 1_000_000);
  assert.equal(isWarm(flat.slice(1)), false, "too few reports to compare");
  assert.equal(isWarm(flat), true);
  // Cold (interpreted) then compiled: still falling while the fall is in the last window.
  const falling = [20e6, 5e6, ...Array.from({ length: WARM_UP_WINDOW }, () => 700_000)];
  assert.equal(isWarm(falling.slice(0, 2 + WARM_UP_WINDOW - 1)), false);
  assert.equal(isWarm(falling), false, "the window holds the fall from 5 ms");
  assert.equal(isWarm([...falling, 700_000]), true, "one report more: the window is flat");
  // A fall just under WARM_UP_FALL is no fall; just over, it is.
  assert.equal(isWarm([1e6, ...Array.from({ length: WARM_UP_WINDOW }, () => 1e6 * (1 - WARM_UP_FALL) + 1)]), true);
  assert.equal(isWarm([1e6, ...Array.from({ length: WARM_UP_WINDOW }, () => 1e6 * (1 - WARM_UP_FALL) - 1)]), false);
  // Preempted reports only ever come out longer: they do not keep a warm worker warming.
  assert.equal(isWarm([900_000, 1_000_000, 5e6, 850_000, 9e6, 880_000]), true);
});

const report = (threadId: number, passNs: number): WarmUpResult => ({ threadId, passNs });

test("WorkerWarmUp: warm once every worker of the last round is, and as many answered as the pool has", () => {
  assert.throws(() => new WorkerWarmUp(0), /workers must be a positive integer/);
  const warmUp = new WorkerWarmUp(2);
  assert.equal(warmUp.warm, false);
  assert.equal(warmUp.again, true);
  assert.ok(Number.isNaN(warmUp.passNs));
  // Thread 2 is warm from the start; thread 1 is cold for two rounds.
  const cold = [30e6, 4e6];
  // Warm once a flat report is among those before the last WARM_UP_WINDOW: after cold + 1 + WARM_UP_WINDOW rounds.
  for (let round = 0; round < cold.length + 1 + WARM_UP_WINDOW; round++) {
    warmUp.record([report(1, cold[round] ?? 700_000), report(2, 650_000)]);
    const expectWarm = round + 1 >= cold.length + 1 + WARM_UP_WINDOW;
    assert.equal(warmUp.warm, expectWarm, `round ${round}`);
    assert.equal(warmUp.again, !expectWarm);
  }
  assert.equal(warmUp.rounds, cold.length + 1 + WARM_UP_WINDOW);
  assert.equal(warmUp.passNs, 700_000, "the slowest worker's fastest report");
  // Both tasks of a round taken by one thread (the other one still starting): not warm, whatever that thread says.
  warmUp.record([report(1, 700_000), report(1, 700_000)]);
  assert.equal(warmUp.warm, false);
  // A new thread (a worker replaced) must warm up on its own.
  warmUp.record([report(1, 700_000), report(3, 8e6)]);
  assert.equal(warmUp.warm, false);
  // A report that is not a time counts as no answer.
  const broken = new WorkerWarmUp(1);
  for (let round = 0; round < WARM_UP_WINDOW + 1; round++) broken.record([report(1, NaN)]);
  assert.equal(broken.warm, false);
});

test("WorkerWarmUp: stops asking for rounds at MAX_WARM_UP_ROUNDS, warm or not", () => {
  const warmUp = new WorkerWarmUp(1);
  let passNs = 1e9;
  let rounds = 0;
  while (warmUp.again) {
    warmUp.record([report(1, (passNs *= 0.8))]); // always falling by 20%
    rounds++;
  }
  assert.equal(rounds, MAX_WARM_UP_ROUNDS);
  assert.equal(warmUp.warm, false);
});

interface ScriptedPool extends CalibrationPool {
  /** What the calibration asked for, in order: "warm-up" rounds and cooperative probes (by memberships). */
  readonly calls: (string | number)[];
  readonly warmUpPasses: number[];
  readonly warmUpMemberships: number[];
}

/**
 * A pool whose workers report `reports(round)` for warm-up round `round`
 * (one per worker, by thread ids 1, 2, ...) and whose cooperative answer is
 * the tables' own, shard by shard (every `lateEvery`-th as a worker late
 * beyond workerTimeout: undefined).
 */
function scriptedPool(workers: number, reports: (round: number) => number, live: () => boolean = () => true, lateEvery = 0): ScriptedPool {
  const calls: (string | number)[] = [];
  const warmUpPasses: number[] = [];
  const warmUpMemberships: number[] = [];
  let rounds = 0;
  let answered = 0;
  return {
    calls,
    warmUpPasses,
    warmUpMemberships,
    live,
    warmUpWorkers: async (_tables, query, passes) => {
      calls.push("warm-up");
      warmUpPasses.push(passes);
      warmUpMemberships.push(query.rooms.length * PROBE_ROOM_SIZE);
      const passNs = reports(rounds++);
      return Array.from({ length: workers }, (_, i) => report(i + 1, passNs));
    },
    cooperate: (tables, query: RecipientQuery, out) => {
      calls.push(query.rooms.length * PROBE_ROOM_SIZE);
      if (lateEvery > 0 && ++answered % lateEvery === 0) return undefined;
      let n = 0;
      for (let shard = 0; shard < tables.shardCount; shard++) n = tables.collectShardInto(shard, query, out, n);
      return n;
    },
  };
}

test("calibrateOffload warms the workers until their reports stop falling, then times both ways at two sizes, alternated, and uses what it measured", async () => {
  const coldRounds = 5;
  // Cold rounds falling from 40 ms, then flat at 0.7 ms.
  const pool = scriptedPool(2, (round) => (round < coldRounds ? 40e6 / (round + 1) : 700_000), () => true, 2);
  const calibration = await calibrateOffload(3, pool);
  assert.ok(calibration);
  const { small, large } = calibration;
  assert.equal(small.memberships, SMALL_PROBE_ROOMS * PROBE_ROOM_SIZE);
  assert.equal(large.memberships, PROBE_MEMBERSHIPS);
  // Warm once the first flat report is followed by WARM_UP_WINDOW more.
  assert.equal(calibration.warmUpRounds, coldRounds + 1 + WARM_UP_WINDOW);
  assert.equal(calibration.workersWarm, true);
  assert.equal(calibration.workerNsPerMembership, 700_000 / PROBE_MEMBERSHIPS);
  assert.ok(pool.warmUpPasses.every((p) => p === WARM_UP_PASSES));
  assert.ok(pool.warmUpMemberships.every((m) => m === large.memberships), "the workers warm up on the large probe");
  // Nothing answered with the workers before they are warm.
  const warmUps = pool.calls.filter((c) => c === "warm-up").length;
  assert.equal(warmUps, calibration.warmUpRounds);
  assert.ok(pool.calls.slice(0, warmUps).every((c) => c === "warm-up"));
  const probes = pool.calls.slice(warmUps) as number[];
  assert.ok(calibration.rounds >= MIN_PROBE_ROUNDS && calibration.rounds <= PROBE_ROUNDS, `${calibration.rounds} rounds`);
  assert.equal(probes.length, WARM_UP_ROUNDS + 2 * calibration.rounds, "the small size in each main-thread warm-up round, both sizes in each timed round");
  assert.ok(probes.slice(0, WARM_UP_ROUNDS).every((m) => m === small.memberships));
  assert.deepEqual(new Set(probes), new Set([small.memberships, large.memberships]));
  assert.ok(small.recipients > 0 && small.recipients <= small.memberships && large.recipients > small.recipients && large.recipients < large.memberships);
  for (const p of [small, large]) assert.ok(p.aloneNs > 0 && p.offloadedNs > 0 && Number.isFinite(p.aloneNs + p.offloadedNs));
  assert.deepEqual({ ...modelFrom(small, large, 3) }, {
    aloneNsPerMembership: calibration.aloneNsPerMembership,
    offloadedNsPerMembership: calibration.offloadedNsPerMembership,
    offloadCostNs: calibration.offloadCostNs,
    threshold: calibration.threshold,
  });
  assert.ok(calibration.threshold >= MIN_CALIBRATED_THRESHOLD && calibration.threshold <= MAX_CALIBRATED_THRESHOLD);
  assert.ok(calibration.longestBlockNs > 0 && calibration.longestBlockNs <= calibration.mainThreadNs);
});

test("calibrateOffload times the workers after MAX_WARM_UP_ROUNDS even if they never stop warming, and says so", async () => {
  const pool = scriptedPool(1, (round) => 1e9 * 0.8 ** round);
  const calibration = await calibrateOffload(2, pool);
  assert.ok(calibration);
  assert.equal(calibration.warmUpRounds, MAX_WARM_UP_ROUNDS);
  assert.equal(calibration.workersWarm, false);
  assert.ok(calibration.threshold >= MIN_CALIBRATED_THRESHOLD && calibration.threshold <= MAX_CALIBRATED_THRESHOLD);
});

test("calibrateOffload stops, with no result, once the pool is gone", async () => {
  // Gone during the warm-up...
  let warmUps = 0;
  const duringWarmUp = scriptedPool(2, () => 1e9 * 0.5 ** warmUps++, () => warmUps < 3);
  assert.equal(await calibrateOffload(3, duringWarmUp), undefined);
  assert.equal(warmUps, 3);
  assert.ok(duringWarmUp.calls.every((c) => c === "warm-up"));
  // ... or during the probes.
  let probes = 0;
  const duringProbes: CalibrationPool = {
    ...scriptedPool(1, () => 1e6),
    cooperate: () => {
      probes++;
      return undefined;
    },
  };
  assert.equal(await calibrateOffload(2, { ...duringProbes, live: () => probes < 3 }), undefined);
  assert.equal(probes, 3);
});

test("the pool's cooperative answer over the probe table matches the table's own", async () => {
  const pool = new ShardPool(resolveOptions({ workers: 2, offloadThreshold: 0 }));
  pool.acquire();
  try {
    const table = filledProbeTable(pool.shardCount, 1 << 13, 3);
    const query = table.unionOf(table.roomCount);
    const out = new Int32Array(table.slotCapacity);
    const expected = answerSet(out, table.collectLocally(query, out));
    for (let i = 0; i < 5; i++) {
      const count = pool.collect(table, query, out);
      assert.ok(count !== undefined, "answered within workerTimeout");
      assert.deepEqual(answerSet(out, count), expected);
    }
    assert.equal(pool.stats().offloaded, 5);
  } finally {
    await pool.release();
  }
});

async function poolStatsOnceCalibrated(io: Server) {
  const adapter = shardedAdapterOf(io);
  assert.ok(adapter);
  for (let waited = 0; (adapter.stats().pool.calibration === undefined || adapter.stats().pool.calibrating) && waited < 60_000; waited += 50) await sleep(50);
  return adapter.stats().pool;
}

test("medianThreshold: the middle one; of two, the lower; none: undefined", () => {
  assert.equal(medianThreshold([]), undefined);
  assert.equal(medianThreshold([1_000_000]), 1_000_000);
  assert.equal(medianThreshold([1_000_000, 60_000]), 60_000);
  assert.equal(medianThreshold([1_000_000, 60_000, 90_000]), 90_000);
  assert.equal(medianThreshold([10_000, 1_000_000, 1_000_000]), 1_000_000);
  assert.equal(medianThreshold([4, 1, 3, 2]), 2);
});

test("a pool without offloadThreshold calibrates it when its workers start, within bounds", async () => {
  const io = new Server({ adapter: createAdapter({ workers: 2 }) });
  try {
    const before = shardedAdapterOf(io)!.stats().pool;
    if (before.calibration === undefined) assert.equal(before.offloadThreshold, UNCALIBRATED_THRESHOLD);
    const stats = await poolStatsOnceCalibrated(io);
    const calibration = stats.calibration;
    assert.ok(calibration, "calibrated within 60 s");
    assert.equal(stats.calibrating, false, "every calibration ended within 60 s");
    // The one at start and its follow-ups; the threshold in effect is their median, the latest is reported.
    assert.equal(stats.calibratedThresholds.length, 1 + FOLLOW_UP_CALIBRATIONS);
    assert.equal(stats.calibratedThresholds.at(-1), calibration.threshold);
    for (const threshold of stats.calibratedThresholds) assert.ok(threshold >= MIN_CALIBRATED_THRESHOLD && threshold <= MAX_CALIBRATED_THRESHOLD, String(threshold));
    const { small, large } = calibration;
    assert.equal(small.memberships, SMALL_PROBE_ROOMS * PROBE_ROOM_SIZE);
    assert.equal(large.memberships, PROBE_MEMBERSHIPS);
    for (const p of [small, large]) assert.ok(p.aloneNs > 0 && p.offloadedNs > 0 && Number.isFinite(p.aloneNs + p.offloadedNs), JSON.stringify(p));
    assert.ok(Number.isFinite(calibration.offloadCostNs) && Number.isFinite(calibration.aloneNsPerMembership) && Number.isFinite(calibration.offloadedNsPerMembership));
    assert.equal(calibration.threshold, thresholdFrom(small, large, 3));
    assert.equal(stats.offloadThreshold, medianThreshold(stats.calibratedThresholds));
    assert.ok(Number.isInteger(stats.offloadThreshold) && stats.offloadThreshold >= MIN_CALIBRATED_THRESHOLD && stats.offloadThreshold <= MAX_CALIBRATED_THRESHOLD);
    // The real workers answered warm-up tasks with their own times, until warm or the bound.
    assert.ok(calibration.workersWarm ? calibration.warmUpRounds >= WARM_UP_WINDOW + 1 : calibration.warmUpRounds === MAX_WARM_UP_ROUNDS, JSON.stringify(calibration));
    assert.ok(calibration.warmUpRounds <= MAX_WARM_UP_ROUNDS);
    assert.ok(calibration.workerNsPerMembership > 0 && Number.isFinite(calibration.workerNsPerMembership));
    // Calibration probes are not broadcasts.
    assert.equal(stats.offloaded, 0);
    assert.equal(stats.shardsByWorkers, 0);
    assert.equal(stats.timeouts, 0);
  } finally {
    await shardedAdapterOf(io)!.close(); // the server has no http server to close: stop the pool
  }
});

test("recalibrate measures again on the live pool, leaving the threshold in effect; its probes count as offloaded", async () => {
  const pool = new ShardPool(resolveOptions({ workers: 2 }));
  pool.acquire();
  try {
    for (let waited = 0; (pool.stats().calibration === undefined || pool.stats().calibrating) && waited < 60_000; waited += 50) await sleep(50);
    const calibration = pool.stats().calibration;
    assert.ok(calibration, "calibrated within 60 s");
    const thresholdInEffect = pool.stats().offloadThreshold;
    const again = await pool.recalibrate();
    assert.ok(again && again !== calibration);
    assert.ok(again.threshold >= MIN_CALIBRATED_THRESHOLD && again.threshold <= MAX_CALIBRATED_THRESHOLD);
    assert.ok(again.warmUpRounds >= 1 && again.warmUpRounds <= MAX_WARM_UP_ROUNDS);
    assert.ok(again.workerNsPerMembership > 0 && Number.isFinite(again.workerNsPerMembership));
    const stats = pool.stats();
    assert.equal(stats.calibration, calibration);
    assert.equal(stats.offloadThreshold, thresholdInEffect);
    assert.equal(stats.calibratedThresholds.length, 1 + FOLLOW_UP_CALIBRATIONS, "recalibrate() adds none");
    assert.equal(stats.offloaded, WARM_UP_ROUNDS + 2 * again.rounds, "the main-thread warm-up's and the timed rounds' cooperative probes");
  } finally {
    await pool.release();
  }
  assert.equal(await pool.recalibrate(), undefined, "a stopped pool measures nothing");
});

test("releasing the pool between its calibrations cancels the follow-ups; a pool that calibrated once does not start over", async () => {
  const pool = new ShardPool(resolveOptions({ workers: 1 }));
  pool.acquire();
  for (let waited = 0; pool.stats().calibration === undefined && waited < 60_000; waited += 20) await sleep(20);
  assert.ok(pool.stats().calibration, "calibrated within 60 s");
  await pool.release();
  const stopped = pool.stats();
  assert.equal(stopped.calibrating, false);
  await sleep(FOLLOW_UP_DELAY_MS * 2);
  assert.deepEqual(pool.stats().calibratedThresholds, stopped.calibratedThresholds, "no follow-up ran after release");
  pool.acquire();
  try {
    await sleep(FOLLOW_UP_DELAY_MS);
    assert.equal(pool.stats().calibrating, false, "the restarted pool keeps the thresholds it has");
    assert.deepEqual(pool.stats().calibratedThresholds, stopped.calibratedThresholds);
  } finally {
    await pool.release();
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
