/**
 * Where a server's main thread spent a run: the self time of a V8 CPU
 * profile (`.cpuprofile`, e.g. from `run.js --scale-profile=<dir>`) summed by
 * who owns the code, as shares of the busy (non-idle) time.
 *
 *   node dist/bench/profile-shares.js /tmp/prof/*.cpuprofile
 *
 * The owners: the adapter (this package's lib/, or socket.io-adapter's
 * in-memory adapter), socket.io, engine.io, ws, Node.js's JavaScript (streams,
 * net, events, timers), the socket writes themselves (the native `writev`
 * and `writeUtf8String`/`writeBuffer`: the syscalls), the garbage collector,
 * the bench's own code, and the rest. This is the evidence behind the storm's
 * floor in the README: whatever an adapter saves can only come out of its own
 * share.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string };
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Who owns the code a sample was in. */
export type Owner = "adapter" | "socket.io" | "engine.io" | "ws" | "node.js" | "socket writes (syscalls)" | "gc" | "bench" | "other" | "idle";

const SOCKET_WRITES = new Set(["writev", "writeBuffer", "writeUtf8String", "writeLatin1String", "writeAsciiString"]);

export function ownerOf(frame: ProfileNode["callFrame"]): Owner {
  const { url, functionName } = frame;
  if (url === "") {
    if (functionName === "(idle)") return "idle";
    if (functionName === "(garbage collector)") return "gc";
    if (SOCKET_WRITES.has(functionName)) return "socket writes (syscalls)";
    return "other";
  }
  // The innermost package: socket.io-adapter's own copy of ws is ws.
  const packageMatch = /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (packageMatch !== null) {
    const name = packageMatch[1];
    if (name === "socket.io-adapter") return "adapter";
    if (name === "socket.io" || name === "engine.io" || name === "ws") return name;
    return "other";
  }
  if (url.includes("/lib/")) return "adapter";
  if (url.includes("/bench/")) return "bench";
  if (url.startsWith("node:")) return "node.js";
  return "other";
}

/** Milliseconds of self time per owner (time deltas attributed to the sample they precede, as V8 does). */
export function selfTimeByOwner(profile: CpuProfile): Map<Owner, number> {
  const owners = new Map<number, Owner>();
  for (const node of profile.nodes) owners.set(node.id, ownerOf(node.callFrame));
  const byOwner = new Map<Owner, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const owner = owners.get(profile.samples[i]) ?? "other";
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + ms);
  }
  return byOwner;
}

function main(files: readonly string[]): void {
  if (files.length === 0) throw new Error("usage: node dist/bench/profile-shares.js <file.cpuprofile>...");
  const owners: Owner[] = ["adapter", "socket writes (syscalls)", "node.js", "engine.io", "socket.io", "ws", "gc", "bench", "other"];
  const header = ["profile", "busy ms", ...owners.map((o) => `${o} %`)];
  const rows = files.map((file) => {
    const byOwner = selfTimeByOwner(JSON.parse(readFileSync(file, "utf8")) as CpuProfile);
    let busy = 0;
    for (const [owner, ms] of byOwner) if (owner !== "idle") busy += ms;
    return [basename(file), busy.toFixed(0), ...owners.map((o) => ((100 * (byOwner.get(o) ?? 0)) / busy).toFixed(1))];
  });
  console.log(`| ${header.join(" | ")} |`);
  console.log(`|${header.map(() => "---").join("|")}|`);
  for (const row of rows) console.log(`| ${row.join(" | ")} |`);
}

if (require.main === module) main(process.argv.slice(2));
