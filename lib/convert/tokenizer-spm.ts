/**
 * A LLaMA SentencePiece tokenizer (`tokenizer.model` + `added_tokens.json` + `tokenizer_config.json`) turned into
 * llama.cpp's GGUF vocabulary (`tokenizer.ggml.model = "llama"`), the way llama.cpp's `convert_hf_to_gguf.py` does it
 * (`TextModel._create_vocab_sentencepiece` and `gguf.SpecialVocab`):
 *
 * - `vocab_size` entries; id i < the number of pieces is piece i of `tokenizer.model` with its score and type;
 * - `added_tokens.json` entries (`<image>` 32000, ...) get score −1000 and type 3 (control); entries of
 *   tokenizer_config.json `added_tokens_decoder` then override text and type — control when `special` (or when the
 *   token looks special, `<pad>`, `<|…|>`), else 4 (user-defined, `▁` written as a space) — with score −1000. This
 *   includes ids 0–2 (`<unk>`, `<s>`, `</s>`) when the decoder lists them, as llama.cpp does. (llama.cpp gives an
 *   `added_tokens.json` entry that the decoder does not list type 4; here it is control, so user text can never
 *   produce a placeholder token.)
 * - every other id becomes `[PAD<i>]`, score −10000, type 5 (unused);
 * - bos/eos/unk/pad: the tokenizer_config.json (or special_tokens_map.json) token strings looked up in this
 *   vocabulary, else config.json's `*_token_id`, else SentencePiece's own `<s>`, `</s>` and unknown piece;
 * - `add_bos_token` (default true) / `add_eos_token` (default false) from tokenizer_config.json, as LlamaTokenizer;
 * - `add_space_prefix`: tokenizer_config.json `add_prefix_space` when set (llama.cpp's LlamaModel does the same), else
 *   the SentencePiece normalizer's `add_dummy_prefix`;
 * - the chat template: `chat_template.json`, `chat_template.jinja`, tokenizer_config.json `chat_template`, else the
 *   family's default.
 *
 * @internal
 * @module
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { ConversionError } from "../errors.js";
import { readJsonFile } from "./hf-config.js";
import { readSentencePieceModel, PieceType } from "./sentencepiece.js";
import { looksSpecial, TokenType } from "./tokenizer.js";

/** Scores llama.cpp's converter gives tokens that are not SentencePiece pieces. */
const PAD_SCORE = -10000;
const ADDED_SCORE = -1000;

/** The vocabulary and special tokens as they go into the text GGUF. */
export interface SentencePieceVocabulary {
    tokens: string[];
    scores: Float32Array;
    tokenTypes: Int32Array;
    bosTokenId: number;
    eosTokenId: number;
    unknownTokenId: number | undefined;
    padTokenId: number | undefined;
    addBosToken: boolean;
    addEosToken: boolean;
    addSpacePrefix: boolean;
    chatTemplate: string;
    /** Where the chat template came from (a file name, `tokenizer_config.json`, or `default`). */
    chatTemplateSource: string;
    /** Notes for the conversion summary. */
    warnings: string[];
}

/** What the vocabulary reader needs to know from config.json. */
export interface SentencePieceVocabularyOptions {
    /** `vocab_size` of the language model: the number of GGUF tokens. */
    vocabSize: number;
    /** Token ids config.json states (top level, then text_config). */
    configTokenIds: { bos?: number; eos?: number; unk?: number; pad?: number };
    /** The template written when the checkpoint carries none. */
    defaultChatTemplate: string;
}

function tokenContent(entry: unknown): string | undefined {
    if (typeof entry === "string") return entry;
    if (typeof entry === "object" && entry !== null && typeof (entry as { content?: unknown }).content === "string") {
        return (entry as { content: string }).content;
    }
    return undefined;
}

async function fileExists(path: string): Promise<boolean> {
    try {
        return (await stat(path)).isFile();
    } catch {
        return false;
    }
}

/** Builds the GGUF vocabulary of the SentencePiece checkpoint in `dir`. */
export async function readSentencePieceVocabulary(dir: string, options: SentencePieceVocabularyOptions): Promise<SentencePieceVocabulary> {
    const warnings: string[] = [];
    const { vocabSize } = options;
    const modelPath = join(dir, "tokenizer.model");
    const spm = await readSentencePieceModel(modelPath);
    if (spm.modelType !== undefined && spm.modelType !== 2) {
        const names: Record<number, string> = { 1: "unigram", 3: "word", 4: "char" };
        throw new ConversionError(
            `SentencePiece model type ${names[spm.modelType] ?? spm.modelType} is not supported (LLaMA's tokenizer is BPE)`,
            { file: modelPath },
        );
    }
    if (spm.pieces.length > vocabSize) {
        throw new ConversionError(`the tokenizer has ${spm.pieces.length} pieces but text_config.vocab_size is ${vocabSize}`, { file: modelPath });
    }

    const tokens: string[] = new Array(vocabSize);
    const scores = new Float32Array(vocabSize);
    const tokenTypes = new Int32Array(vocabSize);
    for (let i = 0; i < vocabSize; i++) {
        const p = spm.pieces[i];
        if (p) {
            tokens[i] = p.piece;
            scores[i] = p.score;
            tokenTypes[i] = p.type;
        } else {
            tokens[i] = `[PAD${i}]`;
            scores[i] = PAD_SCORE;
            tokenTypes[i] = TokenType.UNUSED;
        }
    }
    const addedIds = new Set<number>();
    const place = (file: string, id: number, content: string, text: string, type: number): void => {
        if (id >= vocabSize) {
            throw new ConversionError(`added token ${JSON.stringify(content)} has id ${id}, outside the vocabulary (vocab_size ${vocabSize})`, { file });
        }
        if (id < spm.pieces.length && spm.pieces[id]!.piece !== content) {
            warnings.push(`token ${id} ${JSON.stringify(spm.pieces[id]!.piece)} of tokenizer.model replaced by ${JSON.stringify(content)} from ${file}`);
        }
        tokens[id] = text;
        scores[id] = ADDED_SCORE;
        tokenTypes[id] = type;
        addedIds.add(id);
    };

    const atPath = join(dir, "added_tokens.json");
    const addedJson = await readJsonFile(atPath, false);
    for (const [content, id] of Object.entries(addedJson ?? {})) {
        if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
            throw new ConversionError(`token ${JSON.stringify(content)} has id ${JSON.stringify(id)}`, { file: atPath });
        }
        place(atPath, id, content, content, TokenType.CONTROL);
    }

    const cfgPath = join(dir, "tokenizer_config.json");
    const tcfgRaw = await readJsonFile(cfgPath, false);
    if (!tcfgRaw) warnings.push("tokenizer_config.json is missing: LlamaTokenizer defaults (add_bos_token true, add_eos_token false)");
    const tcfg = tcfgRaw ?? {};
    const decoder = tcfg.added_tokens_decoder;
    if (decoder !== undefined && decoder !== null) {
        if (typeof decoder !== "object" || Array.isArray(decoder)) {
            throw new ConversionError("added_tokens_decoder is not an object", { file: cfgPath });
        }
        for (const [key, entry] of Object.entries(decoder as Record<string, unknown>)) {
            const id = Number(key);
            const e = entry as { content?: unknown; special?: unknown };
            if (!Number.isInteger(id) || id < 0 || typeof e?.content !== "string") {
                throw new ConversionError(`malformed added_tokens_decoder entry ${key}`, { file: cfgPath });
            }
            const special = e.special === true || looksSpecial(e.content);
            const text = special ? e.content : e.content.replaceAll("\u2581", " ");
            place(cfgPath, id, e.content, text, special ? TokenType.CONTROL : TokenType.USER_DEFINED);
        }
    }
    const pads = tokenTypes.reduce((n, t, i) => n + (t === TokenType.UNUSED && i >= spm.pieces.length && !addedIds.has(i) ? 1 : 0), 0);
    if (pads > 0) warnings.push(`${pads} unused token ids padded as [PAD<i>] up to vocab_size ${vocabSize}`);

    // special tokens
    const mapPath = join(dir, "special_tokens_map.json");
    const specialMap = (await readJsonFile(mapPath, false)) ?? {};
    const idOfText = new Map<string, number>();
    for (let i = vocabSize - 1; i >= 0; i--) idOfText.set(tokens[i]!, i); // the first id wins
    const resolve = (kind: "bos" | "eos" | "unk" | "pad", fallback: () => number | undefined): number | undefined => {
        for (const [source, file] of [
            [tcfg, cfgPath],
            [specialMap, mapPath],
        ] as const) {
            const content = tokenContent(source[`${kind}_token`]);
            if (content === undefined) continue;
            const id = idOfText.get(content);
            if (id === undefined) throw new ConversionError(`${kind}_token ${JSON.stringify(content)} is not in the vocabulary`, { file });
            return id;
        }
        return options.configTokenIds[kind] ?? fallback();
    };
    const piece = (text: string) => (idOfText.has(text) ? idOfText.get(text) : undefined);
    const bosTokenId = resolve("bos", () => piece("<s>"));
    const eosTokenId = resolve("eos", () => piece("</s>"));
    const unknownTokenId = resolve("unk", () => {
        const i = spm.pieces.findIndex((p) => p.type === PieceType.UNKNOWN);
        return i >= 0 ? i : undefined;
    });
    const padTokenId = resolve("pad", () => undefined);
    if (eosTokenId === undefined) {
        throw new ConversionError("no end-of-sequence token: neither tokenizer_config.json eos_token, config.json eos_token_id nor a </s> piece", {
            file: cfgPath,
        });
    }
    if (bosTokenId === undefined) {
        throw new ConversionError("no beginning-of-sequence token: neither tokenizer_config.json bos_token, config.json bos_token_id nor a <s> piece", {
            file: cfgPath,
        });
    }
    for (const [kind, id] of [
        ["bos", bosTokenId],
        ["eos", eosTokenId],
        ["unk", unknownTokenId],
        ["pad", padTokenId],
    ] as const) {
        if (id !== undefined && (id < 0 || id >= vocabSize)) {
            throw new ConversionError(`${kind} token id ${id} is outside the vocabulary (vocab_size ${vocabSize})`, { file: join(dir, "config.json") });
        }
    }
    const flag = (key: string, fallback: boolean): boolean => {
        const v = tcfg[key];
        if (v === undefined || v === null) return fallback;
        if (typeof v !== "boolean") throw new ConversionError(`${key} must be true or false, found ${JSON.stringify(v)}`, { file: cfgPath });
        return v;
    };
    const addBosToken = flag("add_bos_token", true);
    const addEosToken = flag("add_eos_token", false);
    const addSpacePrefix = flag("add_prefix_space", spm.addDummyPrefix);

    let chatTemplate: string | undefined;
    let chatTemplateSource = "default";
    const ctPath = join(dir, "chat_template.json");
    const ct = await readJsonFile(ctPath, false);
    if (ct) {
        if (typeof ct.chat_template !== "string") throw new ConversionError("chat_template is not a string", { file: ctPath });
        chatTemplate = ct.chat_template;
        chatTemplateSource = "chat_template.json";
    } else if (await fileExists(join(dir, "chat_template.jinja"))) {
        chatTemplate = await readFile(join(dir, "chat_template.jinja"), "utf8");
        chatTemplateSource = "chat_template.jinja";
    } else if (typeof tcfg.chat_template === "string") {
        chatTemplate = tcfg.chat_template;
        chatTemplateSource = "tokenizer_config.json";
    }
    if (chatTemplate === undefined) {
        chatTemplate = options.defaultChatTemplate;
        warnings.push("the checkpoint has no chat template (chat_template.json, chat_template.jinja, tokenizer_config.json): writing vidllama's default");
    }

    return {
        tokens,
        scores,
        tokenTypes,
        bosTokenId,
        eosTokenId,
        unknownTokenId,
        padTokenId,
        addBosToken,
        addEosToken,
        addSpacePrefix,
        chatTemplate,
        chatTemplateSource,
        warnings,
    };
}
