// The vision pipeline's stages as separate native calls (Vision.preprocess, Vision.prune, Vision.encodePatches
// through lib/encode/stages.ts) against the fused Vision.encode, on the tiny VideoLLaMA3 checkpoint: the same
// embeddings bit for bit, keep masks equal to the float64 DiffFP reference, and misuse rejected with errors.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VisionProjector } from "../../lib/encode/vision.js";
import { encodePatches, preprocessFrames, pruneFrame } from "../../lib/encode/stages.js";
import { native } from "../../lib/native/load.js";
import type { NativeEncodeResult, NativeFrameState, NativePatchesHandle, NativeVision, NativeVisionItem } from "../../lib/native/types.js";
import { targetSizes } from "../../lib/preprocess/resize-rule.js";
import { referenceDiffFP } from "../reference/diffp.js";
import { seededRandom } from "../reference/tensor.js";
import { tinyVl3, type TinyVl3 } from "../vision/fixture.js";

const addon = native();
let fixture: TinyVl3;
let vision: NativeVision;
let projector: VisionProjector;

beforeAll(async () => {
    fixture = await tinyVl3();
    vision = await addon.loadVision({ path: fixture.mmproj, gpu: "cpu", threads: 2 });
    projector = await VisionProjector.load(fixture.mmproj, { gpu: false });
}, 600_000);

afterAll(async () => {
    vision?.dispose();
    await projector?.dispose();
});

interface Frame {
    data: Uint8Array;
    width: number;
    height: number;
}

/** Gradients and noise: every patch differs from its neighbours. */
function picture(width: number, height: number, seed: number): Frame {
    const rng = seededRandom(seed);
    const data = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
            const i = (y * width + x) * 3;
            data[i] = (x * 255) / Math.max(1, width - 1);
            data[i + 1] = (y * 255) / Math.max(1, height - 1);
            data[i + 2] = Math.floor(rng() * 256);
        }
    }
    return { data, width, height };
}

/**
 * A static noisy background with a bright block that moves right by `step` pixels a frame, and stops moving from
 * frame `stopAt` on: frames with tokens both kept and dropped, then frames pruned down to `minTokens`.
 */
function movingBlock(count: number, width: number, height: number, stopAt: number, step = 9): Frame[] {
    const background = picture(width, height, 99).data;
    const frames: Frame[] = [];
    for (let f = 0; f < count; f++) {
        const data = background.slice();
        const x0 = Math.min(f, stopAt) * step;
        for (let y = 8; y < 26; y++) {
            for (let x = x0; x < Math.min(width, x0 + 18); x++) data.set([250, 240, 10], (y * width + x) * 3);
        }
        frames.push({ data, width, height });
    }
    return frames;
}

function item(frame: Frame, target: { width: number; height: number }, merge: number, prune?: { threshold: number; minTokens: number }): NativeVisionItem {
    return { rgb: frame.data, width: frame.width, height: frame.height, targetWidth: target.width, targetHeight: target.height, merge, ...(prune ? { prune } : {}) };
}

/** Index of the first float whose bits differ, -1 when the arrays are bit-identical. */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
    if (a.length !== b.length) return Math.min(a.length, b.length);
    const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
    const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
    return -1;
}

function expectSameResult(staged: NativeEncodeResult, fused: NativeEncodeResult) {
    expect(staged.embeddings.width).toBe(fused.embeddings.width);
    expect(staged.embeddings.nTokens).toBe(fused.embeddings.nTokens);
    expect(firstBitDifference(staged.embeddings.toFloat32Array(), fused.embeddings.toFloat32Array())).toBe(-1);
    expect(Array.from(staged.counts)).toEqual(Array.from(fused.counts));
    expect(Array.from(staged.merged)).toEqual(Array.from(fused.merged));
    expect(staged.kept.map((k) => (k ? Array.from(k) : null))).toEqual(fused.kept.map((k) => (k ? Array.from(k) : null)));
}

/** preprocess → prune (items with `prune`, in order) → encodePatches, the way VisionProjector.encode composes them. */
async function staged(items: NativeVisionItem[], frameState: NativeFrameState) {
    const patches = await preprocessFrames(vision, items);
    const pruned = patches.map((p, i) => (items[i]!.prune ? pruneFrame(vision, p, frameState, items[i]!.prune) : undefined));
    const result = await encodePatches(vision, patches.map((p, i) => ({ patches: p, keep: pruned[i]?.keep ?? null })));
    return { patches, pruned, result };
}

function indices(mask: boolean[]): number[] {
    return mask.flatMap((keep, t) => (keep ? [t] : []));
}

describe("preprocess → prune → encodePatches equals encode", () => {
    it("an image (merge 1, resized)", async () => {
        const frame = picture(75, 40, 11);
        const [target] = targetSizes([{ width: 75, height: 40, mergeSize: 1 }], { patchSize: 14, minTokens: fixture.minTokens, maxTokens: fixture.maxTokens });
        const it = item(frame, target!, 1);
        const fused = await vision.encode([it], {});
        const [patches] = await preprocessFrames(vision, [it]);
        expect(patches!.gridHeight).toBe(target!.height / 14);
        expect(patches!.gridWidth).toBe(target!.width / 14);
        expect(patches!.merge).toBe(1);
        expect(patches!.tokens).toBe(patches!.gridHeight * patches!.gridWidth);
        // The rows are those of the resize and patchify bindings, which test/preprocess checks against the reference.
        const hp = vision.hparams();
        const resized = await addon.resizeRgb(frame.data, 75, 40, target!.width, target!.height);
        const expected = await addon.patchify(resized, target!.width, target!.height, {
            patchSize: 14,
            mergeSize: 1,
            mean: hp.imageMean,
            std: hp.imageStd,
            rescale: hp.rescaleFactor,
        });
        expect(firstBitDifference(patches!.toFloat32Array(), expected.patches)).toBe(-1);
        const result = await encodePatches(vision, [{ patches: patches! }]);
        expectSameResult(result, fused);
        expect(result.counts[0]).toBe(patches!.tokens);
        // The same patches encode again to the same bits (a Patches object is not consumed).
        expectSameResult(await encodePatches(vision, [{ patches: patches!, keep: null }]), fused);
        // VisionProjector.encode, which composes the stages, returns the same as well.
        expectSameResult(await projector.encode([it]), fused);
    });

    it("video frames pruned across two calls, frameState persisting", async () => {
        const frames = movingBlock(8, 84, 56, 5);
        const [target] = targetSizes([{ width: 84, height: 56, frames: frames.length, mergeSize: 2 }], {
            patchSize: 14,
            minTokens: fixture.minTokens,
            maxTokens: fixture.maxTokens,
        });
        const prune = { threshold: 0.1, minTokens: 1 };
        const items = frames.map((f) => item(f, target!, 2, prune));
        const calls = [items.slice(0, 4), items.slice(4)];

        const fusedState = new addon.FrameState();
        const fused = [];
        for (const call of calls) fused.push(await vision.encode(call, {}, undefined, undefined, fusedState));

        const stagedState = new addon.FrameState();
        const ours = [];
        for (const call of calls) ours.push(await staged(call, stagedState));
        const projectorState = new addon.FrameState();
        for (let c = 0; c < calls.length; c++) {
            expectSameResult(ours[c]!.result, fused[c]!);
            expectSameResult(await projector.encode(calls[c]!, { frameState: projectorState }), fused[c]!);
        }
        // The second call's first frame was compared with the first call's last one: a moving block keeps a few
        // tokens, and the frames after it stopped only the minimum.
        const perFrame = ours[0]!.patches[0]!.tokens;
        const counts = [...fused[0]!.counts, ...fused[1]!.counts];
        expect(counts[0]).toBe(perFrame);
        expect(counts[4]).toBeGreaterThan(prune.minTokens);
        expect(counts[4]).toBeLessThan(perFrame);
        expect(counts.slice(6)).toEqual([prune.minTokens, prune.minTokens]);
        // Without the persisted frame, frame 4 would have been a first frame.
        const fresh = await vision.encode(calls[1]!, {}, undefined, undefined, new addon.FrameState());
        expect(fresh.counts[0]).toBe(perFrame);
    });

    it("keep indices and distances equal the float64 DiffFP reference", async () => {
        const frames = movingBlock(6, 84, 56, 3, 5);
        const [target] = targetSizes([{ width: 84, height: 56, frames: frames.length, mergeSize: 2 }], {
            patchSize: 14,
            minTokens: fixture.minTokens,
            maxTokens: fixture.maxTokens,
        });
        const patches = await preprocessFrames(vision, frames.map((f) => item(f, target!, 2)));
        const { gridHeight, gridWidth } = patches[0]!;
        for (const [threshold, minTokens] of [[0.1, 1], [3, 0], [20, 4]] as const) {
            const frameState = new addon.FrameState();
            // One frame a call: the frame state carries each frame to the next, the reference sees the whole video.
            const results = patches.map((p) => pruneFrame(vision, p, frameState, { threshold, minTokens }));
            const ref = referenceDiffFP(patches.map((p) => Float64Array.from(p.toFloat32Array())), gridHeight, gridWidth, 2, threshold, minTokens);
            results.forEach((r, f) => {
                const all = Array.from({ length: ref.tokensPerFrame }, (_, t) => t);
                expect(r.keep ? Array.from(r.keep) : all, `frame ${f}, threshold ${threshold}`).toEqual(indices(ref.mask[f]!));
                if (f === 0) {
                    expect(r.keep).toBeNull();
                    expect(r.distances).toBeUndefined();
                } else {
                    expect(Array.from(r.distances!)).toEqual(Array.from(ref.distances[f]!, (d) => Math.fround(d)));
                }
            });
            expect(results.some((r) => r.keep && r.keep.length < ref.tokensPerFrame)).toBe(true);
        }
    });

    it("prune takes the projector's settings when left out, and reset() forgets the frame", async () => {
        const frames = movingBlock(2, 84, 56, 0);
        const target = { width: 84, height: 56 };
        const patches = await preprocessFrames(vision, frames.map((f) => item(f, target, 2)));
        const hp = vision.hparams();
        const a = new addon.FrameState();
        const b = new addon.FrameState();
        pruneFrame(vision, patches[0]!, a);
        pruneFrame(vision, patches[0]!, b, { threshold: hp.diffThreshold, minTokens: hp.minTokensPerFrame });
        const byDefault = pruneFrame(vision, patches[1]!, a);
        const explicit = pruneFrame(vision, patches[1]!, b, { threshold: hp.diffThreshold, minTokens: hp.minTokensPerFrame });
        expect(byDefault).toEqual(explicit);
        expect(byDefault.keep).not.toBeNull(); // identical frames
        a.reset();
        expect(pruneFrame(vision, patches[1]!, a).keep).toBeNull();
        // A frame of another grid counts as a first frame.
        const [other] = await preprocessFrames(vision, [item(frames[0]!, { width: 56, height: 56 }, 2)]);
        expect(pruneFrame(vision, other!, b)).toEqual({ keep: null });
    });

    it("an explicit keep selects those tokens of the full encoding", async () => {
        const frame = picture(56, 56, 5);
        const [patches] = await preprocessFrames(vision, [item(frame, { width: 56, height: 56 }, 2)]);
        const full = (await encodePatches(vision, [{ patches: patches! }])).embeddings.toFloat32Array();
        const keep = Int32Array.from([1, 3]);
        const some = await encodePatches(vision, [{ patches: patches!, keep }]);
        expect(Array.from(some.counts)).toEqual([2]);
        expect(some.kept[0] && Array.from(some.kept[0])).toEqual([1, 3]);
        const width = some.embeddings.width;
        const rows = some.embeddings.toFloat32Array();
        for (const [r, t] of [...keep].entries()) {
            for (let i = 0; i < width; i++) expect(rows[r * width + i]).toBeCloseTo(full[t * width + i]!, 4);
        }
        // Every index listed is the same as none listed; none kept gives no tokens.
        expect((await encodePatches(vision, [{ patches: patches!, keep: Int32Array.from([0, 1, 2, 3]) }])).kept).toEqual([null]);
        expect(Array.from((await encodePatches(vision, [{ patches: patches!, keep: new Int32Array(0) }])).counts)).toEqual([0]);
    });
});

describe("misuse gives errors, not crashes", () => {
    const target = { width: 56, height: 56 };
    const good = () => item(picture(56, 56, 1), target, 2);
    let patches: NativePatchesHandle;

    beforeAll(async () => {
        [patches] = (await preprocessFrames(vision, [good()])) as [NativePatchesHandle];
    });

    it("preprocess", async () => {
        const v = vision as unknown as { preprocess(...args: unknown[]): Promise<unknown> };
        expect(() => v.preprocess("nope")).toThrow(TypeError);
        expect(() => v.preprocess([1])).toThrow(/items\[0\] must be an object/);
        expect(() => v.preprocess([{ ...good(), rgb: [1, 2, 3] }])).toThrow(/items\[0\]\.rgb must be a Uint8Array/);
        expect(() => v.preprocess([{ ...good(), rgb: new Uint8Array(10) }])).toThrow(RangeError);
        expect(() => v.preprocess([{ ...good(), targetWidth: 57 }])).toThrow(/multiple of patch size/);
        expect(() => v.preprocess([{ ...good(), merge: 0 }])).toThrow(RangeError);
        expect(() => v.preprocess([{ ...good(), width: undefined }])).toThrow(/items\[0\]\.width must be a number/);
        expect(() => v.preprocess([good()], {})).toThrow(/AbortFlag/);
        const controller = new AbortController();
        controller.abort(new Error("stop"));
        await expect(preprocessFrames(vision, [good()], controller.signal)).rejects.toThrow("stop");
    });

    it("prune", async () => {
        const v = vision as unknown as { prune(...args: unknown[]): unknown };
        const state = new addon.FrameState();
        expect(() => v.prune()).toThrow(/patches must be a Patches object/);
        expect(() => v.prune({ gridHeight: 4, gridWidth: 4, merge: 2, tokens: 4 }, state)).toThrow(TypeError);
        const embeddings = (await vision.encode([good()], {})).embeddings;
        expect(() => v.prune(embeddings, state)).toThrow(TypeError);
        expect(() => v.prune(patches, {})).toThrow(/frameState must be a FrameState/);
        expect(() => v.prune(patches)).toThrow(/frameState must be a FrameState/);
        expect(() => v.prune(patches, state, 3)).toThrow(/options must be an object/);
        expect(() => v.prune(patches, state, { threshold: -1 })).toThrow(RangeError);
        expect(() => v.prune(patches, state, { threshold: "0.1" })).toThrow(TypeError);
        expect(() => v.prune(patches, state, { minTokens: 1.5 })).toThrow(RangeError);
        expect(() => new (addon.Patches as unknown as new () => unknown)()).toThrow(/created by Vision\.preprocess/);
    });

    it("encodePatches", async () => {
        const v = vision as unknown as { encodePatches(...args: unknown[]): Promise<unknown> };
        expect(() => v.encodePatches({})).toThrow(/items must be an array/);
        expect(() => v.encodePatches([{}])).toThrow(/items\[0\]\.patches must be a Patches object/);
        expect(() => v.encodePatches([{ patches, keep: [0, 1] }])).toThrow(/keep must be an Int32Array/);
        expect(() => v.encodePatches([{ patches, keep: Int32Array.from([1, 0]) }])).toThrow(/ascending token indices in \[0, 4\)/);
        expect(() => v.encodePatches([{ patches, keep: Int32Array.from([1, 1]) }])).toThrow(RangeError);
        expect(() => v.encodePatches([{ patches, keep: Int32Array.from([4]) }])).toThrow(RangeError);
        expect(() => v.encodePatches([{ patches, keep: Int32Array.from([-1]) }])).toThrow(RangeError);
        expect(() => v.encodePatches([{ patches }], { maxBatchPatches: 0 })).toThrow(RangeError);
        expect(() => v.encodePatches([{ patches }], 5)).toThrow(/options must be an object/);
        expect(() => v.encodePatches([{ patches }], {}, "progress")).toThrow(/onProgress must be a function/);
        // One encode at a time per projector. The first call is long (hundreds of items), so that it is still running
        // when the second comes even on a loaded machine (a single tiny item can finish before the next line runs).
        const first = v.encodePatches(Array.from({ length: 400 }, () => ({ patches })));
        expect(() => v.encodePatches([{ patches }])).toThrow(expect.objectContaining({ code: "VL_BUSY" }));
        await first;
        const controller = new AbortController();
        controller.abort(new Error("halt"));
        await expect(encodePatches(vision, [{ patches }], { signal: controller.signal })).rejects.toThrow("halt");
    });

    it("a disposed projector refuses every stage; its Patches stay usable elsewhere", async () => {
        const other = await addon.loadVision({ path: fixture.mmproj, gpu: "cpu", threads: 2 });
        const [own] = await other.preprocess([good()]);
        other.dispose();
        expect(() => other.preprocess([good()])).toThrow(expect.objectContaining({ code: "VL_DISPOSED" }));
        expect(() => other.prune(own!, new addon.FrameState())).toThrow(expect.objectContaining({ code: "VL_DISPOSED" }));
        expect(() => other.encodePatches([{ patches: own! }])).toThrow(expect.objectContaining({ code: "VL_DISPOSED" }));
        const result = await encodePatches(vision, [{ patches: own! }]);
        expect(result.counts[0]).toBe(own!.tokens);
        // After all of the above the projector still encodes.
        expectSameResult(await encodePatches(vision, [{ patches }]), await vision.encode([good()], {}));
    });
});
