// Bad Video-LLaVA checkpoints: every failure the VideoLLaMA3 converter tests (validation.test.ts) for the Video-LLaVA
// layout — missing, extra, mis-shaped and mis-typed tensors, unknown architectures, config errors, tokenizer errors,
// truncated and malformed shards — each a ConversionError naming the file (and the tensor) with nothing written;
// and the shared output behaviour: no overwrite without force, temporary names, abort.
import { readdirSync, truncateSync } from "node:fs";
import { open, readFile, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint } from "../../lib/convert/convert.js";
import { readSafetensorsHeader } from "../../lib/convert/safetensors.js";
import { ConversionError } from "../../lib/errors.js";
import { writeVideoLlavaCheckpoint, type VideoLlavaCheckpoint, type VideoLlavaCheckpointOptions } from "../fixtures/hf-video-llava.js";
import { fixturesRoot, freshDir, listDir } from "./helpers.js";

async function conversionError(p: Promise<unknown>): Promise<ConversionError> {
    const err = await p.then(
        () => undefined,
        (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConversionError);
    return err as ConversionError;
}

/** A broken variant of the tiny checkpoint, converted into a fresh output directory that must stay empty. */
async function convertBroken(name: string, options: VideoLlavaCheckpointOptions): Promise<{ err: ConversionError; dir: string }> {
    const dir = join(fixturesRoot, `vl-bad-${name}`);
    await writeVideoLlavaCheckpoint(dir, options);
    const out = await freshDir(`vl-bad-${name}-out`);
    const err = await conversionError(convertCheckpoint({ input: dir, outDir: out, type: "q8_0" }));
    expect(await listDir(out), "nothing written").toEqual([]);
    return { err, dir };
}

const INDEX = "model.safetensors.index.json";
const SINGLE = "model.safetensors";
const CONFIG = "config.json";

interface BadCase {
    name: string;
    options: VideoLlavaCheckpointOptions;
    /** The file the error names, relative to the checkpoint. */
    file: string;
    tensor?: string;
    message: RegExp;
}

const tensorCases: BadCase[] = [
    {
        name: "missing text tensor (sharded: the index is named)",
        options: { omit: ["language_model.model.layers.1.mlp.up_proj.weight"] },
        file: INDEX,
        tensor: "language_model.model.layers.1.mlp.up_proj.weight",
        message: /missing tensor \(needed for blk\.1\.ffn_up\.weight\)/,
    },
    {
        name: "missing video tower tensor (single file)",
        options: { shards: 1, omit: ["video_tower.vision_model.encoder.layers.1.self_attn.q_proj.bias"] },
        file: SINGLE,
        tensor: "video_tower.vision_model.encoder.layers.1.self_attn.q_proj.bias",
        message: /missing tensor \(needed for v\.video\.blk\.1\.attn_q\.bias\)/,
    },
    {
        name: "missing lm_head (Video-LLaVA's output is untied)",
        options: { omit: ["language_model.lm_head.weight"] },
        file: INDEX,
        tensor: "language_model.lm_head.weight",
        message: /missing tensor \(needed for output\.weight\)/,
    },
    {
        name: "missing projector tensor",
        options: { omit: ["multi_modal_projector.linear_2.bias"] },
        file: INDEX,
        tensor: "multi_modal_projector.linear_2.bias",
        message: /missing tensor \(needed for mm\.2\.bias\)/,
    },
    {
        name: "missing class embedding",
        options: { omit: ["image_tower.vision_model.embeddings.class_embedding"] },
        file: INDEX,
        tensor: "image_tower.vision_model.embeddings.class_embedding",
        message: /missing tensor \(needed for v\.class_embd\)/,
    },
    {
        name: "unexpected shape of k_proj",
        options: { shards: 1, override: { "language_model.model.layers.0.self_attn.k_proj.weight": { shape: [32, 64] } } },
        file: SINGLE,
        tensor: "language_model.model.layers.0.self_attn.k_proj.weight",
        message: /unexpected shape \[32, 64\], expected \[64, 64\] from config\.json/,
    },
    {
        name: "position embeddings of another grid",
        options: { shards: 1, override: { "video_tower.vision_model.embeddings.position_embedding.weight": { shape: [197, 32] } } },
        file: SINGLE,
        tensor: "video_tower.vision_model.embeddings.position_embedding.weight",
        message: /unexpected shape \[197, 32\], expected \[257, 32\]/,
    },
    {
        name: "patch embedding of another patch size",
        options: { shards: 1, override: { "image_tower.vision_model.embeddings.patch_embedding.weight": { shape: [32, 3, 16, 16] } } },
        file: SINGLE,
        tensor: "image_tower.vision_model.embeddings.patch_embedding.weight",
        message: /unexpected shape \[32, 3, 16, 16\], expected \[32, 3, 14, 14\]/,
    },
    {
        name: "unsupported dtype",
        options: { shards: 1, override: { "image_tower.vision_model.pre_layrnorm.bias": { dtype: "I32" } } },
        file: SINGLE,
        tensor: "image_tower.vision_model.pre_layrnorm.bias",
        message: /unsupported dtype I32/,
    },
    {
        name: "unsupported dtype of a text matrix",
        options: { shards: 1, override: { "language_model.model.layers.1.self_attn.o_proj.weight": { dtype: "F64" } } },
        file: SINGLE,
        tensor: "language_model.model.layers.1.self_attn.o_proj.weight",
        message: /unsupported dtype F64/,
    },
    {
        name: "extra tensor: the original checkpoint's temporal attention",
        options: { shards: 1, extra: [{ name: "video_tower.vision_model.encoder.layers.0.temporal_attn.q_proj.weight", shape: [32, 32] }] },
        file: SINGLE,
        tensor: "video_tower.vision_model.encoder.layers.0.temporal_attn.q_proj.weight",
        message: /unexpected tensor: not part of a Video-LLaVA checkpoint with this config\.json/,
    },
    {
        name: "extra tensor: a layer past num_hidden_layers",
        options: { shards: 1, extra: [{ name: "image_tower.vision_model.encoder.layers.3.mlp.fc1.bias", shape: [64] }] },
        file: SINGLE,
        tensor: "image_tower.vision_model.encoder.layers.3.mlp.fc1.bias",
        message: /unexpected tensor/,
    },
    {
        name: "extra tensor: CLIP's visual projection",
        options: { shards: 1, extra: [{ name: "image_tower.visual_projection.weight", shape: [768, 32] }] },
        file: SINGLE,
        tensor: "image_tower.visual_projection.weight",
        message: /unexpected tensor/,
    },
];

const configCases: BadCase[] = [
    {
        name: "unknown architecture",
        options: { config: { model_type: "llava", architectures: ["LlavaForConditionalGeneration"] } },
        file: CONFIG,
        message: /unknown architecture: model_type "llava", .*expected .*model_type "video_llava" with architectures \["VideoLlavaForConditionalGeneration"\] \(Video-LLaVA\)/,
    },
    {
        name: "the original PKU checkpoint",
        options: { config: { model_type: "llava", architectures: ["LlavaLlamaForCausalLM"], mm_video_tower: "LanguageBind/LanguageBind_Video_merge" } },
        file: CONFIG,
        message: /unknown architecture.*original PKU Video-LLaVA checkpoint; convert the Hugging Face port LanguageBind\/Video-LLaVA-7B-hf/,
    },
    {
        name: "video_llava with another architecture",
        options: { config: { architectures: ["LlavaForConditionalGeneration"] } },
        file: CONFIG,
        message: /unknown architecture: model_type "video_llava", architectures \["LlavaForConditionalGeneration"\]/,
    },
    {
        name: "text model other than llama",
        options: { textConfig: { model_type: "mistral" } },
        file: CONFIG,
        message: /text_config\.model_type "mistral" is not supported/,
    },
    {
        name: "text activation",
        options: { textConfig: { hidden_act: "gelu" } },
        file: CONFIG,
        message: /text_config\.hidden_act "gelu" is not supported \(llama uses silu\)/,
    },
    {
        name: "hidden size not a multiple of the heads",
        options: { textConfig: { num_attention_heads: 5 } },
        file: CONFIG,
        message: /text_config\.hidden_size 64 is not a multiple of num_attention_heads 5/,
    },
    {
        name: "vision activation",
        options: { visionConfig: { hidden_act: "gelu_new" } },
        file: CONFIG,
        message: /vision_config\.hidden_act "gelu_new" is not supported \(quick_gelu, gelu\)/,
    },
    {
        name: "several feature layers",
        options: { config: { vision_feature_layer: [-2, -5] } },
        file: CONFIG,
        message: /vision_feature_layer as a list of layers is not supported/,
    },
    {
        name: "feature layer 0 (the embeddings)",
        options: { config: { vision_feature_layer: 0 } },
        file: CONFIG,
        message: /vision_feature_layer/,
    },
    {
        name: "feature select strategy",
        options: { config: { vision_feature_select_strategy: "cls" } },
        file: CONFIG,
        message: /vision_feature_select_strategy "cls" is not supported \(default, full\)/,
    },
    {
        name: "projector activation",
        options: { config: { projector_hidden_act: "relu" } },
        file: CONFIG,
        message: /projector_hidden_act "relu" is not supported \(gelu\)/,
    },
    {
        name: "placeholder outside the vocabulary",
        options: { config: { video_token_index: 40000 } },
        file: CONFIG,
        message: /video_token_index 40000 is outside the vocabulary \(text_config\.vocab_size 32064\)/,
    },
    {
        name: "one id for both placeholders",
        options: { config: { video_token_index: 32000 } },
        file: CONFIG,
        message: /image_token_index and video_token_index are both 32000/,
    },
];

const tokenizerCases: BadCase[] = [
    {
        name: "missing tokenizer.model",
        options: { omitFiles: ["tokenizer.model"] },
        file: "tokenizer.model",
        message: /required file is missing \(the SentencePiece tokenizer\)/,
    },
    {
        name: "truncated tokenizer.model",
        options: { files: { "tokenizer.model": new Uint8Array([0x0a, 0x10, 0x0a, 0x05, 0x3c]) } },
        file: "tokenizer.model",
        message: /malformed SentencePiece model: a field of 16 bytes runs past the end/,
    },
    {
        name: "a unigram SentencePiece model",
        options: { spm: { modelType: 1 } },
        file: "tokenizer.model",
        message: /SentencePiece model type unigram is not supported/,
    },
    {
        name: "added token outside the vocabulary",
        options: { files: { "added_tokens.json": JSON.stringify({ "<image>": 32000, "<video>": 32001, "<pad>": 40000 }) } },
        file: "added_tokens.json",
        message: /added token "<pad>" has id 40000, outside the vocabulary \(vocab_size 32064\)/,
    },
    {
        name: "malformed tokenizer_config.json",
        options: { files: { "tokenizer_config.json": "{ nope" } },
        file: "tokenizer_config.json",
        message: /malformed JSON/,
    },
    {
        name: "a bos token that is not in the vocabulary",
        options: { files: { "tokenizer_config.json": JSON.stringify({ bos_token: "<bos>" }) } },
        file: "tokenizer_config.json",
        message: /bos_token "<bos>" is not in the vocabulary/,
    },
    {
        name: "a crop other than the position embeddings' grid",
        options: { files: { "preprocessor_config.json": JSON.stringify({ crop_size: { height: 336, width: 336 }, size: { shortest_edge: 336 } }) } },
        file: "preprocessor_config.json",
        message: /crop_size 336 differs from vision_config\.image_size 224/,
    },
];

describe("bad Video-LLaVA checkpoints: the error names the file and the tensor, nothing is written", () => {
    it.each([...tensorCases, ...configCases, ...tokenizerCases])("$name", async ({ name, options, file, tensor, message }) => {
        const { err, dir } = await convertBroken(name.replace(/[^a-z0-9]+/gi, "-").toLowerCase(), options);
        expect(err.file).toBe(join(dir, file));
        expect(err.tensor).toBe(tensor);
        expect(err.message).toMatch(message);
    });

    it("tensors the converter drops (blocks after the feature layer, post_layernorm) may be absent", async () => {
        const dir = join(fixturesRoot, "vl-without-dropped");
        await writeVideoLlavaCheckpoint(dir, {
            shards: 1,
            omit: ["image_tower.vision_model.post_layernorm.weight", "video_tower.vision_model.encoder.layers.2.mlp.fc2.weight"],
        });
        const r = await convertCheckpoint({ input: dir, outDir: await freshDir("vl-without-dropped-out"), type: "q8_0" });
        expect(r.tensors.some((t) => t.name === "v.video.blk.1.ffn_down.weight")).toBe(true);
    });

    it("missing optional files are warnings: tokenizer_config.json, preprocessor_config.json, generation_config.json", async () => {
        const dir = join(fixturesRoot, "vl-minimal");
        await writeVideoLlavaCheckpoint(dir, { shards: 1, omitFiles: ["tokenizer_config.json", "preprocessor_config.json", "generation_config.json", "special_tokens_map.json"] });
        const r = await convertCheckpoint({ input: dir, outDir: await freshDir("vl-minimal-out"), type: "q8_0" });
        expect(r.warnings).toContainEqual(expect.stringMatching(/tokenizer_config\.json is missing/));
        expect(r.warnings).toContainEqual(expect.stringMatching(/preprocessor_config\.json is missing: using CLIP's values/));
    });

    it("truncated safetensors shard", async () => {
        const dir = join(fixturesRoot, "vl-bad-truncated");
        const ck = await writeVideoLlavaCheckpoint(dir);
        const file = join(dir, "model-00003-of-00003.safetensors");
        expect(ck.tensors.at(-1)).toMatchObject({ name: "language_model.lm_head.weight", file }); // the last tensor is cut
        await truncate(file, (await stat(file)).size - 100);
        const out = await freshDir("vl-bad-truncated-out");
        const err = await conversionError(convertCheckpoint({ input: dir, outDir: out }));
        expect(err.file).toBe(file);
        expect(err.tensor).toBe("language_model.lm_head.weight");
        expect(err.message).toMatch(/truncated safetensors file: the tensor's data ends at byte \d+ but the file has \d+ bytes$/);
        expect(await listDir(out)).toEqual([]);
    });

    it("malformed safetensors header", async () => {
        const dir = join(fixturesRoot, "vl-bad-header");
        await writeVideoLlavaCheckpoint(dir);
        const file = join(dir, "model-00002-of-00003.safetensors");
        const fh = await open(file, "r+");
        await fh.write(Buffer.from("}}}}"), 0, 4, 8);
        await fh.close();
        const err = await conversionError(convertCheckpoint({ input: dir, outDir: await freshDir("vl-bad-header-out") }));
        expect(err.file).toBe(file);
        expect(err.message).toMatch(/malformed safetensors header/);
    });

    it("missing or malformed config.json, missing weights", async () => {
        const dir = join(fixturesRoot, "vl-bad-config");
        await writeVideoLlavaCheckpoint(dir, { shards: 1, omitFiles: ["config.json"] });
        let err = await conversionError(convertCheckpoint({ input: dir, outDir: await freshDir("vl-bad-config-out") }));
        expect(err.file).toBe(join(dir, "config.json"));
        expect(err.message).toMatch(/config\.json: required file is missing/);
        await writeFile(join(dir, "config.json"), "{ nope");
        err = await conversionError(convertCheckpoint({ input: dir, outDir: await freshDir("vl-bad-config-out") }));
        expect(err.message).toMatch(/config\.json: malformed JSON/);
        const empty = join(fixturesRoot, "vl-bad-no-weights");
        await writeVideoLlavaCheckpoint(empty, { shards: 1 });
        const config = await readFile(join(empty, "config.json"));
        await freshDir("vl-bad-no-weights");
        await writeFile(join(empty, "config.json"), config);
        err = await conversionError(convertCheckpoint({ input: empty, outDir: await freshDir("vl-bad-config-out") }));
        expect(err.message).toMatch(/no model\.safetensors or model\.safetensors\.index\.json/);
    });
});

describe("Video-LLaVA output files", () => {
    let ck: VideoLlavaCheckpoint;
    beforeAll(async () => {
        ck = await writeVideoLlavaCheckpoint(join(fixturesRoot, "vl-output"));
    });

    it("never overwrites without force, replaces with force", async () => {
        const out = await freshDir("vl-overwrite");
        const first = await convertCheckpoint({ input: ck.dir, outDir: out, type: "q8_0", name: "m" });
        const before = await stat(first.textModel);
        const err = await conversionError(convertCheckpoint({ input: ck.dir, outDir: out, type: "q8_0", name: "m" }));
        expect(err.file).toBe(first.textModel);
        expect(err.message).toMatch(/already exists \(use force \/ --force to replace it\)/);
        expect((await stat(first.textModel)).mtimeMs).toBe(before.mtimeMs);
        await convertCheckpoint({ input: ck.dir, outDir: out, type: "q8_0", name: "m", force: true });
        expect(await listDir(out)).toEqual(["m-q8_0.gguf", "mmproj-m-f16.gguf"]);
    });

    it("writes under temporary names in the output directory and renames at the end", async () => {
        const out = await freshDir("vl-temp-names");
        const seen = new Set<string>();
        await convertCheckpoint({
            input: ck.dir,
            outDir: out,
            onProgress: (p) => {
                if (p.phase === "mmproj" || p.phase === "finalize") for (const f of readdirSync(out)) seen.add(f);
            },
        });
        expect([...seen].some((f) => /^vl-output-f16\.gguf\.\d+-[0-9a-f]{8}\.partial$/.test(f))).toBe(true);
        expect([...seen].some((f) => /^mmproj-vl-output-f16\.gguf\.\d+-[0-9a-f]{8}\.partial$/.test(f))).toBe(true);
        expect(await listDir(out)).toEqual(["mmproj-vl-output-f16.gguf", "vl-output-f16.gguf"]);
    });

    it("removes the temporary file when a shard turns out truncated while converting", async () => {
        const dir = join(fixturesRoot, "vl-late-truncation");
        await writeVideoLlavaCheckpoint(dir, { shards: 1 });
        const file = join(dir, "model.safetensors");
        const { dataStart } = await readSafetensorsHeader(file);
        const out = await freshDir("vl-late-truncation-out");
        let truncated = false;
        const err = await conversionError(
            convertCheckpoint({
                input: dir,
                outDir: out,
                onProgress: (p) => {
                    if (p.phase === "text" && !truncated) {
                        truncated = true;
                        truncateSync(file, dataStart + 1000); // after validation: the tower tensors at the front survive
                    }
                },
            }),
        );
        expect(err.file).toBe(file);
        expect(err.message).toMatch(/unexpected end of file/);
        expect(await listDir(out)).toEqual([]);
    });

    it("abort mid-conversion rejects with the signal's reason and leaves no files (nor a directory it created)", async () => {
        const parent = await freshDir("vl-abort");
        const out = join(parent, "new-dir");
        const controller = new AbortController();
        const reason = new DOMException("stop", "AbortError");
        let events = 0;
        const p = convertCheckpoint({
            input: ck.dir,
            outDir: out,
            type: "q4_k_m",
            signal: controller.signal,
            onProgress: (e) => {
                if (e.phase === "text" && ++events === 3) controller.abort(reason);
            },
        });
        await expect(p).rejects.toBe(reason);
        expect(await listDir(parent)).toEqual([]);
        const c2 = new AbortController();
        const existing = await freshDir("vl-abort-existing");
        await expect(
            convertCheckpoint({ input: ck.dir, outDir: existing, signal: c2.signal, onProgress: (e) => e.phase === "mmproj" && c2.abort() }),
        ).rejects.toMatchObject({ name: "AbortError" });
        expect(await listDir(existing)).toEqual([]);
    });
});
