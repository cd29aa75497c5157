/**
 * Join sequence numbers are uint32 and renumbered when the counter reaches
 * its limit. The test forces many renumberings (skipping the counter close
 * to the limit) during random joins and leaves, with live iterators held
 * across them, and compares every order with socket.io's in-memory adapter:
 * each socket's rooms, each room's members (live iterators and fresh walks),
 * and the ordered answer for one room (its cached order included).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Adapter, type Room, type SocketId } from "socket.io-adapter";
import { MAX_JOIN_SEQ } from "../lib/member-lists";
import { MembershipIndex } from "../lib/membership-index";
import { mulberry32 } from "./random";

/** The in-memory adapter needs only its namespace's encoder to manage rooms. */
function inMemoryAdapter(): Adapter {
  return new Adapter({ server: { encoder: {} } } as unknown as ConstructorParameters<typeof Adapter>[0]);
}

/** A live iterator on each side, stepped together. */
interface IteratorPair {
  what: string;
  expected: Iterator<string>;
  actual: Iterator<string>;
}

// With 40 rooms, sockets hover around 22 rooms: above the pair index bound
// (INDEXED_ABOVE), so that renumbering meets indexed sockets too.
for (const [shardCount, roomCount] of [
  [1, 12],
  [3, 12],
  [3, 40],
]) {
  test(`orders match the in-memory adapter across join sequence renumberings (${shardCount} shards, ${roomCount} rooms)`, () => {
    const seed = 4242 + shardCount + (roomCount === 12 ? 0 : roomCount);
    const random = mulberry32(seed);
    const memory = inMemoryAdapter();
    const index = new MembershipIndex(shardCount);
    const ids: SocketId[] = Array.from({ length: 60 }, (_, i) => `s${i}`);
    const roomNames: Room[] = Array.from({ length: roomCount }, (_, i) => `r${i}`);
    for (const id of ids) {
      index.addSocket(id);
      memory.addAll(id, new Set());
    }
    const nameOf = (roomId: number) => index.roomNameOf(roomId) as string;
    const idOf = (slot: number) => index.socketIdOf(slot) as string;
    const roomIterator = (room: Room): IteratorPair | undefined => {
      const roomId = index.roomIdOf(room);
      const members = memory.rooms.get(room);
      assert.equal(roomId === undefined, members === undefined, `${room} exists on both sides or neither`);
      if (roomId === undefined || members === undefined) return undefined;
      return { what: `members of ${room}`, expected: members.values(), actual: mapIterator(index.roomSlots(roomId), idOf) };
    };
    const socketIterator = (id: SocketId): IteratorPair => ({
      what: `rooms of ${id}`,
      expected: (memory.sids.get(id) as Set<Room>).values() as Iterator<string>,
      actual: mapIterator(index.socketRoomIds(index.slotOf(id) as number), nameOf),
    });
    const compareAll = (step: number) => {
      for (const id of ids) {
        const slot = index.slotOf(id) as number;
        assert.deepEqual(Array.from(index.socketRoomIds(slot), nameOf), [...(memory.sids.get(id) as Set<Room>)], `rooms of ${id}, step ${step} (seed ${seed})`);
      }
      assert.equal(index.roomCount, memory.rooms.size);
      for (const [room, members] of memory.rooms) {
        const roomId = index.roomIdOf(room) as number;
        assert.deepEqual(Array.from(index.roomSlots(roomId), idOf), [...members], `members of ${room}, step ${step} (seed ${seed})`);
        const ordered = index.collectOrdered(index.internQuery(new Set([room]), undefined));
        assert.deepEqual(Array.from(ordered, idOf), [...members], `ordered answer for ${room}, step ${step} (seed ${seed})`);
      }
    };

    let live: IteratorPair[] = [];
    let renumberingsAtSkip = -1;
    for (let step = 0; step < 12_000; step++) {
      const id = ids[Math.floor(random() * ids.length)];
      const room = roomNames[Math.floor(random() * roomNames.length)];
      const slot = index.slotOf(id) as number;
      const op = random();
      if (op < 0.5) {
        memory.addAll(id, new Set([room]));
        const roomId = index.roomIdOf(room) ?? index.addRoom(room);
        index.join(slot, roomId);
      } else if (op < 0.9) {
        memory.del(id, room);
        const roomId = index.roomIdOf(room);
        if (roomId !== undefined && index.leave(slot, roomId) && index.roomSize(roomId) === 0) index.removeRoom(roomId);
      } else if (op < 0.93) {
        // A renumbering within the next few joins (unless one is pending already).
        const distance = Math.floor(random() * 4);
        if (index.joinSeqRenumberings > renumberingsAtSkip) {
          index.skipJoinSeqsTo(MAX_JOIN_SEQ - distance);
          renumberingsAtSkip = index.joinSeqRenumberings;
        }
      } else if (op < 0.97 && live.length < 8) {
        const pair = random() < 0.5 ? roomIterator(room) : socketIterator(id);
        if (pair !== undefined) live.push(pair);
      }
      // Step the live iterators, each now and then, both sides together.
      live = live.filter((pair) => {
        if (random() < 0.6) return true;
        const expected = pair.expected.next();
        const actual = pair.actual.next();
        assert.deepEqual(actual, expected, `${pair.what}: live iterator, step ${step} (seed ${seed})`);
        return expected.done !== true;
      });
      if (step % 500 === 0) compareAll(step);
    }
    compareAll(12_000);
    assert.ok(index.joinSeqRenumberings >= 50, `renumbered ${index.joinSeqRenumberings} times`);
    if (roomCount > 12) assert.ok(index.indexedMemberships > 0, "some sockets above the pair index bound");
  });
}

function* mapIterator<T, U>(from: Iterable<T>, map: (value: T) => U): Generator<U, void, undefined> {
  for (const value of from) yield map(value);
}
