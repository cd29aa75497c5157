/**
 * Client-side helpers that do not load the adapter package (so that a child
 * process can load it later, see uws-scenario-child.ts); helpers.ts re-exports them.
 */
import { join } from "node:path";
import type { Server, Socket } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";

/** Root of the repository (dist/test/client-helpers.js -> ../..). */
export const REPO_ROOT = join(__dirname, "..", "..");

export function waitConnected(client: ClientSocket): Promise<void> {
  if (client.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("connect_error", reject);
  });
}

/** Server-side socket of a connected client. */
export function serverSocketOf(io: Server, client: ClientSocket, namespace = "/"): Socket {
  const socket = io.of(namespace).sockets.get(client.id as string);
  if (!socket) throw new Error(`no server socket for client ${client.id}`);
  return socket;
}

/**
 * Waits until the server's pending writes have reached every client: a ping
 * event round-trips through each client after everything sent before it.
 */
export async function settle(io: Server, clients: ClientSocket[], namespace = "/"): Promise<void> {
  await Promise.all(
    clients.map(
      (client) =>
        new Promise<void>((resolve) => {
          client.once("__settle", () => resolve());
          serverSocketOf(io, client, namespace).emit("__settle");
        }),
    ),
  );
}
