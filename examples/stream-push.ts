/**
 * A live stream fed by your own code: frames pushed one by one with `pushFrame` (as a camera SDK, WebCodecs or a
 * game engine would hand them over), questions asked while frames keep coming, and `stats()` after each answer.
 *
 *   node stream-push.js <model.gguf> <mmproj.gguf> [video] [--every 3] [--question "…"] [--max-tokens N]
 *
 * With a video, its frames (decoded by ffmpeg at 1 per second) are pushed; without one, frames are generated: a
 * white square that crosses a grey picture for 5 s, then stays still. Non-interactive: it ends with the frames.
 */
import { parseArgs } from "node:util";
import { loadModel, Video, type StreamFrame, type StreamStats } from "vidllama";

const USAGE = 'usage: stream-push <model.gguf> <mmproj.gguf> [video] [--every 3] [--question "…"] [--max-tokens N]';

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
                every: { type: "string", default: "3" },
                question: { type: "string", default: "What is happening?" },
                "max-tokens": { type: "string", default: "64" },
            },
        });
    } catch (err) {
        usage((err as Error).message);
    }
}

const { values, positionals } = parse();
const [modelPath, mmprojPath, videoPath] = positionals;
if (!modelPath || !mmprojPath) usage();
const every = Number(values.every);
const maxTokens = Number(values["max-tokens"]);
if (!(every > 0)) usage(`--every must be a number of seconds > 0, got "${values.every}"`);
if (!Number.isInteger(maxTokens) || maxTokens < 0) usage(`--max-tokens must be a whole number, got "${values["max-tokens"]}"`);

/** 10 s of 224×160 RGB at 1 fps: a white 32×32 square moving 20 px/s for 5 s, then still. */
async function* generatedFrames(): AsyncGenerator<StreamFrame> {
    const width = 224;
    const height = 160;
    for (let second = 0; second < 10; second++) {
        const data = new Uint8Array(width * height * 3).fill(128);
        const left = 10 + 20 * Math.min(second, 5);
        for (let y = 64; y < 96; y++) data.fill(255, (y * width + left) * 3, (y * width + left + 32) * 3);
        yield { data, width, height, timestamp: second, format: "rgb" };
    }
}

/** The frames of a file, 1 per second, each with its timestamp on the video's timeline. */
async function* videoFrames(path: string): AsyncGenerator<StreamFrame> {
    await using video = await Video.open(path, { fps: 1, maxFrames: 1_000_000 });
    for await (const f of video.frames()) yield { data: f.data, width: f.width, height: f.height, timestamp: f.timestamp, format: "rgb" };
}

function describe(s: StreamStats): string {
    const kept = s.tokensTotal > 0 ? ((s.tokensKept / s.tokensTotal) * 100).toFixed(0) : "-";
    return (
        `stats: ${s.framesIngested} frames ingested (${s.framesInCache} in the cache, ${s.framesEvicted} evicted, ${s.framesDropped} dropped), ` +
        `${kept}% of visual tokens kept, KV ${s.kvTokens}/${s.contextSize} tokens (${(s.kvBytes / 2 ** 20).toFixed(2)} MiB), ` +
        `${s.ingestFps.toFixed(1)} frames/s ingest, window ${s.window.from}s–${s.window.to}s`
    );
}

await using model = await loadModel({ model: modelPath, mmproj: mmprojPath });
await using stream = await model.createStream({
    window: { seconds: 60 }, // the cache keeps the last minute of frames
    queue: { size: 4, policy: "wait" }, // these frames can wait for the encoder: pushFrame waits, nothing is dropped
});
stream.on("frame", (f) => console.error(`frame ${f.timestamp.toFixed(1)}s: ${f.keptTokens}/${f.tokens} tokens kept (encode ${f.encodeMs.toFixed(0)} ms, append ${f.appendMs.toFixed(0)} ms)`));
stream.on("evict", (e) => console.error(`evicted ${e.frames} frames (${e.from}s–${e.to}s) and ${e.turns} questions`));

// Questions are not awaited here: each waits only for the frame being appended, and frames keep entering the cache
// after it. An answer covers the frames ingested when it started (answer.frames, answer.timestamp).
const answers: Promise<void>[] = [];
let nextQuestion = every;
for await (const frame of videoPath ? videoFrames(videoPath) : generatedFrames()) {
    await stream.pushFrame(frame);
    if (frame.timestamp >= nextQuestion) {
        while (nextQuestion <= frame.timestamp) nextQuestion += every;
        const pushedAt = frame.timestamp;
        answers.push(
            stream.ask(values.question, { temperature: 0, maxTokens }).then((a) => {
                console.log(`[asked at ${pushedAt.toFixed(1)}s] ${JSON.stringify(a.text)} — ${a.frames} frames up to ${a.timestamp.toFixed(1)}s, first token after ${a.ttftMs.toFixed(0)} ms`);
                console.log(describe(stream.stats()));
            }),
        );
    }
}
await Promise.all(answers);
await stream.idle(); // every pushed frame is in the cache

const last = await stream.ask("What happened from the beginning?", { temperature: 0, maxTokens });
console.log(`[at the end] ${JSON.stringify(last.text)} — ${last.frames} frames up to ${last.timestamp.toFixed(1)}s`);
console.log(describe(stream.stats()));
