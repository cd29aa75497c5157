/**
 * Unit test of InsertionOrder (connection order of slots, creation order of
 * rooms) against a Map's keys: live iterators under random appends and
 * removes, ids reused, the current entry removed, growth.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InsertionOrder } from "../lib/insertion-order";
import { mulberry32 } from "./random";

test("insertion order iterates as a Map's keys, live, under appends and removes", () => {
  const random = mulberry32(5);
  const order = new InsertionOrder(8);
  // Keys are "id#incarnation", so that an id removed and listed again is a new entry, as in the Map.
  const model = new Map<string, number>();
  const incarnation = new Int32Array(4096);
  const listed = new Set<number>();
  const free: number[] = [];
  let highWater = 0;
  const label = (id: number) => `${id}#${incarnation[id]}`;
  let iterators: { expected: Iterator<string>; actual: Iterator<number> }[] = [];
  for (let step = 0; step < 60_000; step++) {
    const op = random();
    if (op < 0.45 && highWater < 4096) {
      const id = free.length > 0 && random() < 0.7 ? free.splice(Math.floor(random() * free.length), 1)[0] : highWater++;
      while (id >= order.capacity) order.grow();
      incarnation[id]++;
      order.append(id);
      listed.add(id);
      model.set(label(id), id);
    } else if (op < 0.85 && listed.size > 0) {
      const ids = [...listed];
      const id = ids[Math.floor(random() * ids.length)];
      order.remove(id);
      listed.delete(id);
      model.delete(label(id));
      free.push(id);
    } else if (op < 0.9) {
      iterators.push({ expected: model.keys(), actual: order.ids() });
    }
    // Step every live iterator once: each must give what the Map's iterator gives.
    iterators = iterators.filter((entry) => {
      const expected = entry.expected.next();
      const actual = entry.actual.next();
      assert.deepEqual(actual.done === true ? { done: true } : { done: false, value: label(actual.value) }, expected.done === true ? { done: true } : { done: false, value: expected.value }, `step ${step}`);
      return expected.done !== true;
    });
  }
  assert.deepEqual([...order.ids()].map(label), [...model.keys()], "whole order at the end");
  order.clear();
  assert.deepEqual([...order.ids()], [], "empty after clear");
});
