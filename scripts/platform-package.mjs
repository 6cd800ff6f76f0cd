#!/usr/bin/env node
// Makes the per-platform npm package of the native files (the sharp / node-llama-cpp pattern): `@vidllama/<platform>-
// <arch>[-<gpu>]` holds vidllama.node, the shared core beside it and every backend module of one build (for linux-x64:
// the 14 CPU variants and the Vulkan module), with `os`/`cpu` fields so that npm installs only the one that fits. The
// main package finds it at run time (lib/native/load.ts) and never compiles at install when one is installed.
//
//   node scripts/platform-package.mjs [--from DIR] [--out DIR] [--suffix vulkan]
//     --from    the build folder holding vidllama.node (default build/Release, what `npm run build:native` made)
//     --out     where the package folder and its tarball go (default packages/)
//     --suffix  a GPU flavour in the name (e.g. cuda: @vidllama/linux-x64-cuda), for builds with a GPU backend that
//               not every user of the platform wants to download
// Prints the tarball's path and size, and the size of each file in it.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const arg = (name, fallback) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : fallback;
};
const from = resolve(arg("from", join(packageRoot, "build", "Release")));
const outRoot = resolve(arg("out", join(packageRoot, "packages")));
const suffix = arg("suffix", "");

// The name rule lives in lib/native/platform.ts (the loader reads it too); this script runs after `npm run build:ts`.
const { platformPackageName } = await import(new URL("../dist/native/platform.js", import.meta.url).href);

const LIBRARY_FILE = /^(vidllama\.node|(lib)?(vidllama-)?(ggml|llama)[\w.-]*\.(so|dll|dylib))$/;

function main() {
    if (!existsSync(join(from, "vidllama.node"))) throw new Error(`no vidllama.node in ${from}: run npm run build:native first`);
    const main = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8"));
    const name = platformPackageName(process.platform, process.arch, suffix);
    const dir = join(outRoot, name.replace("/", "+"));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const files = readdirSync(from).filter((f) => LIBRARY_FILE.test(f)).sort();
    for (const f of files) {
        copyFileSync(join(from, f), join(dir, f));
        // Symbols are for debugging the build, not for users: strip what the dynamic linker does not need.
        if (process.platform === "linux") spawnSync("strip", ["--strip-unneeded", join(dir, f)], { stdio: "inherit" });
        else if (process.platform === "darwin") spawnSync("strip", ["-x", join(dir, f)], { stdio: "inherit" });
    }
    const modules = files.filter((f) => /ggml-(cpu|cuda|vulkan|metal)/.test(f)).map((f) => f.replace(/^(lib)?ggml-|\.(so|dll|dylib)$/g, ""));
    const pkg = {
        name,
        version: main.version,
        description: `vidllama's native addon for ${process.platform}-${process.arch}${suffix ? ` with ${suffix}` : ""}: ${modules.join(", ")}`,
        license: main.license,
        os: [process.platform],
        cpu: [process.arch],
        files: files,
        // No code: lib/native/load.ts of the vidllama package loads vidllama.node from this folder.
        main: "package.json",
    };
    writeFileSync(join(dir, "package.json"), JSON.stringify(pkg, null, 2) + "\n");
    writeFileSync(join(dir, "README.md"), `# ${name}\n\nThe native files of [vidllama](https://www.npmjs.com/package/vidllama) for ${process.platform}-${process.arch}` +
        `${suffix ? ` (${suffix})` : ""}. Install \`vidllama\`, not this package: it depends on the one that fits your machine.\n\nBackend modules: ${modules.join(", ")}.\n`);
    const r = spawnSync("npm", ["pack", "--silent", "--pack-destination", outRoot], { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`npm pack failed: ${r.stderr}`);
    const tarball = join(outRoot, r.stdout.trim().split("\n").pop());
    const unpacked = files.reduce((n, f) => n + statSync(join(dir, f)).size, 0);
    process.stdout.write(`${tarball}\n`);
    process.stderr.write(`[vidllama] ${name}@${main.version}: ${(statSync(tarball).size / 1e6).toFixed(1)} MB packed, ${(unpacked / 1e6).toFixed(1)} MB installed, ${files.length} files\n`);
    for (const f of files) process.stderr.write(`  ${f.padEnd(32)} ${(statSync(join(dir, f)).size / 1e6).toFixed(2)} MB\n`);
}

try {
    main();
} catch (err) {
    process.stderr.write(`[vidllama] ${err.message}\n`);
    process.exit(1);
}
