/**
 * Tells when a socket.io Socket gains or loses its `onAnyOutgoing` listeners,
 * so that a broadcast published to a uWS topic visits only the sockets that
 * have some (the publish itself does not call them).
 *
 * socket.io emits nothing when a listener is added: the three methods that
 * change the list are wrapped on the one Socket instance (its prototype, shared
 * by every socket of every adapter, is left alone), and the wrappers removed
 * when the socket is no longer watched.
 */

/** socket.io's Socket, as far as read and wrapped here. */
export interface OutgoingListenerSocket {
  onAnyOutgoing(listener: (...args: unknown[]) => void): unknown;
  prependAnyOutgoing(listener: (...args: unknown[]) => void): unknown;
  offAnyOutgoing(listener?: (...args: unknown[]) => void): unknown;
  listenersAnyOutgoing(): unknown[];
}

const WRAPPED = ["onAnyOutgoing", "prependAnyOutgoing", "offAnyOutgoing"] as const;

/** Whether `socket` has outgoing listeners now. */
export function hasOutgoingListeners(socket: OutgoingListenerSocket): boolean {
  return typeof socket.listenersAnyOutgoing === "function" && socket.listenersAnyOutgoing().length > 0;
}

/**
 * Calls `onChange` with the new state each time `socket`'s outgoing listeners
 * go from none to some or back. Returns the function that stops watching.
 */
export function watchOutgoingListeners(socket: OutgoingListenerSocket, onChange: (listening: boolean) => void): () => void {
  let listening = hasOutgoingListeners(socket);
  for (const name of WRAPPED) {
    const original = socket[name];
    if (typeof original !== "function") continue;
    Object.defineProperty(socket, name, {
      value: function (this: OutgoingListenerSocket, listener?: (...args: unknown[]) => void): unknown {
        const result = (original as (listener?: (...args: unknown[]) => void) => unknown).call(this, listener);
        const now = hasOutgoingListeners(socket);
        if (now !== listening) {
          listening = now;
          onChange(now);
        }
        return result;
      },
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }
  return () => {
    for (const name of WRAPPED) delete (socket as unknown as Record<string, unknown>)[name];
  };
}
