/**
 * Unit tests of RecipientMarks, the per-thread bitmap that dedups a union's
 * recipients: each query must start clear whichever way the last one ended.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { isMarked, RecipientMarks } from "../lib/shared-tables";

function mark(bits: Int32Array, slot: number): void {
  bits[slot >>> 5] |= 1 << (slot & 31);
}

function markedSlots(bits: Int32Array, bound: number): number[] {
  const slots: number[] = [];
  for (let slot = 0; slot < bound; slot++) if (isMarked(bits, slot)) slots.push(slot);
  return slots;
}

test("a query cleared slot by slot leaves the bitmap clear, words shared by several slots included", () => {
  const marks = new RecipientMarks();
  const bits = marks.begin(1000);
  const slots = Int32Array.from([0, 1, 31, 32, 33, 63, 999, 500, 501]);
  for (const slot of slots) mark(bits, slot);
  assert.deepEqual(markedSlots(bits, 1000), [...slots].sort((a, b) => a - b));
  marks.clearSlots(slots, 0, slots.length);
  assert.deepEqual(markedSlots(bits, 1000), []);
  assert.equal(marks.begin(1000), bits, "same bitmap, no reallocation");
});

test("a query left dirty (exclusions) is cleared by the next begin, up to the bound it used", () => {
  const marks = new RecipientMarks();
  let bits = marks.begin(5000);
  for (let slot = 0; slot < 5000; slot += 7) mark(bits, slot);
  bits = marks.begin(100); // a smaller query next: the earlier one's marks above 100 must go too
  assert.deepEqual(markedSlots(bits, 5000), []);
  mark(bits, 99);
  bits = marks.begin(5000);
  assert.deepEqual(markedSlots(bits, 5000), []);
});

test("the bitmap grows for more slots and starts clear", () => {
  const marks = new RecipientMarks();
  const small = marks.begin(10);
  mark(small, 3);
  const big = marks.begin(1_000_000);
  assert.ok(big.length * 32 >= 1_000_000);
  assert.deepEqual(markedSlots(big, 1_000_000), []);
  mark(big, 999_999);
  mark(big, 5);
  marks.clearSlots(Int32Array.from([999_999, 5]), 0, 2);
  assert.deepEqual(markedSlots(marks.begin(1_000_000), 1_000_000), []);
});

test("drainAscending writes a dense query's marks in ascending order and leaves the bitmap clear; a sparse one is left to clearSlots", () => {
  const marks = new RecipientMarks();
  const bound = 10_000;
  let bits = marks.begin(bound);
  const dense = [9_999, 0, 31, 32, 5_000, 64, 1, 4_096];
  for (let slot = 2; slot < bound; slot += 13) dense.push(slot);
  const unique = [...new Set(dense)];
  for (const slot of unique) mark(bits, slot);
  const out = new Int32Array(bound + 5);
  const end = marks.drainAscending(bound, unique.length, out, 5);
  assert.equal(end, 5 + unique.length);
  assert.deepEqual(Array.from(out.subarray(5, end)), [...unique].sort((a, b) => a - b));
  assert.deepEqual(markedSlots(bits, bound), []);
  assert.equal(marks.begin(bound), bits);

  // Three recipients among 10,000 slots: reading 313 words for them costs more than it saves.
  bits = marks.begin(bound);
  const sparse = Int32Array.from([7, 700, 7_000]);
  for (const slot of sparse) mark(bits, slot);
  assert.equal(marks.drainAscending(bound, sparse.length, out, 0), -1);
  assert.deepEqual(markedSlots(bits, bound), [7, 700, 7_000], "left as it was");
  marks.clearSlots(sparse, 0, sparse.length);
  assert.deepEqual(markedSlots(bits, bound), []);
});
