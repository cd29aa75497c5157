/**
 * fetchSockets and the other ordered selections (socketsJoin,
 * disconnectSockets...) return sockets in the in-memory adapter's order: a
 * room's members in join order, several rooms one after the other, each
 * socket at its first place. The sharded adapter keeps each room's merged
 * order between walks while the room is unchanged (`ordered-room-cache.ts`);
 * these tests check that the kept order is reused (the same array comes
 * back) and never outlives a change: joins into an empty shard list, leaves,
 * a leave and a join that keep the size, rejoins, node and slot reuse, a room
 * removed and created again, changes made by the callbacks of a walk over
 * the cached order.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Server, type Namespace } from "socket.io";
import { createAdapter } from "../lib/index";
import { MembershipIndex } from "../lib/membership-index";
import { closeDetached, connectFake, disconnectFake } from "./fake-sockets";
import { mulberry32 } from "./random";

/** Socket ids to slots and room names to ids in a bare index, with a model of the in-memory adapter beside it. */
class ModelledIndex {
  readonly index: MembershipIndex;
  /** room -> members in join order (a JS Set's order, as the in-memory adapter's). */
  readonly model = new Map<string, Set<string>>();

  constructor(shardCount: number) {
    this.index = new MembershipIndex(shardCount);
  }

  connect(id: string): void {
    if (this.index.slotOf(id) === undefined) this.index.addSocket(id);
  }

  join(id: string, room: string): void {
    this.connect(id);
    const slot = this.index.slotOf(id)!;
    const roomId = this.index.roomIdOf(room) ?? this.index.addRoom(room);
    this.index.join(slot, roomId);
    if (!this.model.has(room)) this.model.set(room, new Set());
    this.model.get(room)!.add(id);
  }

  leave(id: string, room: string): void {
    const slot = this.index.slotOf(id);
    const roomId = this.index.roomIdOf(room);
    if (slot === undefined || roomId === undefined) return;
    this.index.leave(slot, roomId);
    if (this.index.roomSize(roomId) === 0) this.index.removeRoom(roomId);
    this.model.get(room)?.delete(id);
    if (this.model.get(room)?.size === 0) this.model.delete(room);
  }

  disconnect(id: string): void {
    for (const [room, members] of [...this.model]) if (members.has(id)) this.leave(id, room);
    const slot = this.index.slotOf(id);
    if (slot !== undefined) this.index.removeSocket(slot);
  }

  /** The ordered answer for `rooms` minus `except`, as slots (the array itself) and as ids. */
  fetch(rooms: string[], except: string[] = []): { slots: Int32Array; ids: string[] } {
    const slots = this.index.collectOrdered(this.index.internQuery(new Set(rooms), new Set(except)));
    return { slots, ids: Array.from(slots, (slot) => this.index.socketIdOf(slot)!) };
  }

  /** The in-memory adapter's answer. */
  expected(rooms: string[], except: string[] = []): string[] {
    const excluded = new Set(except.flatMap((room) => [...(this.model.get(room) ?? [])]));
    const seen = new Set<string>();
    for (const room of rooms) {
      for (const id of this.model.get(room) ?? []) if (!excluded.has(id)) seen.add(id);
    }
    return [...seen];
  }
}

for (const shardCount of [1, 2, 3]) {
  test(`a room's cached order is reused while unchanged and dropped on every change (${shardCount} shards)`, () => {
    const m = new ModelledIndex(shardCount);
    const ids = Array.from({ length: 40 }, (_, i) => `s${i}`);
    for (const id of ids) m.connect(id);
    // Members only from shard 0's slots at first: the other shards' lists are empty.
    for (let i = 0; i < 30; i += shardCount) m.join(ids[i], "r");
    const check = (what: string) => {
      const first = m.fetch(["r"]);
      assert.deepEqual(first.ids, m.expected(["r"]), `order after ${what}`);
      const again = m.fetch(["r"]);
      assert.equal(again.slots, first.slots, `unchanged room after ${what}: the kept order is reused`);
      return first.slots;
    };
    let last = check("the first joins");

    const changed = (what: string, change: () => void) => {
      change();
      const now = m.fetch(["r"]);
      assert.notEqual(now.slots, last, `${what}: the kept order must not be reused`);
      assert.deepEqual(now.ids, m.expected(["r"]), `order after ${what}`);
      last = check(what);
    };
    if (shardCount > 1) changed("a join into an empty shard list", () => m.join(ids[1], "r"));
    changed("a join", () => m.join(ids[35], "r"));
    changed("a leave from the middle", () => m.leave(ids[shardCount], "r"));
    // The leaver's node is the next one given out: same size, same nodes, another member.
    changed("a leave of the last joiner then another join (same size, reused node)", () => {
      const members = [...m.model.get("r")!];
      m.leave(members[members.length - 1], "r");
      const outsider = ids.find((id) => !m.model.get("r")!.has(id) && id !== members[members.length - 1])!;
      m.join(outsider, "r");
    });
    changed("the first member leaving and rejoining (now last)", () => {
      const first = [...m.model.get("r")!][0];
      m.leave(first, "r");
      m.join(first, "r");
    });
    changed("a member disconnecting and a new socket taking its slot", () => {
      const gone = [...m.model.get("r")!][1];
      m.disconnect(gone);
      m.join("newcomer", "r");
    });
    // The whole room goes, and comes back under the same id with other members in another order.
    const before = m.index.roomIdOf("r");
    for (const id of [...m.model.get("r")!]) m.leave(id, "r");
    for (let i = 39; i >= 28; i--) m.join(ids[i], "r");
    assert.equal(m.index.roomIdOf("r"), before, "the room id is reused");
    const recreated = m.fetch(["r"]);
    assert.notEqual(recreated.slots, last, "a room created again must not reuse the old order");
    assert.deepEqual(recreated.ids, m.expected(["r"]));
  });

  test(`ordered answers match the in-memory order under random churn: one room, several, except (${shardCount} shards)`, () => {
    const seed = 77 + shardCount;
    const random = mulberry32(seed);
    const m = new ModelledIndex(shardCount);
    const ids = Array.from({ length: 60 }, (_, i) => `s${i}`);
    const rooms = ["a", "b", "c", "d"];
    const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)];
    for (let step = 0; step < 3000; step++) {
      const op = random();
      const id = pick(ids);
      if (op < 0.5) m.join(id, pick(rooms));
      else if (op < 0.8) m.leave(id, pick(rooms));
      else if (op < 0.85) m.disconnect(id);
      const selections: [string[], string[]][] = [
        [[pick(rooms)], []],
        [[pick(rooms), pick(rooms), pick(rooms)], []],
        [[pick(rooms), pick(rooms)], [pick(rooms)]],
        [[pick(rooms)], [pick(rooms)]],
      ];
      for (const [selected, except] of selections) {
        // Twice: the second answer comes from the kept orders.
        for (let round = 0; round < 2; round++) {
          assert.deepEqual(m.fetch(selected, except).ids, m.expected(selected, except), `step ${step} in ${selected} except ${except} round ${round} (seed ${seed})`);
        }
      }
    }
  });
}

/** Fake sockets connected in the same order to both servers; each command applied to both. */
class TwoServers {
  readonly memory = new Server();
  readonly sharded = new Server({ adapter: createAdapter({ workers: 3 }) });

  get namespaces(): Namespace[] {
    return [this.memory.of("/"), this.sharded.of("/")];
  }

  connect(id: string): void {
    for (const nsp of this.namespaces) if (!nsp.sockets.has(id)) connectFake(nsp, id);
  }

  join(id: string, room: string): void {
    for (const nsp of this.namespaces) if (nsp.sockets.has(id)) nsp.adapter.addAll(id, new Set([room]));
  }

  leave(id: string, room: string): void {
    for (const nsp of this.namespaces) nsp.adapter.del(id, room);
  }

  disconnect(id: string): void {
    for (const nsp of this.namespaces) if (nsp.sockets.has(id)) disconnectFake(nsp, id);
  }

  /** fetchSockets through socket.io's BroadcastOperator on both, as id lists: [in-memory, sharded]. */
  async fetch(rooms: string[], except: string[]): Promise<[string[], string[]]> {
    const [memory, sharded] = await Promise.all(
      [this.memory, this.sharded].map(async (io) => (await io.in(rooms).except(except).fetchSockets()).map((socket) => socket.id)),
    );
    return [memory, sharded];
  }

  async close(): Promise<void> {
    await closeDetached(this.memory);
    await closeDetached(this.sharded);
  }
}

test("fetchSockets order equals the in-memory adapter's under churn across 3 shards, asked twice each time", async (t) => {
  const servers = new TwoServers();
  t.after(() => servers.close());
  const random = mulberry32(2026);
  const ids = Array.from({ length: 48 }, (_, i) => `c${i}`);
  const rooms = ["big", "mid", "small"];
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)];
  for (const id of ids) servers.connect(id);
  for (const id of ids) if (random() < 0.7) servers.join(id, "big");
  for (let step = 0; step < 600; step++) {
    const op = random();
    const id = pick(ids);
    if (op < 0.45) servers.join(id, pick(rooms));
    else if (op < 0.75) servers.leave(id, pick(rooms));
    else if (op < 0.8) servers.disconnect(id);
    else if (op < 0.85) servers.connect(id);
    const selections: [string[], string[]][] = [
      [["big"], []],
      [[pick(rooms), pick(rooms)], []],
      [[pick(rooms)], [pick(rooms)]],
      [[], [pick(rooms)]],
    ];
    for (const [selected, except] of selections) {
      for (let round = 0; round < 2; round++) {
        const [memory, sharded] = await servers.fetch(selected, except);
        assert.deepEqual(sharded, memory, `step ${step}: in ${selected} except ${except}, round ${round}`);
      }
    }
  }
});

test("a walk over a cached order whose callbacks change the room: same sockets, same order, then the new order", async (t) => {
  const servers = new TwoServers();
  t.after(() => servers.close());
  const ids = Array.from({ length: 30 }, (_, i) => `c${i}`);
  for (const id of ids) servers.connect(id);
  for (const id of ids) servers.join(id, "room");
  for (let round = 0; round < 2; round++) await servers.fetch(["room"], []); // the order is kept now
  // When socketsJoin joins it to "other", every socket leaves "room" and
  // every other one rejoins it (moving to the end). Only the visited socket
  // changes, so the in-memory adapter's live Set iteration and the sharded
  // adapter's precomputed order visit the same sockets.
  const orders: string[][] = [];
  for (const nsp of servers.namespaces) {
    const order: string[] = [];
    orders.push(order);
    for (const [index, id] of ids.entries()) {
      const socket = nsp.sockets.get(id) as unknown as { join(rooms: unknown): void };
      const join = socket.join.bind(socket);
      socket.join = (rooms) => {
        order.push(id);
        join(rooms);
        nsp.adapter.del(id, "room");
        if (index % 2 === 1) nsp.adapter.addAll(id, new Set(["room"]));
      };
    }
  }
  servers.memory.in("room").socketsJoin("other");
  servers.sharded.in("room").socketsJoin("other");
  assert.deepEqual(orders[0], ids, "the in-memory adapter visits every member once, in join order");
  assert.deepEqual(orders[1], orders[0], "socketsJoin visits the same sockets in the same order");
  const [memory, sharded] = await servers.fetch(["room"], []);
  assert.deepEqual(memory, ids.filter((_, index) => index % 2 === 1));
  assert.deepEqual(sharded, memory, "the room's order after the callbacks' changes");
  const [memoryBoth, shardedBoth] = await servers.fetch(["other", "room"], ["nothing"]);
  assert.deepEqual(shardedBoth, memoryBoth);
});
