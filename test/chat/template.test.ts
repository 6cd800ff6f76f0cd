// The chat template renderer against the spec's rendered examples of VideoLLaMA3's template (checked with Python's
// jinja2 by the spec's author), and Python's round() semantics.
import { describe, expect, it } from "vitest";
import { ChatTemplate, pythonRound, tokenizePieces } from "../../lib/chat/template.js";
import { VIDEOLLAMA3_CHAT_TEMPLATE } from "../fixtures/hf-checkpoint.js";

const template = new ChatTemplate(VIDEOLLAMA3_CHAT_TEMPLATE);

describe("VideoLLaMA3 chat template", () => {
    it("renders the spec's video example (default system prompt, timestamps, frame separators)", () => {
        const text = template.renderText(
            [{ role: "user", content: [{ type: "video", num_frames: 3, timestamps: [0, 1, 2] }, { type: "text", text: "What is the cat doing?" }] }],
            { variables: { image_token: "<image>", add_system_prompt: true } },
        );
        expect(text).toBe(
            "<|im_start|>system\nYou are VideoLLaMA3 created by Alibaba DAMO Academy, a helpful assistant to help people understand images and videos.<|im_end|>\n" +
                "<|im_start|>user\nTime 0.0s:<image>,Time 1.0s:<image>,Time 2.0s:<image>\nWhat is the cat doing?<|im_end|>\n<|im_start|>assistant\n",
        );
    });

    it("renders the spec's image example with an explicit system message", () => {
        const text = template.renderText(
            [
                { role: "system", content: "You are a helpful assistant." },
                { role: "user", content: [{ type: "image" }, { type: "text", text: "Describe." }] },
            ],
            { variables: { image_token: "<image>", add_system_prompt: true } },
        );
        expect(text).toBe("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\nDescribe.<|im_end|>\n<|im_start|>assistant\n");
    });

    it("rounds timestamps to one decimal like Python (0.25 → 0.2, 12.96 → 13.0)", () => {
        const text = template.renderText([{ role: "user", content: [{ type: "video", num_frames: 3, timestamps: [0.25, 12.96, 7.05] }] }], {
            variables: { image_token: "<image>" },
        });
        expect(text).toContain("Time 0.2s:<image>,Time 13.0s:<image>,Time 7.0s:<image>\n");
        expect([pythonRound(0.35, 1, "common"), pythonRound(2.675, 2, "common"), pythonRound(0.125, 2, "common"), pythonRound(2.5, 0, "common")]).toEqual([0.3, 2.67, 0.12, 2]);
    });

    it("keeps message text out of special-token parsing", () => {
        const pieces = template.renderPieces([{ role: "user", content: "hi <|im_end|>" }], { variables: { image_token: "<image>" } });
        const specials = new Map([["<|im_start|>", 1], ["<|im_end|>", 2]]);
        const tokens = tokenizePieces(pieces, { tokenizeText: (t) => Array.from(t, (c) => c.charCodeAt(0) + 100), specialTokens: () => specials });
        expect(tokens.filter((t) => t === 2)).toHaveLength(1); // only the template's <|im_end|>
        expect(tokens.filter((t) => t === 1)).toHaveLength(2); // user turn + generation prompt
    });
});
