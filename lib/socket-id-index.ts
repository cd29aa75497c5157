/**
 * Socket id -> slot, on the main thread, in place of a `Map<string, number>`.
 *
 * Its entries (slot, id hash) are `hashed-entries.ts`'s, never shrunk (but
 * by clear()); the ids themselves are kept by slot. A Map keyed by 100k socket
 * ids costs, per connect, a lookup that misses (its bucket, the entries of
 * its chain and each of their key strings, a cache miss each) and an insert
 * (a second lookup, and on growth a rehash that reads every key string
 * again); here a lookup reads one entry line, comparing kept hashes, and
 * touches an id only on a full hash match, and growing never reads an id.
 * The price is hashing the id (20 characters for socket.io's) on each
 * lookup, where V8 keeps a string's hash in the string.
 */
import type { SocketId } from "socket.io-adapter";
import { ChunkedStrings } from "./compact-containers";
import { HashedEntries } from "./hashed-entries";
import { NONE } from "./shared-tables";


/** A 32-bit hash of every character of `id` (two lanes, so that the multiplications overlap). */
export function hashSocketId(id: SocketId): number {
  const key = typeof id === "string" ? id : String(id);
  const length = key.length;
  let even = 0x9e3779b1 ^ length;
  let odd = 0x85ebca6b;
  let i = 0;
  for (; i + 1 < length; i += 2) {
    even = Math.imul(even ^ key.charCodeAt(i), 0x01000193);
    odd = Math.imul(odd ^ key.charCodeAt(i + 1), 0x5bd1e995);
  }
  if (i < length) even = Math.imul(even ^ key.charCodeAt(i), 0x01000193);
  let h = even ^ Math.imul(odd ^ (odd >>> 16), 0x27d4eb2d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12);
}

export class SocketIdIndex extends HashedEntries {
  private readonly ids = new ChunkedStrings<SocketId>();
  /** The id `slotOf` hashed last, and its hash: a connect looks its id up, then adds it. */
  private lastId: SocketId | undefined;
  private lastHash = 0;

  constructor() {
    super(false);
  }

  slotOf(id: SocketId): number | undefined {
    const entries = this.entries;
    const mask = this.mask;
    const hash = this.hashOf(id);
    for (let at = hash & mask; ; at = (at + 1) & mask) {
      const slot = entries[2 * at];
      if (slot === NONE) return undefined;
      if (entries[2 * at + 1] === hash && this.ids.get(slot) === id) return slot;
    }
  }

  idOf(slot: number): SocketId | undefined {
    return this.ids.get(slot);
  }

  /** Adds `id` -> `slot`; the id must not be held, nor the slot. */
  add(id: SocketId, slot: number): void {
    this.insertEntry(slot, this.hashOf(id));
    this.ids.set(slot, id);
  }

  /** Removes the id of `slot` (held). */
  remove(slot: number): void {
    const entries = this.entries;
    const mask = this.mask;
    let hole = this.hashOf(this.ids.get(slot) as SocketId) & mask;
    while (entries[2 * hole] !== slot) hole = (hole + 1) & mask;
    this.deleteEntryAt(hole);
    this.ids.set(slot, undefined);
    // Never shrunk (but by clear()), as the socket table: sockets that all
    // went come back (a restart, a reconnect storm) without regrowing it.
  }

  override clear(): void {
    super.clear();
    this.ids.clear();
    this.lastId = undefined;
  }

  private hashOf(id: SocketId): number {
    if (id === this.lastId) return this.lastHash;
    const hash = hashSocketId(id);
    this.lastId = id;
    this.lastHash = hash;
    return hash;
  }
}
