// Quantized vision projectors (`mmprojType: "q8_0" | "q4_k"`): which tensors are quantized (2-D matrices whose rows
// fit the block; the rest fall back per tensor), that the files load and encode, and the embedding error against the
// f32 projector of the same checkpoint — on the tiny fixture and on a checkpoint with the real 2B vision widths
// (1152 wide, 16 heads, FFN 4304; 2 layers) — within stated bounds.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint, type ConvertResult } from "../../lib/convert/convert.js";
import { readGguf } from "../../lib/gguf/reader.js";
import { Image, loadVision, type MmprojOutputType } from "../../lib/index.js";
import { selectMmprojTensorTypes } from "../../lib/convert/quant-rules.js";
import { writeHfCheckpoint } from "../fixtures/hf-checkpoint.js";
import { convertedTinyVideoLlava } from "../fixtures/hf-video-llava.js";
import { seededRandom } from "../reference/tensor.js";

const ROOT = join(process.cwd(), "test", ".fixtures", "quantized-projector");

/**
 * Relative RMS error bounds of the embeddings against the f32 projector. Measured (the test prints them), tiny /
 * real widths: f16 3.5e-4 / 4.8e-4, q8_0 1.2e-2 / 1.4e-2, q4_k 6.0e-2 / 7.7e-2 (on the real widths q4_k is mostly
 * q5_0: rows of 1152 do not fit q4_K's 256-blocks). ggml also rounds the activations to 8 bits for quantized matrix
 * products, which is why q8_0 is ~30× f16's error. The bounds leave 2× room.
 */
const BOUNDS: Record<"q8_0" | "q4_k", number> = { q8_0: 3e-2, q4_k: 1.5e-1 };

interface Preset {
    name: string;
    vision: { hidden: number; layers: number; heads: number; ffn: number; patch: number };
    files: Partial<Record<MmprojOutputType, ConvertResult>>;
}

const presets: Preset[] = [
    { name: "tiny", vision: { hidden: 32, layers: 2, heads: 2, ffn: 64, patch: 14 }, files: {} },
    { name: "real-widths", vision: { hidden: 1152, layers: 2, heads: 16, ffn: 4304, patch: 14 }, files: {} },
];

function testImage(width: number, height: number, seed: number): Image {
    const rng = seededRandom(seed);
    const data = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
            const i = (y * width + x) * 3;
            data[i] = (x * 255) / Math.max(1, width - 1);
            data[i + 1] = (y * 255) / Math.max(1, height - 1);
            data[i + 2] = Math.floor(rng() * 256);
        }
    }
    return Image.fromPixels({ data, width, height, format: "rgb" });
}

function relRms(a: Float32Array, ref: Float32Array): number {
    let e = 0;
    let r = 0;
    for (let i = 0; i < ref.length; i++) {
        e += (a[i]! - ref[i]!) ** 2;
        r += ref[i]! ** 2;
    }
    return Math.sqrt(e / r);
}

beforeAll(async () => {
    for (const p of presets) {
        const hfDir = join(ROOT, `${p.name}-hf`);
        // weightScale 6 on the tiny model so every layer matters; the real widths keep σ 0.02 like trained weights.
        await writeHfCheckpoint({ dir: hfDir, vision: p.vision, seed: 5, weightScale: p.name === "tiny" ? 6 : 1 });
        for (const type of ["f32", "f16", "q8_0", "q4_k"] as const) {
            const outDir = join(ROOT, `${p.name}-${type}`);
            await mkdir(outDir, { recursive: true });
            p.files[type] = await convertCheckpoint({ input: hfDir, outDir, type: "f16", mmprojType: type, name: p.name, force: true, verify: "sample" });
        }
    }
}, 900_000);

afterAll(() => undefined);

describe("tensor types", () => {
    it("quantizes 2-D matrices whose rows fit the block; the patch embedding stays f16, vectors f32; q4_K falls back per tensor", () => {
        const real = presets[1]!.files;
        const types = (type: MmprojOutputType) => new Map(real[type]!.tensors.filter((t) => t.file === "mmproj").map((t) => [t.name, t]));
        const q8 = types("q8_0");
        expect(q8.get("v.blk.0.attn_q.weight")?.type).toBe("q8_0");
        expect(q8.get("v.blk.0.ffn_up.weight")?.type).toBe("q8_0"); // rows of 1152
        expect(q8.get("v.blk.0.ffn_down.weight")).toMatchObject({ type: "f16", fallbackFrom: "q8_0" }); // rows of 4304 = 134.5 blocks
        expect(q8.get("mm.0.weight")?.type).toBe("q8_0");
        expect(q8.get("v.patch_embd.weight")?.type).toBe("f16");
        expect(q8.get("v.blk.0.attn_q.bias")?.type).toBe("f32");
        const q4 = types("q4_k");
        // 1152 is not a multiple of 256: q4_K → q5_0 (as llama.cpp's shape fallback)
        expect(q4.get("v.blk.0.attn_q.weight")).toMatchObject({ type: "q5_0", fallbackFrom: "q4_K" });
        // the rule itself on CLIP-L widths (1024, 4096): q4_K fits
        const clip = selectMmprojTensorTypes("q4_k", [
            { name: "v.blk.0.attn_q.weight", ne: [1024, 1024] },
            { name: "v.blk.0.ffn_down.weight", ne: [4096, 1024] },
            { name: "v.patch_embd.weight", ne: [14, 14, 3, 1024] },
            { name: "v.position_embd.weight", ne: [1024, 257] },
            { name: "v.blk.0.ln1.weight", ne: [1024] },
        ]);
        expect(Object.fromEntries([...clip].map(([k, v]) => [k, v.type]))).toEqual({
            "v.blk.0.attn_q.weight": "q4_K",
            "v.blk.0.ffn_down.weight": "q4_K",
            "v.patch_embd.weight": "f16",
            "v.position_embd.weight": "q4_K", // a plan marked f32 (position embeddings) overrides this in the converter
            "v.blk.0.ln1.weight": "f32",
        });
        for (const type of ["q8_0", "q4_k"] as const) {
            expect(real[type]!.tensors.find((t) => t.name === "v.position_embd.weight")?.type ?? "f32").toBe("f32");
        }
    });

    it("writes general.file_type and the quantization version; the files are smaller", async () => {
        const real = presets[1]!.files;
        const f32 = await readGguf(real.f32!.mmproj);
        const q8 = await readGguf(real.q8_0!.mmproj);
        expect(f32.metadata.get("general.file_type")?.value).toBe(0);
        expect(q8.metadata.get("general.file_type")?.value).toBe(7);
        expect(q8.metadata.get("general.quantization_version")?.value).toBe(2);
        expect((await readGguf(real.q4_k!.mmproj)).metadata.get("general.file_type")?.value).toBe(14);
        expect(real.q8_0!.mmprojBytes).toBeLessThan(real.f32!.mmprojBytes * 0.45);
        expect(real.q4_k!.mmprojBytes).toBeLessThan(real.q8_0!.mmprojBytes);
    });
});

describe("embeddings against the f32 projector", () => {
    for (const preset of presets) {
        it(`${preset.name}: q8_0 and q4_k encode within their bounds`, async () => {
            const image = testImage(200, 150, 3);
            await using f32 = await loadVision({ mmproj: preset.files.f32!.mmproj });
            const ref = await f32.encode(image);
            const errors: Partial<Record<MmprojOutputType, number>> = {};
            for (const type of ["f16", "q8_0", "q4_k"] as const) {
                await using q = await loadVision({ mmproj: preset.files[type]!.mmproj });
                const out = await q.encode(image);
                expect(out.tokens).toBe(ref.tokens);
                expect(out.width).toBe(ref.width);
                const err = relRms(out.embeddings, ref.embeddings);
                errors[type] = err;
                console.log(`${preset.name} ${type}: relative RMS error of the embeddings vs f32 = ${err.toExponential(2)}${type === "f16" ? "" : ` (bound ${BOUNDS[type]})`}`);
                expect(err).toBeGreaterThan(0); // really rounded
                if (type !== "f16") expect(err).toBeLessThan(BOUNDS[type]);
            }
            // more bits, less error
            expect(errors.f16!).toBeLessThan(errors.q8_0!);
            expect(errors.q8_0!).toBeLessThan(errors.q4_k!);
        }, 300_000);
    }
});

describe("Video-LLaVA (CLIP towers, class and position embeddings)", () => {
    it("q8_0: both towers quantized, position embeddings f32; images within the q8_0 bound", async () => {
        const f32 = await convertedTinyVideoLlava({ type: "f16", mmprojType: "f32" });
        const q8 = await convertedTinyVideoLlava({ type: "f16", mmprojType: "q8_0" });
        const tensors = new Map<string, string>((await readGguf(q8.mmproj)).tensors.map((t) => [t.name, t.type]));
        expect(tensors.get("v.position_embd.weight")).toBe("f32");
        expect(tensors.get("v.class_embd")).toBe("f32");
        expect(tensors.get("v.video.patch_embd.weight")).toBe("f16");
        expect(tensors.get("v.video.blk.0.attn_q.weight")).toBe("q8_0");
        expect([...tensors].filter(([n]) => /attn_(q|k|v|out)\.weight$|ffn_(up|down)\.weight$|^mm\.\d\.weight$/.test(n)).every(([, t]) => t === "q8_0" || t === "f16")).toBe(true);
        await using a = await loadVision({ mmproj: f32.mmproj });
        await using b = await loadVision({ mmproj: q8.mmproj });
        const image = testImage(120, 90, 9);
        const err = relRms((await b.encode(image)).embeddings, (await a.encode(image)).embeddings);
        console.log(`video-llava-tiny q8_0 image: relative RMS error vs f32 = ${err.toExponential(2)}`);
        expect(err).toBeGreaterThan(0);
        expect(err).toBeLessThan(BOUNDS.q8_0);
    }, 300_000);
});
