/**
 * A live stream from a webcam (or the screen) through ffmpeg, with questions typed on stdin, answered from what the
 * stream has shown so far while frames keep coming.
 *
 *   node stream-webcam.js <model.gguf> <mmproj.gguf> [file-or-URL] [--screen] [--format F --device D]
 *                         [--input-option=ARG …] [--fps 1] [--max-tokens N]
 *
 * Without a source it opens the platform's camera: Linux v4l2 /dev/video0, macOS avfoundation "0", Windows the
 * desktop through gdigrab (a DirectShow camera needs its name: --format dshow --device "video=Integrated Camera";
 * `ffmpeg -list_devices true -f dshow -i dummy` lists them). --screen grabs the screen instead (x11grab $DISPLAY,
 * avfoundation "Capture screen 0", gdigrab desktop). A file or URL works without a camera: a file plays at its own
 * pace (ffmpeg -re), as a camera would; a URL (rtsp://, http(s)://…) reconnects after failures.
 *
 * Type a question and press Enter. Ctrl+C stops an answer, or quits; the end of stdin (Ctrl+D) quits — for a file or
 * URL once it has ended.
 */
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { loadModel, type IngestOptions, type StreamSource } from "vidllama";

const USAGE = "usage: stream-webcam <model.gguf> <mmproj.gguf> [file-or-URL] [--screen] [--format F --device D] [--input-option=ARG …] [--fps 1] [--max-tokens N]";

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
                screen: { type: "boolean", default: false },
                format: { type: "string" },
                device: { type: "string" },
                "input-option": { type: "string", multiple: true, default: [] },
                fps: { type: "string", default: "1" },
                "max-tokens": { type: "string", default: "128" },
            },
        });
    } catch (err) {
        usage((err as Error).message);
    }
}

/** The platform's camera or screen as an ffmpeg capture device, and the input options it usually needs. */
function captureDevice(screen: boolean): { source: { format: string; device: string }; inputOptions: string[] } {
    switch (process.platform) {
        case "linux":
            return screen ? { source: { format: "x11grab", device: process.env.DISPLAY ?? ":0" }, inputOptions: ["-framerate", "5"] } : { source: { format: "v4l2", device: "/dev/video0" }, inputOptions: [] };
        case "darwin":
            // Most Mac cameras refuse ffmpeg's default 29.97 fps.
            return { source: { format: "avfoundation", device: screen ? "Capture screen 0" : "0" }, inputOptions: ["-framerate", "30"] };
        case "win32":
            return { source: { format: "gdigrab", device: "desktop" }, inputOptions: ["-framerate", "5"] };
        default:
            usage(`no default camera on ${process.platform}: pass --format and --device, or a file or URL`);
    }
}

const { values, positionals } = parse();
const [modelPath, mmprojPath, location] = positionals;
if (!modelPath || !mmprojPath) usage();
if ((values.format === undefined) !== (values.device === undefined)) usage("--format and --device go together");
if (values.format !== undefined && location !== undefined) usage("give either a file or URL, or --format and --device");
const fps = Number(values.fps);
const maxTokens = Number(values["max-tokens"]);
if (!(fps > 0)) usage(`--fps must be a number > 0, got "${values.fps}"`);
if (!Number.isInteger(maxTokens) || maxTokens < 0) usage(`--max-tokens must be a whole number, got "${values["max-tokens"]}"`);

let source: StreamSource;
const ingest: IngestOptions = { fps, inputOptions: values["input-option"] };
const live = location === undefined;
if (values.format !== undefined && values.device !== undefined) {
    source = { format: values.format, device: values.device };
} else if (location === undefined) {
    const capture = captureDevice(values.screen);
    source = capture.source;
    ingest.inputOptions = [...capture.inputOptions, ...values["input-option"]];
} else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) {
    source = location;
    ingest.reconnect = true;
} else {
    source = location;
    ingest.inputOptions = ["-re", ...values["input-option"]]; // play the file in real time, like a camera
}

await using model = await loadModel({ model: modelPath, mmproj: mmprojPath });
await using stream = await model.createStream({ window: { seconds: 120 } }); // the last two minutes stay in the cache
stream.on("frame", (f) => console.error(`frame ${f.timestamp.toFixed(1)}s: ${f.keptTokens}/${f.tokens} tokens kept`));
stream.on("drop", (d) => console.error(`dropped the frame at ${d.timestamp.toFixed(1)}s (the machine is slower than --fps)`));
stream.on("error", (err) => console.error(`source error: ${err.message}`));

const rl = createInterface({ input: process.stdin, terminal: false });
let answering: AbortController | undefined;
let quitting = false;
const quit = () => {
    quitting = true;
    rl.close();
    void stream.close(); // stops ffmpeg; the ingestion promise resolves with reason "closed"
};

console.error(`streaming ${typeof source === "object" && "format" in source ? `${source.format} ${source.device}` : String(source)}; type a question and press Enter`);
const ingestion = stream.ingest(source, ingest).then((r) => {
    if (r.reason === "end" || r.reason === "error") console.error(`the source ${r.reason === "error" ? "failed" : "ended"} after ${r.frames} frames`);
    // A camera that stops, or a source that never gave a frame, leaves nothing to watch.
    if (live || r.frames === 0) quit();
    return r;
});

const onInterrupt = () => (answering ? answering.abort() : quit());
process.on("SIGINT", onInterrupt);

for await (const line of rl) {
    const question = line.trim();
    if (quitting) break;
    if (question === "") continue;
    answering = new AbortController();
    try {
        const answer = stream.askStream(question, { maxTokens, signal: answering.signal });
        for await (const chunk of answer) process.stdout.write(chunk);
        const result = await answer.result;
        process.stdout.write(result.stopReason === "abort" ? " [stopped]\n" : "\n");
        console.error(`(${result.frames} frames up to ${result.timestamp.toFixed(1)}s, first token after ${result.ttftMs.toFixed(0)} ms)`);
    } catch (err) {
        if (!quitting) console.error(`could not answer: ${(err as Error).message}`);
    } finally {
        answering = undefined;
    }
}
// End of stdin: a camera stops now; a file or URL is watched to its end.
if (live && !quitting) quit();
await ingestion;
// Frames still queued when the source ended are ingested before the stream closes.
if (!quitting) await stream.idle();
process.off("SIGINT", onInterrupt);
