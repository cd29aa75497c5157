/**
 * Helpers shared by the public-API suites (test/api-*.test.ts): the adapter
 * variants they compare, running one scenario against each of them, stable
 * names for socket ids, and capturing console.warn.
 */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import type { ServerOptions } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { ShardedAdapter, type ShardedAdapterOptions } from "../lib/index";
import { startServer, type AdapterKind, type TestServer } from "./helpers";

export interface ApiVariant {
  readonly name: string;
  readonly kind: AdapterKind;
  readonly adapterOptions: ShardedAdapterOptions;
  /** offloadThreshold 0: every selection must go through the worker pool. */
  readonly offloaded: boolean;
}

export const REFERENCE: ApiVariant = { name: "in-memory", kind: "in-memory", adapterOptions: {}, offloaded: false };
export const SHARDED_DEFAULTS: ApiVariant = { name: "sharded (defaults)", kind: "sharded", adapterOptions: {}, offloaded: false };
export const SHARDED_OFFLOADED: ApiVariant = {
  name: "sharded (workers 2, offloadThreshold 0)",
  kind: "sharded",
  adapterOptions: { workers: 2, offloadThreshold: 0 },
  offloaded: true,
};

/** The reference first: its observation is what the others must equal. */
export const API_VARIANTS: readonly ApiVariant[] = [REFERENCE, SHARDED_DEFAULTS, SHARDED_OFFLOADED];

export function startApiServer(variant: ApiVariant, serverOptions: Partial<ServerOptions> = {}): Promise<TestServer> {
  return startServer(variant.kind, serverOptions, variant.adapterOptions);
}

/**
 * Runs `scenario` once per variant, each as a subtest of `t`, in order; the
 * in-memory adapter's observation is the reference the sharded ones must
 * deep-equal. `check` asserts what every variant must observe (so that a
 * wrong reference fails too).
 */
export async function acrossVariants<T>(
  t: TestContext,
  scenario: (variant: ApiVariant) => Promise<T>,
  check?: (observation: T, variant: ApiVariant) => void,
  variants: readonly ApiVariant[] = API_VARIANTS,
): Promise<void> {
  let reference: { value: T } | undefined;
  for (const variant of variants) {
    await t.test(variant.name, async () => {
      const observation = await bounded(variant.name, scenario(variant));
      check?.(observation, variant);
      if (variant.kind === "in-memory") {
        reference = { value: observation };
      } else {
        assert.ok(reference, "the in-memory reference run failed, nothing to compare with");
        assert.deepEqual(observation, reference.value, `${variant.name} observed something else than the in-memory adapter`);
      }
    });
  }
}

/** Servers of withApiServer() not closed yet: closed by force when a scenario runs out of time. */
const openServers = new Set<TestServer>();

/** Runs `body` with a server of `variant` and always closes it. */
export async function withApiServer<T>(
  variant: ApiVariant,
  body: (server: TestServer) => Promise<T>,
  serverOptions: Partial<ServerOptions> = {},
): Promise<T> {
  const server = await startApiServer(variant, serverOptions);
  openServers.add(server);
  try {
    return await body(server);
  } finally {
    openServers.delete(server);
    await server.close();
  }
}

/** How long one scenario may take before it is failed (a liveness bound, not a timing assertion). */
export const SCENARIO_LIMIT_MS = 90_000;

/**
 * Resolves as `work` does; if it has not settled within `limitMs`, rejects
 * and closes every server still open, so that a scenario stuck waiting for
 * something that never comes fails instead of hanging the test file.
 */
export async function bounded<T>(label: string, work: Promise<T>, limitMs = SCENARIO_LIMIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const stuck = [...openServers];
      openServers.clear();
      void Promise.allSettled(stuck.map((server) => server.close())).then(() =>
        reject(new Error(`${label}: did not finish within ${limitMs} ms (servers closed by force)`)),
      );
    }, limitMs);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * For a sharded variant with offloadThreshold 0, asserts that selections of
 * namespace `name` did go through the worker pool.
 */
export function assertOffloaded(server: TestServer, variant: ApiVariant, name = "/"): void {
  if (!variant.offloaded) return;
  const adapter = server.io.of(name).adapter;
  assert.ok(adapter instanceof ShardedAdapter, `namespace ${name} should use the sharded adapter`);
  assert.ok(adapter.stats().pool.offloaded > 0, `expected selections through the workers: ${JSON.stringify(adapter.stats().pool)}`);
}

/** Names socket ids in the order they are registered (c0, c1, ...) so runs compare. */
export class Names {
  private readonly byId = new Map<string, string>();

  constructor(
    private readonly prefix = "c",
    clients: readonly ClientSocket[] = [],
  ) {
    clients.forEach((client) => this.add(client.id as string));
  }

  add(id: string, name = `${this.prefix}${this.byId.size}`): string {
    this.byId.set(id, name);
    return name;
  }

  /** The name of a known id; an unknown id is returned marked, so a comparison shows it. */
  of(id: string): string {
    return this.byId.get(id) ?? `?${id}`;
  }

  /** Sorted names of ids. */
  sorted(ids: Iterable<string>): string[] {
    return [...ids].map((id) => this.of(id)).sort();
  }

  /** A room name with socket ids replaced by their names. */
  room(room: unknown): unknown {
    return typeof room === "string" && this.byId.has(room) ? this.byId.get(room) : room;
  }
}

/** Calls `body` with console.warn captured; restores it afterwards. */
export async function captureWarnings<T>(body: () => T | Promise<T>): Promise<{ result: T; warnings: unknown[][] }> {
  const warnings: unknown[][] = [];
  const original = console.warn;
  console.warn = (...args: unknown[]) => {
    warnings.push(args);
  };
  try {
    const result = await body();
    return { result, warnings };
  } finally {
    console.warn = original;
  }
}

/** Resolves when `predicate` holds, checking after each turn of the event loop; rejects after `limitMs`. */
export async function until(predicate: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
