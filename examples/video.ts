/**
 * Ask a question about a video file (or an http(s) URL), sampled at 1 frame per second by default.
 *
 *   node video.js <model.gguf> <mmproj.gguf> <video> ["question"] [--fps 1] [--max-frames 180] [--start s] [--end s] [--max-tokens N]
 *
 * Needs ffmpeg (VIDLLAMA_FFMPEG, ffmpeg-static or PATH). The answer goes to stdout; progress, the frames (tokens
 * kept by Differential Frame Pruning) and the timings to stderr.
 */
import { parseArgs } from "node:util";
import { loadModel, Video } from "vidllama";

const USAGE = 'usage: video <model.gguf> <mmproj.gguf> <video> ["question"] [--fps 1] [--max-frames 180] [--start s] [--end s] [--max-tokens N]';

function usage(problem?: string): never {
    if (problem) console.error(problem);
    console.error(USAGE);
    process.exit(2);
}

function parse() {
    try {
        return parseArgs({
            allowPositionals: true,
            options: {
                fps: { type: "string", default: "1" },
                "max-frames": { type: "string", default: "180" },
                start: { type: "string" },
                end: { type: "string" },
                "max-tokens": { type: "string", default: "256" },
            },
        });
    } catch (err) {
        usage((err as Error).message);
    }
}

/** A number flag, or exit with the usage. */
function number(name: string, value: string | undefined): number | undefined {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n < 0) usage(`--${name} must be a number >= 0, got "${value}"`);
    return n;
}

const { values, positionals } = parse();
const [modelPath, mmprojPath, videoPath, question = "What happens in this video?"] = positionals;
if (!modelPath || !mmprojPath || !videoPath) usage();

await using model = await loadModel({ model: modelPath, mmproj: mmprojPath });
const session = await model.createSession();

const start = number("start", values.start);
const end = number("end", values.end);
await using video = await Video.open(videoPath, {
    fps: number("fps", values.fps),
    maxFrames: number("max-frames", values["max-frames"]),
    ...(start !== undefined ? { start } : {}),
    ...(end !== undefined ? { end } : {}),
});
console.error(`video: ${video.width}×${video.height}, ${video.duration.toFixed(1)} s, ${(await video.plan()).count} frames sampled`);

const answer = await session.prompt([video, question], {
    temperature: 0,
    maxTokens: number("max-tokens", values["max-tokens"]),
    onMediaProgress: (p) => console.error(`  ${p.framesEncoded}/${p.framesTotal} frames encoded, ${p.tokensKept}/${p.tokensTotal} tokens kept`),
});
console.log(answer.text);

const media = answer.media[0];
if (media?.kind === "video") {
    for (const f of media.frames) console.error(`  frame ${f.timestamp.toFixed(1)}s: ${f.keptTokens}/${f.tokens} tokens`);
    console.error(`video: ${media.keptTokens} of ${media.tokens} visual tokens kept`);
    for (const w of media.warnings) console.error(`warning: ${w}`);
}
const t = answer.timings;
console.error(`[${answer.stopReason}] decode ${t.decodeMs.toFixed(0)} ms, encode ${t.encodeMs.toFixed(0)} ms, prefill ${t.prefillMs.toFixed(0)} ms, answer ${answer.tokens.length} tokens in ${t.generationMs.toFixed(0)} ms`);
