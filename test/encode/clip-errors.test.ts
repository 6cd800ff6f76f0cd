// Misuse of a Video-LLaVA projector gives errors, not crashes: the video tower asked of a file without it, crops and
// grids the CLIP towers cannot encode, bad towers and keeps, and files that break the contract at load time.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodePatches, preprocessFrames } from "../../lib/encode/stages.js";
import { ModelLoadError } from "../../lib/errors.js";
import { GgufValueType } from "../../lib/gguf/types.js";
import { loadVision } from "../../lib/index.js";
import { native } from "../../lib/native/load.js";
import type { NativeVision, NativeVisionItem } from "../../lib/native/types.js";
import { testPicture, tinyClipMmproj, type TinyClipOptions } from "../fixtures/tiny-clip-mmproj.js";

const addon = native();
let imageOnly: NativeVision;
let both: NativeVision;
const pic = testPicture(224, 224, 1);

function good(extra: Partial<NativeVisionItem> = {}): NativeVisionItem {
    return { rgb: pic.data, width: 224, height: 224, targetWidth: 224, targetHeight: 224, merge: 1, ...extra };
}

beforeAll(async () => {
    imageOnly = await addon.loadVision({ path: await tinyClipMmproj("errors-image-only", { seed: 41, videoTower: false }), gpu: "cpu", threads: 2 });
    both = await addon.loadVision({ path: await tinyClipMmproj("errors-both", { seed: 41 }), gpu: "cpu", threads: 2 });
});

afterAll(() => {
    imageOnly?.dispose();
    both?.dispose();
});

describe("a file with only the image tower", () => {
    it("says so and encodes images", async () => {
        expect(imageOnly.hparams().hasVideoTower).toBe(false);
        expect(Array.from((await imageOnly.encode([good()], {})).counts)).toEqual([256]);
    });

    it("refuses the video tower in encode, preprocess and encodePatches", async () => {
        const video = good({ tower: "video" });
        expect(() => imageOnly.encode([video], {})).toThrow(/items\[0\]\.tower is "video" but this projector .* has no video tower/);
        expect(() => imageOnly.preprocess([good(), video])).toThrow(/items\[1\]\.tower .* no video tower/);
        const [patches] = await preprocessFrames(imageOnly, [good()]);
        expect(() => imageOnly.encodePatches([{ patches: patches!, tower: "video" }])).toThrow(RangeError);
        // Patches preprocessed for the video tower of another projector cannot be encoded by this one's.
        const [videoPatches] = await preprocessFrames(both, [video]);
        expect(() => imageOnly.encodePatches([{ patches: videoPatches! }])).toThrow(/preprocessed for the video tower, which this projector .* does not have/);
        // ... but may be encoded by its image tower when the item says so.
        expect(Array.from((await encodePatches(imageOnly, [{ patches: videoPatches!, tower: "image" }])).counts)).toEqual([256]);
        // After all of that the projector still works.
        expect(Array.from((await imageOnly.encode([good()], {})).counts)).toEqual([256]);
    });
});

describe("items the CLIP towers cannot encode", () => {
    it("a tower that is neither image nor video", () => {
        expect(() => both.encode([good({ tower: "audio" as never })], {})).toThrow(TypeError);
        expect(() => both.encode([good({ tower: 1 as never })], {})).toThrow(/tower must be "image" or "video"/);
    });

    it("a crop of another size than image_size, or no crop and another target", () => {
        expect(() => both.encode([good({ crop: { left: 0, top: 0, width: 112, height: 112 } })], {})).toThrow(/encode 224x224 pixels of merge 1.*got 112x112/);
        expect(() => both.encode([good({ crop: { left: 0, top: 0, width: 224, height: 238 } })], {})).toThrow(RangeError);
        expect(() => both.encode([good({ crop: { left: 0, top: 0, width: 225, height: 224 } })], {})).toThrow(/multiple of patch size/);
        expect(() => both.encode([good({ targetWidth: 336 })], {})).toThrow(/encode 224x224 pixels/);
        expect(() => both.encode([good({ merge: 2, targetWidth: 224, targetHeight: 224 })], {})).toThrow(/of merge 1/);
    });

    it("a malformed crop", () => {
        expect(() => both.encode([good({ crop: 5 as never })], {})).toThrow(/crop must be an object/);
        expect(() => both.encode([good({ crop: { left: 0, top: 0, width: 224 } as never })], {})).toThrow(/crop\.height must be a number/);
        expect(() => both.encode([good({ crop: { left: 0.5, top: 0, width: 224, height: 224 } })], {})).toThrow(RangeError);
        expect(() => both.encode([good({ crop: { left: 2 ** 31, top: 0, width: 224, height: 224 } })], {})).toThrow(RangeError);
        // a crop lets the target be larger than any picture kept in memory, up to 2^30
        expect(() => both.encode([good({ targetWidth: 2 ** 30 + 1, crop: { left: 0, top: 0, width: 224, height: 224 } })], {})).toThrow(RangeError);
    });

    it("a crop outside the picture is not an error: it reads zeros (documented)", async () => {
        const result = await both.encode([good({ crop: { left: -300, top: 1000, width: 224, height: 224 } })], {});
        expect(Array.from(result.counts)).toEqual([256]);
    });

    it("keep indices out of the 256 patches", async () => {
        const [patches] = await preprocessFrames(both, [good({ tower: "video" })]);
        expect(() => both.encodePatches([{ patches: patches!, keep: Int32Array.from([256]) }])).toThrow(/ascending token indices in \[0, 256\)/);
        expect(() => both.encodePatches([{ patches: patches!, keep: Int32Array.from([5, 5]) }])).toThrow(RangeError);
        expect(() => both.encodePatches([{ patches: patches!, tower: "both" as never }])).toThrow(TypeError);
    });
});

describe("files that break the contract fail to load with the reason", () => {
    const cases: Array<[string, TinyClipOptions, RegExp]> = [
        ["crop_size other than image_size", { keys: { "video_llava.image.crop_size": { type: GgufValueType.UINT32, value: 196 } } }, /crop_size \(196\) must equal clip\.vision\.image_size \(224\)/],
        ["image_size not a multiple of the patch", { keys: { "clip.vision.image_size": { type: GgufValueType.UINT32, value: 220 } } }, /positive multiple of clip\.vision\.patch_size/],
        ["block_count against the feature layer", { keys: { "video_llava.vision.source_block_count": { type: GgufValueType.UINT32, value: 24 } } }, /feature_layer -2 of video_llava\.vision\.source_block_count 24 means 23 blocks/],
        ["no video_token_id", { keys: { "video_llava.video_token_id": null } }, /missing key video_llava\.video_token_id/],
        ["no image_size", { keys: { "clip.vision.image_size": null } }, /missing key clip\.vision\.image_size/],
        ["position embeddings of another grid", { positions: 1 + 15 * 15 }, /tensor v\.position_embd\.weight has shape \[32, 226\], expected \[32, 257\]/],
        ["position embeddings in f16", { positionType: "f16" }, /v\.position_embd\.weight must be f32/],
        ["another resample", { keys: { "video_llava.image.resample": { type: GgufValueType.STRING, value: "bilinear" } } }, /unsupported video_llava\.image\.resample 'bilinear'/],
        ["no vision encoder", { keys: { "clip.has_vision_encoder": { type: GgufValueType.BOOL, value: false } } }, /has_vision_encoder is false/],
    ];
    for (const [label, options, message] of cases) {
        it(label, async () => {
            const path = await tinyClipMmproj(`errors-load-${label.replace(/\W+/g, "-")}`, { seed: 42, ...options });
            await expect(addon.loadVision({ path, gpu: "cpu", threads: 2 })).rejects.toThrow(message);
            // lib's loader wraps it in a ModelLoadError
            await expect(loadVision({ mmproj: path, gpu: false })).rejects.toBeInstanceOf(ModelLoadError);
        });
    }

    it("lib accepts video_llava and rejects other projector types before loading", async () => {
        const path = await tinyClipMmproj("errors-load-projector-type", { seed: 42, keys: { "clip.projector_type": { type: GgufValueType.STRING, value: "mlp" } } });
        const err = await loadVision({ mmproj: path, gpu: false }).then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(ModelLoadError);
        expect((err as ModelLoadError).message).toMatch(/projector type "mlp" is not supported \(vidllama runs VideoLLaMA3 and Video-LLaVA projectors\)/);
    });
});
