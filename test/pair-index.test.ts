/**
 * Unit test of the pair index ((room id, slot) -> node) against a Map: random
 * inserts and deletes across growth and shrinking.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { PairIndex } from "../lib/pair-index";
import { NODE_ROOM, NODE_SLOT, NODE_STRIDE } from "../lib/shared-tables";
import { mulberry32 } from "./random";

/** A nodes table holding pairs the way the member lists do, with free nodes reused. */
class PairNodes {
  nodes = new Int32Array(NODE_STRIDE * 1024);
  private free: number[] = [];
  private highWater = 0;

  add(roomId: number, slot: number): number {
    const node = this.free.pop() ?? this.highWater++;
    if (node * NODE_STRIDE >= this.nodes.length) {
      const bigger = new Int32Array(this.nodes.length * 2);
      bigger.set(this.nodes);
      this.nodes = bigger;
    }
    this.nodes[node * NODE_STRIDE + NODE_ROOM] = roomId;
    this.nodes[node * NODE_STRIDE + NODE_SLOT] = slot;
    return node;
  }

  remove(node: number): void {
    this.nodes[node * NODE_STRIDE + NODE_ROOM] = -1;
    this.free.push(node);
  }
}

const key = (roomId: number, slot: number) => `${roomId}:${slot}`;

function checkAll(index: PairIndex, model: Map<string, number>, pairs: PairNodes, what: string): void {
  assert.equal(index.size, model.size, `size ${what}`);
  for (const [k, node] of model) {
    const [roomId, slot] = k.split(":").map(Number);
    const at = index.find(roomId, slot, pairs.nodes);
    assert.ok(at >= 0, `(${k}) found ${what}`);
    assert.equal(index.nodeAt(at), node, `(${k}) -> its node ${what}`);
  }
}

test("pair index matches a Map under random inserts and deletes, growing and shrinking", () => {
  const random = mulberry32(77);
  const index = new PairIndex();
  const pairs = new PairNodes();
  const model = new Map<string, number>();
  let peakCapacity = 0;
  // Up to ~50k pairs of 90k possible, then down to a few hundred: the index doubles several times, then halves.
  for (const [steps, insertShare] of [
    [100_000, 0.8],
    [40_000, 0.5],
    [300_000, 0.05],
  ] as const) {
    for (let step = 0; step < steps; step++) {
      const roomId = Math.floor(random() * 300);
      const slot = Math.floor(random() * 300);
      const k = key(roomId, slot);
      const at = index.find(roomId, slot, pairs.nodes);
      assert.equal(at >= 0, model.has(k), `(${k}) found iff present, step ${step}`);
      if (random() < insertShare) {
        if (at >= 0) continue;
        const node = pairs.add(roomId, slot);
        index.insert(node, roomId, slot);
        model.set(k, node);
      } else if (at >= 0) {
        assert.equal(index.nodeAt(at), model.get(k));
        index.deleteAt(at);
        pairs.remove(model.get(k) as number);
        model.delete(k);
      }
    }
    peakCapacity = Math.max(peakCapacity, index.capacity);
    checkAll(index, model, pairs, `after ${steps} steps`);
    assert.ok(index.size * 4 <= index.capacity * 3, "at most 3/4 full");
  }
  assert.ok(peakCapacity >= 65536, `grew (to ${peakCapacity})`);
  assert.ok(index.capacity < peakCapacity, `shrank (to ${index.capacity})`);
});
