/**
 * Small containers the membership tables use to keep the JS heap small:
 * integers in typed arrays, strings in fixed-size chunks.
 */
import { doubledBuffer, GROWABLE_FROM_BYTES, newTableBuffer } from "./growable-buffers";
import { NONE } from "./shared-tables";

/** A stack of integers kept off the JS heap (free slot, room and node ids). */
export class IntStack {
  private items: Int32Column = new Int32Array(16);
  private length = 0;

  push(value: number): void {
    if (this.length === this.items.length) this.items = grownInt32(this.items);
    this.items[this.length++] = value;
  }

  /** Returns the last value pushed, or NONE when empty. */
  pop(): number {
    return this.length === 0 ? NONE : this.items[--this.length];
  }

  clear(): void {
    this.length = 0;
    this.items = new Int32Array(16);
  }
}

const CHUNK_BITS = 12;
const CHUNK_MASK = (1 << CHUNK_BITS) - 1;

/**
 * Strings by integer id (room names, socket ids), in chunks of 4096: a plain
 * array grows by half its size at a time, so up to a third of it can be
 * unused slack on the heap, where this wastes at most one chunk.
 */
export class ChunkedStrings<T extends string> {
  private chunks: (T | undefined)[][] = [];

  get(id: number): T | undefined {
    const chunk = this.chunks[id >> CHUNK_BITS];
    return chunk === undefined ? undefined : chunk[id & CHUNK_MASK];
  }

  set(id: number, value: T | undefined): void {
    const index = id >> CHUNK_BITS;
    while (this.chunks.length <= index) this.chunks.push(new Array<T | undefined>(CHUNK_MASK + 1).fill(undefined));
    this.chunks[index][id & CHUNK_MASK] = value;
  }

  clear(): void {
    this.chunks = [];
  }
}

/**
 * A main-thread table column: over an ArrayBuffer while small, over a
 * growable buffer once large (`growable-buffers.ts`), so that growing it leaves
 * no freed copy resident.
 */
export type Int32Column = Int32Array<ArrayBufferLike>;
export type Uint32Column = Uint32Array<ArrayBufferLike>;
export type Float64Column = Float64Array<ArrayBufferLike>;

/** `array` at twice its length, the new half filled with `fill`. */
export function grownInt32(array: Int32Column, fill = 0): Int32Column {
  const length = array.length * 2;
  const bigger = new Int32Array(doubledBuffer(array.buffer), 0, length);
  if (fill !== 0) bigger.fill(fill, array.length);
  return bigger;
}

/** `array` at twice its length, the new half zero. */
export function grownUint32(array: Uint32Column): Uint32Column {
  return new Uint32Array(doubledBuffer(array.buffer), 0, array.length * 2);
}

/** `array` at twice its length, the new half zero. */
export function grownFloat64(array: Float64Column): Float64Column {
  return new Float64Array(doubledBuffer(array.buffer), 0, array.length * 2);
}

/**
 * The entries of an open-addressing index (two int32 each, `size` of them),
 * all NONE. Not from malloc once large (`newTableBuffer`): each rehash frees
 * the old entries, and glibc raises its mmap threshold to the size of every
 * large chunk freed, which sends later allocations to the main arena, where
 * they stay resident (see growable-buffers.ts).
 */
export function newIndexEntries(size: number): Int32Column {
  const bytes = 8 * size;
  return new Int32Array(bytes < GROWABLE_FROM_BYTES ? new ArrayBuffer(bytes) : newTableBuffer(bytes)).fill(NONE);
}
