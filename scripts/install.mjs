#!/usr/bin/env node
// The package's install script. Nothing to do when the native files are already there: the installed platform
// package (@vidllama/<platform>-<arch>, an optional dependency), a prebuild in prebuilds/, or VIDLLAMA_ADDON_PATH.
// Otherwise it builds from source through node-gyp-build → binding.gyp → scripts/build-native.mjs (needs cmake, git
// and a C++17 compiler), as before the platform packages existed.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(packageRoot, "package.json"));

function present() {
    if (process.env.VIDLLAMA_ADDON_PATH) return `VIDLLAMA_ADDON_PATH=${process.env.VIDLLAMA_ADDON_PATH}`;
    // The platform packages' name rule is lib/native/platform.ts; a clone before its first `tsc` has no dist/ (and no
    // platform package either).
    const compiled = join(packageRoot, "dist", "native", "platform.js");
    if (existsSync(compiled)) {
        return import(compiled).then(({ platformPackageAddon }) => {
            const found = platformPackageAddon(packageRoot);
            return "name" in found ? `${found.name} (${found.path})` : undefined;
        });
    }
    return undefined;
}

const found = await present();
if (found) {
    process.stderr.write(`[vidllama] using the native addon of ${found}\n`);
} else {
    // node-gyp-build: a prebuild or local build if there is one, else `node-gyp rebuild`.
    const r = spawnSync(process.execPath, [require.resolve("node-gyp-build/bin.js")], { cwd: packageRoot, stdio: "inherit" });
    process.exit(r.status ?? 1);
}
