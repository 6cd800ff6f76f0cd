// One case of test/gpu/parity.test.ts in its own short process (lavapipe crashes in long processes, and a backend is
// chosen once per process): runs the case through the compiled package (dist/) on the device named by argv[3] and
// writes what it computed as JSON to argv[4] (float arrays as plain numbers).
//   node test/gpu/case-runner.mjs <case> <gpu option: cpu | vulkan | cuda | metal | auto> <out.json> <fixtures.json>
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [, , name, gpu, out, fixturesFile] = process.argv;
const lib = await import(pathToFileURL(join(process.cwd(), "dist", "index.js")).href);
const { Image, loadModel, loadVision, Video } = lib;
const f = JSON.parse(readFileSync(fixturesFile, "utf8"));
const greedy = { temperature: 0, maxTokens: 8 };
// What a case opened, disposed in reverse order when it ends (Node 20 has no `await using` in plain JavaScript).
const owned = [];
const own = (resource) => (owned.push(resource), resource);

/** Deterministic noise pixels. */
function noise(width, height, seed) {
    const data = new Uint8Array(width * height * 3);
    let x = seed * 2654435761 + 1;
    for (let i = 0; i < data.length; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        data[i] = x >>> 24;
    }
    return data;
}
const picture = (w, h, seed) => Image.fromPixels({ data: noise(w, h, seed), width: w, height: h, format: "rgb" });

const cases = {
    /** VideoLLaMA3's NaViT encoder on images at their own resolution. */
    async "vl3-image"() {
        const v = own(await loadVision({ mmproj: f.vl3.mmproj, gpu }));
        // Two images of one size: the second runs the cached graph again (which once went wrong on Vulkan only).
        const a = await v.encode(picture(70, 56, 1));
        const b = await v.encode(picture(70, 56, 4));
        return { device: v.info.device.name, tokens: a.tokens + b.tokens, embeddings: [...a.embeddings, ...b.embeddings] };
    },
    /** A video with Differential Frame Pruning: the kept tokens per frame and their embeddings. */
    async "vl3-video"() {
        const v = own(await loadVision({ mmproj: f.vl3.mmproj, gpu }));
        const video = own(await Video.open(f.video, { fps: 2 }));
        const r = await v.encodeVideo(video);
        return { device: v.info.device.name, kept: r.frames.map((x) => x.keptTokens), embeddings: Array.from(r.embeddings) };
    },
    /** The same video with the encoder on the changed blocks only (ggml_set_rows into the reuse state on the device). */
    async "vl3-video-changed-only"() {
        const v = own(await loadVision({ mmproj: f.vl3.mmproj, gpu }));
        const video = own(await Video.open(f.video, { fps: 2 }));
        const r = await v.encodeVideo(video, { prune: { encodeChangedOnly: true } });
        return { device: v.info.device.name, encoder: r.encoder, embeddings: Array.from(r.embeddings) };
    },
    /** Video-LLaVA's CLIP towers (image tower, 224² centre crop). */
    async "clip-image"() {
        const v = own(await loadVision({ mmproj: f.clip, gpu }));
        const a = await v.encode(picture(300, 200, 2));
        const b = await v.encode(picture(300, 200, 5));
        return { device: v.info.device.name, tokens: a.tokens + b.tokens, embeddings: [...a.embeddings, ...b.embeddings] };
    },
    /** A text question. */
    async "vl3-prompts-text"() {
        const model = own(await loadModel({ model: f.vl3.textModel, mmproj: f.vl3.mmproj, gpu }));
        const text = await (await model.createSession()).prompt("Hello there", greedy);
        return { device: model.info.device.name, text: text.tokens };
    },
    /**
     * An image question in a fresh session. (A text and then an image question in ONE session on lavapipe dies inside
     * libvulkan_lvp.so in most runs, a corrupted heap, root cause not found: an open finding, not covered here.)
     */
    async "vl3-prompts-image"() {
        const model = own(await loadModel({ model: f.vl3.textModel, mmproj: f.vl3.mmproj, gpu }));
        const image = await (await model.createSession()).prompt([picture(56, 56, 3), "What is this?"], greedy);
        return { device: model.info.device.name, image: image.tokens };
    },
    /** A video question end to end (pruned frames, timestamps): the greedy tokens. */
    async "vl3-prompts-video"() {
        const model = own(await loadModel({ model: f.vl3.textModel, mmproj: f.vl3.mmproj, gpu }));
        const video = own(await Video.open(f.video, { fps: 2 }));
        const clip = await (await model.createSession()).prompt([{ video }, "What happens?"], greedy);
        return { device: model.info.device.name, video: clip.tokens, kept: clip.media[0].keptTokens };
    },
    /** A stream that evicts old frames (KV remove + shift on the device) and then answers. */
    async "vl3-stream-evict"() {
        const model = own(await loadModel({ model: f.vl3.textModel, mmproj: f.vl3.mmproj, gpu }));
        const stream = own(await model.createStream({ timestamps: true, prune: false, window: { frames: 3 }, queue: { policy: "wait" } }));
        for (let i = 0; i < 6; i++) await stream.pushFrame({ data: noise(56, 56, 10 + i), width: 56, height: 56, timestamp: i });
        await stream.idle();
        const a = await stream.ask("What is there?", { ...greedy, logits: true });
        return { device: model.info.device.name, evicted: stream.stats().framesEvicted, tokens: a.tokens, logits: Array.from(a.logits ?? []) };
    },
};

const run = cases[name];
if (!run) throw new Error(`unknown case ${name}`);
try {
    writeFileSync(out, JSON.stringify(await run()));
} finally {
    for (const resource of owned.reverse()) await resource[Symbol.asyncDispose]();
}
