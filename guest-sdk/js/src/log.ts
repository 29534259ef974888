// Lines into the host's log, at a level, tagged by the host with the
// service, the instance, the request id and tsuru's event id.
//
// Needs the plugin built `--with logging` and `logging = true` in the
// service's [[services]] entry. (What a plugin prints with console.log or
// console.error reaches the log too, without a level, and needs no grant.)
//
//     import { log } from "orizuru-sdk";
//     log.info("creating the database");

import { capability } from "./internal.js";

type Level = "trace" | "debug" | "info" | "warn" | "error" | "critical";

function line(level: Level, message: string): void {
  capability("logging").log(level, "", message);
}

/** Logs at the trace level. */
export function trace(message: string): void {
  line("trace", message);
}

/** Logs at the debug level. */
export function debug(message: string): void {
  line("debug", message);
}

/** Logs at the info level. */
export function info(message: string): void {
  line("info", message);
}

/** Logs at the warn level. */
export function warn(message: string): void {
  line("warn", message);
}

/** Logs at the error level. */
export function error(message: string): void {
  line("error", message);
}
