import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidOptionError } from "../../lib/errors.js";
import { describeGguf } from "../../lib/gguf/inspect.js";
import { readGguf, type GgufFile } from "../../lib/gguf/reader.js";
import { GgufWriter } from "../../lib/gguf/writer.js";
import { ensureTinyQwen2, qwen2VocabPath } from "../fixtures/tiny-qwen2.js";
import { tempDir } from "./helpers.js";

const { dir, cleanup } = tempDir();
afterAll(cleanup);

let tiny: GgufFile;
let vocab: GgufFile;
beforeAll(async () => {
    tiny = await readGguf(await ensureTinyQwen2());
    vocab = await readGguf(qwen2VocabPath());
});

describe("describeGguf", () => {
    it("summarises long arrays and truncates long strings with their length", () => {
        const text = describeGguf(vocab);
        const lines = text.split("\n");
        expect(lines[0]).toBe(vocab.path);
        expect(text).toContain("GGUF v3");
        expect(text).toContain("20 metadata keys, 0 tensors");
        const tokens = lines.find((l) => l.includes("tokenizer.ggml.tokens"))!;
        expect(tokens).toContain("arr[str,151936]");
        expect(tokens).toContain('["!", "\\"", "#"');
        expect(tokens).toContain(`… ${151936 - 8} more]`);
        expect(tokens.length).toBeLessThan(200);
        const template = lines.find((l) => l.includes("tokenizer.chat_template"))!;
        expect(template).toContain(`(${vocab.getString("tokenizer.chat_template")!.length} chars)`);
        expect(template.length).toBeLessThan(200);
        expect(lines.find((l) => l.includes("general.file_type"))).toMatch(/u32\s+1 \(F16\)/);
        expect(lines.find((l) => l.includes("eos_token_id"))).toContain('151643 ("<|endoftext|>")');
        expect(lines.find((l) => l.includes("layer_norm_rms_epsilon"))).toMatch(/f32\s+0\.000001$/);
        expect(text).toContain("Tensors: none");
        // no line is absurdly long (nothing dumps a whole array)
        expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(300);
    });

    it("counts tensors, bytes and parameters of the tiny model", () => {
        const text = describeGguf(tiny);
        // independent count from the architecture: embeddings + 2 blocks + output norm (tied output)
        const n = 64;
        const kv = 32;
        const ff = 128;
        const block = n + (n * n + n) + 2 * (n * kv + kv) + n * n + n + 3 * n * ff;
        const params = n * 151936 + 2 * block + n;
        expect(text).toContain(`Tensors: 26, `);
        expect(text).toContain(`(${params * 4} bytes), 9.80 M parameters (${params})`);
        expect(text).toContain("32.00 bits per weight");
        expect(text).toContain("f32 ×26");
        expect(text).toMatch(/largest:\n\s+token_embd\.weight\s+f32\s+\[64, 151936\]\s+37\.1 MiB/);
        expect(text).toContain("… 21 more (list them all with --tensors)");
        expect(text).not.toContain("blk.1.attn_q.bias");
        const all = describeGguf(tiny, { tensors: "all" });
        for (const t of tiny.tensors) expect(all).toMatch(new RegExp(`\\n\\s+${t.name.replace(/\./g, "\\.")}\\s+f32\\s+\\[${t.shape.join(", ")}\\]`));
    });

    it("shows every value type readably", async () => {
        const path = join(dir, "types.gguf");
        const w = new GgufWriter(path);
        w.setString("s", "line1\nline2");
        w.setU64("big", 2n ** 64n - 1n);
        w.setI8("neg", -3);
        w.setF32("third", 1 / 3);
        w.setF64("pi", Math.PI);
        w.setBool("flag", true);
        w.setArray("mean", 6, [0.5, 0.5, 0.5]);
        w.setArray("q", 8, ["x".repeat(100)]);
        w.addTensor("w", "q8_0", [64, 2]);
        await w.writeHeader();
        await w.writeTensor("w", new Uint8Array(136));
        await w.finish();
        const text = describeGguf(await readGguf(path));
        expect(text).toMatch(/s\s+str\s+"line1\\nline2"/);
        expect(text).toMatch(/big\s+u64\s+18446744073709551615/);
        expect(text).toMatch(/neg\s+i8\s+-3/);
        expect(text).toMatch(/third\s+f32\s+0\.33333334$/m);
        expect(text).toMatch(/pi\s+f64\s+3\.141592653589793/);
        expect(text).toMatch(/flag\s+bool\s+true/);
        expect(text).toMatch(/mean\s+arr\[f32,3\]\s+\[0\.5, 0\.5, 0\.5\]/);
        expect(text).toContain('"' + "x".repeat(24) + '"… (100 chars)');
        expect(text).toMatch(/Tensors: 1, 136 B .* 128 parameters .*8\.50 bits per weight/);
        expect(text).toContain("q8_0 ×1");
    });

    it("validates options", () => {
        expect(() => describeGguf(tiny, { tensors: "some" as never })).toThrow(InvalidOptionError);
        expect(() => describeGguf({} as never)).toThrow(InvalidOptionError);
        expect(() => describeGguf(tiny, { tensor: "all" } as never)).toThrow(/did you mean "tensors"/);
    });
});
