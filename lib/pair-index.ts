/**
 * The index (room id, slot) -> node of every membership, on the main thread
 * only: what makes `has`, `join` and `leave` O(1) whatever the room and
 * socket sizes.
 *
 * Open addressing with linear probing, 6 bytes an entry (three uint16):
 *
 * ```
 *  ┌────────────────────────────────┬─────────┬─────────┐
 *  │ tag: displacement, fingerprint │ node lo │ node hi │  × size
 *  └────────────────────────────────┴─────────┴─────────┘
 * ```
 *
 * The tag holds the entry's distance from its home position (high 10 bits)
 * and the top FINGERPRINT_BITS of the pair's hash, which the home does not use. A probe
 * compares tags in place: a tag matches only an entry with the same home and
 * fingerprint, so the node itself (a cache miss, at scale) is read about once
 * per lookup; and backward-shift deletes know each entry's home without
 * reading its node. Growing needs hash bits the tag does not keep, so it
 * reads each pair back from its node. Kept at most 3/4 full, and at least
 * 1/8 full above the minimum size; an insert that would land farther than
 * MAX_DISPLACEMENT from home grows it (at 3/4 full and 2^21 entries the
 * farthest entry sits 150 to 190 away).
 */
import { NODE_ROOM, NODE_SLOT, NODE_STRIDE } from "./shared-tables";

/** Entries of the smallest index (it never shrinks below). */
const MIN_ENTRIES = 1024;
const FINGERPRINT_BITS = 6;
const FINGERPRINT_MASK = (1 << FINGERPRINT_BITS) - 1;
/** One displacement step in a tag. */
const DISPLACEMENT_UNIT = 1 << FINGERPRINT_BITS;
/** The tag of an empty entry (all ones: the displacement field's last value is never used). */
const EMPTY = 0xffff;
/** Farthest an entry may sit from its home (the displacement field's last value but one). */
export const MAX_DISPLACEMENT = (EMPTY >>> FINGERPRINT_BITS) - 1;
/** uint16 per entry: tag, node's low half, node's high half. */
const ENTRY = 3;

/** An index of `size` entries, all empty. */
function newEntries(size: number): Uint16Array<ArrayBuffer> {
  const entries = new Uint16Array(ENTRY * size);
  for (let i = 0; i < entries.length; i += ENTRY) entries[i] = EMPTY;
  return entries;
}

export function hashPair(roomId: number, slot: number): number {
  let h = Math.imul(roomId, 0x9e3779b1) ^ Math.imul(slot + 0x632be5ab, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12);
}

/** The fingerprint of a hash: its top bits (the home takes the low ones). */
function fingerprintOf(hash: number): number {
  return hash >>> (32 - FINGERPRINT_BITS);
}

export class PairIndex {
  private entries = newEntries(MIN_ENTRIES);
  private mask = MIN_ENTRIES - 1;
  private count = 0;

  /** Pairs held: the number of memberships. */
  get size(): number {
    return this.count;
  }

  /** Entries the index has room for (a power of two). */
  get capacity(): number {
    return this.mask + 1;
  }

  /** Position of (roomId, slot), or -1; `nodes` is the nodes table the pairs' nodes live in. */
  find(roomId: number, slot: number, nodes: Int32Array): number {
    const entries = this.entries;
    const mask = this.mask;
    const hash = hashPair(roomId, slot);
    let tag = fingerprintOf(hash);
    for (let at = hash & mask; ; at = (at + 1) & mask, tag += DISPLACEMENT_UNIT) {
      const found = entries[ENTRY * at];
      if (found === EMPTY || tag >= EMPTY) return -1;
      // The node's own fields only on a tag match: no cache miss per probe.
      if (found === tag) {
        const base = this.nodeAt(at) * NODE_STRIDE;
        if (nodes[base + NODE_ROOM] === roomId && nodes[base + NODE_SLOT] === slot) return at;
      }
    }
  }

  /** The node at a position `find` returned. */
  nodeAt(position: number): number {
    const entries = this.entries;
    return entries[ENTRY * position + 1] | (entries[ENTRY * position + 2] << 16);
  }

  /**
   * The entry a lookup of (roomId, slot) reads first. Only a hint, read
   * ahead of a batch of joins or leaves so that their cache misses overlap.
   */
  homeEntry(roomId: number, slot: number): number {
    return this.entries[ENTRY * (hashPair(roomId, slot) & this.mask)];
  }

  /** Adds (roomId, slot) -> node; the pair must not be there, and `nodes` must hold it at `node` already. */
  insert(node: number, roomId: number, slot: number, nodes: Int32Array): void {
    this.count++;
    if (this.count * 4 > (this.mask + 1) * 3) this.rehash((this.mask + 1) * 2, nodes);
    while (!this.placeHashed(node, hashPair(roomId, slot))) this.rehash((this.mask + 1) * 2, nodes);
  }

  /** Removes the pair at `hole` (from `find`), by backward shift: no tombstones to pile up. */
  deleteAt(hole: number): void {
    const entries = this.entries;
    const mask = this.mask;
    for (let at = (hole + 1) & mask; entries[ENTRY * at] !== EMPTY; at = (at + 1) & mask) {
      const tag = entries[ENTRY * at];
      const home = (at - (tag >>> FINGERPRINT_BITS)) & mask;
      const between = hole <= at ? home > hole && home <= at : home > hole || home <= at;
      if (!between) {
        // Moving back by (at - hole) brings it that much closer to home.
        entries[ENTRY * hole] = tag - ((at - hole) & mask) * DISPLACEMENT_UNIT;
        entries[ENTRY * hole + 1] = entries[ENTRY * at + 1];
        entries[ENTRY * hole + 2] = entries[ENTRY * at + 2];
        hole = at;
      }
    }
    entries[ENTRY * hole] = EMPTY;
    this.count--;
    if (this.mask + 1 > MIN_ENTRIES && this.count * 8 < this.mask + 1) this.shrink();
  }

  clear(): void {
    this.entries = newEntries(MIN_ENTRIES);
    this.mask = MIN_ENTRIES - 1;
    this.count = 0;
  }

  /** Writes `node` at the first free entry from `home` on; false if that is beyond MAX_DISPLACEMENT. */
  private place(node: number, home: number, fingerprint: number): boolean {
    const entries = this.entries;
    const mask = this.mask;
    let at = home;
    let displacement = 0;
    while (entries[ENTRY * at] !== EMPTY) {
      at = (at + 1) & mask;
      if (++displacement > MAX_DISPLACEMENT) return false;
    }
    entries[ENTRY * at] = (displacement << FINGERPRINT_BITS) | fingerprint;
    entries[ENTRY * at + 1] = node & 0xffff;
    entries[ENTRY * at + 2] = node >>> 16;
    return true;
  }

  private placeHashed(node: number, hash: number): boolean {
    return this.place(node, hash & this.mask, fingerprintOf(hash));
  }

  /**
   * Moves every pair into a new index of `size` entries, or bigger if some
   * pair would land too far from home. The new homes need hash bits the
   * tags do not keep, so each pair is read back from its node (independent
   * reads: their cache misses overlap).
   */
  private rehash(size: number, nodes: Int32Array): void {
    const old = this.entries;
    for (;;) {
      this.entries = newEntries(size);
      this.mask = size - 1;
      let placed = true;
      for (let i = 0; i < old.length && placed; i += ENTRY) {
        if (old[i] === EMPTY) continue;
        const node = old[i + 1] | (old[i + 2] << 16);
        const base = node * NODE_STRIDE;
        placed = this.placeHashed(node, hashPair(nodes[base + NODE_ROOM], nodes[base + NODE_SLOT]));
      }
      if (placed) return;
      size *= 2;
    }
  }

  /**
   * Halves the index. An entry's new home is the low bits of its old one,
   * which its position and tag give: no node is read. In the (never seen)
   * case of a pair landing too far from home, the index stays as it was.
   */
  private shrink(): void {
    const old = this.entries;
    const oldMask = this.mask;
    this.entries = newEntries((oldMask + 1) / 2);
    this.mask = oldMask >>> 1;
    for (let i = 0; i < old.length; i += ENTRY) {
      const tag = old[i];
      if (tag === EMPTY) continue;
      const home = (i / ENTRY - (tag >>> FINGERPRINT_BITS)) & oldMask;
      if (!this.place(old[i + 1] | (old[i + 2] << 16), home & this.mask, tag & FINGERPRINT_MASK)) {
        this.entries = old;
        this.mask = oldMask;
        return;
      }
    }
  }
}
