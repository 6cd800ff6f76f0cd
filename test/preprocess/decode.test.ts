/**
 * Image decoding (native/decode/image-load.cpp through lib/decode/Image.ts) against Pillow's
 * `Image.open(...).convert("RGB")` — exact for PNG/BMP/GIF/lossless WebP, within a small tolerance for JPEG (stb_image
 * vs libjpeg-turbo) and lossy WebP — plus checks that do not need Pillow: alpha is dropped (not composited), grey is
 * replicated, raw pixels are validated, oversized images are refused from their header, and damaged data fails
 * with a MediaDecodeError that names the input.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { Image, toImage, DEFAULT_MAX_IMAGE_PIXELS } from "../../lib/decode/Image.js";
import { InvalidOptionError, MediaDecodeError } from "../../lib/errors.js";
import { native } from "../../lib/native/load.js";
import {
    FIXTURE_DIR,
    PYTHON,
    compareBytes,
    craftedPngHeader,
    hasPil,
    noiseImage,
    offsetGifFirstFrame,
    parseDecoded,
    pil,
    pilEncode,
    pngChunk,
    smoothImage,
    writeFixture,
    type PilJob,
    type Pixels,
} from "../fixtures/images.js";
import { Random } from "../fixtures/random.js";

const support = native().imageSupport();

async function decodeBytes(bytes: Uint8Array, maxPixels?: number): Promise<Pixels> {
    const img = await Image.fromBuffer(bytes, maxPixels === undefined ? undefined : { maxPixels }).decode();
    return { width: img.width, height: img.height, data: img.data };
}

async function decodeError(bytes: Uint8Array, maxPixels?: number): Promise<MediaDecodeError> {
    try {
        await decodeBytes(bytes, maxPixels);
    } catch (err) {
        expect(err).toBeInstanceOf(MediaDecodeError);
        return err as MediaDecodeError;
    }
    throw new Error("decoding was expected to fail");
}

/** Minimal stored (uncompressed) zlib stream, so that PNGs can be built without Pillow. */
function zlibStored(data: Uint8Array): Buffer {
    const parts: Buffer[] = [Buffer.from([0x78, 0x01])];
    for (let pos = 0; pos < data.length || pos === 0; pos += 65535) {
        const chunk = data.subarray(pos, Math.min(pos + 65535, data.length));
        const last = pos + 65535 >= data.length ? 1 : 0;
        const head = Buffer.alloc(5);
        head[0] = last;
        head.writeUInt16LE(chunk.length, 1);
        head.writeUInt16LE(~chunk.length & 0xffff, 3);
        parts.push(head, Buffer.from(chunk));
        if (data.length === 0) break;
    }
    let a = 1;
    let b = 0;
    for (const x of data) {
        a = (a + x) % 65521;
        b = (b + a) % 65521;
    }
    const adler = Buffer.alloc(4);
    adler.writeUInt32BE(((b << 16) | a) >>> 0, 0);
    parts.push(adler);
    return Buffer.concat(parts);
}

/** A PNG (8-bit, no filtering) of the given colour type: 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA. */
function makePng(width: number, height: number, colorType: 0 | 2 | 4 | 6, pixels: Uint8Array): Buffer {
    const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType];
    const raw = new Uint8Array(height * (1 + width * channels));
    for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * width * channels, (y + 1) * width * channels), y * (1 + width * channels) + 1);
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(width, 0);
    ihdr.writeUInt32BE(height, 4);
    ihdr[8] = 8;
    ihdr[9] = colorType;
    return Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        pngChunk("IHDR", ihdr),
        pngChunk("IDAT", zlibStored(raw)),
        pngChunk("IEND", new Uint8Array(0)),
    ]);
}

describe("decoding without Pillow", () => {
    it("drops alpha without compositing (RGBA PNG)", async () => {
        const rng = new Random(1);
        const rgba = noiseImage(rng, 23, 17, 4);
        for (let i = 3; i < rgba.data.length; i += 16) rgba.data[i] = 0; // some fully transparent pixels
        const out = await decodeBytes(makePng(23, 17, 6, rgba.data));
        expect([out.width, out.height]).toEqual([23, 17]);
        for (let p = 0; p < 23 * 17; p++) {
            expect([out.data[p * 3], out.data[p * 3 + 1], out.data[p * 3 + 2]]).toEqual([rgba.data[p * 4], rgba.data[p * 4 + 1], rgba.data[p * 4 + 2]]);
        }
    });

    it("replicates grey into R, G and B (grey and grey+alpha PNG)", async () => {
        const rng = new Random(2);
        const grey = noiseImage(rng, 19, 11, 1);
        const greyAlpha = noiseImage(rng, 19, 11, 2);
        const a = await decodeBytes(makePng(19, 11, 0, grey.data));
        const b = await decodeBytes(makePng(19, 11, 4, greyAlpha.data));
        for (let p = 0; p < 19 * 11; p++) {
            expect([a.data[p * 3], a.data[p * 3 + 1], a.data[p * 3 + 2]]).toEqual([grey.data[p], grey.data[p], grey.data[p]]);
            const g = greyAlpha.data[p * 2];
            expect([b.data[p * 3], b.data[p * 3 + 1], b.data[p * 3 + 2]]).toEqual([g, g, g]);
        }
    });

    it("decodes the same from a path, a file: URL and a buffer", async () => {
        const rgb = noiseImage(new Random(3), 9, 7);
        const png = makePng(9, 7, 2, rgb.data);
        const path = writeFixture("plain.png", png);
        const fromPath = await Image.fromFile(path).decode();
        const fromUrl = await Image.fromFile(pathToFileURL(path)).decode();
        const fromBuffer = await Image.fromBuffer(png).decode();
        expect(Buffer.from(fromPath.data).equals(Buffer.from(rgb.data))).toBe(true);
        expect(Buffer.from(fromUrl.data).equals(Buffer.from(rgb.data))).toBe(true);
        expect(Buffer.from(fromBuffer.data).equals(Buffer.from(rgb.data))).toBe(true);
    });

    it("refuses a PNG header claiming 50000x50000 before allocating, quickly and with little memory", async () => {
        const crafted = craftedPngHeader(50000, 50000);
        expect(crafted.length).toBeLessThan(100);
        const rssBefore = process.memoryUsage().rss;
        const t0 = performance.now();
        const err = await decodeError(crafted);
        const ms = performance.now() - t0;
        const grew = process.memoryUsage().rss - rssBefore;
        expect(err.message).toMatch(/50000x50000/);
        expect(err.message).toMatch(/maxPixels/);
        expect(err.source).toBe(`<Buffer ${crafted.length} bytes>`);
        expect(ms).toBeLessThan(200);
        expect(grew).toBeLessThan(64 * 1024 * 1024); // decoding would need 7.5 GB
        // the same from a file
        const path = writeFixture("bomb.png", crafted);
        await expect(Image.fromFile(path).decode()).rejects.toThrow(/refused before decoding/);
    });

    it("applies maxPixels exactly and allows raising it", async () => {
        const png = makePng(100, 100, 2, new Uint8Array(100 * 100 * 3));
        expect((await decodeError(png, 9999)).message).toMatch(/10000 pixels.*limit of 9999/);
        expect((await decodeBytes(png, 10000)).width).toBe(100);
        expect(DEFAULT_MAX_IMAGE_PIXELS).toBe(100_000_000);
        // a 50,000-pixel-wide image over the default limit is refused
        expect((await decodeError(craftedPngHeader(50000, 2001))).message).toMatch(/limit of 100000000/);
        // the crafted file passes the limit check when the limit allows it, then fails on its missing data
        expect((await decodeError(craftedPngHeader(400, 300))).message).not.toMatch(/maxPixels/);
        expect(() => Image.fromBuffer(png, { maxPixels: 0 })).toThrow(InvalidOptionError);
        expect(() => Image.fromBuffer(png, { maxPixels: 1.5 })).toThrow(InvalidOptionError);
        expect(() => Image.fromBuffer(png, { maxPixel: 5 } as never)).toThrow(/did you mean "maxPixels"/);
    });

    it("names unrecognised, unsupported, empty and missing inputs", async () => {
        const rng = new Random(4);
        const garbage = noiseImage(rng, 100, 1).data;
        garbage[0] = 0x12;
        expect((await decodeError(garbage)).message).toMatch(/format not recognised/);
        expect((await decodeError(Buffer.from("II*\0\x08\0\0\0 rest of a tiff", "latin1"))).message).toMatch(/TIFF/);
        expect((await decodeError(Buffer.from("\0\0\0\x1cftypavif", "latin1"))).message).toMatch(/AVIF/);
        expect((await decodeError(new Uint8Array(0))).message).toMatch(/empty/);
        const missing = join(FIXTURE_DIR, "does-not-exist.png");
        const err = (await Image.fromFile(missing)
            .decode()
            .then(
                () => undefined,
                (e: unknown) => e,
            )) as MediaDecodeError;
        expect(err).toBeInstanceOf(MediaDecodeError);
        expect(err.source).toBe(missing);
        expect(err.message).toMatch(/no such file/);
        mkdirSync(join(FIXTURE_DIR, "a-directory.png"), { recursive: true });
        await expect(Image.fromFile(join(FIXTURE_DIR, "a-directory.png")).decode()).rejects.toThrow(/directory/);
    });

    it("refuses truncated and corrupt PNG data", async () => {
        const png = makePng(30, 20, 2, noiseImage(new Random(5), 30, 20).data);
        expect((await decodeError(png.subarray(0, png.length - 100))).message).toMatch(/truncated/);
        expect((await decodeError(png.subarray(0, 30))).message).toMatch(/truncated/);
        const corrupt = Buffer.from(png);
        corrupt[200] ^= 0x55;
        expect((await decodeError(corrupt)).message).toMatch(/corrupt PNG.*CRC/);
        // only the IEND chunk missing: accepted, as PIL does
        expect((await decodeBytes(png.subarray(0, png.length - 12))).width).toBe(30);
    });

    it("decodes lazily, caches the result and retries after a failure", async () => {
        const path = join(FIXTURE_DIR, "appears-later.png");
        rmSync(path, { force: true });
        const img = Image.fromFile(path); // nothing read yet: no error although the file does not exist
        await expect(img.decode()).rejects.toThrow(MediaDecodeError);
        writeFileSync(path, makePng(4, 3, 2, new Uint8Array(36).fill(7)));
        const first = await img.decode();
        const second = await img.decode();
        expect(first).toBe(second);
        expect(img.decode()).toBe(img.decode());
        expect(first.width).toBe(4);
    });

    it("decodes many images concurrently", async () => {
        const rng = new Random(6);
        const images = Array.from({ length: 16 }, (_, i) => noiseImage(rng, 20 + i, 10 + i));
        const decoded = await Promise.all(images.map((im) => decodeBytes(makePng(im.width, im.height, 2, im.data))));
        decoded.forEach((d, i) => expect(Buffer.from(d.data).equals(Buffer.from(images[i]!.data))).toBe(true));
    });
});

describe("raw pixels and toImage", () => {
    it("accepts rgb and rgba (alpha dropped) and copies the pixels", async () => {
        const rgba = new Uint8ClampedArray([1, 2, 3, 4, 5, 6, 7, 8]);
        const img = Image.fromPixels({ data: rgba, width: 2, height: 1, format: "rgba" });
        rgba[0] = 99;
        expect(Array.from((await img.decode()).data)).toEqual([1, 2, 3, 5, 6, 7]);
        const rgb = new Uint8Array([9, 8, 7]);
        const img2 = Image.fromPixels({ data: rgb, width: 1, height: 1, format: "rgb" });
        rgb[0] = 0;
        expect(Array.from((await img2.decode()).data)).toEqual([9, 8, 7]);
        expect(img2.source).toBe("<pixels 1x1 rgb>");
    });

    it("validates raw pixel objects with InvalidOptionError", () => {
        const data = new Uint8Array(12);
        const bad: unknown[] = [
            { data, width: 2, height: 2, format: "rgba" }, // 12 bytes but needs 16
            { data, width: 2, height: 2, format: "bgr" },
            { data, width: 0, height: 2, format: "rgb" },
            { data, width: 2.5, height: 2, format: "rgb" },
            { data: [1, 2, 3], width: 1, height: 1, format: "rgb" },
            { data, width: 2, height: 2, format: "rgb", stride: 6 },
            null,
        ];
        for (const b of bad) expect(() => Image.fromPixels(b as never), JSON.stringify(b)).toThrow(InvalidOptionError);
        expect(() => Image.fromPixels({ data, width: 2, height: 2, format: "rgba" })).toThrow(/16 bytes/);
    });

    it("toImage accepts an Image, a path, a URL, a buffer or raw pixels", () => {
        const img = Image.fromPixels({ data: new Uint8Array(3), width: 1, height: 1, format: "rgb" });
        expect(toImage(img)).toBe(img);
        expect(toImage("x.png").source).toBe("x.png");
        expect(toImage(Buffer.alloc(10)).source).toBe("<Buffer 10 bytes>");
        expect(toImage(new Uint8Array(5)).source).toBe("<Buffer 5 bytes>");
        expect(toImage({ data: new Uint8Array(3), width: 1, height: 1, format: "rgb" }).source).toBe("<pixels 1x1 rgb>");
        expect(() => toImage(42 as never)).toThrow(InvalidOptionError);
        expect(() => toImage("" as never)).toThrow(InvalidOptionError);
        expect(() => Image.fromFile(new URL("https://example.com/a.png"))).toThrow(InvalidOptionError);
    });
});

describe.skipIf(!hasPil())("decoding vs Pillow's Image.open().convert('RGB')", () => {
    const w = 61;
    const h = 47;
    let noise: Pixels;
    let noiseRgba: Pixels;
    let smooth: Pixels;
    const encoded = new Map<string, Buffer>();

    type Case = { name: string; job: PilJob; input: Uint8Array; tolerance?: { max: number; mean: number }; skip?: boolean };
    const cases: Case[] = [];

    beforeAll(() => {
        const rng = new Random(7);
        noise = noiseImage(rng, w, h);
        noiseRgba = noiseImage(rng, w, h, 4);
        smooth = smoothImage(w, h, 5);
        const enc = (mode: "RGB" | "RGBA" | "L", src: Pixels, format: string, save: Record<string, unknown> = {}, convert?: string) =>
            ({ op: "encode", width: src.width, height: src.height, mode, format, save, convert }) as PilJob;
        const jpegTol = { max: 6, mean: 0.3 };
        cases.push(
            { name: "png-rgb", job: enc("RGB", noise, "PNG"), input: noise.data },
            { name: "png-rgba", job: enc("RGBA", noiseRgba, "PNG"), input: noiseRgba.data },
            { name: "png-L", job: enc("RGB", noise, "PNG", {}, "L"), input: noise.data },
            { name: "png-LA", job: enc("RGBA", noiseRgba, "PNG", {}, "LA"), input: noiseRgba.data },
            { name: "png-P", job: enc("RGB", smooth, "PNG", {}, "P"), input: smooth.data },
            { name: "png-P-transparency", job: enc("RGB", noise, "PNG", { transparency: 5 }, "P"), input: noise.data },
            { name: "png-1bit", job: enc("RGB", noise, "PNG", {}, "1"), input: noise.data },
            { name: "png-optimized", job: enc("RGB", smooth, "PNG", { optimize: true }), input: smooth.data },
            { name: "bmp-rgb", job: enc("RGB", noise, "BMP"), input: noise.data },
            { name: "bmp-rgba", job: enc("RGBA", noiseRgba, "BMP"), input: noiseRgba.data },
            { name: "bmp-P", job: enc("RGB", smooth, "BMP", {}, "P"), input: smooth.data },
            { name: "bmp-L", job: enc("RGB", noise, "BMP", {}, "L"), input: noise.data },
            { name: "bmp-1bit", job: enc("RGB", noise, "BMP", {}, "1"), input: noise.data },
            { name: "gif", job: enc("RGB", noise, "GIF"), input: noise.data },
            { name: "gif-smooth", job: enc("RGB", smooth, "GIF"), input: smooth.data },
            { name: "gif-transparency", job: enc("RGB", noise, "GIF", { transparency: 3 }, "P"), input: noise.data },
            { name: "gif-interlaced", job: enc("RGB", smooth, "GIF", { interlace: true }), input: smooth.data },
            { name: "jpeg-q90-noise", job: enc("RGB", noise, "JPEG", { quality: 90 }), input: noise.data, tolerance: jpegTol },
            { name: "jpeg-q95-420", job: enc("RGB", smooth, "JPEG", { quality: 95 }), input: smooth.data, tolerance: jpegTol },
            { name: "jpeg-q95-444", job: enc("RGB", smooth, "JPEG", { quality: 95, subsampling: 0 }), input: smooth.data, tolerance: jpegTol },
            { name: "jpeg-progressive", job: enc("RGB", smooth, "JPEG", { quality: 90, progressive: true }), input: smooth.data, tolerance: jpegTol },
            { name: "jpeg-grey", job: enc("RGB", smooth, "JPEG", { quality: 90 }, "L"), input: smooth.data, tolerance: jpegTol },
            { name: "webp-lossless", job: enc("RGB", noise, "WEBP", { lossless: true }), input: noise.data, skip: !support.webp },
            { name: "webp-lossless-rgba", job: enc("RGBA", noiseRgba, "WEBP", { lossless: true }), input: noiseRgba.data, skip: !support.webp },
            { name: "webp-lossy", job: enc("RGB", smooth, "WEBP", { quality: 80 }), input: smooth.data, tolerance: { max: 2, mean: 0.05 }, skip: !support.webp },
            { name: "webp-lossy-rgba", job: enc("RGBA", noiseRgba, "WEBP", { quality: 80 }), input: noiseRgba.data, tolerance: { max: 2, mean: 0.05 }, skip: !support.webp },
        );
        const results = pil(cases.map((c) => ({ job: c.job, input: c.input })));
        results.forEach((r, i) => {
            if (!r.ok) throw new Error(`${cases[i]!.name}: ${r.error}`);
            encoded.set(cases[i]!.name, r.data);
        });
    });

    it("decodes every format like Pillow (exact unless a tolerance is given)", async () => {
        const refs = pil(cases.map((c) => ({ job: { op: "decode" } as PilJob, input: encoded.get(c.name)! })));
        const report: string[] = [];
        for (let i = 0; i < cases.length; i++) {
            const c = cases[i]!;
            if (c.skip) continue;
            const ref = parseDecoded(refs[i]!);
            if ("error" in ref) throw new Error(`${c.name}: Pillow failed: ${ref.error}`);
            const ours = await decodeBytes(encoded.get(c.name)!);
            expect([ours.width, ours.height], c.name).toEqual([ref.width, ref.height]);
            const cmp = compareBytes(ours.data, ref.data);
            report.push(`${c.name} max ${cmp.maxDiff} exact ${(cmp.exact * 100).toFixed(2)}%`);
            if (c.tolerance) {
                expect(cmp.maxDiff, c.name).toBeLessThanOrEqual(c.tolerance.max);
                expect(cmp.meanDiff, c.name).toBeLessThanOrEqual(c.tolerance.mean);
            } else {
                expect(cmp.maxDiff, c.name).toBe(0);
            }
        }
        console.log(`decode vs Pillow: ${report.join("; ")}`);
    });

    it("takes the first frame of animated GIF and WebP files", async () => {
        const jobs: { job: PilJob; input: Uint8Array }[] = [];
        // Two-frame files: Pillow's writer takes the extra frames from append_images, which cannot cross the JSON
        // protocol; so build them in Python from the frames passed as one tall image.
        const tall = new Uint8Array(w * h * 3 * 2);
        tall.set(smooth.data);
        tall.set(noise.data, w * h * 3);
        const script = (format: string, extra: string) =>
            `import io,sys\nfrom PIL import Image\nd=sys.stdin.buffer.read()\nim=Image.frombytes('RGB',(${w},${h * 2}),d)\n` +
            `a=im.crop((0,0,${w},${h}));b=im.crop((0,${h},${w},${h * 2}))\nbuf=io.BytesIO();a.save(buf,'${format}',save_all=True,append_images=[b]${extra})\nsys.stdout.buffer.write(buf.getvalue())`;
        const formats = [["GIF", ", transparency=0"], ...(support.webpAnimation ? [["WEBP", ", lossless=True"]] : [])];
        for (const [format, extra] of formats) {
            const r = spawnSync(PYTHON, ["-c", script(format!, extra!)], { input: tall, maxBuffer: 1 << 26 });
            expect(r.status, r.stderr?.toString()).toBe(0);
            jobs.push({ job: { op: "decode" }, input: r.stdout });
        }
        const refs = pil(jobs);
        for (let i = 0; i < jobs.length; i++) {
            const ref = parseDecoded(refs[i]!);
            if ("error" in ref) throw new Error(ref.error);
            const ours = await decodeBytes(jobs[i]!.input);
            expect(compareBytes(ours.data, ref.data).maxDiff, formats[i]![0]).toBe(0);
        }
        if (!support.webpAnimation) console.log("animated WebP not checked: this build has no libwebpdemux");
    });

    it("matches Pillow for a GIF whose first frame covers only part of the canvas", async () => {
        const plain = pilEncode(noise, "RGB", "GIF", {}, "P");
        const transparent = pilEncode(noise, "RGB", "GIF", { transparency: 9 }, "P");
        for (const gif of [offsetGifFirstFrame(plain, 9, 5, 4, 3, 7), offsetGifFirstFrame(transparent, 9, 5, 4, 3, 7)]) {
            const [r] = pil([{ job: { op: "decode" }, input: gif }]);
            const ref = parseDecoded(r!);
            if ("error" in ref) throw new Error(ref.error);
            const ours = await decodeBytes(gif);
            expect([ours.width, ours.height]).toEqual([w + 9, h + 5]);
            expect(compareBytes(ours.data, ref.data).maxDiff).toBe(0);
        }
    });

    it("accepts and refuses truncated files of every format as Pillow does", async () => {
        // Pillow accepts a few harmless cuts (PNG without IEND, GIF without its trailer, BMP without the padding of
        // its last row) and refuses the rest; so must we.
        const names = ["png-rgb", "bmp-rgb", "gif", "jpeg-q90-noise", ...(support.webp ? ["webp-lossy", "webp-lossless"] : [])];
        const outcomes: string[] = [];
        for (const name of names) {
            const full = encoded.get(name)!;
            for (const cut of [1, 2, 3, 12, 50, Math.floor(full.length / 2)]) {
                const part = full.subarray(0, full.length - cut);
                const [pr] = pil([{ job: { op: "decode" }, input: part }]);
                const ours = await decodeBytes(part).then(
                    () => undefined,
                    (err: unknown) => err as MediaDecodeError,
                );
                expect(ours === undefined, `${name} cut ${cut}: Pillow ${pr!.ok ? "accepts" : "refuses"} it`).toBe(pr!.ok);
                if (ours) expect(ours.message, `${name} cut ${cut}`).toMatch(/truncated|corrupt/i);
                if (pr!.ok) outcomes.push(`${name} -${cut}`);
            }
        }
        console.log(`truncated files both decoders accept: ${outcomes.join(", ")}`);
    });

    it("refuses oversized JPEG, GIF, BMP and WebP headers before decoding", async () => {
        const jpeg = Buffer.from(encoded.get("jpeg-q95-420")!);
        const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
        jpeg.writeUInt16BE(50000, sof + 5);
        jpeg.writeUInt16BE(50000, sof + 7);
        const gif = Buffer.from(encoded.get("gif")!);
        gif.writeUInt16LE(65535, 6);
        gif.writeUInt16LE(65535, 8);
        const bmp = Buffer.from(encoded.get("bmp-rgb")!);
        bmp.writeInt32LE(50000, 18);
        bmp.writeInt32LE(50000, 22);
        const cases: [string, Buffer][] = [["JPEG", jpeg], ["GIF", gif], ["BMP", bmp]];
        if (support.webp) {
            // VP8L header: 14 bits width-1, 14 bits height-1 -> 16384 x 16384
            const webp = Buffer.from(encoded.get("webp-lossless")!);
            const at = webp.indexOf("VP8L") + 9;
            const bits = webp.readUInt32LE(at);
            webp.writeUInt32LE(((bits & ~0x0fffffff) | 0x3fff | (0x3fff << 14)) >>> 0, at);
            cases.push(["WebP", webp]);
        }
        for (const [name, data] of cases) {
            const err = await decodeError(data);
            expect(err.message, name).toMatch(new RegExp(`${name} image is \\d+x\\d+ = \\d+ pixels.*refused before decoding`));
        }
    });

});

describe.skipIf(support.webp)("builds without libwebp", () => {
    it("refuses WebP with an error that names the missing support", async () => {
        const riff = Buffer.from("RIFF\x20\0\0\0WEBPVP8L\x10\0\0\0\x2f\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", "latin1");
        expect((await decodeError(riff)).message).toMatch(/WebP.*not supported.*libwebp/);
    });
});
