/**
 * Information about this installation.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cpuTopology, type CpuTopology } from "./cpu.js";
import { native, nativeAddonPath, packageRoot } from "./native/load.js";

/** What the native addon was built with and what it found on this machine. */
export interface SystemInfo {
    /** vidllama's version. */
    version: string;
    /** The native addon file in use. */
    addonPath: string;
    /** The GPU backend compiled in besides the CPU: `"cpu"` (none), `"cuda"`, `"metal"` or `"vulkan"`. */
    gpuBackend: "cpu" | "cuda" | "metal" | "vulkan";
    /** CPU features the build uses (e.g. `AVX2`), from llama.cpp. */
    cpuFeatures: string[];
    /** llama.cpp's system line and the devices ggml sees, as text. */
    details: string;
    /** Logical CPUs and physical cores this process may use; the default thread count is `physicalCores`. */
    cpu: CpuTopology;
}

/** Describes the native build and the machine: CPU features in use, GPU backend and devices. */
export function systemInfo(): SystemInfo {
    const addon = native();
    const details = addon.systemInfo();
    const cpuLine = /CPU\s*:(.*)/.exec(details)?.[1] ?? "";
    const cpuFeatures = [...cpuLine.matchAll(/([A-Z0-9_]+)\s*=\s*1/g)].map((m) => m[1]!);
    return { version: packageVersion(), addonPath: nativeAddonPath() ?? "", gpuBackend: addon.gpuBackend, cpuFeatures, details, cpu: cpuTopology() };
}

/** @internal */
export function packageVersion(): string {
    return (JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { version: string }).version;
}
