// Validation errors, no-overwrite, temporary files and abort.
import { readdirSync, truncateSync } from "node:fs";
import { cp, open, readFile, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint } from "../../lib/convert/convert.js";
import { readSafetensorsHeader } from "../../lib/convert/safetensors.js";
import { ConversionError, InvalidOptionError } from "../../lib/errors.js";
import { writeHfCheckpoint, type HfCheckpointOptions } from "../fixtures/hf-checkpoint.js";
import { checkpoint, fixturesRoot, freshDir, listDir } from "./helpers.js";

async function conversionError(p: Promise<unknown>): Promise<ConversionError> {
    const err = await p.then(
        () => undefined,
        (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConversionError);
    return err as ConversionError;
}

/** A broken variant of the tiny checkpoint, converted into a fresh output directory. */
async function convertBroken(name: string, options: Omit<HfCheckpointOptions, "dir">): Promise<{ err: ConversionError; out: string; dir: string }> {
    const dir = join(fixturesRoot, `bad-${name}`);
    await writeHfCheckpoint({ ...options, dir });
    const out = join(fixturesRoot, `bad-${name}-out`);
    await freshDir(`bad-${name}-out`);
    const err = await conversionError(convertCheckpoint({ input: dir, outDir: out, type: "q8_0" }));
    expect(await listDir(out), "nothing written").toEqual([]);
    return { err, out, dir };
}

describe("validation errors name the file and the tensor", () => {
    it("missing tensor", async () => {
        const { err, dir } = await convertBroken("missing", { omit: ["model.layers.1.mlp.up_proj.weight"] });
        expect(err.tensor).toBe("model.layers.1.mlp.up_proj.weight");
        expect(err.file).toBe(join(dir, "model.safetensors"));
        expect(err.message).toMatch(/missing tensor \(needed for blk\.1\.ffn_up\.weight\)/);
    });

    it("missing tensor in a sharded checkpoint names the index", async () => {
        const { err, dir } = await convertBroken("missing-sharded", { shards: 2, omit: ["model.norm.weight"] });
        expect(err.file).toBe(join(dir, "model.safetensors.index.json"));
        expect(err.tensor).toBe("model.norm.weight");
    });

    it("unexpected shape", async () => {
        const { err } = await convertBroken("shape", { override: { "model.layers.0.self_attn.k_proj.weight": { shape: [16, 64] } } });
        expect(err.tensor).toBe("model.layers.0.self_attn.k_proj.weight");
        expect(err.message).toMatch(/unexpected shape \[16, 64\], expected \[32, 64\]/);
    });

    it("unsupported dtype", async () => {
        const { err } = await convertBroken("dtype", { override: { "model.vision_encoder.post_layernorm.bias": { dtype: "I32" } } });
        expect(err.tensor).toBe("model.vision_encoder.post_layernorm.bias");
        expect(err.message).toMatch(/unsupported dtype I32/);
    });

    it("unexpected extra tensor", async () => {
        const { err } = await convertBroken("extra", { extra: [{ name: "model.vision_encoder.embeddings.position_embedding.weight", shape: [16, 32] }] });
        expect(err.tensor).toBe("model.vision_encoder.embeddings.position_embedding.weight");
        expect(err.message).toMatch(/unexpected tensor/);
    });

    it("unknown architecture (model_type / architectures of config.json)", async () => {
        let r = await convertBroken("arch", { config: { model_type: "llava", architectures: ["LlavaForConditionalGeneration"] } });
        expect(r.err.file).toBe(join(r.dir, "config.json"));
        expect(r.err.message).toMatch(/unknown architecture: model_type "llava"/);
        r = await convertBroken("arch-port", { config: { model_type: "video_llama_3", architectures: ["VideoLlama3ForConditionalGeneration"] } });
        expect(r.err.message).toMatch(/transformers-native port/);
        r = await convertBroken("arch-list", { config: { architectures: ["Qwen2ForCausalLM"] } });
        expect(r.err.message).toMatch(/unknown architecture/);
    });

    it("truncated safetensors file", async () => {
        const dir = join(fixturesRoot, "bad-truncated");
        await writeHfCheckpoint({ dir });
        const file = join(dir, "model.safetensors");
        await truncate(file, (await stat(file)).size - 100); // model.norm.weight (64 bf16 = 128 bytes) is last
        const out = await freshDir("bad-truncated-out");
        const err = await conversionError(convertCheckpoint({ input: dir, outDir: out }));
        expect(err.file).toBe(file);
        expect(err.tensor).toBe("model.norm.weight");
        expect(err.message).toMatch(/truncated safetensors file: the tensor's data ends at byte \d+ but the file has \d+ bytes$/);
        await truncate(file, (await stat(file)).size - 1000); // now several tensors are cut: the first one is named
        const err2 = await conversionError(convertCheckpoint({ input: dir, outDir: out }));
        expect(err2.tensor).toBe("model.layers.1.mlp.down_proj.weight");
        expect(err2.message).toMatch(/the first of 4 tensors cut off/);
        expect(await listDir(out)).toEqual([]);
    });

    it("malformed safetensors header", async () => {
        const dir = join(fixturesRoot, "bad-header");
        await writeHfCheckpoint({ dir, shards: 2 });
        const file = join(dir, "model-00002-of-00002.safetensors");
        const fh = await open(file, "r+");
        await fh.write(Buffer.from("}}}}"), 0, 4, 8); // break the JSON
        await fh.close();
        const err = await conversionError(convertCheckpoint({ input: dir, outDir: await freshDir("bad-header-out") }));
        expect(err.file).toBe(file);
        expect(err.message).toMatch(/malformed safetensors header/);
    });

    it("missing or malformed config.json, missing weights", async () => {
        const dir = join(fixturesRoot, "bad-config");
        await writeHfCheckpoint({ dir, omitFiles: ["config.json"] });
        let err = await conversionError(convertCheckpoint({ input: dir, outDir: await freshDir("bad-config-out") }));
        expect(err.message).toMatch(/config\.json: required file is missing/);
        await writeFile(join(dir, "config.json"), "{ nope");
        err = await conversionError(convertCheckpoint({ input: dir, outDir: await freshDir("bad-config-out") }));
        expect(err.message).toMatch(/config\.json: malformed JSON/);
        err = await conversionError(convertCheckpoint({ input: join(fixturesRoot, "does-not-exist"), outDir: await freshDir("bad-config-out") }));
        expect(err.message).toMatch(/does not exist/);
        const empty = await freshDir("bad-empty");
        await cp(join(dir, "tokenizer.json"), join(empty, "tokenizer.json"));
        await writeFile(join(empty, "config.json"), await readFile(join(fixturesRoot, "ckpt-tiny-tied", "config.json")));
        err = await conversionError(convertCheckpoint({ input: empty, outDir: await freshDir("bad-config-out") }));
        expect(err.message).toMatch(/no model\.safetensors or model\.safetensors\.index\.json/);
    });

    it("invalid options", async () => {
        const ck = await checkpoint("tiny-tied", {});
        await expect(convertCheckpoint({ input: ck.dir, outDir: "x", type: "q5_k" as never })).rejects.toBeInstanceOf(InvalidOptionError);
        await expect(convertCheckpoint({ input: ck.dir, outDir: "x", typ: "f16" } as never)).rejects.toThrow(/did you mean "type"/);
        await expect(convertCheckpoint({ input: ck.dir, outDir: "x", name: "a/b" })).rejects.toBeInstanceOf(ConversionError);
    });
});

describe("output files", () => {
    let input: string;
    beforeAll(async () => {
        input = (await checkpoint("tiny-tied", {})).dir;
    });

    it("never overwrites without force, replaces with force", async () => {
        const out = await freshDir("overwrite");
        const first = await convertCheckpoint({ input, outDir: out, type: "q8_0", name: "m" });
        const before = await stat(first.textModel);
        const err = await conversionError(convertCheckpoint({ input, outDir: out, type: "q8_0", name: "m" }));
        expect(err.file).toBe(first.textModel);
        expect(err.message).toMatch(/already exists/);
        // an existing projector alone also blocks
        await writeFile(join(out, "mmproj-other-f16.gguf"), "x");
        await expect(convertCheckpoint({ input, outDir: out, type: "f16", name: "other" })).rejects.toThrow(/mmproj-other-f16\.gguf: the output file already exists/);
        expect((await stat(first.textModel)).mtimeMs).toBe(before.mtimeMs);
        const again = await convertCheckpoint({ input, outDir: out, type: "q8_0", name: "m", force: true });
        expect((await stat(again.textModel)).size).toBe(before.size);
        expect(await listDir(out)).toEqual(["m-q8_0.gguf", "mmproj-m-f16.gguf", "mmproj-other-f16.gguf"]);
    });

    it("writes under temporary names in the output directory and renames at the end", async () => {
        const out = await freshDir("temp-names");
        const seen = new Set<string>();
        await convertCheckpoint({
            input,
            outDir: out,
            type: "f16",
            onProgress: (p) => {
                if (p.phase === "mmproj" || p.phase === "finalize") for (const f of readdirSync(out)) seen.add(f);
            },
        });
        const names = [...seen];
        expect(names.some((f) => /^ckpt-tiny-tied-f16\.gguf\.\d+-[0-9a-f]{8}\.partial$/.test(f))).toBe(true);
        expect(names.some((f) => /^mmproj-ckpt-tiny-tied-f16\.gguf\.\d+-[0-9a-f]{8}\.partial$/.test(f))).toBe(true);
        expect(names).not.toContain("ckpt-tiny-tied-f16.gguf");
        expect(await listDir(out)).toEqual(["ckpt-tiny-tied-f16.gguf", "mmproj-ckpt-tiny-tied-f16.gguf"]);
    });

    it("removes the temporary file when a shard turns out truncated while converting", async () => {
        const dir = join(fixturesRoot, "late-truncation");
        await writeHfCheckpoint({ dir });
        const file = join(dir, "model.safetensors");
        const { dataStart } = await readSafetensorsHeader(file);
        const out = await freshDir("late-truncation-out");
        let truncated = false;
        const err = await conversionError(
            convertCheckpoint({
                input: dir,
                outDir: out,
                onProgress: (p) => {
                    if (p.phase === "text" && !truncated) {
                        truncated = true;
                        // the header was already validated; cut the data short behind the converter's back
                        truncateSync(file, dataStart + 1000);
                    }
                },
            }),
        );
        expect(err.file).toBe(file);
        expect(err.message).toMatch(/unexpected end of file/);
        expect(await listDir(out)).toEqual([]);
    });

    it("abort mid-conversion rejects with the signal's reason and leaves no files (nor a directory it created)", async () => {
        const parent = await freshDir("abort");
        const out = join(parent, "new-dir");
        const controller = new AbortController();
        let events = 0;
        const reason = new DOMException("stop", "AbortError");
        const p = convertCheckpoint({
            input,
            outDir: out,
            type: "q4_k_m",
            signal: controller.signal,
            onProgress: (e) => {
                if (e.phase === "text" && ++events === 3) controller.abort(reason);
            },
        });
        await expect(p).rejects.toBe(reason);
        expect(await listDir(parent)).toEqual([]);

        // a directory that already existed stays, empty
        const existing = await freshDir("abort-existing");
        const c2 = new AbortController();
        const p2 = convertCheckpoint({
            input,
            outDir: existing,
            signal: c2.signal,
            onProgress: (e) => {
                if (e.phase === "mmproj") c2.abort();
            },
        });
        await expect(p2).rejects.toMatchObject({ name: "AbortError" });
        expect(await listDir(existing)).toEqual([]);

        // already aborted: nothing happens at all
        const out3 = join(parent, "never");
        await expect(convertCheckpoint({ input, outDir: out3, signal: AbortSignal.abort() })).rejects.toMatchObject({ name: "AbortError" });
        expect(await listDir(parent)).toEqual([]);
    });
});
