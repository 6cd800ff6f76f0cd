/**
 * Model references: `hf:<owner>/<repo>[@<revision>][:<type>]`, accepted wherever a model path is. The type is the
 * text model's quantization (for a checkpoint: what it is converted to; for a GGUF repository: which file is picked).
 *
 * @module
 */
import { InvalidOptionError } from "../errors.js";

/** The model the CLI uses when no `-m` is given. */
export const DEFAULT_MODEL_REFERENCE = "hf:DAMO-NLP-SG/VideoLLaMA3-2B";

/** A parsed `hf:` reference. */
export interface HubReference {
    /** `owner/name`. */
    repo: string;
    /** Branch, tag or commit; `main` when not given. */
    revision: string;
    /** The text model's type (`q8_0`, `q4_k_m`, `Q4_K_M`, ...), when given. */
    type: string | undefined;
}

const PREFIX = "hf:";
// Hub rules: owner and name are letters, digits, `-`, `_`, `.`; a revision is a git ref (may hold `/`, never `:`).
const PATTERN = /^hf:([A-Za-z0-9][A-Za-z0-9._-]{0,95})\/([A-Za-z0-9][A-Za-z0-9._-]{0,95})(?:@([^:@\s]+))?(?::([A-Za-z0-9][A-Za-z0-9_.-]{0,31}))?$/;

/** True when `value` is meant as a hub reference (starts with `hf:`), valid or not. */
export function isHubReference(value: string): boolean {
    return value.startsWith(PREFIX);
}

/**
 * Parses a reference.
 * @param option the option name for the error (`model`, `-m`)
 * @throws {InvalidOptionError} naming `option` for a malformed reference
 */
export function parseHubReference(value: string, option = "model"): HubReference {
    const m = PATTERN.exec(value);
    if (!m || m[2]!.endsWith(".git") || m[3]?.includes("..")) {
        throw new InvalidOptionError(option, "a reference hf:<owner>/<repo>[@<revision>][:<type>]", value);
    }
    return { repo: `${m[1]}/${m[2]}`, revision: m[3] ?? "main", type: m[4] };
}

/** The canonical text of a reference (revision always written). */
export function formatHubReference(ref: HubReference): string {
    return `${PREFIX}${ref.repo}@${ref.revision}${ref.type ? `:${ref.type}` : ""}`;
}
