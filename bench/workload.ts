/**
 * The benchmark's synthetic membership: N sockets, each in its own-id room
 * plus K rooms drawn from R rooms with a Zipf-like (skewed) popularity, so a
 * few rooms are huge and most are small. Everything comes from one seeded
 * RNG, so every process that builds a workload from the same parameters gets
 * exactly the same sockets, rooms and memberships.
 */

export interface WorkloadParams {
  /** Sockets. */
  readonly n: number;
  /** Rooms per socket, besides its own-id room. */
  readonly k: number;
  /** Distinct rooms the K are drawn from. */
  readonly r: number;
  /** Zipf exponent of room popularity: P(rank i) ∝ 1 / i^s. */
  readonly zipf: number;
  readonly seed: number;
  /** Whether to pick the 100 rooms of the union/except workloads (default true; the end-to-end run has too few rooms). */
  readonly hundredRooms?: boolean;
}

export interface Workload {
  readonly params: WorkloadParams;
  /** Socket ids, 20 characters like socket.io's. */
  readonly ids: string[];
  /** Room names by room index (index 0 is the most popular). */
  readonly roomNames: string[];
  /** K room indexes per socket: socket i's rooms are roomsOf[i*K .. i*K+K). */
  readonly roomsOf: Int32Array;
  /** Members per room index. */
  readonly roomSizes: Int32Array;
  /** N * (K + 1): every socket's K rooms plus its own-id room. */
  readonly memberships: number;

  /** The room whose size is closest to 100. */
  readonly smallRoom: number;
  /** A member of `smallRoom` (the sender of `socket.to(room)`). */
  readonly smallRoomSender: number;
  /** The largest room. */
  readonly bigRoom: number;
  /** 100 distinct rooms of size about N/1000, for the union and except workloads. */
  readonly hundredRooms: Int32Array;
  /** Sockets whose own-id rooms the own-id broadcast cycles through. */
  readonly ownIdSockets: Int32Array;
  /** A digest of the whole workload; equal digests mean identical workloads. */
  readonly digest: string;
}

/** sfc32: small, fast, good enough statistically, and identical on every platform. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.nextU32();
  }

  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, bound). */
  below(bound: number): number {
    return Math.floor(this.next() * bound);
  }
}

const ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const idBytes = Buffer.alloc(20);

/**
 * A flat 20-character string, like socket.io's base64id (which comes from
 * `Buffer#toString`). Built by `+=`, it would be a V8 cons string (a rope),
 * much slower as a Map/Set key.
 */
function makeId(rng: Rng): string {
  for (let i = 0; i < 20; i++) idBytes[i] = ID_ALPHABET.charCodeAt(rng.nextU32() & 63);
  return idBytes.toString("latin1");
}

/** FNV-1a over 32-bit words, as hex: a cheap digest for comparing workloads across processes. */
export class Digest {
  private h = 0x811c9dc5;
  add(value: number): this {
    let h = this.h;
    for (let i = 0; i < 4; i++) {
      h ^= (value >>> (i * 8)) & 0xff;
      h = Math.imul(h, 0x01000193);
    }
    this.h = h >>> 0;
    return this;
  }
  addString(s: string): this {
    for (let i = 0; i < s.length; i++) this.add(s.charCodeAt(i));
    return this;
  }
  hex(): string {
    return this.h.toString(16).padStart(8, "0");
  }
}

export function buildWorkload(params: WorkloadParams): Workload {
  const { n, k, r, zipf, seed } = params;
  if (k > r) throw new Error(`K (${k}) must not exceed R (${r})`);
  const rng = new Rng(seed);

  const ids: string[] = new Array(n);
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    let id = makeId(rng);
    while (seen.has(id)) id = makeId(rng);
    seen.add(id);
    ids[i] = id;
  }
  seen.clear();

  const roomNames: string[] = new Array(r);
  for (let i = 0; i < r; i++) roomNames[i] = `room-${i}`;

  // Zipf CDF over ranks 1..R.
  const cdf = new Float64Array(r);
  let total = 0;
  for (let i = 0; i < r; i++) {
    total += 1 / Math.pow(i + 1, zipf);
    cdf[i] = total;
  }
  for (let i = 0; i < r; i++) cdf[i] /= total;
  const draw = (): number => {
    const u = rng.next();
    let lo = 0;
    let hi = r - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] <= u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  const roomsOf = new Int32Array(n * k);
  const roomSizes = new Int32Array(r);
  for (let s = 0; s < n; s++) {
    const base = s * k;
    for (let j = 0; j < k; j++) {
      let room = draw();
      // K distinct rooms per socket: redraw duplicates.
      for (let dup = true; dup; ) {
        dup = false;
        for (let q = base; q < base + j; q++) {
          if (roomsOf[q] === room) {
            dup = true;
            room = draw();
            break;
          }
        }
      }
      roomsOf[base + j] = room;
      roomSizes[room]++;
    }
  }

  // Selections used by the workloads.
  let smallRoom = 0;
  for (let i = 0; i < r; i++) {
    if (Math.abs(roomSizes[i] - 100) < Math.abs(roomSizes[smallRoom] - 100)) smallRoom = i;
  }
  let smallRoomSender = -1;
  for (let s = 0; s < n && smallRoomSender < 0; s++) {
    for (let j = 0; j < k; j++) if (roomsOf[s * k + j] === smallRoom) smallRoomSender = s;
  }
  let bigRoom = 0;
  for (let i = 0; i < r; i++) if (roomSizes[i] > roomSizes[bigRoom]) bigRoom = i;

  // 100 rooms of size about N/1000 (so the union reaches about 10% of the
  // sockets), drawn at random from those within [T/2, 2T], widening the band
  // if there are too few.
  const target = Math.max(1, n / 1000);
  let candidates: number[] = [];
  for (let widen = 1; candidates.length < 100 && widen < 64; widen *= 2) {
    candidates = [];
    for (let i = 0; i < r; i++) {
      if (roomSizes[i] >= target / (2 * widen) && roomSizes[i] <= target * 2 * widen) candidates.push(i);
    }
  }
  if (params.hundredRooms === false) candidates = [];
  else if (candidates.length < 100) throw new Error(`workload has fewer than 100 rooms near size ${target}`);
  for (let i = candidates.length - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    [candidates[i], candidates[j]] = [candidates[j], candidates[i]];
  }
  const hundredRooms = Int32Array.from(candidates.slice(0, 100));

  const ownIdCount = Math.min(1024, n);
  const ownIdSockets = new Int32Array(ownIdCount);
  for (let i = 0; i < ownIdCount; i++) ownIdSockets[i] = Math.floor((i * n) / ownIdCount);

  const digest = new Digest();
  for (const id of ids) digest.addString(id);
  for (let i = 0; i < roomsOf.length; i++) digest.add(roomsOf[i]);
  digest.add(smallRoom).add(smallRoomSender).add(bigRoom);
  for (const room of hundredRooms) digest.add(room);

  return {
    params,
    ids,
    roomNames,
    roomsOf,
    roomSizes,
    memberships: n * (k + 1),
    smallRoom,
    smallRoomSender,
    bigRoom,
    hundredRooms,
    ownIdSockets,
    digest: digest.hex(),
  };
}

/** The rooms socket `s` joins on connect: its own id, then its K rooms. */
export function roomsOfSocket(w: Workload, s: number): Set<string> {
  const k = w.params.k;
  const rooms = new Set<string>([w.ids[s]]);
  for (let j = 0; j < k; j++) rooms.add(w.roomNames[w.roomsOf[s * k + j]]);
  return rooms;
}

/** Sizes of the workload's rooms, for the report. */
export function describeWorkload(w: Workload): Record<string, number | string> {
  const sorted = Array.from(w.roomSizes).sort((a, b) => b - a);
  const nonEmpty = sorted.filter((x) => x > 0);
  const quantile = (q: number) => nonEmpty[Math.min(nonEmpty.length - 1, Math.floor((1 - q) * nonEmpty.length))];
  let hundredSum = 0;
  for (const room of w.hundredRooms) hundredSum += w.roomSizes[room];
  return {
    sockets: w.params.n,
    roomsPerSocket: w.params.k,
    rooms: w.params.r,
    nonEmptyRooms: nonEmpty.length,
    zipfExponent: w.params.zipf,
    seed: w.params.seed,
    memberships: w.memberships,
    largestRoomSizes: sorted.slice(0, 5).join(","),
    roomSizeMedian: quantile(0.5),
    roomSizeP90: quantile(0.9),
    roomSizeP99: quantile(0.99),
    roomSizeMean: Math.round((w.params.n * w.params.k) / Math.max(1, nonEmpty.length)),
    smallRoomSize: w.roomSizes[w.smallRoom],
    bigRoomSize: w.roomSizes[w.bigRoom],
    hundredRoomsMemberships: hundredSum,
    digest: w.digest,
  };
}
