/**
 * The storm at scale's client connection (bench/storm.ts): engine.io 4 /
 * socket.io 5 over a websocket, written by hand on a bare TCP socket, so that
 * 10,000 of them in one process cost as little CPU and garbage per message as
 * we can make them. A delivery's latency is set by the slowest of the server
 * and this process; with `ws` (a Receiver stream, a Buffer and a string per
 * message) the clients' own GC pauses and per-message CPU were a large part
 * of the tail both adapters were measured by.
 *
 * What it does, and nothing else:
 *   - the HTTP upgrade (the reply's status line is checked, not the accept key);
 *   - frames from the server are read in place from ONE read buffer shared by
 *     every connection (net's `onread`: no Buffer per read), a partial frame
 *     is copied aside until the rest arrives;
 *   - text frames: `0…` (engine.io open) is answered with socket.io CONNECT
 *     `40{"i":<i>}`, `40…` is the CONNECT reply, `44…` a refused CONNECT,
 *     `41` a DISCONNECT (the close frame that follows is answered and the
 *     connection dropped),
 *     `2` (ping) is answered `3`, and `42["m",<integer>]` (the storm's event,
 *     whose argument is the server's clock at the emit, µs) is handed to
 *     `onStamp` with the integer parsed from the bytes (no string made);
 *   - its own frames are masked, as a client's must be.
 * The clock is read once per read (every frame in it arrived together).
 */
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";

/** Receives each storm event: the server's stamp and the client's clock at its receipt, both µs. */
export type StampListener = (stampUs: number, receivedUs: number) => void;

/** How an opening connection ended up. */
export type OpenOutcome = "connected" | "refused" | "failed";

const OPCODE_TEXT = 1;
const OPCODE_CLOSE = 8;
const OPCODE_PING = 9;
const OPCODE_PONG = 10;
const CHAR_0 = 0x30;
const CHAR_2 = 0x32;
const CHAR_3 = 0x33;
const CHAR_4 = 0x34;
/** `42["m",` */
const EVENT_PREFIX = Buffer.from('42["m",', "latin1");
const HEADER_END = "\r\n\r\n";
const READ_BUFFER_BYTES = 256 * 1024;

/**
 * One read buffer for every connection of the process: `onread` callbacks run
 * one at a time and the bytes are consumed (or copied aside) before returning.
 */
const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);

/** A masked client text frame (payloads under 126 bytes: all this client sends). */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  if (payload.length > 125) throw new Error(`raw client: frame payload of ${payload.length} bytes (at most 125)`);
  const frame = Buffer.allocUnsafe(6 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = 0x80 | payload.length;
  randomBytes(4).copy(frame, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ frame[2 + (i & 3)];
  return frame;
}

const PONG_FRAME_PAYLOAD = Buffer.from([CHAR_3]);

/** One raw socket.io client connection. */
export class RawSocketIoClient {
  private readonly socket: Socket;
  private readonly index: number;
  private readonly onStamp: StampListener;
  private readonly clockOffsetUs: number;
  private upgraded = false;
  private header = "";
  /** Bytes of a frame whose end has not arrived yet. */
  private partial: Buffer | undefined;
  private settle: ((outcome: OpenOutcome) => void) | undefined;
  private connected = false;
  /** Frames this client could not make sense of (counted, not fatal). */
  unexpectedFrames = 0;

  /**
   * Opens the connection; `opened` settles once the socket.io CONNECT is
   * answered (or refused, or the connection fails).
   */
  readonly opened: Promise<OpenOutcome>;

  /** `onClosed` is called when a connection that had connected closes (the server disconnected it, say). */
  constructor(port: number, index: number, onStamp: StampListener, clockOffsetUs: number, onClosed?: () => void) {
    this.index = index;
    this.onStamp = onStamp;
    this.clockOffsetUs = clockOffsetUs;
    this.opened = new Promise((resolve) => (this.settle = resolve));
    this.socket = connect({
      host: "127.0.0.1",
      port,
      noDelay: true,
      onread: { buffer: readBuffer, callback: (bytes: number, buffer: Uint8Array) => this.onRead(bytes, buffer as Buffer) },
    });
    this.socket.on("connect", () => {
      const key = randomBytes(16).toString("base64");
      this.socket.write(
        `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`,
      );
    });
    this.socket.on("error", () => this.finish("failed"));
    this.socket.on("close", () => {
      if (this.connected) onClosed?.();
      this.connected = false;
      this.finish("failed");
    });
  }

  close(): void {
    this.connected = false;
    this.socket.destroy();
  }

  private finish(outcome: OpenOutcome): void {
    const settle = this.settle;
    this.settle = undefined;
    settle?.(outcome);
  }

  /** net's `onread` callback: true keeps reading. */
  private onRead(bytes: number, buffer: Buffer): true {
    this.consume(bytes, buffer);
    return true;
  }

  private consume(bytes: number, buffer: Buffer): void {
    const receivedUs = performance.now() * 1000 + this.clockOffsetUs;
    let start = 0;
    if (!this.upgraded) {
      this.header += buffer.toString("latin1", 0, bytes);
      const end = this.header.indexOf(HEADER_END);
      if (end === -1) return;
      if (!this.header.startsWith("HTTP/1.1 101")) {
        this.socket.destroy();
        return this.finish("failed");
      }
      this.upgraded = true;
      // The bytes after the header are frames (the engine.io open packet, often).
      start = bytes - (this.header.length - end - HEADER_END.length);
      this.header = "";
    }
    if (this.partial !== undefined) {
      const joined = Buffer.concat([this.partial, buffer.subarray(start, bytes)]);
      const used = this.readFrames(joined, 0, joined.length, receivedUs);
      this.partial = used < joined.length ? joined.subarray(used) : undefined;
      return;
    }
    const used = this.readFrames(buffer, start, bytes, receivedUs);
    // Copied: the shared read buffer is overwritten by the next read.
    if (used < bytes) this.partial = Buffer.from(buffer.subarray(used, bytes));
  }

  /** Handles the whole frames in buffer[start, end); returns where the first incomplete one starts. */
  private readFrames(buffer: Buffer, start: number, end: number, receivedUs: number): number {
    let at = start;
    while (end - at >= 2) {
      const opcode = buffer[at] & 0x0f;
      let length = buffer[at + 1] & 0x7f;
      let header = 2;
      if (length === 126) {
        if (end - at < 4) break;
        length = buffer.readUInt16BE(at + 2);
        header = 4;
      } else if (length === 127) {
        if (end - at < 10) break;
        length = buffer.readUInt32BE(at + 2) * 2 ** 32 + buffer.readUInt32BE(at + 6);
        header = 10;
      }
      if (end - at < header + length) break;
      const from = at + header;
      at = from + length;
      if (opcode === OPCODE_TEXT) this.onText(buffer, from, at, receivedUs);
      else if (opcode === OPCODE_PING) this.socket.write(clientFrame(OPCODE_PONG, Buffer.from(buffer.subarray(from, at))));
      else if (opcode === OPCODE_CLOSE) {
        // The server closes (it disconnected this socket): answer and let go at once.
        this.socket.end(clientFrame(OPCODE_CLOSE, Buffer.from(buffer.subarray(from, Math.min(at, from + 2)))));
        this.socket.destroySoon();
        return at;
      } else this.unexpectedFrames++;
    }
    return at;
  }

  private onText(buffer: Buffer, from: number, to: number, receivedUs: number): void {
    const length = to - from;
    const first = buffer[from];
    if (first === CHAR_4 && length > EVENT_PREFIX.length && buffer[from + 1] === CHAR_2 && buffer.compare(EVENT_PREFIX, 0, EVENT_PREFIX.length, from, from + EVENT_PREFIX.length) === 0) {
      let stamp = 0;
      for (let i = from + EVENT_PREFIX.length; i < to; i++) {
        const digit = buffer[i] - CHAR_0;
        if (digit < 0 || digit > 9) break;
        stamp = stamp * 10 + digit;
      }
      this.onStamp(stamp, receivedUs);
    } else if (first === CHAR_2 && length === 1) {
      this.socket.write(clientFrame(OPCODE_TEXT, PONG_FRAME_PAYLOAD));
    } else if (first === CHAR_0) {
      this.socket.write(clientFrame(OPCODE_TEXT, Buffer.from(`40${JSON.stringify({ i: this.index })}`, "latin1")));
    } else if (first === CHAR_4 && length >= 2 && buffer[from + 1] === CHAR_0) {
      this.connected = true;
      this.finish("connected");
    } else if (first === CHAR_4 && length >= 2 && buffer[from + 1] === CHAR_4) {
      this.finish("refused");
    } else if (first === CHAR_4 && length >= 2 && buffer[from + 1] === 0x31) {
      // `41`: socket.io DISCONNECT, the server's close frame follows.
    } else {
      this.unexpectedFrames++;
    }
  }
}
