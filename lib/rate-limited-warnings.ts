/**
 * Warnings that must reach the operator without DEBUG (messages from other
 * nodes dropped as malformed, a subscription that keeps failing), and must
 * not flood the log when something floods the channel: the first of each
 * kind is written at once, later ones of that kind at most once per interval,
 * with the number left out since.
 */

/** Where a warning goes; by default `process.emitWarning` (stderr, unless node runs with --no-warnings). */
export type WarningSink = (text: string) => void;

/** Kinds remembered at once; beyond, new kinds share one slot (kinds are meant to be a fixed set of texts). */
const MAX_KINDS = 100;
const OVERFLOW_KIND = "(other kinds)";
/** Default interval between two warnings of one kind. */
export const DEFAULT_WARNING_INTERVAL_MS = 60_000;

interface KindState {
  lastWritten: number;
  suppressed: number;
}

export class RateLimitedWarnings {
  private readonly kinds = new Map<string, KindState>();

  constructor(
    private readonly sink: WarningSink = (text) => process.emitWarning(text, { type: "SocketIoShardedAdapterWarning" }),
    private readonly intervalMs = DEFAULT_WARNING_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Writes `text` unless a warning of `kind` was written less than the interval ago. */
  warn(kind: string, text: string): void {
    if (!this.kinds.has(kind) && this.kinds.size >= MAX_KINDS) kind = OVERFLOW_KIND;
    const now = this.now();
    const state = this.kinds.get(kind);
    if (state === undefined) {
      this.kinds.set(kind, { lastWritten: now, suppressed: 0 });
      this.write(text);
      return;
    }
    if (now - state.lastWritten < this.intervalMs) {
      state.suppressed++;
      return;
    }
    const suppressed = state.suppressed;
    state.lastWritten = now;
    state.suppressed = 0;
    this.write(suppressed > 0 ? `${text} (and ${suppressed} more of this kind since the last warning)` : text);
  }

  private write(text: string): void {
    try {
      this.sink(text);
    } catch {
      // a failing log must not stop message handling
    }
  }
}

/** The process's warnings about cluster messages and links (one budget for all namespaces). */
export const clusterWarnings = new RateLimitedWarnings();
