/**
 * Translation of native errors (a `code` of VL_*) into vidllama's typed errors, with the context only the caller
 * knows (which file, which option).
 *
 * @internal
 * @module
 */
import { ContextFullError, DisposedError, InvalidOptionError, VidllamaError } from "../errors.js";
import type { NativeError } from "./types.js";

export function isNativeError(err: unknown, code?: NativeError["code"]): err is NativeError {
    return err instanceof Error && typeof (err as NativeError).code === "string" && (err as NativeError).code.startsWith("VL_") &&
        (code === undefined || (err as NativeError).code === code);
}

/** Maps a native error to a typed one; `context` names the object for DisposedError and similar. */
export function fromNativeError(err: unknown, context: { object?: string; contextSize?: number } = {}): unknown {
    if (!isNativeError(err)) return err;
    switch (err.code) {
        case "VL_DISPOSED":
            return new DisposedError(context.object ?? "object");
        case "VL_CONTEXT_FULL":
            return new ContextFullError(context.contextSize ?? -1, -1);
        case "VL_INVALID_ARGUMENT":
            return new InvalidOptionError("argument", "a valid value", undefined, err.message);
        default:
            return new VidllamaError(err.code.replace(/^VL_/, "ERR_NATIVE_"), err.message, { cause: err });
    }
}
