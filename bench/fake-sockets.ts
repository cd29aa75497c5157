/**
 * Sockets that socket.io's adapters can broadcast to without a network: each
 * is registered in `nsp.sockets` like a connected socket, and its
 * `client.writeToEngine` counts the write instead of sending it. There is no
 * `notifyOutgoingListeners`, so the adapter's broadcast loop does exactly one
 * call per recipient. `join`/`leave` go through the adapter as socket.io's do.
 */
import type { Namespace } from "socket.io";

/** Counters every fake socket writes into; `record` turns on the recipient digest. */
export class WriteCounter {
  writes = 0;
  joins = 0;
  record = false;
  /** Order-independent digest of the recipients while `record` is on. */
  sum = 0;
  xor = 0;
  count = 0;

  startRecording(): void {
    this.record = true;
    this.sum = 0;
    this.xor = 0;
    this.count = 0;
  }

  stopRecording(): { count: number; digest: string } {
    this.record = false;
    return { count: this.count, digest: `${(this.sum >>> 0).toString(16)}:${(this.xor >>> 0).toString(16)}` };
  }

  note(index: number): void {
    const h = Math.imul(index + 1, 0x9e3779b1) >>> 0;
    this.sum = (this.sum + h) | 0;
    this.xor ^= Math.imul(h ^ (h >>> 15), 0x85ebca6b);
    this.count++;
  }
}

class FakeClient {
  constructor(
    private readonly counter: WriteCounter,
    private readonly index: number,
  ) {}

  writeToEngine(_packets: unknown, _opts: unknown): void {
    const counter = this.counter;
    counter.writes++;
    if (counter.record) counter.note(this.index);
  }
}

export class FakeSocket {
  readonly client: FakeClient;
  readonly data = {};
  constructor(
    readonly id: string,
    readonly index: number,
    readonly nsp: Namespace,
    private readonly counter: WriteCounter,
  ) {
    this.client = new FakeClient(counter, index);
  }

  /** As socket.io's `Socket#join`: one `addAll` with a new Set. */
  join(rooms: string | string[]): void | Promise<void> {
    const counter = this.counter;
    counter.joins++;
    if (counter.record) counter.note(this.index);
    return this.nsp.adapter.addAll(this.id, new Set(Array.isArray(rooms) ? rooms : [rooms]));
  }

  /** As socket.io's `Socket#leave`. */
  leave(room: string): void | Promise<void> {
    return this.nsp.adapter.del(this.id, room);
  }
}

/** Registers one fake socket per id in `nsp.sockets` (without joining any room). */
export function registerFakeSockets(nsp: Namespace, ids: readonly string[], counter: WriteCounter): FakeSocket[] {
  const sockets = nsp.sockets as unknown as Map<string, FakeSocket>;
  const out: FakeSocket[] = new Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const socket = new FakeSocket(ids[i], i, nsp, counter);
    sockets.set(ids[i], socket);
    out[i] = socket;
  }
  return out;
}
