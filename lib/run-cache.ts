/**
 * The runs of `shared-tables.ts`: contiguous copies of the slots of lists
 * that are walked again unchanged, so that broadcasting to a room costs a
 * cache miss per sixteen members rather than one per member. Main thread
 * only, and only between queries (before a query is posted to the workers,
 * or for a query answered on this thread alone): the runs never change while
 * a worker reads them.
 *
 * A list gets a run on its second walk without a change in between (the
 * first marks it WALKED), so rooms whose membership changes between every
 * broadcast pay nothing for copies they would not reuse. Runs are appended
 * to one arena; a join or a leave only marks the list's run stale (its room
 * in the arena is not reused), and when the arena is full every run is
 * dropped at once and the arena reused, twice as big if more than half of
 * it was still live, up to about one entry per membership.
 */
import {
  LIST_COUNT,
  LIST_HEAD,
  LIST_RUN,
  NODE_ROOM_NEXT,
  NODE_SLOT,
  NODE_STRIDE,
  NONE,
  roomListOffset,
  WALKED,
  type RecipientQuery,
} from "./shared-tables";
import { IntStack } from "./compact-containers";
import { INITIAL_RUNS, type TableBuffers } from "./table-buffers";

/** Lists shorter than this are walked node by node: a run would save little. */
export const MIN_RUN_MEMBERS = 4;

export class RunCache {
  private readonly buffers: TableBuffers;
  /** Arena entries in use (live runs and stale ones). */
  private used = 0;
  /** The list headers (offsets in `rooms`) given a run since the arena was last emptied. */
  private readonly owners = new IntStack();

  constructor(buffers: TableBuffers) {
    this.buffers = buffers;
  }

  /**
   * Prepares the lists a query walks, in every shard: its rooms (unless it
   * goes to everyone, which walks no room list) and its except rooms.
   */
  prepareQuery(query: RecipientQuery, memberships: number): void {
    const lastShard = this.buffers.shardCount - 1;
    if (!query.everyone) this.prepare(query.rooms, 0, lastShard, memberships);
    if (query.except.length > 0) this.prepare(query.except, 0, lastShard, memberships);
  }

  /**
   * Gives a run to each list of `roomIds` in the shards [firstShard,
   * lastShard] that is walked the second time unchanged; marks the others
   * WALKED. `memberships` bounds the arena's growth.
   */
  prepare(roomIds: Int32Array, firstShard: number, lastShard: number, memberships: number): void {
    for (let i = 0; i < roomIds.length; i++) {
      for (let shard = firstShard; shard <= lastShard; shard++) {
        const { roomLists, rooms } = this.buffers.view;
        // EMPTY_LIST (count 0) is never written: it is below MIN_RUN_MEMBERS.
        const at = roomListOffset(roomLists, roomIds[i], shard);
        const run = rooms[at + LIST_RUN];
        if (run >= 0 || rooms[at + LIST_COUNT] < MIN_RUN_MEMBERS) continue;
        if (run === NONE) rooms[at + LIST_RUN] = WALKED;
        else this.copy(at, memberships);
      }
    }
  }

  /** Drops every run (the arena itself is kept). */
  clear(): void {
    this.used = 0;
    this.owners.clear();
  }

  private copy(at: number, memberships: number): void {
    const count = this.buffers.view.rooms[at + LIST_COUNT];
    if (this.used + count > this.buffers.view.runs.length) this.makeRoom(count, memberships);
    const { nodes, rooms, runs } = this.buffers.view;
    if (this.used + count > runs.length) return; // bigger than the arena may grow: walked node by node
    const start = this.used;
    let end = start;
    for (let node = rooms[at + LIST_HEAD]; node !== NONE && end < start + count; node = nodes[node * NODE_STRIDE + NODE_ROOM_NEXT]) {
      runs[end++] = nodes[node * NODE_STRIDE + NODE_SLOT];
    }
    if (end !== start + count) throw new Error(`internal: list at ${at} holds ${end - start} nodes, counts ${count}`);
    this.used = end;
    rooms[at + LIST_RUN] = start;
    this.owners.push(at);
  }

  /** Empties the arena for a run of `count` entries, growing it if it was mostly live. */
  private makeRoom(count: number, memberships: number): void {
    const rooms = this.buffers.view.rooms;
    let live = 0;
    for (let at = this.owners.pop(); at !== NONE; at = this.owners.pop()) {
      if (rooms[at + LIST_RUN] >= 0) {
        live += rooms[at + LIST_COUNT];
        rooms[at + LIST_RUN] = NONE;
      }
    }
    this.used = 0;
    const limit = Math.max(INITIAL_RUNS, memberships);
    let size = this.buffers.view.runs.length;
    while ((live * 2 > size || count > size) && size < limit) size *= 2;
    if (size > this.buffers.view.runs.length) this.buffers.replaceRuns(size);
  }
}
