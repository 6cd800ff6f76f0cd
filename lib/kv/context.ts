/**
 * Creating the libllama context (and so the KV cache) of a Session or a Stream from their common options: one place
 * for their validation, the memory check and the error they give.
 *
 * @internal
 * @module
 */
import { basename } from "node:path";
import { ChatTemplate } from "../chat/template.js";
import { defaultThreadCount } from "../cpu.js";
import { ChatTemplateError, VidllamaError } from "../errors.js";
import type { Model } from "../Model.js";
import { fromNativeError, isNativeError } from "../native/errors.js";
import type { NativeContext } from "../native/types.js";
import { optionalBoolean, optionalEnum, optionalInteger, optionalString } from "../validate.js";

/** Options every owner of a KV cache takes (Session, Stream). */
export interface ContextOptions {
    /** Context window in tokens. Defaults to the model's default (see {@link LoadModelOptions.contextSize}). */
    contextSize?: number;
    /** Tokens evaluated per llama_decode call while processing a prompt (1..contextSize). Defaults to 512. */
    batchSize?: number;
    /** CPU threads. Defaults to the model's setting, else the physical cores this process may use (lib/cpu.ts). */
    threads?: number;
    /** Flash attention: `"auto"` (default) lets llama.cpp decide per backend. */
    flashAttention?: "auto" | boolean;
    /** A Jinja chat template to use instead of the model's own. */
    chatTemplate?: string;
    /**
     * Element type of the KV cache: `"f16"` (default, half the memory) or `"f32"` (exact: for comparisons against
     * a fresh evaluation, e.g. after evicting and re-packing a stream).
     */
    cacheType?: "f16" | "f32";
}

export const CONTEXT_OPTIONS = ["contextSize", "batchSize", "threads", "flashAttention", "chatTemplate", "cacheType"] as const;

/** Validates the options, checks memory, and creates the context; also resolves the chat template. */
export async function createContext(model: Model, options: ContextOptions, defaults: { contextSize?: number } = {}): Promise<{ context: NativeContext; template: ChatTemplate }> {
    const contextSize = optionalInteger("contextSize", options.contextSize, 16, 2 ** 31 - 1, defaults.contextSize ?? model.defaults.contextSize);
    const batchSize = optionalInteger("batchSize", options.batchSize, 1, contextSize, Math.min(512, contextSize));
    const threads = optionalInteger("threads", options.threads, 1, 1024, model.defaults.threads) ?? defaultThreadCount();
    const flash = options.flashAttention === undefined || options.flashAttention === "auto" ? -1
        : optionalBoolean("flashAttention", options.flashAttention, false) ? 1 : 0;
    const templateSource = optionalString("chatTemplate", options.chatTemplate);
    const cacheType = optionalEnum("cacheType", options.cacheType, ["f16", "f32"] as const) ?? "f16";
    const template = templateSource !== undefined ? new ChatTemplate(templateSource) : model.chatTemplate();
    if (!template) {
        throw new ChatTemplateError(`${basename(model.path)} has no chat template (tokenizer.chat_template); pass one with the chatTemplate option`);
    }
    model.checkContextMemory(contextSize, batchSize);
    try {
        const context = await model.nativeModel.createContext({
            contextSize,
            batchSize,
            microBatchSize: batchSize,
            threads,
            batchThreads: threads,
            flashAttention: flash as -1 | 0 | 1,
            f32Cache: cacheType === "f32",
        });
        return { context, template };
    } catch (err) {
        if (isNativeError(err, "VL_CONTEXT_CREATE")) {
            throw new VidllamaError("ERR_CONTEXT_CREATE", `Could not create a context of ${contextSize} tokens: ${err.message}`, { cause: err });
        }
        throw fromNativeError(err, { object: "Model" });
    }
}
