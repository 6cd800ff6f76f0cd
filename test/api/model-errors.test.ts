// Every way a model file can be wrong gives a ModelLoadError with a precise reason, and never crashes the process.
import { copyFileSync, mkdirSync, openSync, closeSync, ftruncateSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { GgufWriter } from "../../lib/gguf/writer.js";
import { InsufficientMemoryError, loadModel, ModelLoadError, type ModelLoadFailure } from "../../lib/index.js";
import { ensureTinyQwen2 } from "../fixtures/tiny-qwen2.js";

const dir = join(process.cwd(), "test", ".fixtures", "bad-models");
let good: string;

async function expectLoadError(path: string, reason: ModelLoadFailure): Promise<ModelLoadError> {
    const err = await loadModel({ model: path }).then(
        () => undefined,
        (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as ModelLoadError).reason).toBe(reason);
    expect((err as ModelLoadError).path).toBe(path);
    return err as ModelLoadError;
}

beforeAll(async () => {
    good = await ensureTinyQwen2();
    mkdirSync(dir, { recursive: true });
});

describe("loadModel errors", () => {
    it("missing file", async () => {
        await expectLoadError(join(dir, "nope.gguf"), "NOT_FOUND");
    });

    it("a directory", async () => {
        await expectLoadError(dir, "NOT_A_FILE");
    });

    it("not a GGUF", async () => {
        const path = join(dir, "text.gguf");
        writeFileSync(path, "this is not a model\n".repeat(100));
        await expectLoadError(path, "NOT_GGUF");
        const empty = join(dir, "empty.gguf");
        writeFileSync(empty, "");
        await expectLoadError(empty, "NOT_GGUF");
    });

    it("truncated GGUF (header intact, tensor data cut)", async () => {
        const path = join(dir, "truncated.gguf");
        copyFileSync(good, path);
        const fd = openSync(path, "r+");
        ftruncateSync(fd, Math.floor(statSync(good).size * 0.6));
        closeSync(fd);
        const err = await expectLoadError(path, "TRUNCATED");
        expect(err.message).toMatch(/truncated|past the end|beyond/i);
    });

    it("truncated GGUF (inside the header)", async () => {
        const path = join(dir, "truncated-header.gguf");
        copyFileSync(good, path);
        const fd = openSync(path, "r+");
        ftruncateSync(fd, 4096);
        closeSync(fd);
        await expectLoadError(path, "TRUNCATED");
    });

    it("unsupported architecture", async () => {
        const path = join(dir, "unknown-arch.gguf");
        const w = new GgufWriter(path);
        w.setString("general.architecture", "frobnicator");
        w.addTensor("token_embd.weight", "f32", [8, 4]);
        await w.writeHeader();
        await w.writeTensor("token_embd.weight", new Float32Array(32));
        await w.finish();
        const err = await expectLoadError(path, "UNSUPPORTED_ARCHITECTURE");
        expect(err.message).toContain("frobnicator");
    });

    it("a vision projector passed as the text model", async () => {
        const path = join(dir, "mmproj.gguf");
        const w = new GgufWriter(path);
        w.setString("general.architecture", "clip");
        w.setString("general.type", "mmproj");
        await w.writeHeader();
        await w.finish();
        const err = await expectLoadError(path, "WRONG_KIND");
        expect(err.message).toContain("mmproj");
    });

    it("context too large for memory", async () => {
        const model = await loadModel({ model: good });
        const err = await model.createSession({ contextSize: 2 ** 31 - 1 }).then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(InsufficientMemoryError);
        expect((err as InsufficientMemoryError).requiredBytes).toBeGreaterThan((err as InsufficientMemoryError).availableBytes);
        await model.dispose();
    });

    it("aborted load rejects with the signal's reason", async () => {
        const reason = new Error("stop loading");
        await expect(loadModel({ model: good, signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
        const controller = new AbortController();
        const pending = loadModel({ model: good, signal: controller.signal, onProgress: () => controller.abort(reason) });
        await expect(pending).rejects.toBe(reason);
    });

    it("reports load progress up to 1", async () => {
        const fractions: number[] = [];
        const model = await loadModel({ model: good, onProgress: (p) => fractions.push(p.fraction) });
        expect(fractions.length).toBeGreaterThan(0);
        expect(fractions.at(-1)).toBe(1);
        await model.dispose();
    });
});
