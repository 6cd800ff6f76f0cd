/**
 * The Qwen2 BPE tokenizer of a checkpoint turned into llama.cpp's GGUF vocabulary, the way llama.cpp's
 * `convert_hf_to_gguf.py` does it for Qwen2 (`TextModel.get_vocab_base` + `gguf.SpecialVocab`):
 *
 * - token i is the vocabulary entry with id i (tokenizer.json `model.vocab` plus every added token); ids without a
 *   token up to config.json `vocab_size` become `[PAD<i>]`;
 * - types: 1 normal, 3 control (added token marked special, or looking special: `<|…|>`), 4 user-defined (other
 *   added tokens, with `▁` written as a space), 5 unused (the padding);
 * - merges are `"a b"` strings (the pair form `["a", "b"]` of newer tokenizers is joined, spaces inside a part
 *   written as U+0120 like the converter does);
 * - eos/pad from tokenizer_config.json `eos_token`/`pad_token` (looked up among the added tokens), bos from
 *   config.json `bos_token_id`; eot is `<|im_end|>` (VideoLLaMA3's turn end) when present, else eos.
 *
 * @internal
 * @module
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { ConversionError } from "../errors.js";
import { readJsonFile, type TextHparams } from "./hf-config.js";

/** GGUF token types (`llama_token_type` / gguf-py `TokenType`). */
export const TokenType = Object.freeze({ NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const);

/** The vocabulary and special tokens as they go into the text GGUF. */
export interface GgufVocabulary {
    tokens: string[];
    tokenTypes: Int32Array;
    merges: string[];
    bosTokenId: number | undefined;
    eosTokenId: number;
    eotTokenId: number;
    padTokenId: number | undefined;
    addBosToken: boolean;
    chatTemplate: string | undefined;
    /** VideoLLaMA3's stream markers, when the tokenizer has them. */
    streamStartTokenId: number | undefined;
    streamEndTokenId: number | undefined;
    /** Notes for the conversion summary. */
    warnings: string[];
}

interface AddedToken {
    id: number;
    content: string;
    special: boolean;
}

/** `convert_hf_to_gguf.py` `does_token_look_special`. */
export function looksSpecial(token: string): boolean {
    return (
        ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].includes(token) ||
        (token.startsWith("<|") && token.endsWith("|>")) ||
        (token.startsWith("<｜") && token.endsWith("｜>")) ||
        (token.startsWith("<unused") && token.endsWith(">"))
    );
}

function tokenContent(entry: unknown): string | undefined {
    if (typeof entry === "string") return entry;
    if (typeof entry === "object" && entry !== null && typeof (entry as { content?: unknown }).content === "string") {
        return (entry as { content: string }).content;
    }
    return undefined;
}

/** Builds the GGUF vocabulary of the checkpoint in `dir`. */
export async function readVocabulary(dir: string, text: TextHparams): Promise<GgufVocabulary> {
    const warnings: string[] = [];
    const tokPath = join(dir, "tokenizer.json");
    const tok = (await readJsonFile(tokPath, true))!;
    const model = tok.model as Record<string, unknown> | undefined;
    if (typeof model !== "object" || model === null) throw new ConversionError("no tokenizer model", { file: tokPath });
    if (model.type !== undefined && model.type !== "BPE") {
        throw new ConversionError(`tokenizer model type ${JSON.stringify(model.type)} is not BPE`, { file: tokPath });
    }
    const vocab = model.vocab;
    if (typeof vocab !== "object" || vocab === null || Array.isArray(vocab)) {
        throw new ConversionError("model.vocab is missing or not an object", { file: tokPath });
    }
    const vocabSize = text.vocabSize;
    const byId = new Map<number, string>();
    for (const [token, id] of Object.entries(vocab as Record<string, unknown>)) {
        if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
            throw new ConversionError(`model.vocab entry ${JSON.stringify(token)} has id ${JSON.stringify(id)}`, { file: tokPath });
        }
        byId.set(id, token);
    }

    // Added tokens: tokenizer.json, then tokenizer_config.json added_tokens_decoder (authoritative in transformers),
    // then added_tokens.json for anything still missing.
    const added = new Map<number, AddedToken>();
    const addAdded = (file: string, id: number, content: string, special: boolean, override: boolean): void => {
        const known = added.get(id);
        if (known && known.content !== content) {
            throw new ConversionError(`added token ${id} is ${JSON.stringify(content)} here but ${JSON.stringify(known.content)} elsewhere`, {
                file,
            });
        }
        if (!known || override) added.set(id, { id, content, special });
    };
    const tokAdded = Array.isArray(tok.added_tokens) ? (tok.added_tokens as unknown[]) : [];
    for (const entry of tokAdded) {
        const e = entry as { id?: unknown; content?: unknown; special?: unknown };
        if (typeof e?.id !== "number" || typeof e.content !== "string") {
            throw new ConversionError(`malformed added_tokens entry ${JSON.stringify(entry)}`, { file: tokPath });
        }
        addAdded(tokPath, e.id, e.content, e.special === true, true);
    }
    const cfgPath = join(dir, "tokenizer_config.json");
    const tcfgRaw = await readJsonFile(cfgPath, false);
    if (!tcfgRaw) warnings.push("tokenizer_config.json is missing: eos/pad tokens taken from config.json");
    const tcfg = tcfgRaw ?? {};
    const decoder = tcfg.added_tokens_decoder;
    if (typeof decoder === "object" && decoder !== null) {
        for (const [key, entry] of Object.entries(decoder as Record<string, unknown>)) {
            const id = Number(key);
            const e = entry as { content?: unknown; special?: unknown };
            if (!Number.isInteger(id) || typeof e?.content !== "string") {
                throw new ConversionError(`malformed added_tokens_decoder entry ${key}`, { file: cfgPath });
            }
            addAdded(cfgPath, id, e.content, e.special === true, true);
        }
    }
    const extraSpecial = new Set(
        (Array.isArray(tcfg.additional_special_tokens) ? (tcfg.additional_special_tokens as unknown[]) : [])
            .map(tokenContent)
            .filter((s): s is string => s !== undefined),
    );
    const atPath = join(dir, "added_tokens.json");
    const addedJson = await readJsonFile(atPath, false);
    if (addedJson) {
        for (const [content, id] of Object.entries(addedJson)) {
            if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
                throw new ConversionError(`token ${JSON.stringify(content)} has id ${JSON.stringify(id)}`, { file: atPath });
            }
            addAdded(atPath, id, content, extraSpecial.has(content), false);
        }
    }
    for (const t of added.values()) byId.set(t.id, t.content);

    let maxId = -1;
    for (const id of byId.keys()) maxId = Math.max(maxId, id);
    if (maxId >= vocabSize) {
        throw new ConversionError(`the tokenizer has token id ${maxId} but config.json vocab_size is ${vocabSize}`, { file: tokPath });
    }
    const tokens: string[] = new Array(vocabSize);
    const tokenTypes = new Int32Array(vocabSize);
    let pads = 0;
    for (let i = 0; i < vocabSize; i++) {
        const token = byId.get(i);
        const a = added.get(i);
        if (token === undefined) {
            tokens[i] = `[PAD${i}]`;
            tokenTypes[i] = TokenType.UNUSED;
            pads++;
        } else if (a) {
            if (a.special || looksSpecial(a.content)) {
                tokens[i] = a.content;
                tokenTypes[i] = TokenType.CONTROL;
            } else {
                tokens[i] = a.content.replaceAll("\u2581", " ");
                tokenTypes[i] = TokenType.USER_DEFINED;
            }
        } else {
            tokens[i] = token;
            tokenTypes[i] = TokenType.NORMAL;
        }
    }
    if (pads > 0) warnings.push(`${pads} unused token ids padded as [PAD<i>] up to vocab_size ${vocabSize}`);

    const rawMerges = model.merges;
    if (!Array.isArray(rawMerges) || rawMerges.length === 0) {
        throw new ConversionError("model.merges is missing or empty (a BPE tokenizer needs merges)", { file: tokPath });
    }
    const merges = rawMerges.map((m, i) => {
        if (typeof m === "string") return m;
        if (Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string") {
            return m.map((part: string) => part.replaceAll(" ", "\u0120")).join(" ");
        }
        throw new ConversionError(`merge ${i} ${JSON.stringify(m)} is neither "a b" nor ["a", "b"]`, { file: tokPath });
    });

    const idOf = (content: string | undefined): number | undefined => {
        if (content === undefined) return undefined;
        for (const t of added.values()) if (t.content === content) return t.id;
        return undefined;
    };
    const eosFromTokenizer = idOf(tokenContent(tcfg.eos_token));
    const eosTokenId = eosFromTokenizer ?? text.eosTokenId;
    if (eosTokenId === undefined) {
        throw new ConversionError("no end-of-sequence token: neither tokenizer_config.json eos_token nor config.json eos_token_id", {
            file: cfgPath,
        });
    }
    const bosTokenId = idOf(tokenContent(tcfg.bos_token)) ?? text.bosTokenId;
    const padTokenId = idOf(tokenContent(tcfg.pad_token));
    const imEnd = idOf("<|im_end|>");
    const addBosToken = typeof tcfg.add_bos_token === "boolean" ? tcfg.add_bos_token : false;

    // The processor's template (chat_template.json) is VideoLLaMA3's; tokenizer_config.json may carry the plain
    // Qwen2.5 one, which does not know about images.
    let chatTemplate: string | undefined;
    const ctPath = join(dir, "chat_template.json");
    const ct = await readJsonFile(ctPath, false);
    if (ct) {
        if (typeof ct.chat_template !== "string") throw new ConversionError("chat_template is not a string", { file: ctPath });
        chatTemplate = ct.chat_template;
    } else {
        const jinjaPath = join(dir, "chat_template.jinja");
        if (await fileExists(jinjaPath)) chatTemplate = await readFile(jinjaPath, "utf8");
        else if (typeof tcfg.chat_template === "string") chatTemplate = tcfg.chat_template;
        else if (Array.isArray(tcfg.chat_template)) {
            const def = (tcfg.chat_template as Array<{ name?: unknown; template?: unknown }>).find((t) => t?.name === "default");
            if (typeof def?.template === "string") chatTemplate = def.template;
        }
        warnings.push(
            chatTemplate === undefined
                ? "no chat template found (chat_template.json, chat_template.jinja, tokenizer_config.json)"
                : "chat_template.json is missing: using the tokenizer's own template",
        );
    }

    return {
        tokens,
        tokenTypes,
        merges,
        bosTokenId,
        eosTokenId,
        eotTokenId: imEnd ?? eosTokenId,
        padTokenId,
        addBosToken,
        chatTemplate,
        streamStartTokenId: idOf("<|stream_start|>"),
        streamEndTokenId: idOf("<|stream_end|>"),
        warnings,
    };
}

async function fileExists(path: string): Promise<boolean> {
    try {
        return (await stat(path)).isFile();
    } catch {
        return false;
    }
}
