/**
 * The cross-node operations every cluster fleet must pass, written once for
 * the Redis fleets (test/cluster.test.ts, issue #6) and the Node.js cluster
 * fleets (test/ipc-cluster.test.ts, issue #12): three nodes n0, n1, n2 with
 * two websocket clients each (n0c0, n0c1, ...), and every operation started
 * from each origin node: broadcasts with rooms, except and flags (binary
 * included), acks across nodes, fetchSockets, socketsJoin/socketsLeave,
 * disconnectSockets, serverSideEmit with and without ack, serverCount, stats.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { names, unique, waitUntil, type Cluster, type ClusterNode, type TestClient } from "./cluster-helpers";
import { wireBuffer, type AdapterKind, type FetchedSocket, type WireValue } from "./cluster-protocol";

/** What the operations run on. */
export interface OperationsFleet {
  /** The adapter of each node (n0, n1, n2). */
  readonly nodes: readonly AdapterKind[];
  /** Indexes of the nodes the operations are started from. */
  readonly origins: readonly number[];
  /** Only a broadcast and fetchSockets (for the client-library variants). */
  readonly basicOnly?: boolean;
  /**
   * The clients use HTTP long-polling: socket.io drops a volatile packet for a
   * client whose poll is not pending at that moment, so volatile deliveries
   * are checked as at most once, not exactly once.
   */
  readonly polling?: boolean;
}

/** A started fleet: its Cluster (nodes n0..n2, two clients each) and how to stop it. */
export interface RunningCluster {
  readonly cluster: Cluster;
  stop(): Promise<void>;
}

/** Sorted views of fetchSockets results, comparable with deepEqual. */
function fetched(sockets: readonly FetchedSocket[]): { id: string; rooms: string[]; data: WireValue }[] {
  return sockets
    .map((socket) => ({ id: socket.id, rooms: [...socket.rooms].sort(), data: socket.data }))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function expectedFetch(clients: readonly TestClient[], roomsOf: (client: TestClient) => string[]) {
  return fetched(
    clients.map((client) => ({
      id: client.id,
      rooms: [client.id, ...roomsOf(client)],
      data: { node: client.node.name, client: client.name },
    })),
  );
}

/** Describes the suite `title` over the fleet `start()` brings up (in its `before`; stopped in its `after`). */
export function describeClusterOperations(title: string, fleet: OperationsFleet, start: () => Promise<RunningCluster>): void {
  describe(title, () => {
    let running: RunningCluster;
    let cluster: Cluster;
    /** Rooms every client joined at start, by client name. */
    const joined = new Map<string, string[]>();
    const roomsOf = (client: TestClient) => joined.get(client.name) ?? [];

    before(async () => {
      running = await start();
      cluster = running.cluster;
      // red = n0c0 n1c0 n2c1, blue = n0c1 n1c0 n2c0 (n1c0 in both), green = n2c0 n2c1
      const layout: Record<string, string[]> = {
        n0c0: ["red"],
        n0c1: ["blue"],
        n1c0: ["red", "blue"],
        n1c1: [],
        n2c0: ["blue", "green"],
        n2c1: ["red", "green"],
      };
      await Promise.all(
        Object.entries(layout).map(async ([name, rooms]) => {
          joined.set(name, rooms);
          if (rooms.length > 0) await cluster.client(name).join(...rooms);
        }),
      );
    });
    after(async () => {
      await running?.stop();
    });

    const inRoom = (room: string) => cluster.clients.filter((client) => roomsOf(client).includes(room));
    const initial = () => cluster.clients.filter((client) => joined.has(client.name));

    test("serverCount is 3 on every node", async () => {
      assert.deepEqual(await cluster.serverCounts(), [3, 3, 3]);
    });

    for (const originIndex of fleet.origins) {
      const originLabel = `from n${originIndex} (${fleet.nodes[originIndex]!})`;
      const origin = (): ClusterNode => cluster.nodes[originIndex]!;

      test(`broadcast to everyone, with a Buffer argument, ${originLabel}`, async () => {
        const tag = unique("all");
        const bytes = [0, 1, 2, 254, 255];
        await origin().request({ op: "broadcast", event: "news", args: [tag, wireBuffer(bytes), { nested: wireBuffer([7]) }] });
        await cluster.expectDelivered(origin(), "news", tag, initial(), "broadcast to everyone");
        for (const client of initial()) {
          assert.deepEqual(client.receipts("news", tag)[0]!.args, [tag, wireBuffer(bytes), { nested: wireBuffer([7]) }], `payload at ${client.name}`);
        }
      });

      test(`fetchSockets of everyone ${originLabel}`, async () => {
        const sockets = await origin().request({ op: "fetchSockets" });
        assert.deepEqual(fetched(sockets), expectedFetch(initial(), roomsOf));
      });

      if (fleet.basicOnly) continue;

      test(`broadcast to rooms: one copy per socket in several rooms, ${originLabel}`, async () => {
        const tag = unique("rooms");
        await origin().request({ op: "broadcast", event: "news", args: [tag], rooms: ["red", "blue"] });
        const expected = initial().filter((client) => roomsOf(client).some((room) => room === "red" || room === "blue"));
        assert.deepEqual(names(expected), ["n0c0", "n0c1", "n1c0", "n2c0", "n2c1"]);
        await cluster.expectDelivered(origin(), "news", tag, expected, "to red+blue");
      });

      test(`broadcast with except rooms and except socket ids ${originLabel}`, async () => {
        const tag = unique("except");
        await origin().request({ op: "broadcast", event: "news", args: [tag], rooms: ["red", "blue"], except: ["green"] });
        await cluster.expectDelivered(origin(), "news", tag, [cluster.client("n0c0"), cluster.client("n0c1"), cluster.client("n1c0")], "to red+blue except green");

        const tag2 = unique("except-id");
        const excluded = [cluster.client("n1c0"), cluster.client("n2c1")];
        await origin().request({ op: "broadcast", event: "news", args: [tag2], except: excluded.map((client) => client.id) });
        await cluster.expectDelivered(origin(), "news", tag2, initial().filter((client) => !excluded.includes(client)), "to all except two socket ids");
      });

      test(`broadcast flags: volatile, compress(false), local ${originLabel}`, async () => {
        const volatile = unique("volatile");
        await origin().request({ op: "broadcast", event: "news", args: [volatile], rooms: ["green"], flags: { volatile: true } });
        if (fleet.polling) {
          await cluster.fence(origin());
          for (const client of cluster.clients) assert.ok(client.count("news", volatile) <= (inRoom("green").includes(client) ? 1 : 0), `volatile to green at ${client.name}`);
        } else {
          await cluster.expectDelivered(origin(), "news", volatile, inRoom("green"), "volatile to green");
        }

        const compress = unique("compress");
        await origin().request({ op: "broadcast", event: "news", args: [compress, "x".repeat(2048)], rooms: ["blue"], flags: { compress: false } });
        await cluster.expectDelivered(origin(), "news", compress, inRoom("blue"), "compress(false) to blue");

        const local = unique("local");
        await origin().request({ op: "broadcast", event: "news", args: [local], flags: { local: true } });
        await cluster.expectDelivered(origin(), "news", local, cluster.clientsOf(origin()).filter((c) => joined.has(c.name)), "local to everyone");

        const localRoom = unique("local-room");
        await origin().request({ op: "broadcast", event: "news", args: [localRoom], rooms: ["red"], flags: { local: true } });
        await cluster.expectDelivered(origin(), "news", localRoom, inRoom("red").filter((c) => c.node === origin()), "local to red");
      });

      test(`socket.broadcast excludes the sender ${originLabel}`, async () => {
        const sender = cluster.clientsOf(origin())[0]!;
        const tag = unique("relay");
        await sender.relay("chat", [tag]);
        await cluster.expectDelivered(origin(), "chat", tag, initial().filter((client) => client !== sender), "socket.broadcast to all");

        const inRed = cluster.clientsOf(origin()).find((client) => roomsOf(client).includes("red"))!;
        const tag2 = unique("relay-red");
        await inRed.relay("chat", [tag2], { rooms: ["red"] });
        await cluster.expectDelivered(origin(), "chat", tag2, inRoom("red").filter((client) => client !== inRed), "socket.broadcast to red");
      });

      test(`emitWithAck gathers the acks of every node's clients ${originLabel}`, async () => {
        const tag = unique("ack");
        const all = await origin().request({ op: "emitWithAck", event: "question", args: [tag], timeout: 3000 });
        assert.deepEqual("responses" in all ? [...all.responses].sort() : all, names(initial()));

        const tag2 = unique("ack-room");
        const red = await origin().request({ op: "emitWithAck", event: "question", args: [tag2], rooms: ["red"], except: ["blue"], timeout: 3000 });
        assert.deepEqual("responses" in red ? [...red.responses].sort() : red, ["n0c0", "n2c1"]);
        await cluster.expectDelivered(origin(), "question", tag2, [cluster.client("n0c0"), cluster.client("n2c1")], "emitWithAck to red except blue");
      });

      test(`emitWithAck times out when a remote client does not answer ${originLabel}`, async () => {
        const silent = cluster.nodes.find((node) => node !== origin())!;
        const silentClient = cluster.clientsOf(silent)[0]!;
        const started = Date.now();
        const result = await origin().request({ op: "emitWithAck", event: "question", args: [{ silent: [silentClient.name] }], timeout: 400 });
        const elapsed = Date.now() - started;
        assert.ok("error" in result, `expected a timeout, got ${JSON.stringify(result)}`);
        assert.match(result.error, /timed out/);
        assert.ok(elapsed >= 350, `timed out after ${elapsed} ms`);
      });

      test(`fetchSockets with rooms, except and local ${originLabel}`, async () => {
        const green = await origin().request({ op: "fetchSockets", rooms: ["green"] });
        assert.deepEqual(fetched(green), expectedFetch(inRoom("green"), roomsOf));

        const redNotBlue = await origin().request({ op: "fetchSockets", rooms: ["red"], except: ["blue"] });
        assert.deepEqual(fetched(redNotBlue), expectedFetch([cluster.client("n0c0"), cluster.client("n2c1")], roomsOf));

        const local = await origin().request({ op: "fetchSockets", local: true });
        assert.deepEqual(fetched(local), expectedFetch(cluster.clientsOf(origin()).filter((c) => joined.has(c.name)), roomsOf));
      });

      test(`socketsJoin and socketsLeave across nodes ${originLabel}`, async () => {
        const room = unique("joined");
        // red except blue: n0c0 and n2c1 (n1c0 is in both).
        void origin().request({ op: "socketsJoin", join: room, rooms: ["red"], except: ["blue"] });
        const members = [cluster.client("n0c0"), cluster.client("n2c1")];
        const inJoined = async () => names((await origin().request({ op: "fetchSockets", rooms: [room] })).map((s) => cluster.clients.find((c) => c.id === s.id)!));
        await waitUntil(async () => (await inJoined()).length === 2, { timeout: 5000, message: `socketsJoin(${room})` });
        assert.deepEqual(await inJoined(), names(members));
        const tag = unique("to-joined");
        await origin().request({ op: "broadcast", event: "news", args: [tag], rooms: [room] });
        await cluster.expectDelivered(origin(), "news", tag, members, "broadcast to the joined room");

        // Everyone joins a second room, then everyone in green leaves both.
        const room2 = unique("joined-all");
        await origin().request({ op: "socketsJoin", join: [room2] });
        await waitUntil(async () => (await origin().request({ op: "fetchSockets", rooms: [room2] })).length === cluster.connectedClients.length, {
          timeout: 5000,
          message: `socketsJoin(${room2}) for everyone`,
        });
        await origin().request({ op: "socketsLeave", leave: [room, room2], rooms: ["green"] });
        const stay = cluster.connectedClients.filter((client) => !roomsOf(client).includes("green"));
        await waitUntil(async () => (await origin().request({ op: "fetchSockets", rooms: [room2] })).length === stay.length, {
          timeout: 5000,
          message: `socketsLeave of green`,
        });
        const tag2 = unique("after-leave");
        await origin().request({ op: "broadcast", event: "news", args: [tag2], rooms: [room, room2] });
        await cluster.expectDelivered(origin(), "news", tag2, stay, "broadcast after socketsLeave");

        // Everyone leaves both, so later tests see the initial rooms again.
        await origin().request({ op: "socketsLeave", leave: [room, room2] });
        await waitUntil(async () => (await origin().request({ op: "fetchSockets", rooms: [room, room2] })).length === 0, {
          timeout: 5000,
          message: "socketsLeave for everyone",
        });
      });

      test(`disconnectSockets with rooms and except ${originLabel}`, async () => {
        // Fresh clients, one per node, so the others stay for later tests.
        const prefix = unique("doomed") + "-";
        const doomed: TestClient[] = [];
        for (const node of cluster.nodes) doomed.push(...(await cluster.connect(node, 1, `${prefix}${node.name}-`)));
        const room = unique("doomed-room");
        const spared = doomed[1]!;
        await Promise.all(doomed.map((client) => client.join(room, room + "-all")));
        await Promise.all([spared.join(room + "-spared")]);
        await origin().request({ op: "disconnectSockets", rooms: [room], except: [room + "-spared"], close: false });
        const gone = doomed.filter((client) => client !== spared);
        await waitUntil(() => gone.every((client) => !client.connected), {
          timeout: 5000,
          message: () => `disconnectSockets to reach ${gone.filter((c) => c.connected).map((c) => c.name).join(", ")}`,
        });
        for (const client of gone) assert.equal(client.disconnectReason, "io server disconnect", client.name);
        assert.ok(spared.connected, "the excepted client stays connected");
        assert.ok(initial().every((client) => client.connected), "clients outside the room stay connected");
        const tag = unique("after-disconnect");
        await origin().request({ op: "broadcast", event: "news", args: [tag], rooms: [room + "-all"] });
        await cluster.expectDelivered(origin(), "news", tag, [spared], "broadcast to the doomed room after disconnectSockets");
        spared.disconnect();
      });

      test(`serverSideEmit reaches every other node once ${originLabel}`, async () => {
        const others = cluster.nodes.filter((node) => node !== origin());
        const tag = unique("sse");
        await Promise.all(cluster.nodes.map((node) => node.request({ op: "serverSideReceived", clear: true })));
        await origin().request({ op: "serverSideEmit", event: "cluster-test", args: [tag, wireBuffer([1, 2, 3])] });
        const receivedBy = async (node: ClusterNode) => (await node.request({ op: "serverSideReceived" })).filter((r) => r.args[0] === tag);
        await waitUntil(async () => (await Promise.all(others.map(receivedBy))).every((list) => list.length > 0), {
          timeout: 5000,
          message: "serverSideEmit to reach every other node",
        });
        // A serverSideEmit with ack afterwards: once it is answered, the first one is in everywhere.
        const barrier = await origin().request({ op: "serverSideEmitWithAck", event: "cluster-test", args: [unique("barrier")] });
        assert.ok("responses" in barrier && !("error" in barrier), JSON.stringify(barrier));
        assert.deepEqual([...barrier.responses].sort(), names(others));
        for (const node of others) {
          const got = await receivedBy(node);
          assert.deepEqual(got, [{ event: "cluster-test", args: [tag, wireBuffer([1, 2, 3])], withAck: false }], `at ${node.name}`);
        }
        assert.deepEqual(await receivedBy(origin()), [], "the origin does not get its own serverSideEmit");
      });

      test(`serverSideEmit with ack gets one answer per other node ${originLabel}`, async () => {
        const others = cluster.nodes.filter((node) => node !== origin());
        const result = await origin().request({ op: "serverSideEmitWithAck", event: "cluster-test", args: [unique("sse-ack"), { n: 1 }] });
        assert.ok("responses" in result && !("error" in result), JSON.stringify(result));
        assert.deepEqual([...result.responses].sort(), names(others));
      });
    }

    test("stats() when the adapter has it", async () => {
      for (const node of cluster.nodes) {
        const stats = await node.request({ op: "stats" });
        if (node.spec.adapter.startsWith("official")) assert.equal(stats, null);
        else assert.ok(stats !== null && typeof stats === "object", `${node.name} stats: ${JSON.stringify(stats)}`);
      }
    });
  });
}
