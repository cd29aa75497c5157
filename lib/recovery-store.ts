/**
 * Connection state recovery, as socket.io-adapter's `SessionAwareAdapter`
 * does it, with the stored packets and sessions kept off the main thread's
 * heap and decoded only when a client comes back.
 *
 * A packet is stored in its wire encoding, the very strings and buffers the
 * broadcast sends to connected clients (no second serialization), and
 * decoded with the server's parser on recovery: a recovering client gets
 * exactly what a connected one got. Sessions are serialized with msgpackr's
 * structured clone (plain data, Map, Set, Date, cycles); one that does not
 * come back identical (a function, a class instance, a symbol...) is kept on
 * the heap as is.
 *
 * ```
 *  packet log (one off-heap Buffer, records appended in broadcast order)
 *  ┌────────┬───────────┬───────┬────────┬────────┬──────────────────────────────┬─────
 *  │ length │ emittedAt │ idLen │ id     │ format │ [rooms, except, wire]        │ next
 *  │ u32    │ f64       │ u8    │ ascii  │ u8     │                              │
 *  └────────┴───────────┴───────┴────────┴────────┴──────────────────────────────┴─────
 *  ^start                                                                         ^end
 * ```
 * The payload is written by hand when the rooms and the wire encoding are
 * all strings (the common case: format PLAIN, each list a u16 count of u32
 * length-prefixed UTF-8 strings), about twice as fast as msgpack, which
 * takes every other case (format MSGPACK: numbers, binary attachments).
 * Expiry moves `start` forward; the log is compacted when more than half of
 * it is dead. Sessions sit in a Map from private id to their msgpack bytes.
 * A packet whose rooms msgpack would not give back as the same Map keys
 * (objects, symbols) keeps its filter on the heap, in `heapFilters`.
 */
import { isDeepStrictEqual } from "node:util";
import { Packr } from "msgpackr";
import type { BroadcastOptions, PrivateSessionId, Room, Session, SocketId } from "socket.io-adapter";
import { nextOffset } from "./recovery-offsets";

const HEADER_BYTES = 4 + 8 + 1;
const INITIAL_LOG_BYTES = 64 * 1024;
const EXPIRY_INTERVAL_MS = 60 * 1000;

/** What socket.io hands to `persistSession`. */
export interface SessionToPersist {
  sid: SocketId;
  pid: PrivateSessionId;
  rooms: Room[];
  data: unknown;
}

/** A broadcast packet as socket.io-parser sees it. */
interface EventPacket {
  type: number;
  data: unknown[];
  id?: number;
}

/** The part of a socket.io parser's Decoder used to read stored packets back. */
export interface PacketDecoder {
  add(chunk: unknown): void;
  on(event: "decoded", listener: (packet: { data: unknown[] }) => void): unknown;
  destroy(): void;
}

const FORMAT_PLAIN = 0;
const FORMAT_MSGPACK = 1;
const NO_ROOMS: ReadonlySet<Room> = new Set();
const MAX_LIST = 0xffff;

type Filter = [rooms: Room[], except: Room[]];

const EVENT = 2;

/** A persisted session: sid, pid, rooms, data, disconnectedAt. */
type StoredSession = [SocketId, PrivateSessionId, Room[], unknown, number];

export class RecoveryStore {
  // copyBuffers: decoded attachments must not be views into the log, which is reused.
  private readonly packr = new Packr({ useRecords: false, copyBuffers: true });
  private readonly sessionPackr = new Packr({ structuredClone: true });
  private log = Buffer.allocUnsafeSlow(INITIAL_LOG_BYTES);
  private start = 0;
  private end = 0;
  private readonly sessions = new Map<PrivateSessionId, Buffer | StoredSession>();
  private readonly heapFilters = new Map<string, Filter>();
  /**
   * The broadcast being stored, between beginBroadcast and recordEncoded: it
   * has its offset, and waits for its wire encoding. Fields, not an object
   * per broadcast. `pendingRooms` and `pendingExcept` are the broadcast's own
   * Sets, read in the same synchronous call.
   */
  private pendingId: string | undefined;
  private pendingAt = 0;
  private pendingRooms: ReadonlySet<Room> = NO_ROOMS;
  private pendingExcept: ReadonlySet<Room> = NO_ROOMS;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly maxDisconnectionDuration: number,
    private readonly newDecoder: () => PacketDecoder,
  ) {
    this.startExpiry();
  }

  /** Starts dropping expired sessions and packets once a minute (again after {@link stopExpiry}). */
  startExpiry(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.expire(Date.now()), EXPIRY_INTERVAL_MS);
    // The in-memory adapter's timer does not keep the process alive either.
    this.timer.unref();
  }

  /**
   * Stops the expiry timer (the adapter was closed), so that a namespace
   * socket.io drops is not kept alive by it. What is stored stays, as in the
   * in-memory adapter: a server restarted with `io.attach()` still recovers
   * the sessions of the clients it disconnected; expiry is also checked
   * when a session is restored.
   */
  stopExpiry(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Called before a broadcast is encoded: if the packet is to be stored (an
   * event, without ack, not volatile), appends its offset to its data, as
   * the client expects, and waits for {@link recordEncoded}.
   */
  beginBroadcast(packet: EventPacket, opts: BroadcastOptions): void {
    const isEvent = packet.type === EVENT;
    const withoutAck = packet.id === undefined;
    // Same test as SessionAwareAdapter: a `volatile` flag present at all, even false, skips storage.
    const notVolatile = opts.flags?.volatile === undefined;
    if (!(isEvent && withoutAck && notVolatile)) return;
    const now = Date.now();
    const id = nextOffset(now);
    packet.data.push(id);
    this.pendingId = id;
    this.pendingAt = now;
    this.pendingRooms = opts.rooms;
    this.pendingExcept = opts.except ?? NO_ROOMS;
  }

  /**
   * Stores the pending broadcast in its wire encoding (what `_encode` produced
   * for it). `packetOpts` is what `_encode` filled in: the websocket frame it
   * precomputed holds the encoding's UTF-8 bytes, copied from there.
   */
  recordEncoded(encoded: unknown[], packetOpts?: { wsPreEncodedFrame?: unknown }): void {
    const id = this.pendingId;
    if (id === undefined) return;
    const rooms = this.pendingRooms;
    const except = this.pendingExcept;
    this.abandonBroadcast();
    const frameData = packetOpts === undefined ? undefined : frameDataOf(packetOpts.wsPreEncodedFrame, encoded);
    if (this.appendPlain(id, this.pendingAt, rooms, except, encoded, frameData)) return;
    const roomList = [...rooms];
    const exceptList = [...except];
    let payload: Uint8Array;
    if (allPrimitive(roomList) && allPrimitive(exceptList)) {
      payload = this.packr.pack([roomList, exceptList, encoded]);
    } else {
      // Object and symbol rooms compare by identity: msgpack would copy them.
      this.heapFilters.set(id, [roomList, exceptList]);
      payload = this.packr.pack([[], [], encoded]);
    }
    this.append(id, this.pendingAt, payload);
  }

  /** Drops a pending broadcast that never reached its encoding (it threw). */
  abandonBroadcast(): void {
    this.pendingId = undefined;
    // Not kept alive until the next broadcast.
    this.pendingRooms = NO_ROOMS;
    this.pendingExcept = NO_ROOMS;
  }

  persistSession(session: SessionToPersist): void {
    const stored: StoredSession = [session.sid, session.pid, session.rooms, session.data, Date.now()];
    if (!allPrimitive(session.rooms)) {
      this.sessions.set(session.pid, stored); // rooms compared by identity must stay the same objects
      return;
    }
    let packed: Buffer | undefined;
    // Kept off the heap only if it is plain data and comes back the same
    // (not functions, class instances, errors, -0, lone surrogates, own
    // "__proto__" keys...): otherwise restoring it would not give it back.
    if (isPlainData(session.data, new Set())) {
      try {
        packed = this.sessionPackr.pack(stored);
        if (!isDeepStrictEqual(this.sessionPackr.unpack(packed), stored)) packed = undefined;
      } catch {
        packed = undefined;
      }
    }
    this.sessions.set(session.pid, packed ?? stored);
  }

  /**
   * The session `pid` with the packets it missed after `offset`, or null if
   * the session expired or the offset is no longer (or never was) stored.
   */
  restoreSession(pid: PrivateSessionId, offset: string): Session | null {
    const stored = this.sessions.get(pid);
    if (stored === undefined) return null;
    const [sid, , rooms, data, disconnectedAt] = this.readSession(stored);
    if (disconnectedAt + this.maxDisconnectionDuration < Date.now()) {
      this.sessions.delete(pid);
      return null;
    }
    let at = this.find(offset);
    if (at === -1) return null;
    const missedPackets: unknown[][] = [];
    for (at = this.next(at); at < this.end; at = this.next(at)) {
      const [packetRooms, except, encoded] = this.payloadAt(at) as [Room[], Room[], unknown[]];
      const [filterRooms, filterExcept] = this.heapFilters.get(this.idAt(at)) ?? [packetRooms, except];
      if (shouldIncludePacket(rooms, filterRooms, filterExcept)) missedPackets.push(this.decode(encoded));
    }
    return { sid, pid, rooms, data, missedPackets };
  }

  /** Drops sessions disconnected, and packets emitted, longer than the recovery window ago. */
  expire(now: number): void {
    const threshold = now - this.maxDisconnectionDuration;
    for (const [pid, stored] of this.sessions) {
      if (this.readSession(stored)[4] < threshold) this.sessions.delete(pid);
    }
    // As the in-memory adapter: everything up to the last expired packet goes.
    let cut = -1;
    for (let at = this.start; at < this.end; at = this.next(at)) {
      if (readF64(this.log, at + 4) < threshold) cut = this.next(at);
    }
    if (cut !== -1) {
      for (let at = this.start; at < cut && this.heapFilters.size > 0; at = this.next(at)) this.heapFilters.delete(this.idAt(at));
      this.start = cut;
    }
    if (this.start === this.end) this.start = this.end = 0;
  }

  /** Stored packets and sessions, for stats. */
  get size(): { packets: number; sessions: number; bytes: number } {
    let packets = 0;
    for (let at = this.start; at < this.end; at = this.next(at)) packets++;
    let bytes = this.log.length;
    for (const stored of this.sessions.values()) if (Buffer.isBuffer(stored)) bytes += stored.length;
    return { packets, sessions: this.sessions.size, bytes };
  }

  /** Appends a record whose payload is msgpack. */
  private append(id: string, emittedAt: number, payload: Uint8Array): void {
    const at = this.reserve(this.beginRecord(id, emittedAt, FORMAT_MSGPACK), payload.length);
    this.log.set(payload, at);
    this.endRecord(at + payload.length);
  }

  /**
   * Appends the record in the PLAIN format if every room, except room and
   * wire chunk is a string (and the lists are not huge); false otherwise,
   * leaving the log as it was (a record counts once `endRecord` closes it).
   * Written in one pass, making room as it goes. `frameData`, when given, is
   * "4" and the UTF-8 encoding of the one wire chunk.
   */
  private appendPlain(
    id: string,
    emittedAt: number,
    rooms: ReadonlySet<Room>,
    except: ReadonlySet<Room>,
    encoded: unknown[],
    frameData: Uint8Array | undefined,
  ): boolean {
    if (rooms.size > MAX_LIST || except.size > MAX_LIST || encoded.length > MAX_LIST) return false;
    let at = this.writeStringSet(this.beginRecord(id, emittedAt, FORMAT_PLAIN), rooms);
    if (at !== -1) at = this.writeStringSet(at, except);
    if (at === -1) return false;
    if (frameData !== undefined) {
      const length = frameData.length - 1;
      at = this.reserve(at, 6 + length);
      const log = this.log;
      writeU16(log, at, 1);
      writeU32(log, at + 2, length);
      at = copyBytes(frameData, 1, log, at + 6);
    } else {
      at = this.reserve(at, 2);
      writeU16(this.log, at, encoded.length);
      at += 2;
      for (const chunk of encoded) {
        if (typeof chunk !== "string") return false;
        at = this.writeLengthPrefixed(at, chunk);
      }
    }
    this.endRecord(at);
    return true;
  }

  /** Writes a Set of strings at `at` as a u16 count of u32 length-prefixed UTF-8 strings; returns the end, or -1 if one is not a string. */
  private writeStringSet(at: number, strings: ReadonlySet<Room>): number {
    at = this.reserve(at, 2);
    writeU16(this.log, at, strings.size);
    at += 2;
    for (const text of strings) {
      if (typeof text !== "string") return -1;
      at = this.writeLengthPrefixed(at, text);
    }
    return at;
  }

  /** Writes `text` at `at` as a u32 byte length and its UTF-8 bytes; returns the end. */
  private writeLengthPrefixed(at: number, text: string): number {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    at = this.reserve(at, 4 + 3 * text.length);
    const log = this.log;
    const length = writeUtf8(log, at + 4, text);
    writeU32(log, at, length);
    return at + 4 + length;
  }

  /** Writes a record's header at the end of the log; returns where its payload starts. */
  private beginRecord(id: string, emittedAt: number, format: number): number {
    // Offsets are ASCII (yeast's alphabet): one byte per character.
    const idBytes = id.length;
    const at = this.reserve(this.end, HEADER_BYTES + idBytes + 1);
    const log = this.log;
    writeF64(log, at + 4, emittedAt);
    log[at + 12] = idBytes;
    const formatAt = at + HEADER_BYTES + writeUtf8(log, at + HEADER_BYTES, id);
    log[formatAt] = format;
    return formatAt + 1;
  }

  /** Closes the record begun at `end`, whose last byte is before `at`. */
  private endRecord(at: number): void {
    writeU32(this.log, this.end, at - this.end);
    this.end = at;
  }

  /**
   * Makes room for `length` more bytes at `at`, in the record being written
   * from `end`; returns where `at` is afterwards (the log moves to the front
   * of a compacted or bigger buffer when full).
   */
  private reserve(at: number, length: number): number {
    if (at + length <= this.log.length) return at;
    const shift = this.start;
    this.makeRoom(at, length);
    return at - shift;
  }

  /** Compacts the dead front away, and grows the log if that is not enough, for `length` more bytes past `at`. */
  private makeRoom(at: number, length: number): void {
    const live = at - this.start;
    let size = this.log.length;
    while (live + length > size / 2) size *= 2;
    const log = size === this.log.length ? this.log : Buffer.allocUnsafeSlow(size);
    this.log.copy(log, 0, this.start, at);
    this.log = log;
    this.end -= this.start;
    this.start = 0;
  }

  private next(at: number): number {
    const length = this.log.readUInt32LE(at);
    // A record is never empty (it holds at least its length word): a zero here is a bug, and reading on would loop forever.
    if (length === 0) throw new Error(`recovery log: empty record at byte ${at} of [${this.start}, ${this.end})`);
    return at + length;
  }

  private find(offset: string): number {
    for (let at = this.start; at < this.end; at = this.next(at)) {
      if (this.log[at + 12] === offset.length && this.idAt(at) === offset) return at;
    }
    return -1;
  }

  private idAt(at: number): string {
    return this.log.toString("latin1", at + HEADER_BYTES, at + HEADER_BYTES + this.log[at + 12]);
  }

  private readSession(stored: Buffer | StoredSession): StoredSession {
    return Buffer.isBuffer(stored) ? (this.sessionPackr.unpack(stored) as StoredSession) : stored;
  }

  /** Decodes a stored wire encoding with the server's parser, as a client would. */
  private decode(encoded: unknown[]): unknown[] {
    const decoder = this.newDecoder();
    let data: unknown[] = [];
    decoder.on("decoded", (packet) => {
      data = packet.data;
    });
    for (const chunk of encoded) decoder.add(chunk);
    decoder.destroy();
    return data;
  }

  private payloadAt(at: number): unknown {
    const log = this.log;
    const start = at + HEADER_BYTES + log[at + 12];
    if (log[start] === FORMAT_MSGPACK) return this.packr.unpack(log.subarray(start + 1, this.next(at)));
    const cursor = { at: start + 1 };
    return [readStrings(log, cursor), readStrings(log, cursor), readStrings(log, cursor)];
  }
}

/** Writes `value` (below 2^16) at `at`, little-endian. */
function writeU16(log: Buffer, at: number, value: number): void {
  log[at] = value;
  log[at + 1] = value >>> 8;
}

/** Writes `value` (below 2^32) at `at`, little-endian; by hand, cheaper than Buffer's checked writes. */
function writeU32(log: Buffer, at: number, value: number): void {
  log[at] = value;
  log[at + 1] = value >>> 8;
  log[at + 2] = value >>> 16;
  log[at + 3] = value >>> 24;
}

const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);

/** Writes `value` at `at` as a double in the machine's byte order (the log never leaves the process). */
function writeF64(log: Buffer, at: number, value: number): void {
  f64[0] = value;
  for (let i = 0; i < 8; i++) log[at + i] = f64Bytes[i];
}

/** Reads a double `writeF64` wrote. */
function readF64(log: Buffer, at: number): number {
  for (let i = 0; i < 8; i++) f64Bytes[i] = log[at + i];
  return f64[0];
}

/**
 * The data of the websocket frame socket.io-adapter's `_encode` precomputed
 * for `encoded`'s one string (ws's `Sender.frame` of
 * `Buffer.from("4" + encoded[0])`: [header, data]), or undefined when there is
 * none or it does not look like that. Past its "4" are the string's UTF-8
 * bytes, what encoding it again would give.
 */
function frameDataOf(frame: unknown, encoded: unknown[]): Uint8Array | undefined {
  if (!Array.isArray(frame) || frame.length !== 2 || encoded.length !== 1 || typeof encoded[0] !== "string") return undefined;
  const data: unknown = frame[1];
  // "4": engine.io's message packet type, the first byte of the data.
  if (!(data instanceof Uint8Array) || data.length === 0 || data[0] !== 0x34) return undefined;
  return data;
}

/** Copies `bytes` from `from` on into `log` at `at`; returns the end. Short ones byte by byte, cheaper than a native call. */
function copyBytes(bytes: Uint8Array, from: number, log: Buffer, at: number): number {
  const length = bytes.length - from;
  if (length > SHORT_TEXT) log.set(bytes.subarray(from), at);
  else for (let i = 0; i < length; i++) log[at + i] = bytes[from + i];
  return at + length;
}

/** Strings up to this length are written by `writeUtf8` itself when ASCII. */
const SHORT_TEXT = 64;

/**
 * Writes `text` as UTF-8 at `at` (the caller made room for 3 bytes per
 * UTF-16 unit); returns the bytes written. A short ASCII string (a room, a
 * socket id, a small packet: most of what a broadcast stores) is copied
 * here, cheaper than a call into Buffer's native write.
 */
function writeUtf8(log: Buffer, at: number, text: string): number {
  const length = text.length;
  if (length > SHORT_TEXT) return log.write(text, at, "utf8");
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) return log.write(text, at, "utf8");
    log[at + i] = code;
  }
  return length;
}

function readStrings(log: Buffer, cursor: { at: number }): string[] {
  let at = cursor.at;
  const count = log.readUInt16LE(at);
  at += 2;
  const strings = new Array<string>(count);
  for (let i = 0; i < count; i++) {
    const length = log.readUInt32LE(at);
    strings[i] = log.toString("utf8", at + 4, at + 4 + length);
    at += 4 + length;
  }
  cursor.at = at;
  return strings;
}

/**
 * Whether `value` holds only what msgpack's structured clone rebuilds as it
 * was: primitives, plain objects and arrays, Map, Set, Date and byte arrays
 * (cycles allowed).
 */
function isPlainData(value: unknown, seen: Set<object>): boolean {
  if (value === null || typeof value !== "object") return typeof value !== "function" && typeof value !== "symbol";
  if (seen.has(value)) return true;
  seen.add(value);
  if (value instanceof Date || ArrayBuffer.isView(value)) return true;
  if (value instanceof Map) {
    for (const [key, item] of value) if (!isPlainData(key, seen) || !isPlainData(item, seen)) return false;
    return true;
  }
  if (value instanceof Set) {
    for (const item of value) if (!isPlainData(item, seen)) return false;
    return true;
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== Array.prototype && prototype !== null) return false;
  for (const key of Reflect.ownKeys(value)) {
    if (typeof key === "symbol" || !isPlainData((value as Record<string, unknown>)[key], seen)) return false;
  }
  return true;
}

/** Whether msgpack round-trips every room as the same Map key (objects and symbols it cannot). */
function allPrimitive(rooms: readonly Room[]): boolean {
  for (const room of rooms) {
    const type = typeof room;
    if ((type === "object" && room !== null) || type === "function" || type === "symbol") return false;
  }
  return true;
}

/** socket.io-adapter's rule: in one of the packet's rooms (or all), and in none of its except rooms. */
function shouldIncludePacket(sessionRooms: Room[], packetRooms: Room[], except: Room[]): boolean {
  const included = packetRooms.length === 0 || sessionRooms.some((room) => packetRooms.includes(room));
  const notExcluded = sessionRooms.every((room) => !except.includes(room));
  return included && notExcluded;
}
