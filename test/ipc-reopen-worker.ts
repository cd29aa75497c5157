/**
 * Child of test/ipc-reopen.test.ts: a cluster-mode worker (its parent plays
 * the primary) that serves, closes with io.close(), and serves again after
 * io.attach(). Reports each step to the parent as { step }.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import { createAdapter } from "../lib/index";

const report = (step: string, extra: object = {}) => process.send!({ step, ...extra });

async function listen(http: ReturnType<typeof createServer>): Promise<number> {
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  return (http.address() as AddressInfo).port;
}

async function main(): Promise<void> {
  const io = new Server(createServer(), { adapter: createAdapter({ cluster: true, workers: 1, heartbeatInterval: 100, heartbeatTimeout: 1000 }) });
  io.of("/");
  await io.close();
  report("closed");
  const http = createServer();
  io.attach(http);
  const port = await listen(http);
  const client = connect(`http://127.0.0.1:${port}`, { transports: ["websocket"], reconnection: false });
  client.on("news", (text: string) => {
    report("delivered", { text });
    // Long enough for a few heartbeats (heartbeatInterval 100 ms) of the reopened adapter.
    setTimeout(() => {
      client.disconnect();
      void io.close().then(() => process.disconnect());
    }, 600);
  });
  await new Promise<void>((resolve) => client.on("connect", () => resolve()));
  report("reconnected");
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
