/**
 * What vidllama knows of the Video-LLaVA family (`LanguageBind/Video-LLaVA-7B-hf` as Hugging Face's
 * `VideoLlavaForConditionalGeneration` runs it; spec: ../shared/specs/video-llava.md), in one place:
 *
 * - every image and frame is resized so its shortest edge is 224 (Pillow bicubic, long edge truncated) and
 *   centre-cropped to 224×224: 16×16 patches, whatever else is in the request;
 * - images go through the image tower and lose the class token (256 tokens); video frames go through the video
 *   tower and keep it (257 tokens per frame, 2,056 for the default 8 frames);
 * - a video is 8 frames at `floor(i·N/8)` of its N frames (the HF examples);
 * - the template writes one `<image>` per image and one `<video>` per video (standing for all its frames);
 * - Differential Frame Pruning is offered but off by default (the model was not trained with it);
 * - the 64 vocabulary rows after the 32,000 SentencePiece pieces (`<image>`, `<video>`, `<pad>` and padding) were
 *   filled with noise by the HF conversion: they are never sampled.
 *
 * @internal
 * @module
 */
import type { TemplateContentItem, TemplateMessage } from "../chat/template.js";
import { clipResizeAndCrop } from "../preprocess/clip-crop.js";
import type { PruneOption } from "../chat/content.js";
import { InvalidOptionError } from "../errors.js";
import { resolvePrune as resolveNavitPrune } from "./videollama3.js";
import type { FamilyInfo, MediumShape, ModelFamily, Placeholder, PlaceholderIds, VisualGeometry, VisualKind } from "./types.js";
import { tokenIdKey } from "./types.js";

function geometry(kind: VisualKind, width: number, height: number, info: FamilyInfo): VisualGeometry {
    const { resize, crop } = clipResizeAndCrop(width, height, info.shortestEdge, info.imageSize);
    const side = info.imageSize / info.patchSize;
    const cls = (kind === "image" ? info.imageKeepCls : info.videoKeepCls) ? 1 : 0;
    return { kind, tower: kind, resize, crop, merge: 1, grid: { height: side, width: side }, tokens: side * side + cls };
}

export const videoLlava: ModelFamily = {
    name: "video_llava",
    displayName: "Video-LLaVA",

    requestGeometry(media: readonly MediumShape[], info: FamilyInfo): VisualGeometry[] {
        return media.map((m) => geometry(m.kind, m.width, m.height, info));
    },

    imageGeometry(width: number, height: number, info: FamilyInfo): VisualGeometry {
        return geometry("image", width, height, info);
    },

    streamFrameGeometry(width: number, height: number, _framesPerBudget: number, info: FamilyInfo): VisualGeometry {
        return geometry("video", width, height, info);
    },

    // The same rule, but the CLIP towers encode whole frames: there are no per-block states to reuse.
    resolvePrune(option: PruneOption | undefined, info: FamilyInfo) {
        if (typeof option === "object" && option.encodeChangedOnly) {
            throw new InvalidOptionError(
                "prune.encodeChangedOnly",
                "false",
                true,
                "prune.encodeChangedOnly is for VideoLLaMA3: Video-LLaVA's CLIP towers encode whole frames, so there are no unchanged blocks to skip",
            );
        }
        return resolveNavitPrune(option, info);
    },

    videoSampling(info: FamilyInfo) {
        return { frames: info.videoFrames };
    },

    imageContent(): TemplateContentItem {
        return { type: "image" };
    },

    videoContent(timestamps: readonly number[]): TemplateContentItem {
        return { type: "video", num_frames: timestamps.length };
    },

    placeholders(kind: VisualKind, frames: number, info: FamilyInfo): Placeholder[] {
        if (kind === "image") return [{ token: info.imageTokenId, slots: [0] }];
        return [{ token: info.videoTokenId, slots: Array.from({ length: frames }, (_, f) => f) }];
    },

    placeholderTokens(info: FamilyInfo): number[] {
        return [info.imageTokenId, info.videoTokenId];
    },

    bannedTokens(ids: PlaceholderIds, vocabSize: number): number[] {
        const first = Math.min(ids.imageTokenId, ids.videoTokenId);
        if (first < 0) return [];
        return Array.from({ length: Math.max(0, vocabSize - first) }, (_, i) => first + i);
    },

    textPlaceholderIds(metadata) {
        const image = tokenIdKey(metadata, "video_llava.image_token_id");
        const video = tokenIdKey(metadata, "video_llava.video_token_id");
        return image === undefined || video === undefined ? undefined : { imageTokenId: image, videoTokenId: video };
    },

    /** HF renders `ASSISTANT: ` + text; the template writes `ASSISTANT:` so that generated tokens (which carry the space) follow it exactly. */
    assistantContent(text: string): string {
        return text.startsWith(" ") ? text : ` ${text}`;
    },

    /** Video-LLaVA samples files by count, not rate; live sources get 1 frame per second (as VideoLLaMA3's). */
    streamFps(): number {
        return 1;
    },

    /**
     * Video-LLaVA was not trained on streams. A live frame is laid out as a user turn holding a one-frame video
     * (`USER: <video>\n `, 257 tokens for the frame), so that every frame is a whole message that can be evicted on
     * its own, and a question is the next user turn (`USER: {question} ASSISTANT:`).
     */
    streamFrameMessage(): TemplateMessage {
        return { role: "user", content: [{ type: "video", num_frames: 1 }] };
    },

    streamFramePlaceholder(info: FamilyInfo): number {
        return info.videoTokenId;
    },

    streamTemplateProblem(): string | undefined {
        return undefined;
    },

    streamTimestampProblem(): string | undefined {
        return "Video-LLaVA's prompt format has no timestamps";
    },
};
