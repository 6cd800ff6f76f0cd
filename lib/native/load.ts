/**
 * Loads the native addon once per thread: a prebuild from prebuilds/<platform>-<arch>/ when one fits, otherwise the
 * local build in build/Release (node-gyp-build's order). VIDLLAMA_ADDON_PATH=<file.node> loads a specific build.
 *
 * @internal
 * @module
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { NativeLoadError } from "../errors.js";
import { unpackedPath } from "./asar.js";
import { platformPackageAddon } from "./platform.js";
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

/**
 * Where the addon is, in this order: VIDLLAMA_ADDON_PATH; a local build in build/Release (a developer's, or a
 * from-source install's); the installed platform package (`@vidllama/<platform>-<arch>[-cuda]`); a prebuild in
 * prebuilds/<platform>-<arch>/. Under Electron the package's JS may be read from app.asar, while the addon, which finds
 * its libraries and backend modules in its own folder, must load from the unpacked copy.
 */
function findAddon(): string {
    const forced = process.env.VIDLLAMA_ADDON_PATH;
    if (forced) {
        if (!existsSync(forced)) throw new NativeLoadError(`VIDLLAMA_ADDON_PATH=${forced} does not exist`);
        return forced;
    }
    const local = join(packageRoot, "build", "Release", "vidllama.node");
    let found: string | undefined = existsSync(unpackedPath(local)) ? local : undefined;
    const platformPackage = found ? undefined : platformPackageAddon(packageRoot);
    if (platformPackage && "path" in platformPackage) found = platformPackage.path;
    if (!found) {
        try {
            const nodeGypBuild = require("node-gyp-build") as { resolve(dir: string): string };
            found = nodeGypBuild.resolve(packageRoot);
        } catch (err) {
            const tried = platformPackage && "tried" in platformPackage ? platformPackage.tried.join(" or ") : "a platform package";
            throw new NativeLoadError(
                `No native build of vidllama was found for ${process.platform}-${process.arch} (Node-API 8): no local build ` +
                    `(${local}), no ${tried} installed, no prebuild in ${join(packageRoot, "prebuilds", `${process.platform}-${process.arch}`)}.\n` +
                    `Possible fixes:\n` +
                    `  1. Reinstall without --no-optional / --omit=optional, so that npm installs the platform package\n` +
                    `  2. Build it in the package folder: npm run build:native (needs cmake, git and a C++17 compiler)\n` +
                    `  3. In Electron, unpack the native files from the asar archive (asarUnpack: "**/node_modules/{vidllama,@vidllama}/**")`,
                { cause: err },
            );
        }
    }
    const path = unpackedPath(found);
    if (path !== found && !existsSync(path)) {
        throw new NativeLoadError(
            `The native addon is inside the asar archive (${found}), where it cannot load, and no unpacked copy exists at ${path}. ` +
                `Unpack it: electron-builder "asarUnpack": ["**/node_modules/{vidllama,@vidllama}/**"], ` +
                `Electron Forge packagerConfig.asar.unpack: "**/node_modules/{vidllama,@vidllama}/**".`,
        );
    }
    return path;
}

export function native(): NativeAddon {
    if (addon) return addon;
    // ggml must not fork gdb for a backtrace inside the user's process if it ever aborts.
    process.env.GGML_NO_BACKTRACE ??= "1";
    const path = findAddon();
    let loaded: NativeAddon;
    try {
        loaded = require(path) as NativeAddon;
    } catch (err) {
        throw new NativeLoadError(`Could not load the native addon ${path}: ${(err as Error).message}`, { cause: err });
    }
    // The CPU code lives in modules beside the addon, one per instruction-set level (x64 baseline to AVX-512/AMX);
    // the addon loaded the best this CPU runs. None at all means a broken installation, said here once.
    if (!loaded.backends.cpuVariant) {
        throw new NativeLoadError(`The native addon ${path} found no CPU backend it can run: ${loaded.backends.cpuReason}`);
    }
    addon = loaded;
    addonPath = path;
    return addon;
}

