/**
 * The index (room id, slot) -> node of the memberships of sockets in many
 * rooms, on the main thread only: what keeps `has`, `join` and `leave` O(1)
 * for a socket in thousands of rooms. A socket in at most INDEXED_ABOVE
 * rooms (`member-lists.ts`) is not in it: walking its few nodes costs less
 * than an entry here, which is 8 bytes and, at 3/8 to 3/4 full with every
 * entry written, about 15 bytes of RSS per membership.
 *
 * Open addressing with linear probing. Each entry is two ints, the node and
 * the pair's hash, so that probing and backward-shift deletes compare hashes
 * in place instead of reading the nodes (a cache miss each, at scale). Kept
 * at most 3/4 full, and at least 1/8 full above the minimum size.
 */
import { newIndexEntries } from "./compact-containers";
import { NODE_ROOM, NODE_SLOT, NODE_STRIDE, NONE } from "./shared-tables";

/** Entries of the smallest index (it never shrinks below). */
const MIN_ENTRIES = 1024;


export function hashPair(roomId: number, slot: number): number {
  let h = Math.imul(roomId, 0x9e3779b1) ^ Math.imul(slot + 0x632be5ab, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12);
}

export class PairIndex {
  private entries = newIndexEntries(MIN_ENTRIES);
  private mask = MIN_ENTRIES - 1;
  private count = 0;

  /** Pairs held: the number of memberships. */
  get size(): number {
    return this.count;
  }

  /** Entries allocated (a power of two). */
  get capacity(): number {
    return this.mask + 1;
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
    this.count++;
    if (this.count * 4 > (this.mask + 1) * 3) this.rehash((this.mask + 1) * 2);
    const entries = this.entries;
    const mask = this.mask;
    const hash = hashPair(roomId, slot);
    let at = hash & mask;
    while (entries[2 * at] !== NONE) at = (at + 1) & mask;
    entries[2 * at] = node;
    entries[2 * at + 1] = hash;
  }

  /** Removes the pair at `hole` (from `find`), by backward shift: no tombstones to pile up. */
  deleteAt(hole: number): void {
    const entries = this.entries;
    const mask = this.mask;
    for (let at = (hole + 1) & mask; entries[2 * at] !== NONE; at = (at + 1) & mask) {
      const home = entries[2 * at + 1] & mask;
      const between = hole <= at ? home > hole && home <= at : home > hole || home <= at;
      if (!between) {
        entries[2 * hole] = entries[2 * at];
        entries[2 * hole + 1] = entries[2 * at + 1];
        hole = at;
      }
    }
    entries[2 * hole] = NONE;
    if (this.mask + 1 > MIN_ENTRIES && this.count * 8 < this.mask + 1) this.rehash((this.mask + 1) / 2);
    this.count--;
  }

  clear(): void {
    this.entries = newIndexEntries(MIN_ENTRIES);
    this.mask = MIN_ENTRIES - 1;
    this.count = 0;
  }

  private rehash(size: number): void {
    const old = this.entries;
    const entries = newIndexEntries(size);
    const mask = size - 1;
    for (let i = 0; i < old.length; i += 2) {
      const node = old[i];
      if (node === NONE) continue;
      const hash = old[i + 1];
      let at = hash & mask;
      while (entries[2 * at] !== NONE) at = (at + 1) & mask;
      entries[2 * at] = node;
      entries[2 * at + 1] = hash;
    }
    this.entries = entries;
    this.mask = mask;
  }
}
