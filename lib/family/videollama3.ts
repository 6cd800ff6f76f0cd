/**
 * What vidllama knows of the VideoLLaMA3 family, in one place: how videos are sampled by default (1 fps, at most
 * 180 frames), the merge sizes (images 1, frames 2), the resize rule with one token budget shared by every image
 * and frame of a request, the pruning defaults (DiffFP on), and how a medium becomes chat-template content and
 * placeholders (an image: one `<image>`; a video: one `<image>` per frame; a live frame: its own `stream` message).
 *
 * @internal
 * @module
 */
import type { PruneOption } from "../chat/content.js";
import type { TemplateContentItem, TemplateMessage } from "../chat/template.js";
import { targetSizes, type ResizeBudget, type TargetSize } from "../preprocess/resize-rule.js";
import type { FamilyInfo, MediumShape, ModelFamily, Placeholder, PlaceholderIds, PruneSettings, VisualGeometry, VisualKind } from "./types.js";
import { tokenIdKey } from "./types.js";

/** The pruning a video gets: off, or the projector's settings (VideoLLaMA3: on, 0.1, 1) with the caller's overrides. */
export function resolvePrune(option: PruneOption | undefined, info: FamilyInfo): PruneSettings {
    if (option === false) return undefined;
    if (option === undefined && !info.tokenCompression) return undefined;
    const o = typeof option === "object" ? option : undefined;
    return { threshold: o?.threshold ?? info.diffThreshold, minTokens: o?.minTokensPerFrame ?? info.minTokensPerFrame, encodeChangedOnly: o?.encodeChangedOnly ?? false };
}

/** Patches per merge-block side: images 1, video frames (files and live streams) 2 for VideoLLaMA3. */
function mergeSize(kind: VisualKind, info: FamilyInfo): number {
    return kind === "image" ? info.imageMergeSize : info.videoMergeSize;
}

/** The resize budget of one request: patch size, minimum tokens per item and the shared token budget. */
function resizeBudget(info: FamilyInfo): ResizeBudget {
    return { patchSize: info.patchSize, minTokens: info.imageMinTokens, maxTokens: info.imageMaxTokens };
}

function geometry(kind: VisualKind, target: TargetSize, info: FamilyInfo): VisualGeometry {
    const merge = mergeSize(kind, info);
    const f = info.patchSize * merge;
    const grid = { height: target.height / f, width: target.width / f };
    return { kind, resize: target, merge, grid, tokens: grid.height * grid.width };
}

export const videollama3: ModelFamily = {
    name: "videollama3",
    displayName: "VideoLLaMA3",

    requestGeometry(media: readonly MediumShape[], info: FamilyInfo): VisualGeometry[] {
        const items = media.map((m) => ({ width: m.width, height: m.height, frames: m.frames ?? 1, mergeSize: mergeSize(m.kind, info) }));
        return targetSizes(items, resizeBudget(info)).map((target, i) => geometry(media[i]!.kind, target, info));
    },

    imageGeometry(width: number, height: number, info: FamilyInfo): VisualGeometry {
        return this.requestGeometry([{ kind: "image", width, height }], info)[0]!;
    },

    /**
     * A stream has no request to share a budget with: each frame is sized by the video rule as one frame of a request
     * of `framesPerBudget` frames (the reference processor's `max_pixels // N`), so that `framesPerBudget` frames fill
     * the model's visual budget — the regime the model saw for clips of that many frames.
     */
    streamFrameGeometry(width: number, height: number, framesPerBudget: number, info: FamilyInfo): VisualGeometry {
        return this.requestGeometry([{ kind: "video", width, height, frames: framesPerBudget }], info)[0]!;
    },

    resolvePrune,

    videoSampling(info: FamilyInfo) {
        return { fps: info.videoFps, maxFrames: info.videoMaxFrames };
    },

    imageContent(): TemplateContentItem {
        return { type: "image" };
    },

    /** One placeholder per sampled frame, with its timestamp (the template writes `Time t s:` before each). */
    videoContent(timestamps: readonly number[]): TemplateContentItem {
        return { type: "video", num_frames: timestamps.length, timestamps: [...timestamps] };
    },

    placeholders(kind: VisualKind, frames: number, info: FamilyInfo): Placeholder[] {
        if (kind === "image") return [{ token: info.imageTokenId, slots: [0] }];
        return Array.from({ length: frames }, (_, f) => ({ token: info.imageTokenId, slots: [f] }));
    },

    placeholderTokens(info: FamilyInfo): number[] {
        return [info.imageTokenId];
    },

    bannedTokens(ids: PlaceholderIds): number[] {
        return ids.imageTokenId >= 0 ? [ids.imageTokenId] : [];
    },

    textPlaceholderIds(metadata) {
        const image = tokenIdKey(metadata, "videollama3.image_token_id");
        return image === undefined ? undefined : { imageTokenId: image, videoTokenId: -1 };
    },

    assistantContent(text: string): string {
        return text;
    },

    /** The projector's video rate (1 fps), as for files. */
    streamFps(info: FamilyInfo): number {
        return info.videoFps;
    },

    /**
     * One live frame as its own `stream` message, as VideoLLaMA3's streaming training data lays frames out
     * (`<|stream_start|>stream\n<image>\n<|stream_end|>`). With `timestamp` the template writes `Time t s: ` before
     * the placeholder; the training samples had none (they used a `timestamps` key the template does not read).
     */
    streamFrameMessage(timestamp: number | undefined): TemplateMessage {
        return { role: "stream", content: [timestamp === undefined ? { type: "image" } : { type: "image", timestamp }] };
    },

    streamFramePlaceholder(info: FamilyInfo): number {
        return info.imageTokenId;
    },

    streamTemplateProblem(templateSource: string): string | undefined {
        return templateSource.includes("stream") ? undefined : "its chat template has no `stream` role (VideoLLaMA3's has one)";
    },

    streamTimestampProblem(): string | undefined {
        return undefined;
    },
};
