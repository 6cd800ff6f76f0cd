// The vision towers' activation of a Video-LLaVA conversion — vision_config.hidden_act (quick_gelu when unset, as
// Hugging Face runs the model), the `visionAct` option and the CLI's `--vision-act` — written as clip.use_gelu; the
// typed errors for a bad value or a checkpoint it does not apply to; the CLI on a Video-LLaVA checkpoint; and the
// shared converted tiny model of test/fixtures/hf-video-llava.ts.
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { convertCommand } from "../../lib/cli/commands/convert.js";
import { convertCheckpoint } from "../../lib/convert/convert.js";
import { InvalidOptionError } from "../../lib/errors.js";
import { readGguf } from "../../lib/gguf/reader.js";
import { convertedTinyVideoLlava, writeVideoLlavaCheckpoint, type VideoLlavaCheckpointOptions } from "../fixtures/hf-video-llava.js";
import { checkpoint, fixturesRoot, freshDir, listDir } from "./helpers.js";

async function useGelu(path: string): Promise<unknown> {
    return (await readGguf(path)).getValue("clip.use_gelu");
}

async function run(args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number | undefined }> {
    let stdout = "";
    let stderr = "";
    const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
        stdout += String(chunk);
        return true;
    });
    const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
        stderr += String(chunk);
        return true;
    });
    const before = process.exitCode;
    try {
        await convertCommand().exitOverride().parseAsync(args, { from: "user" });
        return { stdout, stderr, exitCode: process.exitCode === before ? undefined : (process.exitCode as number) };
    } finally {
        out.mockRestore();
        err.mockRestore();
        process.exitCode = before;
    }
}

describe("visionAct: the towers' activation", () => {
    const cases: Array<{ name: string; visionConfig?: VideoLlavaCheckpointOptions["visionConfig"]; visionAct?: "quick_gelu" | "gelu"; gelu: boolean; warns: boolean }> = [
        { name: "hidden_act unset → quick_gelu (the CLIPVisionConfig default HF runs)", gelu: false, warns: false },
        { name: "hidden_act quick_gelu", visionConfig: { hidden_act: "quick_gelu" }, gelu: false, warns: false },
        { name: "hidden_act gelu", visionConfig: { hidden_act: "gelu" }, gelu: true, warns: false },
        { name: "visionAct gelu overrides the default", visionAct: "gelu", gelu: true, warns: true },
        { name: "visionAct quick_gelu overrides hidden_act gelu", visionConfig: { hidden_act: "gelu" }, visionAct: "quick_gelu", gelu: false, warns: true },
        { name: "visionAct makes an unsupported hidden_act convertible", visionConfig: { hidden_act: "gelu_new" }, visionAct: "gelu", gelu: true, warns: true },
        { name: "visionAct equal to the config's changes nothing", visionConfig: { hidden_act: "gelu" }, visionAct: "gelu", gelu: true, warns: false },
    ];
    it.each(cases)("$name", async ({ name, visionConfig, visionAct, gelu, warns }) => {
        const key = name.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
        const dir = join(fixturesRoot, `vl-act-${key}`);
        await writeVideoLlavaCheckpoint(dir, { shards: 1, ...(visionConfig ? { visionConfig } : {}) });
        const r = await convertCheckpoint({ input: dir, outDir: await freshDir(`vl-act-${key}-out`), type: "q8_0", ...(visionAct ? { visionAct } : {}) });
        expect(await useGelu(r.mmproj)).toEqual({ type: 7, value: gelu });
        expect(r.warnings.some((w) => /--vision-act/.test(w))).toBe(warns);
    });

    it("a bad value is the typed option error naming the option", async () => {
        const dir = join(fixturesRoot, "vl-act-bad");
        await writeVideoLlavaCheckpoint(dir, { shards: 1 });
        const p = convertCheckpoint({ input: dir, outDir: await freshDir("vl-act-bad-out"), visionAct: "relu" as never });
        await expect(p).rejects.toBeInstanceOf(InvalidOptionError);
        await expect(convertCheckpoint({ input: dir, outDir: "x", visionAct: "relu" as never })).rejects.toMatchObject({
            option: "visionAct",
            message: 'Expected one of "quick_gelu", "gelu" for visionAct but received "relu" of type string',
        });
        expect(await listDir(join(fixturesRoot, "vl-act-bad-out"))).toEqual([]);
    });

    it("a VideoLLaMA3 checkpoint refuses it with the typed option error", async () => {
        const ck = await checkpoint("tiny-tied", {});
        const out = await freshDir("vl3-act-out");
        await expect(convertCheckpoint({ input: ck.dir, outDir: out, visionAct: "gelu" })).rejects.toMatchObject({
            name: "InvalidOptionError",
            option: "visionAct",
            message: expect.stringMatching(/applies to Video-LLaVA checkpoints only/) as string,
        });
        expect(await listDir(out)).toEqual([]);
    });
});

describe("vidllama convert with a Video-LLaVA checkpoint", () => {
    let input: string;
    beforeAll(async () => {
        input = (await writeVideoLlavaCheckpoint(join(fixturesRoot, "vl-cli"), { shards: 2 })).dir;
    });
    afterEach(() => vi.restoreAllMocks());

    it("converts, prints the summary with the measured errors, and --vision-act sets clip.use_gelu", async () => {
        const out = await freshDir("vl-cli-out");
        const r = await run([input, "--out", out, "--type", "q4_0", "--mmproj-type", "f16", "--name", "vl", "--vision-act", "gelu", "--threads", "2"]);
        expect(r.exitCode).toBeUndefined();
        expect(r.stderr).toBe("");
        expect(await listDir(out)).toEqual(["mmproj-vl-f16.gguf", "vl-q4_0.gguf"]);
        expect(r.stdout).toMatch(/^text model: .*vl-q4_0\.gguf \([\d.]+ MiB, q4_0\)$/m);
        // 2 layers × 7 matrices + token_embd in q4_0; output.weight by shape fallback to q8_0
        expect(r.stdout).toMatch(/^ {2}q4_0 +15 tensors, .* \d\.\d+e-2 \/ \d\.\d+e-1 \(.+\), \d+ values checked$/m);
        expect(r.stdout).toMatch(/^ {2}q8_0 +1 tensors, .*1 by shape fallback$/m);
        expect(r.stdout).toMatch(/^warning: vision towers use gelu \(--vision-act\) instead of the config's quick_gelu$/m);
        expect(r.stdout).toMatch(/^warning: the checkpoint has no chat template/m);
        expect(await useGelu(join(out, "mmproj-vl-f16.gguf"))).toEqual({ type: 7, value: true });
        // the projector exists: without --force nothing is replaced
        const again = await run([input, "-o", out, "--name", "vl", "--type", "q8_0", "-q"]);
        expect(again.exitCode).toBe(1);
        expect(again.stderr).toMatch(/mmproj-vl-f16\.gguf: the output file already exists/);
        expect(await useGelu(join(out, "mmproj-vl-f16.gguf"))).toEqual({ type: 7, value: true });
        // with --force and no --vision-act, the config's activation again
        const forced = await run([input, "-o", out, "--name", "vl", "--type", "q8_0", "-q", "--force"]);
        expect(forced.stdout.trim().split("\n")).toEqual([join(out, "vl-q8_0.gguf"), join(out, "mmproj-vl-f16.gguf")]);
        expect(await useGelu(join(out, "mmproj-vl-f16.gguf"))).toEqual({ type: 7, value: false });
    });

    it("rejects a bad --vision-act value, naming the flag", async () => {
        await expect(run([input, "-o", "x", "--vision-act", "relu"])).rejects.toThrow(
            /option '--vision-act <act>' argument 'relu' is invalid\. Allowed choices are quick_gelu, gelu\./,
        );
    });
});

describe("the shared converted tiny Video-LLaVA", () => {
    it("converts once per process and option set, f32 by default", async () => {
        const a = await convertedTinyVideoLlava();
        expect(await convertedTinyVideoLlava()).toBe(a);
        expect(a.model).toMatch(/video-llava-tiny-f32\.gguf$/);
        expect(a.mmproj).toMatch(/mmproj-video-llava-tiny-f32\.gguf$/);
        expect(a.checkpointDir).toBe(a.checkpoint.dir);
        const g = await readGguf(a.mmproj);
        expect(g.getValue("clip.vision.block_count")).toEqual({ type: 4, value: 2 });
        expect(g.getTensor("v.video.blk.0.attn_q.weight")?.type).toBe("f32");
        expect((await readGguf(a.model)).getTensor("blk.0.attn_q.weight")?.type).toBe("f32");
        const gelu = await convertedTinyVideoLlava({ visionAct: "gelu", type: "q8_0", mmprojType: "f16" });
        expect(gelu.checkpointDir).toBe(a.checkpointDir);
        expect(gelu.model).not.toBe(a.model);
        expect(await useGelu(gelu.mmproj)).toEqual({ type: 7, value: true });
        expect(await useGelu(a.mmproj)).toEqual({ type: 7, value: false });
    });
});
