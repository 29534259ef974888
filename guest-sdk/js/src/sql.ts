// SQL on the PostgreSQL connections the service's operator declared
// ([services.sql.NAME]). A plugin names a connection; the host holds its URL
// and password, and the plugin never sees them.
//
// Needs the plugin built `--with sql` and a [services.sql.NAME] table in the
// service's [[services]] entry.
//
//     import { sql } from "orizuru-sdk";
//     const admin = sql.Connection.named("admin");
//     const rows = admin.query(
//       "SELECT datname, pg_database_size(datname) AS bytes FROM pg_database WHERE datname = $1",
//       ["orders"],
//     );
//     for (const row of rows) console.log(row.require("datname"), row.get("bytes"));
//     admin.execute(`CREATE ROLE ${sql.quoteIdentifier("orders_app")} LOGIN PASSWORD ${sql.quoteLiteral(password)}`);
//
// Each call runs one statement in a transaction of its own on a pooled
// connection: SET, temporary tables and BEGIN do not carry over. Values come
// back as `::text` writes them (`true`, `42`, `1.5`); a column of another type
// is refused until the statement casts it (`created_at::text`).

import type { DbError, SqlError } from "orizuru:service/sql@0.1.0";
import { Failed } from "./errors.js";
import { capability, importError } from "./internal.js";

export type { DbError, SqlError };

/** A value bound to a `$n` parameter, as text; `null` and `undefined` are NULL. */
export type Param = string | number | bigint | boolean | null | undefined;

function texts(params: readonly Param[]): (string | undefined)[] {
  return params.map((p) => (p === null || p === undefined ? undefined : String(p)));
}

/**
 * A statement that gave no answer, and on which connection. It is a
 * `Failed`, so thrown out of an action it answers 500 with its sentence.
 */
export class SqlFailure extends Failed {
  constructor(
    /** The connection the statement was for. */
    readonly connection: string,
    /** Why, as the host said it. */
    readonly kind: SqlError,
  ) {
    super(sentence(connection, kind));
  }

  /** The SQLSTATE, when the server refused the statement (`42P04`: the database already exists). */
  get code(): string | undefined {
    return this.kind.tag === "query-failed" ? this.kind.val.code : undefined;
  }
}

function sentence(connection: string, kind: SqlError): string {
  if (kind.tag !== "query-failed") return kind.val;
  const db = kind.val;
  let text = `PostgreSQL refused a statement on SQL connection "${connection}": ${db.message} (SQLSTATE ${db.code})`;
  if (db.detail !== undefined) text += `; ${db.detail}`;
  if (db.hint !== undefined) text += `; hint: ${db.hint}`;
  return text;
}

/** A connection the operator declared as `[services.sql.NAME]`. */
export class Connection {
  private constructor(readonly name: string) {}

  /** The connection declared as `[services.sql.<name>]`. Nothing is checked until a statement runs. */
  static named(name: string): Connection {
    return new Connection(name);
  }

  /** Runs one statement and answers its rows. */
  query(statement: string, params: readonly Param[] = []): Rows {
    const wit = capability("sql");
    try {
      const set = wit.query(this.name, statement, texts(params));
      return new Rows(set.columns, set.rows);
    } catch (err) {
      throw new SqlFailure(this.name, importError(err) as SqlError);
    }
  }

  /** Runs one statement and answers how many rows it changed. */
  execute(statement: string, params: readonly Param[] = []): number {
    const wit = capability("sql");
    try {
      return Number(wit.execute(this.name, statement, texts(params)));
    } catch (err) {
      throw new SqlFailure(this.name, importError(err) as SqlError);
    }
  }
}

/** `name` quoted as an identifier: `we"ird` → `"we""ird"`. */
export function quoteIdentifier(name: string): string {
  return capability("sql").quoteIdentifier(name);
}

/** `value` quoted as a string literal: `it's` → `'it''s'`. */
export function quoteLiteral(value: string): string {
  return capability("sql").quoteLiteral(value);
}

/** The rows a query answered. */
export class Rows implements Iterable<Row> {
  constructor(
    /** The columns' names, in order. */
    readonly columns: string[],
    private readonly values: (string | undefined)[][],
  ) {}

  get length(): number {
    return this.values.length;
  }

  /** The first row, if any. */
  first(): Row | undefined {
    return this.values.length > 0 ? new Row(this.columns, this.values[0]) : undefined;
  }

  *[Symbol.iterator](): Iterator<Row> {
    for (const values of this.values) yield new Row(this.columns, values);
  }
}

/** One row: its values by column name. */
export class Row {
  constructor(
    private readonly columns: string[],
    private readonly values: (string | undefined)[],
  ) {}

  /**
   * The value of `column`; `undefined` when it is NULL. A column the query
   * did not select is the plugin's mistake, thrown as `Failed`.
   */
  get(column: string): string | undefined {
    const index = this.columns.indexOf(column);
    if (index < 0) {
      throw new Failed(
        `the query's rows have no column "${column}" (they have ${this.columns.join(", ")}); select it, or read another`,
      );
    }
    return this.values[index];
  }

  /** The value of `column`, which must not be NULL. */
  require(column: string): string {
    const value = this.get(column);
    if (value === undefined) {
      throw new Failed(`column "${column}" of the query's row is NULL where a value was expected`);
    }
    return value;
  }

  /** The value of `column` as a whole number; `undefined` when it is NULL. */
  integer(column: string): number | undefined {
    const text = this.get(column);
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!/^[+-]?[0-9]+$/.test(text)) {
      throw new Failed(`column "${column}" of the query's row holds "${text}", which cannot be read as a whole number`);
    }
    if (!Number.isSafeInteger(value)) {
      throw new Failed(
        `column "${column}" of the query's row holds ${text}, beyond what a JavaScript number holds exactly; read it with get() as text, or BigInt(get())`,
      );
    }
    return value;
  }

  /** The value of `column` as a number; `undefined` when it is NULL. */
  number(column: string): number | undefined {
    const text = this.get(column);
    if (text === undefined) return undefined;
    const value = Number(text);
    if (text.trim() === "" || Number.isNaN(value)) {
      throw new Failed(`column "${column}" of the query's row holds "${text}", which cannot be read as a number`);
    }
    return value;
  }

  /** The value of `column` as a boolean (`true`/`false`, as `::text` writes them); `undefined` when it is NULL. */
  boolean(column: string): boolean | undefined {
    const text = this.get(column);
    if (text === undefined) return undefined;
    if (text !== "true" && text !== "false") {
      throw new Failed(`column "${column}" of the query's row holds "${text}", which cannot be read as true or false`);
    }
    return text === "true";
  }
}
