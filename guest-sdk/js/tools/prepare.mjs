// Prepares the SDK: TypeScript types generated from the WIT contract
// (generated/types, by jco's type generator) and the SDK compiled to
// JavaScript with its .d.ts (dist/). Skipped when its inputs did not change.
//
//   node tools/prepare.mjs [--force]

import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const SDK_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const WIT_DIR = join(SDK_DIR, "..", "wit");
const GENERATED = join(SDK_DIR, "generated");
const STAMP = join(GENERATED, "inputs.sha256");

/** The WIT packages a plugin world needs, flattened as wit-parser wants them under deps/. */
export const WIT_DEPS = {
  "orizuru-service": join(WIT_DIR, "service.wit"),
  logging: join(WIT_DIR, "deps", "logging"),
  config: join(WIT_DIR, "deps", "config"),
  keyvalue: join(WIT_DIR, "deps", "keyvalue"),
};

function fail(sentence) {
  console.error(`orizuru js sdk: ${sentence}`);
  process.exit(1);
}

function files(path) {
  if (!existsSync(path)) return [];
  if (statSync(path).isFile()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((name) => files(join(path, name)));
}

function inputsHash() {
  const hash = createHash("sha256");
  const inputs = [
    ...files(join(SDK_DIR, "src")),
    ...files(WIT_DIR),
    join(SDK_DIR, "tsconfig.json"),
    join(SDK_DIR, "package-lock.json"),
    fileURLToPath(import.meta.url),
  ];
  for (const file of inputs) {
    hash.update(relative(SDK_DIR, file));
    hash.update(readFileSync(file));
  }
  return hash.digest("hex");
}

/** Writes a WIT package whose world `plugin` holds `imports` besides the handler export. */
export function writeWorld(dir, imports) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "deps"), { recursive: true });
  for (const [name, source] of Object.entries(WIT_DEPS)) {
    const target = join(dir, "deps", name);
    mkdirSync(target, { recursive: true });
    for (const file of files(source)) {
      writeFileSync(join(target, relative(statSync(source).isFile() ? dirname(source) : source, file)), readFileSync(file));
    }
  }
  const lines = imports.map((name) => `    import ${name};`);
  writeFileSync(
    join(dir, "world.wit"),
    `package orizuru:js-plugin;\n\nworld plugin {\n    include orizuru:service/plugin@0.1.0;\n${lines.join("\n")}\n}\n`,
  );
}

/** Finds a package under node_modules as Node would from `fromDir`. */
function findPackage(fromDir, name) {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", ...name.split("/"));
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

async function generateTypes() {
  const transpileDir = findPackage(SDK_DIR, "@bytecodealliance/jco-transpile");
  if (!transpileDir) fail("@bytecodealliance/jco-transpile is missing from node_modules; run guest-sdk/js/install");
  // jco's type generator is a component run on preview2-shim, which gives it
  // no filesystem unless told; `jco types` 1.35 does not tell it, so it
  // cannot read any WIT. Give its shim (the very instance it loads) the root.
  const shimDir = findPackage(transpileDir, "@bytecodealliance/preview2-shim");
  const { _setPreopens } = await import(pathToFileURL(join(shimDir, "dist", "nodejs", "filesystem.js")).href);
  _setPreopens({ "/": "/" });
  const { generateGuestTypes } = await import(pathToFileURL(join(transpileDir, "dist", "index.js")).href);

  const witDir = join(GENERATED, "wit");
  writeWorld(witDir, [
    "wasi:logging/logging@0.1.0-draft",
    "wasi:config/store@0.2.0-rc.1",
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:keyvalue/atomics@0.2.0-draft",
    "orizuru:service/sql@0.1.0",
  ]);
  const outDir = join(GENERATED, "types");
  rmSync(outDir, { recursive: true, force: true });
  const generated = await generateGuestTypes(witDir, { worldName: "plugin", outDir: `${outDir}/` });
  for (const [path, bytes] of Object.entries(generated)) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, bytes);
  }
  rmSync(witDir, { recursive: true, force: true });
}

function compileSdk() {
  rmSync(join(SDK_DIR, "dist"), { recursive: true, force: true });
  const tsc = join(SDK_DIR, "node_modules", "typescript", "bin", "tsc");
  const run = spawnSync(process.execPath, [tsc, "-p", join(SDK_DIR, "tsconfig.json")], { stdio: "inherit" });
  if (run.status !== 0) fail("the SDK's TypeScript did not compile (see above)");
  // The SDK's declarations name the WIT modules; make dist/index.d.ts bring
  // their generated declarations along, so a plugin's editor sees them too.
  const index = join(SDK_DIR, "dist", "index.d.ts");
  writeFileSync(index, `/// <reference path="../generated/types/plugin.d.ts" />\n${readFileSync(index, "utf8")}`);
}

/** Makes generated/ and dist/ current; answers whether it had to. */
export async function prepare({ force = false } = {}) {
  if (!existsSync(join(SDK_DIR, "node_modules", "typescript"))) {
    fail("the SDK's tools are not installed; run guest-sdk/js/install");
  }
  const hash = inputsHash();
  if (!force && existsSync(STAMP) && readFileSync(STAMP, "utf8") === hash && existsSync(join(SDK_DIR, "dist", "index.js"))) {
    return false;
  }
  mkdirSync(GENERATED, { recursive: true });
  await generateTypes();
  compileSdk();
  writeFileSync(STAMP, hash);
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = Date.now();
  const did = await prepare({ force: process.argv.includes("--force") });
  console.log(did ? `orizuru js sdk: types generated and SDK compiled in ${Date.now() - started} ms` : "orizuru js sdk: up to date");
}
