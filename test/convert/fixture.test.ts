// The test checkpoint generator itself: layout, shapes, tokenizer files and the reconstructed chat template.
import { ChatTemplate } from "../../lib/chat/template.js";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
    ADDED_TOKENS,
    REAL_2B_TEXT,
    REAL_2B_VISION,
    VIDEOLLAMA3_CHAT_TEMPLATE,
    checkpointTensorShapes,
    toBf16Bits,
    toF16Bits,
} from "../fixtures/hf-checkpoint.js";
import { checkpoint, expectedBf16Values } from "./helpers.js";

const SYSTEM =
    "<|im_start|>system\nYou are VideoLLaMA3 created by Alibaba DAMO Academy, a helpful assistant to help people understand images and videos.<|im_end|>\n";

describe("VideoLLaMA3 chat template (spec §6)", () => {
    const template = new ChatTemplate(VIDEOLLAMA3_CHAT_TEMPLATE);
    const render = (messages: unknown[], extra: Record<string, unknown> = {}) =>
        template.renderText(messages as never, { addGenerationPrompt: true, variables: { image_token: "<image>", ...extra } });

    it("renders the spec's video example exactly", () => {
        const out = render(
            [
                {
                    role: "user",
                    content: [
                        { type: "video", num_frames: 3, timestamps: [0, 1, 2] },
                        { type: "text", text: "What is the cat doing?" },
                    ],
                },
            ],
            { add_system_prompt: true },
        );
        expect(out).toBe(
            SYSTEM + "<|im_start|>user\nTime 0.0s:<image>,Time 1.0s:<image>,Time 2.0s:<image>\nWhat is the cat doing?<|im_end|>\n<|im_start|>assistant\n",
        );
    });

    it("renders the spec's image example exactly (explicit system message wins over the built-in one)", () => {
        const out = render(
            [
                { role: "system", content: "You are a helpful assistant." },
                { role: "user", content: [{ type: "image" }, { type: "text", text: "Describe." }] },
            ],
            { add_system_prompt: true },
        );
        expect(out).toBe(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\nDescribe.<|im_end|>\n<|im_start|>assistant\n",
        );
    });

    it("follows the remaining rules of §6: no system prompt by default, image timestamps, stream messages, rounding", () => {
        expect(render([{ role: "user", content: "hi" }], { add_generation_prompt: false })).toBe("<|im_start|>user\nhi<|im_end|>\n");
        expect(render([{ role: "user", content: [{ type: "image", timestamp: 1.5 }, { type: "text", text: "x" }] }])).toBe(
            "<|im_start|>user\nTime 1.5s: <image>\nx<|im_end|>\n<|im_start|>assistant\n",
        );
        expect(render([{ role: "stream", content: [{ type: "image" }] }], { add_generation_prompt: false })).toBe(
            "<|stream_start|>stream\n<image>\n<|stream_end|>",
        );
        expect(render([{ role: "user", content: [{ type: "video", num_frames: 2, timestamps: [0.3333, 12.04] }] }])).toBe(
            "<|im_start|>user\nTime 0.3s:<image>,Time 12.0s:<image>\n<|im_end|>\n<|im_start|>assistant\n",
        );
        // a plain image part
        expect(new ChatTemplate(VIDEOLLAMA3_CHAT_TEMPLATE).renderText([{ role: "user", content: [{ type: "image" }] }], { addGenerationPrompt: false, variables: { image_token: "<image>" } })).toBe(
            "<|im_start|>user\n<image>\n<|im_end|>\n",
        );
    });
});

describe("checkpoint generator", () => {
    it("produces the real 2B parameter count for the 2B shapes (spec §8: 1,959,993,584)", () => {
        const shapes = checkpointTensorShapes(REAL_2B_TEXT, REAL_2B_VISION, true);
        const count = (prefix: string) =>
            shapes.filter((s) => s.name.startsWith(prefix)).reduce((a, s) => a + s.shape.reduce((x, d) => x * d, 1), 0);
        expect(count("model.vision_encoder.")).toBe(412_147_440);
        expect(count("model.mm_projector.")).toBe(4_131_840);
        expect(count("model.embed_tokens.") + count("model.layers.") + count("model.norm.")).toBe(1_543_714_304);
        expect(shapes.some((s) => s.name === "lm_head.weight")).toBe(false);
        expect(checkpointTensorShapes(REAL_2B_TEXT, REAL_2B_VISION, false).at(-1)).toEqual({ name: "lm_head.weight", shape: [151936, 1536] });
    });

    it("rounds like torch: bf16 and f16 round to nearest even", () => {
        expect(toBf16Bits(1)).toBe(0x3f80);
        expect(toBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie → even
        expect(toBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie → even (up)
        expect(toBf16Bits(-2)).toBe(0xc000);
        expect(toF16Bits(1)).toBe(0x3c00);
        expect(toF16Bits(65504)).toBe(0x7bff);
        expect(toF16Bits(65520)).toBe(0x7c00);
        expect(toF16Bits(2 ** -24)).toBe(0x0001);
        expect(toF16Bits(1 + 2 ** -11)).toBe(0x3c00);
        expect(toF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    });

    it("writes the HF layout: config keys, tokenizer files with the VideoLLaMA3 tokens, safetensors data", async () => {
        const ck = await checkpoint("tiny-tied", {});
        const config = JSON.parse(await readFile(join(ck.dir, "config.json"), "utf8"));
        expect(config.model_type).toBe("videollama3_qwen2");
        expect(config.architectures).toEqual(["Videollama3Qwen2ForCausalLM"]);
        expect(config.image_token_index).toBe(151665);
        expect(config.tie_word_embeddings).toBe(true);
        expect(config.vision_encoder_config).toMatchObject({ hidden_size: 32, num_hidden_layers: 2, patch_size: 14 });

        const tok = JSON.parse(await readFile(join(ck.dir, "tokenizer.json"), "utf8"));
        expect(Object.keys(tok.model.vocab).length).toBe(151643);
        expect(tok.model.vocab["Hello"]).toBe(9707); // Qwen2: "Hello" is 9707 (llama.cpp's ggml-vocab-qwen2.gguf.out)
        expect(tok.model.merges.length).toBe(151387);
        const added = new Map<number, string>(tok.added_tokens.map((t: { id: number; content: string }) => [t.id, t.content]));
        expect(added.get(151665)).toBe("<image>");
        expect(added.get(151666)).toBe("<|stream_start|>");
        expect(added.get(151667)).toBe("<|stream_end|>");
        expect(added.get(151645)).toBe("<|im_end|>");
        expect(added.size).toBe(ADDED_TOKENS.length);
        const addedJson = JSON.parse(await readFile(join(ck.dir, "added_tokens.json"), "utf8"));
        expect(addedJson["<image>"]).toBe(151665);
        const ct = JSON.parse(await readFile(join(ck.dir, "chat_template.json"), "utf8"));
        expect(ct.chat_template).toBe(VIDEOLLAMA3_CHAT_TEMPLATE);
        const pre = JSON.parse(await readFile(join(ck.dir, "preprocessor_config.json"), "utf8"));
        expect(pre).toMatchObject({ patch_size: 14, min_tokens: 16, max_tokens: 16384, resample: 3, image_mean: [0.5, 0.5, 0.5] });

        // safetensors: parse the header by hand and check one tensor's bytes against the generator
        const fh = await open(join(ck.dir, "model.safetensors"), "r");
        try {
            const len = Buffer.alloc(8);
            await fh.read(len, 0, 8, 0);
            const n = Number(len.readBigUInt64LE(0));
            const hdr = Buffer.alloc(n);
            await fh.read(hdr, 0, n, 8);
            const header = JSON.parse(hdr.toString("utf8"));
            const name = "model.layers.1.self_attn.k_proj.weight";
            expect(header[name].dtype).toBe("BF16");
            expect(header[name].shape).toEqual([32, 64]);
            const [b, e] = header[name].data_offsets;
            const data = Buffer.alloc(e - b);
            await fh.read(data, 0, e - b, 8 + n + b);
            const expected = expectedBf16Values(1, name, 32 * 64);
            const u32 = new Uint32Array(expected.buffer);
            for (let i = 0; i < 32 * 64; i++) expect(data.readUInt16LE(2 * i)).toBe(u32[i]! >>> 16);
        } finally {
            await fh.close();
        }
    });

    it("writes shards with an index whose weight_map covers every tensor", async () => {
        const ck = await checkpoint("tiny-sharded-untied", { shards: 3, tied: false });
        const index = JSON.parse(await readFile(join(ck.dir, "model.safetensors.index.json"), "utf8"));
        const files = new Set(Object.values(index.weight_map));
        expect(files).toEqual(new Set(["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"]));
        expect(Object.keys(index.weight_map).sort()).toEqual(ck.tensors.map((t) => t.name).sort());
        expect(index.weight_map["lm_head.weight"]).toBeDefined();
        expect(index.metadata.total_size).toBe(ck.bytes);
    });
});
