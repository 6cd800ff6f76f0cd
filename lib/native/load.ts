/**
 * Loads the native addon once per thread: a prebuild from prebuilds/<platform>-<arch>/ when one fits, otherwise the
 * local build in build/Release (node-gyp-build's order). VIDLLAMA_ADDON_PATH=<file.node> loads a specific build.
 *
 * @internal
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { NativeLoadError } from "../errors.js";
import type { NativeAddon } from "./types.js";

const require = createRequire(import.meta.url);
/** The package root: lib/native/ (sources) or dist/native/ (compiled) are two levels down. */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

let addon: NativeAddon | undefined;
let addonPath: string | undefined;

/** Where the loaded addon came from. */
export function nativeAddonPath(): string | undefined {
    return addonPath;
}

export function native(): NativeAddon {
    if (addon) return addon;
    // ggml must not fork gdb for a backtrace inside the user's process if it ever aborts.
    process.env.GGML_NO_BACKTRACE ??= "1";
    let path = process.env.VIDLLAMA_ADDON_PATH;
    if (!path) {
        try {
            const nodeGypBuild = require("node-gyp-build") as { resolve(dir: string): string };
            path = nodeGypBuild.resolve(packageRoot);
        } catch (err) {
            throw new NativeLoadError(
                `No native build of vidllama was found for ${process.platform}-${process.arch} (Node-API 8).\n` +
                    `Possible fixes:\n` +
                    `  1. Reinstall so that the install script can build it: npm install vidllama --foreground-scripts\n` +
                    `  2. Build it in the package folder: npm run build:native (needs cmake, git and a C++17 compiler)\n` +
                    `  3. In Electron, unpack the native files from the asar archive (asarUnpack: "**/node_modules/vidllama/**")`,
                { cause: err },
            );
        }
    }
    if (!existsSync(path)) throw new NativeLoadError(`VIDLLAMA_ADDON_PATH=${path} does not exist`);
    if (path.includes(`${sep}prebuilds${sep}`)) checkCpuForPrebuild();
    try {
        addon = require(path) as NativeAddon;
    } catch (err) {
        throw new NativeLoadError(`Could not load the native addon ${path}: ${(err as Error).message}`, { cause: err });
    }
    addonPath = path;
    return addon;
}

/**
 * The x64 prebuilds are compiled for x86-64 with AVX2/FMA/F16C (ggml's portable baseline, Haswell and newer);
 * loading them on an older CPU would kill the process with SIGILL, so refuse with an explanation instead.
 */
function checkCpuForPrebuild(): void {
    if (process.arch !== "x64" || process.platform !== "linux") return;
    let flags: Set<string>;
    try {
        const line = /^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
        if (!line) return;
        flags = new Set(line[1]!.trim().split(/\s+/));
    } catch {
        return;
    }
    const missing = ["avx", "avx2", "fma", "f16c"].filter((f) => !flags.has(f));
    if (missing.length > 0) {
        throw new NativeLoadError(
            `This CPU lacks ${missing.join(", ")}, which the prebuilt vidllama addon needs. ` +
                `Build from source for this machine: cd ${join(packageRoot)} && npm run build:native -- --native`,
        );
    }
}
