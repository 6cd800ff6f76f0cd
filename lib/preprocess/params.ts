/**
 * Preprocessing parameters of a vision projector, read from its GGUF metadata (docs/gguf-format.md): nothing about
 * the vision model is hard-coded.
 *
 * @module
 */
import { GgufFormatError } from "../errors.js";
import type { GgufFile } from "../gguf/reader.js";
import type { ResizeBudget } from "./resize-rule.js";

/** Normalisation and patching parameters for {@link preprocessImage} (one merge size: image or video). */
export interface PreprocessParams {
    /** Pixels per patch side (`clip.vision.patch_size`, 14). */
    patchSize: number;
    /** Patches per merge-block side (`videollama3.image.merge_size` 1, `videollama3.video.merge_size` 2). */
    mergeSize: number;
    /** Per-channel mean (R, G, B) subtracted after rescaling (`clip.vision.image_mean`). */
    mean: readonly [number, number, number];
    /** Per-channel standard deviation (R, G, B) divided by (`clip.vision.image_std`). */
    std: readonly [number, number, number];
    /** Factor applied to the 0..255 values first (`videollama3.image.rescale_factor`, 1/255). */
    rescale: number;
}

/** Everything the image/video preprocessing needs from the projector file. */
export interface VisionPreprocessConfig {
    /** Pixels per patch side. */
    patchSize: number;
    /** Merge size of images. */
    imageMergeSize: number;
    /** Merge size of video frames. */
    videoMergeSize: number;
    /** Per-channel mean (R, G, B). */
    mean: readonly [number, number, number];
    /** Per-channel standard deviation (R, G, B). */
    std: readonly [number, number, number];
    /** Rescale factor (1/255). */
    rescale: number;
    /** Minimum tokens per item. */
    minTokens: number;
    /** Token budget of a request. */
    maxTokens: number;
}

/** The part of a {@link GgufFile} this module reads. */
export type GgufMetadataSource = Pick<GgufFile, "path" | "getNumber" | "getArray">;

function requireNumber(file: GgufMetadataSource, key: string, integer: boolean): number {
    const v = file.getNumber(key);
    if (v === undefined) throw new GgufFormatError(file.path, "CORRUPT", `the vision projector has no ${key} metadata`);
    if (!Number.isFinite(v) || (integer && (!Number.isInteger(v) || v < 1))) {
        throw new GgufFormatError(file.path, "CORRUPT", `metadata ${key} = ${v} is not a valid value`);
    }
    return v;
}

function requireTriple(file: GgufMetadataSource, key: string): readonly [number, number, number] {
    const v = file.getArray(key);
    if (v === undefined) throw new GgufFormatError(file.path, "CORRUPT", `the vision projector has no ${key} metadata`);
    if (v.length !== 3 || !(v instanceof Float32Array || v instanceof Float64Array)) {
        throw new GgufFormatError(file.path, "CORRUPT", `metadata ${key} must be 3 floats`);
    }
    const out = [v[0]!, v[1]!, v[2]!] as const;
    if (!out.every(Number.isFinite)) throw new GgufFormatError(file.path, "CORRUPT", `metadata ${key} must be finite`);
    return out;
}

/** Reads the preprocessing keys of a vision projector (`clip.vision.*`, `videollama3.{image,video}.*`). */
export function visionPreprocessConfig(file: GgufMetadataSource): VisionPreprocessConfig {
    const std = requireTriple(file, "clip.vision.image_std");
    if (std.some((s) => s === 0)) throw new GgufFormatError(file.path, "CORRUPT", "metadata clip.vision.image_std contains 0");
    return {
        patchSize: requireNumber(file, "clip.vision.patch_size", true),
        imageMergeSize: requireNumber(file, "videollama3.image.merge_size", true),
        videoMergeSize: requireNumber(file, "videollama3.video.merge_size", true),
        mean: requireTriple(file, "clip.vision.image_mean"),
        std,
        rescale: requireNumber(file, "videollama3.image.rescale_factor", false),
        minTokens: requireNumber(file, "videollama3.image.min_tokens", true),
        maxTokens: requireNumber(file, "videollama3.image.max_tokens", true),
    };
}

/** The {@link PreprocessParams} for images or for video frames. */
export function preprocessParams(config: VisionPreprocessConfig, kind: "image" | "video"): PreprocessParams {
    return {
        patchSize: config.patchSize,
        mergeSize: kind === "image" ? config.imageMergeSize : config.videoMergeSize,
        mean: config.mean,
        std: config.std,
        rescale: config.rescale,
    };
}

/** The {@link ResizeBudget} of the resize rule. */
export function resizeBudget(config: VisionPreprocessConfig): ResizeBudget {
    return { patchSize: config.patchSize, minTokens: config.minTokens, maxTokens: config.maxTokens };
}
