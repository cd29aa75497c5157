/**
 * Unit test of the table buffers' growth (`lib/growable-buffers.ts`): content
 * kept and the new half zero whichever way a buffer doubles (a new plain
 * buffer, in place, into a new reservation), the columns' fill, the tables
 * through `TableBuffers`, and that growing in place leaves the new half
 * non-resident (Linux: read from /proc/self/statm).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { grownFloat64, grownInt32, type Float64Column, type Int32Column } from "../lib/compact-containers";
import { doubledBuffer, doubledTableBuffer, GROWABLE_FROM_BYTES, newTableBuffer } from "../lib/growable-buffers";
import { NODE_STRIDE } from "../lib/shared-tables";
import { TableBuffers } from "../lib/table-buffers";

/** `buffer` as int32s: the first `written` equal to their index + 1, the rest zero. */
function assertPattern(buffer: ArrayBufferLike, written: number, what: string): void {
  const ints = new Int32Array(buffer, 0, buffer.byteLength >> 2);
  for (let i = 0; i < ints.length; i++) {
    const expected = i < written ? i + 1 : 0;
    if (ints[i] !== expected) assert.fail(`${what}: int ${i} of ${ints.length} is ${ints[i]}, expected ${expected}`);
  }
}

function writePattern(buffer: ArrayBufferLike, count: number): void {
  const ints = new Int32Array(buffer, 0, count);
  for (let i = 0; i < count; i++) ints[i] = i + 1;
}

test("a small table buffer doubles into a new plain one, a large one into a growable one", () => {
  let buffer = newTableBuffer(1024);
  assert.equal(buffer.growable, false);
  writePattern(buffer, 256);
  buffer = doubledTableBuffer(buffer);
  assert.equal(buffer.byteLength, 2048);
  assertPattern(buffer, 256, "plain, doubled");
  while (buffer.byteLength < GROWABLE_FROM_BYTES) buffer = doubledTableBuffer(buffer);
  assert.equal(buffer.growable, true, "growable from GROWABLE_FROM_BYTES on");
  assert.ok(buffer.maxByteLength > buffer.byteLength, "reserves room to grow in place");
  assertPattern(buffer, 256, "after becoming growable");
});

test("a growable table buffer doubles in place while its reservation lasts, then into a new one", () => {
  const reserved = new SharedArrayBuffer(GROWABLE_FROM_BYTES, { maxByteLength: GROWABLE_FROM_BYTES * 2 });
  writePattern(reserved, GROWABLE_FROM_BYTES >> 2);
  const inPlace = doubledTableBuffer(reserved);
  assert.equal(inPlace, reserved, "grown in place");
  assert.equal(inPlace.byteLength, GROWABLE_FROM_BYTES * 2);
  assertPattern(inPlace, GROWABLE_FROM_BYTES >> 2, "grown in place");
  const moved = doubledTableBuffer(inPlace);
  assert.notEqual(moved, inPlace, "past the reservation: a new buffer");
  assert.equal(moved.byteLength, GROWABLE_FROM_BYTES * 4);
  assert.ok(moved.growable && moved.maxByteLength > moved.byteLength, "with a new reservation");
  assertPattern(moved, GROWABLE_FROM_BYTES >> 2, "moved");
});

test("main-thread columns stay ArrayBuffers while small, keep content and fill the new half", () => {
  let column: Int32Column = new Int32Array(16).fill(-1);
  column[3] = 7;
  column = grownInt32(column, -1);
  assert.equal(column.length, 32);
  assert.ok(column.buffer instanceof ArrayBuffer);
  assert.equal(column[3], 7);
  assert.deepEqual([...column.subarray(16)], new Array(16).fill(-1));
  while (column.byteLength < GROWABLE_FROM_BYTES * 2) column = grownInt32(column, -1);
  const large = column.buffer;
  assert.ok(large instanceof SharedArrayBuffer && large.growable, "growable once large");
  assert.equal(column.length, large.byteLength >> 2, "a view of the whole buffer");
  assert.equal(column[3], 7);
  assert.equal(column.indexOf(-1, 0), 0);
  assert.ok(column.every((v, i) => v === (i === 3 ? 7 : -1)), "every other entry filled");
  let seqs: Float64Column = new Float64Array(8);
  seqs[5] = 1.5;
  while (seqs.byteLength < GROWABLE_FROM_BYTES * 2) seqs = grownFloat64(seqs);
  assert.equal(seqs[5], 1.5);
  assert.equal(seqs.reduce((a, b) => a + b, 0), 1.5, "the new halves zero");
  const plain = doubledBuffer(new ArrayBuffer(64));
  assert.ok(plain instanceof ArrayBuffer && plain.byteLength === 128);
});

test("TableBuffers: growth keeps every table's content and views span the grown buffers", () => {
  const buffers = new TableBuffers(2);
  const nodes = buffers.view.nodes;
  for (let i = 0; i < nodes.length; i++) nodes[i] = i + 1;
  const written = nodes.length;
  let grown = 0;
  while (buffers.view.nodes.byteLength < GROWABLE_FROM_BYTES * 8) {
    buffers.grow("nodes");
    grown++;
    assert.equal(buffers.view.nodes.length, buffers.tables.nodes.byteLength >> 2);
  }
  assert.ok(grown > 0 && buffers.tables.nodes.growable);
  assertPattern(buffers.tables.nodes, written, "nodes after growing");
  assert.equal(buffers.view.nodes.length % NODE_STRIDE, 0);
});

/** Resident bytes of this process (Linux), or undefined. */
function residentBytes(): number | undefined {
  try {
    return Number(readFileSync("/proc/self/statm", "utf8").split(" ")[1]) * 4096;
  } catch {
    return undefined;
  }
}

test("doubling a written growable buffer leaves the new half non-resident (no copy)", { skip: residentBytes() === undefined ? "needs /proc/self/statm (Linux)" : false }, () => {
  const size = 32 * 2 ** 20;
  const buffer = newTableBuffer(size);
  new Int32Array(buffer, 0, size >> 2).fill(1);
  const before = residentBytes() as number;
  const grown = doubledTableBuffer(buffer);
  const after = residentBytes() as number;
  assert.equal(grown.byteLength, size * 2);
  // A copy into a new buffer would make the whole written half resident again (+32 MiB).
  assert.ok(after - before < size / 4, `RSS grew by ${((after - before) / 2 ** 20).toFixed(1)} MiB doubling a written 32 MiB buffer`);
});
