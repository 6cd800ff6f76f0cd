/**
 * Information about this installation.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cpuTopology, type CpuTopology } from "./cpu.js";
import { gpuRefusal, gpuRequest, type DeviceInfo, type GpuOption } from "./devices.js";
import type { NativeBackends } from "./native/types.js";
import { native, nativeAddonPath, packageRoot } from "./native/load.js";

/** What the native addon was built with and what it found on this machine. */
export interface SystemInfo {
    /** vidllama's version. */
    version: string;
    /** The native addon file in use. */
    addonPath: string;
    /** The backend modules beside the addon: which CPU variant runs and why, GPU modules (loaded or why not), devices. */
    backends: BackendsInfo;
    /** Where a model loaded with `gpu: "auto"` runs on this machine, and why. */
    autoDevice: DeviceInfo;
    /** CPU features the variant in use was built for (e.g. `AVX2`), from llama.cpp. */
    cpuFeatures: string[];
    /** llama.cpp's system line and the devices ggml sees, as text. */
    details: string;
    /** Logical CPUs and physical cores this process may use; the default thread count is `physicalCores`. */
    cpu: CpuTopology;
}

/** What the native addon found next to it and loaded (`SystemInfo.backends`). */
export type BackendsInfo = Readonly<NativeBackends>;

/** Describes the native build and the machine: backends, CPU variant and features in use, devices. */
export function systemInfo(): SystemInfo {
    const addon = native();
    const details = addon.systemInfo();
    const cpuLine = /CPU\s*:(.*)/.exec(details)?.[1] ?? "";
    const cpuFeatures = [...cpuLine.matchAll(/([A-Z0-9_]+)\s*=\s*1/g)].map((m) => m[1]!);
    return {
        version: packageVersion(),
        addonPath: nativeAddonPath() ?? "",
        backends: addon.backends,
        autoDevice: deviceFor("auto"),
        cpuFeatures,
        details,
        cpu: cpuTopology(),
    };
}

/**
 * Where a model loaded with this `gpu` option would run, and why (a GPU device's test graph runs once per process).
 *
 * @throws {InvalidOptionError} for a bad value, or a device this installation lacks
 */
export function deviceFor(gpu: GpuOption = "auto"): DeviceInfo {
    const request = gpuRequest(gpu);
    try {
        return Object.freeze(native().chooseDevice(request.gpu, request.gpuIndex));
    } catch (err) {
        throw gpuRefusal(err, gpu) ?? err;
    }
}

/** @internal */
export function packageVersion(): string {
    return (JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { version: string }).version;
}
