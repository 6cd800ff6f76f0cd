/**
 * What a model family (VideoLLaMA3, Video-LLaVA) decides, as one interface: how its media are sized and cut, how many
 * visual tokens they become, which placeholder tokens the chat template writes for them and how those map to
 * encoded items, how videos are sampled by default, which tokens may never be sampled, and how live frames are laid
 * out. `Session`, `Stream`, `Vision` and the benchmarks ask the family of the loaded projector
 * ({@link familyOf} in ./index.ts) and never test which family it is.
 *
 * @internal
 * @module
 */
import type { PruneOption } from "../chat/content.js";
import type { TemplateContentItem, TemplateMessage } from "../chat/template.js";
import type { NativeCropRect, NativeVisionHparams } from "../native/types.js";
import type { TargetSize } from "../preprocess/resize-rule.js";

/** The projector settings the rules read (a VisionInfo is one). */
export type FamilyInfo = Readonly<NativeVisionHparams>;

/** The placeholder token ids of a model, from its projector or from the text model's own metadata (-1: none). */
export type PlaceholderIds = Pick<FamilyInfo, "imageTokenId" | "videoTokenId">;

/** Differential Frame Pruning as resolved for one video: off (undefined) or its threshold and minimum tokens. */
/** Pruning of a video: off, or its DiffFP settings and whether the encoder computes only the kept blocks. */
export type PruneSettings = { threshold: number; minTokens: number; encodeChangedOnly: boolean } | undefined;

/** Which tower of the projector encodes an item (VideoLLaMA3 has one tower for both). */
export type VisualKind = "image" | "video";

/** The region of the resized picture that is encoded (may reach outside it: see lib/preprocess/clip-crop.ts). */
export type CropRect = NativeCropRect;

/** How one image or video frame is resized, cut and encoded, and the visual tokens it becomes before pruning. */
export interface VisualGeometry {
    kind: VisualKind;
    /** The tower that encodes it, where a family has one per kind (Video-LLaVA); absent: the projector's only tower. */
    tower?: VisualKind;
    /** Size the picture is resized to. */
    resize: TargetSize;
    /** Part of the resized picture that is encoded (Video-LLaVA's centre crop); absent: all of it. */
    crop?: CropRect;
    /** Patches per merge-block side. */
    merge: number;
    /** Token grid of the encoded region after merging. */
    grid: { height: number; width: number };
    /** Visual tokens of the item before pruning (grid tokens, plus a class token where the tower keeps it). */
    tokens: number;
}

/** One medium of a request, as the sizing rule sees it. */
export interface MediumShape {
    kind: VisualKind;
    width: number;
    height: number;
    /** Frames of a video (1 for an image). */
    frames?: number;
}

/** One placeholder token the template writes for a medium, and the medium's slots (images / frames) it stands for. */
export interface Placeholder {
    token: number;
    slots: number[];
}

/** Default frame sampling of a video given by path or URL (the {@link Video.open} options it becomes). */
export type VideoSamplingDefaults = { fps: number; maxFrames: number } | { frames: number };

export interface ModelFamily {
    /** `clip.projector_type` of the family's projector files. */
    readonly name: "videollama3" | "video_llava";
    /** A name for messages. */
    readonly displayName: string;
    /** How every image and video frame of one request is sized (VideoLLaMA3 shares one token budget among them). */
    requestGeometry(media: readonly MediumShape[], info: FamilyInfo): VisualGeometry[];
    /** How an image on its own is sized ({@link Model.encode}). */
    imageGeometry(width: number, height: number, info: FamilyInfo): VisualGeometry;
    /** How each frame of a live stream is sized (`framesPerBudget`: the frames that share the budget, where one is shared). */
    streamFrameGeometry(width: number, height: number, framesPerBudget: number, info: FamilyInfo): VisualGeometry;
    /** The pruning a video gets: off, or the projector's settings with the caller's overrides. */
    resolvePrune(option: PruneOption | undefined, info: FamilyInfo): PruneSettings;
    /** Default sampling of a video opened from a path or URL. */
    videoSampling(info: FamilyInfo): VideoSamplingDefaults;
    /** Template content of an image part. */
    imageContent(): TemplateContentItem;
    /** Template content of a video part. */
    videoContent(timestamps: readonly number[]): TemplateContentItem;
    /** The placeholder tokens the template writes for an image (frames 1) or a video of `frames` frames, in order. */
    placeholders(kind: VisualKind, frames: number, info: FamilyInfo): Placeholder[];
    /** Every placeholder token id of the family (to recognise them in rendered prompts). */
    placeholderTokens(info: FamilyInfo): number[];
    /** Token ids that are never sampled (placeholders; Video-LLaVA's padding rows). */
    bannedTokens(ids: PlaceholderIds, vocabSize: number): number[];
    /**
     * The placeholder ids a text model of this family states in its own metadata (`videollama3.image_token_id`,
     * `video_llava.image_token_id`, ...), or undefined when the metadata is not this family's: a text-only load
     * bans them too.
     */
    textPlaceholderIds(metadata: Readonly<Record<string, string>>): PlaceholderIds | undefined;
    /** Assistant text as the template receives it when no exact tokens are known (Video-LLaVA: with its leading space). */
    assistantContent(text: string): string;
    /** Frames sampled per second of a live source by default. */
    streamFps(info: FamilyInfo): number;
    /** A live frame as a template message (its placeholder token is `streamFramePlaceholder`). */
    streamFrameMessage(timestamp: number | undefined): TemplateMessage;
    /** The placeholder token of one live frame. */
    streamFramePlaceholder(info: FamilyInfo): number;
    /** Why a chat template cannot lay out live frames, or undefined when it can. */
    streamTemplateProblem(templateSource: string): string | undefined;
    /** Why timestamps cannot be written for live frames, or undefined when they can. */
    streamTimestampProblem(): string | undefined;
}

/** Native item fields of a geometry: what `VisionProjector.encode` needs besides the pixels. */
export function geometryItem(g: VisualGeometry): { targetWidth: number; targetHeight: number; merge: number; tower: VisualKind; crop?: CropRect } {
    return { targetWidth: g.resize.width, targetHeight: g.resize.height, merge: g.merge, tower: g.tower ?? g.kind, ...(g.crop ? { crop: { ...g.crop } } : {}) };
}

/**
 * A stable text naming a geometry, for KV timeline keys. A geometry of VideoLLaMA3 (no crop, one tower) is named
 * `WxH:mM` as before the families existed, so saved sessions keep matching their cache.
 */
export function geometryKey(g: VisualGeometry): string {
    const crop = g.crop ? `+${g.crop.left},${g.crop.top},${g.crop.width}x${g.crop.height}` : "";
    return `${g.resize.width}x${g.resize.height}${crop}:m${g.merge}${g.tower ? `:${g.tower}` : ""}`;
}

/** A token id stored in GGUF metadata (llama.cpp renders it as a decimal string), or undefined when absent or not one. */
export function tokenIdKey(metadata: Readonly<Record<string, string>>, key: string): number | undefined {
    const v = metadata[key];
    if (v === undefined || !/^\d+$/.test(v)) return undefined;
    return Number(v);
}
