/**
 * Entry point of a shard worker, run by piscina. Each task helps answer one
 * broadcast: it claims shards from the query's control block and writes their
 * recipients into shared memory (see `lib/protocol.ts`). The worker keeps no
 * membership of its own; it reads the tables the main thread shares with it.
 */
import { threadId } from "node:worker_threads";
import { collectEveryShard } from "../lib/local-queries";
import { claimShard, markShardDone, type CollectTask, type CollectTaskResult, type ReadyTask, type WarmUpResult, type WarmUpTask } from "../lib/protocol";
import { collectShard, RecipientMarks, viewTables, type RecipientQuery } from "../lib/shared-tables";

const marks = new RecipientMarks();
/** Where warm-up passes write their recipients (grown as needed, never shared). */
let warmUpOut = new Int32Array(0);

/**
 * Fault injection for the failure tests: "exit-holding-shard" makes the
 * worker exit right after it claimed a shard, the worst moment for the main
 * thread. Read once, at worker start.
 */
const FAULT = process.env.SOCKET_IO_SHARDED_ADAPTER_FAULT;

export default function run(task: CollectTask | ReadyTask | WarmUpTask): CollectTaskResult | WarmUpResult {
  if ("ready" in task) return 0;
  return "warmUp" in task ? warmUp(task) : collect(task);
}

function queryOf(task: CollectTask | WarmUpTask): RecipientQuery {
  return { everyone: task.everyone, rooms: task.rooms, except: task.except, slotHighWater: task.slotHighWater };
}

function collect(task: CollectTask): CollectTaskResult {
  const control = new Int32Array(task.control);
  const results = new Int32Array(task.results);
  const view = viewTables(task.tables);
  const query = queryOf(task);
  let answered = 0;
  for (let shard = claimShard(control, task.seq, view.shardCount); shard !== -1; shard = claimShard(control, task.seq, view.shardCount)) {
    if (FAULT === "exit-holding-shard") process.exit(1);
    const start = shard * task.resultStride;
    results[start] = collectShard(view, shard, query, marks, results, start + 1) - start - 1;
    markShardDone(control);
    answered++;
  }
  return answered;
}

/** Answers the query over every shard `passes` times (the code collect runs, shard by shard) and reports the fastest pass. */
function warmUp(task: WarmUpTask): WarmUpResult {
  const view = viewTables(task.tables);
  const query = queryOf(task);
  if (warmUpOut.length < task.slotHighWater) warmUpOut = new Int32Array(task.slotHighWater);
  let passNs = Infinity;
  for (let pass = 0; pass < task.passes; pass++) {
    const t0 = performance.now();
    collectEveryShard(view, query, marks, warmUpOut);
    passNs = Math.min(passNs, (performance.now() - t0) * 1e6);
  }
  return { threadId, passNs };
}
