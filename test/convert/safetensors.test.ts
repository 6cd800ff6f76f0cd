// The safetensors reader: header validation, offset reads, exact widening of bf16/f16.
import { truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ConversionError } from "../../lib/errors.js";
import { ShardReader, openCheckpointTensors, readSafetensorsHeader, toFloat32 } from "../../lib/convert/safetensors.js";
import { tensorValues, toF16Bits, writeSafetensorsFile } from "../fixtures/hf-checkpoint.js";
import { checkpoint, expectedBf16Values, freshDir } from "./helpers.js";

let dir: string;
beforeAll(async () => {
    dir = await freshDir("safetensors");
});

/** Writes a file made of an 8-byte length and the given header text (plus `data` bytes). */
async function rawFile(name: string, header: string, data = Buffer.alloc(0), lengthOverride?: bigint): Promise<string> {
    const path = join(dir, name);
    const h = Buffer.from(header, "utf8");
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(lengthOverride ?? BigInt(h.length));
    await writeFile(path, Buffer.concat([len, h, data]));
    return path;
}

async function rejection(p: Promise<unknown>): Promise<ConversionError> {
    const err = await p.then(
        () => undefined,
        (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConversionError);
    return err as ConversionError;
}

describe("safetensors header", () => {
    it("parses shapes, dtypes and absolute offsets", async () => {
        const path = join(dir, "ok.safetensors");
        await writeSafetensorsFile(path, [
            { name: "a", shape: [2, 3] },
            { name: "b", shape: [5], dtype: "F32" },
        ]);
        const h = await readSafetensorsHeader(path);
        expect(h.metadata).toEqual({ format: "pt" });
        const [a, b] = h.tensors;
        expect(a).toMatchObject({ name: "a", dtype: "BF16", shape: [2, 3], offset: h.dataStart, byteLength: 12 });
        expect(b).toMatchObject({ name: "b", dtype: "F32", shape: [5], offset: h.dataStart + 12, byteLength: 20 });
        expect(h.dataStart % 8).toBe(0);
    });

    it("rejects malformed headers and truncated files, naming file and tensor", async () => {
        let e = await rejection(readSafetensorsHeader(await rawFile("json.safetensors", "{not json")));
        expect(e.message).toMatch(/malformed safetensors header: not valid JSON/);
        expect(e.file).toContain("json.safetensors");

        e = await rejection(readSafetensorsHeader(await rawFile("len.safetensors", "{}", Buffer.alloc(0), 1000n)));
        expect(e.message).toMatch(/truncated safetensors file: the header needs 1000 bytes/);

        e = await rejection(readSafetensorsHeader(await rawFile("huge.safetensors", "{}", Buffer.alloc(0), 1n << 60n)));
        expect(e.message).toMatch(/implausible/);

        e = await rejection(
            readSafetensorsHeader(await rawFile("off.safetensors", JSON.stringify({ w: { dtype: "BF16", shape: [4], data_offsets: [0, 6] } }), Buffer.alloc(8))),
        );
        expect(e.tensor).toBe("w");
        expect(e.message).toMatch(/hold 6 bytes but shape \[4\] of BF16 needs 8/);

        e = await rejection(
            readSafetensorsHeader(await rawFile("dt.safetensors", JSON.stringify({ w: { dtype: "Q4", shape: [4], data_offsets: [0, 8] } }), Buffer.alloc(8))),
        );
        expect(e.message).toMatch(/unknown dtype "Q4"/);

        e = await rejection(
            readSafetensorsHeader(
                await rawFile(
                    "overlap.safetensors",
                    JSON.stringify({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }),
                    Buffer.alloc(12),
                ),
            ),
        );
        expect(e.message).toMatch(/overlap/);

        const path = join(dir, "trunc.safetensors");
        await writeSafetensorsFile(path, [
            { name: "first", shape: [16] },
            { name: "second", shape: [16] },
        ]);
        await truncate(path, (await readSafetensorsHeader(path)).dataStart + 40);
        e = await rejection(readSafetensorsHeader(path));
        expect(e.message).toMatch(/truncated safetensors file/);
        expect(e.tensor).toBe("second");
        expect(e.message).toContain("trunc.safetensors, tensor second:");
    });

    it("reads a sharded checkpoint through its index", async () => {
        const ck = await checkpoint("tiny-sharded-untied", { shards: 3, tied: false });
        const t = await openCheckpointTensors(ck.dir);
        expect(t.files).toHaveLength(3);
        expect(t.index).toContain("model.safetensors.index.json");
        expect(t.tensors.size).toBe(ck.tensors.length);
        for (const f of ck.tensors) expect(t.tensors.get(f.name)!.file).toBe(f.file);
    });
});

describe("reading tensor data", () => {
    it("reads row ranges by offset and widens bf16 exactly", async () => {
        const ck = await checkpoint("tiny-tied", {});
        const t = (await openCheckpointTensors(ck.dir)).tensors.get("model.layers.0.mlp.down_proj.weight")!;
        const expected = expectedBf16Values(1, t.name, 64 * 128);
        const reader = new ShardReader();
        try {
            const buf = Buffer.alloc(10 * 128 * 2);
            await reader.read(t, 5 * 128 * 2, 10 * 128 * 2, buf); // rows 5..14
            const out = new Float32Array(10 * 128);
            toFloat32("BF16", buf, out.length, out);
            expect(Array.from(out)).toEqual(Array.from(expected.subarray(5 * 128, 15 * 128)));
        } finally {
            await reader.close();
        }
    });

    it("widens f16 exactly, including subnormals, infinities and NaN", () => {
        const values = [0, -0, 1, -2.5, 65504, 2 ** -24, 2 ** -14, 1 / 3, Infinity, -Infinity, NaN];
        const bytes = Buffer.alloc(values.length * 2);
        values.forEach((v, i) => bytes.writeUInt16LE(toF16Bits(v), 2 * i));
        const out = new Float32Array(values.length);
        toFloat32("F16", bytes, values.length, out);
        expect(Array.from(out.subarray(0, 7))).toEqual([0, -0, 1, -2.5, 65504, 2 ** -24, 2 ** -14]);
        expect(out[7]).toBe(Math.fround(0.333251953125)); // nearest f16 of 1/3
        expect(out[8]).toBe(Infinity);
        expect(out[9]).toBe(-Infinity);
        expect(Number.isNaN(out[10])).toBe(true);
        // generator values through f16 and back differ from the f32 value by at most half an f16 ulp
        const raw = tensorValues(3, "x", 1000);
        const b = Buffer.alloc(2000);
        raw.forEach((v, i) => b.writeUInt16LE(toF16Bits(v), 2 * i));
        const back = new Float32Array(1000);
        toFloat32("F16", b, 1000, back);
        raw.forEach((v, i) => expect(Math.abs(back[i]! - v)).toBeLessThanOrEqual(Math.max(2 ** -25, 2 ** (Math.floor(Math.log2(Math.abs(v))) - 11))));
    });

    it("reports a file truncated after its header was read", async () => {
        const path = join(dir, "late.safetensors");
        await writeSafetensorsFile(path, [{ name: "w", shape: [64] }]);
        const header = await readSafetensorsHeader(path);
        await truncate(path, header.dataStart + 10);
        const reader = new ShardReader();
        try {
            const e = await rejection(reader.read(header.tensors[0]!, 0, 128, Buffer.alloc(128)));
            expect(e.tensor).toBe("w");
            expect(e.message).toMatch(/unexpected end of file/);
        } finally {
            await reader.close();
        }
    });
});
