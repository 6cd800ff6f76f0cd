/**
 * Metadata written the same way by every family: the `general.*` keys of both files, the llama.cpp `clip.vision.*`
 * keys of a projector, the sampling defaults of generation_config.json and the RoPE scaling keys.
 *
 * @internal
 * @module
 */
import type { GgufWriter } from "../../gguf/writer.js";
import { GgufValueType } from "../../gguf/types.js";
import type { GenerationDefaults } from "../hf-config.js";
import { FILE_TYPE, MMPROJ_FILE_TYPE, isQuantized, type MmprojOutputType, type StorageType, type TextOutputType } from "../quant-rules.js";

/** The storage type most matrices of a `--type` get (the ftype's own type). */
export function textDefaultStorage(type: TextOutputType): StorageType {
    return type === "q4_k_m" ? "q4_K" : type;
}

/** `general.architecture`, `general.type` (`model`), `general.name`, `general.file_type`, `general.quantization_version`. */
export function writeTextGeneralKeys(w: GgufWriter, architecture: string, name: string, type: TextOutputType): void {
    w.setString("general.architecture", architecture);
    w.setString("general.type", "model");
    w.setString("general.name", name);
    w.setU32("general.file_type", FILE_TYPE[type]);
    if (isQuantized(textDefaultStorage(type))) w.setU32("general.quantization_version", 2);
}

/** The projector's `general.*` keys (`clip`, `mmproj`). */
export function writeMmprojGeneralKeys(w: GgufWriter, name: string, type: MmprojOutputType): void {
    w.setString("general.architecture", "clip");
    w.setString("general.type", "mmproj");
    w.setString("general.name", name);
    w.setU32("general.file_type", MMPROJ_FILE_TYPE[type]);
    if (type === "q8_0" || type === "q4_k") w.setU32("general.quantization_version", 2);
}

/**
 * The rule both families recognise their config.json by: a known `model_type`, and a known `architectures` entry
 * when the list is given.
 */
export function acceptsConfig(config: Record<string, unknown>, modelTypes: readonly string[], architectures: readonly string[]): boolean {
    const listed = Array.isArray(config.architectures) ? (config.architectures as unknown[]) : [];
    const knownType = typeof config.model_type === "string" && modelTypes.includes(config.model_type);
    const knownArch = listed.some((a) => typeof a === "string" && architectures.includes(a));
    return knownType && (listed.length === 0 || knownArch);
}

/** What every decoder-only language model states in `<arch>.*` keys (both families' text hyper-parameters have it). */
export interface DecoderHparams {
    hiddenSize: number;
    intermediateSize: number;
    layers: number;
    heads: number;
    kvHeads: number;
    contextLength: number;
    ropeTheta: number;
    rmsNormEps: number;
    ropeScaling: { type: string; factor?: number; originalContextLength?: number } | undefined;
}

/** `<arch>.context_length`, widths, block and head counts, RoPE base and scaling, RMS-norm epsilon. */
export function writeDecoderKeys(w: GgufWriter, arch: string, t: DecoderHparams): void {
    w.setU32(`${arch}.context_length`, t.contextLength);
    w.setU32(`${arch}.embedding_length`, t.hiddenSize);
    w.setU32(`${arch}.feed_forward_length`, t.intermediateSize);
    w.setU32(`${arch}.block_count`, t.layers);
    w.setU32(`${arch}.attention.head_count`, t.heads);
    w.setU32(`${arch}.attention.head_count_kv`, t.kvHeads);
    w.setF32(`${arch}.rope.freq_base`, t.ropeTheta);
    w.setF32(`${arch}.attention.layer_norm_rms_epsilon`, t.rmsNormEps);
    writeRopeScalingKeys(w, arch, t.ropeScaling);
}

/** A vision tower's hyper-parameters under llama.cpp's `clip.*` key names. */
export interface ClipVisionKeys {
    /** `clip.projector_type`. */
    projectorType: string;
    embeddingLength: number;
    feedForwardLength: number;
    blockCount: number;
    headCount: number;
    layerNormEps: number;
    patchSize: number;
    /** `clip.vision.image_size`, for fixed-size towers. */
    imageSize?: number;
    projectionDim: number;
    imageMean: readonly number[];
    imageStd: readonly number[];
    /** `clip.use_gelu` (exact GELU; false: llama.cpp's quick GELU), for towers whose activation it selects. */
    useGelu?: boolean;
}

/** `clip.projector_type`, `clip.has_vision_encoder` and the `clip.vision.*` hyper-parameters llama.cpp reads. */
export function writeClipVisionKeys(w: GgufWriter, k: ClipVisionKeys): void {
    w.setString("clip.projector_type", k.projectorType);
    w.setBool("clip.has_vision_encoder", true);
    w.setU32("clip.vision.embedding_length", k.embeddingLength);
    w.setU32("clip.vision.feed_forward_length", k.feedForwardLength);
    w.setU32("clip.vision.block_count", k.blockCount);
    w.setU32("clip.vision.attention.head_count", k.headCount);
    w.setF32("clip.vision.attention.layer_norm_epsilon", k.layerNormEps);
    w.setU32("clip.vision.patch_size", k.patchSize);
    if (k.imageSize !== undefined) w.setU32("clip.vision.image_size", k.imageSize);
    w.setU32("clip.vision.projection_dim", k.projectionDim);
    w.setArray("clip.vision.image_mean", GgufValueType.FLOAT32, [...k.imageMean]);
    w.setArray("clip.vision.image_std", GgufValueType.FLOAT32, [...k.imageStd]);
    if (k.useGelu !== undefined) w.setBool("clip.use_gelu", k.useGelu);
}

/** `<prefix>.generation.{temperature,top_p,top_k,repetition_penalty,do_sample}`, those generation_config.json sets. */
export function writeGenerationKeys(w: GgufWriter, prefix: string, g: GenerationDefaults): void {
    if (g.temperature !== undefined) w.setF32(`${prefix}.generation.temperature`, g.temperature);
    if (g.topP !== undefined) w.setF32(`${prefix}.generation.top_p`, g.topP);
    if (g.topK !== undefined) w.setU32(`${prefix}.generation.top_k`, g.topK);
    if (g.repetitionPenalty !== undefined) w.setF32(`${prefix}.generation.repetition_penalty`, g.repetitionPenalty);
    if (g.doSample !== undefined) w.setBool(`${prefix}.generation.do_sample`, g.doSample);
}

/** `<arch>.rope.scaling.*` from config.json's `rope_scaling`, when it has one. */
export function writeRopeScalingKeys(w: GgufWriter, arch: string, scaling: { type: string; factor?: number; originalContextLength?: number } | undefined): void {
    if (!scaling) return;
    w.setString(`${arch}.rope.scaling.type`, scaling.type);
    if (scaling.factor !== undefined) w.setF32(`${arch}.rope.scaling.factor`, scaling.factor);
    if (scaling.originalContextLength !== undefined) w.setU32(`${arch}.rope.scaling.original_context_length`, scaling.originalContextLength);
}
