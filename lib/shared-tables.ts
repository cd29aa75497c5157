/**
 * The shared-memory layout of one namespace's membership, and the code that
 * reads it to answer a broadcast. Both the main thread and the shard
 * workers import this module: the layout is described here and nowhere else.
 *
 * Sockets and rooms are interned to integers on the main thread: a socket is
 * a *slot*, a room is a *room id*. A socket's shard is `slot % shardCount`,
 * so the shards partition the sockets and their answers never overlap:
 * merging them needs no dedup.
 *
 * The members of room `r` in shard `s` are one dense run of slots in
 * `members`, in join order, so that a reader walks a room at memory speed
 * instead of chasing one pointer per member. A member that leaves becomes a
 * hole (`NONE`) in its run, and the run is compacted (order kept) once holes
 * outnumber members; a full run moves to a run twice as big at the end of
 * `members`, and the space runs leave behind is reclaimed by compacting
 * the whole array (into a new buffer) when it fills up.
 * Each membership (slot, room id) is also one fixed-size record in `nodes`,
 * which knows where its entry sits in its run (so a leave is O(1)) and is
 * linked into the socket's list of rooms, in join order.
 *
 * ```
 *  members (Int32Array, MEMBER_STRIDE per entry), runs of `capacity` entries
 *  ┌─────────────────────────┬──────────────┬────────────┬──────────┬─
 *  │ room 0, shard 0 (used…) │ free in run  │ (garbage)  │ room 7/1 │ ...
 *  └─────────────────────────┴──────────────┴────────────┴──────────┴─
 *    entry: ┌──────┬──────┬────────────────┐
 *           │ slot │ node │ seq (float64)  │   slot NONE = a hole (node, seq stale)
 *           └──────┴──────┴────────────────┘
 *    seq: the membership's join sequence number; node: its record in `nodes`
 *  rooms (Int32Array, ROOM_SHARD_STRIDE per shard per room id)
 *  ┌──────────────────── room 0 ──────────────────┬── room 1 ──┬─
 *  │ start used count capacity │ start used ...   │  shard 0   │   shardCount runs per room
 *  │         shard 0           │    shard 1       │            │
 *  └───────────────────────────┴──────────────────┴────────────┴─
 *    run = members[start, start + used): `count` slots and `used - count` holes
 *  nodes (Int32Array, NODE_STRIDE per membership)
 *  ┌──────┬──────┬───────┬──────────┬──────────┐
 *  │ room │ slot │ entry │ sockNext │ sockPrev │  × nodeCapacity
 *  └──────┴──────┴───────┴──────────┴──────────┘
 *    entry = place of the membership's slot in its run: members[start + entry]
 *  sockets (Int32Array, SOCKET_STRIDE per slot)
 *  ┌──────┬──────┬───────┬───────┐
 *  │ head │ tail │ count │ alive │  × slotCapacity
 *  └──────┴──────┴───────┴───────┘
 * ```
 *
 * `head`, `tail`, `sockNext` and `sockPrev` are node indexes, `NONE` (-1) at
 * the ends; `start` is an entry index, NONE for a run of capacity 0. Workers
 * read only the slots of runs (and `alive`); `node` and `seq` serve the main
 * thread (moving entries, ordered merges and iterators), and sit next to the
 * slot so that a join writes one cache line. Only the main thread
 * writes, and it waits for the workers' answers before it writes again, so
 * readers need no locks. The one exception, a worker still reading after the
 * main thread gave up on it (timeout), is made harmless by bounded walks and
 * by discarding that answer. Because the tables live in SharedArrayBuffers
 * held by the main thread, a worker that dies takes nothing with it.
 */

/** End-of-list marker, "no such record" and a hole in a member run. */
export const NONE = -1;

export const NODE_STRIDE = 5;
export const NODE_ROOM = 0;
export const NODE_SLOT = 1;
export const NODE_ENTRY = 2;
export const NODE_SOCK_NEXT = 3;
export const NODE_SOCK_PREV = 4;

export const MEMBER_STRIDE = 4;
export const MEMBER_SLOT = 0;
export const MEMBER_NODE = 1;
/** Index of an entry's seq in a Float64Array over `members`: `entry * 2 + MEMBER_SEQ_F64`. */
export const MEMBER_SEQ_F64 = 1;

export const ROOM_SHARD_STRIDE = 4;
export const RUN_START = 0;
export const RUN_USED = 1;
export const RUN_COUNT = 2;
export const RUN_CAPACITY = 3;

export const SOCKET_STRIDE = 4;
export const LIST_HEAD = 0;
export const LIST_TAIL = 1;
export const LIST_COUNT = 2;
export const SOCKET_ALIVE = 3;

/** The buffers of one namespace's tables, as sent to a worker. */
export interface SharedTables {
  readonly shardCount: number;
  readonly members: SharedArrayBuffer;
  readonly nodes: SharedArrayBuffer;
  readonly rooms: SharedArrayBuffer;
  readonly sockets: SharedArrayBuffer;
}

/** Typed views over {@link SharedTables}; cheap to build on either thread. */
export interface TablesView {
  readonly shardCount: number;
  readonly members: Int32Array;
  readonly nodes: Int32Array;
  readonly rooms: Int32Array;
  readonly sockets: Int32Array;
}

export function viewTables(tables: SharedTables): TablesView {
  return {
    shardCount: tables.shardCount,
    members: new Int32Array(tables.members),
    nodes: new Int32Array(tables.nodes),
    rooms: new Int32Array(tables.rooms),
    sockets: new Int32Array(tables.sockets),
  };
}

/** Offset of the run header of `roomId` in `shard` inside `rooms`. */
export function roomRunOffset(shardCount: number, roomId: number, shard: number): number {
  return (roomId * shardCount + shard) * ROOM_SHARD_STRIDE;
}

/**
 * A broadcast's filter with rooms already interned. `rooms` empty and
 * `everyone` false means "no recipient" (every named room was unknown).
 */
export interface RecipientQuery {
  readonly everyone: boolean;
  readonly rooms: Int32Array;
  readonly except: Int32Array;
  /** Slots below this bound are the only ones that may be alive. */
  readonly slotHighWater: number;
}

/**
 * Per-thread scratch for {@link collectShard}: `marks[slot] === epoch` means
 * "already delivered or excluded in this query". Bumping the epoch clears all
 * marks at once, so a query costs nothing per socket it does not touch.
 */
export class RecipientMarks {
  private marks = new Uint32Array(0);
  private epoch = 0;

  /** Starts a query over slots below `slotCapacity`; returns its epoch. */
  begin(slotCapacity: number): number {
    if (this.marks.length < slotCapacity) {
      this.marks = new Uint32Array(Math.max(slotCapacity, this.marks.length * 2, 1024));
      this.epoch = 0;
    }
    if (this.epoch === 0xffffffff) {
      this.marks.fill(0);
      this.epoch = 0;
    }
    return ++this.epoch;
  }

  get array(): Uint32Array {
    return this.marks;
  }
}

/** Where the walk of a run stops in `members` (bounded by its size, for a racing reader). */
function runEnd(members: Int32Array, start: number, used: number): number {
  return Math.min((start + used) * MEMBER_STRIDE, members.length);
}

/** Marks every member of the `except` rooms in `shard` as already seen. */
export function markExcluded(view: TablesView, shard: number, except: Int32Array, seen: Uint32Array, epoch: number): void {
  const { members, rooms, shardCount } = view;
  for (let i = 0; i < except.length; i++) {
    const at = roomRunOffset(shardCount, except[i], shard);
    const start = rooms[at + RUN_START];
    const end = runEnd(members, start, rooms[at + RUN_USED]);
    for (let e = Math.max(start, 0) * MEMBER_STRIDE; e < end; e += MEMBER_STRIDE) {
      const slot = members[e];
      if (slot !== NONE) seen[slot] = epoch;
    }
  }
}

/**
 * Writes the live slots `first`, `first + step`, ... below `slotHighWater`
 * not marked with `epoch` into `out` from `n` on, in ascending order; returns
 * the new end. A shard's part of "everyone" is `(shard, shardCount)`; the
 * main thread answering alone uses `(0, 1)` after marking every shard's
 * exclusions, so that sockets come in slot order (see {@link mergeAscending}).
 */
export function collectAlive(
  sockets: Int32Array,
  first: number,
  step: number,
  slotHighWater: number,
  seen: Uint32Array,
  epoch: number,
  out: Int32Array,
  n: number,
): number {
  for (let slot = first; slot < slotHighWater; slot += step) {
    if (sockets[slot * SOCKET_STRIDE + SOCKET_ALIVE] === 1 && seen[slot] !== epoch) out[n++] = slot;
  }
  return n;
}

/**
 * Merges ascending runs of slots into one ascending sequence in `out`; returns
 * its length. Run `i` is `counts[i]` slots from `from[starts[i]]` on. A
 * broadcast to everyone is delivered in slot order: slots are handed out in
 * connection order, so the Socket objects are visited roughly in the order
 * they sit in memory, which costs far fewer cache misses than visiting every
 * `shardCount`-th socket `shardCount` times over.
 */
export function mergeAscending(from: Int32Array, starts: Int32Array, counts: Int32Array, out: Int32Array): number {
  const runs = starts.length;
  const pos = new Int32Array(runs);
  const end = new Int32Array(runs);
  let live = 0;
  for (let i = 0; i < runs; i++) {
    if (counts[i] === 0) continue;
    pos[live] = starts[i];
    end[live] = starts[i] + counts[i];
    live++;
  }
  let n = 0;
  while (live > 1) {
    let best = 0;
    let bestSlot = from[pos[0]];
    for (let i = 1; i < live; i++) {
      const slot = from[pos[i]];
      if (slot < bestSlot) {
        best = i;
        bestSlot = slot;
      }
    }
    out[n++] = bestSlot;
    if (++pos[best] === end[best]) {
      live--;
      pos[best] = pos[live];
      end[best] = end[live];
    }
  }
  if (live === 1) {
    out.set(from.subarray(pos[0], end[0]), n);
    n += end[0] - pos[0];
  }
  return n;
}

/**
 * Writes the slots of `shard` that the query reaches into `out` from
 * `offset` on, each once, and returns the new end offset.
 *
 * Walks are bounded by the size of `members` so that a reader racing a
 * writer (only possible for an answer that was abandoned after a timeout, and
 * then discarded) ends instead of running off.
 */
export function collectShard(
  view: TablesView,
  shard: number,
  query: RecipientQuery,
  marks: RecipientMarks,
  out: Int32Array,
  offset: number,
): number {
  const { members, rooms, sockets, shardCount } = view;
  let n = offset;

  // One room and nothing excluded (the own-id room, a plain `to(room)`):
  // the run holds each socket once, no marks needed.
  if (!query.everyone && query.rooms.length === 1 && query.except.length === 0) {
    const at = roomRunOffset(shardCount, query.rooms[0], shard);
    const start = rooms[at + RUN_START];
    const end = runEnd(members, start, rooms[at + RUN_USED]);
    for (let e = Math.max(start, 0) * MEMBER_STRIDE; e < end; e += MEMBER_STRIDE) {
      const slot = members[e];
      if (slot !== NONE) out[n++] = slot;
    }
    return n;
  }

  const epoch = marks.begin(query.slotHighWater);
  const seen = marks.array;
  markExcluded(view, shard, query.except, seen, epoch);

  if (query.everyone) return collectAlive(sockets, shard, shardCount, query.slotHighWater, seen, epoch, out, n);

  for (let i = 0; i < query.rooms.length; i++) {
    const at = roomRunOffset(shardCount, query.rooms[i], shard);
    const start = rooms[at + RUN_START];
    const end = runEnd(members, start, rooms[at + RUN_USED]);
    for (let e = Math.max(start, 0) * MEMBER_STRIDE; e < end; e += MEMBER_STRIDE) {
      const slot = members[e];
      if (slot !== NONE && seen[slot] !== epoch) {
        seen[slot] = epoch;
        out[n++] = slot;
      }
    }
  }
  return n;
}
