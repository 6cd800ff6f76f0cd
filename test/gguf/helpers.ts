/** Shared helpers of the GGUF tests. */
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NativeAddon } from "../../lib/native/types.js";

/** The parts of the native addon these tests use directly (beyond lib/native/types.ts). */
export interface GgufTestAddon extends NativeAddon {
    ggmlTypes(): Array<{ name: string; id: number; blockSize: number; typeSize: number; quantized: boolean }>;
    quantize(type: string, src: Float32Array, nRows: number, nPerRow: number, threads?: number): Promise<Buffer>;
    dequantize(type: string, data: Uint8Array, nElements: number): Float32Array;
}

let addon: GgufTestAddon | undefined;

/** The native addon (VIDLLAMA_ADDON_PATH or the lead's build/Release). */
export function loadAddon(): GgufTestAddon {
    process.env.GGML_NO_BACKTRACE ??= "1";
    addon ??= createRequire(import.meta.url)(process.env.VIDLLAMA_ADDON_PATH ?? "/work/main/build/Release/vidllama.node") as GgufTestAddon;
    return addon;
}

/** A fresh temporary directory, removed by the returned cleanup function. */
export function tempDir(prefix = "vidllama-gguf-"): { dir: string; cleanup: () => void } {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
