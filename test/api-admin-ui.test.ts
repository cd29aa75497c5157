/**
 * Compatibility with @socket.io/admin-ui: `instrument(io)` reads rooms
 * through fetchSockets() and the adapter's join-room/leave-room events. An
 * admin client rebuilds the server's sockets and rooms from what it is sent,
 * as the admin UI does; with the sharded adapter that view must match the
 * server, and what the in-memory adapter gives.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { instrument } from "@socket.io/admin-ui";
import type { Server, Socket } from "socket.io";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { acrossVariants, API_VARIANTS, Names, withApiServer, type ApiVariant } from "./api-helpers";
import { once, serverSocketOf, settle, type TestServer } from "./helpers";

interface SerializedSocket {
  id: string;
  nsp: string;
  rooms: string[];
  data: unknown;
}

/** What the admin UI keeps: namespace + socket id -> rooms, rebuilt from the admin events. */
class AdminView {
  readonly sockets = new Map<string, { nsp: string; id: string; rooms: Set<string> }>();
  /** The room events and socket events received, in order (raw ids). */
  readonly events: [string, string, string, string][] = [];
  /** Recipients the admin was told about for each emitted event name ("event_sent"). */
  readonly sent: [string, string, string][] = [];
  snapshots = 0;

  constructor(readonly client: ClientSocket) {
    client.on("all_sockets", (list: SerializedSocket[]) => {
      this.snapshots++;
      this.sockets.clear();
      for (const s of list) this.sockets.set(`${s.nsp} ${s.id}`, { nsp: s.nsp, id: s.id, rooms: new Set(s.rooms) });
    });
    client.on("socket_connected", (s: SerializedSocket) => {
      this.events.push(["socket_connected", s.nsp, "", s.id]);
      this.sockets.set(`${s.nsp} ${s.id}`, { nsp: s.nsp, id: s.id, rooms: new Set(s.rooms) });
    });
    client.on("socket_disconnected", (nsp: string, id: string) => {
      this.events.push(["socket_disconnected", nsp, "", id]);
      this.sockets.delete(`${nsp} ${id}`);
    });
    client.on("room_joined", (nsp: string, room: string, id: string) => {
      this.events.push(["room_joined", nsp, room, id]);
      this.sockets.get(`${nsp} ${id}`)?.rooms.add(room);
    });
    client.on("room_left", (nsp: string, room: string, id: string) => {
      this.events.push(["room_left", nsp, room, id]);
      this.sockets.get(`${nsp} ${id}`)?.rooms.delete(room);
    });
    client.on("event_sent", (nsp: string, id: string, args: unknown[]) => {
      this.sent.push([nsp, id, String(args[0])]);
    });
  }

  /** The view of namespace `nsp` with ids named: name -> sorted rooms. */
  rooms(nsp: string, names: Names): Record<string, unknown[]> {
    const out: Record<string, unknown[]> = {};
    for (const s of this.sockets.values()) {
      if (s.nsp === nsp) out[names.of(s.id)] = [...s.rooms].map((room) => names.room(room)).sort();
    }
    return sortKeys(out);
  }
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The server's truth for namespace `nsp`: name -> sorted rooms, from the adapter. */
function serverRooms(io: Server, nsp: string, names: Names): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const [id, rooms] of io.of(nsp).adapter.sids) {
    if (!io.of(nsp).sockets.has(id)) continue;
    out[names.of(id)] = [...rooms].map((room) => names.room(room)).sort();
  }
  return sortKeys(out);
}

async function connectAdmin(server: TestServer): Promise<AdminView> {
  const client = connect(`http://127.0.0.1:${server.port}/admin`, { transports: ["websocket"], forceNew: true, reconnection: false, autoConnect: false });
  const view = new AdminView(client);
  const snapshot = once(client, "all_sockets");
  client.connect();
  await snapshot;
  return view;
}

/**
 * Waits until everything the server did so far has reached `admin`: its
 * own requests have been handled (a ping it sends after them is answered),
 * the admin UI's nextTick-deferred room_left events are out, and a last
 * server-to-admin packet has arrived.
 */
async function sync(io: Server, admin: AdminView): Promise<void> {
  await admin.client.timeout(10_000).emitWithAck("__ping");
  await new Promise((resolve) => setImmediate(resolve));
  await settle(io, [admin.client], "/admin");
}

test("admin-ui: the admin client sees the right rooms and members as sockets join and leave", async (t) => {
  await acrossVariants(
    t,
    (variant: ApiVariant) =>
      withApiServer(variant, async (server) => {
        const { io } = server;
        instrument(io, { auth: false, mode: "development" });
        io.of("/admin").on("connection", (socket: Socket) => socket.on("__ping", (cb: () => void) => cb()));
        const names = new Names("c");
        const app = await server.connect(4);
        app.forEach((client) => names.add(client.id as string));
        const sockets = app.map((client) => serverSocketOf(io, client));
        sockets[0].join("pre");
        sockets[3].join("pre");

        const admin = await connectAdmin(server);
        names.add(admin.client.id as string, "admin");
        const steps: Record<string, unknown> = {};
        let seen = 0;
        const step = async (label: string) => {
          await sync(io, admin);
          const view = admin.rooms("/", names);
          // At every step the admin's view is the server's.
          assert.deepEqual(view, serverRooms(io, "/", names), `${variant.name}, ${label}: the admin view differs from the server`);
          const events = admin.events
            .slice(seen)
            .map(([type, nsp, room, id]) => `${type} ${nsp}${room === "" ? "" : ` ${String(names.room(room))}`} ${names.of(id)}`)
            // Room events of one operation come in member order, which the sharded adapter does not promise.
            .sort();
          seen = admin.events.length;
          steps[label] = { view, events };
        };

        await step("snapshot");
        sockets[0].join("r1");
        sockets[1].join(["r1", "r2"]);
        sockets[2].join("r2");
        await step("joins");
        io.in("r1").except("r2").socketsJoin("r3");
        io.in("r2").socketsJoin(["r4", "r5"]);
        await step("socketsJoin with except");
        sockets[1].leave("r1");
        io.in("r4").except(sockets[2].id).socketsLeave(["r4", "r5"]);
        io.socketsLeave("r2");
        await step("leave and socketsLeave");

        // Operations the admin client asks for (its "join", "leave", "emit" and "_disconnect").
        admin.client.emit("join", "/", "viaAdmin", "r1");
        admin.client.emit("leave", "/", "pre");
        admin.client.emit("join", "/", "everyone");
        await step("admin join/leave");
        admin.client.emit("emit", "/", "r3", "hello", 1);
        await settle(io, app.slice(0, 3));
        await step("admin emit");

        const [late] = await server.connect(1);
        names.add(late.id as string, "late");
        serverSocketOf(io, late).join(["r1", "r3"]);
        await step("a new socket joins");
        admin.client.emit("_disconnect", "/", false, "r3");
        await step("admin disconnects r3");
        const gone = once(sockets[2], "disconnect");
        app[2].disconnect();
        await gone;
        await step("a client leaves");

        // A second admin client starts from a fresh snapshot equal to the first one's view.
        const second = await connectAdmin(server);
        names.add(second.client.id as string, "admin2");
        steps["second admin snapshot"] = second.rooms("/", names);
        steps["admin namespace"] = admin.rooms("/admin", names);
        steps["event_sent"] = admin.sent.map(([nsp, id, ev]) => `${nsp} ${names.of(id)} ${ev}`).filter((line) => !line.endsWith("__settle")).sort();
        second.client.disconnect();
        admin.client.disconnect();
        // admin-ui's stats timer is never cleared and outlives io.close(); keep it (and the
        // deferred room_left events of the sockets io.close() disconnects) off the closed
        // adapter so that nothing fails later, in another test. What happens otherwise is
        // the subject of the next test.
        io.of("/admin").emit = () => true;
        return steps;
      }),
    (steps) => {
      const view = (s: Record<string, unknown>) => (s as { view: unknown }).view;
      assert.deepEqual(view(steps["snapshot"] as Record<string, unknown>), { c0: ["c0", "pre"], c1: ["c1"], c2: ["c2"], c3: ["c3", "pre"] });
      assert.deepEqual(steps["joins"], {
        view: { c0: ["c0", "pre", "r1"], c1: ["c1", "r1", "r2"], c2: ["c2", "r2"], c3: ["c3", "pre"] },
        events: ["room_joined / r1 c0", "room_joined / r1 c1", "room_joined / r2 c1", "room_joined / r2 c2"],
      });
      assert.deepEqual(steps["socketsJoin with except"], {
        view: { c0: ["c0", "pre", "r1", "r3"], c1: ["c1", "r1", "r2", "r4", "r5"], c2: ["c2", "r2", "r4", "r5"], c3: ["c3", "pre"] },
        events: ["room_joined / r3 c0", "room_joined / r4 c1", "room_joined / r4 c2", "room_joined / r5 c1", "room_joined / r5 c2"],
      });
      assert.deepEqual(steps["leave and socketsLeave"], {
        view: { c0: ["c0", "pre", "r1", "r3"], c1: ["c1"], c2: ["c2", "r4", "r5"], c3: ["c3", "pre"] },
        events: ["room_left / r1 c1", "room_left / r2 c1", "room_left / r2 c2", "room_left / r4 c1", "room_left / r5 c1"],
      });
      assert.deepEqual(steps["admin join/leave"], {
        view: { c0: ["c0", "everyone", "r1", "r3", "viaAdmin"], c1: ["c1", "everyone"], c2: ["c2", "everyone", "r4", "r5"], c3: ["c3", "everyone"] },
        events: [
          "room_joined / everyone c0",
          "room_joined / everyone c1",
          "room_joined / everyone c2",
          "room_joined / everyone c3",
          "room_joined / viaAdmin c0",
          "room_left / pre c0",
          "room_left / pre c3",
        ],
      });
      assert.deepEqual((steps["admin emit"] as { events: unknown }).events, []);
      assert.deepEqual(steps["a new socket joins"], {
        view: {
          c0: ["c0", "everyone", "r1", "r3", "viaAdmin"],
          c1: ["c1", "everyone"],
          c2: ["c2", "everyone", "r4", "r5"],
          c3: ["c3", "everyone"],
          late: ["late", "r1", "r3"],
        },
        events: ["room_joined / late late", "room_joined / r1 late", "room_joined / r3 late", "socket_connected / late"],
      });
      assert.deepEqual(steps["admin disconnects r3"], {
        view: { c1: ["c1", "everyone"], c2: ["c2", "everyone", "r4", "r5"], c3: ["c3", "everyone"] },
        events: [
          "room_left / c0 c0",
          "room_left / everyone c0",
          "room_left / late late",
          "room_left / r1 c0",
          "room_left / r1 late",
          "room_left / r3 c0",
          "room_left / r3 late",
          "room_left / viaAdmin c0",
          "socket_disconnected / c0",
          "socket_disconnected / late",
        ],
      });
      assert.deepEqual(steps["a client leaves"], {
        view: { c1: ["c1", "everyone"], c3: ["c3", "everyone"] },
        events: ["room_left / c2 c2", "room_left / everyone c2", "room_left / r4 c2", "room_left / r5 c2", "socket_disconnected / c2"],
      });
      assert.deepEqual(steps["second admin snapshot"], { c1: ["c1", "everyone"], c3: ["c3", "everyone"] });
      assert.deepEqual(steps["admin namespace"], { admin: ["admin"], admin2: ["admin2"] });
      // The admin's "emit" to r3 reached its one member then, and the admin was told.
      assert.deepEqual(steps["event_sent"], ["/ c0 hello"]);
    },
  );
});

/**
 * Runs, in a child process, a server of `variant` instrumented by admin-ui
 * with clients connected, closes it with io.close(), and stays alive past
 * admin-ui's 2-second stats timer; reports every uncaught exception.
 */
async function closeInstrumentedServer(variant: ApiVariant): Promise<{ code: number | null; uncaught: string[] }> {
  const code = `
    const { startServer } = require(${JSON.stringify(require.resolve("./helpers"))});
    const { instrument } = require(${JSON.stringify(require.resolve("@socket.io/admin-ui"))});
    const uncaught = [];
    process.on("uncaughtException", (err) => uncaught.push(err.name + ": " + err.message));
    (async () => {
      const server = await startServer(${JSON.stringify(variant.kind)}, {}, ${JSON.stringify(variant.adapterOptions)});
      instrument(server.io, { auth: false, mode: "development" });
      await server.connect(2, "/");
      await server.connect(1, "/admin");
      server.io.of("/").sockets.forEach((socket) => socket.join("room"));
      await server.close();
      setTimeout(() => {
        console.log(JSON.stringify(uncaught));
        process.exit(0);
      }, 2600);
    })().catch((err) => {
      console.error(err);
      process.exit(2);
    });
  `;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const [exitCode] = (await once(child, "close")) as unknown as [number | null];
  clearTimeout(timer);
  let uncaught: string[];
  try {
    uncaught = JSON.parse(stdout.trim().split("\n").pop() ?? "");
  } catch {
    throw new Error(`the child did not report (code ${exitCode}): ${stdout}\n${stderr}`);
  }
  // Each distinct error once, with how many times it was thrown.
  const counts = new Map<string, number>();
  for (const message of uncaught) counts.set(message, (counts.get(message) ?? 0) + 1);
  return { code: exitCode, uncaught: [...counts].map(([message, n]) => `${message} (x${n})`) };
}

test("admin-ui: io.close() on an instrumented server throws nothing afterwards (deferred room_left, stats timer)", async (t) => {
  // The three children run at once (each mostly waits for the timer).
  const runs = new Map(API_VARIANTS.map((variant) => [variant, closeInstrumentedServer(variant)]));
  for (const run of runs.values()) run.catch(() => {});
  await acrossVariants(t, (variant) => runs.get(variant)!, (observed) => {
    assert.deepEqual(observed, { code: 0, uncaught: [] });
  });
});
