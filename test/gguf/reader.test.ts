import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GgufFormatError, InvalidOptionError } from "../../lib/errors.js";
import { GgufFile, readGguf, readTensorData } from "../../lib/gguf/reader.js";
import { GgufValueType } from "../../lib/gguf/types.js";
import { qwen2VocabPath } from "../fixtures/tiny-qwen2.js";

const vocabPath = qwen2VocabPath();

describe.skipIf(!existsSync(vocabPath))("readGguf on llama.cpp's ggml-vocab-qwen2.gguf", () => {
    it("reads the known header values", async () => {
        const f = await readGguf(vocabPath);
        expect(f).toBeInstanceOf(GgufFile);
        expect(f.version).toBe(3);
        expect(f.architecture).toBe("qwen2");
        expect(f.tensors).toHaveLength(0);
        expect(f.alignment).toBe(32);
        // a vocab-only file: the header is the whole file and there is no data padding
        expect(f.dataOffset).toBe(f.fileSize);

        const tokens = f.getArray("tokenizer.ggml.tokens") as string[];
        expect(tokens).toHaveLength(151936);
        expect(tokens[151644]).toBe("<|im_start|>");
        expect(tokens[151645]).toBe("<|im_end|>");
        expect(tokens[151643]).toBe("<|endoftext|>");
        expect(tokens[0]).toBe("!");
        // byte-level BPE: " world" is stored as "Ġworld" (U+0120 = 2 UTF-8 bytes)
        expect(tokens[1879]).toBe("Ġworld");

        const types = f.getValue("tokenizer.ggml.token_type");
        expect(types?.type).toBe(GgufValueType.ARRAY);
        if (types?.type !== GgufValueType.ARRAY) throw new Error("unreachable");
        expect(types.itemType).toBe(GgufValueType.INT32);
        expect(types.value).toBeInstanceOf(Int32Array);
        expect(types.value[151644]).toBe(3); // control
        expect(types.value[0]).toBe(1); // normal

        const merges = f.getArray("tokenizer.ggml.merges") as string[];
        expect(merges).toHaveLength(151387);
        expect(merges[0]).toBe("Ġ Ġ");

        expect(f.getString("tokenizer.ggml.model")).toBe("gpt2");
        expect(f.getString("tokenizer.ggml.pre")).toBe("qwen2");
        expect(f.getNumber("qwen2.context_length")).toBe(32768);
        expect(f.getValue("qwen2.context_length")?.type).toBe(GgufValueType.UINT32);
        expect(f.getNumber("qwen2.rope.freq_base")).toBe(1e6);
        expect(f.getNumber("qwen2.attention.layer_norm_rms_epsilon")).toBe(Math.fround(1e-6));
        expect(f.getString("tokenizer.chat_template")).toContain("<|im_start|>");
        expect(f.getNumber("tokenizer.ggml.eos_token_id")).toBe(151643);
    });

    it("decodes every token exactly like a per-string UTF-8 decode (batched decoding is only an optimisation)", async () => {
        // Independent slow path: walk the raw bytes of the tokens array with a DataView and decode one by one.
        const { readFile } = await import("node:fs/promises");
        const raw = await readFile(vocabPath);
        const f = await readGguf(vocabPath);
        const tokens = f.getArray("tokenizer.ggml.tokens") as string[];
        const merges = f.getArray("tokenizer.ggml.merges") as string[];
        const marker = Buffer.concat([u64le(21), Buffer.from("tokenizer.ggml.tokens"), i32le(9), i32le(8), u64le(151936)]);
        let p = raw.indexOf(marker);
        expect(p).toBeGreaterThan(0);
        p += marker.length;
        const dec = new TextDecoder();
        for (let i = 0; i < 151936; i++) {
            const n = Number(raw.readBigUInt64LE(p));
            p += 8;
            const s = dec.decode(raw.subarray(p, p + n));
            p += n;
            if (s !== tokens[i]) expect.fail(`token ${i}: ${JSON.stringify(s)} != ${JSON.stringify(tokens[i])}`);
        }
        expect(new Set(tokens).size).toBe(151936);
        expect(merges.every((m) => m.split(" ").length === 2)).toBe(true);
    });

    it("parses the 6 MB header quickly", async () => {
        await readGguf(vocabPath); // warm up the JIT
        const times: number[] = [];
        for (let i = 0; i < 3; i++) {
            const t0 = performance.now();
            await readGguf(vocabPath);
            times.push(performance.now() - t0);
        }
        const best = Math.min(...times);
        console.log(`readGguf(ggml-vocab-qwen2.gguf): ${times.map((t) => t.toFixed(0)).join(", ")} ms`);
        // generous bound: the machine is shared; typically ~100 ms
        expect(best).toBeLessThan(1000);
    });

    it("typed getters reject values of another type with GgufFormatError", async () => {
        const f = await readGguf(vocabPath);
        expect(() => f.getString("qwen2.block_count")).toThrow(GgufFormatError);
        expect(() => f.getNumber("general.architecture")).toThrow(/should be a number but has type str/);
        expect(() => f.getArray("general.architecture")).toThrow(GgufFormatError);
        expect(() => f.getBoolean("qwen2.block_count")).toThrow(GgufFormatError);
        expect(f.getString("no.such.key")).toBeUndefined();
        expect(f.getNumber("no.such.key")).toBeUndefined();
    });

    it("honours an AbortSignal", async () => {
        const controller = new AbortController();
        controller.abort();
        await expect(readGguf(vocabPath, { signal: controller.signal })).rejects.toMatchObject({ name: "AbortError" });
    });

    it("validates its arguments", async () => {
        await expect(readGguf("")).rejects.toThrow(InvalidOptionError);
        await expect(readGguf(vocabPath, { signl: undefined, sgnal: 1 } as never)).rejects.toThrow(/did you mean "signal"/);
        await expect(readGguf("/nonexistent/file.gguf")).rejects.toMatchObject({ code: "ENOENT" });
        const f = await readGguf(vocabPath);
        await expect(readTensorData(f, "token_embd.weight")).rejects.toThrow(InvalidOptionError);
    });
});

function u64le(n: number): Buffer {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
}
function i32le(n: number): Buffer {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    return b;
}
