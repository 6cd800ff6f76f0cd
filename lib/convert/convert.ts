/**
 * VideoLLaMA3 Hugging Face checkpoint → two GGUF files (docs/gguf-format.md): the Qwen2 text model with its
 * tokenizer, loadable by stock llama.cpp, and the vision projector (SigLIP-NaViT encoder + MLP projector).
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
import { GgufValueType } from "../gguf/types.js";
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
import { readCheckpointConfig, type CheckpointConfig } from "./hf-config.js";
import {
    FILE_TYPE,
    MMPROJ_OUTPUT_TYPES,
    TEXT_OUTPUT_TYPES,
    blockSize,
    isQuantized,
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
import { isIgnorableTensor, textTensorPlans, visionTensorPlans, type TensorPlan } from "./tensor-map.js";
import { readVocabulary, type GgufVocabulary } from "./tokenizer.js";
import { ErrorStats, accumulateError } from "./verify.js";

/** How much of the converted data is decoded again and compared with the source. */
export type VerifyMode = "all" | "sample" | "none";

/** Options of {@link convertCheckpoint}. */
export interface ConvertOptions {
    /** The Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer files, ...). */
    input: string;
    /** Directory for the two GGUF files; created when missing. */
    outDir: string;
    /** Storage type of the text model. Default `"f16"`. */
    type?: TextOutputType;
    /** Storage type of the vision projector's matrices (vectors are always f32). Default `"f16"`. */
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
    /** Threads for quantization. Default: all cores. */
    threads?: number;
    /**
     * `"sample"` (default) decodes about 64k values of every tensor (all of small ones) and checks them against the
     * source; `"all"` checks every value; `"none"` skips the check.
     */
    verify?: VerifyMode;
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
 * Converts a VideoLLaMA3 Hugging Face checkpoint to `<name>-<type>.gguf` (text model) and
 * `mmproj-<name>-<mmprojType>.gguf` (vision projector) in `outDir`.
 *
 * Throws {@link ConversionError} (naming the file and tensor) for an unknown architecture, a missing or unexpected
 * tensor, a tensor whose shape does not match config.json, an unsupported dtype, a truncated or malformed
 * safetensors file, malformed JSON, a conversion error above the type's bound, or an existing output without
 * `force`. Nothing is left behind on failure or abort.
 */
export async function convertCheckpoint(options: ConvertOptions): Promise<ConvertResult> {
    const started = performance.now();
    const o = checkOptionsObject(options, ["input", "outDir", "type", "mmprojType", "force", "name", "signal", "onProgress", "threads", "verify"]);
    const input = resolve(requiredString("input", o.input));
    const outDir = resolve(requiredString("outDir", o.outDir));
    const type = optionalEnum("type", o.type, TEXT_OUTPUT_TYPES, "f16");
    const mmprojType = optionalEnum("mmprojType", o.mmprojType, MMPROJ_OUTPUT_TYPES, "f16");
    const force = optionalBoolean("force", o.force, false);
    const signal = optionalSignal("signal", o.signal);
    const onProgress = optionalFunction<(p: ConvertProgress) => void>("onProgress", o.onProgress);
    const threads = optionalInteger("threads", o.threads, 1, 1024, availableParallelism());
    const verify = optionalEnum("verify", o.verify, ["all", "sample", "none"] as const, "sample");
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
    const config = await readCheckpointConfig(input);
    const checkpoint = await openCheckpointTensors(input);
    throwIfAborted(signal);
    const vocab = await readVocabulary(input, config.text);
    throwIfAborted(signal);

    const textPlans = textTensorPlans(config.text);
    const visionPlans = visionTensorPlans(config.vision, config.text.hiddenSize);
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
        if (used.has(t.name) || isIgnorableTensor(t.name)) continue;
        if (t.name === "lm_head.weight" && config.text.tieWordEmbeddings) continue; // tied: HF ignores it too
        throw new ConversionError("unexpected tensor: not part of a VideoLLaMA3 checkpoint with this config.json", {
            file: t.file,
            tensor: t.name,
        });
    }

    const textTypes = selectTextTensorTypes(
        type,
        textPlans.map((p) => ({ name: p.gguf, ne: p.ne })),
        config.text.layers,
    );
    const mmprojTypes = selectMmprojTensorTypes(
        mmprojType,
        visionPlans.map((p) => ({ name: p.gguf, ne: p.ne })),
    );
    const jobs: Job[] = [
        ...textPlans.map((plan, i): Job => makeJob("text", plan, textSources[i]!, textTypes.get(plan.gguf)!)),
        ...visionPlans.map((plan, i): Job => makeJob("mmproj", plan, visionSources[i]!, mmprojTypes.get(plan.gguf)!)),
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
    const warnings = [...config.warnings, ...vocab.warnings];
    const state = { bytesDone: 0, index: 0 };
    const writers: GgufWriter[] = [];
    let textBytes = 0;
    let mmprojBytes = 0;
    try {
        for (const file of ["text", "mmproj"] as const) {
            const fileJobs = jobs.filter((j) => j.file === file);
            const writer = new GgufWriter(temps[file]);
            writers.push(writer);
            if (file === "text") writeTextMetadata(writer, config, vocab, name, type);
            else writeMmprojMetadata(writer, config, name, mmprojType);
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

    ensure(values: number, bytesPerValue: number): void {
        if (this.read.length < values * bytesPerValue) this.read = Buffer.alloc(Math.max(values * bytesPerValue, SLAB_VALUES * 2));
        if (this.floats.length < values) this.floats = new Float32Array(Math.max(values, SLAB_VALUES));
    }
}

/** Produces the converted bytes of one tensor, a slab of whole rows at a time. */
async function* convertTensor(job: Job, ctx: ConvertContext): AsyncGenerator<Uint8Array> {
    const { source, plan, choice } = job;
    const ne0 = plan.ne[0]!;
    const nRows = plan.ne.slice(1).reduce((a, d) => a * d, 1);
    const srcSize = dtypeSize(source.dtype);
    const rowsPerSlab = Math.max(1, Math.floor(SLAB_VALUES / ne0));
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
        ctx.buffers.ensure(count, srcSize);
        const readBuffer = ctx.buffers.read;
        await ctx.reader.read(source, r0 * ne0 * srcSize, srcBytes, readBuffer);
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

// ---- metadata ----------------------------------------------------------------------------------------------------

/** The text GGUF's metadata (docs/gguf-format.md). Exported for the benchmarks' random-weight files; not public API. @internal */
export function writeTextMetadata(w: GgufWriter, config: CheckpointConfig, vocab: GgufVocabulary, name: string, type: TextOutputType): void {
    const t = config.text;
    w.setString("general.architecture", "qwen2");
    w.setString("general.type", "model");
    w.setString("general.name", name);
    w.setU32("general.file_type", FILE_TYPE[type]);
    if (isQuantized(textDefaultStorage(type))) w.setU32("general.quantization_version", 2);
    w.setU32("qwen2.context_length", t.contextLength);
    w.setU32("qwen2.embedding_length", t.hiddenSize);
    w.setU32("qwen2.feed_forward_length", t.intermediateSize);
    w.setU32("qwen2.block_count", t.layers);
    w.setU32("qwen2.attention.head_count", t.heads);
    w.setU32("qwen2.attention.head_count_kv", t.kvHeads);
    w.setF32("qwen2.rope.freq_base", t.ropeTheta);
    w.setF32("qwen2.attention.layer_norm_rms_epsilon", t.rmsNormEps);
    if (t.ropeScaling) {
        w.setString("qwen2.rope.scaling.type", t.ropeScaling.type);
        if (t.ropeScaling.factor !== undefined) w.setF32("qwen2.rope.scaling.factor", t.ropeScaling.factor);
        if (t.ropeScaling.originalContextLength !== undefined) {
            w.setU32("qwen2.rope.scaling.original_context_length", t.ropeScaling.originalContextLength);
        }
    }
    w.setString("tokenizer.ggml.model", "gpt2");
    w.setString("tokenizer.ggml.pre", "qwen2");
    w.setArray("tokenizer.ggml.tokens", GgufValueType.STRING, vocab.tokens);
    w.setArray("tokenizer.ggml.token_type", GgufValueType.INT32, vocab.tokenTypes);
    w.setArray("tokenizer.ggml.merges", GgufValueType.STRING, vocab.merges);
    w.setU32("tokenizer.ggml.eos_token_id", vocab.eosTokenId);
    w.setU32("tokenizer.ggml.eot_token_id", vocab.eotTokenId);
    if (vocab.padTokenId !== undefined) w.setU32("tokenizer.ggml.padding_token_id", vocab.padTokenId);
    if (vocab.bosTokenId !== undefined) w.setU32("tokenizer.ggml.bos_token_id", vocab.bosTokenId);
    w.setBool("tokenizer.ggml.add_bos_token", vocab.addBosToken);
    if (vocab.chatTemplate !== undefined) w.setString("tokenizer.chat_template", vocab.chatTemplate);
    w.setU32("videollama3.image_token_id", t.imageTokenIndex);
    if (vocab.streamStartTokenId !== undefined) w.setU32("videollama3.stream_start_token_id", vocab.streamStartTokenId);
    if (vocab.streamEndTokenId !== undefined) w.setU32("videollama3.stream_end_token_id", vocab.streamEndTokenId);
    const g = config.generation;
    if (g.temperature !== undefined) w.setF32("videollama3.generation.temperature", g.temperature);
    if (g.topP !== undefined) w.setF32("videollama3.generation.top_p", g.topP);
    if (g.topK !== undefined) w.setU32("videollama3.generation.top_k", g.topK);
    if (g.repetitionPenalty !== undefined) w.setF32("videollama3.generation.repetition_penalty", g.repetitionPenalty);
    if (g.doSample !== undefined) w.setBool("videollama3.generation.do_sample", g.doSample);
}

function textDefaultStorage(type: TextOutputType): StorageType {
    return type === "q4_k_m" ? "q4_K" : type;
}

/** The vision projector's settings not stored in the checkpoint: fixed in the reference code (spec §2, §5). */
const VISION_ROPE_THETA = 10000;
const VIDEO_MAX_FRAMES = 180;
const DIFF_THRESHOLD = 0.1;
const MIN_TOKENS_PER_FRAME = 1;

/** The vision projector GGUF's metadata (docs/gguf-format.md). Exported for the benchmarks; not public API. @internal */
export function writeMmprojMetadata(w: GgufWriter, config: CheckpointConfig, name: string, type: MmprojOutputType): void {
    const v = config.vision;
    const p = config.processor;
    w.setString("general.architecture", "clip");
    w.setString("general.type", "mmproj");
    w.setString("general.name", name);
    w.setU32("general.file_type", FILE_TYPE[type]);
    w.setString("clip.projector_type", "videollama3");
    w.setBool("clip.has_vision_encoder", true);
    w.setU32("clip.vision.embedding_length", v.hiddenSize);
    w.setU32("clip.vision.feed_forward_length", v.intermediateSize);
    w.setU32("clip.vision.block_count", v.layers);
    w.setU32("clip.vision.attention.head_count", v.heads);
    w.setF32("clip.vision.attention.layer_norm_epsilon", v.layerNormEps);
    w.setU32("clip.vision.patch_size", v.patchSize);
    w.setU32("clip.vision.projection_dim", config.text.hiddenSize);
    w.setArray("clip.vision.image_mean", GgufValueType.FLOAT32, p.imageMean);
    w.setArray("clip.vision.image_std", GgufValueType.FLOAT32, p.imageStd);
    w.setF32("videollama3.vision.rope.freq_base", VISION_ROPE_THETA);
    w.setString("videollama3.vision.hidden_act", v.hiddenAct);
    w.setString("videollama3.projector.type", config.text.projectorType);
    w.setU32("videollama3.image.merge_size", p.imageMergeSize);
    w.setU32("videollama3.video.merge_size", p.videoMergeSize);
    w.setU32("videollama3.image.min_tokens", p.minTokens);
    w.setU32("videollama3.image.max_tokens", p.maxTokens);
    w.setF32("videollama3.image.rescale_factor", p.rescaleFactor);
    w.setString("videollama3.image.resample", p.resample);
    w.setF32("videollama3.video.fps", p.fps);
    w.setU32("videollama3.video.max_frames", VIDEO_MAX_FRAMES);
    w.setBool("videollama3.video.token_compression", config.text.useTokenCompression);
    w.setF32("videollama3.video.diff_threshold", DIFF_THRESHOLD);
    w.setU32("videollama3.video.min_tokens_per_frame", MIN_TOKENS_PER_FRAME);
    w.setU32("videollama3.image_token_id", config.text.imageTokenIndex);
}
