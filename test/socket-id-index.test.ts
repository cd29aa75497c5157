/**
 * Unit test of the socket id index (socket id -> slot) against a Map: random
 * adds and removes across growth and emptying, with ids that share long
 * prefixes (custom `generateId`s) as well as socket.io-like random ones.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { hashSocketId, SocketIdIndex } from "../lib/socket-id-index";
import { mulberry32 } from "./random";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function checkAll(index: SocketIdIndex, model: Map<string, number>, absent: readonly string[], what: string): void {
  assert.equal(index.size, model.size, `size ${what}`);
  for (const [id, slot] of model) {
    assert.equal(index.slotOf(id), slot, `${id} -> its slot ${what}`);
    assert.equal(index.idOf(slot), id, `slot ${slot} -> ${id} ${what}`);
  }
  for (const id of absent) if (!model.has(id)) assert.equal(index.slotOf(id), undefined, `${id} not held ${what}`);
}

test("socket id index matches a Map under random adds and removes, growing, then emptied", () => {
  const random = mulberry32(13);
  const randomId = () => Array.from({ length: 20 }, () => ALPHABET[Math.floor(random() * 64)]).join("");
  // Random ids, and ids that differ only in their last characters.
  const ids = [...Array.from({ length: 30_000 }, randomId), ...Array.from({ length: 30_000 }, (_, i) => `user-session-${i}`)];
  const index = new SocketIdIndex();
  const model = new Map<string, number>();
  const freeSlots: number[] = [];
  let highWater = 0;
  let peak = 0;
  for (const [steps, addShare] of [
    [80_000, 0.8],
    [40_000, 0.5],
    [150_000, 0.02],
  ] as const) {
    for (let step = 0; step < steps; step++) {
      const id = ids[Math.floor(random() * ids.length)];
      const slot = model.get(id);
      // Each lookup as a string built anew, as ids arriving from the network are.
      assert.equal(index.slotOf(id.split("").join("")), slot, `lookup of ${id}`);
      if (random() < addShare) {
        if (slot !== undefined) continue;
        const newSlot = freeSlots.pop() ?? highWater++;
        index.add(id, newSlot);
        model.set(id, newSlot);
      } else if (slot !== undefined) {
        index.remove(slot);
        model.delete(id);
        freeSlots.push(slot);
      }
      peak = Math.max(peak, model.size);
    }
    checkAll(index, model, ids.slice(0, 2000), `after ${steps} steps`);
  }
  assert.ok(peak > 20_000, `grew to ${peak} ids`);
  assert.ok(model.size < 5_000, `down to ${model.size} ids`);
  index.clear();
  checkAll(index, new Map(), ids.slice(0, 100), "after clear");
});

test("socket id index: removes through probe runs, and two ids of equal hash", () => {
  const index = new SocketIdIndex();
  // 5000 ids in 8192 entries: probe runs; removing every other id shifts entries back through them.
  const ids = Array.from({ length: 5000 }, (_, i) => `${i}`);
  ids.forEach((id, slot) => index.add(id, slot));
  for (let slot = 0; slot < ids.length; slot += 2) index.remove(slot);
  for (let slot = 0; slot < ids.length; slot++) assert.equal(index.slotOf(ids[slot]), slot % 2 === 1 ? slot : undefined, ids[slot]);
  assert.equal(index.slotOf(""), undefined);
  index.add("", 0);
  assert.equal(index.slotOf(""), 0);

  // Two distinct ids with the same 32-bit hash (among 300k, a few pairs are expected): only the id itself tells them apart.
  const byHash = new Map<number, string>();
  let pair: [string, string] | undefined;
  for (let i = 0; pair === undefined && i < 1_000_000; i++) {
    const id = `collide-${i}`;
    const hash = hashSocketId(id);
    const other = byHash.get(hash);
    if (other !== undefined) pair = [other, id];
    else byHash.set(hash, id);
  }
  assert.ok(pair !== undefined, "found two ids of equal hash");
  const colliding = new SocketIdIndex();
  colliding.add(pair[0], 7);
  assert.equal(colliding.slotOf(pair[1]), undefined, `${pair[1]} is not ${pair[0]}`);
  colliding.add(pair[1], 9);
  assert.equal(colliding.slotOf(pair[0]), 7);
  assert.equal(colliding.slotOf(pair[1]), 9);
  colliding.remove(7);
  assert.equal(colliding.slotOf(pair[0]), undefined);
  assert.equal(colliding.slotOf(pair[1]), 9);
});
