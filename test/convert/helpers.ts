/**
 * Shared pieces of the converter tests: fixture checkpoints generated once per process under test/.fixtures/convert,
 * independent decoding of the bf16 source values, and small numeric helpers.
 */
import { mkdir, readdir, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { tensorValues, toBf16Bits, writeHfCheckpoint, type HfCheckpoint, type HfCheckpointOptions } from "../fixtures/hf-checkpoint.js";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const fixturesRoot = join(repoRoot, "test", ".fixtures", "convert");

const cache = new Map<string, Promise<HfCheckpoint>>();

/** A checkpoint written once per test process (keyed by `key`) under test/.fixtures/convert/ckpt-<key>. */
export function checkpoint(key: string, options: Omit<HfCheckpointOptions, "dir">): Promise<HfCheckpoint> {
    let p = cache.get(key);
    if (!p) {
        p = writeHfCheckpoint({ ...options, dir: join(fixturesRoot, `ckpt-${key}`) });
        cache.set(key, p);
    }
    return p;
}

/** A fresh empty directory under test/.fixtures/convert. */
export async function freshDir(name: string): Promise<string> {
    const dir = join(fixturesRoot, name);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    return dir;
}

/** Files in a directory (empty list when it does not exist). */
export async function listDir(dir: string): Promise<string[]> {
    try {
        return (await readdir(dir)).sort();
    } catch {
        return [];
    }
}

/**
 * The checkpoint's value of tensor `name` as f32, computed from the generator (not from the file): the generated
 * f32 values rounded to bf16 with the fixture's own rounding, then widened.
 */
export function expectedBf16Values(seed: number, name: string, count: number, weightScale = 1): Float32Array {
    const raw = tensorValues(seed, name, count, weightScale);
    const out = new Float32Array(count);
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) u32[i] = toBf16Bits(raw[i]!) << 16;
    return out;
}

/** √(Σ(a−b)²/Σb²). */
export function relRms(actual: ArrayLike<number>, reference: ArrayLike<number>): number {
    let e = 0;
    let r = 0;
    for (let i = 0; i < reference.length; i++) {
        const d = actual[i]! - reference[i]!;
        e += d * d;
        r += reference[i]! * reference[i]!;
    }
    return Math.sqrt(e / r);
}

/** Index of the largest value. */
export function argmax(values: ArrayLike<number>): number {
    let best = 0;
    for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
    return best;
}

/** Pearson correlation of two equally long arrays. */
export function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
    const n = a.length;
    let ma = 0;
    let mb = 0;
    for (let i = 0; i < n; i++) {
        ma += a[i]!;
        mb += b[i]!;
    }
    ma /= n;
    mb /= n;
    let sab = 0;
    let saa = 0;
    let sbb = 0;
    for (let i = 0; i < n; i++) {
        const x = a[i]! - ma;
        const y = b[i]! - mb;
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    return sab / Math.sqrt(saa * sbb);
}

/** True when the native addon is configured (VIDLLAMA_ADDON_PATH or a local build). */
export const addonPath = process.env.VIDLLAMA_ADDON_PATH;
