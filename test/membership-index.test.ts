/**
 * Unit tests of the main thread's membership index against a plain Map/Set
 * model, at sizes that force every table to grow and the pair index to
 * rehash both ways.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { INDEXED_ABOVE } from "../lib/member-lists";
import { MembershipIndex } from "../lib/membership-index";
import { EMPTY_LIST, EVERY_SHARD, LISTS_ONLY_SHARD, ROOM_LISTS_STRIDE, roomListOffset, viewTables } from "../lib/shared-tables";
import { mulberry32 } from "./random";


for (const shardCount of [1, 2, 3]) {
  test(`index matches a Map/Set model under random churn (${shardCount} shards)`, () => {
    const seed = 1234 + shardCount;
    const random = mulberry32(seed);
    const index = new MembershipIndex(shardCount);
    const model = new Map<string, Set<string>>(); // socket -> rooms
    const ids = Array.from({ length: 300 }, (_, i) => `s${i}`);
    const rooms = Array.from({ length: 120 }, (_, i) => `r${i}`);

    const check = () => {
      assert.equal(index.socketCount, model.size, `socket count (seed ${seed})`);
      let memberships = 0;
      const roomMembers = new Map<string, Set<string>>();
      for (const [id, joined] of model) {
        memberships += joined.size;
        const slot = index.slotOf(id);
        assert.notEqual(slot, undefined);
        assert.deepEqual(
          Array.from(index.socketRoomIds(slot!), (r) => index.roomNameOf(r)),
          [...joined],
          `rooms of ${id} in join order (seed ${seed})`,
        );
        for (const room of joined) {
          if (!roomMembers.has(room)) roomMembers.set(room, new Set());
          roomMembers.get(room)!.add(id);
        }
      }
      assert.equal(index.memberships, memberships);
      assert.equal(index.roomCount, roomMembers.size);
      for (const [room, members] of roomMembers) {
        const roomId = index.roomIdOf(room)!;
        assert.equal(index.roomSize(roomId), members.size);
        assert.deepEqual(
          new Set(Array.from(index.roomSlots(roomId), (slot) => index.socketIdOf(slot))),
          members,
          `members of ${room} (seed ${seed})`,
        );
      }
    };

    for (let step = 0; step < 40_000; step++) {
      const id = ids[Math.floor(random() * ids.length)];
      const op = random();
      let slot = index.slotOf(id);
      if (op < 0.55) {
        if (slot === undefined) {
          slot = index.addSocket(id);
          model.set(id, new Set());
        }
        const room = rooms[Math.floor(random() * rooms.length)];
        const roomId = index.roomIdOf(room) ?? index.addRoom(room);
        const joined = model.get(id)!;
        assert.equal(index.join(slot, roomId), !joined.has(room));
        joined.add(room);
      } else if (op < 0.9) {
        if (slot === undefined) continue;
        const room = rooms[Math.floor(random() * rooms.length)];
        const roomId = index.roomIdOf(room);
        const joined = model.get(id)!;
        assert.equal(roomId !== undefined && index.leave(slot, roomId), joined.has(room));
        joined.delete(room);
        if (roomId !== undefined && index.roomSize(roomId) === 0) index.removeRoom(roomId);
      } else if (slot !== undefined) {
        for (const roomId of Array.from(index.socketRoomIds(slot))) {
          index.leave(slot, roomId);
          if (index.roomSize(roomId) === 0) index.removeRoom(roomId);
        }
        index.removeSocket(slot);
        model.delete(id);
      }
      if (step % 5000 === 0) check();
    }
    check();
  });
}

test("a million memberships on one socket: O(1) join, has and leave", () => {
  const index = new MembershipIndex(2);
  const slot = index.addSocket("s");
  const count = 200_000;
  for (let i = 0; i < count; i++) index.join(slot, index.addRoom(`room-${i}`));
  assert.equal(index.socketRoomCount(slot), count);
  assert.equal(index.has(slot, index.roomIdOf("room-123456")!), true);
  for (let i = 0; i < count; i += 2) {
    const roomId = index.roomIdOf(`room-${i}`)!;
    assert.equal(index.leave(slot, roomId), true);
    index.removeRoom(roomId);
  }
  assert.equal(index.socketRoomCount(slot), count / 2);
  assert.equal(index.memberships, count / 2);
  assert.equal(index.has(slot, index.roomIdOf("room-1")!), true);
  assert.equal(index.roomIdOf("room-0"), undefined);
});

test("a socket above INDEXED_ABOVE rooms enters the pair index, stays while it shrinks and leaves it at zero", () => {
  const index = new MembershipIndex(2);
  const big = index.addSocket("big");
  const small = index.addSocket("small");
  const rooms = Array.from({ length: 30 }, (_, i) => index.addRoom(`r${i}`));
  for (const roomId of rooms.slice(0, 10)) index.join(small, roomId);
  for (const roomId of rooms.slice(0, INDEXED_ABOVE)) index.join(big, roomId);
  assert.equal(index.indexedMemberships, 0, "no socket above the bound yet");
  index.join(big, rooms[INDEXED_ABOVE]);
  assert.equal(index.indexedMemberships, INDEXED_ABOVE + 1, "every membership of the socket crossing the bound");
  for (const roomId of rooms.slice(INDEXED_ABOVE + 1)) index.join(big, roomId);
  assert.equal(index.indexedMemberships, 30);
  assert.equal(index.memberships, 40);
  // Down to 3 rooms: still indexed, and found through the index.
  for (const roomId of rooms.slice(3)) assert.equal(index.leave(big, roomId), true);
  assert.equal(index.indexedMemberships, 3);
  assert.equal(index.join(big, rooms[1]), false, "already a member");
  assert.deepEqual([0, 1, 2, 3].map((i) => index.has(big, rooms[i])), [true, true, true, false]);
  assert.equal(index.leave(big, rooms[3]), false);
  for (const roomId of rooms.slice(0, 3)) assert.equal(index.leave(big, roomId), true);
  assert.equal(index.indexedMemberships, 0);
  // Empty, it starts again below the bound: walked, not indexed.
  for (const roomId of rooms.slice(0, 5)) index.join(big, roomId);
  assert.equal(index.indexedMemberships, 0);
  assert.equal(index.has(big, rooms[4]), true);
  assert.equal(index.has(big, rooms[5]), false);
  assert.equal(index.memberships, 15);
  assert.deepEqual(Array.from(index.socketRoomIds(big)), rooms.slice(0, 5));
});

test("collectLocally answers unions and excepts, each slot once", () => {
  const index = new MembershipIndex(3);
  const slots = Array.from({ length: 30 }, (_, i) => index.addSocket(`s${i}`));
  const a = index.addRoom("a");
  const b = index.addRoom("b");
  const c = index.addRoom("c");
  slots.forEach((slot, i) => {
    if (i % 2 === 0) index.join(slot, a);
    if (i % 3 === 0) index.join(slot, b);
    if (i % 5 === 0) index.join(slot, c);
  });
  const run = (rooms: string[], except: string[]) => {
    const out = index.borrowRecipients();
    const count = index.collectLocally(index.internQuery(new Set(rooms), new Set(except)), out);
    const ids = Array.from(out.subarray(0, count), (slot) => index.socketIdOf(slot));
    index.returnRecipients(out);
    assert.equal(new Set(ids).size, ids.length, "no duplicate recipient");
    return new Set(ids);
  };
  const expected = (pred: (i: number) => boolean) =>
    new Set(slots.map((_, i) => i).filter(pred).map((i) => `s${i}`));
  assert.deepEqual(run(["a", "b"], []), expected((i) => i % 2 === 0 || i % 3 === 0));
  assert.deepEqual(run(["a", "b"], ["c"]), expected((i) => (i % 2 === 0 || i % 3 === 0) && i % 5 !== 0));
  assert.deepEqual(run([], ["a"]), expected((i) => i % 2 !== 0));
  assert.deepEqual(run(["nope"], []), new Set());
  assert.deepEqual(run(["a"], []), expected((i) => i % 2 === 0));
});

test("unions and excepts over many rooms match a model query after query (lockstep walks, marks cleared between queries)", () => {
  const random = mulberry32(99);
  for (const shardCount of [1, 3]) {
    const index = new MembershipIndex(shardCount);
    const model = new Map<string, Set<string>>(); // room -> member ids, in join order
    const ids = Array.from({ length: 700 }, (_, i) => `s${i}`);
    const slots = ids.map((id) => index.addSocket(id));
    const rooms = Array.from({ length: 40 }, (_, i) => `r${i}`);
    for (const room of rooms) model.set(room, new Set());
    // Rooms of very different sizes, so that lockstep lanes run out at different steps.
    ids.forEach((id, i) => {
      for (let r = 0; r < rooms.length; r++) {
        if (random() < 1 / (r + 2)) {
          const roomId = index.roomIdOf(rooms[r]) ?? index.addRoom(rooms[r]);
          index.join(slots[i], roomId);
          model.get(rooms[r])!.add(id);
        }
      }
    });
    const pick = (most: number) => rooms.filter(() => random() < most / rooms.length);
    const asked: { query: ReturnType<typeof index.internQuery>; expected: Set<string> }[] = [];
    for (let q = 0; q < 300; q++) {
      // One room with exclusions (socket.to(room)) and unions of any size, back to back: each must find the marks clear.
      const union = q % 7 === 0 ? [] : q % 5 === 1 ? [rooms[q % rooms.length]] : pick(9);
      const except = q % 3 === 0 || q % 5 === 1 ? pick(4) : [];
      const excluded = new Set(except.flatMap((room) => [...model.get(room)!]));
      const reached = union.length === 0 ? ids : union.flatMap((room) => [...model.get(room)!]);
      // The in-memory adapter's order: every socket, or each room's members in join order, each at its first appearance.
      const expected = [...new Set(reached.filter((id) => !excluded.has(id)))];
      const query = index.internQuery(new Set(union), new Set(except));
      const out = index.borrowRecipients();
      const count = index.collectLocally(query, out);
      const got = Array.from(out.subarray(0, count), (slot) => index.socketIdOf(slot));
      index.returnRecipients(out);
      assert.equal(new Set(got).size, got.length, `no duplicate recipient (query ${q})`);
      assert.deepEqual(new Set(got), new Set(expected), `recipients of query ${q}: ${union} except ${except}`);
      // Shard by shard, as the workers and the main thread answer a cooperative query.
      const perShard = new Set<string | undefined>();
      const buffer = new Int32Array(index.slotCapacity);
      for (let shard = 0; shard < shardCount; shard++) {
        const end = index.collectShardInto(shard, query, buffer, 0);
        for (const slot of buffer.subarray(0, end)) perShard.add(index.socketIdOf(slot));
      }
      assert.deepEqual(perShard, new Set(expected), `shard by shard, query ${q}`);
      const ordered = Array.from(index.collectOrdered(query), (slot) => index.socketIdOf(slot));
      assert.deepEqual(ordered, expected, `in-memory adapter's order, query ${q}`);
      asked.push({ query, expected: new Set(expected) });
    }
    // The same queries again back to back, with no ordered walk between them (it starts with a clear of the whole bitmap).
    const out = index.borrowRecipients();
    asked.forEach(({ query, expected }, q) => {
      const got = Array.from(out.subarray(0, index.collectLocally(query, out)), (slot) => index.socketIdOf(slot));
      assert.equal(new Set(got).size, got.length, `no duplicate recipient (again, query ${q})`);
      assert.deepEqual(new Set(got), expected, `recipients of query ${q}, asked again back to back`);
    });
    index.returnRecipients(out);
  }
});

test("own-id rooms: one list in the owner's shard until a socket of another shard joins; answers and orders stay those of a model", () => {
  const random = mulberry32(2024);
  const shardCount = 3;
  const index = new MembershipIndex(shardCount);
  const model = new Map<string, Set<string>>(); // room -> member ids, in join order
  let nextId = 0;
  const connected: string[] = [];
  const connect = () => {
    const id = `s${nextId++}`;
    const slot = index.addSocket(id);
    const roomId = index.roomIdOf(id) ?? index.addRoom(id, slot);
    index.join(slot, roomId);
    if (!model.has(id)) model.set(id, new Set());
    model.get(id)!.add(id);
    connected.push(id);
  };
  const join = (id: string, room: string) => {
    const slot = index.slotOf(id)!;
    const roomId = index.roomIdOf(room) ?? index.addRoom(room);
    index.join(slot, roomId);
    if (!model.has(room)) model.set(room, new Set());
    model.get(room)!.add(id);
  };
  const leave = (id: string, room: string) => {
    const roomId = index.roomIdOf(room);
    if (roomId === undefined || !index.leave(index.slotOf(id)!, roomId)) return;
    if (index.roomSize(roomId) === 0) index.removeRoom(roomId);
    model.get(room)!.delete(id);
    if (model.get(room)!.size === 0) model.delete(room);
  };
  const disconnect = (id: string) => {
    for (const [room, members] of model) if (members.has(id)) leave(id, room);
    index.removeSocket(index.slotOf(id)!);
    connected.splice(connected.indexOf(id), 1);
  };
  for (let i = 0; i < 60; i++) connect();
  // Each own-id room has a list in its socket's shard only.
  const view = () => viewTables(index.tables);
  for (const id of connected) {
    const roomId = index.roomIdOf(id)!;
    const shard = index.slotOf(id)! % shardCount;
    for (let other = 0; other < shardCount; other++) {
      assert.equal(roomListOffset(view().roomLists, roomId, other) === EMPTY_LIST, other !== shard, `${id}'s own room in shard ${other}`);
    }
  }
  let iterators: { room: string; expected: Iterator<string>; actual: Iterator<number> }[] = [];
  for (let step = 0; step < 6000; step++) {
    const id = connected[Math.floor(random() * connected.length)];
    const other = connected[Math.floor(random() * connected.length)];
    const op = random();
    if (op < 0.4) join(id, random() < 0.7 ? other : `r${Math.floor(random() * 5)}`);
    else if (op < 0.75) leave(id, random() < 0.7 ? other : `r${Math.floor(random() * 5)}`);
    else if (op < 0.8 && connected.length > 20) disconnect(id);
    else if (op < 0.86) connect();
    else if (op < 0.9 && model.has(other)) iterators.push({ room: other, expected: model.get(other)!.values(), actual: index.roomSlots(index.roomIdOf(other)!) });
    // Queries over own-id rooms, twice in a row at times (the second gives runs), shard by shard and in order.
    const union = connected.filter(() => random() < 0.04).filter((room) => model.has(room));
    const except = connected.filter(() => random() < 0.02);
    if (union.length > 0) {
      const expected = [...new Set(union.flatMap((room) => [...model.get(room)!]))].filter((member) => !except.some((room) => model.get(room)?.has(member)));
      for (let repeat = 0; repeat < 2; repeat++) {
        const query = index.internQuery(new Set(union), new Set(except));
        index.prepareRuns(query);
        const buffer = new Int32Array(index.slotCapacity);
        const got: (string | undefined)[] = [];
        for (let shard = 0; shard < shardCount; shard++) {
          const end = index.collectShardInto(shard, query, buffer, 0);
          for (const slot of buffer.subarray(0, end)) got.push(index.socketIdOf(slot));
        }
        assert.deepEqual(new Set(got), new Set(expected), `step ${step}: ${union} except ${except}`);
        assert.equal(got.length, expected.length, `step ${step}: each once`);
        assert.deepEqual(Array.from(index.collectOrdered(query), (slot) => index.socketIdOf(slot)), expected, `step ${step}: in-memory adapter's order`);
      }
    }
    // Live iterators over rooms whose lists may have spread meanwhile: as the model's Set iterators.
    iterators = iterators.filter((entry) => {
      if (random() < 0.5) return true;
      const expected = entry.expected.next();
      const actual = entry.actual.next();
      assert.deepEqual(actual.done === true ? actual : { done: false, value: index.socketIdOf(actual.value) }, expected, `step ${step}: live iterator of ${entry.room}`);
      return expected.done !== true;
    });
    if (step % 500 === 0) {
      for (const [room, members] of model) {
        assert.deepEqual(Array.from(index.roomSlots(index.roomIdOf(room)!), (slot) => index.socketIdOf(slot)), [...members], `step ${step}: members of ${room}`);
      }
    }
  }
  const ownRooms = connected.map((id) => index.roomIdOf(id)!).filter((roomId) => index.roomSize(roomId) > 0);
  const spread = ownRooms.filter((roomId) => view().roomLists[roomId * ROOM_LISTS_STRIDE + LISTS_ONLY_SHARD] === EVERY_SHARD).length;
  assert.ok(spread > 0 && spread < ownRooms.length, `${spread} of ${ownRooms.length} own-id rooms spread to every shard`);
});
