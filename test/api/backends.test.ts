// ggml's backends are modules beside the addon (native/llm/backend.cpp): every CPU variant is scored on this CPU and
// the best one loads (or the one VIDLLAMA_CPU_VARIANT names), GPU modules load or say why not, and the `gpu` option
// chooses a device or refuses with an InvalidOptionError naming what exists. Each CPU variant this machine can run
// computes the vision encoder to the float64 reference (one child process per variant: a variant is chosen once per
// process).
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { deviceFor, InvalidOptionError, loadModel, loadVision, systemInfo } from "../../lib/index.js";
import { clipResizeAndCrop } from "../../lib/preprocess/clip-crop.js";
import { errorStats, readClipProjector, referenceClipForward, referenceClipPreprocess } from "../reference/clip-encoder.js";
import { testPicture, tinyClipMmproj } from "../fixtures/tiny-clip-mmproj.js";
import { ensureTinyQwen2 } from "../fixtures/tiny-qwen2.js";

const info = systemInfo();
const backends = info.backends;
const supported = backends.cpuVariants.filter((v) => v.score > 0);
const unsupported = backends.cpuVariants.filter((v) => v.score === 0);
const entry = pathToFileURL(join(process.cwd(), "dist", "index.js")).href;
const outDir = join(process.cwd(), "test", ".fixtures", "backends");

/** Runs `source` (an ES module using dist/) in a fresh node with extra environment variables. */
function child(source: string, env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", source], { env: { ...process.env, ...env }, encoding: "utf8", timeout: 120_000 });
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("backend modules", () => {
    it("are loaded from the addon's own folder, the best-scoring CPU variant in use", () => {
        expect(backends.dir).toBe(dirname(info.addonPath));
        expect(supported.length).toBeGreaterThan(0);
        const best = supported.reduce((a, b) => (b.score > a.score ? b : a));
        expect(backends.cpuVariant).toBe(best.name);
        expect(backends.cpuReason).toMatch(/highest-scoring/);
        for (const v of backends.cpuVariants) expect(dirname(v.file)).toBe(backends.dir);
        expect(backends.devices.map((d) => d.name)).toContain("CPU");
        // llama.cpp's feature line is the loaded variant's.
        expect(info.details).toMatch(/CPU :/);
    });

    it("a GPU module that is present either loaded or says why not", () => {
        for (const m of backends.modules) {
            if (m.loaded) expect(m.error).toBeUndefined();
            else expect(m.error).toMatch(/\S/);
        }
    });

    it("VIDLLAMA_CPU_VARIANT forces a supported variant, and an unknown or unsupported one falls back with the reason", () => {
        const probe = `const { systemInfo } = await import(${JSON.stringify(entry)}); const b = systemInfo().backends; console.log(JSON.stringify({ v: b.cpuVariant, r: b.cpuReason }));`;
        const lowest = supported.reduce((a, b) => (b.score < a.score ? b : a));
        const forced = child(probe, { VIDLLAMA_CPU_VARIANT: lowest.name });
        expect(forced.status, forced.stderr).toBe(0);
        expect(JSON.parse(forced.stdout)).toEqual({ v: lowest.name, r: `forced by VIDLLAMA_CPU_VARIANT=${lowest.name}` });

        const unknown = JSON.parse(child(probe, { VIDLLAMA_CPU_VARIANT: "pentium2" }).stdout) as { v: string; r: string };
        expect(unknown.v).toBe(backends.cpuVariant);
        expect(unknown.r).toMatch(/VIDLLAMA_CPU_VARIANT=pentium2 is not among the variants found/);

        if (unsupported.length > 0) {
            const name = unsupported[0]!.name;
            const refused = JSON.parse(child(probe, { VIDLLAMA_CPU_VARIANT: name }).stdout) as { v: string; r: string };
            expect(refused.v).toBe(backends.cpuVariant);
            expect(refused.r).toMatch(new RegExp(`VIDLLAMA_CPU_VARIANT=${name} needs instructions this CPU lacks`));
        }
    });

    it("every CPU variant this machine runs computes the vision encoder to the float64 reference", async () => {
        mkdirSync(outDir, { recursive: true });
        const path = await tinyClipMmproj("backends", { seed: 5 });
        const ref = await readClipProjector(path);
        const pic = testPicture(224, 224, 9);
        const { resize, crop } = clipResizeAndCrop(pic.width, pic.height, ref.config.preprocess.shortestEdge, ref.config.preprocess.cropSize);
        const { pixelValues } = referenceClipPreprocess(pic.data, pic.width, pic.height, ref.config.preprocess);
        const expected = referenceClipForward(ref.weights, [{ pixelValues, tower: "image" }], ref.config)[0]!.tokens;
        const nativeUrl = pathToFileURL(join(process.cwd(), "dist", "native", "load.js")).href;
        const rgbFile = join(outDir, "picture.rgb"); // a file: the pixels are too long for a command-line argument
        writeFileSync(rgbFile, pic.data);
        for (const variant of supported) {
            const out = join(outDir, `${variant.name}.f32`);
            const source = `
                import { readFileSync, writeFileSync } from "node:fs";
                const { native } = await import(${JSON.stringify(nativeUrl)});
                const addon = native();
                const vision = await addon.loadVision({ path: ${JSON.stringify(path)}, gpu: "cpu", threads: 2 });
                const rgb = new Uint8Array(readFileSync(${JSON.stringify(rgbFile)}));
                const r = await vision.encode([{ rgb, width: ${pic.width}, height: ${pic.height}, targetWidth: ${resize.width}, targetHeight: ${resize.height},
                    crop: ${JSON.stringify(crop)}, merge: 1, tower: "image" }], {});
                const f = r.embeddings.toFloat32Array();
                writeFileSync(${JSON.stringify(out)}, Buffer.from(f.buffer, f.byteOffset, f.byteLength));
                console.log(addon.backends.cpuVariant);
                vision.dispose();`;
            const r = child(source, { VIDLLAMA_CPU_VARIANT: variant.name });
            expect(r.status, `${variant.name}: ${r.stderr}`).toBe(0);
            expect(r.stdout.trim()).toBe(variant.name);
            const bytes = readFileSync(out);
            const ours = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
            // The bound of test/encode/clip-encoder.test.ts (f32 weights and compute).
            expect(errorStats(ours, expected).relative, variant.name).toBeLessThan(1e-4);
        }
    });
});

describe("the gpu option", () => {
    let model: string;
    beforeAll(async () => {
        model = await ensureTinyQwen2();
    });

    it('"cpu" and false run on the CPU and say so', async () => {
        for (const gpu of ["cpu", false] as const) {
            await using m = await loadModel({ model, gpu });
            expect(m.info.device).toMatchObject({ name: "CPU", gpu: false, reason: "the CPU was asked for" });
        }
    });

    it('"auto" (the default) picks a GPU device that passed the test graph, or the CPU with the reason', async () => {
        await using m = await loadModel({ model });
        const auto = deviceFor("auto");
        expect(m.info.device).toEqual(auto);
        expect(info.autoDevice).toEqual(auto);
        const gpus = backends.devices.filter((d) => d.type === "gpu" || d.type === "igpu");
        if (gpus.length === 0) {
            expect(auto.name).toBe("CPU");
            expect(auto.reason).toMatch(/no GPU (backend in this build|device)/);
        } else {
            expect(auto.reason).toMatch(/test graph/);
        }
    });

    it("a backend this installation lacks, or a device index past the last, is an InvalidOptionError naming what exists", async () => {
        for (const gpu of ["cuda", "metal", "vulkan"] as const) {
            if (backends.devices.some((d) => d.backend.toLowerCase().replace("mtl", "metal") === gpu)) continue;
            const err = await loadModel({ model, gpu }).then(() => undefined, (e: unknown) => e);
            expect(err, gpu).toBeInstanceOf(InvalidOptionError);
            expect((err as InvalidOptionError).option).toBe("gpu");
            expect((err as InvalidOptionError).received).toBe(gpu);
            expect((err as Error).message).toMatch(new RegExp(`no ${gpu} backend|${gpu} backend (could not load|found no device)`));
            expect(() => deviceFor(gpu)).toThrow(InvalidOptionError);
        }
        const err = await loadModel({ model, gpu: 7 }).then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(InvalidOptionError);
        expect((err as Error).message).toMatch(/device index 7 does not exist/);
    });

    it("malformed values are refused before anything is read", async () => {
        for (const gpu of ["gpu", "cuda:x", -1, 1.5, "CUDA", {}] as unknown[]) {
            await expect(loadModel({ model: "/nonexistent.gguf", gpu: gpu as never })).rejects.toBeInstanceOf(InvalidOptionError);
            await expect(loadVision({ mmproj: "/nonexistent.gguf", gpu: gpu as never })).rejects.toBeInstanceOf(InvalidOptionError);
        }
        await expect(loadModel({ model, gpuLayers: -2 })).rejects.toBeInstanceOf(InvalidOptionError);
    });

    it("the vision projector reports its device too", async () => {
        const path = await tinyClipMmproj("backends", { seed: 5 });
        await using v = await loadVision({ mmproj: path, gpu: "cpu" });
        expect(v.info.device).toMatchObject({ name: "CPU", gpu: false });
    });
});
