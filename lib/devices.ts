/**
 * Where models run: the `gpu` option of {@link loadModel} and {@link loadVision}, and what the native addon found.
 *
 * ggml's backends are modules next to the addon (every CPU variant, CUDA, Vulkan, Metal); native/llm/backend.cpp loads
 * them once and is the one owner of the choice of device (`"auto"`: the best GPU device that passes a small test
 * graph, else the CPU, with the reason). This module only turns the option into the native request and the native
 * refusal into an {@link InvalidOptionError}.
 *
 * @module
 */
import { InvalidOptionError } from "./errors.js";
import { isNativeError } from "./native/errors.js";

/** GPU backends a device can come from, in the `gpu` option's words. */
export const GPU_BACKENDS = ["cuda", "metal", "vulkan"] as const;
export type GpuBackend = (typeof GPU_BACKENDS)[number];

/**
 * Where to run:
 * - `"auto"` (default, also `true`): the best GPU device found (CUDA, then Metal, then Vulkan) that computes a small
 *   test graph correctly; otherwise the CPU. The reason is in `model.info.device.reason`.
 * - `"cpu"` (also `false`): the CPU only.
 * - `"cuda"`, `"metal"`, `"vulkan"`: that backend's first device, `"vulkan:1"` its second; an error if it is missing.
 * - a number: that GPU device among all of them (`systemInfo().devices` without the CPU, in auto's order).
 */
export type GpuOption = "auto" | "cpu" | GpuBackend | `${GpuBackend}:${number}` | boolean | number;

/** Where a model or projector runs, and why there. */
export interface DeviceInfo {
    /** ggml's device name: `"CPU"`, `"CUDA0"`, `"Vulkan0"`, `"MTL0"`. */
    readonly name: string;
    readonly description: string;
    /** Whether it is a GPU device (weights in its memory). */
    readonly gpu: boolean;
    /** Why this device: asked for, auto's pick, or why auto fell back to the CPU. */
    readonly reason: string;
}

const EXPECTED = `"auto", "cpu", "cuda", "metal", "vulkan", "<backend>:<index>", a boolean or a device index`;

/** The native request for a `gpu` option value. @internal */
export function gpuRequest(value: unknown, option = "gpu"): { gpu: string; gpuIndex: number } {
    if (value === undefined || value === true || value === "auto") return { gpu: "auto", gpuIndex: 0 };
    if (value === false || value === "cpu") return { gpu: "cpu", gpuIndex: 0 };
    if (typeof value === "number") {
        if (!Number.isInteger(value) || value < 0 || value > 1024) throw new InvalidOptionError(option, EXPECTED, value);
        return { gpu: "index", gpuIndex: value };
    }
    if (typeof value === "string") {
        const m = /^(cuda|metal|vulkan)(?::(\d{1,4}))?$/.exec(value);
        if (m) return { gpu: m[1]!, gpuIndex: m[2] === undefined ? 0 : Number(m[2]) };
    }
    throw new InvalidOptionError(option, EXPECTED, value);
}

/**
 * The native addon refuses a device that this installation lacks (`gpu: "cuda"` without a CUDA device, an index past
 * the last device, a device that fails the test graph) with a message starting "gpu:"; this is that refusal as the
 * option error it is, or undefined for any other error. @internal
 */
export function gpuRefusal(err: unknown, value: unknown, option = "gpu"): InvalidOptionError | undefined {
    if (!isNativeError(err, "VL_INVALID_ARGUMENT") || !err.message.startsWith("gpu:")) return undefined;
    return new InvalidOptionError(option, "a device this installation has", value, err.message.slice(4).trim());
}
