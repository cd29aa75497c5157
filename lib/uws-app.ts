/**
 * The uWebSockets.js app a socket.io server is attached to (`io.attachApp(app)`).
 *
 * socket.io keeps neither the app nor a way to reach it (engine.io's uServer
 * drops it too), so the adapter wraps `attachApp` on each server whose
 * namespaces it serves, before the app is attached (socket.io builds the
 * main namespace's adapter in its constructor), and records the app passed.
 * Only that one server instance is wrapped: no prototype is patched. An
 * adapter set after `attachApp` finds nothing recorded, and publishes
 * through a websocket instead (see uws-topics.ts).
 */

/** The part of a uWebSockets.js TemplatedApp used here. */
export interface UwsApp {
  publish(topic: string, message: string | ArrayBuffer | ArrayBufferView, isBinary?: boolean, compress?: boolean): boolean;
}

/** socket.io's Server, as far as read and wrapped here. */
interface AttachableServer {
  attachApp?: (app: unknown, opts?: unknown) => unknown;
  /** engine.io's server, set by `attachApp` (as by `attach`/`listen`). */
  engine?: unknown;
}

/** Each app recorded, with the engine `attachApp` made for it: the server may be attached elsewhere later. */
const attachedApps = new WeakMap<object, { readonly app: UwsApp; readonly engine: unknown }>();
const watchedServers = new WeakSet<object>();

function isUwsApp(app: unknown): app is UwsApp {
  return app !== null && typeof app === "object" && typeof (app as Partial<UwsApp>).publish === "function";
}

/** Records the app of each later `attachApp` call on `server` (idempotent). */
export function watchAttachApp(server: object): void {
  if (watchedServers.has(server)) return;
  const attachable = server as AttachableServer;
  const original = attachable.attachApp;
  if (typeof original !== "function") return; // a socket.io without uWS support
  watchedServers.add(server);
  Object.defineProperty(server, "attachApp", {
    value: function attachApp(this: AttachableServer, app: unknown, opts?: unknown): unknown {
      const result = original.call(this, app, opts);
      if (isUwsApp(app)) attachedApps.set(this, { app, engine: this.engine });
      return result;
    },
    writable: true,
    configurable: true,
    enumerable: false,
  });
}

/** The app `server` serves on now, if `attachApp` was called through {@link watchAttachApp}'s wrapper. */
export function attachedApp(server: object): UwsApp | undefined {
  const attached = attachedApps.get(server);
  return attached !== undefined && attached.engine === (server as AttachableServer).engine ? attached.app : undefined;
}
