/**
 * Unit tests of the runs (run-cache.ts): contiguous copies of lists walked
 * again unchanged. Whatever the runs hold, answers must be those of the
 * lists: checked against a model under churn, with an arena small enough to
 * fill, empty and grow many times.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { MembershipIndex } from "../lib/membership-index";
import { LIST_COUNT, LIST_RUN, NONE, roomListOffset, viewTables, WALKED } from "../lib/shared-tables";
import { INITIAL_RUNS } from "../lib/table-buffers";
import { mulberry32 } from "./random";

/** What the index answers for a union of `rooms` except `except`, as a set of socket ids, each once. */
function answer(index: MembershipIndex, rooms: string[], except: string[]): Set<string> {
  const out = index.borrowRecipients();
  const count = index.collectLocally(index.internQuery(new Set(rooms), new Set(except)), out);
  const ids = Array.from(out.subarray(0, count), (slot) => index.socketIdOf(slot)!);
  index.returnRecipients(out);
  assert.equal(new Set(ids).size, ids.length, "no duplicate recipient");
  return new Set(ids);
}

function runOf(index: MembershipIndex, room: string, shard: number): number {
  const view = viewTables(index.tables);
  return view.rooms[roomListOffset(view.roomLists, index.roomIdOf(room)!, shard) + LIST_RUN];
}

test("a list walked twice unchanged gets a run, a join or a leave makes it stale, a small list never gets one", () => {
  const index = new MembershipIndex(2);
  const slots = Array.from({ length: 40 }, (_, i) => index.addSocket(`s${i}`));
  const big = index.addRoom("big");
  const small = index.addRoom("small");
  for (const slot of slots) index.join(slot, big);
  index.join(slots[0], small);
  index.join(slots[1], small);
  const everyone = new Set(slots.map((_, i) => `s${i}`));

  assert.deepEqual(answer(index, ["big", "small"], []), everyone);
  assert.equal(runOf(index, "big", 0), WALKED);
  assert.equal(runOf(index, "small", 0), NONE, "1 member in shard 0: below MIN_RUN_MEMBERS");
  assert.deepEqual(answer(index, ["big", "small"], []), everyone);
  assert.ok(runOf(index, "big", 0) >= 0 && runOf(index, "big", 1) >= 0, "second walk unchanged: runs");
  assert.deepEqual(answer(index, ["big"], []), everyone, "one room, from its runs");

  // s2 is in shard 0: only that list's run goes stale.
  index.leave(slots[2], big);
  assert.equal(runOf(index, "big", 0), NONE);
  assert.ok(runOf(index, "big", 1) >= 0);
  everyone.delete("s2");
  assert.deepEqual(answer(index, ["big"], []), everyone);
  assert.deepEqual(answer(index, [], ["big"]), new Set(["s2"]), "except from runs and lists");
  index.join(slots[2], big);
  everyone.add("s2");
  assert.deepEqual(answer(index, ["big"], []), everyone);
  assert.deepEqual(answer(index, ["big"], []), everyone);
  assert.deepEqual(answer(index, [], ["big"]), new Set(), "except all from runs");
});

test("answers match a model under churn while runs are made, go stale, and the arena fills, empties and grows", () => {
  for (const shardCount of [1, 3]) {
    const seed = 77 + shardCount;
    const random = mulberry32(seed);
    const index = new MembershipIndex(shardCount);
    const ids = Array.from({ length: 900 }, (_, i) => `s${i}`);
    const slots = ids.map((id) => index.addSocket(id));
    const rooms = Array.from({ length: 60 }, (_, i) => `r${i}`);
    const model = new Map<string, Set<string>>(rooms.map((room) => [room, new Set<string>()]));
    const join = (i: number, room: string) => {
      index.join(slots[i], index.roomIdOf(room) ?? index.addRoom(room));
      model.get(room)!.add(ids[i]);
    };
    // Rooms of 15 to 300 members: well over the arena's first 4096 entries in all.
    rooms.forEach((room, r) => {
      for (let i = 0; i < ids.length; i++) if (random() < (r % 20) / 60 + 0.016) join(i, room);
    });
    let runsSeen = 0;
    for (let step = 0; step < 600; step++) {
      // A little churn: some lists go stale, most stay as they were.
      for (let c = 0; c < 3; c++) {
        const i = Math.floor(random() * ids.length);
        const room = rooms[Math.floor(random() * rooms.length)];
        if (model.get(room)!.has(ids[i])) {
          index.leave(slots[i], index.roomIdOf(room)!);
          model.get(room)!.delete(ids[i]);
        } else {
          join(i, room);
        }
      }
      const union = rooms.filter(() => random() < 0.15);
      const except = step % 4 === 0 ? rooms.filter(() => random() < 0.05) : [];
      const excluded = new Set(except.flatMap((room) => [...model.get(room)!]));
      const reached = union.length === 0 ? ids : union.flatMap((room) => [...model.get(room)!]);
      assert.deepEqual(answer(index, union, except), new Set(reached.filter((id) => !excluded.has(id))), `step ${step} (seed ${seed})`);
      const view = viewTables(index.tables);
      for (const room of rooms) {
        const roomId = index.roomIdOf(room);
        if (roomId === undefined) continue;
        for (let shard = 0; shard < shardCount; shard++) {
          const at = roomListOffset(view.roomLists, roomId, shard);
          const run = view.rooms[at + LIST_RUN];
          if (run < 0) continue;
          runsSeen++;
          // A live run holds exactly its list's members.
          const members = new Set(Array.from(view.runs.subarray(run, run + view.rooms[at + LIST_COUNT]), (slot) => index.socketIdOf(slot)));
          const expected = new Set([...model.get(room)!].filter((id) => index.slotOf(id)! % shardCount === shard));
          assert.deepEqual(members, expected, `run of ${room} in shard ${shard}, step ${step}`);
        }
      }
    }
    assert.ok(runsSeen > 1000, `runs were used (${runsSeen})`);
    assert.ok(viewTables(index.tables).runs.length > INITIAL_RUNS, "the arena grew");
  }
});
