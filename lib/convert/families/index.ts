/**
 * The converter families and the choice among them from config.json.
 *
 * @internal
 * @module
 */
import { ConversionError } from "../../errors.js";
import type { ConverterFamily } from "../family.js";
import { videoLlavaFamily } from "./video-llava.js";
import { videollama3Family } from "./videollama3.js";

/** Every family `vidllama convert` understands. */
export const CONVERTER_FAMILIES: readonly ConverterFamily[] = [videollama3Family, videoLlavaFamily];

/** The family of a parsed config.json; ConversionError (naming `configPath`) for an unknown architecture. */
export function familyOfConfig(config: Record<string, unknown>, configPath: string): ConverterFamily {
    const family = CONVERTER_FAMILIES.find((f) => f.accepts(config));
    if (family) return family;
    const hint = CONVERTER_FAMILIES.map((f) => f.hint?.(config)).find((h) => h !== undefined);
    const expected = CONVERTER_FAMILIES.map(
        (f) => `model_type "${f.modelTypes.join('" or "')}" with architectures ["${f.architectures.join('", "')}"] (${f.label})`,
    ).join(", or ");
    throw new ConversionError(
        `unknown architecture: model_type ${JSON.stringify(config.model_type)}, architectures ${JSON.stringify(config.architectures ?? null)}; ` +
            `expected ${expected}${hint ? ` (${hint})` : ""}`,
        { file: configPath },
    );
}
