/**
 * What a model family contributes to the one conversion pipeline of convert.ts: recognising its config.json, reading
 * its JSON files and tokenizer, the tensor plans of both output files (which checkpoint tensor becomes which GGUF
 * tensor, with the shape it must have), the checkpoint tensors it drops on purpose, and the metadata of both files.
 * Reading shards, checking tensors against the plans, type selection, conversion, verification, temporary files,
 * progress and abort are the pipeline's and the same for every family.
 *
 * @internal
 * @module
 */
import type { GgufWriter } from "../gguf/writer.js";
import type { MmprojOutputType, TextOutputType } from "./quant-rules.js";
import type { CheckpointTensors } from "./safetensors.js";
import type { TensorPlan } from "./tensor-map.js";

/** The activation of a CLIP tower's MLP (`--vision-act`): Hugging Face's `quick_gelu` or exact `gelu`. */
export type VisionActivation = "quick_gelu" | "gelu";

/** All `--vision-act` values. */
export const VISION_ACTIVATIONS: readonly VisionActivation[] = ["quick_gelu", "gelu"];

/** Conversion options a family may interpret. */
export interface FamilyOptions {
    /** Overrides the vision towers' activation (Video-LLaVA only). */
    visionAct?: VisionActivation;
}

/** A family of checkpoints the converter understands. */
export interface ConverterFamily {
    /** Short identifier (`videollama3`, `video_llava`). */
    readonly id: string;
    /** Name for messages (`VideoLLaMA3`, `Video-LLaVA`). */
    readonly label: string;
    /** config.json `model_type` values of the family. */
    readonly modelTypes: readonly string[];
    /** config.json `architectures` entries of the family. */
    readonly architectures: readonly string[];
    /** True when config.json describes a checkpoint of this family. */
    accepts(config: Record<string, unknown>): boolean;
    /** A hint for the unknown-architecture error when config.json looks like a relative of this family. */
    hint?(config: Record<string, unknown>): string | undefined;
    /**
     * Reads the checkpoint's configuration files (config.json is passed already parsed); throws ConversionError
     * naming the file for anything it cannot convert.
     */
    readConfig(dir: string, config: Record<string, unknown>, options: FamilyOptions): Promise<FamilyCheckpoint>;
}

/** A checkpoint whose configuration was read; its tensors are known next. */
export interface FamilyCheckpoint {
    /** Reads the tokenizer and decides the tensor plans for the checkpoint's tensors (their names, not their data). */
    plan(checkpoint: CheckpointTensors): Promise<FamilyConversion>;
}

/** Everything the pipeline needs from the family to write both files. */
export interface FamilyConversion {
    /** Text model tensors in file order. */
    textPlans: TensorPlan[];
    /** Vision projector tensors in file order. */
    mmprojPlans: TensorPlan[];
    /** The text model's block count (llama.cpp's quantization rules count layers). */
    textLayers: number;
    /** Non-fatal observations for the result (missing optional files, padded vocabulary, defaults used, ...). */
    warnings: string[];
    /** Checkpoint tensors no plan uses that are dropped on purpose (tied lm_head, unused layers, ...). */
    isSkipped(name: string): boolean;
    writeTextMetadata(w: GgufWriter, name: string, type: TextOutputType): void;
    writeMmprojMetadata(w: GgufWriter, name: string, type: MmprojOutputType): void;
}
