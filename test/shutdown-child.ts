/**
 * Child process of test/restart.test.ts: a server whose clients are still
 * handshaking (an async middleware holds them) when `io.close()` runs. Prints
 * one `RESULT` line with the uncaught errors it saw, and must then exit by
 * itself: nothing the adapter started may keep the process alive.
 *
 * argv: <adapter: sharded|in-memory> <clients>
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import { createAdapter } from "../lib/index";

const [kind, count] = [process.argv[2], Number(process.argv[3])];
const uncaught: string[] = [];
process.on("uncaughtException", (error) => uncaught.push(String(error)));
process.on("unhandledRejection", (error) => uncaught.push(String(error)));

async function main(): Promise<void> {
  const http = createServer();
  const io = new Server(http, kind === "sharded" ? { adapter: createAdapter({ workers: 2 }) } : {});
  // Half the handshakes finish at once, the others wait in a middleware until after io.close() began.
  let held = 0;
  io.use((socket, next) => {
    if (held++ % 2 === 0) return next();
    setTimeout(next, 5 + (held % 20));
  });
  io.on("connection", (socket) => socket.join(["a", "b"]));
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const clients = Array.from({ length: count }, (_, i) =>
    connect(url, { transports: i % 3 === 0 ? ["polling", "websocket"] : ["websocket"], forceNew: true, reconnection: false }),
  );
  let connected = 0;
  await new Promise<void>((resolve) => {
    for (const client of clients) {
      client.on("connect", () => {
        if (++connected === Math.floor(count / 4)) resolve();
      });
    }
  });
  io.to("a").emit("during", "shutdown");
  await io.close();
  // Let the held handshakes and the clients' reactions run out.
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (const client of clients) client.disconnect();
  console.log("RESULT " + JSON.stringify({ connectedBeforeClose: connected >= Math.floor(count / 4), uncaught }));
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
