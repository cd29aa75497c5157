/**
 * Buffers for tables that grow by doubling, allocated so that growing them
 * leaves no resident memory behind.
 *
 * A plain ArrayBuffer or SharedArrayBuffer comes from malloc, and glibc raises
 * its mmap threshold to the size of each large chunk freed (up to 32 MiB): once
 * the retired copies of a doubled table were freed, the next buffers of up to
 * that size came from the main arena, where `calloc` writes a reused chunk in
 * full (the doubled capacity resident before it is used) and freed chunks stay
 * resident. That cost ~10 B per membership above the tables' own at N=100k
 * K=10 (`bench/rss-breakdown.ts`).
 *
 * From GROWABLE_FROM_BYTES on, a buffer is a growable SharedArrayBuffer
 * instead: V8 reserves its maximum length as address space with its own mmap
 * (not malloc's) and grows it in place, so doubling copies nothing, frees
 * nothing, and pages past what was written stay non-resident. When a buffer
 * outgrows its reservation, the next one reserves RESERVE_FACTOR times more,
 * and the old one goes back to the system (munmap) once collected. Below that
 * size, a plain buffer: a mapping of its own would cost more than it saves.
 *
 * Views over a growable buffer are made with an explicit length: a view
 * without one tracks the buffer's length, which V8 compiles less well.
 */

/** From this size on, buffers are growable (see above). */
export const GROWABLE_FROM_BYTES = 256 * 1024;
/** A growable buffer reserves this many times the length it is made with (address space only)... */
const RESERVE_FACTOR = 64;
/** ...up to this (the largest maximum length Node.js 20 accepts for a growable SharedArrayBuffer). */
const MAX_RESERVE_BYTES = 2 ** 32;

/**
 * A new zeroed buffer of `byteLength` bytes: growable from GROWABLE_FROM_BYTES
 * on, up to the largest reservation V8 accepts; plain past it, or where the
 * reservation fails (e.g. a process whose address space is limited).
 */
export function newTableBuffer(byteLength: number): SharedArrayBuffer {
  if (byteLength < GROWABLE_FROM_BYTES || byteLength > MAX_RESERVE_BYTES) return new SharedArrayBuffer(byteLength);
  try {
    return new SharedArrayBuffer(byteLength, { maxByteLength: Math.min(byteLength * RESERVE_FACTOR, MAX_RESERVE_BYTES) });
  } catch {
    return new SharedArrayBuffer(byteLength);
  }
}

/** `old` doubled, keeping its content: grown in place when it is growable and has room, else copied into a new buffer. */
export function doubledTableBuffer(old: SharedArrayBuffer): SharedArrayBuffer {
  const byteLength = old.byteLength * 2;
  if (old.growable && byteLength <= old.maxByteLength) {
    old.grow(byteLength);
    return old;
  }
  return copiedInto(newTableBuffer(byteLength), old);
}

/**
 * The same for a main-thread array's buffer: it stays an ArrayBuffer while
 * small, and becomes a table buffer (growable) from GROWABLE_FROM_BYTES on.
 */
export function doubledBuffer(old: ArrayBufferLike): ArrayBufferLike {
  if (old instanceof SharedArrayBuffer) return doubledTableBuffer(old);
  const byteLength = old.byteLength * 2;
  return copiedInto(byteLength < GROWABLE_FROM_BYTES ? new ArrayBuffer(byteLength) : newTableBuffer(byteLength), old);
}

function copiedInto<T extends ArrayBufferLike>(target: T, source: ArrayBufferLike): T {
  new Uint8Array(target).set(new Uint8Array(source, 0, source.byteLength));
  return target;
}
