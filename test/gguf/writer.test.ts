import { spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { GgufFormatError, InvalidOptionError } from "../../lib/errors.js";
import { readGguf, readTensorData, type GgufValue } from "../../lib/gguf/reader.js";
import { ggmlTypeByName, GgufValueType as T, tensorByteSize } from "../../lib/gguf/types.js";
import { GgufWriter } from "../../lib/gguf/writer.js";
import { Random } from "../fixtures/random.js";
import { llamaCppDir } from "../fixtures/tiny-qwen2.js";
import { loadAddon, tempDir } from "./helpers.js";

const { dir, cleanup } = tempDir();
afterAll(cleanup);

const rng = new Random(42);
const unicode = ["", "a", "héllo", "日本語のテキスト", "emoji 🦙🎬 and \u0000 nul", "Ġworld", "\n\t\r", "combining e\u0301", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢"];

/** Every scalar type at its limits, and every array item type. */
const values: Array<[string, GgufValue]> = [
    ["u8.min", { type: T.UINT8, value: 0 }],
    ["u8.max", { type: T.UINT8, value: 255 }],
    ["i8.min", { type: T.INT8, value: -128 }],
    ["i8.max", { type: T.INT8, value: 127 }],
    ["u16.max", { type: T.UINT16, value: 65535 }],
    ["i16.min", { type: T.INT16, value: -32768 }],
    ["u32.max", { type: T.UINT32, value: 4294967295 }],
    ["i32.min", { type: T.INT32, value: -2147483648 }],
    ["f32.third", { type: T.FLOAT32, value: Math.fround(1 / 3) }],
    ["f32.eps", { type: T.FLOAT32, value: Math.fround(1e-6) }],
    ["f32.neg", { type: T.FLOAT32, value: -65504 }],
    ["f32.inf", { type: T.FLOAT32, value: -Infinity }],
    ["bool.true", { type: T.BOOL, value: true }],
    ["bool.false", { type: T.BOOL, value: false }],
    ["str.empty", { type: T.STRING, value: "" }],
    ["str.unicode", { type: T.STRING, value: unicode.join("|") }],
    ["str.long", { type: T.STRING, value: "x".repeat(3 * 1024 * 1024 + 7) + "🦙" }],
    ["u64.small", { type: T.UINT64, value: 12345 }],
    ["u64.safe", { type: T.UINT64, value: Number.MAX_SAFE_INTEGER }],
    ["u64.max", { type: T.UINT64, value: 2n ** 64n - 1n }],
    ["i64.min", { type: T.INT64, value: -(2n ** 63n) }],
    ["i64.neg", { type: T.INT64, value: -5 }],
    ["f64.pi", { type: T.FLOAT64, value: Math.PI }],
    ["f64.tiny", { type: T.FLOAT64, value: 5e-324 }],
    ["arr.u8", { type: T.ARRAY, itemType: T.UINT8, value: Uint8Array.of(0, 1, 255) }],
    ["arr.i8", { type: T.ARRAY, itemType: T.INT8, value: Int8Array.of(-128, 0, 127) }],
    ["arr.u16", { type: T.ARRAY, itemType: T.UINT16, value: Uint16Array.of(0, 65535) }],
    ["arr.i16", { type: T.ARRAY, itemType: T.INT16, value: Int16Array.of(-32768, 32767) }],
    ["arr.u32", { type: T.ARRAY, itemType: T.UINT32, value: Uint32Array.of(0, 4294967295, 7) }],
    ["arr.i32", { type: T.ARRAY, itemType: T.INT32, value: Int32Array.from({ length: 1000 }, (_, i) => i * 1000 - 500000) }],
    ["arr.f32", { type: T.ARRAY, itemType: T.FLOAT32, value: Float32Array.of(0.5, -1e-6, 3.25e10) }],
    ["arr.bool", { type: T.ARRAY, itemType: T.BOOL, value: [true, false, true, true] }],
    ["arr.str", { type: T.ARRAY, itemType: T.STRING, value: unicode }],
    ["arr.u64", { type: T.ARRAY, itemType: T.UINT64, value: BigUint64Array.of(0n, 2n ** 64n - 1n) }],
    ["arr.i64", { type: T.ARRAY, itemType: T.INT64, value: BigInt64Array.of(-(2n ** 63n), 1n) }],
    ["arr.f64", { type: T.ARRAY, itemType: T.FLOAT64, value: Float64Array.of(Math.E, -0) }],
    ["arr.empty.str", { type: T.ARRAY, itemType: T.STRING, value: [] }],
    ["arr.empty.f32", { type: T.ARRAY, itemType: T.FLOAT32, value: new Float32Array(0) }],
    // many short strings cross the reader's 1 MiB buffer many times (batched decoding + refills)
    ["arr.many", { type: T.ARRAY, itemType: T.STRING, value: Array.from({ length: 200_000 }, (_, i) => randomString(i)) }],
];

function randomString(i: number): string {
    const pieces = ["a", "é", "中", "🦙", " ", "Ġ", "z", "ß"];
    let s = "";
    const n = i % 13;
    for (let k = 0; k < n; k++) s += pieces[rng.int(pieces.length)];
    return s;
}

/** Tensor types and how to make their bytes (native quantizer where ggml has one, else seeded random bytes). */
const tensorSpecs: Array<{ name: string; type: string; shape: number[] }> = [
    { name: "f32.matrix", type: "f32", shape: [64, 3] },
    { name: "f16.vector", type: "f16", shape: [33] },
    { name: "bf16.matrix", type: "bf16", shape: [16, 4] },
    { name: "q8_0.matrix", type: "q8_0", shape: [64, 5] },
    { name: "q4_0.matrix", type: "q4_0", shape: [96, 2] },
    { name: "q4_K.matrix", type: "q4_K", shape: [256, 3] },
    { name: "q6_K.matrix", type: "q6_K", shape: [512, 2] },
    { name: "iq4_nl.matrix", type: "iq4_nl", shape: [32, 7] },
    { name: "q8_K.raw", type: "q8_K", shape: [256, 1] },
    { name: "i32.4d", type: "i32", shape: [2, 3, 4, 5] },
    { name: "empty", type: "f32", shape: [0] },
];

async function tensorBytes(type: string, shape: number[]): Promise<Buffer> {
    const addon = loadAddon();
    const quantizable = addon.ggmlTypes().some((t) => t.name === type);
    const n = shape.reduce((a, b) => a * b, 1);
    if (quantizable && n > 0) {
        const src = rng.fillNormal(new Float32Array(n), 1);
        return addon.quantize(type, src, n / shape[0]!, shape[0]!, 1);
    }
    return Buffer.from(rng.bytes(tensorByteSize(type, shape)));
}

async function* chunked(bytes: Buffer, sizes: number[]): AsyncGenerator<Uint8Array> {
    let p = 0;
    let i = 0;
    while (p < bytes.length) {
        const n = sizes[i++ % sizes.length]!;
        yield bytes.subarray(p, p + n);
        p += n;
    }
}

async function writeSample(path: string, alignment?: number) {
    const w = new GgufWriter(path, { bufferSize: 4096 });
    if (alignment !== undefined) w.setU32("general.alignment", alignment);
    for (const [key, v] of values) w.setValue(key, v);
    const data = new Map<string, Buffer>();
    for (const t of tensorSpecs) {
        w.addTensor(t.name, t.type, t.shape);
        data.set(t.name, await tensorBytes(t.type, t.shape));
    }
    const dataOffset = await w.writeHeader();
    for (const [i, t] of tensorSpecs.entries()) {
        const bytes = data.get(t.name)!;
        // alternate: one view, odd-sized async chunks, a sync iterable
        if (i % 3 === 0) await w.writeTensor(t.name, bytes);
        else if (i % 3 === 1) await w.writeTensor(t.name, chunked(bytes, [1, 7, 100, 3]));
        else await w.writeTensor(t.name, [bytes.subarray(0, 5), bytes.subarray(5)]);
    }
    const size = await w.finish();
    return { data, dataOffset, size };
}

describe("GgufWriter → readGguf round trip", () => {
    it("keeps every value with its type, and every tensor's bytes", async () => {
        const path = join(dir, "roundtrip.gguf");
        const { data, dataOffset, size } = await writeSample(path);
        expect(statSync(path).size).toBe(size);
        const f = await readGguf(path);
        expect(f.version).toBe(3);
        expect(f.dataOffset).toBe(dataOffset);
        expect(f.dataOffset % 32).toBe(0);
        expect([...f.metadata.keys()]).toEqual(values.map(([k]) => k));
        for (const [key, v] of values) expect(f.getValue(key), key).toEqual(v);
        expect(f.tensors.map((t) => t.name)).toEqual(tensorSpecs.map((t) => t.name));
        for (const t of tensorSpecs) {
            const info = f.getTensor(t.name)!;
            expect(info.type).toBe(t.type);
            expect(info.shape).toEqual(t.shape);
            expect(info.byteSize).toBe(data.get(t.name)!.length);
            expect((info.offset - f.dataOffset) % 32).toBe(0);
            expect((await readTensorData(f, t.name)).equals(data.get(t.name)!), t.name).toBe(true);
        }
        // the file ends with the last tensor's padding
        const last = f.tensors[f.tensors.length - 1]!;
        expect(f.fileSize).toBe(Math.ceil((last.offset + last.byteSize) / 32) * 32);
    });

    it("honours general.alignment", async () => {
        const path = join(dir, "align64.gguf");
        await writeSample(path, 64);
        const f = await readGguf(path);
        expect(f.alignment).toBe(64);
        expect(f.dataOffset % 64).toBe(0);
        for (const t of f.tensors) expect((t.offset - f.dataOffset) % 64).toBe(0);
    });

    it("copying a file through reader and writer reproduces it byte for byte", async () => {
        const a = join(dir, "a.gguf");
        const b = join(dir, "b.gguf");
        await writeSample(a);
        const fa = await readGguf(a);
        const w = new GgufWriter(b);
        for (const [k, v] of fa.metadata) w.setValue(k, v);
        for (const t of fa.tensors) w.addTensor(t.name, t.type, t.shape);
        await w.writeHeader();
        for (const t of fa.tensors) await w.writeTensor(t.name, await readTensorData(fa, t.name));
        await w.finish();
        expect(readFileSync(b).equals(readFileSync(a))).toBe(true);
    });

    it("copies llama.cpp's Qwen2 vocabulary header byte for byte", async () => {
        const src = join(llamaCppDir(), "models", "ggml-vocab-qwen2.gguf");
        const f = await readGguf(src);
        const out = join(dir, "vocab-copy.gguf");
        const w = new GgufWriter(out);
        for (const [k, v] of f.metadata) w.setValue(k, v);
        await w.writeHeader();
        await w.finish();
        // the original has no tensors and no trailing padding; ours pads the header to 32 bytes with zeros
        const original = readFileSync(src);
        const copy = readFileSync(out);
        expect(copy.subarray(0, original.length).equals(original)).toBe(true);
        expect(copy.length - original.length).toBeLessThan(32);
        expect(copy.subarray(original.length).every((b) => b === 0)).toBe(true);
    });
});

const python = spawnSync("python3", ["-c", "import numpy"], { encoding: "utf8" });
const ggufPy = join(llamaCppDir(), "gguf-py");

describe.skipIf(python.status !== 0)("files written by GgufWriter read back with llama.cpp's gguf-py", () => {
    it("agrees on every key, type, value, tensor offset and tensor byte", async () => {
        const path = join(dir, "python.gguf");
        // gguf-py is slow on 200k strings: leave the big array out
        const w = new GgufWriter(path);
        for (const [key, v] of values) if (key !== "arr.many" && key !== "str.long") w.setValue(key, v);
        const data = new Map<string, Buffer>();
        for (const t of tensorSpecs) {
            w.addTensor(t.name, t.type, t.shape);
            data.set(t.name, await tensorBytes(t.type, t.shape));
        }
        await w.writeHeader();
        for (const t of tensorSpecs) await w.writeTensor(t.name, data.get(t.name)!);
        await w.finish();

        const script = `
import sys, json, hashlib
sys.path.insert(0, ${JSON.stringify(ggufPy)})
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
def conv(x):
    if isinstance(x, bool): return x
    if isinstance(x, int): return str(x)
    if isinstance(x, float): return repr(x)
    if isinstance(x, list): return [conv(y) for y in x]
    return x
fields = {}
for name, f in r.fields.items():
    if name.startswith("GGUF."): continue
    fields[name] = {"types": [int(t) for t in f.types], "value": conv(f.contents())}
raw = open(sys.argv[1], "rb").read()
tensors = [{"name": t.name, "type": int(t.tensor_type), "shape": [int(d) for d in t.shape], "offset": int(t.data_offset),
            "bytes": int(t.n_bytes), "sha": hashlib.sha256(raw[t.data_offset:t.data_offset + t.n_bytes]).hexdigest()} for t in r.tensors]
print(json.dumps({"fields": fields, "tensors": tensors, "alignment": r.alignment, "data_offset": r.data_offset}))
`;
        const res = spawnSync("python3", ["-c", script, path], { encoding: "utf8", maxBuffer: 64 << 20 });
        expect(res.status, res.stderr).toBe(0);
        const py = JSON.parse(res.stdout) as {
            fields: Record<string, { types: number[]; value: unknown }>;
            tensors: Array<{ name: string; type: number; shape: number[]; offset: number; bytes: number; sha: string }>;
            data_offset: number;
        };
        const f = await readGguf(path);
        expect(py.data_offset).toBe(f.dataOffset);
        // compare with what was written (not with our reader): gguf-py is the independent reader here
        const written = values.filter(([key]) => key !== "arr.many" && key !== "str.long");
        expect(Object.keys(py.fields)).toEqual(written.map(([key]) => key));
        for (const [key, v] of written) {
            const p = py.fields[key]!;
            expect(p.types[0], key).toBe(v.type);
            if (v.type === T.ARRAY) {
                if (v.value.length > 0) expect(p.types[1], key).toBe(v.itemType);
                const items = Array.from(v.value as ArrayLike<unknown>);
                expect((p.value as unknown[]).length, key).toBe(items.length);
                items.forEach((x, i) => expectSame(key, v.itemType, x, (p.value as unknown[])[i]));
            } else {
                expectSame(key, v.type, v.value, p.value);
            }
        }
        const { createHash } = await import("node:crypto");
        expect(py.tensors.map((t) => t.name)).toEqual(tensorSpecs.map((t) => t.name));
        for (const t of tensorSpecs) {
            const p = py.tensors.find((x) => x.name === t.name)!;
            expect(p.type, t.name).toBe(ggmlTypeByName(t.type)!.id);
            expect(p.offset, t.name).toBe(f.getTensor(t.name)!.offset);
            expect(p.offset % 32, t.name).toBe(0);
            expect(p.bytes, t.name).toBe(data.get(t.name)!.length);
            // gguf-py reports shapes ne0 first like ggml
            expect(p.shape, t.name).toEqual(t.shape);
            expect(p.sha, t.name).toBe(createHash("sha256").update(data.get(t.name)!).digest("hex"));
        }
    });
});

function expectSame(key: string, type: number, ours: unknown, theirs: unknown): void {
    if (type === T.STRING || type === T.BOOL) expect(theirs, key).toEqual(ours);
    else if (type === T.FLOAT32 || type === T.FLOAT64) {
        const n = theirs === "inf" ? Infinity : theirs === "-inf" ? -Infinity : Number(theirs);
        expect(Object.is(n, ours) || n === ours, `${key}: ${String(theirs)} vs ${String(ours)}`).toBe(true);
    } else expect(BigInt(theirs as string), key).toBe(BigInt(ours as number | bigint));
}

describe("GgufWriter validation", () => {
    it("rejects values that do not fit their type", () => {
        const w = new GgufWriter(join(dir, "never.gguf"));
        expect(() => w.setU8("k", 256)).toThrow(InvalidOptionError);
        expect(() => w.setI8("k", -129)).toThrow(InvalidOptionError);
        expect(() => w.setU32("k", -1)).toThrow(/from 0 to 4294967295/);
        expect(() => w.setI32("k", 1.5)).toThrow(InvalidOptionError);
        expect(() => w.setU64("k", -1)).toThrow(InvalidOptionError);
        expect(() => w.setU64("k", 2n ** 64n)).toThrow(InvalidOptionError);
        expect(() => w.setU64("k", 2 ** 60)).toThrow(InvalidOptionError); // not a safe integer: pass a bigint
        expect(() => w.setString("k", 5 as unknown as string)).toThrow(InvalidOptionError);
        expect(() => w.setBool("k", 1 as unknown as boolean)).toThrow(InvalidOptionError);
        expect(() => w.setArray("k", T.UINT8, [1, 2, 300])).toThrow(/k\[2\]/);
        expect(() => w.setArray("k", T.STRING, ["a", 1 as unknown as string])).toThrow(/k\[1\]/);
        expect(() => w.setKv("k", T.ARRAY, [1])).toThrow(/itemType/);
        expect(() => w.setKv("k", 13 as never, 1)).toThrow(InvalidOptionError);
        expect(() => w.setString("", "x")).toThrow(InvalidOptionError);
        expect(() => w.setU32("general.alignment", 24)).toThrow(/power of 2/);
    });

    it("rejects bad tensor declarations", () => {
        const w = new GgufWriter(join(dir, "never.gguf"));
        w.addTensor("a", "f32", [4]);
        expect(() => w.addTensor("a", "f32", [4])).toThrow(/not declared before/);
        expect(() => w.addTensor("b", "q4_K", [128])).toThrow(/multiple of 256/);
        expect(() => w.addTensor("b", "q9", [128])).toThrow(InvalidOptionError);
        expect(() => w.addTensor("b", "f32", [1, 1, 1, 1, 1])).toThrow(/1 to 4 dimensions/);
        expect(() => w.addTensor("b", "f32", [])).toThrow(InvalidOptionError);
        expect(() => w.addTensor("x".repeat(64), "f32", [1])).toThrow(/64 bytes/);
        expect(() => w.setU32("general.alignment", 64)).toThrow(/before the first addTensor/);
    });

    it("enforces the call order and the declared sizes", async () => {
        const path = join(dir, "order.gguf");
        const w = new GgufWriter(path);
        w.addTensor("a", "f32", [4]);
        w.addTensor("b", "f32", [2]);
        await expect(w.writeTensor("a", new Float32Array(4))).rejects.toThrow(/writeHeader\(\) has not been called/);
        await expect(w.finish()).rejects.toThrow(GgufFormatError);
        await w.writeHeader();
        expect(() => w.setU32("late", 1)).toThrow(/header has already been written/);
        expect(() => w.addTensor("c", "f32", [1])).toThrow(GgufFormatError);
        await expect(w.writeTensor("b", new Float32Array(2))).rejects.toThrow(/next tensor in declaration order, "a"/);
        await w.writeTensor("a", new Float32Array([1, 2, 3, 4]));
        await expect(w.finish()).rejects.toThrow(/not written: b/);
        await expect(w.writeTensor("b", new Float32Array(3))).rejects.toThrow(/more than its 8 bytes/);
        // a failed write leaves the writer unusable
        await expect(w.writeTensor("b", new Float32Array(2))).rejects.toThrow(/earlier write failed/);
    });

    it("rejects a short tensor", async () => {
        const w = new GgufWriter(join(dir, "short.gguf"));
        w.addTensor("a", "f32", [4]);
        await w.writeHeader();
        await expect(w.writeTensor("a", chunked(Buffer.alloc(12), [5]))).rejects.toThrow(/received 12 bytes but needs 16/);
    });
});
