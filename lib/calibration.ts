/**
 * The default `offloadThreshold`, calibrated when a pool starts: the size of
 * broadcast from which asking the workers shortens the main thread's work on
 * this machine, found by timing broadcasts both ways.
 *
 * What is timed is what broadcasts do (`probe-table.ts`): unions of rooms of
 * 128 over a table of 128k memberships, read from the lists' runs as
 * broadcasts to rooms broadcast to before are, by the functions broadcasts
 * call; on the main thread alone, and with the workers through the pool's
 * cooperative answer (posting the tasks, the main thread's own shards,
 * waiting for the workers' shards, merging their answers). On this table
 * the bench's own crossover measurement (sizes 1k to 100k, medians of 15)
 * gives the same times as on the bench's index of 1M memberships, within
 * 10%: the runs are read in order, so the table's size hardly matters
 * below the caches' (a 256k table with as many sockets, larger than the
 * core's cache, costs half as much again per membership alone).
 *
 * In order, an event-loop turn between blocks:
 * 1. The table, FILL_ROOMS_PER_TURN rooms per turn, each list with its run.
 * 2. The workers warm up on their own (`worker-warm-up.ts`): just after the
 *    pool starts, a worker runs the selection code cold, several times
 *    slower than once compiled, and timed then the workers seemed to save
 *    nothing. Each round, every worker answers the large probe over every
 *    shard WARM_UP_PASSES times and reports its own fastest pass, until
 *    every worker's reports have stopped falling (at most
 *    MAX_WARM_UP_ROUNDS). The main thread only posts and reads the reports.
 * 3. WARM_UP_ROUNDS of the small probe both ways, untimed (the main
 *    thread's side of the cooperative answer compiled).
 * 4. PROBE_ROUNDS of both probes both ways, alternated (fewer, at least
 *    MIN_PROBE_ROUNDS, once the calibration has kept the main thread
 *    MAIN_THREAD_BUDGET_NS in all), each probe timed on the main thread.
 * Of the rounds, the main thread alone keeps its fastest (it only ever
 * loses time to being preempted; its median, with the few rounds the
 * budget leaves on a loaded machine, once came out 7 times its fastest),
 * the main thread with the workers its median (waiting for a worker the OS
 * runs late is part of what offloading costs, as often as it happens).
 *
 * The probes' sizes, SMALL_PROBE_ROOMS (32k memberships) and the whole
 * table (128k), are where the workers take part: the main thread claims a
 * shard as soon as it has posted the tasks, and a query whose shards it
 * finishes before a worker wakes costs it just the posting. At 8k that
 * was most of the time, and a line from there to a larger probe fell too
 * steeply: the old probes (8k and 64k) put the crossover 3 times below the
 * bench's.
 *
 * The model: for a query of M memberships, the main thread takes
 *   alone:          a + c·M
 *   with workers:   o + b·M
 * (each line through the two probes). o − a is the fixed cost of asking the
 * pool: posting, waking a worker, merging. c − b is what the workers save
 * per membership; with S shards on idle cores b ≈ c/S, but on a machine
 * whose cores are busy (the main thread, the workers and other processes on
 * 2 cores) much less is saved, and that is measured, not assumed (only a b
 * below c/S, better than a perfect split, is taken for noise: b = c/S, the
 * line through the large probe). Offloading pays once o + b·M < a + c·M,
 * i.e. from M = (o − a) / (c − b) on.
 * Larger broadcasts than the probes' are extrapolated along the lines.
 *
 * Bounded to [MIN_CALIBRATED_THRESHOLD, MAX_CALIBRATED_THRESHOLD]: a
 * measurement that says the workers save nothing per membership (c ≤ b: no
 * core free for them, or a pause in the wrong probe) gives the maximum, so
 * the largest broadcasts are still shared; one that says asking costs
 * nothing gives the minimum, so a small broadcast never waits for a wake-up.
 * Fastest and median keep one paused probe from moving either line. A measurement
 * that is not a number (nothing measured) leaves UNCALIBRATED_THRESHOLD.
 *
 * It costs the main thread some 40 to 60 ms in all on a loaded 2-core
 * machine (a fifth to a third building the table), in blocks whose own
 * work is at most the large probe alone, about 1.3 ms, each in an
 * event-loop turn of its own (`Calibration.mainThreadNs`,
 * `longestBlockNs`); the workers' warm-up costs it next to nothing. On a loaded machine a block takes longer (the
 * main thread preempted, or a probe waiting for a descheduled worker, as a
 * broadcast would); past MIN_PROBE_ROUNDS, the budget bounds the sum.
 */
import type { CooperativeTables, WarmUpResult } from "./protocol";
import { PROBE_ROOM_SIZE, ProbeTable } from "./probe-table";
import type { RecipientQuery } from "./shared-tables";
import { WorkerWarmUp } from "./worker-warm-up";

/** The threshold before calibration has run (and when it cannot). */
export const UNCALIBRATED_THRESHOLD = 100_000;
export const MIN_CALIBRATED_THRESHOLD = 10_000;
export const MAX_CALIBRATED_THRESHOLD = 1_000_000;

/** Memberships of the probe table (as many sockets): the large probe's size, 128k. */
export const PROBE_MEMBERSHIPS = 1 << 17;
/** Rooms of the small probe: 32k memberships. */
export const SMALL_PROBE_ROOMS = (1 << 15) / PROBE_ROOM_SIZE;
/** Rooms of the probe table written in one event-loop turn: 8k memberships. */
export const FILL_ROOMS_PER_TURN = (1 << 13) / PROBE_ROOM_SIZE;
/** Passes over the large probe in each worker's warm-up task (see `worker-warm-up.ts`). */
export const WARM_UP_PASSES = 2;
/** Untimed rounds of the small probe both ways on the main thread (its side of the cooperative answer compiled), then timed rounds of both. */
export const WARM_UP_ROUNDS = 3;
export const PROBE_ROUNDS = 9;
/**
 * Timed rounds stop early, after at least MIN_PROBE_ROUNDS, once the
 * calibration has kept the main thread this long in all: on a loaded
 * machine, where every probe takes several times longer.
 */
export const MIN_PROBE_ROUNDS = 5;
export const MAIN_THREAD_BUDGET_NS = 60e6;
const PROBE_TABLE_SEED = 0x2545f491;

/** One size of broadcast timed both ways over the rounds. */
export interface CalibrationProbe {
  /** Memberships the query visits (its cost, as compared with offloadThreshold). */
  readonly memberships: number;
  readonly recipients: number;
  /** Ns the main thread took answering alone (the fastest round). */
  readonly aloneNs: number;
  /** Ns the main thread took answering with the workers (posting, its shards, waiting for theirs, merging; the median round). */
  readonly offloadedNs: number;
}

/** What a pool's calibration measured and chose. */
export interface Calibration {
  readonly small: CalibrationProbe;
  readonly large: CalibrationProbe;
  /** c: ns per membership on the main thread alone. */
  readonly aloneNsPerMembership: number;
  /** b: ns per membership of the main thread's time with the workers' help. */
  readonly offloadedNsPerMembership: number;
  /** o − a: the fixed cost to the main thread of asking the workers, ns. */
  readonly offloadCostNs: number;
  /** (o − a) / (c − b), bounded; see the module comment. */
  readonly threshold: number;
  /** The main thread's time in the calibration's synchronous blocks (table built, probes), ns. */
  readonly mainThreadNs: number;
  /** The longest of those blocks, ns. */
  readonly longestBlockNs: number;
  /** Timed rounds (fewer than PROBE_ROUNDS once over MAIN_THREAD_BUDGET_NS). */
  readonly rounds: number;
  /** Rounds of warm-up tasks the workers ran before anything was timed (see `worker-warm-up.ts`). */
  readonly warmUpRounds: number;
  /** Whether the workers' own times had stopped falling by then (false: MAX_WARM_UP_ROUNDS reached). */
  readonly workersWarm: boolean;
  /** The slowest worker's own time per membership over the large probe once warm, ns (its fastest warm-up pass). */
  readonly workerNsPerMembership: number;
}

/**
 * The lines through two probes and the crossover they give (see the module
 * comment), for `shardCount` shards.
 */
export function modelFrom(
  small: CalibrationProbe,
  large: CalibrationProbe,
  shardCount: number,
): Pick<Calibration, "aloneNsPerMembership" | "offloadedNsPerMembership" | "offloadCostNs" | "threshold"> {
  const span = large.memberships - small.memberships;
  const aloneNsPerMembership = (large.aloneNs - small.aloneNs) / span;
  // Below c/S the workers would do better than a perfect split of the work:
  // noise (most often a paused small probe), not a measurement. The line
  // then goes through the large probe with slope c/S.
  const offloadedNsPerMembership = Math.max((large.offloadedNs - small.offloadedNs) / span, aloneNsPerMembership / shardCount);
  const gapAtLarge = large.offloadedNs - large.aloneNs;
  const saved = aloneNsPerMembership - offloadedNsPerMembership;
  // (o − a): the gap between the lines at M = 0.
  const offloadCostNs = gapAtLarge + saved * large.memberships;
  const values = [small.memberships, small.aloneNs, small.offloadedNs, large.memberships, large.aloneNs, large.offloadedNs, shardCount];
  let threshold: number;
  if (!values.every(Number.isFinite) || !(span > 0) || !(shardCount >= 1)) threshold = UNCALIBRATED_THRESHOLD;
  else if (!(saved > 0)) threshold = MAX_CALIBRATED_THRESHOLD; // the workers shorten nothing per membership
  else threshold = Math.round(Math.min(MAX_CALIBRATED_THRESHOLD, Math.max(MIN_CALIBRATED_THRESHOLD, offloadCostNs / saved)));
  return { aloneNsPerMembership, offloadedNsPerMembership, offloadCostNs, threshold };
}

/** The calibrated threshold from two probes: (o − a) / (c − b), bounded. */
export function thresholdFrom(small: CalibrationProbe, large: CalibrationProbe, shardCount: number): number {
  return modelFrom(small, large, shardCount).threshold;
}

/**
 * The pool's cooperative answer of `query` over `tables` into `out`,
 * counted in no statistic; undefined when a worker did not answer in time.
 */
export type CooperativeAnswer = (tables: CooperativeTables, query: RecipientQuery, out: Int32Array) => number | undefined;

/** What the calibration needs of the pool. */
export interface CalibrationPool {
  readonly cooperate: CooperativeAnswer;
  /** Posts one `WarmUpTask` of `query` per worker, together, and resolves with their reports. */
  readonly warmUpWorkers: (tables: CooperativeTables, query: RecipientQuery, passes: number) => Promise<readonly WarmUpResult[]>;
  /** False once the pool is stopped: the calibration ends with no result. */
  readonly live: () => boolean;
}

/** Not unref'd: an unref'd immediate lets the loop block in poll, and the calibration would wait for the next I/O. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Times broadcasts on a probe table of `shardCount` shards (`shardCount` − 1
 * workers) both ways (see the module comment) and returns the calibration,
 * or undefined if the pool was stopped meanwhile.
 */
export async function calibrateOffload(shardCount: number, pool: CalibrationPool): Promise<Calibration | undefined> {
  let mainThreadNs = 0;
  let longestBlockNs = 0;
  const timed = <T>(work: () => T): { value: T; ns: number } => {
    const t0 = performance.now();
    const value = work();
    const ns = (performance.now() - t0) * 1e6;
    mainThreadNs += ns;
    longestBlockNs = Math.max(longestBlockNs, ns);
    return { value, ns };
  };

  const table = timed(() => new ProbeTable(shardCount, PROBE_MEMBERSHIPS, PROBE_TABLE_SEED)).value;
  while (!timed(() => table.fillRooms(FILL_ROOMS_PER_TURN)).value) {
    await nextTurn();
    if (!pool.live()) return undefined;
  }
  const out = new Int32Array(table.slotCapacity);
  const queries = [table.unionOf(SMALL_PROBE_ROOMS), table.unionOf(table.roomCount)];
  const answer = (query: RecipientQuery, withWorkers: boolean): number =>
    // A worker late beyond workerTimeout: the adapter answers alone after waiting, and so does this, timed in.
    withWorkers ? (pool.cooperate(table, query, out) ?? table.collectLocally(query, out)) : table.collectLocally(query, out);

  // The workers warm on their own, the main thread only posting and reading their reports.
  const warmUp = new WorkerWarmUp(shardCount - 1);
  while (warmUp.again) {
    warmUp.record(await pool.warmUpWorkers(table, queries[1], WARM_UP_PASSES));
    if (!pool.live()) return undefined;
  }
  // The main thread's side of both ways, compiled on the small probe.
  for (let round = 0; round < WARM_UP_ROUNDS; round++) {
    for (const withWorkers of [false, true]) {
      await nextTurn();
      if (!pool.live()) return undefined;
      timed(() => answer(queries[0], withWorkers));
    }
  }

  const alone = queries.map((): number[] => []);
  const offloaded = queries.map((): number[] => []);
  const recipients = queries.map(() => 0);
  let rounds = 0;
  while (rounds < PROBE_ROUNDS && (rounds < MIN_PROBE_ROUNDS || mainThreadNs <= MAIN_THREAD_BUDGET_NS)) {
    for (let q = 0; q < queries.length; q++) {
      for (const withWorkers of rounds % 2 === 0 ? [false, true] : [true, false]) {
        await nextTurn();
        if (!pool.live()) return undefined;
        const { value: count, ns } = timed(() => answer(queries[q], withWorkers));
        (withWorkers ? offloaded : alone)[q].push(ns);
        recipients[q] = count;
      }
    }
    rounds++;
  }
  const median = (xs: number[]) => xs.sort((x, y) => x - y)[xs.length >> 1];
  const probes = queries.map(
    (query, q): CalibrationProbe => ({
      memberships: query.rooms.length * PROBE_ROOM_SIZE,
      recipients: recipients[q],
      aloneNs: Math.min(...alone[q]),
      offloadedNs: median(offloaded[q]),
    }),
  );
  const [small, large] = probes;
  return {
    small,
    large,
    ...modelFrom(small, large, shardCount),
    mainThreadNs,
    longestBlockNs,
    rounds,
    warmUpRounds: warmUp.rounds,
    workersWarm: warmUp.warm,
    workerNsPerMembership: warmUp.passNs / large.memberships,
  };
}
