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

/** The family of a loaded projector (its `clip.projector_type`). */
export function familyOf(info: FamilyInfo): ModelFamily {
    return info.family === "video_llava" ? videoLlava : videollama3;
}
