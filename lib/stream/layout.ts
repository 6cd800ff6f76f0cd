/**
 * The tokens a live stream appends, as the model's own chat template renders them: the sink (system prompt), each
 * frame as its own `stream` message, each question as a user turn with the generation prompt, and what closes an
 * answer. Every piece is the difference between the template's rendering of the conversation with and without the
 * new message (with the previous message kept as context, so the template's "first message" logic sees what it
 * would in the whole conversation); a template for which that difference is not a clean suffix is refused.
 *
 * @internal
 * @module
 */
import { ChatTemplateError } from "../errors.js";
import { tokenizePieces, type ChatTemplate, type PromptPiece, type PromptTokenizer, type TemplateMessage } from "../chat/template.js";
import type { FamilyInfo, ModelFamily } from "../family/types.js";

/** The tokens of one frame message around its visual tokens. */
export interface FrameLayout {
    /** Text tokens before the visual tokens (e.g. `<|stream_start|>stream\n` [+ `Time 3.0s: `]; Video-LLaVA `USER: `). */
    before: number[];
    /** Text tokens after them (e.g. `\n<|stream_end|>`). */
    after: number[];
}

export class StreamLayout {
    readonly #template: ChatTemplate;
    readonly #tokenizer: PromptTokenizer;
    readonly #family: ModelFamily;
    /** The placeholder token of a live frame. */
    readonly #frameToken: number;
    readonly #variables: Record<string, unknown>;
    readonly #sinkMessages: TemplateMessage[];
    readonly #sink: number[];
    /** Frame layouts of the untimed frame after a frame (identical for every frame): rendered once. */
    #untimedFrame: FrameLayout | undefined;

    constructor(template: ChatTemplate, tokenizer: PromptTokenizer, family: ModelFamily, info: FamilyInfo, imageToken: string, systemPrompt: string | undefined) {
        this.#template = template;
        this.#tokenizer = tokenizer;
        this.#family = family;
        this.#frameToken = family.streamFramePlaceholder(info);
        this.#variables = { image_token: imageToken };
        this.#sinkMessages = systemPrompt !== undefined ? [{ role: "system", content: systemPrompt }] : [];
        if (this.#sinkMessages.length > 0) {
            this.#sink = this.#tokens(this.#sinkMessages, false);
        } else {
            // What the template writes before any message whatever it is (a default system prompt, if it has one):
            // the common beginning of a conversation that starts with a frame and one that starts with a question.
            const a = this.#tokens([family.streamFrameMessage(undefined)], false);
            const b = this.#tokens([{ role: "user", content: "?" }], false);
            let n = 0;
            while (n < a.length && n < b.length && a[n] === b[n]) n++;
            this.#sink = a.slice(0, n);
        }
    }

    /** Tokens the stream starts with (kept when frames are evicted). */
    get sink(): readonly number[] {
        return this.#sink;
    }

    /** The messages of the sink, for rendering the whole equivalent conversation. */
    get sinkMessages(): readonly TemplateMessage[] {
        return this.#sinkMessages;
    }

    /** A frame message after `previous` (the last message appended, if any). */
    frame(timestamp: number | undefined, previous: TemplateMessage | undefined): FrameLayout {
        const message = this.#family.streamFrameMessage(timestamp);
        const cacheable = timestamp === undefined && previous !== undefined && JSON.stringify(previous) === JSON.stringify(this.#family.streamFrameMessage(undefined));
        if (cacheable && this.#untimedFrame) return this.#untimedFrame;
        const tokens = this.#delta(message, previous, false);
        const at = tokens.indexOf(this.#frameToken);
        if (at < 0 || tokens.indexOf(this.#frameToken, at + 1) >= 0) {
            throw new ChatTemplateError("The chat template does not render a stream frame as exactly one placeholder; it cannot lay out live streams");
        }
        const layout = { before: tokens.slice(0, at), after: tokens.slice(at + 1) };
        if (cacheable) this.#untimedFrame = layout;
        return layout;
    }

    /** A question (a user turn) followed by the generation prompt. */
    question(text: string, previous: TemplateMessage | undefined): number[] {
        return this.#delta({ role: "user", content: text }, previous, true);
    }

    /**
     * What follows the question and the answer's tokens in the rendered conversation (e.g. `<|im_end|>\n`): the
     * rendering of the question and answer minus that of the question with the generation prompt and the answer.
     */
    answerEnd(question: string, answerTokens: readonly number[], answerText: string, previous: TemplateMessage | undefined): number[] {
        const base = [...this.#sinkMessages, ...(previous ? [previous] : [])];
        const user: TemplateMessage = { role: "user", content: question };
        const asked = this.#tokens([...base, user], true);
        const answered = this.#tokens([...base, user, { role: "assistant", content: answerText, contentTokens: answerTokens }], false);
        const expected = [...asked, ...answerTokens];
        if (!startsWith(answered, expected)) {
            throw new ChatTemplateError("The chat template renders an answer differently from the generation prompt plus the answer; it cannot keep answers in a live stream");
        }
        return answered.slice(expected.length);
    }

    /** Tokens of `messages` as the template renders them (visual placeholders as the image token id). */
    render(messages: readonly TemplateMessage[], addGenerationPrompt: boolean): number[] {
        return this.#tokens(messages, addGenerationPrompt);
    }

    #delta(message: TemplateMessage, previous: TemplateMessage | undefined, generation: boolean): number[] {
        const base = [...this.#sinkMessages, ...(previous ? [previous] : [])];
        const before = previous ? this.#tokens(base, false) : this.#sink;
        const after = this.#tokens([...base, message], generation);
        if (startsWith(after, before)) return after.slice(before.length);
        // A SentencePiece vocabulary merges the text that opens a message with the text that closed the one before
        // (Video-LLaVA's `… <video>\n ` + `USER: …`), so the whole conversation's tokens are not the previous ones plus
        // some more. A stream appends messages as they come: the new message's own pieces are tokenized on their own.
        const own = previous ? this.#ownPieces(base, message, generation) : undefined;
        if (!own) {
            throw new ChatTemplateError(`The chat template renders a ${message.role} message in a way that changes what comes before it; it cannot lay out live streams`);
        }
        return tokenizePieces(own, { ...this.#tokenizer, prefix: [] });
    }

    /** The pieces `message` adds after `base`, when the template's rendering of `base` is a prefix of the longer one. */
    #ownPieces(base: readonly TemplateMessage[], message: TemplateMessage, generation: boolean): PromptPiece[] | undefined {
        const a = this.#template.renderPieces(base, { addGenerationPrompt: false, variables: this.#variables });
        const b = this.#template.renderPieces([...base, message], { addGenerationPrompt: generation, variables: this.#variables });
        if (a.length === 0 || b.length < a.length) return undefined;
        for (let i = 0; i < a.length - 1; i++) if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) return undefined;
        const last = a[a.length - 1]!;
        const same = b[a.length - 1]!;
        if (JSON.stringify(last) === JSON.stringify(same)) return b.slice(a.length);
        if (last.kind === "tokens" || same.kind !== last.kind || !same.text.startsWith(last.text)) return undefined;
        return [{ kind: same.kind, text: same.text.slice(last.text.length) }, ...b.slice(a.length)];
    }

    #tokens(messages: readonly TemplateMessage[], addGenerationPrompt: boolean): number[] {
        const pieces = this.#template.renderPieces(messages, { addGenerationPrompt, variables: this.#variables });
        return tokenizePieces(pieces, this.#tokenizer);
    }
}

function startsWith(a: readonly number[], prefix: readonly number[]): boolean {
    if (prefix.length > a.length) return false;
    for (let i = 0; i < prefix.length; i++) if (a[i] !== prefix[i]) return false;
    return true;
}
