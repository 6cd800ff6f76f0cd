/**
 * The JSON files of a VideoLLaMA3 Hugging Face checkpoint (config.json, preprocessor_config.json,
 * processor_config.json, generation_config.json) read into the hyper-parameters the GGUF files need, and the JSON
 * helpers every family's reader uses ({@link readJsonFile}, {@link Fields}, {@link readGenerationDefaults}).
 *
 * @internal
 * @module
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ConversionError } from "../errors.js";

/** `model_type` values of checkpoints this converter understands. */
export const SUPPORTED_MODEL_TYPES: readonly string[] = ["videollama3_qwen2"];
/** `architectures` entries of checkpoints this converter understands. */
export const SUPPORTED_ARCHITECTURES: readonly string[] = ["Videollama3Qwen2ForCausalLM"];

/** The Qwen2 language model's hyper-parameters (config.json top level). */
export interface TextHparams {
    hiddenSize: number;
    intermediateSize: number;
    layers: number;
    heads: number;
    kvHeads: number;
    vocabSize: number;
    contextLength: number;
    ropeTheta: number;
    rmsNormEps: number;
    tieWordEmbeddings: boolean;
    /** `rope_scaling` when set (Qwen2.5 leaves it null). */
    ropeScaling: { type: string; factor?: number; originalContextLength?: number } | undefined;
    bosTokenId: number | undefined;
    eosTokenId: number | undefined;
    imageTokenIndex: number;
    projectorType: string;
    useTokenCompression: boolean;
}

/** The SigLIP-NaViT vision encoder's hyper-parameters (config.json `vision_encoder_config`). */
export interface VisionHparams {
    hiddenSize: number;
    intermediateSize: number;
    layers: number;
    heads: number;
    patchSize: number;
    numChannels: number;
    layerNormEps: number;
    hiddenAct: string;
}

/** Pre-processing parameters (preprocessor_config.json / processor_config.json). */
export interface ProcessorParams {
    imageMean: number[];
    imageStd: number[];
    rescaleFactor: number;
    resample: string;
    minTokens: number;
    maxTokens: number;
    imageMergeSize: number;
    videoMergeSize: number;
    fps: number;
}

/** Sampling defaults from generation_config.json (only the ones present). */
export interface GenerationDefaults {
    temperature?: number;
    topP?: number;
    topK?: number;
    repetitionPenalty?: number;
    doSample?: boolean;
}

/** Everything read from the checkpoint's JSON files. */
export interface CheckpointConfig {
    dir: string;
    modelType: string;
    text: TextHparams;
    vision: VisionHparams;
    processor: ProcessorParams;
    generation: GenerationDefaults;
    /** Files that were absent and replaced by the reference defaults, or other oddities (for the summary). */
    warnings: string[];
}

/** PIL resampling filter numbers (`PIL.Image.Resampling`) → names. */
export const PIL_RESAMPLE: Record<number, string> = { 0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming" };

/** A preprocessor's `resample` (a PIL filter number or a name) as a lower-case name; `bicubic` when absent. */
export function parseResample(value: unknown, file: string): string {
    if (typeof value === "number") {
        const name = PIL_RESAMPLE[value];
        if (!name) throw new ConversionError(`resample ${value} is not a PIL filter number`, { file });
        return name;
    }
    if (typeof value === "string") return value.toLowerCase();
    return "bicubic";
}

/** Reads and parses a JSON file; undefined when it does not exist, ConversionError when it is malformed. */
export async function readJsonFile(path: string, required: boolean): Promise<Record<string, unknown> | undefined> {
    let text: string;
    try {
        text = await readFile(path, "utf8");
    } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT" && !required) return undefined;
        throw new ConversionError(
            (err as NodeJS.ErrnoException).code === "ENOENT" ? "required file is missing" : `cannot read: ${(err as Error).message}`,
            { file: path, cause: err },
        );
    }
    let value: unknown;
    try {
        value = JSON.parse(text);
    } catch (err) {
        throw new ConversionError(`malformed JSON: ${(err as Error).message}`, { file: path, cause: err });
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw new ConversionError("malformed JSON: expected an object at the top level", { file: path });
    }
    return value as Record<string, unknown>;
}

/** Typed access to the keys of one JSON object, with errors naming the file and the key. */
export class Fields {
    constructor(
        readonly file: string,
        readonly obj: Record<string, unknown>,
        readonly prefix = "",
    ) {}

    #fail(key: string, expected: string, value: unknown): never {
        throw new ConversionError(`${this.prefix}${key} must be ${expected}, found ${JSON.stringify(value)}`, { file: this.file });
    }

    has(key: string): boolean {
        return this.obj[key] !== undefined && this.obj[key] !== null;
    }

    int(key: string, fallback?: number, min = 1): number {
        const v = this.obj[key];
        if (v === undefined || v === null) {
            if (fallback === undefined) throw new ConversionError(`${this.prefix}${key} is missing`, { file: this.file });
            return fallback;
        }
        if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) this.#fail(key, `an integer >= ${min}`, v);
        return v;
    }

    num(key: string, fallback?: number): number {
        const v = this.obj[key];
        if (v === undefined || v === null) {
            if (fallback === undefined) throw new ConversionError(`${this.prefix}${key} is missing`, { file: this.file });
            return fallback;
        }
        if (typeof v !== "number" || !Number.isFinite(v)) this.#fail(key, "a finite number", v);
        return v;
    }

    optNum(key: string): number | undefined {
        return this.has(key) ? this.num(key) : undefined;
    }

    optInt(key: string, min = 0): number | undefined {
        return this.has(key) ? this.int(key, undefined, min) : undefined;
    }

    bool(key: string, fallback: boolean): boolean {
        const v = this.obj[key];
        if (v === undefined || v === null) return fallback;
        if (typeof v !== "boolean") this.#fail(key, "true or false", v);
        return v;
    }

    str(key: string, fallback?: string): string {
        const v = this.obj[key];
        if (v === undefined || v === null) {
            if (fallback === undefined) throw new ConversionError(`${this.prefix}${key} is missing`, { file: this.file });
            return fallback;
        }
        if (typeof v !== "string") this.#fail(key, "a string", v);
        return v;
    }

    numArray(key: string, length: number, fallback: number[]): number[] {
        const v = this.obj[key];
        if (v === undefined || v === null) return fallback;
        if (!Array.isArray(v) || v.length !== length || !v.every((x) => typeof x === "number" && Number.isFinite(x))) {
            this.#fail(key, `a list of ${length} numbers`, v);
        }
        return v as number[];
    }
}

/**
 * Reads the checkpoint's configuration files. config.json is required and must describe a VideoLLaMA3 Qwen2
 * model; the processor and generation files are optional (the reference values of the released processor are
 * used, and a warning recorded, when they are absent).
 */
export async function readCheckpointConfig(dir: string): Promise<CheckpointConfig> {
    const configPath = join(dir, "config.json");
    const config = (await readJsonFile(configPath, true))!;
    const warnings: string[] = [];

    const modelType = config.model_type;
    const architectures = Array.isArray(config.architectures) ? (config.architectures as unknown[]) : [];
    const knownType = typeof modelType === "string" && SUPPORTED_MODEL_TYPES.includes(modelType);
    const knownArch = architectures.some((a) => typeof a === "string" && SUPPORTED_ARCHITECTURES.includes(a));
    if (!knownType || (architectures.length > 0 && !knownArch)) {
        const hint =
            modelType === "video_llama_3"
                ? " (this is the transformers-native port, which uses different tensor names and token ids; convert the original DAMO-NLP-SG checkpoint)"
                : "";
        throw new ConversionError(
            `unknown architecture: model_type ${JSON.stringify(modelType)}, architectures ${JSON.stringify(config.architectures ?? null)}; ` +
                `expected model_type "${SUPPORTED_MODEL_TYPES.join('" or "')}" and architectures ["${SUPPORTED_ARCHITECTURES.join('", "')}"]${hint}`,
            { file: configPath },
        );
    }

    const c = new Fields(configPath, config);
    const hiddenSize = c.int("hidden_size");
    const heads = c.int("num_attention_heads");
    if (hiddenSize % heads !== 0) {
        throw new ConversionError(`hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${heads}`, { file: configPath });
    }
    const kvHeads = c.int("num_key_value_heads", heads);
    if (heads % kvHeads !== 0) {
        throw new ConversionError(`num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`, { file: configPath });
    }
    let ropeScaling: TextHparams["ropeScaling"];
    if (c.has("rope_scaling")) {
        const rs = config.rope_scaling as Record<string, unknown>;
        const f = new Fields(configPath, rs, "rope_scaling.");
        const type = typeof rs.rope_type === "string" ? rs.rope_type : f.str("type");
        if (type !== "linear" && type !== "yarn" && type !== "default") {
            throw new ConversionError(`rope_scaling type ${JSON.stringify(type)} is not supported (linear, yarn)`, { file: configPath });
        }
        if (type !== "default") {
            ropeScaling = { type, factor: f.num("factor"), originalContextLength: f.optInt("original_max_position_embeddings", 1) };
        }
    }
    const text: TextHparams = {
        hiddenSize,
        intermediateSize: c.int("intermediate_size"),
        layers: c.int("num_hidden_layers"),
        heads,
        kvHeads,
        vocabSize: c.int("vocab_size"),
        contextLength: c.int("max_position_embeddings"),
        ropeTheta: c.num("rope_theta", 10000),
        rmsNormEps: c.num("rms_norm_eps", 1e-6),
        tieWordEmbeddings: c.bool("tie_word_embeddings", false),
        ropeScaling,
        bosTokenId: c.optInt("bos_token_id"),
        eosTokenId: typeof config.eos_token_id === "number" ? c.optInt("eos_token_id") : undefined,
        imageTokenIndex: c.int("image_token_index", undefined, 0),
        projectorType: c.str("mm_projector_type", "mlp2x_gelu"),
        useTokenCompression: c.bool("use_token_compression", false),
    };
    if (text.projectorType !== "mlp2x_gelu") {
        throw new ConversionError(`mm_projector_type ${JSON.stringify(text.projectorType)} is not supported (only mlp2x_gelu)`, {
            file: configPath,
        });
    }
    if (text.imageTokenIndex >= text.vocabSize) {
        throw new ConversionError(`image_token_index ${text.imageTokenIndex} is outside the vocabulary (${text.vocabSize})`, {
            file: configPath,
        });
    }

    const vcfg = config.vision_encoder_config;
    if (typeof vcfg !== "object" || vcfg === null || Array.isArray(vcfg)) {
        throw new ConversionError("vision_encoder_config is missing", { file: configPath });
    }
    const v = new Fields(configPath, vcfg as Record<string, unknown>, "vision_encoder_config.");
    const vision: VisionHparams = {
        hiddenSize: v.int("hidden_size"),
        intermediateSize: v.int("intermediate_size"),
        layers: v.int("num_hidden_layers"),
        heads: v.int("num_attention_heads"),
        patchSize: v.int("patch_size"),
        numChannels: v.int("num_channels", 3),
        layerNormEps: v.num("layer_norm_eps", 1e-6),
        hiddenAct: v.str("hidden_act", "gelu_pytorch_tanh"),
    };
    if (vision.hiddenSize % vision.heads !== 0) {
        throw new ConversionError(
            `vision_encoder_config.hidden_size ${vision.hiddenSize} is not a multiple of num_attention_heads ${vision.heads}`,
            { file: configPath },
        );
    }

    // Pre-processing: the released processor's values are the fallback (spec §4; the code defaults differ).
    const prePath = join(dir, "preprocessor_config.json");
    const pre = await readJsonFile(prePath, false);
    if (!pre) warnings.push("preprocessor_config.json is missing: using the released VideoLLaMA3 values (mean/std 0.5, 16–16384 tokens, bicubic)");
    const p = new Fields(prePath, pre ?? {});
    const resample = parseResample(pre?.resample, prePath);
    const procPath = join(dir, "processor_config.json");
    const proc = await readJsonFile(procPath, false);
    if (!proc) warnings.push("processor_config.json is missing: using image merge size 1, video merge size 2, 1 fps");
    const q = new Fields(procPath, proc ?? {});
    const patchSize = p.int("patch_size", vision.patchSize);
    if (patchSize !== vision.patchSize) {
        throw new ConversionError(`patch_size ${patchSize} differs from the vision encoder's ${vision.patchSize}`, { file: prePath });
    }
    const processor: ProcessorParams = {
        imageMean: p.numArray("image_mean", 3, [0.5, 0.5, 0.5]),
        imageStd: p.numArray("image_std", 3, [0.5, 0.5, 0.5]),
        rescaleFactor: p.num("rescale_factor", 1 / 255),
        resample,
        minTokens: p.int("min_tokens", 16),
        maxTokens: p.int("max_tokens", 16384),
        imageMergeSize: q.int("image_merge_size", 1),
        videoMergeSize: q.int("video_merge_size", 2),
        fps: q.num("fps", 1),
    };

    const generation = await readGenerationDefaults(dir);

    return { dir, modelType: modelType as string, text, vision, processor, generation, warnings };
}

/** The sampling defaults of generation_config.json (only those it sets; none when the file is absent). */
export async function readGenerationDefaults(dir: string): Promise<GenerationDefaults> {
    const genPath = join(dir, "generation_config.json");
    const gen = await readJsonFile(genPath, false);
    const g = new Fields(genPath, gen ?? {});
    const generation: GenerationDefaults = {};
    if (gen) {
        if (g.has("temperature")) generation.temperature = g.num("temperature");
        if (g.has("top_p")) generation.topP = g.num("top_p");
        if (g.has("top_k")) generation.topK = g.int("top_k", undefined, 0);
        if (g.has("repetition_penalty")) generation.repetitionPenalty = g.num("repetition_penalty");
        if (g.has("do_sample")) generation.doSample = g.bool("do_sample", false);
    }
    return generation;
}
