/**
 * The model families vidllama runs, and the one that a projector belongs to.
 *
 * @internal
 * @module
 */
import type { FamilyInfo, ModelFamily } from "./types.js";
import { videoLlava } from "./video-llava.js";
import { videollama3 } from "./videollama3.js";

export type { FamilyInfo, ModelFamily, PruneSettings, VisualGeometry, VisualKind } from "./types.js";
export { geometryItem, geometryKey } from "./types.js";

/** Every family, for what is decided without a projector. */
const FAMILIES: readonly ModelFamily[] = [videollama3, videoLlava];

/**
 * Token ids a text model loaded without its projector must not sample either: the placeholders (and padding rows)
 * of the family its own metadata names; none for a model of no family.
 */
export function textModelBannedTokens(metadata: Readonly<Record<string, string>>, vocabSize: number): number[] {
    for (const family of FAMILIES) {
        const ids = family.textPlaceholderIds(metadata);
        if (ids) return family.bannedTokens(ids, vocabSize);
    }
    return [];
}

/** The family of a loaded projector (its `clip.projector_type`). */
export function familyOf(info: FamilyInfo): ModelFamily {
    return info.family === "video_llava" ? videoLlava : videollama3;
}
