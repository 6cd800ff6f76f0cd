import { describe, expect, it } from "vitest";
import { InvalidOptionError } from "../../lib/errors.js";
import { GGML_TYPES, ggmlTypeById, ggmlTypeByName, llamaFileTypeName, LlamaFileType, tensorByteSize } from "../../lib/gguf/types.js";
import { loadAddon } from "./helpers.js";

describe("ggml type table", () => {
    it("matches ggml's own type_traits for every type the native addon reports", () => {
        const native = loadAddon().ggmlTypes();
        expect(native.length).toBeGreaterThan(20);
        for (const n of native) {
            const t = ggmlTypeById(n.id);
            expect(t, `type id ${n.id} (${n.name})`).toBeDefined();
            expect({ id: t!.id, name: t!.name, blockSize: t!.blockSize, typeSize: t!.typeSize, quantized: t!.quantized }).toEqual({
                id: n.id,
                name: n.name,
                blockSize: n.blockSize,
                typeSize: n.typeSize,
                quantized: n.quantized,
            });
        }
    });

    it("has unique ids and names and knows the types without a dequantizer (integers, f64, q8_1, q8_K)", () => {
        expect(new Set(GGML_TYPES.map((t) => t.id)).size).toBe(GGML_TYPES.length);
        expect(new Set(GGML_TYPES.map((t) => t.name)).size).toBe(GGML_TYPES.length);
        expect(ggmlTypeByName("i32")).toMatchObject({ id: 26, blockSize: 1, typeSize: 4 });
        expect(ggmlTypeByName("f64")).toMatchObject({ id: 28, typeSize: 8 });
        // q8_1: f16 d, f16 s, 32 x int8; q8_K: f32 d, 256 x int8, 16 x int16 (ggml-common.h)
        expect(ggmlTypeByName("q8_1")).toMatchObject({ id: 9, blockSize: 32, typeSize: 2 + 2 + 32 });
        expect(ggmlTypeByName("q8_K")).toMatchObject({ id: 15, blockSize: 256, typeSize: 4 + 256 + 32 });
        for (const removed of [4, 5, 31, 32, 33, 36, 37, 38]) expect(ggmlTypeById(removed)).toBeUndefined();
    });

    it("looks names up exactly first, then case-insensitively", () => {
        expect(ggmlTypeByName("q4_K")?.id).toBe(12);
        expect(ggmlTypeByName("Q4_K")?.id).toBe(12);
        expect(ggmlTypeByName("BF16")?.id).toBe(30);
        expect(ggmlTypeByName("q4_k_m")).toBeUndefined();
    });
});

describe("tensorByteSize", () => {
    it("computes row sizes from blocks", () => {
        expect(tensorByteSize("f32", [64, 3])).toBe(64 * 3 * 4);
        expect(tensorByteSize("f16", [7])).toBe(14);
        expect(tensorByteSize("q4_0", [64, 2])).toBe((64 / 32) * 18 * 2);
        expect(tensorByteSize("q4_K", [1536, 8960])).toBe((1536 / 256) * 144 * 8960);
        expect(tensorByteSize("q8_0", [32, 2, 3, 4])).toBe(34 * 24);
        expect(tensorByteSize(0, [5, 0])).toBe(0);
        expect(tensorByteSize("f32", [])).toBe(4);
    });

    it("rejects rows that are not whole blocks, bad dimensions and unknown types", () => {
        expect(() => tensorByteSize("q4_K", [128, 2])).toThrow(InvalidOptionError);
        expect(() => tensorByteSize("q4_K", [128, 2])).toThrow(/multiple of 256/);
        expect(() => tensorByteSize("f32", [-1])).toThrow(InvalidOptionError);
        expect(() => tensorByteSize("f32", [1.5])).toThrow(InvalidOptionError);
        expect(() => tensorByteSize("q9_9", [32])).toThrow(InvalidOptionError);
    });
});

describe("llama_ftype", () => {
    it("uses llama.h numbers", () => {
        expect(LlamaFileType.ALL_F32).toBe(0);
        expect(LlamaFileType.MOSTLY_F16).toBe(1);
        expect(LlamaFileType.MOSTLY_Q4_0).toBe(2);
        expect(LlamaFileType.MOSTLY_Q8_0).toBe(7);
        expect(LlamaFileType.MOSTLY_Q4_K_M).toBe(15);
        expect(LlamaFileType.MOSTLY_BF16).toBe(32);
        expect(llamaFileTypeName(15)).toBe("Q4_K - Medium");
        expect(llamaFileTypeName(4)).toBeUndefined();
    });
});
