/**
 * Hugging Face checkpoint → two GGUF files (docs/gguf-format.md): the text model with its tokenizer, loadable by stock
 * llama.cpp, and the vision projector. Two families are understood (lib/convert/families/): VideoLLaMA3 (Qwen2 +
 * SigLIP-NaViT) and Video-LLaVA (LLaMA + two CLIP towers); a family supplies the config reading, tokenizer, tensor
 * plans and metadata, and everything else below is the same pipeline for both.
 *
 * Tensors are streamed: each is read from its safetensors shard a slab of rows at a time into reused buffers,
 * upcast to f32 (exact), converted/quantized by ggml through the native addon, checked against the source, and
 * written; memory stays at a few hundred MB whatever the checkpoint size. Files are written under temporary names
 * in the output directory and renamed only when both are complete.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, rmdir, stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { basename, join, resolve } from "node:path";
import { ConversionError } from "../errors.js";
import { GgufWriter } from "../gguf/writer.js";
import { native } from "../native/load.js";
import {
    checkOptionsObject,
    optionalBoolean,
    optionalEnum,
    optionalFunction,
    optionalInteger,
    optionalSignal,
    optionalString,
    requiredString,
    throwIfAborted,
} from "../validate.js";
import { VISION_ACTIVATIONS, type VisionActivation } from "./family.js";
import { familyOfConfig } from "./families/index.js";
import { readJsonFile } from "./hf-config.js";
import {
    MMPROJ_OUTPUT_TYPES,
    TEXT_OUTPUT_TYPES,
    blockSize,
    selectMmprojTensorTypes,
    selectTextTensorTypes,
    type MmprojOutputType,
    type StorageType,
    type TextOutputType,
    type TypeChoice,
} from "./quant-rules.js";
import {
    CONVERTIBLE_DTYPES,
    ShardReader,
    dtypeSize,
    openCheckpointTensors,
    toFloat32,
    type SafetensorsTensor,
} from "./safetensors.js";
import type { TensorPlan } from "./tensor-map.js";
import { ErrorStats, accumulateError } from "./verify.js";

export { writeMmprojMetadata, writeTextMetadata } from "./families/videollama3.js";
export { VIDEO_LLAVA_DEFAULT_CHAT_TEMPLATE } from "./families/video-llava.js";
export type { VisionActivation } from "./family.js";

/** How much of the converted data is decoded again and compared with the source. */
export type VerifyMode = "all" | "sample" | "none";

/** Options of {@link convertCheckpoint}. */
export interface ConvertOptions {
    /**
     * The Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer files, ...): VideoLLaMA3
     * (`model_type: videollama3_qwen2`) or Video-LLaVA (`model_type: video_llava`).
     */
    input: string;
    /** Directory for the two GGUF files; created when missing. */
    outDir: string;
    /** Storage type of the text model. Default `"f16"`. */
    type?: TextOutputType;
    /**
     * Storage type of the vision projector's matrices (vectors are always f32). Default `"f16"`. `"q8_0"` / `"q4_k"`
     * quantize the 2-D matrices whose rows fit the block (others fall back per tensor; the patch embedding stays f16).
     */
    mmprojType?: MmprojOutputType;
    /** Replace existing output files. Default false: an existing file is an error. */
    force?: boolean;
    /** Model name used in the file names and `general.name`. Default: the input directory's name. */
    name?: string;
    /** Cancels the conversion; temporary files are removed and the promise rejects with the signal's reason. */
    signal?: AbortSignal;
    /**
     * Called when a phase starts, after every slab of rows converted (at most 8 Mi values), when a tensor is complete
     * (with `completed` set), and once at the end (`done`). Exceptions thrown by the callback abort the conversion.
     */
    onProgress?: (progress: ConvertProgress) => void;
    /** Threads for quantization. Default: all logical CPUs (quantizing rows is independent work, hyper-threads help). */
    threads?: number;
    /**
     * `"sample"` (default) decodes about 64k values of every tensor (all of small ones) and checks them against the
     * source; `"all"` checks every value; `"none"` skips the check.
     */
    verify?: VerifyMode;
    /**
     * Video-LLaVA only: the CLIP towers' MLP activation written to the projector (`clip.use_gelu`), overriding
     * `vision_config.hidden_act`. Default: the config's (`quick_gelu` when unset, as Hugging Face runs the model).
     */
    visionAct?: VisionActivation;
}

/** A progress report. Byte counts refer to the checkpoint's tensor data (the work to do). */
export interface ConvertProgress {
    /** `prepare` (reading headers and tokenizer), `text`/`mmproj` (converting), `finalize` (renaming), `done`. */
    phase: "prepare" | "text" | "mmproj" | "finalize" | "done";
    /** The output file being written (final name). */
    file?: string;
    /** GGUF name of the tensor being converted. */
    tensor?: string;
    /** 0-based index of that tensor among all tensors of both files. */
    tensorIndex?: number;
    /** Number of tensors in both files. */
    tensorCount: number;
    /** Checkpoint bytes converted so far. */
    bytesDone: number;
    /** Checkpoint bytes to convert in total. */
    bytesTotal: number;
    /** Set on the last report of each tensor. */
    completed?: ConvertedTensor;
}

/** One converted tensor, with its measured conversion error. */
export interface ConvertedTensor {
    /** `"text"` or `"mmproj"`. */
    file: "text" | "mmproj";
    /** GGUF name. */
    name: string;
    /** Checkpoint key. */
    source: string;
    /** Checkpoint dtype (`BF16`, `F16`, `F32`). */
    sourceDtype: string;
    /** ggml shape (`ne0` first). */
    shape: number[];
    /** ggml storage type name (`f16`, `q4_K`, ...). */
    type: StorageType;
    /** The type llama.cpp's rules picked before the shape fallback, when a fallback happened. */
    fallbackFrom?: StorageType;
    /** Bytes in the GGUF file. */
    bytes: number;
    /** Values decoded and compared (0 when not verified). */
    checkedValues: number;
    /** Relative RMS error of the checked values against the source, √(Σ(out−src)²/Σsrc²). */
    relRmsError: number;
    /** The bound it had to stay under (0 for exact types). */
    relRmsBound: number;
    /** Largest absolute error seen. */
    maxAbsError: number;
}

/** What {@link convertCheckpoint} produced. */
export interface ConvertResult {
    /** Path of the text model GGUF. */
    textModel: string;
    /** Path of the vision projector GGUF. */
    mmproj: string;
    type: TextOutputType;
    mmprojType: MmprojOutputType;
    /** Size of each file in bytes. */
    textModelBytes: number;
    mmprojBytes: number;
    /** Every tensor written, in file order (text first). */
    tensors: ConvertedTensor[];
    /** Non-fatal observations (missing optional files, padded vocabulary, ...). */
    warnings: string[];
    /** Wall time in seconds. */
    seconds: number;
}

/** Values per slab: 8 Mi (32 MiB as f32). Big tensors are processed this many values at a time. */
const SLAB_VALUES = 8 * 1024 * 1024;
/** Values checked per tensor in "sample" mode. */
const SAMPLE_VALUES = 65536;

interface Job {
    file: "text" | "mmproj";
    plan: TensorPlan;
    source: SafetensorsTensor;
    choice: TypeChoice;
    bytes: number;
}

/** File names of the outputs for a model name and types (llama.cpp convention). */
export function outputFileNames(name: string, type: TextOutputType, mmprojType: MmprojOutputType): { textModel: string; mmproj: string } {
    return { textModel: `${name}-${type}.gguf`, mmproj: `mmproj-${name}-${mmprojType}.gguf` };
}

/**
 * A plan's storage: the type selection's choice, except for plans that stay f32 whatever the output type (position
 * embeddings). The benchmarks' random-weight files use it too. @internal
 */
export function planStorage(plan: Pick<TensorPlan, "gguf" | "f32">, selected: ReadonlyMap<string, TypeChoice>): TypeChoice {
    if (plan.f32) return { type: "f32" };
    const choice = selected.get(plan.gguf);
    if (!choice) throw new Error(`no storage type was selected for ${plan.gguf}`);
    return choice;
}

/**
 * Converts a VideoLLaMA3 or Video-LLaVA Hugging Face checkpoint to `<name>-<type>.gguf` (text model) and
 * `mmproj-<name>-<mmprojType>.gguf` (vision projector) in `outDir`.
 *
 * Throws {@link ConversionError} (naming the file and tensor) for an unknown architecture, a missing or unexpected
 * tensor, a tensor whose shape does not match config.json, an unsupported dtype, a truncated or malformed
 * safetensors file, malformed JSON, a conversion error above the type's bound, or an existing output without
 * `force`. Nothing is left behind on failure or abort.
 */
export async function convertCheckpoint(options: ConvertOptions): Promise<ConvertResult> {
    const started = performance.now();
    const o = checkOptionsObject(options, ["input", "outDir", "type", "mmprojType", "force", "name", "signal", "onProgress", "threads", "verify", "visionAct"]);
    const input = resolve(requiredString("input", o.input));
    const outDir = resolve(requiredString("outDir", o.outDir));
    const type = optionalEnum("type", o.type, TEXT_OUTPUT_TYPES, "f16");
    const mmprojType = optionalEnum("mmprojType", o.mmprojType, MMPROJ_OUTPUT_TYPES, "f16");
    const force = optionalBoolean("force", o.force, false);
    const signal = optionalSignal("signal", o.signal);
    const onProgress = optionalFunction<(p: ConvertProgress) => void>("onProgress", o.onProgress);
    const threads = optionalInteger("threads", o.threads, 1, 1024, availableParallelism());
    const verify = optionalEnum("verify", o.verify, ["all", "sample", "none"] as const, "sample");
    const visionAct = optionalEnum("visionAct", o.visionAct, VISION_ACTIVATIONS);
    const name = optionalString("name", o.name) ?? basename(input);
    if (name.length === 0 || /[/\\]/.test(name) || name === "." || name === "..") {
        throw new ConversionError(`the model name ${JSON.stringify(name)} cannot be used in a file name`);
    }
    throwIfAborted(signal);

    let inputStat;
    try {
        inputStat = await stat(input);
    } catch (err) {
        throw new ConversionError("the checkpoint directory does not exist", { file: input, cause: err });
    }
    if (!inputStat.isDirectory()) throw new ConversionError("the checkpoint must be a directory", { file: input });

    // ---- everything that can be checked before writing ----
    const report = (p: Omit<ConvertProgress, "tensorCount" | "bytesTotal" | "bytesDone"> & Partial<ConvertProgress>): void => {
        onProgress?.({ tensorCount: 0, bytesDone: 0, bytesTotal: 0, ...p });
    };
    report({ phase: "prepare" });
    const configPath = join(input, "config.json");
    const rawConfig = (await readJsonFile(configPath, true))!;
    const family = familyOfConfig(rawConfig, configPath);
    const familyCheckpoint = await family.readConfig(input, rawConfig, visionAct === undefined ? {} : { visionAct });
    const checkpoint = await openCheckpointTensors(input);
    throwIfAborted(signal);
    const conversion = await familyCheckpoint.plan(checkpoint);
    throwIfAborted(signal);

    const textPlans = conversion.textPlans;
    const visionPlans = conversion.mmprojPlans;
    const used = new Set<string>();
    const resolvePlan = (p: TensorPlan): SafetensorsTensor => {
        const t = checkpoint.tensors.get(p.hf);
        if (!t) {
            throw new ConversionError(`missing tensor (needed for ${p.gguf})`, {
                file: checkpoint.index ?? checkpoint.files[0],
                tensor: p.hf,
            });
        }
        if (!CONVERTIBLE_DTYPES.includes(t.dtype)) {
            throw new ConversionError(`unsupported dtype ${t.dtype} (expected ${CONVERTIBLE_DTYPES.join(", ")})`, { file: t.file, tensor: t.name });
        }
        if (t.shape.length !== p.torchShape.length || t.shape.some((d, i) => d !== p.torchShape[i])) {
            throw new ConversionError(
                `unexpected shape [${t.shape.join(", ")}], expected [${p.torchShape.join(", ")}] from config.json`,
                { file: t.file, tensor: t.name },
            );
        }
        used.add(p.hf);
        return t;
    };
    const textSources = textPlans.map(resolvePlan);
    const visionSources = visionPlans.map(resolvePlan);
    for (const t of checkpoint.tensors.values()) {
        if (used.has(t.name) || conversion.isSkipped(t.name)) continue;
        throw new ConversionError(`unexpected tensor: not part of a ${family.label} checkpoint with this config.json`, {
            file: t.file,
            tensor: t.name,
        });
    }

    const textTypes = selectTextTensorTypes(
        type,
        textPlans.map((p) => ({ name: p.gguf, ne: p.ne })),
        conversion.textLayers,
    );
    const mmprojTypes = selectMmprojTensorTypes(
        mmprojType,
        visionPlans.map((p) => ({ name: p.gguf, ne: p.ne })),
    );
    const jobs: Job[] = [
        ...textPlans.map((plan, i): Job => makeJob("text", plan, textSources[i]!, planStorage(plan, textTypes))),
        ...visionPlans.map((plan, i): Job => makeJob("mmproj", plan, visionSources[i]!, planStorage(plan, mmprojTypes))),
    ];
    const bytesTotal = jobs.reduce((a, j) => a + j.source.byteLength, 0);

    const names = outputFileNames(name, type, mmprojType);
    const textPath = join(outDir, names.textModel);
    const mmprojPath = join(outDir, names.mmproj);
    if (!force) {
        for (const p of [textPath, mmprojPath]) {
            if (await exists(p)) throw new ConversionError("the output file already exists (use force / --force to replace it)", { file: p });
        }
    }
    const addon = native(); // before creating anything: a missing addon must not leave a directory behind
    const createdDir = !(await exists(outDir));
    try {
        await mkdir(outDir, { recursive: true });
    } catch (err) {
        throw new ConversionError(`cannot create the output directory: ${(err as Error).message}`, { file: outDir, cause: err });
    }

    // ---- writing ----
    const suffix = `.${process.pid}-${randomBytes(4).toString("hex")}.partial`;
    const temps = { text: textPath + suffix, mmproj: mmprojPath + suffix };
    const reader = new ShardReader();
    const buffers = new SlabBuffers();
    const results: ConvertedTensor[] = [];
    const warnings = [...conversion.warnings];
    const state = { bytesDone: 0, index: 0 };
    const writers: GgufWriter[] = [];
    let textBytes = 0;
    let mmprojBytes = 0;
    try {
        for (const file of ["text", "mmproj"] as const) {
            const fileJobs = jobs.filter((j) => j.file === file);
            const writer = new GgufWriter(temps[file]);
            writers.push(writer);
            if (file === "text") conversion.writeTextMetadata(writer, name, type);
            else conversion.writeMmprojMetadata(writer, name, mmprojType);
            for (const j of fileJobs) writer.addTensor(j.plan.gguf, j.choice.type, j.plan.ne);
            await writer.writeHeader();
            const finalPath = file === "text" ? textPath : mmprojPath;
            for (const job of fileJobs) {
                throwIfAborted(signal);
                const stats = new ErrorStats(job.choice.type);
                const report = (completed?: ConvertedTensor) =>
                    onProgress?.({
                        phase: file,
                        file: finalPath,
                        tensor: job.plan.gguf,
                        tensorIndex: state.index,
                        tensorCount: jobs.length,
                        bytesDone: state.bytesDone,
                        bytesTotal,
                        ...(completed ? { completed } : {}),
                    });
                await writer.writeTensor(
                    job.plan.gguf,
                    convertTensor(job, {
                        reader,
                        addon,
                        threads,
                        verify,
                        signal,
                        stats,
                        buffers,
                        onSlab: (bytes) => {
                            state.bytesDone += bytes;
                            report();
                        },
                    }),
                );
                const failure = stats.failure();
                if (failure) {
                    throw new ConversionError(`conversion check failed for ${job.plan.gguf}: ${failure}`, {
                        file: job.source.file,
                        tensor: job.source.name,
                    });
                }
                const done: ConvertedTensor = {
                    file,
                    name: job.plan.gguf,
                    source: job.source.name,
                    sourceDtype: job.source.dtype,
                    shape: [...job.plan.ne],
                    type: job.choice.type,
                    ...(job.choice.fallbackFrom ? { fallbackFrom: job.choice.fallbackFrom } : {}),
                    bytes: job.bytes,
                    checkedValues: stats.values,
                    relRmsError: stats.relRms,
                    relRmsBound: stats.relRmsBound,
                    maxAbsError: stats.maxAbsErr,
                };
                results.push(done);
                report(done);
                state.index++;
            }
            const size = await writer.finish();
            if (file === "text") textBytes = size;
            else mmprojBytes = size;
        }
        throwIfAborted(signal);
        onProgress?.({ phase: "finalize", tensorCount: jobs.length, bytesDone: state.bytesDone, bytesTotal });
        await rename(temps.text, textPath);
        await rename(temps.mmproj, mmprojPath);
    } catch (err) {
        await Promise.all(writers.map((w) => w.abort()));
        await Promise.all([rm(temps.text, { force: true }), rm(temps.mmproj, { force: true })]);
        if (createdDir) await rmdir(outDir).catch(() => undefined); // only succeeds when empty
        throw err;
    } finally {
        await reader.close();
    }
    onProgress?.({ phase: "done", tensorCount: jobs.length, bytesDone: state.bytesDone, bytesTotal });
    return {
        textModel: textPath,
        mmproj: mmprojPath,
        type,
        mmprojType,
        textModelBytes: textBytes,
        mmprojBytes,
        tensors: results,
        warnings,
        seconds: (performance.now() - started) / 1000,
    };
}

function makeJob(file: "text" | "mmproj", plan: TensorPlan, source: SafetensorsTensor, choice: TypeChoice): Job {
    const ne0 = plan.ne[0]!;
    const rows = plan.ne.slice(1).reduce((a, d) => a * d, 1);
    const info = TYPE_SIZES[choice.type];
    return { file, plan, source, choice, bytes: (ne0 / info.block) * info.size * rows };
}

const TYPE_SIZES: Record<StorageType, { block: number; size: number }> = {
    f32: { block: 1, size: 4 },
    f16: { block: 1, size: 2 },
    bf16: { block: 1, size: 2 },
    q8_0: { block: 32, size: 34 },
    q4_0: { block: 32, size: 18 },
    q5_0: { block: 32, size: 22 },
    q5_1: { block: 32, size: 24 },
    q4_K: { block: 256, size: 144 },
    q5_K: { block: 256, size: 176 },
    q6_K: { block: 256, size: 210 },
};

interface ConvertContext {
    reader: ShardReader;
    addon: ReturnType<typeof native>;
    threads: number;
    verify: VerifyMode;
    signal: AbortSignal | undefined;
    stats: ErrorStats;
    buffers: SlabBuffers;
    onSlab: (sourceBytes: number) => void;
}

/** Buffers reused for every slab of every tensor of one conversion (grown when a single row exceeds a slab). */
class SlabBuffers {
    read = Buffer.alloc(0);
    floats = new Float32Array(0);
    /** Rows of `read` in the plan's order, for tensors whose rows are reordered (q/k of the `llama` architecture). */
    reordered = Buffer.alloc(0);

    ensure(values: number, bytesPerValue: number, reorder = false): void {
        if (this.read.length < values * bytesPerValue) this.read = Buffer.alloc(Math.max(values * bytesPerValue, SLAB_VALUES * 2));
        if (this.floats.length < values) this.floats = new Float32Array(Math.max(values, SLAB_VALUES));
        if (reorder && this.reordered.length < values * bytesPerValue) this.reordered = Buffer.alloc(this.read.length);
    }
}

/**
 * Copies the `n` source rows in `src` (whole groups of the plan's `rows.group`) to `dst` in the plan's order. Done on
 * the checkpoint's raw bytes, before decoding, so the copy, widening and quantizing paths all see the reordered rows.
 */
function reorderRows(rows: NonNullable<TensorPlan["rows"]>, src: Buffer, dst: Buffer, n: number, rowBytes: number): void {
    const { group, source } = rows;
    for (let base = 0; base < n; base += group) {
        for (let r = 0; r < group; r++) {
            const from = (base + source[r]!) * rowBytes;
            src.copy(dst, (base + r) * rowBytes, from, from + rowBytes);
        }
    }
}

/** Produces the converted bytes of one tensor, a slab of whole rows at a time. */
async function* convertTensor(job: Job, ctx: ConvertContext): AsyncGenerator<Uint8Array> {
    const { source, plan, choice } = job;
    const ne0 = plan.ne[0]!;
    const nRows = plan.ne.slice(1).reduce((a, d) => a * d, 1);
    const srcSize = dtypeSize(source.dtype);
    const reorder = plan.rows;
    // a reordering moves rows only within a group: slabs hold whole groups so that every source row is at hand
    const unit = reorder?.group ?? 1;
    if (nRows % unit !== 0) {
        throw new ConversionError(`${nRows} rows are not a whole number of groups of ${unit} (the q/k permutation)`, {
            file: source.file,
            tensor: source.name,
        });
    }
    const rowsPerSlab = Math.max(1, Math.floor(SLAB_VALUES / ne0 / unit)) * unit;
    const type = choice.type;
    const copyAsIs = (type === "bf16" && source.dtype === "BF16") || (type === "f16" && source.dtype === "F16") || (type === "f32" && source.dtype === "F32");
    const exactWiden = type === "f32";
    const rowBytes = (ne0 / blockSize(type)) * TYPE_SIZES[type].size;
    // rows checked in "sample" mode: evenly spaced, about SAMPLE_VALUES values
    const stride = ctx.verify === "sample" ? Math.max(1, Math.ceil((nRows * ne0) / SAMPLE_VALUES)) : 1;
    for (let r0 = 0; r0 < nRows; r0 += rowsPerSlab) {
        throwIfAborted(ctx.signal);
        const n = Math.min(rowsPerSlab, nRows - r0);
        const count = n * ne0;
        const srcBytes = count * srcSize;
        ctx.buffers.ensure(count, srcSize, reorder !== undefined);
        await ctx.reader.read(source, r0 * ne0 * srcSize, srcBytes, ctx.buffers.read);
        let readBuffer = ctx.buffers.read;
        if (reorder) {
            reorderRows(reorder, ctx.buffers.read, ctx.buffers.reordered, n, ne0 * srcSize);
            readBuffer = ctx.buffers.reordered;
        }
        let out: Uint8Array;
        if (copyAsIs) {
            out = readBuffer.subarray(0, srcBytes); // the checkpoint's own bytes: exact by construction
        } else {
            const values = ctx.buffers.floats.subarray(0, count);
            toFloat32(source.dtype, readBuffer, count, values);
            if (exactWiden) {
                out = new Uint8Array(values.buffer, values.byteOffset, count * 4); // every bf16/f16 value is an f32
            } else {
                try {
                    out = await ctx.addon.quantize(type, values, n, ne0, ctx.threads);
                } catch (err) {
                    throw new ConversionError(`ggml could not convert the tensor to ${type}: ${(err as Error).message}`, {
                        file: source.file,
                        tensor: source.name,
                        cause: err,
                    });
                }
                if (out.length !== n * rowBytes) {
                    throw new ConversionError(`ggml returned ${out.length} bytes for ${n} rows of ${type}, expected ${n * rowBytes}`, {
                        file: source.file,
                        tensor: source.name,
                    });
                }
                if (ctx.verify === "all") {
                    const decoded = ctx.addon.dequantize(type, out, count);
                    accumulateError(ctx.stats, values, decoded, count);
                } else if (ctx.verify === "sample") {
                    const first = Math.ceil(r0 / stride) * stride;
                    for (let r = first; r < r0 + n; r += stride) {
                        const local = r - r0;
                        const decoded = ctx.addon.dequantize(type, out.subarray(local * rowBytes, (local + 1) * rowBytes), ne0);
                        accumulateError(ctx.stats, values.subarray(local * ne0, (local + 1) * ne0), decoded, ne0);
                    }
                }
            }
        }
        ctx.onSlab(srcBytes);
        yield out;
    }
}

async function exists(path: string): Promise<boolean> {
    try {
        await stat(path);
        return true;
    } catch {
        return false;
    }
}
