/**
 * Ids (slots, room ids) in the order they were added, iterated as a Map
 * iterates its keys: a doubly linked list over the ids, with a sequence
 * number per id so that an iterator survives the removal of the id it
 * stands on, and visits ids added while it runs. Main thread only.
 */
import { grownFloat64, grownInt32, type Float64Column, type Int32Column } from "./compact-containers";
import { NONE } from "./shared-tables";

export class InsertionOrder {
  private readonly initialSize: number;
  private nextIds: Int32Column;
  private prevIds: Int32Column;
  /** Each listed id's sequence number (they only grow); 0 for an id not listed. */
  private seqs: Float64Column;
  private head = NONE;
  private tail = NONE;
  private lastSeq = 0;

  constructor(initialSize: number) {
    this.initialSize = initialSize;
    this.nextIds = new Int32Array(initialSize);
    this.prevIds = new Int32Array(initialSize);
    this.seqs = new Float64Array(initialSize);
  }

  /** Ids below this can be listed; `grow` doubles it. */
  get capacity(): number {
    return this.seqs.length;
  }

  /** Lists `id` (not listed) last. */
  append(id: number): void {
    this.seqs[id] = ++this.lastSeq;
    this.nextIds[id] = NONE;
    this.prevIds[id] = this.tail;
    if (this.tail === NONE) this.head = id;
    else this.nextIds[this.tail] = id;
    this.tail = id;
  }

  /** Takes a listed `id` out. */
  remove(id: number): void {
    const prev = this.prevIds[id];
    const next = this.nextIds[id];
    if (prev === NONE) this.head = next;
    else this.nextIds[prev] = next;
    if (next === NONE) this.tail = prev;
    else this.prevIds[next] = prev;
    this.seqs[id] = 0;
  }

  /**
   * The listed ids, first added first. Like a Map iterator, it visits ids
   * added during the iteration and skips those removed before it reaches
   * them; an id removed and added again is a new entry.
   */
  *ids(): IterableIterator<number> {
    let last = NONE;
    let lastSeq = 0;
    // The successor of `last` when it was given out, to resume in O(1) when
    // `last` is removed meanwhile (iterating and deleting the current entry is
    // common: disconnecting the socket of an own-id room, say).
    let successor = NONE;
    let successorSeq = 0;
    for (;;) {
      let next: number;
      if (last === NONE) next = this.head;
      else if (this.seqs[last] === lastSeq) next = this.nextIds[last];
      else if (successor !== NONE && this.seqs[successor] === successorSeq) next = successor;
      else {
        // Both gone: the first id listed after `last`.
        next = this.head;
        while (next !== NONE && this.seqs[next] <= lastSeq) next = this.nextIds[next];
      }
      if (next === NONE) return;
      last = next;
      lastSeq = this.seqs[next];
      successor = this.nextIds[next];
      successorSeq = successor === NONE ? 0 : this.seqs[successor];
      yield next;
    }
  }

  /** Doubles the ids that can be listed. */
  grow(): void {
    this.nextIds = grownInt32(this.nextIds);
    this.prevIds = grownInt32(this.prevIds);
    this.seqs = grownFloat64(this.seqs);
  }

  clear(): void {
    this.head = NONE;
    this.tail = NONE;
    // Sized as at the start, with the tables.
    this.nextIds = new Int32Array(this.initialSize);
    this.prevIds = new Int32Array(this.initialSize);
    this.seqs = new Float64Array(this.initialSize);
  }
}
