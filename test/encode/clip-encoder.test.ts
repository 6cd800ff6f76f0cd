// The CLIP towers of Video-LLaVA (native/encode, build_clip) against the float64 reference of HF's
// CLIPVisionModel + projector (test/reference/clip-encoder.ts), on tiny projector files written to the contract
// (test/fixtures/tiny-clip-mmproj.ts), through the N-API surface lib uses: the image tower's 256 tokens without the
// class token, the video tower's 257 with it first, batches of mixed towers, quick_gelu and gelu files, f16 files,
// and the settings exposed to JS.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Image, loadVision } from "../../lib/index.js";
import { native } from "../../lib/native/load.js";
import type { NativeVision, NativeVisionHparams, NativeVisionItem } from "../../lib/native/types.js";
import { clipResizeAndCrop } from "../../lib/preprocess/clip-crop.js";
import {
    errorStats,
    readClipProjector,
    referenceClipForward,
    referenceClipPreprocess,
    type ClipProjectorRef,
    type ClipTower,
} from "../reference/clip-encoder.js";
import { TINY_CLIP, testPicture, tinyClipMmproj, type TestPicture } from "../fixtures/tiny-clip-mmproj.js";

const addon = native();
let path: string;
let ref: ClipProjectorRef;
let vision: NativeVision;

beforeAll(async () => {
    path = await tinyClipMmproj("encoder", { seed: 11 });
    ref = await readClipProjector(path);
    vision = await addon.loadVision({ path, gpu: "cpu", threads: 2 });
});

afterAll(() => {
    vision?.dispose();
});

/** The native item of a picture: the shortest-edge resize and centre crop of lib/preprocess/clip-crop.ts. */
function item(pic: TestPicture, tower: ClipTower, hp: NativeVisionHparams = vision.hparams()): NativeVisionItem {
    const { resize, crop } = clipResizeAndCrop(pic.width, pic.height, hp.shortestEdge, hp.imageSize);
    return { rgb: pic.data, width: pic.width, height: pic.height, targetWidth: resize.width, targetHeight: resize.height, crop, merge: 1, tower };
}

function reference(r: ClipProjectorRef, pic: TestPicture, tower: ClipTower, keep?: number[]) {
    const { pixelValues } = referenceClipPreprocess(pic.data, pic.width, pic.height, r.config.preprocess);
    return referenceClipForward(r.weights, [{ pixelValues, tower, ...(keep ? { keep } : {}) }], r.config)[0]!;
}

// f32 weights and compute against float64: the largest error stays below 1e-4 of the outputs' RMS (measured about
// 1e-6; every error of the graph — a wrong token order, a missing bias, another activation — is far above 1e-2).
const F32_BOUND = 1e-4;

describe("Video-LLaVA towers vs the float64 reference", () => {
    it("exposes the file's settings as hparams", () => {
        const hp = vision.hparams();
        expect(hp).toMatchObject({
            family: "video_llava",
            hidden: TINY_CLIP.hidden,
            ffn: TINY_CLIP.ffn,
            layers: TINY_CLIP.layers,
            heads: TINY_CLIP.heads,
            patchSize: 14,
            projectionDim: TINY_CLIP.projDim,
            ropeTheta: 0,
            imageMergeSize: 1,
            videoMergeSize: 1,
            imageMinTokens: 256,
            imageMaxTokens: 256,
            resample: "bicubic",
            videoFps: 0,
            videoMaxFrames: 8,
            tokenCompression: false,
            minTokensPerFrame: 1,
            imageTokenId: TINY_CLIP.imageTokenId,
            visionAct: "quick_gelu",
            imageSize: 224,
            shortestEdge: 224,
            videoFrames: 8,
            imageKeepCls: false,
            videoKeepCls: true,
            videoTokenId: TINY_CLIP.videoTokenId,
            hasVideoTower: true,
        });
        expect(hp.eps).toBe(Math.fround(1e-5));
        expect(hp.diffThreshold).toBe(Math.fround(0.1));
        expect(hp.rescaleFactor).toBe(Math.fround(1 / 255));
        expect(hp.imageMean).toEqual(TINY_CLIP.mean.map(Math.fround));
        expect(hp.imageStd).toEqual(TINY_CLIP.std.map(Math.fround));
    });

    it("image tower: 256 tokens, class token dropped", async () => {
        const pic = testPicture(224, 224, 1);
        const ours = await vision.encode([item(pic, "image")], {});
        const r = reference(ref, pic, "image");
        expect(r.nTokens).toBe(256);
        expect(Array.from(ours.counts)).toEqual([256]);
        expect(Array.from(ours.merged)).toEqual([256]);
        expect(ours.kept).toEqual([null]);
        expect(ours.embeddings.width).toBe(TINY_CLIP.projDim);
        const e = errorStats(ours.embeddings.toFloat32Array(), r.tokens);
        console.info(`image tower: max abs error ${e.maxErr.toExponential(2)} (${e.relative.toExponential(2)} of rms ${e.rms.toFixed(3)})`);
        expect(e.rms).toBeGreaterThan(0.1);
        expect(e.relative).toBeLessThan(F32_BOUND);
    });

    it("video tower: 257 tokens, class token first", async () => {
        const pic = testPicture(224, 224, 2);
        const ours = await vision.encode([item(pic, "video")], {});
        const r = reference(ref, pic, "video");
        expect(r.nTokens).toBe(257);
        expect(Array.from(ours.counts)).toEqual([257]);
        expect(Array.from(ours.merged)).toEqual([257]);
        const values = ours.embeddings.toFloat32Array();
        const e = errorStats(values, r.tokens);
        console.info(`video tower: max abs error ${e.maxErr.toExponential(2)} (${e.relative.toExponential(2)} of rms ${e.rms.toFixed(3)})`);
        expect(e.relative).toBeLessThan(F32_BOUND);
        // Row 0 is the class token: the reference's, not a patch's (each row checked on its own).
        const D = TINY_CLIP.projDim;
        expect(errorStats(values.subarray(0, D), r.tokens.subarray(0, D)).relative).toBeLessThan(F32_BOUND);
        expect(errorStats(values.subarray(0, D), r.tokens.subarray(D, 2 * D)).relative).toBeGreaterThan(1e-2);
        // The patch tokens are those of the video tower, not the image tower's (different weights).
        const image = (await vision.encode([item(pic, "image")], {})).embeddings.toFloat32Array();
        expect(errorStats(values.subarray(D), image).relative).toBeGreaterThan(1e-2);
    });

    it("a batch of several items of both towers in one call equals each alone and the reference", async () => {
        const pictures = [testPicture(224, 224, 3), testPicture(300, 200, 4), testPicture(224, 224, 5), testPicture(200, 500, 6), testPicture(224, 224, 7)];
        const towers: ClipTower[] = ["image", "video", "video", "image", "image"];
        const items = pictures.map((p, i) => item(p, towers[i]!));
        const batch = await vision.encode(items, {});
        expect(Array.from(batch.counts)).toEqual([256, 257, 257, 256, 256]);
        const values = batch.embeddings.toFloat32Array();
        const D = TINY_CLIP.projDim;
        let offset = 0;
        for (let i = 0; i < items.length; i++) {
            const n = batch.counts[i]!;
            const mine = values.subarray(offset * D, (offset + n) * D);
            const alone = (await vision.encode([items[i]!], {})).embeddings.toFloat32Array();
            expect(errorStats(mine, alone).relative, `item ${i} batched vs alone`).toBeLessThan(1e-6);
            expect(errorStats(mine, reference(ref, pictures[i]!, towers[i]!).tokens).relative, `item ${i} vs reference`).toBeLessThan(F32_BOUND);
            offset += n;
        }
        // Batches of one item (maxBatchPatches below two items' patches) give the same values.
        const single = await vision.encode(items, { maxBatchPatches: 256 });
        expect(errorStats(single.embeddings.toFloat32Array(), values).relative).toBeLessThan(1e-6);
    });

    it("quick_gelu and gelu files each match their own activation, and differ", async () => {
        const geluPath = await tinyClipMmproj("encoder-gelu", { seed: 11, useGelu: true });
        const geluRef = await readClipProjector(geluPath);
        expect(geluRef.config.act).toBe("gelu");
        const gelu = await addon.loadVision({ path: geluPath, gpu: "cpu", threads: 2 });
        try {
            expect(gelu.hparams().visionAct).toBe("gelu");
            const pic = testPicture(224, 224, 8);
            const oursQuick = (await vision.encode([item(pic, "video")], {})).embeddings.toFloat32Array();
            const oursGelu = (await gelu.encode([item(pic, "video")], {})).embeddings.toFloat32Array();
            const refQuick = reference(ref, pic, "video").tokens;
            const refGelu = reference(geluRef, pic, "video").tokens;
            const quickErr = errorStats(oursQuick, refQuick).relative;
            const geluErr = errorStats(oursGelu, refGelu).relative;
            const apart = errorStats(refGelu, refQuick).relative;
            console.info(`quick_gelu ${quickErr.toExponential(2)}, gelu ${geluErr.toExponential(2)}; the two activations differ by ${apart.toExponential(2)} of rms`);
            expect(quickErr).toBeLessThan(F32_BOUND);
            expect(geluErr).toBeLessThan(F32_BOUND);
            // The same weights with the other activation are far outside the bound: the check can tell them apart.
            expect(apart).toBeGreaterThan(100 * F32_BOUND);
            expect(errorStats(oursGelu, refQuick).relative).toBeGreaterThan(100 * F32_BOUND);
        } finally {
            gelu.dispose();
        }
    });

    it("an f16 file (matrices in f16, vectors and positions f32) matches within f16 precision", async () => {
        const f16Path = await tinyClipMmproj("encoder-f16", { seed: 11, type: "f16" });
        const f16Ref = await readClipProjector(f16Path);
        expect(f16Ref.file.getTensor("v.blk.0.attn_q.weight")!.type).toBe("f16");
        expect(f16Ref.file.getTensor("v.position_embd.weight")!.type).toBe("f32");
        const f16 = await addon.loadVision({ path: f16Path, gpu: "cpu", threads: 2 });
        try {
            const pic = testPicture(224, 224, 9);
            for (const tower of ["image", "video"] as const) {
                const ours = (await f16.encode([item(pic, tower)], {})).embeddings.toFloat32Array();
                // The reference runs the f16-rounded weights in float64; ggml also rounds the activations entering
                // each f16 matrix product to f16 (its CPU vec-dot type), about 5e-4 relative each.
                const e = errorStats(ours, reference(f16Ref, pic, tower).tokens);
                console.info(`f16 ${tower} tower: ${e.relative.toExponential(2)} of rms`);
                expect(e.relative).toBeLessThan(2e-2);
            }
        } finally {
            f16.dispose();
        }
    });

    it("Vision.encode (lib's public API) encodes an image as 256 tokens of the reference", async () => {
        const pic = testPicture(300, 200, 10);
        const v = await loadVision({ mmproj: path, gpu: false });
        try {
            const result = await v.encode(Image.fromPixels({ data: pic.data, width: pic.width, height: pic.height, format: "rgb" }));
            expect(result.tokens).toBe(256);
            expect(result.grid).toEqual({ height: 16, width: 16 });
            expect(result.size).toEqual({ height: 224, width: 224 });
            expect(errorStats(result.embeddings, reference(ref, pic, "image").tokens).relative).toBeLessThan(F32_BOUND);
        } finally {
            await v.dispose();
        }
    });
});
