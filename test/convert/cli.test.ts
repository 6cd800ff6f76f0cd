// `vidllama convert` as a commander command (the lead wires it into lib/cli/index.ts).
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { convertCommand } from "../../lib/cli/commands/convert.js";
import { checkpoint, freshDir, listDir } from "./helpers.js";

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

describe("vidllama convert", () => {
    let input: string;
    beforeAll(async () => {
        input = (await checkpoint("tiny-tied", {})).dir;
    });
    afterEach(() => vi.restoreAllMocks());

    it("converts with --type/--mmproj-type and prints a summary with the measured errors", async () => {
        const out = await freshDir("cli");
        const r = await run([input, "--out", out, "--type", "q4_0", "--mmproj-type", "f32", "--name", "tiny", "--threads", "2"]);
        expect(r.exitCode).toBeUndefined();
        expect(await listDir(out)).toEqual(["mmproj-tiny-f32.gguf", "tiny-q4_0.gguf"]);
        expect(r.stdout).toMatch(/^text model: .*tiny-q4_0\.gguf \([\d.]+ MiB, q4_0\)$/m);
        expect(r.stdout).toMatch(/^projector: +.*mmproj-tiny-f32\.gguf/m);
        expect(r.stdout).toMatch(/^ {2}q4_0 +14 tensors, .* [\d.]+e-2 \/ [\d.]+e-1 \(blk\.\d\.\w+\.weight\), \d+ values checked$/m);
        expect(r.stdout).toMatch(/^ {2}q8_0 +1 tensors, .*1 by shape fallback$/m);
        expect(r.stdout).toMatch(/^ {2}f32 .*exact$/m);
        expect(r.stderr).toBe(""); // no TTY: no progress bar
    });

    it("-q prints only the paths; an existing output is an error unless --force", async () => {
        const out = await freshDir("cli-q");
        const first = await run([input, "-o", out, "-q"]);
        expect(first.stdout.trim().split("\n")).toEqual([`${out}/ckpt-tiny-tied-f16.gguf`, `${out}/mmproj-ckpt-tiny-tied-f16.gguf`]);
        const again = await run([input, "-o", out, "-q"]);
        expect(again.exitCode).toBe(1);
        expect(again.stderr).toMatch(/^vidllama: .*ckpt-tiny-tied-f16\.gguf: the output file already exists \(use force \/ --force to replace it\)\n$/);
        const forced = await run([input, "-o", out, "-q", "--force"]);
        expect(forced.exitCode).toBeUndefined();
    });

    it("rejects unknown types and a missing --out", async () => {
        await expect(run([input, "-o", "x", "--type", "q5_k_m"])).rejects.toThrow(/Allowed choices are f32, f16, bf16, q8_0, q4_0, q4_k_m/);
        await expect(run([input])).rejects.toThrow(/required option '-o, --out <dir>' not specified/);
    });
});
