import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readGguf, type GgufFile } from "../../lib/gguf/reader.js";
import { GgufValueType } from "../../lib/gguf/types.js";
import type { NativeModel } from "../../lib/native/types.js";
import { ensureTinyQwen2, f32ToF16Bits, generateTinyQwen2, llamaCppDir, qwen2VocabPath, TINY_QWEN2_PATH } from "../fixtures/tiny-qwen2.js";
import { Random } from "../fixtures/random.js";
import { loadAddon, tempDir } from "./helpers.js";

const { dir, cleanup } = tempDir();
afterAll(cleanup);

let path: string;
let file: GgufFile;
let vocab: GgufFile;

beforeAll(async () => {
    path = await ensureTinyQwen2();
    file = await readGguf(path);
    vocab = await readGguf(qwen2VocabPath());
});

/** Greedy decoding of `n` tokens after `prompt` in a fresh context. */
async function greedy(model: NativeModel, prompt: string, n: number): Promise<number[]> {
    const addon = loadAddon();
    // one thread: ggml's spinning thread barrier makes every token take ~0.3 s when the cores are oversubscribed
    const ctx = await model.createContext({ contextSize: 512, threads: 1, batchThreads: 1 });
    try {
        const sampler = new addon.Sampler(model, { temperature: 0 });
        let tokens = model.tokenize(prompt, false, false);
        const out: number[] = [];
        for (let i = 0; i < n; i++) {
            const r = await ctx.evaluate(tokens, { sampler });
            expect(r.aborted).toBe(false);
            expect(r.token).toBeGreaterThanOrEqual(0);
            out.push(r.token);
            tokens = Int32Array.of(r.token);
        }
        return out;
    } finally {
        ctx.dispose();
    }
}

describe("tiny Qwen2 fixture", () => {
    it("is cached: a second request reuses the identical file", async () => {
        const before = statSync(path);
        const again = await generateTinyQwen2(TINY_QWEN2_PATH);
        expect(again.generated).toBe(false);
        expect(statSync(path).mtimeMs).toBe(before.mtimeMs);
        const sidecar = JSON.parse(readFileSync(`${path}.json`, "utf8")) as { fileSize: number };
        expect(sidecar.fileSize).toBe(before.size);
    });

    it("has the keys and tensors of docs/gguf-format.md", () => {
        expect(file.architecture).toBe("qwen2");
        expect(file.getString("general.type")).toBe("model");
        expect(file.getNumber("general.file_type")).toBe(0);
        expect(file.getNumber("qwen2.embedding_length")).toBe(64);
        expect(file.getNumber("qwen2.block_count")).toBe(2);
        expect(file.getNumber("qwen2.attention.head_count")).toBe(4);
        expect(file.getNumber("qwen2.attention.head_count_kv")).toBe(2);
        expect(file.getNumber("qwen2.feed_forward_length")).toBe(128);
        expect(file.getNumber("qwen2.context_length")).toBe(32768);
        expect(file.getNumber("qwen2.rope.freq_base")).toBe(1e6);
        expect(file.getNumber("qwen2.attention.layer_norm_rms_epsilon")).toBe(Math.fround(1e-6));
        for (const key of ["qwen2.context_length", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"]) {
            expect(file.getValue(key)?.type, key).toBe(GgufValueType.UINT32);
        }
        expect(file.getNumber("tokenizer.ggml.eos_token_id")).toBe(151645);
        expect(file.getNumber("tokenizer.ggml.eot_token_id")).toBe(151645);
        expect(file.getNumber("tokenizer.ggml.bos_token_id")).toBe(151643);
        expect(file.getNumber("tokenizer.ggml.padding_token_id")).toBe(151643);
        expect(file.getBoolean("tokenizer.ggml.add_bos_token")).toBe(false);
        expect(file.getString("tokenizer.ggml.pre")).toBe("qwen2");
        expect(file.getString("tokenizer.chat_template")).toBe(vocab.getString("tokenizer.chat_template"));
        for (const key of ["tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"]) {
            const ours = file.getValue(key)!;
            const theirs = vocab.getValue(key)!;
            if (ours.type !== GgufValueType.ARRAY || theirs.type !== GgufValueType.ARRAY) throw new Error(`${key} is not an array`);
            expect(ours.itemType, key).toBe(theirs.itemType);
            // (JSON comparison: vitest's deep equality is slow on 150k-element arrays)
            expect(JSON.stringify(Array.from(ours.value as ArrayLike<unknown>)) === JSON.stringify(Array.from(theirs.value as ArrayLike<unknown>)), key).toBe(true);
        }

        const shapes = Object.fromEntries(file.tensors.map((t) => [t.name, t.shape]));
        const expected: Record<string, number[]> = { "token_embd.weight": [64, 151936], "output_norm.weight": [64] };
        for (let l = 0; l < 2; l++) {
            Object.assign(expected, {
                [`blk.${l}.attn_norm.weight`]: [64],
                [`blk.${l}.attn_q.weight`]: [64, 64],
                [`blk.${l}.attn_q.bias`]: [64],
                [`blk.${l}.attn_k.weight`]: [64, 32], // 2 kv heads × head size 16
                [`blk.${l}.attn_k.bias`]: [32],
                [`blk.${l}.attn_v.weight`]: [64, 32],
                [`blk.${l}.attn_v.bias`]: [32],
                [`blk.${l}.attn_output.weight`]: [64, 64],
                [`blk.${l}.ffn_norm.weight`]: [64],
                [`blk.${l}.ffn_gate.weight`]: [64, 128],
                [`blk.${l}.ffn_up.weight`]: [64, 128],
                [`blk.${l}.ffn_down.weight`]: [128, 64],
            });
        }
        expect(shapes).toEqual(expected);
        expect(file.tensors.every((t) => t.type === "f32")).toBe(true);
    });

    it("loads in libllama with the expected model info", async () => {
        const addon = loadAddon();
        const m = await addon.loadModel({ path });
        try {
            const info = m.info();
            expect(info.vocabSize).toBe(151936);
            expect(info.layers).toBe(2);
            expect(info.embeddingSize).toBe(64);
            expect(info.heads).toBe(4);
            expect(info.kvHeads).toBe(2);
            expect(info.trainContextSize).toBe(32768);
            expect(info.eos).toBe(151645);
            expect(info.eot).toBe(151645);
            expect(info.bos).toBe(151643);
            expect(info.addBos).toBe(false);
            expect(info.chatTemplate).toBe(vocab.getString("tokenizer.chat_template"));
            const meta = m.metadata();
            expect(meta["general.name"]).toBe("tiny-qwen2");
            expect(meta["general.architecture"]).toBe("qwen2");
            expect(m.isEog(151645)).toBe(true);
            // the model's parameter count is what libllama counts from the tensors
            const params = file.tensors.reduce((n, t) => n + t.elementCount, 0);
            expect(info.parameters).toBe(params);
        } finally {
            m.dispose();
        }
    });

    it("tokenizes llama.cpp's Qwen2 tokenizer test vectors exactly (vocabulary copied through reader and writer)", async () => {
        const base = join(llamaCppDir(), "models", "ggml-vocab-qwen2.gguf");
        const inputs = readFileSync(`${base}.inp`, "utf8").split("\n__ggml_vocab_test__\n");
        if (inputs[inputs.length - 1] === "") inputs.pop();
        const outputs = readFileSync(`${base}.out`, "utf8").split("\n");
        if (outputs[outputs.length - 1] === "") outputs.pop();
        expect(inputs.length).toBe(outputs.length);
        expect(inputs.length).toBeGreaterThan(40);
        const m = await loadAddon().loadModel({ path, vocabOnly: true });
        try {
            for (let i = 0; i < inputs.length; i++) {
                const want = outputs[i]!.trim() === "" ? [] : outputs[i]!.trim().split(" ").map(Number);
                expect([...m.tokenize(inputs[i]!, false, false)], JSON.stringify(inputs[i])).toEqual(want);
            }
            expect([...m.tokenize("<|im_start|>user\nHi<|im_end|>", false, true)].slice(0, 1)).toEqual([151644]);
        } finally {
            m.dispose();
        }
    });

    it("generates varied tokens greedily, deterministically across contexts", async () => {
        const m = await loadAddon().loadModel({ path });
        try {
            const a = await greedy(m, "Hello world", 20);
            const b = await greedy(m, "Hello world", 20);
            expect(b).toEqual(a);
            expect(new Set(a).size).toBeGreaterThan(3);
            const c = await greedy(m, "The quick brown fox", 20);
            expect(new Set(c).size).toBeGreaterThan(3);
            expect(c).not.toEqual(a);
        } finally {
            m.dispose();
        }
    });
});

describe("tiny Qwen2 options", () => {
    it("f16 weights and an untied output.weight load and generate", async () => {
        const out = join(dir, "tiny-f16-untied.gguf");
        const r = await generateTinyQwen2(out, { weightType: "f16", tiedEmbeddings: false, seed: 3 });
        expect(r.generated).toBe(true);
        const f = await readGguf(out);
        expect(f.getNumber("general.file_type")).toBe(1);
        expect(f.getTensor("output.weight")?.shape).toEqual([64, 151936]);
        expect(f.getTensor("output.weight")?.type).toBe("f16");
        expect(f.getTensor("blk.0.attn_q.weight")?.type).toBe("f16");
        expect(f.getTensor("blk.0.attn_q.bias")?.type).toBe("f32");
        expect(f.getTensor("output_norm.weight")?.type).toBe("f32");
        const m = await loadAddon().loadModel({ path: out });
        try {
            expect(m.info().vocabSize).toBe(151936);
            const tokens = await greedy(m, "Hello world", 10);
            expect(new Set(tokens).size).toBeGreaterThan(3);
        } finally {
            m.dispose();
        }
    });

    it("f32 → f16 conversion matches ggml's round-to-nearest-even", async () => {
        const rng = new Random(9);
        const values = new Float32Array(4096);
        for (let i = 0; i < values.length; i++) {
            const scale = [1e-8, 6e-5, 1e-3, 1, 100, 65504, 70000][i % 7]!;
            values[i] = rng.normal() * scale;
        }
        values.set([0, -0, 65504, 65520, 65519.99, 5.960464477539063e-8, 2.9802322387695312e-8, 2.980232594e-8, Infinity, -Infinity], 0);
        const native = await loadAddon().quantize("f16", values, 1, values.length, 1);
        const ggml = new Uint16Array(native.buffer, native.byteOffset, values.length);
        for (let i = 0; i < values.length; i++) {
            if (f32ToF16Bits(values[i]!) !== ggml[i]) expect.fail(`f16 of ${values[i]}: ${f32ToF16Bits(values[i]!)} vs ggml ${ggml[i]}`);
        }
    });
});
