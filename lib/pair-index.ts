/**
 * The index (room id, slot) -> node of the memberships of sockets in many
 * rooms, on the main thread only: what keeps `has`, `join` and `leave` O(1)
 * for a socket in thousands of rooms. A socket in at most INDEXED_ABOVE
 * rooms (`member-lists.ts`) is not in it: walking its few nodes costs less
 * than an entry here, which is 8 bytes and, at 3/8 to 3/4 full with every
 * entry written, about 15 bytes of RSS per membership.
 *
 * Its entries (node, pair hash) are `hashed-entries.ts`'s, kept at most 3/4
 * and at least 1/8 full above the minimum size.
 */
import { HashedEntries } from "./hashed-entries";
import { NODE_ROOM, NODE_SLOT, NODE_STRIDE, NONE } from "./shared-tables";

export function hashPair(roomId: number, slot: number): number {
  let h = Math.imul(roomId, 0x9e3779b1) ^ Math.imul(slot + 0x632be5ab, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12);
}

export class PairIndex extends HashedEntries {
  constructor() {
    super(true);
  }

  /** Position of (roomId, slot), or -1; `nodes` is the nodes table the pairs' nodes live in. */
  find(roomId: number, slot: number, nodes: Int32Array): number {
    const entries = this.entries;
    const mask = this.mask;
    const hash = hashPair(roomId, slot);
    for (let at = hash & mask; ; at = (at + 1) & mask) {
      const node = entries[2 * at];
      if (node === NONE) return -1;
      // The node's own fields only on a full hash match: no cache miss per probe.
      if (entries[2 * at + 1] === hash) {
        const base = node * NODE_STRIDE;
        if (nodes[base + NODE_ROOM] === roomId && nodes[base + NODE_SLOT] === slot) return at;
      }
    }
  }

  /** The node at a position `find` returned. */
  nodeAt(position: number): number {
    return this.entries[2 * position];
  }

  /**
   * The entry a lookup of (roomId, slot) reads first. Only a hint, read
   * ahead of a batch of joins or leaves so that their cache misses overlap.
   */
  homeEntry(roomId: number, slot: number): number {
    return this.entries[2 * (hashPair(roomId, slot) & this.mask)];
  }

  /** Adds (roomId, slot) -> node; the pair must not be there. */
  insert(node: number, roomId: number, slot: number): void {
    this.insertEntry(node, hashPair(roomId, slot));
  }

  /** Removes the pair at `position` (from `find`). */
  deleteAt(position: number): void {
    this.deleteEntryAt(position);
  }
}
