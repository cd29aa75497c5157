/**
 * A cluster worker's IPC channel to its primary, shared by the namespaces of
 * one `createAdapter({ cluster: true })` result: one `process.on("message")`
 * listener hands each adapter message to the adapters of its namespace, and
 * one bounded sender writes theirs (see ipc-sender.ts).
 *
 * The listener is added with the first namespace and removed with the last,
 * so that a worker whose servers are closed can exit.
 */
import createDebug from "debug";
import { BoundedSender, DEFAULT_SENDER_LIMITS, type IpcEndpoint, type SenderStats } from "./ipc-sender";
import { ADAPTER_SOURCE, SHARDED_SOURCE, sourceOf, validateAdapterMessage, validateShardedMessage, type IpcAdapterMessage } from "./ipc-messages";
import type { ResolvedClusterOptions } from "./options";

const debug = createDebug("socket.io-sharded-adapter:ipc");

/** What the link hands messages to: the adapter of one namespace. */
export interface IpcMember {
  readonly namespace: string;
  /** A validated adapter message of this namespace from another worker. */
  onIpcMessage(message: IpcAdapterMessage): void;
  /** The primary routes broadcasts by room: send it a snapshot of the rooms, then changes. */
  onRoutingPrimary(): void;
}

/** Counters of a worker's IPC link, in the adapter's stats. */
export interface IpcLinkStats extends SenderStats {
  /** Adapter messages received (every namespace). */
  readonly received: number;
  /** Messages with our markers that failed validation, or whose handling threw. */
  readonly invalid: number;
  /** Whether the primary routes broadcasts by room (this package's setupPrimary). */
  readonly routingPrimary: boolean;
}

export class IpcLink {
  readonly options: ResolvedClusterOptions;
  private readonly members = new Map<string, Set<IpcMember>>();
  private readonly sender: BoundedSender;
  private received = 0;
  private invalid = 0;
  private routingPrimary = false;
  private readonly listener = (message: unknown) => this.onProcessMessage(message);

  constructor(options: ResolvedClusterOptions) {
    this.options = options;
    this.sender = new BoundedSender(process as unknown as IpcEndpoint, DEFAULT_SENDER_LIMITS);
  }

  /** Whether the primary routes broadcasts by room. */
  get routedByRoom(): boolean {
    return this.routingPrimary;
  }

  join(member: IpcMember): void {
    if (this.members.size === 0) process.on("message", this.listener);
    let set = this.members.get(member.namespace);
    if (set === undefined) this.members.set(member.namespace, (set = new Set()));
    set.add(member);
  }

  /** Safe to call twice. The last member out removes the listener. */
  leave(member: IpcMember): void {
    const set = this.members.get(member.namespace);
    if (set === undefined || !set.delete(member)) return;
    if (set.size === 0) this.members.delete(member.namespace);
    if (this.members.size === 0) process.off("message", this.listener);
  }

  /** Sends a message to the primary (dropped, counted, when the channel is closed). */
  send(message: object): void {
    if (typeof process.send !== "function") return;
    this.sender.send(message);
  }

  stats(): IpcLinkStats {
    return { ...this.sender.stats(), received: this.received, invalid: this.invalid, routingPrimary: this.routingPrimary };
  }

  private onProcessMessage(message: unknown): void {
    const source = sourceOf(message);
    if (source === undefined) return; // the application's own messages
    try {
      if (source === SHARDED_SOURCE) return this.onShardedMessage(message);
      const problem = validateAdapterMessage(message);
      if (problem !== null) {
        this.invalid++;
        debug("invalid IPC message dropped: %s", problem);
        return;
      }
      const adapterMessage = message as IpcAdapterMessage;
      this.received++;
      const members = this.members.get(adapterMessage.nsp);
      if (members === undefined) return;
      for (const member of members) this.deliver(member, adapterMessage);
    } catch (error) {
      this.invalid++;
      debug("IPC message of %s could not be handled: %s", source === ADAPTER_SOURCE ? "an adapter" : "the primary", (error as Error).message);
    }
  }

  /** One adapter's failure is counted and does not keep the message from the others. */
  private deliver(member: IpcMember, message: IpcAdapterMessage): void {
    try {
      member.onIpcMessage(message);
    } catch (error) {
      this.invalid++;
      debug("IPC message of type %d for %s could not be handled: %s", message.type, message.nsp, (error as Error).message);
    }
  }

  private onShardedMessage(message: unknown): void {
    const problem = validateShardedMessage(message);
    if (problem !== null || (message as { kind: string }).kind !== "hello") {
      this.invalid++;
      debug("invalid routing message dropped: %s", problem ?? "a worker does not take room lists");
      return;
    }
    // Sent for each new adapter the primary hears of: those that already sent their rooms ignore it.
    this.routingPrimary = true;
    for (const members of this.members.values()) for (const member of members) member.onRoutingPrimary();
  }
}
