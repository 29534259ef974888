// Prepares the SDK in an Orizuru checkout, as it is packed and published:
// the WIT contract copied from guest-sdk/wit/since_v0.1.0 into wit/ (the
// package carries it), TypeScript types generated from it (generated/types,
// by jco's type generator) and the SDK compiled with its .d.ts (dist/).
// Skipped when its inputs did not change. `npm pack` runs it forced (prepack).
//
//   node tools/prepare.mjs [--force]

import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const SDK_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
/** The contract's source in the checkout; wit/ beside package.json is its packed copy. */
const CHECKOUT_WIT = join(SDK_DIR, "..", "wit", "since_v0.1.0");
const WIT = join(SDK_DIR, "wit");
const GENERATED = join(SDK_DIR, "generated");
const STAMP = join(GENERATED, "inputs.sha256");
const require = createRequire(import.meta.url);

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
    ...files(CHECKOUT_WIT),
    join(SDK_DIR, "..", "..", "LICENSE"),
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

function copyWit() {
  if (!existsSync(join(CHECKOUT_WIT, "service.wit"))) {
    fail(`${CHECKOUT_WIT} has no service.wit; prepare the SDK inside an Orizuru checkout (guest-sdk/js)`);
  }
  rmSync(WIT, { recursive: true, force: true });
  cpSync(CHECKOUT_WIT, WIT, { recursive: true });
  // The repository's licence text, which npm packs from the package's root.
  cpSync(join(SDK_DIR, "..", "..", "LICENSE"), join(SDK_DIR, "LICENSE"));
}

/** Finds a package under node_modules as Node would from `fromDir` (their exports hide package.json). */
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

  // The world with every capability, so the SDK's wrappers see them all; a
  // plugin's own build imports only those it asks for.
  const outDir = join(GENERATED, "types");
  rmSync(outDir, { recursive: true, force: true });
  const generated = await generateGuestTypes(WIT, { worldName: "plugin-with-capabilities", outDir: `${outDir}/` });
  for (const [path, bytes] of Object.entries(generated)) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, bytes);
  }
}

function compileSdk() {
  rmSync(join(SDK_DIR, "dist"), { recursive: true, force: true });
  const tsc = require.resolve("typescript/bin/tsc");
  const run = spawnSync(process.execPath, [tsc, "-p", join(SDK_DIR, "tsconfig.json")], { stdio: "inherit" });
  if (run.status !== 0) fail("the SDK's TypeScript did not compile (see above)");
  // The SDK's declarations name the WIT modules; make dist/index.d.ts bring
  // their generated declarations along, so a plugin's compiler sees them too.
  const index = join(SDK_DIR, "dist", "index.d.ts");
  writeFileSync(
    index,
    `/// <reference path="../generated/types/plugin-with-capabilities.d.ts" />\n${readFileSync(index, "utf8")}`,
  );
}

/** Makes wit/, generated/ and dist/ current; answers whether it had to. */
export async function prepare({ force = false } = {}) {
  if (!existsSync(join(SDK_DIR, "node_modules", "typescript"))) {
    fail("the SDK's tools are not installed; run guest-sdk/js/install");
  }
  const hash = inputsHash();
  const current =
    existsSync(STAMP) &&
    readFileSync(STAMP, "utf8") === hash &&
    existsSync(join(SDK_DIR, "dist", "index.js")) &&
    existsSync(join(WIT, "service.wit"));
  if (current && !force) return false;
  mkdirSync(GENERATED, { recursive: true });
  copyWit();
  await generateTypes();
  compileSdk();
  writeFileSync(STAMP, hash);
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = Date.now();
  const did = await prepare({ force: process.argv.includes("--force") });
  console.log(
    did
      ? `orizuru js sdk: prepared (WIT copied, types generated, SDK compiled) in ${Date.now() - started} ms`
      : "orizuru js sdk: up to date",
  );
}
