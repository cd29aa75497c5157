/**
 * The storage of both main-thread indexes (`pair-index.ts`: (room id, slot)
 * -> node; `socket-id-index.ts`: socket id -> slot): open addressing with
 * linear probing over entries of two int32, a value and its key's hash, so
 * that probing, growing and backward-shift deletes compare hashes in place
 * and never read what a value points to (a cache miss each, at scale). At
 * most 3/4 full. Each index hashes its own keys and decides, on a full hash
 * match, whether the value is the one it looks for.
 */
import { newIndexEntries, type Int32Column } from "./compact-containers";
import { NONE } from "./shared-tables";

/** Entries of the smallest index (it never shrinks below). */
export const MIN_INDEX_ENTRIES = 1024;

export class HashedEntries {
  /** (value, hash) pairs; an empty entry's value is NONE. */
  protected entries: Int32Column = newIndexEntries(MIN_INDEX_ENTRIES);
  protected mask = MIN_INDEX_ENTRIES - 1;
  private count = 0;
  /** Halve the entries when at most 1/8 of them are used (else keep the grown size until clear()). */
  private readonly shrinks: boolean;

  constructor(shrinks: boolean) {
    this.shrinks = shrinks;
  }

  /** Entries used. */
  get size(): number {
    return this.count;
  }

  /** Entries allocated (a power of two). */
  get capacity(): number {
    return this.mask + 1;
  }

  clear(): void {
    this.entries = newIndexEntries(MIN_INDEX_ENTRIES);
    this.mask = MIN_INDEX_ENTRIES - 1;
    this.count = 0;
  }

  /** Adds `value` under `hash` (the caller knows its key is not there). */
  protected insertEntry(value: number, hash: number): void {
    this.count++;
    if (this.count * 4 > (this.mask + 1) * 3) this.rehash((this.mask + 1) * 2);
    const entries = this.entries;
    const mask = this.mask;
    let at = hash & mask;
    while (entries[2 * at] !== NONE) at = (at + 1) & mask;
    entries[2 * at] = value;
    entries[2 * at + 1] = hash;
  }

  /** Removes the entry at `hole`, by backward shift: no tombstones to pile up. */
  protected deleteEntryAt(hole: number): void {
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
    if (this.shrinks && this.mask + 1 > MIN_INDEX_ENTRIES && this.count * 8 < this.mask + 1) this.rehash((this.mask + 1) / 2);
    this.count--;
  }

  private rehash(size: number): void {
    const old = this.entries;
    const entries = newIndexEntries(size);
    const mask = size - 1;
    for (let i = 0; i < old.length; i += 2) {
      const value = old[i];
      if (value === NONE) continue;
      const hash = old[i + 1];
      let at = hash & mask;
      while (entries[2 * at] !== NONE) at = (at + 1) & mask;
      entries[2 * at] = value;
      entries[2 * at + 1] = hash;
    }
    this.entries = entries;
    this.mask = mask;
  }
}
