/**
 * The shared-memory layout of one namespace's membership, and the one function
 * that reads it to answer a broadcast. Both the main thread and the shard
 * workers import this module: the layout is described here and nowhere else.
 *
 * Sockets and rooms are interned to integers on the main thread: a socket is
 * a *slot*, a room is a *room id*. Each membership (slot, room id) is one
 * fixed-size record in `nodes`, linked into two doubly linked lists: the
 * room's list for the socket's shard, and the socket's list of rooms.
 * A socket's shard is `slot % shardCount`, so the shards partition the
 * sockets and their answers never overlap: merging them needs no dedup.
 *
 * ```
 *  nodes (Int32Array, NODE_STRIDE per membership)
 *  ┌──────┬──────┬──────────┬──────────┬──────────┬──────────┐
 *  │ room │ slot │ roomNext │ roomPrev │ sockNext │ sockPrev │  × nodeCapacity
 *  └──────┴──────┴──────────┴──────────┴──────────┴──────────┘
 *  roomLists (Int32Array, ROOM_LISTS_STRIDE per room id): where its lists are
 *  ┌──────────┬───────────┐
 *  │ listsAt  │ onlyShard │  × roomCapacity
 *  └──────────┴───────────┘
 *  rooms (Int32Array, ROOM_SHARD_STRIDE per list header): at 0 EMPTY_LIST,
 *  always empty; from a room's listsAt on, shardCount headers (onlyShard
 *  EVERY_SHARD) or one header, its list in onlyShard
 *  ┌─────────────────────┬─────────────────────┬─────┬─────────────────────┬─
 *  │ head tail count run │ head tail count run │ ... │ head tail count run │
 *  │ EMPTY_LIST          │ room a, shard 0     │     │ room b (shard 1)    │
 *  └─────────────────────┴─────────────────────┴─────┴─────────────────────┴─
 *  runs (Int32Array): the slots of some lists, each list's `count` slots
 *  contiguous from its `run` on (see below)
 *  sockets (Int32Array, SOCKET_STRIDE per slot)
 *  ┌──────┬──────┬───────┬───────┐
 *  │ head │ tail │ count │ alive │  × slotCapacity
 *  └──────┴──────┴───────┴───────┘
 * ```
 *
 * `head`, `tail`, `*Next` and `*Prev` are node indexes, `NONE` (-1) at the
 * ends. A socket's `count` is its number of rooms; the main thread finds the
 * node of (slot, room) by walking the socket's list while `count` is small,
 * and through its pair index (`pair-index.ts`, not shared) for a socket that
 * went above INDEXED_ABOVE rooms (`member-lists.ts`).
 *
 * A socket's own-id room (socket.io puts every socket in the room named
 * after its id) nearly always holds that socket alone: it gets one list
 * header, in its socket's shard, instead of one per shard; the other shards
 * read the always-empty header `EMPTY_LIST` for it. A member joining it from
 * another shard first gives it a header in every shard (`room-lists.ts`).
 *
 * Following a list is a cache miss per member once the table outgrows the
 * caches. So a list that is walked again unchanged gets a *run*: a copy of
 * its slots, contiguous in `runs`, that walks read instead (sixteen members
 * per cache line). `run` is the run's start, or `NONE` (no run; the list
 * changed since it was last walked) or `WALKED` (walked once unchanged: the
 * next walk on the main thread copies it). A join or a leave sets it back to
 * `NONE` in the header it writes anyway, so churn costs no more than before,
 * and only the lists of rooms that are broadcast to take room in `runs`
 * (the main thread's `RunCache` owns it; it never changes during a query). Only the main thread writes, and it waits for the workers' answers
 * before it writes again, so readers need no locks. The one exception, a
 * worker still reading after the main thread gave up on it (timeout), is
 * made harmless by bounded walks and by discarding that answer. Because the tables live in SharedArrayBuffers held by the main
 * thread, a worker that dies takes nothing with it.
 */

/** End-of-list marker and "no such record". */
export const NONE = -1;

export const NODE_STRIDE = 6;
export const NODE_ROOM = 0;
export const NODE_SLOT = 1;
export const NODE_ROOM_NEXT = 2;
export const NODE_ROOM_PREV = 3;
export const NODE_SOCK_NEXT = 4;
export const NODE_SOCK_PREV = 5;

export const ROOM_LISTS_STRIDE = 2;
export const LISTS_AT = 0;
export const LISTS_ONLY_SHARD = 1;
/** `LISTS_ONLY_SHARD` of a room with a list header in every shard. */
export const EVERY_SHARD = -1;
/** Offset in `rooms` of the header that stays empty: a one-shard room's list in the other shards. */
export const EMPTY_LIST = 0;

export const ROOM_SHARD_STRIDE = 4;
export const LIST_HEAD = 0;
export const LIST_TAIL = 1;
export const LIST_COUNT = 2;
export const LIST_RUN = 3;
/** `LIST_RUN` of a list walked once since it last changed (its next walk on the main thread copies it to a run). */
export const WALKED = -2;

export const SOCKET_STRIDE = 4;
export const SOCKET_ALIVE = 3;

/** The buffers of one namespace's tables, as sent to a worker. */
export interface SharedTables {
  readonly shardCount: number;
  readonly nodes: SharedArrayBuffer;
  readonly roomLists: SharedArrayBuffer;
  readonly rooms: SharedArrayBuffer;
  readonly sockets: SharedArrayBuffer;
  readonly runs: SharedArrayBuffer;
}

/** Typed views over {@link SharedTables}; cheap to build on either thread. */
export interface TablesView {
  readonly shardCount: number;
  readonly nodes: Int32Array;
  readonly roomLists: Int32Array;
  readonly rooms: Int32Array;
  readonly sockets: Int32Array;
  readonly runs: Int32Array;
}

/**
 * A fixed-length view of all of `buffer`: over a growable buffer, a view
 * without a length would track the buffer's length, and V8 compiles element
 * access on such views less well.
 */
function int32View(buffer: SharedArrayBuffer): Int32Array {
  return new Int32Array(buffer, 0, buffer.byteLength >> 2);
}

export function viewTables(tables: SharedTables): TablesView {
  return {
    shardCount: tables.shardCount,
    nodes: int32View(tables.nodes),
    roomLists: int32View(tables.roomLists),
    rooms: int32View(tables.rooms),
    sockets: int32View(tables.sockets),
    runs: int32View(tables.runs),
  };
}

/** Offset of the list header of `roomId` in `shard` inside `rooms` (`EMPTY_LIST` if it has no list there). */
export function roomListOffset(roomLists: Int32Array, roomId: number, shard: number): number {
  const at = roomId * ROOM_LISTS_STRIDE;
  const onlyShard = roomLists[at + LISTS_ONLY_SHARD];
  if (onlyShard === EVERY_SHARD) return roomLists[at + LISTS_AT] + shard * ROOM_SHARD_STRIDE;
  return onlyShard === shard ? roomLists[at + LISTS_AT] : EMPTY_LIST;
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
 * Per-thread scratch for {@link collectShard}: one bit per slot, set for
 * "already delivered or excluded in this query". A bitmap (128 KiB for a
 * million slots) stays in the CPU's cache where a word per slot would not,
 * so marking a recipient is not one more cache miss. Each query starts
 * clear: a query that is not "everyone" clears its own marks, as many words
 * as it marked ({@link clearSlots}, {@link drainAscending}, {@link clearExcluded});
 * "everyone" leaves the bitmap dirty and the next {@link begin} clears the
 * words it used (a pass over every slot, as "everyone" itself is).
 */
export class RecipientMarks {
  private words = new Int32Array(0);
  /** Words below this may hold bits left by the last query. */
  private dirtyWords = 0;

  /** Starts a query over slots below `slotBound`; returns its bitmap, all clear. */
  begin(slotBound: number): Int32Array {
    const needed = (slotBound + 31) >>> 5;
    if (this.words.length < needed) {
      this.words = new Int32Array(Math.max(needed, this.words.length * 2, 32));
    } else if (this.dirtyWords > 0) {
      this.words.fill(0, 0, this.dirtyWords);
    }
    this.dirtyWords = Math.max(needed, 1);
    return this.words;
  }

  /**
   * Ends a query whose only marks left are the slots `slots[from..to)`:
   * clears their words, leaving the bitmap clear.
   */
  clearSlots(slots: Int32Array, from: number, to: number): void {
    const words = this.words;
    for (let i = from; i < to; i++) words[slots[i] >>> 5] = 0;
    this.dirtyWords = 0;
  }

  /**
   * Ends a query whose only marks are its `count` recipients, below
   * `slotBound`, when reading every word of the bitmap costs little next to
   * them: writes them into `out` from `n` on in ascending slot order,
   * clearing the bitmap as it goes, and returns the new end; else returns
   * -1 and leaves the bitmap as it is. Slots are handed out in connection
   * order, so ascending slots visit the Socket objects roughly in the order
   * they sit in memory: for a big union among many sockets, far fewer cache
   * misses in the writes than the rooms' order.
   */
  drainAscending(slotBound: number, count: number, out: Int32Array, n: number): number {
    const used = (slotBound + 31) >>> 5;
    if (used > count * WORDS_READ_PER_RECIPIENT) return -1;
    const words = this.words;
    for (let w = 0; w < used; w++) {
      let word = words[w];
      if (word === 0) continue;
      words[w] = 0;
      const base = w << 5;
      while (word !== 0) {
        const lowest = word & -word;
        out[n++] = base + 31 - Math.clz32(lowest);
        word ^= lowest;
      }
    }
    this.dirtyWords = 0;
    return n;
  }

  /** Ends a query that has cleared its own marks (see {@link clearExcluded}). */
  cleared(): void {
    this.dirtyWords = 0;
  }
}

/**
 * Bitmap words {@link RecipientMarks.drainAscending} may read per recipient:
 * a word read is a sequential load, a recipient's write touches its Socket
 * (a likely cache miss in the rooms' order, a likely hit in slot order).
 */
const WORDS_READ_PER_RECIPIENT = 16;

/** Whether `slot` is marked in `bits`. */
export function isMarked(bits: Int32Array, slot: number): boolean {
  return (bits[slot >>> 5] & (1 << (slot & 31))) !== 0;
}

/** Appends `slot` to `out` at `n` unless it is marked in `bits` (then marks it); returns the new end. */
function appendUnmarked(slot: number, bits: Int32Array, out: Int32Array, n: number): number {
  const word = slot >>> 5;
  const bit = 1 << (slot & 31);
  if ((bits[word] & bit) !== 0) return n;
  bits[word] |= bit;
  out[n] = slot;
  return n + 1;
}

/** Except rooms walked at once by {@link markExcluded}. */
const EXCEPT_LANES = 4;

/**
 * Marks every member of the `except` rooms in `shard` as already seen: from
 * their runs, or for lists without one, walked EXCEPT_LANES at a time, in
 * lockstep: each list is a chain of dependent cache misses, and independent
 * chains overlap them.
 */
export function markExcluded(view: TablesView, shard: number, except: Int32Array, bits: Int32Array): void {
  updateExcluded(view, shard, except, bits, -1);
}

/**
 * Clears the words of every member of the `except` rooms in `shard`: after
 * a query whose other marks are cleared too (or were never set), a walk as
 * long as the marking instead of a clear of the whole bitmap.
 */
export function clearExcluded(view: TablesView, shard: number, except: Int32Array, bits: Int32Array): void {
  updateExcluded(view, shard, except, bits, 0);
}

/**
 * The walk of {@link markExcluded} and {@link clearExcluded}: each member's
 * word becomes `(word | bit) & keep`, that is marked (`keep` -1) or
 * cleared whole (`keep` 0), with no branch in the walk.
 */
function updateExcluded(view: TablesView, shard: number, except: Int32Array, bits: Int32Array, keep: number): void {
  const { nodes, roomLists, rooms, runs } = view;
  const maxSteps = nodes.length / NODE_STRIDE;
  const lists = listsWithoutRun(view, shard, except);
  for (let i = 0; i < except.length; i++) {
    const at = roomListOffset(roomLists, except[i], shard);
    const run = rooms[at + LIST_RUN];
    if (run < 0) continue;
    const end = Math.min(run + rooms[at + LIST_COUNT], runs.length);
    for (let r = run; r < end; r++) update(bits, runs[r], keep);
  }
  for (let first = 0; first < lists.length; first += EXCEPT_LANES) {
    let a = laneHead(roomLists, rooms, shard, lists, first);
    let b = laneHead(roomLists, rooms, shard, lists, first + 1);
    let c = laneHead(roomLists, rooms, shard, lists, first + 2);
    let d = laneHead(roomLists, rooms, shard, lists, first + 3);
    for (let steps = 0; (a !== NONE || b !== NONE || c !== NONE || d !== NONE) && steps < maxSteps; steps++) {
      if (a !== NONE) {
        update(bits, nodes[a * NODE_STRIDE + NODE_SLOT], keep);
        a = nodes[a * NODE_STRIDE + NODE_ROOM_NEXT];
      }
      if (b !== NONE) {
        update(bits, nodes[b * NODE_STRIDE + NODE_SLOT], keep);
        b = nodes[b * NODE_STRIDE + NODE_ROOM_NEXT];
      }
      if (c !== NONE) {
        update(bits, nodes[c * NODE_STRIDE + NODE_SLOT], keep);
        c = nodes[c * NODE_STRIDE + NODE_ROOM_NEXT];
      }
      if (d !== NONE) {
        update(bits, nodes[d * NODE_STRIDE + NODE_SLOT], keep);
        d = nodes[d * NODE_STRIDE + NODE_ROOM_NEXT];
      }
    }
  }
}

/** Marks `slot` in `bits` (`keep` -1), or clears its word (`keep` 0). */
function update(bits: Int32Array, slot: number, keep: number): void {
  const word = slot >>> 5;
  bits[word] = (bits[word] | (1 << (slot & 31))) & keep;
}

/** Scratch of {@link listsWithoutRun}, per thread. */
let listScratch = new Int32Array(64);

/**
 * The room ids among `roomIds` whose list in `shard` has no run (to walk
 * node by node); a view of per-thread scratch, valid until the next call.
 */
function listsWithoutRun(view: TablesView, shard: number, roomIds: Int32Array): Int32Array {
  const { roomLists, rooms } = view;
  if (listScratch.length < roomIds.length) listScratch = new Int32Array(Math.max(roomIds.length, listScratch.length * 2));
  let n = 0;
  for (let i = 0; i < roomIds.length; i++) {
    if (rooms[roomListOffset(roomLists, roomIds[i], shard) + LIST_RUN] < 0) listScratch[n++] = roomIds[i];
  }
  return listScratch.subarray(0, n);
}

/** The head of the list of `ids[i]` in `shard`, or NONE past the end of `ids`. */
function laneHead(roomLists: Int32Array, rooms: Int32Array, shard: number, ids: Int32Array, i: number): number {
  return i < ids.length ? rooms[roomListOffset(roomLists, ids[i], shard) + LIST_HEAD] : NONE;
}

/** Rooms of a union walked at once by {@link collectUnion}. */
const UNION_LANES = 4;

/**
 * Writes the members of the `roomIds` rooms in `shard` not marked in `bits`
 * into `out` from `n` on, each once (marking them), and returns the new end.
 * Lists with a run are read from their runs; the others, as in
 * {@link markExcluded}, are walked UNION_LANES at a time in lockstep, so that
 * their cache misses overlap instead of queueing one behind the other.
 * Recipients come in no particular order.
 */
export function collectUnion(view: TablesView, shard: number, roomIds: Int32Array, bits: Int32Array, out: Int32Array, n: number): number {
  const { nodes, roomLists, rooms, runs } = view;
  const maxSteps = nodes.length / NODE_STRIDE;
  const lists = listsWithoutRun(view, shard, roomIds);
  for (let i = 0; i < roomIds.length; i++) {
    const at = roomListOffset(roomLists, roomIds[i], shard);
    const run = rooms[at + LIST_RUN];
    if (run < 0) continue;
    const end = Math.min(run + rooms[at + LIST_COUNT], runs.length);
    for (let r = run; r < end; r++) n = appendUnmarked(runs[r], bits, out, n);
  }
  for (let first = 0; first < lists.length; first += UNION_LANES) {
    let a = laneHead(roomLists, rooms, shard, lists, first);
    let b = laneHead(roomLists, rooms, shard, lists, first + 1);
    let c = laneHead(roomLists, rooms, shard, lists, first + 2);
    let d = laneHead(roomLists, rooms, shard, lists, first + 3);
    for (let steps = 0; (a !== NONE || b !== NONE || c !== NONE || d !== NONE) && steps < maxSteps; steps++) {
      if (a !== NONE) {
        n = appendUnmarked(nodes[a * NODE_STRIDE + NODE_SLOT], bits, out, n);
        a = nodes[a * NODE_STRIDE + NODE_ROOM_NEXT];
      }
      if (b !== NONE) {
        n = appendUnmarked(nodes[b * NODE_STRIDE + NODE_SLOT], bits, out, n);
        b = nodes[b * NODE_STRIDE + NODE_ROOM_NEXT];
      }
      if (c !== NONE) {
        n = appendUnmarked(nodes[c * NODE_STRIDE + NODE_SLOT], bits, out, n);
        c = nodes[c * NODE_STRIDE + NODE_ROOM_NEXT];
      }
      if (d !== NONE) {
        n = appendUnmarked(nodes[d * NODE_STRIDE + NODE_SLOT], bits, out, n);
        d = nodes[d * NODE_STRIDE + NODE_ROOM_NEXT];
      }
    }
  }
  return n;
}

/**
 * Writes the live slots `first`, `first + step`, ... below `slotHighWater`
 * not marked in `bits` (if given) into `out` from `n` on, in ascending order; returns
 * the new end. A shard's part of "everyone" is `(shard, shardCount)`; the
 * main thread answering alone uses `(0, 1)` after marking every shard's
 * exclusions, so that sockets come in slot order (see {@link mergeAscending}).
 */
export function collectAlive(
  sockets: Int32Array,
  first: number,
  step: number,
  slotHighWater: number,
  bits: Int32Array | undefined,
  out: Int32Array,
  n: number,
): number {
  if (bits === undefined) {
    // Nothing excluded: no bitmap to clear before, nor to read per slot.
    for (let slot = first; slot < slotHighWater; slot += step) {
      if (sockets[slot * SOCKET_STRIDE + SOCKET_ALIVE] === 1) out[n++] = slot;
    }
    return n;
  }
  for (let slot = first; slot < slotHighWater; slot += step) {
    if (sockets[slot * SOCKET_STRIDE + SOCKET_ALIVE] === 1 && (bits[slot >>> 5] & (1 << (slot & 31))) === 0) out[n++] = slot;
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
 * Walks are bounded by the node capacity so that a reader racing a writer
 * (only possible for an answer that was abandoned after a timeout, and then
 * discarded) ends instead of looping.
 */
export function collectShard(
  view: TablesView,
  shard: number,
  query: RecipientQuery,
  marks: RecipientMarks,
  out: Int32Array,
  offset: number,
): number {
  const { sockets, shardCount } = view;
  const oneRoom = !query.everyone && query.rooms.length === 1;

  // One room and nothing excluded (the own-id room, a plain `to(room)`):
  // the list holds each socket once, no marks needed.
  if (oneRoom && query.except.length === 0) return collectList(view, shard, query.rooms[0], undefined, out, offset);

  if (query.everyone && query.except.length === 0) return collectAlive(sockets, shard, shardCount, query.slotHighWater, undefined, out, offset);
  const bits = marks.begin(query.slotHighWater);
  if (query.everyone) {
    markExcluded(view, shard, query.except, bits);
    return collectAlive(sockets, shard, shardCount, query.slotHighWater, bits, out, offset);
  }
  if (query.except.length === 0) {
    return endUnion(marks, query.slotHighWater, out, offset, collectUnion(view, shard, query.rooms, bits, out, offset));
  }
  markExcluded(view, shard, query.except, bits);
  // One room minus a few (socket.to(room): the sender's own-id room): its
  // list holds each socket once, so only the excluded are marked.
  const end = oneRoom
    ? collectList(view, shard, query.rooms[0], bits, out, offset)
    : collectUnion(view, shard, query.rooms, bits, out, offset);
  // The marks cleared as many words as were marked, not the whole bitmap
  // (for a socket.to(room) among 100k sockets, most of its cost).
  clearExcluded(view, shard, query.except, bits);
  if (oneRoom) marks.cleared();
  else marks.clearSlots(out, offset, end);
  return end;
}

/**
 * Ends a union whose only marks are its recipients `out[from..end)`: rewrites
 * them in ascending slot order if the bitmap is dense enough (see
 * {@link RecipientMarks.drainAscending}), else clears their marks; returns
 * the end.
 */
export function endUnion(marks: RecipientMarks, slotHighWater: number, out: Int32Array, from: number, end: number): number {
  const ascending = marks.drainAscending(slotHighWater, end - from, out, from);
  if (ascending >= 0) return ascending;
  marks.clearSlots(out, from, end);
  return end;
}

/**
 * Writes the members of `roomId` in `shard` into `out` from `n` on, except
 * those marked in `bits` if given, from its run or its list; returns the new
 * end. A list holds each socket once: nothing is marked.
 */
function collectList(view: TablesView, shard: number, roomId: number, bits: Int32Array | undefined, out: Int32Array, n: number): number {
  const { nodes, roomLists, rooms, runs } = view;
  const at = roomListOffset(roomLists, roomId, shard);
  const run = rooms[at + LIST_RUN];
  if (run >= 0) {
    const end = Math.min(run + rooms[at + LIST_COUNT], runs.length);
    if (bits === undefined) {
      out.set(runs.subarray(run, end), n);
      return n + end - run;
    }
    for (let r = run; r < end; r++) {
      const slot = runs[r];
      if ((bits[slot >>> 5] & (1 << (slot & 31))) === 0) out[n++] = slot;
    }
    return n;
  }
  const maxSteps = nodes.length / NODE_STRIDE;
  let node = rooms[at + LIST_HEAD];
  for (let steps = 0; node !== NONE && steps < maxSteps; steps++) {
    const slot = nodes[node * NODE_STRIDE + NODE_SLOT];
    if (bits === undefined || (bits[slot >>> 5] & (1 << (slot & 31))) === 0) out[n++] = slot;
    node = nodes[node * NODE_STRIDE + NODE_ROOM_NEXT];
  }
  return n;
}
