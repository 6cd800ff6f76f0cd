/**
 * Metadata written the same way by every family: the `general.*` keys of both files and the sampling defaults of
 * generation_config.json.
 *
 * @internal
 * @module
 */
import type { GgufWriter } from "../../gguf/writer.js";
import type { GenerationDefaults } from "../hf-config.js";
import { FILE_TYPE, isQuantized, type MmprojOutputType, type StorageType, type TextOutputType } from "../quant-rules.js";

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
    w.setU32("general.file_type", FILE_TYPE[type]);
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
