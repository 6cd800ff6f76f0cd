// A tiny VideoLLaMA3 checkpoint in the exact HF layout, converted to GGUF by our converter, plus float64 access to
// its source weights for the reference forward. Shared by the vision and video tests.
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { convertCheckpoint } from "../../lib/convert/convert.js";
import { openCheckpointTensors, ShardReader } from "../../lib/convert/safetensors.js";
import { writeHfCheckpoint } from "../fixtures/hf-checkpoint.js";
import { bf16BitsToNumber, type RefTensor, weightLookupFromMap, type WeightLookup } from "../reference/tensor.js";

export const FIXTURES = join(process.cwd(), "test", ".fixtures");

export interface TinyVl3 {
    hfDir: string;
    textModel: string;
    mmproj: string;
    /** Source weights (bf16 upcast to float64) by HF name. */
    weights: WeightLookup;
    /** Values of the projector metadata the tests rely on. */
    minTokens: number;
    maxTokens: number;
}

const VERSION = 3;

/**
 * Writes (once, cached by a stamp file) a tiny VideoLLaMA3 checkpoint whose preprocessor allows at most
 * `maxTokens` visual tokens per request — small enough for the float64 reference to run on "huge" images — and
 * converts it to f32 GGUF files.
 */
export async function tinyVl3(options: { name?: string; maxTokens?: number; minTokens?: number; type?: "f32" | "f16" | "q8_0"; textLayers?: number } = {}): Promise<TinyVl3> {
    const name = options.name ?? "vl3-tiny";
    const maxTokens = options.maxTokens ?? 400;
    const minTokens = options.minTokens ?? 16;
    const type = options.type ?? "f32";
    const hfDir = join(FIXTURES, `${name}-hf`);
    const outDir = join(FIXTURES, `${name}-gguf`);
    const stamp = join(outDir, "stamp.json");
    const textLayers = options.textLayers;
    const wanted = JSON.stringify({ VERSION, maxTokens, minTokens, type, ...(textLayers !== undefined ? { textLayers } : {}) });
    const textModel = join(outDir, `${name}-${type}.gguf`);
    const mmproj = join(outDir, `mmproj-${name}-${type === "f16" ? "f16" : "f32"}.gguf`);
    if (!existsSync(stamp) || (await readFile(stamp, "utf8")) !== wanted || !existsSync(textModel) || !existsSync(mmproj)) {
        // weightScale 6: weights large enough that every layer visibly changes the output (a trained model's
        // σ 0.02 would make a 2-layer tiny model nearly the identity, hiding mistakes).
        await writeHfCheckpoint({ dir: hfDir, weightScale: 6, seed: 7, ...(textLayers !== undefined ? { text: { layers: textLayers } } : {}) });
        const prePath = join(hfDir, "preprocessor_config.json");
        const pre = JSON.parse(await readFile(prePath, "utf8")) as Record<string, unknown>;
        await writeFile(prePath, JSON.stringify({ ...pre, max_tokens: maxTokens, min_tokens: minTokens }, null, 2));
        await convertCheckpoint({ input: hfDir, outDir, type, mmprojType: type === "f16" ? "f16" : "f32", force: true, name, verify: "none" });
        await writeFile(stamp, wanted);
    }
    return { hfDir, textModel, mmproj, weights: await sourceWeights(hfDir), minTokens, maxTokens };
}

async function sourceWeights(dir: string): Promise<WeightLookup> {
    const { tensors } = await openCheckpointTensors(dir);
    const reader = new ShardReader();
    const map = new Map<string, RefTensor>();
    for (const t of tensors.values()) {
        if (t.dtype !== "BF16") throw new Error(`fixture tensor ${t.name} is ${t.dtype}, expected BF16`);
        const bytes = new Uint8Array(t.byteLength);
        await reader.read(t, 0, t.byteLength, bytes);
        const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
        const data = new Float64Array(bits.length);
        for (let i = 0; i < bits.length; i++) data[i] = bf16BitsToNumber(bits[i]!);
        map.set(t.name, { data, shape: t.shape });
    }
    await reader.close?.();
    return weightLookupFromMap(map);
}
