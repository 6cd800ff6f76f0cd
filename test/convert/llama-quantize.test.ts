// Parity with llama.cpp's own quantizer: convert to f32 with our converter, run libllama's llama_model_quantize on
// that file (native binding quantizeModel), and compare with our direct --type output tensor by tensor: the same
// storage types, and — since both quantize the same f32 rows with ggml's quantizers — the same bytes.
//
// Dimensions are chosen so that every path of llama.cpp's type selection is taken: rows of 64/128 (multiples of 32,
// not of 256: Q4_K→Q5_0 and Q6_K→Q8_0 fallbacks), rows of 256 (Q4_K and Q6_K as chosen), rows of 272 (not a
// multiple of 32: F16 fallback), 8 layers (use_more_bits true and false), tied and untied embeddings.
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint } from "../../lib/convert/convert.js";
import type { TextOutputType } from "../../lib/convert/quant-rules.js";
import { readGguf, readTensorData } from "../../lib/gguf/reader.js";
import { native } from "../../lib/native/load.js";
import type { HfCheckpointOptions } from "../fixtures/hf-checkpoint.js";
import { checkpoint, freshDir } from "./helpers.js";

const FTYPES: Array<[TextOutputType, number]> = [
    ["f16", 1],
    ["bf16", 32],
    ["q8_0", 7],
    ["q4_0", 2],
    ["q4_k_m", 15],
];

const CHECKPOINTS: Array<[string, Omit<HfCheckpointOptions, "dir">]> = [
    ["tiny-tied", {}],
    ["quant-untied", { tied: false, text: { hidden: 256, ffn: 272, layers: 8, heads: 4, kvHeads: 2 }, seed: 11 }],
    ["quant-tied", { tied: true, text: { hidden: 256, ffn: 288, layers: 8, heads: 4, kvHeads: 2 }, seed: 12 }],
];

describe.each(CHECKPOINTS)("llama_model_quantize parity: %s", (key, options) => {
    let f32Path: string;
    let out: string;
    beforeAll(async () => {
        const ck = await checkpoint(key, options);
        out = await freshDir(`parity-${key}`);
        f32Path = (await convertCheckpoint({ input: ck.dir, outDir: out, type: "f32", mmprojType: "f32", name: "m", verify: "none" })).textModel;
    });

    it.each(FTYPES)("--type %s matches llama-quantize (types and bytes of every tensor)", async (type, ftype) => {
        const llamaPath = join(out, `llama-${type}.gguf`);
        await native().quantizeModel(f32Path, llamaPath, ftype, 2);
        const ours = await readGguf(
            (await convertCheckpoint({ input: join(out, "..", `ckpt-${key}`), outDir: out, type, name: "m", force: true, verify: "none" })).textModel,
        );
        const theirs = await readGguf(llamaPath);
        expect(theirs.getNumber("general.file_type")).toBe(ftype);
        expect(ours.getNumber("general.file_type")).toBe(ftype);
        expect(ours.tensors.map((t) => t.name).sort()).toEqual(theirs.tensors.map((t) => t.name).sort());
        const typesOurs: Record<string, string> = {};
        const typesTheirs: Record<string, string> = {};
        for (const t of theirs.tensors) {
            typesTheirs[t.name] = t.type;
            typesOurs[t.name] = ours.getTensor(t.name)!.type;
        }
        expect(typesOurs).toEqual(typesTheirs);
        const seen = new Set(Object.values(typesOurs));
        for (const t of theirs.tensors) {
            const mine = ours.getTensor(t.name)!;
            expect(mine.shape, t.name).toEqual(t.shape);
            const [a, b] = await Promise.all([readTensorData(ours, t.name), readTensorData(theirs, t.name)]);
            expect(a.equals(b), `${t.name} (${t.type}) bytes`).toBe(true);
        }
        // the paths this checkpoint is meant to exercise really were taken
        if (key === "quant-untied" && type === "q4_k_m") expect(seen).toEqual(new Set(["f32", "q4_K", "q6_K", "f16"]));
        if (key === "quant-tied" && type === "q4_k_m") expect(seen).toEqual(new Set(["f32", "q4_K", "q6_K", "q5_0", "q8_0"]));
        if (key === "tiny-tied" && type === "q4_k_m") expect(seen).toEqual(new Set(["f32", "q5_0", "q8_0"]));
    });
});
