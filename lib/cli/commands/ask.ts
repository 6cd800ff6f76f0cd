/**
 * `vidllama ask -m model.gguf "question"`: one user turn, the answer on stdout (streamed), or JSON with --json.
 *
 * @internal
 * @module
 */
import { Command } from "commander";
import { interruptSignal, reportError } from "../shared.js";
import { Image } from "../../decode/Image.js";
import type { Video } from "../../decode/Video.js";
import type { MediaUsage, PromptOptions } from "../../Session.js";
import { ProgressBar } from "../progress.js";
import type { PromptPart, PruneOption } from "../../chat/content.js";
import { addModelFlags, addSamplingFlags, addVideoFlags, collect, openVideos, pruneFrom, type VideoFlags, loadModelWithProgress, promptOptionsFrom, type ModelFlags, type SamplingFlags } from "./generation-options.js";

interface AskFlags extends ModelFlags, SamplingFlags, VideoFlags {
    system?: string;
    json?: boolean;
    image: string[];
}

export function askCommand(): Command {
    const command = new Command("ask")
        .description("ask one question and print the answer")
        .argument("<question>", "the question (one user turn)")
        .option("-s, --system <text>", "system prompt (without it, no system message is sent)")
        .option("--image <file>", "an image to ask about (repeatable; needs a projector: --mmproj, or an hf: model); media come before the question", collect, [])
        .option("--json", "print { text, tokens, promptTokens, stopReason, timings, media } as JSON instead of streaming text");
    addVideoFlags(command, "a video file or URL to ask about (needs a projector: --mmproj, or an hf: model)");
    addModelFlags(command);
    addSamplingFlags(command);
    return command.action(async (question: string, flags: AskFlags) => {
        // Flags that do not go together are a bad command line (exit 2), found before any work.
        let prune: PruneOption | undefined;
        try {
            prune = pruneFrom(flags);
        } catch (err) {
            process.stderr.write(`vidllama: ${(err as Error).message}\n`);
            process.exitCode = 2;
            return;
        }
        const interrupt = interruptSignal();
        const videos: Video[] = [];
        try {
            await using model = await loadModelWithProgress(flags, interrupt.signal);
            const session = await model.createSession({ systemPrompt: flags.system, contextSize: flags.contextSize, threads: flags.threads });
            const options: PromptOptions = { ...promptOptionsFrom(flags), signal: interrupt.signal };
            const vision = model.visionInfo;
            const bar = new ProgressBar("video", !flags.quiet && !flags.json && process.stderr.isTTY === true);
            await openVideos(flags, vision, interrupt.signal, videos);
            // Media first, then the question, as one user turn.
            const input: PromptPart[] = [...flags.image.map((path) => Image.fromFile(path)), ...videos, question];
            if (prune !== undefined) options.prune = prune;
            options.onMediaProgress = (p) => {
                bar.update(p.framesTotal ? p.framesEncoded / p.framesTotal : 0, `${p.framesDecoded}/${p.framesTotal} frames decoded, ${p.framesEncoded} encoded, ${p.tokensKept}/${p.tokensTotal} tokens kept`);
                if (p.framesEncoded === p.framesTotal) bar.done();
            };
            if (flags.json) {
                const result = await session.prompt(input, options);
                process.stdout.write(
                    JSON.stringify({
                        text: result.text,
                        tokens: result.tokens,
                        promptTokens: result.promptTokens,
                        stopReason: result.stopReason,
                        timings: result.timings,
                        ...(result.media.length > 0 ? { media: result.media.map(mediaJson) } : {}),
                    }) + "\n",
                );
            } else {
                const stream = session.stream(input, options);
                for await (const chunk of stream) process.stdout.write(chunk);
                const result = await stream.result;
                process.stdout.write("\n");
                if (!flags.quiet && process.stderr.isTTY) {
                    const t = result.timings;
                    process.stderr.write(
                        `[${result.stopReason}] prompt ${result.promptTokens.length} tokens (${t.promptTokensPerSecond.toFixed(1)}/s), ` +
                            `answer ${result.tokens.length} tokens (${t.tokensPerSecond.toFixed(1)}/s)\n`,
                    );
                }
            }
        } catch (err) {
            reportError(err);
        } finally {
            await Promise.all(videos.map((v) => v.close()));
            interrupt.dispose();
        }
    });
}

/** The --json shape of a prompt's media. */
function mediaJson(m: MediaUsage) {
    if (m.kind === "image") return { kind: m.kind, tokens: m.tokens, grid: m.grid, source: m.source };
    return {
        kind: m.kind,
        source: m.source,
        frames: m.frames.map((f) => ({ timestamp: f.timestamp, tokens: f.tokens, keptTokens: f.keptTokens })),
        tokens: m.tokens,
        keptTokens: m.keptTokens,
        encoder: { ...m.encoder },
        ...(m.warnings.length > 0 ? { warnings: m.warnings } : {}),
    };
}
