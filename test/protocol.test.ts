import assert from "node:assert/strict";
import { test } from "node:test";
import { CLAIM_SHARD_BITS, claimShard, CONTROL_LENGTH, nextSeq, resetControl } from "../lib/protocol";

test("claimShard hands out each shard of the current query once", () => {
  const control = new Int32Array(new SharedArrayBuffer(CONTROL_LENGTH * 4));
  resetControl(control, 7);
  assert.deepEqual([0, 1, 2, 3].map(() => claimShard(control, 7, 3)), [0, 1, 2, -1]);
});

test("a task of an earlier query cannot claim a shard of the current one", () => {
  const control = new Int32Array(new SharedArrayBuffer(CONTROL_LENGTH * 4));
  resetControl(control, 7);
  const next = nextSeq(7);
  resetControl(control, next);
  assert.equal(claimShard(control, 7, 3), -1);
  assert.equal(claimShard(control, next, 3), 0);
});

test("the largest sequence number still fits the claim word, and the next one wraps to 0", () => {
  // 31 bits of a positive int32, less the shard bits.
  const seq = (1 << (31 - CLAIM_SHARD_BITS)) - 1;
  const control = new Int32Array(new SharedArrayBuffer(CONTROL_LENGTH * 4));
  resetControl(control, seq);
  assert.ok(Atomics.load(control, 0) > 0, "claim word stays a positive int32");
  assert.equal(claimShard(control, seq, 2), 0);
  assert.equal(claimShard(control, seq, 2), 1);
  assert.equal(claimShard(control, seq, 2), -1);
  assert.equal(nextSeq(seq), 0);
});
