/**
 * Tells when a socket.io Socket gains or loses its `onAnyOutgoing` listeners,
 * so that a broadcast published to a uWS topic visits only the sockets that
 * have some (the publish itself does not call them).
 *
 * socket.io emits nothing when a listener is added: the three methods that
 * change the list are replaced on the one Socket instance (its prototype,
 * shared by every socket of every adapter, is left alone). The replacements
 * are shared by every socket, and the per-socket state is one small object:
 * a server may hold a great many sockets. Unwatching drops the state and
 * leaves the replacements inert (deleting properties would turn the Socket
 * object into a slow dictionary).
 */

type OutgoingListener = (...args: unknown[]) => void;

/** socket.io's Socket, as far as read and wrapped here. */
export interface OutgoingListenerSocket {
  onAnyOutgoing(listener: OutgoingListener): unknown;
  prependAnyOutgoing(listener: OutgoingListener): unknown;
  offAnyOutgoing(listener?: OutgoingListener): unknown;
  listenersAnyOutgoing(): unknown[];
}

/** Told when a watched socket's outgoing listeners go from none to some or back. */
export interface OutgoingListenerWatcher {
  outgoingListenersChanged(key: number, listening: boolean): void;
}

interface WatchState {
  readonly watcher: OutgoingListenerWatcher;
  readonly key: number;
  listening: boolean;
}

const WATCH = Symbol("outgoing listener watch");
const WRAPPED = ["onAnyOutgoing", "prependAnyOutgoing", "offAnyOutgoing"] as const;
type WrappedName = (typeof WRAPPED)[number];
type Watched = OutgoingListenerSocket & { [WATCH]?: WatchState };

/** Whether `socket` has outgoing listeners now. */
export function hasOutgoingListeners(socket: OutgoingListenerSocket): boolean {
  return typeof socket.listenersAnyOutgoing === "function" && socket.listenersAnyOutgoing().length > 0;
}

/** The replacement of the method `name`: the prototype's, then a report of any change. */
function replacement(name: WrappedName): (this: Watched, listener?: OutgoingListener) => unknown {
  return function (this: Watched, listener?: OutgoingListener): unknown {
    const result = (Object.getPrototypeOf(this) as Record<WrappedName, (listener?: OutgoingListener) => unknown>)[name].call(this, listener);
    const state = this[WATCH];
    if (state !== undefined) {
      const listening = hasOutgoingListeners(this);
      if (listening !== state.listening) {
        state.listening = listening;
        state.watcher.outgoingListenersChanged(state.key, listening);
      }
    }
    return result;
  };
}

const REPLACEMENTS = WRAPPED.map((name) => [name, replacement(name)] as const);

/**
 * Tells `watcher` (with `key`) each time `socket`'s outgoing listeners go
 * from none to some or back, until {@link unwatchOutgoingListeners}. Returns
 * whether it has some now.
 */
export function watchOutgoingListeners(socket: OutgoingListenerSocket, watcher: OutgoingListenerWatcher, key: number): boolean {
  const listening = hasOutgoingListeners(socket);
  const watched = socket as Watched;
  if (!Object.hasOwn(socket, WATCH)) {
    for (const [name, value] of REPLACEMENTS) Object.defineProperty(socket, name, { value, writable: true, configurable: true, enumerable: false });
  }
  if (Object.hasOwn(socket, WATCH)) watched[WATCH] = { watcher, key, listening };
  else Object.defineProperty(socket, WATCH, { value: { watcher, key, listening }, writable: true, configurable: true, enumerable: false });
  return listening;
}

export function unwatchOutgoingListeners(socket: OutgoingListenerSocket): void {
  const watched = socket as Watched;
  if (watched[WATCH] !== undefined) watched[WATCH] = undefined;
}
