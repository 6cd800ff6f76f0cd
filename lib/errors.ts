/**
 * Typed errors. Every failure vidllama reports is a {@link VidllamaError} subclass with a stable `code` and the
 * offending value, so callers can branch on `instanceof` or `code` instead of matching message text.
 *
 * An aborted call rejects with the `reason` of the caller's AbortSignal (a `DOMException` named `"AbortError"` by
 * default), except `Session.prompt`/`Session.stream`, which resolve with what was produced and `stopReason: "abort"`.
 *
 * @module
 */

/** Base class of every error vidllama throws. */
export class VidllamaError extends Error {
    /** Stable machine-readable code, e.g. `"ERR_MODEL_LOAD"`. */
    readonly code: string;

    constructor(code: string, message: string, options?: { cause?: unknown }) {
        super(message, options);
        this.code = code;
        this.name = new.target.name;
    }
}

/** An option or argument has the wrong type, is out of range, or is unknown. */
export class InvalidOptionError extends VidllamaError {
    /** Path of the option, e.g. `"temperature"` or `"image.width"`. */
    readonly option: string;
    /** What was expected, in words. */
    readonly expected: string;
    /** The value that was received. */
    readonly received: unknown;

    constructor(option: string, expected: string, received: unknown, hint?: string) {
        super(
            "ERR_INVALID_OPTION",
            `Expected ${expected} for ${option} but received ${describeValue(received)}${hint ? ` (${hint})` : ""}`,
        );
        this.option = option;
        this.expected = expected;
        this.received = received;
    }
}

/** Why a model file could not be loaded. */
export type ModelLoadFailure =
    | "NOT_FOUND" // no such file
    | "NOT_A_FILE" // a directory or something else
    | "NOT_GGUF" // the file does not start with the GGUF magic
    | "TRUNCATED" // the file is shorter than its header says
    | "CORRUPT" // the header is malformed
    | "UNSUPPORTED_ARCHITECTURE" // libllama / vidllama cannot run this architecture
    | "WRONG_KIND" // e.g. a vision projector passed as the text model
    | "LOAD_FAILED"; // libllama refused the file for another reason (see message)

/** A model or projector file could not be loaded. */
export class ModelLoadError extends VidllamaError {
    /** The file that was being loaded. */
    readonly path: string;
    /** Machine-readable reason. */
    readonly reason: ModelLoadFailure;

    constructor(path: string, reason: ModelLoadFailure, message: string, options?: { cause?: unknown }) {
        super("ERR_MODEL_LOAD", `Cannot load ${path}: ${message}`, options);
        this.path = path;
        this.reason = reason;
    }
}

/** A method was called on an object after `dispose()` (or after its parent model was disposed). */
export class DisposedError extends VidllamaError {
    /** What was disposed, e.g. `"Model"` or `"Session"`. */
    readonly object: string;

    constructor(object: string) {
        super("ERR_DISPOSED", `This ${object} has been disposed`);
        this.object = object;
    }
}

/** The requested work needs more memory than the machine has available. */
export class InsufficientMemoryError extends VidllamaError {
    /** Estimated bytes needed. */
    readonly requiredBytes: number;
    /** Bytes available when the estimate was made. */
    readonly availableBytes: number;

    constructor(what: string, requiredBytes: number, availableBytes: number) {
        super(
            "ERR_INSUFFICIENT_MEMORY",
            `${what} needs about ${formatBytes(requiredBytes)} but only ${formatBytes(availableBytes)} of memory is available`,
        );
        this.requiredBytes = requiredBytes;
        this.availableBytes = availableBytes;
    }
}

/** The conversation no longer fits in the session's context window. */
export class ContextFullError extends VidllamaError {
    /** The session's context size in tokens. */
    readonly contextSize: number;
    /** Tokens the request needed. */
    readonly requiredTokens: number;

    constructor(contextSize: number, requiredTokens: number) {
        super(
            "ERR_CONTEXT_FULL",
            `The conversation needs ${requiredTokens} tokens but the context holds ${contextSize}; ` +
                `reset the session, shorten the history or create the session with a larger contextSize`,
        );
        this.contextSize = contextSize;
        this.requiredTokens = requiredTokens;
    }
}

/** The model has no usable chat template, or rendering it failed. */
export class ChatTemplateError extends VidllamaError {
    constructor(message: string, options?: { cause?: unknown }) {
        super("ERR_CHAT_TEMPLATE", message, options);
    }
}

/** A GGUF file (model, projector or one being written) is malformed. */
export class GgufFormatError extends VidllamaError {
    /** The file. */
    readonly path: string;
    /** Byte offset where the problem was found, when known. */
    readonly offset: number | undefined;
    /** Machine-readable reason. */
    readonly reason: "NOT_GGUF" | "TRUNCATED" | "CORRUPT" | "UNSUPPORTED_VERSION";

    constructor(path: string, reason: GgufFormatError["reason"], message: string, offset?: number) {
        super("ERR_GGUF_FORMAT", `${path}: ${message}${offset !== undefined ? ` (at byte ${offset})` : ""}`);
        this.path = path;
        this.reason = reason;
        this.offset = offset;
    }
}

/** A saved session state could not be restored. */
export class StateFileError extends VidllamaError {
    /** The state file. */
    readonly path: string;

    constructor(path: string, message: string, options?: { cause?: unknown }) {
        super("ERR_STATE_FILE", `${path}: ${message}`, options);
        this.path = path;
    }
}

/** An image or video could not be decoded. */
export class MediaDecodeError extends VidllamaError {
    /** A description of the input: a path, `"<Buffer 1234 bytes>"`, a URL. */
    readonly source: string;

    constructor(source: string, message: string, options?: { cause?: unknown }) {
        super("ERR_MEDIA_DECODE", `${source}: ${message}`, options);
        this.source = source;
    }
}

/**
 * A medium of the conversation is needed again (the KV cache must be rebuilt from it: the history was edited before
 * it, or the resize budget changed) but its pixels cannot be had: a closed `Video` made from bytes, a stream or
 * frames, or a file that changed since it was evaluated. Thrown before any work is done.
 */
export class MediaUnavailableError extends VidllamaError {
    /** `"image"` or `"video"`. */
    readonly kind: "image" | "video";
    /** A description of the medium: a path, `"<Buffer 1234 bytes>"`, a URL. */
    readonly source: string;
    /** Index of the message that holds it in `session.history` (-1: the new prompt). */
    readonly messageIndex: number;

    constructor(kind: "image" | "video", source: string, messageIndex: number, reason: string, options?: { cause?: unknown }) {
        const where = messageIndex >= 0 ? `history[${messageIndex}]` : "the prompt";
        super("ERR_MEDIA_UNAVAILABLE", `The ${kind} ${source} of ${where} is needed to rebuild the KV cache, but ${reason}`, options);
        this.kind = kind;
        this.source = source;
        this.messageIndex = messageIndex;
    }
}

/** No ffmpeg executable could be found. */
export class FfmpegNotFoundError extends VidllamaError {
    /** Every place that was tried, in order, with why it was rejected. */
    readonly searched: readonly string[];

    constructor(searched: readonly string[]) {
        super(
            "ERR_FFMPEG_NOT_FOUND",
            `ffmpeg was not found. Looked in:\n${searched.map((s) => `  - ${s}`).join("\n")}\n` +
                `Install ffmpeg (e.g. \`apt-get install ffmpeg\`, \`brew install ffmpeg\`), or pass ffmpegPath, ` +
                `or set VIDLLAMA_FFMPEG to its path.`,
        );
        this.searched = searched;
    }
}

/** A checkpoint could not be converted. */
export class ConversionError extends VidllamaError {
    /** The input file concerned, when there is one. */
    readonly file: string | undefined;
    /** The tensor concerned, when there is one. */
    readonly tensor: string | undefined;

    constructor(message: string, details: { file?: string; tensor?: string; cause?: unknown } = {}) {
        const where = [details.file, details.tensor && `tensor ${details.tensor}`].filter(Boolean).join(", ");
        super("ERR_CONVERSION", where ? `${where}: ${message}` : message, { cause: details.cause });
        this.file = details.file;
        this.tensor = details.tensor;
    }
}

/** What went wrong with the Hugging Face Hub or the model cache ({@link HubError.code}). */
export type HubErrorCode =
    | "ERR_HUB_UNAUTHORIZED"
    | "ERR_HUB_GATED"
    | "ERR_HUB_FORBIDDEN"
    | "ERR_HUB_NOT_FOUND"
    | "ERR_HUB_RATE_LIMITED"
    | "ERR_HUB_HTTP"
    | "ERR_HUB_NETWORK"
    | "ERR_HUB_HASH_MISMATCH"
    | "ERR_HUB_OFFLINE"
    | "ERR_HUB_NO_FILES"
    | "ERR_HUB_AMBIGUOUS"
    | "ERR_DISK_SPACE";

/**
 * A model could not be pulled from the Hugging Face Hub or found in the cache: authentication, a gated or missing
 * repository, revision or file, rate limits, the network, a corrupt download, offline mode without a cached copy, no
 * usable files, an ambiguous choice of files, or too little disk space.
 */
export class HubError extends VidllamaError {
    declare readonly code: HubErrorCode;
    /** The reference concerned (`hf:owner/name@revision:type`). */
    readonly reference: string;
    /** The HTTP status, for errors answered by the server. */
    readonly status: number | undefined;
    /** The URL of the failed request, when there was one. */
    readonly url: string | undefined;
    /** For `ERR_HUB_AMBIGUOUS` and `ERR_HUB_NO_FILES`: the files there were to choose from. */
    readonly choices: readonly string[];

    constructor(
        code: HubErrorCode,
        reference: string,
        message: string,
        details: { status?: number; url?: string; choices?: readonly string[]; cause?: unknown } = {},
    ) {
        super(code, `${reference}: ${message}`, { cause: details.cause });
        this.reference = reference;
        this.status = details.status;
        this.url = details.url;
        this.choices = details.choices ?? [];
    }
}

/** The native addon could not be loaded on this machine. */
export class NativeLoadError extends VidllamaError {
    constructor(message: string, options?: { cause?: unknown }) {
        super("ERR_NATIVE_LOAD", message, options);
    }
}

/** @internal */
export function describeValue(value: unknown): string {
    if (value === null) return "null";
    if (value === undefined) return "undefined";
    if (typeof value === "string") return `"${value.length > 80 ? value.slice(0, 77) + "..." : value}" of type string`;
    if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") {
        return `${String(value)} of type ${typeof value}`;
    }
    if (typeof value === "function") return "a function";
    if (Buffer.isBuffer(value)) return `a Buffer of ${value.length} bytes`;
    if (Array.isArray(value)) return `an array of length ${value.length}`;
    const name = (value as object).constructor?.name;
    return name && name !== "Object" ? `an instance of ${name}` : "an object";
}

/** @internal */
export function formatBytes(bytes: number): string {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
        value /= 1024;
        unit++;
    }
    return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
