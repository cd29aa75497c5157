/**
 * Fake sockets for driving an adapter through a real socket.io namespace
 * without network: they are what socket.io's Socket is to the adapter (an
 * id, `client.writeToEngine`, join/leave/disconnect through the adapter),
 * and count the packets written to them.
 */
import type { Namespace, Server } from "socket.io";

export interface FakeSocket {
  id: string;
  received: number;
  client: { writeToEngine(): void };
  join(rooms: unknown): void;
  leave(room: unknown): void;
  disconnect(): void;
}

/** Connects a fake socket to `nsp` as socket.io does: registered, then joined to its own-id room. */
export function connectFake(nsp: Namespace, id: string): FakeSocket {
  const adapter = nsp.adapter;
  const socket: FakeSocket = {
    id,
    received: 0,
    client: {
      writeToEngine() {
        socket.received++;
      },
    },
    join(rooms) {
      adapter.addAll(id, new Set(Array.isArray(rooms) ? rooms : [rooms]));
    },
    leave(room) {
      adapter.del(id, room as string);
    },
    disconnect() {
      disconnectFake(nsp, id);
    },
  };
  (nsp.sockets as Map<string, unknown>).set(id, socket);
  adapter.addAll(id, new Set([id]));
  return socket;
}

/** Disconnects as socket.io does: leave every room, then unregister. */
export function disconnectFake(nsp: Namespace, id: string): void {
  nsp.adapter.delAll(id);
  nsp.sockets.delete(id);
}

/**
 * Closes every namespace's adapter of a server that was never attached to an
 * HTTP server (`io.close()` would fail on the missing engine after doing so).
 */
export async function closeDetached(io: Server): Promise<void> {
  const namespaces = (io as unknown as { _nsps: Map<string, Namespace> })._nsps;
  await Promise.all(Array.from(namespaces.values(), (nsp) => nsp.adapter.close()));
}
