/** Errors thrown by socket.io-sharded-adapter. Each names what is wrong. */

/** Base class: `err instanceof ShardedAdapterError` catches all of ours. */
export class ShardedAdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** An option passed to `createAdapter()` is out of its range or of the wrong type. */
export class InvalidOptionError extends ShardedAdapterError {
  constructor(
    readonly option: string,
    readonly value: unknown,
    expected: string,
    message = `socket.io-sharded-adapter: option "${option}" must be ${expected}, got ${describe(value)}`,
  ) {
    super(message);
  }
}

/** Something tried to write to `adapter.rooms`, `adapter.sids` or a set they hand out. */
export class ReadOnlyViewError extends ShardedAdapterError {
  constructor(what: string, method: string) {
    super(
      `socket.io-sharded-adapter: ${what} is a read-only view, ${method}() is not allowed; ` +
        `use socket.join()/socket.leave() (or io.socketsJoin()/io.socketsLeave()) to change rooms`,
    );
  }
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "symbol" || typeof value === "bigint") return value.toString();
  if (typeof value === "object" && value !== null) return Object.prototype.toString.call(value);
  return String(value);
}
