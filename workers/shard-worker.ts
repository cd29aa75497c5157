/**
 * Entry point of a shard worker, run by piscina. Each task helps answer one
 * broadcast: it claims shards from the query's control block and writes their
 * recipients into shared memory (see `lib/protocol.ts`). The worker keeps no
 * membership of its own; it reads the tables the main thread shares with it.
 */
import { claimShard, markShardDone, type CollectTask, type CollectTaskResult, type ReadyTask } from "../lib/protocol";
import { collectShard, RecipientMarks, viewTables } from "../lib/shared-tables";

const marks = new RecipientMarks();

/**
 * Fault injection for the failure tests: "exit-holding-shard" makes the
 * worker exit right after it claimed a shard, the worst moment for the main
 * thread. Read once, at worker start.
 */
const FAULT = process.env.SOCKET_IO_SHARDED_ADAPTER_FAULT;

export default function run(task: CollectTask | ReadyTask): CollectTaskResult {
  return "ready" in task ? 0 : collect(task);
}

function collect(task: CollectTask): CollectTaskResult {
  const control = new Int32Array(task.control);
  const results = new Int32Array(task.results);
  const view = viewTables(task.tables);
  const query = {
    everyone: task.everyone,
    rooms: task.rooms,
    except: task.except,
    slotHighWater: task.slotHighWater,
  };
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
