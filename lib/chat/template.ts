/**
 * Chat templates: the model's own Jinja template (GGUF `tokenizer.chat_template`), rendered by a real Jinja engine
 * (@huggingface/jinja, with transformers' `trim_blocks`/`lstrip_blocks`), and turned into token ids so that
 *
 * - text the template itself writes (`<|im_start|>`, `<image>`, ...) becomes the special tokens it names, while
 * - text the user wrote is never parsed for special tokens: a user who types `<|im_end|>` does not end the turn;
 * - text and user content are tokenized together between special tokens, as Hugging Face tokenizers do, so the
 *   result equals HF's tokenization of the rendered prompt for ordinary input;
 * - assistant answers this library generated keep their exact token ids, so the KV cache of earlier turns is reused.
 *
 * @internal
 * @module
 */
import { Environment, Interpreter, parse, tokenize } from "@huggingface/jinja";
import { ChatTemplateError } from "../errors.js";

/** One piece of a message's content as the template sees it. */
export type TemplateContentItem =
    | { type: "text"; text: string }
    | { type: "image"; timestamp?: number }
    | { type: "video"; num_frames: number; timestamps?: number[] };

/** A message as passed to the template renderer. */
export interface TemplateMessage {
    role: string;
    content: string | TemplateContentItem[];
    /** Exact token ids of `content` (a string) when this library generated it. */
    contentTokens?: readonly number[];
}

/** The rendered prompt, split by where each piece of text came from. */
export type PromptPiece =
    | { kind: "template"; text: string } // written by the template: special tokens are parsed
    | { kind: "user"; text: string } // message text: never parsed for special tokens
    | { kind: "tokens"; tokens: readonly number[] }; // pre-tokenized message content

/** Tokenizer functions the prompt assembly needs (implemented by Model). */
export interface PromptTokenizer {
    tokenizeText(text: string): number[];
    /** Special token strings the template may write, with their ids. */
    specialTokens(): ReadonlyMap<string, number>;
    /** Tokens a whole conversation starts with before what the template writes (the BOS token, for vocabularies that add it). */
    prefix?: readonly number[];
}

// Sentinels around message content while rendering; they cannot come from user text (checked) and survive string
// filters such as trim because they are not whitespace.
const OPEN = "\u0000\u0002vl";
const CLOSE = "\u0003\u0000";

export class ChatTemplate {
    readonly source: string;
    private readonly program: ReturnType<typeof parse>;

    constructor(source: string) {
        this.source = source;
        try {
            // transformers renders chat templates with trim_blocks and lstrip_blocks
            this.program = parse(tokenize(source, { lstrip_blocks: true, trim_blocks: true }));
        } catch (err) {
            throw new ChatTemplateError(`The chat template could not be parsed: ${(err as Error).message}`, { cause: err });
        }
    }

    /** Renders messages to plain text (what `apply_chat_template(tokenize=False)` returns in transformers). */
    renderText(messages: readonly TemplateMessage[], options: RenderOptions = {}): string {
        return this.renderRaw(messages.map((m) => ({ role: m.role, content: m.content })), options);
    }

    /** Renders messages to pieces that remember whether text came from the template or from a message. */
    renderPieces(messages: readonly TemplateMessage[], options: RenderOptions = {}): PromptPiece[] {
        const contents: TemplateMessage[] = [];
        const wrapped = messages.map((message) => {
            if (typeof message.content === "string") {
                if (message.content.includes(OPEN) || message.content.includes(CLOSE)) {
                    throw new ChatTemplateError("Message text contains reserved control characters (\\u0000 sequences)");
                }
                const index = contents.push(message) - 1;
                return { role: message.role, content: `${OPEN}${index}${CLOSE}${message.content}${OPEN}/${index}${CLOSE}` };
            }
            return {
                role: message.role,
                content: message.content.map((item) => {
                    if (item.type !== "text") return item;
                    const index = contents.push({ role: message.role, content: item.text }) - 1;
                    return { type: "text", text: `${OPEN}${index}${CLOSE}${item.text}${OPEN}/${index}${CLOSE}` };
                }),
            };
        });
        const rendered = this.renderRaw(wrapped, options);
        const pieces: PromptPiece[] = [];
        let position = 0;
        const seen = new Set<number>();
        while (position < rendered.length) {
            const open = rendered.indexOf(OPEN, position);
            if (open < 0) {
                pieces.push({ kind: "template", text: rendered.slice(position) });
                break;
            }
            if (open > position) pieces.push({ kind: "template", text: rendered.slice(position, open) });
            const closeOfOpen = rendered.indexOf(CLOSE, open);
            const index = Number(rendered.slice(open + OPEN.length, closeOfOpen));
            const endMarker = `${OPEN}/${index}${CLOSE}`;
            const end = rendered.indexOf(endMarker, closeOfOpen);
            if (closeOfOpen < 0 || !Number.isInteger(index) || end < 0 || !contents[index]) {
                throw new ChatTemplateError("The chat template altered message text in a way vidllama cannot follow");
            }
            const text = rendered.slice(closeOfOpen + CLOSE.length, end);
            const message = contents[index]!;
            seen.add(index);
            if (message.contentTokens && text === message.content) pieces.push({ kind: "tokens", tokens: message.contentTokens });
            else if (text.length > 0) pieces.push({ kind: "user", text });
            position = end + endMarker.length;
        }
        return pieces;
    }

    private renderRaw(messages: unknown[], options: RenderOptions): string {
        try {
            const env = new Environment();
            setupGlobals(env);
            const variables: Record<string, unknown> = {
                messages,
                add_generation_prompt: options.addGenerationPrompt ?? true,
                bos_token: options.bosToken ?? "",
                eos_token: options.eosToken ?? "",
                ...options.variables,
            };
            for (const [key, value] of Object.entries(variables)) env.set(key, value);
            return ((new TemplateInterpreter(env) as unknown as Interpreter).run(this.program) as { value: string }).value;
        } catch (err) {
            throw new ChatTemplateError(`Rendering the chat template failed: ${(err as Error).message}`, { cause: err });
        }
    }
}

/** The globals transformers' Jinja environment provides (what @huggingface/jinja's Template sets up). */
function setupGlobals(env: Environment): void {
    for (const [k, v] of [["false", false], ["true", true], ["none", null], ["False", false], ["True", true], ["None", null]] as const) env.set(k, v);
    env.set("raise_exception", (message: unknown) => {
        throw new Error(String(message));
    });
    env.set("range", (start: number, stop?: number, step = 1) => {
        if (stop === undefined) [start, stop] = [0, start];
        if (step === 0) throw new Error("range() step must not be zero");
        const out: number[] = [];
        for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
        return out;
    });
    env.set("strftime_now", (format: string) => strftime(new Date(), format));
}

type FilterNode = { type: string; value?: string; callee?: { type: string; value?: string }; args?: unknown[] };
type NumericValue = { type: "IntegerValue" | "FloatValue"; value: number };

/**
 * @huggingface/jinja without a `round` filter cannot render VideoLLaMA3's template (`timestamp | round(1)`); this adds
 * Jinja's `round(precision=0, method="common"|"ceil"|"floor")` with Python's semantics (half-to-even on exact ties, a
 * float result, so `1 | round(1)` prints `1.0` as in Python).
 */
class TemplateInterpreter extends Interpreter {
    constructor(env: Environment) {
        super(env);
        const self = this as unknown as {
            applyFilter(operand: unknown, filter: FilterNode, env: Environment): unknown;
            evaluateArguments(args: unknown[], env: Environment): [Array<{ value: unknown }>, Map<string, { value: unknown }>];
        };
        const applyFilter = self.applyFilter.bind(this);
        self.applyFilter = (operand, filter, environment) => {
            const name = filter.type === "Identifier" ? filter.value : filter.type === "CallExpression" ? filter.callee?.value : undefined;
            const numeric = operand as NumericValue;
            if (name !== "round" || (numeric.type !== "IntegerValue" && numeric.type !== "FloatValue")) return applyFilter(operand, filter, environment);
            const [args, kwargs] = filter.type === "CallExpression" ? self.evaluateArguments(filter.args ?? [], environment) : [[], new Map()];
            const precision = Number(args[0]?.value ?? kwargs.get("precision")?.value ?? 0);
            const method = String(args[1]?.value ?? kwargs.get("method")?.value ?? "common");
            const result = applyFilter(operand, { type: "Identifier", value: "float" }, environment) as NumericValue;
            result.value = pythonRound(numeric.value, precision, method);
            return result;
        };
    }
}

/** Jinja's round filter as Python computes it. */
export function pythonRound(value: number, precision: number, method: string): number {
    const scale = 10 ** precision;
    if (method === "ceil") return Math.ceil(value * scale) / scale;
    if (method === "floor") return Math.floor(value * scale) / scale;
    if (method !== "common") throw new Error("round method must be common, ceil or floor");
    if (!Number.isFinite(value) || Math.abs(value) >= 1e21 || precision < 0 || precision > 20) return Math.round(value * scale) / scale;
    // toFixed rounds by the exact binary value, as Python does, except on exact ties, where Python rounds half to even
    // and toFixed away from zero. The exact decimal expansion (at most ~100 digits for the values met here) tells ties.
    const exact = Math.abs(value).toFixed(100);
    const point = exact.indexOf(".");
    const rest = exact.slice(point + 1 + precision);
    if (/^50*$/.test(rest)) {
        const truncated = Number(exact.slice(0, point + 1 + precision));
        const lastDigit = Number(exact[point + precision] === "." ? exact[point - 1] : exact[point + precision]);
        const magnitude = lastDigit % 2 === 0 ? truncated : truncated + 1 / scale;
        return Math.sign(value) * Number(magnitude.toFixed(precision));
    }
    return Number(value.toFixed(precision));
}

function strftime(date: Date, format: string): string {
    const pad = (n: number, w = 2) => String(n).padStart(w, "0");
    const months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    const days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    return format.replace(/%([a-zA-Z%])/g, (_, c: string) => {
        switch (c) {
            case "Y": return String(date.getFullYear());
            case "m": return pad(date.getMonth() + 1);
            case "d": return pad(date.getDate());
            case "H": return pad(date.getHours());
            case "M": return pad(date.getMinutes());
            case "S": return pad(date.getSeconds());
            case "B": return months[date.getMonth()]!;
            case "b": return months[date.getMonth()]!.slice(0, 3);
            case "A": return days[date.getDay()]!;
            case "a": return days[date.getDay()]!.slice(0, 3);
            case "%": return "%";
            default: return `%${c}`;
        }
    });
}

export interface RenderOptions {
    addGenerationPrompt?: boolean;
    bosToken?: string;
    eosToken?: string;
    /** Extra template variables (e.g. `image_token`, `add_system_prompt`). */
    variables?: Record<string, unknown>;
}

/**
 * Turns rendered pieces into token ids: template text is split at special-token strings (each becomes its id),
 * and the text between special tokens — template text and user text alike — is tokenized in one go without
 * special-token parsing. The tokenizer's `prefix` (BOS) comes first, unless the template wrote it.
 */
export function tokenizePieces(pieces: readonly PromptPiece[], tokenizer: PromptTokenizer): number[] {
    const specials = tokenizer.specialTokens();
    const splitter = specialSplitter(specials);
    const out: number[] = [];
    let run = "";
    const flush = () => {
        if (run.length > 0) out.push(...tokenizer.tokenizeText(run));
        run = "";
    };
    for (const piece of pieces) {
        if (piece.kind === "user") run += piece.text;
        else if (piece.kind === "tokens") {
            flush();
            out.push(...piece.tokens);
        } else {
            let last = 0;
            for (const match of piece.text.matchAll(splitter)) {
                run += piece.text.slice(last, match.index);
                flush();
                out.push(specials.get(match[0])!);
                last = match.index! + match[0].length;
            }
            run += piece.text.slice(last);
        }
    }
    flush();
    // The prefix (BOS) unless the template wrote it itself.
    const prefix = tokenizer.prefix ?? [];
    if (prefix.length > 0 && !prefix.every((t, k) => out[k] === t)) out.unshift(...prefix);
    return out;
}

const splitterCache = new WeakMap<ReadonlyMap<string, number>, RegExp>();

function specialSplitter(specials: ReadonlyMap<string, number>): RegExp {
    let re = splitterCache.get(specials);
    if (!re) {
        const alternatives = [...specials.keys()]
            .filter((s) => s.length > 0)
            .sort((a, b) => b.length - a.length)
            .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
        re = alternatives.length > 0 ? new RegExp(alternatives.join("|"), "g") : /(?!)/g;
        splitterCache.set(specials, re);
    }
    return re;
}
