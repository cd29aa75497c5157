/**
 * Sending over one IPC channel without growing memory without bound.
 *
 * `process.send` and `worker.send` never refuse a message: when the other
 * side does not read (a stalled or busy process), libuv keeps every message
 * in its write queue. Here at most `maxInFlight` messages are handed to the
 * channel and not yet written; more wait in a queue of at most `maxQueued`,
 * from which the oldest is dropped (and counted) when a new one arrives.
 */
import createDebug from "debug";

const debug = createDebug("socket.io-sharded-adapter:ipc");

/** The part of `process` and of a cluster `Worker` used to send. */
export interface IpcEndpoint {
  send(message: object, sendHandle: undefined, options: object, callback: (error: Error | null) => void): boolean;
}

export interface SenderLimits {
  /** Messages handed to the channel and not yet written out. */
  readonly maxInFlight: number;
  /** Messages waiting behind those; the oldest is dropped beyond this. */
  readonly maxQueued: number;
}

/** Counters of one {@link BoundedSender}. */
export interface SenderStats {
  /** Messages handed to the channel. */
  readonly sent: number;
  /** Handed to the channel and not yet written out. */
  readonly inFlight: number;
  /** Waiting in the queue now. */
  readonly queued: number;
  /** Dropped from a full queue (oldest first). */
  readonly dropped: number;
  /** The channel refused or failed to write (closed, or a value it cannot serialize). */
  readonly failed: number;
}

export const DEFAULT_SENDER_LIMITS: SenderLimits = { maxInFlight: 1024, maxQueued: 10_000 };

export class BoundedSender {
  private inFlight = 0;
  private sent = 0;
  private dropped = 0;
  private failed = 0;
  /** A ring of the waiting messages. */
  private queue: (object | undefined)[] = [];
  private head = 0;
  private length = 0;
  private readonly onWritten = (error: Error | null) => {
    this.inFlight--;
    if (error) this.failed++;
    this.drain();
  };

  constructor(
    private readonly endpoint: IpcEndpoint,
    private readonly limits: SenderLimits = DEFAULT_SENDER_LIMITS,
  ) {}

  send(message: object): void {
    if (this.inFlight < this.limits.maxInFlight && this.length === 0) {
      this.write(message);
      return;
    }
    if (this.length >= this.limits.maxQueued) {
      // Full: the oldest goes.
      this.queue[this.head] = undefined;
      this.head = (this.head + 1) % this.queue.length;
      this.length--;
      this.dropped++;
      if (this.dropped === 1 || this.dropped % 1000 === 0) debug("IPC queue full: %d messages dropped so far", this.dropped);
    }
    this.enqueue(message);
  }

  stats(): SenderStats {
    return { sent: this.sent, inFlight: this.inFlight, queued: this.length, dropped: this.dropped, failed: this.failed };
  }

  /** Forgets the queue (the other side is gone). */
  clear(): void {
    this.queue = [];
    this.head = 0;
    this.length = 0;
  }

  private enqueue(message: object): void {
    if (this.length === this.queue.length) {
      // Grow the ring (up to maxQueued), keeping the order.
      const grown = new Array<object | undefined>(Math.min(this.limits.maxQueued, Math.max(16, this.queue.length * 2)));
      for (let i = 0; i < this.length; i++) grown[i] = this.queue[(this.head + i) % this.queue.length];
      this.queue = grown;
      this.head = 0;
    }
    this.queue[(this.head + this.length) % this.queue.length] = message;
    this.length++;
  }

  private drain(): void {
    while (this.length > 0 && this.inFlight < this.limits.maxInFlight) {
      const message = this.queue[this.head] as object;
      this.queue[this.head] = undefined;
      this.head = (this.head + 1) % this.queue.length;
      this.length--;
      this.write(message);
    }
  }

  private write(message: object): void {
    this.inFlight++;
    this.sent++;
    try {
      this.endpoint.send(message, undefined, {}, this.onWritten);
    } catch (error) {
      // Serialization failed (e.g. a function in socket.data with "advanced" serialization): no callback comes.
      this.inFlight--;
      this.failed++;
      debug("IPC message not sent: %s", (error as Error).message);
    }
  }
}
