#!/usr/bin/env node
// Turns a plugin's source directory into an Orizuru plugin component.
//
//   orizuru-build PLUGIN_DIR OUT.wasm [--with logging,config,keyvalue,sql]
//
// 1. type-checks the plugin with tsc (its entry is src/index.ts,
//    src/index.js, index.ts or index.js; its own tsconfig.json is extended
//    when it has one);
// 2. bundles it, this SDK and the plugin's npm dependencies into one ES
//    module with rolldown, the WIT interfaces left as imports;
// 3. componentizes it with componentize-js against a world holding the
//    handler export and exactly the capabilities asked for with --with (an
//    interpreted component imports every interface of its world, and the
//    host refuses a plugin importing one its service is not granted).

import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const SDK_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
const WIT = join(SDK_DIR, "wit");
/** Only an Orizuru checkout has the tools that prepare the SDK; a package is shipped prepared. */
const PREPARE = join(SDK_DIR, "tools", "prepare.mjs");
const require = createRequire(import.meta.url);

const CAPABILITIES = {
  logging: {
    imports: ["wasi:logging/logging@0.1.0-draft"],
    code: `import * as logging from "wasi:logging/logging@0.1.0-draft";`,
    value: "logging",
    grant: "logging = true",
  },
  config: {
    imports: ["wasi:config/store@0.2.0-rc.1"],
    code: `import * as config from "wasi:config/store@0.2.0-rc.1";`,
    value: "config",
    grant: "[services.config] or [services.secrets]",
  },
  keyvalue: {
    imports: ["wasi:keyvalue/store@0.2.0-draft", "wasi:keyvalue/atomics@0.2.0-draft"],
    code: `import * as keyvalueStore from "wasi:keyvalue/store@0.2.0-draft";\nimport * as keyvalueAtomics from "wasi:keyvalue/atomics@0.2.0-draft";`,
    value: "keyvalue: { store: keyvalueStore, atomics: keyvalueAtomics }",
    grant: "keyvalue = true",
  },
  sql: {
    imports: ["orizuru:service/sql@0.1.0"],
    code: `import * as sql from "orizuru:service/sql@0.1.0";`,
    value: "sql",
    grant: "[services.sql.NAME]",
  },
};

const USAGE = "usage: orizuru-build PLUGIN_DIR OUT.wasm [--with logging,config,keyvalue,sql]";

function fail(sentence) {
  console.error(`orizuru-build: ${sentence}`);
  process.exit(1);
}

function parseArgs(argv) {
  const positional = [];
  let caps = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      console.log(USAGE);
      process.exit(0);
    } else if (arg === "--with" || arg.startsWith("--with=")) {
      const value = arg === "--with" ? argv[++i] : arg.slice("--with=".length);
      if (value === undefined) fail(`--with needs a list of capabilities (${Object.keys(CAPABILITIES).join(",")})`);
      caps.push(
        ...value
          .split(",")
          .map((c) => c.trim())
          .filter((c) => c !== ""),
      );
    } else if (arg.startsWith("-")) {
      fail(`unknown option ${arg}; ${USAGE}`);
    } else {
      positional.push(arg);
    }
  }
  if (positional.length !== 2) fail(USAGE);
  for (const cap of caps) {
    if (!(cap in CAPABILITIES)) {
      fail(
        `unknown capability "${cap}" in --with; choose from ${Object.keys(CAPABILITIES).join(", ")} (outbound HTTP is not offered to JavaScript plugins)`,
      );
    }
  }
  caps = Object.keys(CAPABILITIES).filter((c) => caps.includes(c));
  return { pluginDir: resolve(positional[0]), out: resolve(positional[1]), caps };
}

function findEntry(pluginDir) {
  for (const candidate of ["src/index.ts", "src/index.js", "index.ts", "index.js"]) {
    if (existsSync(join(pluginDir, candidate))) return join(pluginDir, candidate);
  }
  fail(
    `${pluginDir} has no entry module; write src/index.ts (or src/index.js) calling exportService(new YourService())`,
  );
}

function files(path) {
  if (statSync(path).isFile()) return [path];
  return readdirSync(path).flatMap((name) => files(join(path, name)));
}

/**
 * Writes a WIT package whose world `plugin` holds the handler export and
 * `imports`, with the contract and the capability packages flattened under
 * deps/ as wit-parser wants them.
 */
function writeWorld(dir, imports) {
  const packages = {
    "orizuru-service": join(WIT, "service.wit"),
    ...Object.fromEntries(readdirSync(join(WIT, "deps")).map((name) => [name, join(WIT, "deps", name)])),
  };
  for (const [name, source] of Object.entries(packages)) {
    const target = join(dir, "deps", name);
    mkdirSync(target, { recursive: true });
    for (const file of files(source)) {
      writeFileSync(
        join(target, relative(statSync(source).isFile() ? dirname(source) : source, file)),
        readFileSync(file),
      );
    }
  }
  const lines = imports.map((name) => `    import ${name};`);
  writeFileSync(
    join(dir, "world.wit"),
    `package orizuru:js-plugin;\n\nworld plugin {\n    include orizuru:service/plugin@0.1.0;\n${lines.join("\n")}\n}\n`,
  );
}

function typecheck(pluginDir, entry, work) {
  const ownConfig = join(pluginDir, "tsconfig.json");
  const paths = { "orizuru-sdk": [join(SDK_DIR, "dist", "index.d.ts")] };
  // In a checkout a plugin may have no node_modules of its own: what it
  // imports (zod) comes from the SDK's.
  if (existsSync(PREPARE)) paths["*"] = [join(SDK_DIR, "node_modules", "*")];
  const compilerOptions = {
    noEmit: true,
    allowJs: true,
    // Each file is compiled alone by the bundler, so tsc checks that it can be.
    isolatedModules: true,
    module: "ES2022",
    moduleResolution: "bundler",
    target: "ES2022",
    types: [],
    paths,
  };
  const config = existsSync(ownConfig)
    ? { extends: ownConfig, compilerOptions, files: [entry], include: [] }
    : {
        compilerOptions: {
          ...compilerOptions,
          strict: true,
          noImplicitOverride: true,
          skipLibCheck: true,
          lib: ["ES2023", "DOM", "ESNext.Disposable"],
        },
        files: [entry],
      };
  const configPath = join(work, "tsconfig.json");
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const run = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", configPath], {
    stdio: "inherit",
  });
  if (run.status !== 0)
    fail(`the plugin in ${pluginDir} did not type-check (tsc's errors are above); fix them and build again`);
}

async function bundle(entry, caps, work) {
  const main = join(work, "entry.js");
  const lines = [
    `import { __handler, __registerCapabilities, __exportedService } from "orizuru-sdk";`,
    ...caps.map((c) => CAPABILITIES[c].code),
    `import ${JSON.stringify(entry)};`,
    `__registerCapabilities({ ${caps.map((c) => CAPABILITIES[c].value).join(", ")} });`,
    `if (!__exportedService()) {`,
    `  throw new Error("the plugin's entry module did not call exportService(new YourService()); call it once at its top level");`,
    `}`,
    `export { __handler as handler };`,
  ];
  writeFileSync(main, lines.join("\n") + "\n");
  const { rolldown } = await import("rolldown");
  const build = await rolldown({
    input: main,
    external: [/^wasi:/, /^orizuru:/],
    platform: "neutral",
    // The plugin's tsconfig is for tsc and editors; its `paths` must not
    // send the bundler to declaration files.
    tsconfig: false,
    resolve: {
      // One SDK module for the plugin and the entry: exportService and the
      // handler share its state.
      alias: { "orizuru-sdk": join(SDK_DIR, "dist", "index.js") },
      modules: ["node_modules", join(SDK_DIR, "node_modules")],
    },
    logLevel: "warn",
  });
  const output = join(work, "plugin.js");
  await build.write({ file: output, format: "esm", codeSplitting: false });
  await build.close();
  return output;
}

async function componentizeBundle(bundlePath, caps, work) {
  const witDir = join(work, "wit");
  writeWorld(
    witDir,
    caps.flatMap((c) => CAPABILITIES[c].imports),
  );
  // Called directly: jco 1.35's `componentize` command cannot build this.
  const { componentize } = await import("@bytecodealliance/componentize-js");
  const cwd = process.cwd();
  process.chdir(work);
  try {
    const { component } = await componentize({
      sourcePath: bundlePath,
      witPath: witDir,
      worldName: "plugin",
      // The world imports no wasi:http: no fetch(), no incoming handler.
      // stdio (console.* into the host's log), clocks (Date.now) and random
      // stay: every plugin call gets them.
      disableFeatures: ["http", "fetch-event"],
    });
    return component;
  } finally {
    process.chdir(cwd);
  }
}

const started = Date.now();
const { pluginDir, out, caps } = parseArgs(process.argv.slice(2));
if (!existsSync(pluginDir) || !statSync(pluginDir).isDirectory())
  fail(`${pluginDir} is not a directory; give the plugin's source directory`);
if (!existsSync(dirname(out)))
  fail(`the directory of ${out} does not exist; create it or write the component elsewhere`);

if (existsSync(PREPARE)) {
  const { prepare } = await import(pathToFileURL(PREPARE).href);
  await prepare();
}
const entry = findEntry(pluginDir);
const work = mkdtempSync(join(tmpdir(), "orizuru-js-build-"));
try {
  typecheck(pluginDir, entry, work);
  const bundled = await bundle(entry, caps, work);
  let component;
  try {
    component = await componentizeBundle(bundled, caps, work);
  } catch (err) {
    fail(`componentize-js could not make a component of ${basename(pluginDir)}: ${err?.message ?? err}`);
  }
  writeFileSync(out, component);
  const grants = caps.map((c) => CAPABILITIES[c].grant);
  console.log(
    `built ${out} (${(component.length / 1024 / 1024).toFixed(1)} MiB) in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
      (caps.length === 0
        ? "it imports no capability"
        : `it imports ${caps.join(", ")}: grant them in its [[services]] entry (${grants.join("; ")})`),
  );
} finally {
  if (!process.env.ORIZURU_KEEP_BUILD) rmSync(work, { recursive: true, force: true });
  else console.log(`build files kept in ${work}`);
}
