/** Shared helpers of the GGUF tests. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { native } from "../../lib/native/load.js";
import type { NativeAddon } from "../../lib/native/types.js";

/** The parts of the native addon these tests use directly (beyond lib/native/types.ts). */
export interface GgufTestAddon extends NativeAddon {
    ggmlTypes(): Array<{ name: string; id: number; blockSize: number; typeSize: number; quantized: boolean }>;
    quantize(type: string, src: Float32Array, nRows: number, nPerRow: number, threads?: number): Promise<Buffer>;
    dequantize(type: string, data: Uint8Array, nElements: number): Float32Array;
}

let addon: GgufTestAddon | undefined;

/** The native addon, found as the library finds it (lib/native/load.ts: VIDLLAMA_ADDON_PATH, build/Release, …). */
export function loadAddon(): GgufTestAddon {
    addon ??= native() as GgufTestAddon;
    return addon;
}

/** A fresh temporary directory, removed by the returned cleanup function. */
export function tempDir(prefix = "vidllama-gguf-"): { dir: string; cleanup: () => void } {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
