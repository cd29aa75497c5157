/**
 * A cluster-mode worker whose server closed (io.close()) and serves again
 * (io.attach()) rejoins the other workers: it says hello to the primary
 * again and takes their broadcasts. The parent process plays the primary.
 */
import assert from "node:assert/strict";
import { fork } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { MessageType } from "socket.io-adapter";

interface WorkerMessage {
  source?: string;
  type?: number;
  uid?: string;
  step?: string;
  text?: string;
}

test("io.close() then io.attach() in a cluster worker: the adapter says hello again, heartbeats again and takes the other workers' broadcasts", { timeout: 60_000 }, async () => {
  const child = fork(join(__dirname, "ipc-reopen-worker.js"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const seen: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const delivered = new Promise<string>((resolve, reject) => {
    void exited.then((code) => reject(new Error(`the worker exited (${code}) before a delivery; seen: ${seen.join(", ")}`)));
    child.on("message", (message: WorkerMessage) => {
      if (message.source === "_sio_adapter" && typeof message.type === "number") {
        seen.push(MessageType[message.type] ?? String(message.type));
      } else if (typeof message.step === "string") {
        seen.push(message.step);
        // Another worker's broadcast to everyone, as a primary relays it, once a client is back.
        if (message.step === "reconnected") {
          child.send({ source: "_sio_adapter", uid: "other-worker", nsp: "/", type: MessageType.BROADCAST, data: { opts: { rooms: [], except: [], flags: {} }, packet: { type: 2, data: ["news", "from another worker"], nsp: "/" } } });
        }
        if (message.step === "delivered") resolve(message.text ?? "");
      }
    });
  });
  try {
    assert.equal(await delivered, "from another worker");
    assert.equal(await exited, 0, "the worker closes and exits by itself");
  } finally {
    child.kill();
  }
  // Hello, goodbye at io.close(), then hello again when a socket joins after
  // io.attach(), and heartbeats after it (the worker stays 600 ms, heartbeatInterval 100 ms).
  const hello = seen.indexOf("INITIAL_HEARTBEAT");
  const goodbye = seen.indexOf("ADAPTER_CLOSE");
  assert.ok(hello !== -1 && goodbye > hello, seen.join(", "));
  const helloAgain = seen.indexOf("INITIAL_HEARTBEAT", goodbye);
  assert.ok(helloAgain > goodbye, `hello again after the close: ${seen.join(", ")}`);
  assert.ok(seen.indexOf("HEARTBEAT", helloAgain) > helloAgain, `heartbeats after the reopen: ${seen.join(", ")}`);
});
