/**
 * The other nodes of ours that one namespace's adapter counts (serverCount)
 * and waits for (fetchSockets, serverSideEmit with acks).
 *
 * A uid is only a claim: anything that can write to the channel between
 * nodes can send heartbeats from made-up uids, and a node that waited for
 * each of them would wait for nothing until the heartbeat timeout. So a uid
 * heard in a heartbeat is a candidate until the transport confirms a node
 * behind it (over Redis: a subscriber on that uid's private channel, which
 * every node opens before its first heartbeat). Confirmed uids are
 * remembered (a bounded number, oldest dropped first) so that a known node
 * dropped for silence counts again with its next message of any kind.
 * Candidates are bounded too: under a flood the oldest are dropped, and a
 * real node is confirmed with a later heartbeat.
 */

/** Candidates waiting for confirmation, at most. */
export const MAX_PEER_CANDIDATES = 256;
/** Confirmed uids remembered after they went silent (each node restart brings a new uid). */
export const MAX_REMEMBERED_PEERS = 10_000;

export class ClusterPeers {
  /** Confirmed nodes counted now: uid -> last time heard from. */
  private readonly counted = new Map<string, number>();
  /** Every confirmed uid, oldest first (a Set keeps insertion order). */
  private readonly confirmed = new Set<string>();
  /** Uids heard in heartbeats, not confirmed yet: uid -> last time heard from. */
  private readonly candidates = new Map<string, number>();

  constructor(
    private readonly maxCandidates = MAX_PEER_CANDIDATES,
    private readonly maxRemembered = MAX_REMEMBERED_PEERS,
  ) {}

  /** Nodes counted now. */
  get size(): number {
    return this.counted.size;
  }

  /** Uids heard in heartbeats and not confirmed yet. */
  get candidateCount(): number {
    return this.candidates.size;
  }

  /** The uids counted now. */
  uids(): IterableIterator<string> {
    return this.counted.keys();
  }

  /** Whether `uid` was confirmed once (it may be silent now). */
  isKnown(uid: string): boolean {
    return this.confirmed.has(uid);
  }

  /**
   * A heartbeat from `uid`: counted at once when confirmed before, otherwise
   * kept as a candidate. Returns true when `uid` awaits confirmation.
   */
  heardHeartbeat(uid: string, now: number): boolean {
    if (this.confirmed.has(uid)) {
      this.counted.set(uid, now);
      return false;
    }
    this.candidates.delete(uid); // re-inserted last: the oldest are dropped first
    if (this.candidates.size >= this.maxCandidates) this.candidates.delete(this.candidates.keys().next().value as string);
    this.candidates.set(uid, now);
    return true;
  }

  /** Any other message from `uid`: a confirmed node counts again (busy nodes publish often enough to send no heartbeats). */
  heardFrom(uid: string, now: number): void {
    if (this.confirmed.has(uid)) this.counted.set(uid, now);
  }

  /** The candidates to confirm (a snapshot). */
  pendingCandidates(): string[] {
    return [...this.candidates.keys()];
  }

  /**
   * The answer for `checked` candidates: those with a node behind them
   * (`present[i]`) are counted from now on; the others are forgotten.
   */
  settle(checked: readonly string[], present: readonly boolean[]): void {
    checked.forEach((uid, i) => {
      const heardAt = this.candidates.get(uid);
      if (heardAt === undefined) return; // dropped meanwhile
      this.candidates.delete(uid);
      if (!present[i]) return;
      if (!this.confirmed.has(uid)) {
        if (this.confirmed.size >= this.maxRemembered) this.confirmed.delete(this.confirmed.values().next().value as string);
        this.confirmed.add(uid);
      }
      this.counted.set(uid, heardAt);
    });
  }

  /** Stops counting `uid` (it left or went silent); true if it was counted. It stays known. */
  forget(uid: string): boolean {
    this.candidates.delete(uid);
    return this.counted.delete(uid);
  }

  /** Counted uids not heard from since `deadline`. */
  silentSince(deadline: number): string[] {
    const silent: string[] = [];
    for (const [uid, lastSeen] of this.counted) if (lastSeen < deadline) silent.push(uid);
    return silent;
  }

  /** Forgets everything (the adapter closed). */
  clear(): void {
    this.counted.clear();
    this.candidates.clear();
  }
}
