/**
 * What vidllama knows of the VideoLLaMA3 family, in one place: how videos are sampled by default, which merge size
 * images and frames use, the resize rule, the pruning defaults, and how a medium becomes chat-template content and
 * placeholder slots (a video: one `<image>` per frame; a live frame: its own `stream` message). `Session`, `Stream`,
 * `Vision` and the benchmarks call these; a second family adds a module beside this one.
 *
 * @internal
 * @module
 */
import type { PruneOption } from "../chat/content.js";
import type { TemplateContentItem, TemplateMessage } from "../chat/template.js";
import type { NativeVisionHparams } from "../native/types.js";
import { targetSizes, type ResizeBudget, type TargetSize, type VisualItem } from "../preprocess/resize-rule.js";

/** The projector settings these rules read (a VisionInfo is one). */
type VisionInfo = Readonly<NativeVisionHparams>;

/** Differential Frame Pruning as resolved for one video: off (undefined) or its threshold and minimum tokens. */
export type PruneSettings = { threshold: number; minTokens: number } | undefined;

/** The pruning a video gets: off, or the projector's settings (VideoLLaMA3: on, 0.1, 1) with the caller's overrides. */
export function resolvePrune(option: PruneOption | undefined, info: VisionInfo): PruneSettings {
    if (option === false) return undefined;
    if (option === undefined && !info.tokenCompression) return undefined;
    return { threshold: option?.threshold ?? info.diffThreshold, minTokens: option?.minTokensPerFrame ?? info.minTokensPerFrame };
}

/** Default sampling of a video given by path or URL: the projector's fps and frame cap (VideoLLaMA3: 1 fps, 180). */
export function videoSampling(info: VisionInfo): { fps: number; maxFrames: number } {
    return { fps: info.videoFps, maxFrames: info.videoMaxFrames };
}

/** Patches per merge-block side: images 1, video frames (files and live streams) 2 for VideoLLaMA3. */
export function mergeSize(kind: "image" | "video", info: VisionInfo): number {
    return kind === "image" ? info.imageMergeSize : info.videoMergeSize;
}

/** The resize budget of one request: patch size, minimum tokens per item and the shared token budget. */
export function resizeBudget(info: VisionInfo): ResizeBudget {
    return { patchSize: info.patchSize, minTokens: info.imageMinTokens, maxTokens: info.imageMaxTokens };
}

/** Target sizes of the media of one request (the budget is shared by every image and video frame). */
export function requestSizes(items: readonly VisualItem[], info: VisionInfo): TargetSize[] {
    return targetSizes(items, resizeBudget(info));
}

/** Merged tokens of an item resized to `target` with `merge`. */
export function tokensFor(target: TargetSize, merge: number, info: VisionInfo): number {
    const f = info.patchSize * merge;
    return (target.width / f) * (target.height / f);
}

/**
 * The size every frame of a live stream is resized to. A stream has no request to share a budget with: each frame
 * is sized by the video rule as one frame of a request of `framesPerBudget` frames (the reference processor's
 * `max_pixels // N`), so that `framesPerBudget` frames fill the model's visual budget — the regime the model saw
 * for clips of that many frames.
 */
export function streamFrameSize(width: number, height: number, framesPerBudget: number, info: VisionInfo): TargetSize {
    return requestSizes([{ width, height, frames: framesPerBudget, mergeSize: mergeSize("video", info) }], info)[0]!;
}

/** Template content of an image part. */
export function imageContent(): TemplateContentItem {
    return { type: "image" };
}

/** Template content of a video part: one placeholder per sampled frame, with its timestamp. */
export function videoContent(timestamps: readonly number[]): TemplateContentItem {
    return { type: "video", num_frames: timestamps.length, timestamps: [...timestamps] };
}

/**
 * One live frame as its own `stream` message, as VideoLLaMA3's streaming training data lays frames out
 * (`<|stream_start|>stream\n<image>\n<|stream_end|>`). With `timestamp` the template writes `Time t s: ` before
 * the placeholder; the training samples had none (they used a `timestamps` key the template does not read).
 */
export function streamFrameMessage(timestamp: number | undefined): TemplateMessage {
    return { role: "stream", content: [timestamp === undefined ? { type: "image" } : { type: "image", timestamp }] };
}

/** Whether a chat template can lay out live frames (it names the `stream` role). */
export function templateSupportsStreams(templateSource: string): boolean {
    return templateSource.includes("stream");
}
