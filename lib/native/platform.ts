/**
 * The per-platform packages of the native files (`@vidllama/<platform>-<arch>[-<gpu>]`, made by
 * scripts/platform-package.mjs): the one rule for their names, and where the installed one is.
 *
 * @internal
 * @module
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** GPU flavours published as their own package (a download not every user of the platform wants). */
export const GPU_FLAVOURS = ["cuda"] as const;

/** `@vidllama/linux-x64`, `@vidllama/win32-x64-cuda`, … */
export function platformPackageName(platform: string = process.platform, arch: string = process.arch, gpu = ""): string {
    return `@vidllama/${platform}-${arch}${gpu ? `-${gpu}` : ""}`;
}

/**
 * The addon of an installed platform package, GPU flavours first (they also hold every CPU module), or what was
 * looked for when none is installed.
 */
export function platformPackageAddon(from: string): { path: string; name: string } | { tried: string[] } {
    const require = createRequire(join(from, "package.json"));
    const names = [...GPU_FLAVOURS.map((g) => platformPackageName(process.platform, process.arch, g)), platformPackageName()];
    for (const name of names) {
        try {
            const path = join(dirname(require.resolve(`${name}/package.json`)), "vidllama.node");
            if (existsSync(path)) return { path, name };
        } catch {
            // not installed
        }
    }
    return { tried: names };
}
