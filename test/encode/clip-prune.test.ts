// Differential Frame Pruning on Video-LLaVA's video tower: keep indices over the 256 patches (merge 1) equal the
// float64 DiffFP reference, the class token always kept and first, the kept tokens equal to those rows of the
// reference forward; and the staged calls (preprocess → prune → encodePatches) equal the fused encode bit for bit.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodePatches, preprocessFrames, pruneFrame } from "../../lib/encode/stages.js";
import { native } from "../../lib/native/load.js";
import type { NativeEncodeResult, NativeVision, NativeVisionItem } from "../../lib/native/types.js";
import { referenceDiffFP } from "../reference/diffp.js";
import {
    clipPatchRows,
    errorStats,
    readClipProjector,
    referenceClipForward,
    referenceClipPreprocess,
    type ClipProjectorRef,
    type ClipTower,
} from "../reference/clip-encoder.js";
import { TINY_CLIP, testPicture, tinyClipMmproj, type TestPicture } from "../fixtures/tiny-clip-mmproj.js";

const addon = native();
const D = TINY_CLIP.projDim;
let ref: ClipProjectorRef;
let vision: NativeVision;

beforeAll(async () => {
    const path = await tinyClipMmproj("prune", { seed: 31, tokenCompression: true });
    ref = await readClipProjector(path);
    vision = await addon.loadVision({ path, gpu: "cpu", threads: 2 });
});

afterAll(() => {
    vision?.dispose();
});

/** 224×224 frames need no resize: a changed pixel block changes exactly the patches it covers. */
function frameItem(pic: TestPicture, tower: ClipTower, prune?: { threshold: number; minTokens: number }): NativeVisionItem {
    return { rgb: pic.data, width: pic.width, height: pic.height, targetWidth: 224, targetHeight: 224, merge: 1, tower, ...(prune ? { prune } : {}) };
}

/** `pic` with the pixels of [x0, x1) × [y0, y1) set to one colour. */
function withBlock(pic: TestPicture, x0: number, x1: number, y0: number, y1: number): TestPicture {
    const data = pic.data.slice();
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) data.set([250, 20, 240], (y * pic.width + x) * 3);
    return { ...pic, data };
}

function pixelValues(pic: TestPicture): Float64Array {
    return referenceClipPreprocess(pic.data, pic.width, pic.height, ref.config.preprocess).pixelValues;
}

function rows(result: NativeEncodeResult, item: number): Float32Array {
    let first = 0;
    for (let i = 0; i < item; i++) first += result.counts[i]!;
    return result.embeddings.toFloat32Array(first, result.counts[item]!);
}

function firstBitDifference(a: Float32Array, b: Float32Array): number {
    if (a.length !== b.length) return Math.min(a.length, b.length);
    const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
    const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
    return -1;
}

describe("DiffFP on the video tower", () => {
    it("is offered by the file's settings", () => {
        const hp = vision.hparams();
        expect(hp.tokenCompression).toBe(true);
        expect(hp.diffThreshold).toBe(Math.fround(0.1));
        expect(hp.minTokensPerFrame).toBe(1);
    });

    it("an identical frame keeps the class token and the minimum of patch tokens", async () => {
        const pic = testPicture(224, 224, 1);
        const prune = { threshold: 0.1, minTokens: 1 };
        const result = await vision.encode([frameItem(pic, "video", prune), frameItem(pic, "video", prune)], {});
        expect(Array.from(result.counts)).toEqual([257, 2]);
        expect(Array.from(result.merged)).toEqual([257, 257]);
        expect(result.kept.map((k) => (k ? Array.from(k) : null))).toEqual([null, [0]]);
        // The pruned frame's two rows are the class token and patch 0 of the whole frame.
        const whole = rows(result, 0);
        const pruned = rows(result, 1);
        expect(errorStats(pruned, whole.subarray(0, 2 * D)).relative).toBeLessThan(1e-6);
        const r = referenceClipForward(ref.weights, [{ pixelValues: pixelValues(pic), tower: "video", keep: [0] }], ref.config)[0]!;
        expect(r.nTokens).toBe(2);
        expect(errorStats(pruned, r.tokens).relative).toBeLessThan(1e-4);
        // minTokens 0: only the class token is left.
        const none = await vision.encode([frameItem(pic, "video", { threshold: 0.1, minTokens: 0 }), frameItem(pic, "video", { threshold: 0.1, minTokens: 0 })], {});
        expect(Array.from(none.counts)).toEqual([257, 1]);
        expect(errorStats(rows(none, 1), whole.subarray(0, D)).relative).toBeLessThan(1e-6);
    });

    it("a changed block keeps exactly its patches (equal to the float64 DiffFP reference), after the class token", async () => {
        const a = testPicture(224, 224, 2);
        // pixels x 56..83, y 84..111: patch columns 4-5 of rows 6-7
        const b = withBlock(a, 56, 84, 84, 112);
        const prune = { threshold: 0.1, minTokens: 1 };
        const result = await vision.encode([frameItem(a, "video", prune), frameItem(b, "video", prune)], {});
        const expectedKeep = [6 * 16 + 4, 6 * 16 + 5, 7 * 16 + 4, 7 * 16 + 5];
        const diff = referenceDiffFP([clipPatchRows(pixelValues(a), 224, 14), clipPatchRows(pixelValues(b), 224, 14)], 16, 16, 1, 0.1, 1);
        expect(diff.mask[1]!.flatMap((k, t) => (k ? [t] : []))).toEqual(expectedKeep);
        expect(result.kept[0]).toBeNull();
        expect(Array.from(result.kept[1]!)).toEqual(expectedKeep);
        expect(Array.from(result.counts)).toEqual([257, 5]);
        const [refA, refB] = referenceClipForward(
            ref.weights,
            [
                { pixelValues: pixelValues(a), tower: "video" },
                { pixelValues: pixelValues(b), tower: "video", keep: expectedKeep },
            ],
            ref.config,
        );
        expect(errorStats(rows(result, 0), refA!.tokens).relative).toBeLessThan(1e-4);
        expect(refB!.cls).toBe(true);
        expect(errorStats(rows(result, 1), refB!.tokens).relative).toBeLessThan(1e-4);
        // The kept rows are those rows of the unpruned encoding of frame b (attention still saw every patch).
        const full = rows(await vision.encode([frameItem(b, "video")], {}), 0);
        const picked = new Float32Array(5 * D);
        [0, ...expectedKeep.map((t) => 1 + t)].forEach((r, i) => picked.set(full.subarray(r * D, (r + 1) * D), i * D));
        expect(errorStats(rows(result, 1), picked).relative).toBeLessThan(1e-6);
    });

    it("frames of resized video keep the reference's indices, across calls through a FrameState", async () => {
        // A moving block on a 320×240 background: bicubic spreads each change over neighbouring patches.
        const background = testPicture(320, 240, 3);
        const frames = [0, 1, 2].map((f) => withBlock(background, 60 + 30 * f, 100 + 30 * f, 90, 130));
        const prune = { threshold: 0.1, minTokens: 1 };
        const hp = vision.hparams();
        const items = frames.map((f): NativeVisionItem => ({
            rgb: f.data,
            width: 320,
            height: 240,
            targetWidth: 298,
            targetHeight: 224,
            crop: { left: 37, top: 0, width: 224, height: 224 },
            merge: 1,
            tower: "video",
            prune,
        }));
        expect(hp.shortestEdge).toBe(224);
        const state = new addon.FrameState();
        const first = await vision.encode(items.slice(0, 1), {}, undefined, undefined, state);
        const rest = await vision.encode(items.slice(1), {}, undefined, undefined, state);
        const patchRows = frames.map((f) => clipPatchRows(pixelValues(f), 224, 14));
        const diff = referenceDiffFP(patchRows, 16, 16, 1, 0.1, 1);
        const kept = [first.kept[0], ...rest.kept].map((k) => (k ? Array.from(k) : Array.from({ length: 256 }, (_, t) => t)));
        kept.forEach((k, f) => expect(k, `frame ${f}`).toEqual(diff.mask[f]!.flatMap((m, t) => (m ? [t] : []))));
        expect(kept[1]!.length).toBeGreaterThan(4);
        expect(kept[1]!.length).toBeLessThan(256);
        expect(Array.from(rest.counts)).toEqual(kept.slice(1).map((k) => 1 + k.length));
    });

    it("preprocess → prune → encodePatches equals the fused encode bit for bit", async () => {
        const a = testPicture(224, 224, 4);
        const frames = [a, withBlock(a, 0, 28, 0, 14), a];
        const prune = { threshold: 0.1, minTokens: 1 };
        const items = frames.map((f) => frameItem(f, "video", prune));
        const fused = await vision.encode(items, {}, undefined, undefined, new addon.FrameState());
        const patches = await preprocessFrames(vision, items);
        expect(patches.map((p) => p.tower)).toEqual(["video", "video", "video"]);
        expect(patches.map((p) => p.tokens)).toEqual([256, 256, 256]);
        const state = new addon.FrameState();
        const keeps = patches.map((p) => pruneFrame(vision, p, state, prune).keep);
        expect(keeps.map((k) => (k ? Array.from(k) : null))).toEqual([null, [0, 1], [0, 1]]);
        const staged = await encodePatches(vision, patches.map((p, i) => ({ patches: p, keep: keeps[i] })));
        expect(Array.from(staged.counts)).toEqual([257, 3, 3]);
        expect(Array.from(staged.counts)).toEqual(Array.from(fused.counts));
        expect(firstBitDifference(staged.embeddings.toFloat32Array(), fused.embeddings.toFloat32Array())).toBe(-1);
        // The tower of an encodePatches item overrides the one recorded when preprocessing.
        const asImage = await encodePatches(vision, [{ patches: patches[0]!, tower: "image" }]);
        expect(Array.from(asImage.counts)).toEqual([256]);
        const image = await vision.encode([frameItem(a, "image")], {});
        expect(firstBitDifference(asImage.embeddings.toFloat32Array(), image.embeddings.toFloat32Array())).toBe(-1);
    });

    it("pruned image-tower items keep only the listed patches (no class token to keep)", async () => {
        const pic = testPicture(224, 224, 5);
        const [patches] = await preprocessFrames(vision, [frameItem(pic, "image")]);
        const some = await encodePatches(vision, [{ patches: patches!, keep: Int32Array.from([3, 200]) }]);
        expect(Array.from(some.counts)).toEqual([2]);
        expect(Array.from(some.merged)).toEqual([256]);
        const full = (await encodePatches(vision, [{ patches: patches! }])).embeddings.toFloat32Array();
        const picked = new Float32Array(2 * D);
        picked.set(full.subarray(3 * D, 4 * D), 0);
        picked.set(full.subarray(200 * D, 201 * D), D);
        expect(errorStats(some.embeddings.toFloat32Array(), picked).relative).toBeLessThan(1e-6);
        const none = await encodePatches(vision, [{ patches: patches!, keep: new Int32Array(0) }, { patches: patches!, keep: new Int32Array(0), tower: "video" }]);
        expect(Array.from(none.counts)).toEqual([0, 1]);
    });
});
