/**
 * Where a process's resident memory is, from /proc/self/smaps: each mapping's
 * resident bytes put in one part by what the mapping looks like (Linux x64,
 * glibc malloc, V8 without pointer compression, as Node.js 20 ships):
 *
 * - V8 heap pages: anonymous mappings below 2^46, where V8 places its pages
 *   (random address hints; glibc's mmaps and thread stacks sit near 2^47).
 *   `v8MainPhysical` is the main isolate's share (`v8.getHeapSpaceStatistics`),
 *   so the rest is the worker threads' isolates.
 * - V8 code: anonymous executable mappings (the code range).
 * - malloc, main arena: `[heap]` (brk). Freed chunks stay resident until the
 *   arena's top is trimmed, and `calloc` writes a reused chunk in full.
 * - malloc, thread arenas: 64 MiB-aligned heaps of other threads' arenas.
 * - large mappings: other anonymous rw mappings near 2^47: malloc's own mmaps
 *   of large chunks (ArrayBuffer and SharedArrayBuffer backing stores above
 *   the mmap threshold) and growable buffers (`lib/growable-buffers.ts`, V8's
 *   own mmap); their unwritten pages are not resident.
 * - thread stacks: anonymous rw mappings right above a small guard page.
 * - files: file-backed mappings and the executable's .bss.
 *
 * The classification is by shape, not by owner: adjacent mappings of the same
 * kind merge in the kernel, so a backing store cannot be told from its
 * neighbour. It is meant for differences between two points of one process.
 */
import { readFileSync } from "node:fs";
import { getHeapSpaceStatistics } from "node:v8";

export const RSS_PARTS = ["v8Heap", "v8Code", "mallocMainArena", "mallocThreadArenas", "largeMmaps", "threadStacks", "files", "other"] as const;
export type RssPart = (typeof RSS_PARTS)[number];

export const RSS_PART_LABELS: Record<RssPart, string> = {
  v8Heap: "V8 heap pages (all isolates)",
  v8Code: "V8 code",
  mallocMainArena: "malloc main arena ([heap])",
  mallocThreadArenas: "malloc thread arenas",
  largeMmaps: "large anonymous mappings (big malloc chunks, growable buffers)",
  threadStacks: "thread stacks",
  files: "files (code, data)",
  other: "other",
};

export interface RssSnapshot {
  /** Resident bytes by part; they sum to `total`. */
  readonly resident: Record<RssPart, number>;
  /** Mapped bytes by part (resident or not). */
  readonly mapped: Record<RssPart, number>;
  readonly total: number;
  /** The main isolate's heap pages actually in use by V8 (sum of the spaces' physical sizes). */
  readonly v8MainPhysical: number;
  /** `process.memoryUsage().arrayBuffers`: live ArrayBuffer and SharedArrayBuffer backing stores. */
  readonly arrayBuffers: number;
}

interface Mapping {
  readonly start: number;
  readonly end: number;
  readonly perms: string;
  readonly name: string;
  rss: number;
}

const KIB = 1024;
/** V8's random mmap hints stay below this on x64 (`GetRandomMmapAddr`). */
const V8_HINT_LIMIT = 2 ** 46;
/** glibc's HEAP_MAX_SIZE on 64-bit: a thread arena's heap is this big and aligned to it. */
const THREAD_ARENA_HEAP = 64 * 2 ** 20;
/** A guard page below a thread stack is at most this big. */
const GUARD_MAX = 64 * KIB;

function readMappings(): Mapping[] {
  const mappings: Mapping[] = [];
  let current: Mapping | undefined;
  for (const line of readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      current = { start: parseInt(header[1], 16), end: parseInt(header[2], 16), perms: header[3], name: header[4], rss: 0 };
      mappings.push(current);
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && current) current.rss = Number(rss[1]) * KIB;
  }
  return mappings;
}

function classify(mappings: readonly Mapping[], i: number): RssPart {
  const m = mappings[i];
  const previous = i > 0 ? mappings[i - 1] : undefined;
  const next = mappings[i + 1];
  if (m.name === "[heap]") return "mallocMainArena";
  if (m.name === "[stack]") return "threadStacks";
  if (m.name.startsWith("/")) return "files";
  if (m.name.startsWith("[") && !m.name.startsWith("[anon")) return "other";
  if (previous !== undefined && previous.end === m.start && previous.name.startsWith("/")) return "files";
  if (m.perms.includes("x")) return "v8Code";
  if (m.start < V8_HINT_LIMIT) return "v8Heap";
  const size = m.end - m.start;
  if (m.start % THREAD_ARENA_HEAP === 0 && (size === THREAD_ARENA_HEAP || (next !== undefined && next.start === m.end && next.perms === "---p" && next.end - m.start === THREAD_ARENA_HEAP))) {
    return "mallocThreadArenas";
  }
  if (previous !== undefined && previous.end === m.start && previous.perms === "---p" && previous.end - previous.start <= GUARD_MAX) return "threadStacks";
  return m.perms.startsWith("rw") ? "largeMmaps" : "other";
}

function zeroParts(): Record<RssPart, number> {
  return Object.fromEntries(RSS_PARTS.map((p) => [p, 0])) as Record<RssPart, number>;
}

/** This process's resident memory by part, now. Linux only: elsewhere, undefined. */
export function rssSnapshot(): RssSnapshot | undefined {
  let mappings: Mapping[];
  try {
    mappings = readMappings();
  } catch {
    return undefined;
  }
  const resident = zeroParts();
  const mapped = zeroParts();
  let total = 0;
  for (let i = 0; i < mappings.length; i++) {
    const part = classify(mappings, i);
    resident[part] += mappings[i].rss;
    mapped[part] += mappings[i].end - mappings[i].start;
    total += mappings[i].rss;
  }
  const v8MainPhysical = getHeapSpaceStatistics().reduce((sum, space) => sum + space.physical_space_size, 0);
  return { resident, mapped, total, v8MainPhysical, arrayBuffers: process.memoryUsage().arrayBuffers };
}

/** One line per part (and the V8 main/other split), growth from `before` to `after` in bytes per `units`. */
export function describeRssGrowth(before: RssSnapshot, after: RssSnapshot, units: number): string[] {
  const per = (bytes: number) => `${(bytes / units).toFixed(1)} B`;
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  const lines: string[] = [];
  for (const part of RSS_PARTS) {
    const grown = after.resident[part] - before.resident[part];
    const mappedGrown = after.mapped[part] - before.mapped[part];
    if (grown === 0 && mappedGrown === 0) continue;
    lines.push(`${RSS_PART_LABELS[part]}: ${per(grown)} (resident ${mib(before.resident[part])} -> ${mib(after.resident[part])}, mapped ${mib(before.mapped[part])} -> ${mib(after.mapped[part])})`);
  }
  const mainGrown = after.v8MainPhysical - before.v8MainPhysical;
  const heapGrown = after.resident.v8Heap - before.resident.v8Heap;
  lines.push(`  of the V8 heap pages: main isolate ${per(mainGrown)}, the rest (worker isolates, unused pages) ${per(heapGrown - mainGrown)}`);
  lines.push(`live ArrayBuffer backing stores: ${per(after.arrayBuffers - before.arrayBuffers)} (${mib(before.arrayBuffers)} -> ${mib(after.arrayBuffers)})`);
  lines.push(`total: ${per(after.total - before.total)}`);
  return lines;
}
