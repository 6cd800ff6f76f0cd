/**
 * Every GgufFormatError reason, on files built byte by byte here (independently of lib/gguf/writer.ts) or cut from a
 * valid file at many offsets.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { GgufFormatError } from "../../lib/errors.js";
import { readGguf } from "../../lib/gguf/reader.js";
import { Random } from "../fixtures/random.js";
import { tempDir } from "./helpers.js";

const { dir, cleanup } = tempDir();
afterAll(cleanup);

/** Little-endian byte builder for hand-made GGUF files. */
class Raw {
    private parts: Buffer[] = [];
    get length(): number {
        return this.parts.reduce((n, p) => n + p.length, 0);
    }
    bytes(b: Buffer | string): this {
        this.parts.push(typeof b === "string" ? Buffer.from(b, "latin1") : b);
        return this;
    }
    u32(v: number): this {
        const b = Buffer.alloc(4);
        b.writeUInt32LE(v >>> 0);
        return this.bytes(b);
    }
    i32(v: number): this {
        const b = Buffer.alloc(4);
        b.writeInt32LE(v);
        return this.bytes(b);
    }
    u64(v: number | bigint): this {
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(BigInt(v));
        return this.bytes(b);
    }
    str(s: string): this {
        const b = Buffer.from(s, "utf8");
        return this.u64(b.length).bytes(b);
    }
    header(nTensors: number, nKv: number, version = 3): this {
        return this.bytes("GGUF").u32(version).u64(nTensors).u64(nKv);
    }
    kvString(key: string, value: string): this {
        return this.str(key).i32(8).str(value);
    }
    kvU32(key: string, value: number): this {
        return this.str(key).i32(4).u32(value);
    }
    tensor(name: string, shape: number[], type: number, offset: number): this {
        this.str(name).u32(shape.length);
        for (const d of shape) this.u64(d);
        return this.i32(type).u64(offset);
    }
    padTo(alignment: number): this {
        const n = (alignment - (this.length % alignment)) % alignment;
        return this.bytes(Buffer.alloc(n));
    }
    zeros(n: number): this {
        return this.bytes(Buffer.alloc(n));
    }
    build(): Buffer {
        return Buffer.concat(this.parts);
    }
}

let counter = 0;
function save(bytes: Buffer | Uint8Array, name = `f${counter++}.gguf`): string {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
}

async function failure(path: string): Promise<GgufFormatError> {
    const before = process.memoryUsage().arrayBuffers;
    let error: unknown;
    try {
        await readGguf(path);
    } catch (err) {
        error = err;
    }
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(error, `reading ${path} should fail`).toBeInstanceOf(GgufFormatError);
    // never allocates from an unchecked length (the largest legit buffer is the 1 MiB read buffer)
    expect(grown).toBeLessThan(32 * 1024 * 1024);
    return error as GgufFormatError;
}

/** A small valid file: strings, arrays, two f32 tensors. */
function validFile(): { bytes: Buffer; offsets: Record<string, number> } {
    const r = new Raw().header(2, 4);
    const offsets: Record<string, number> = {};
    r.kvString("general.architecture", "test");
    offsets.midKey = r.length + 8 + 3;
    r.str("tokenizer.ggml.tokens").i32(9).i32(8).u64(3);
    offsets.midArray = r.length + 8 + 2;
    r.str("abc").str("défg").str("hi");
    offsets.stringValue = r.length;
    r.kvString("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}");
    r.str("scores").i32(9).i32(6).u64(4);
    offsets.midNumberArray = r.length + 6;
    for (let i = 0; i < 4; i++) r.bytes(Buffer.from(new Float32Array([i * 0.5]).buffer));
    offsets.tensorInfo = r.length;
    r.tensor("a.weight", [8, 2], 0, 0);
    r.tensor("b.weight", [4], 0, 64);
    r.padTo(32);
    offsets.data = r.length;
    r.zeros(64);
    offsets.secondTensor = r.length;
    r.bytes(Buffer.from(new Float32Array([1, 2, 3, 4]).buffer));
    return { bytes: r.build(), offsets };
}

describe("GgufFormatError reasons", () => {
    it("the hand-made valid file parses (control)", async () => {
        const { bytes, offsets } = validFile();
        const f = await readGguf(save(bytes));
        expect(f.dataOffset).toBe(offsets.data);
        expect(f.tensors.map((t) => [t.name, t.offset, t.byteSize])).toEqual([
            ["a.weight", offsets.data, 64],
            ["b.weight", offsets.data + 64, 16],
        ]);
        expect(f.getArray("tokenizer.ggml.tokens")).toEqual(["abc", "défg", "hi"]);
        expect([...(f.getArray("scores") as Float32Array)]).toEqual([0, 0.5, 1, 1.5]);
    });

    describe("NOT_GGUF", () => {
        it("random bytes", async () => {
            const bytes = new Random(7).bytes(4096);
            const e = await failure(save(bytes));
            expect(e.reason).toBe("NOT_GGUF");
            expect(e.message).toMatch(/not a GGUF file/);
        });

        it("a safetensors file is named as such", async () => {
            const header = Buffer.from(JSON.stringify({ __metadata__: { format: "pt" }, w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }));
            const len = Buffer.alloc(8);
            len.writeBigUInt64LE(BigInt(header.length));
            const e = await failure(save(Buffer.concat([len, header, Buffer.alloc(8)]), "model.safetensors"));
            expect(e.reason).toBe("NOT_GGUF");
            expect(e.message).toMatch(/safetensors/);
        });

        it("JSON, a Git LFS pointer, a ZIP (PyTorch), an HTML page and an empty file", async () => {
            const cases: Array<[string | Buffer, RegExp]> = [
                ['{\n  "architectures": ["Videollama3Qwen2ForCausalLM"]\n}\n', /JSON/],
                ["version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", /Git LFS pointer/],
                [Buffer.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0]), /ZIP|PyTorch/],
                ["<!DOCTYPE html><html><body>Not found</body></html>", /HTML/],
                ["", /empty/],
            ];
            for (const [content, pattern] of cases) {
                const e = await failure(save(typeof content === "string" ? Buffer.from(content) : content));
                expect(e.reason).toBe("NOT_GGUF");
                expect(e.message).toMatch(pattern);
            }
        });

        it("a directory", async () => {
            const e = await failure(dir);
            expect(e.reason).toBe("NOT_GGUF");
            expect(e.message).toMatch(/directory/);
        });
    });

    describe("UNSUPPORTED_VERSION", () => {
        it("versions 1 and 4", async () => {
            for (const version of [1, 4]) {
                const e = await failure(save(new Raw().header(0, 0, version).build()));
                expect(e.reason).toBe("UNSUPPORTED_VERSION");
                expect(e.message).toContain(`version ${version}`);
                expect(e.offset).toBe(4);
            }
        });

        it("a big-endian file", async () => {
            const e = await failure(save(new Raw().bytes("GGUF").u32(0x03000000).zeros(16).build()));
            expect(e.reason).toBe("UNSUPPORTED_VERSION");
            expect(e.message).toMatch(/big-endian/);
        });

        it("version 2 is accepted", async () => {
            const f = await readGguf(save(new Raw().header(0, 1, 2).kvString("general.architecture", "llama").build()));
            expect(f.version).toBe(2);
            expect(f.architecture).toBe("llama");
        });
    });

    describe("TRUNCATED", () => {
        it("cut at many offsets: magic, version, counts, mid-key, mid-string, mid-array, tensor infos, data", async () => {
            const { bytes, offsets } = validFile();
            const cuts = [
                2,
                6,
                20,
                offsets.midKey,
                offsets.midArray,
                offsets.stringValue + 8 + 23 + 4 + 8 + 10, // inside the chat template value
                offsets.midNumberArray,
                offsets.tensorInfo + 5,
                offsets.tensorInfo + 40,
                offsets.data - 1,
                offsets.data + 10, // inside the first tensor's data
                offsets.secondTensor + 8, // inside the second tensor's data
                bytes.length - 1,
            ];
            for (const cut of cuts) {
                expect(cut).toBeLessThan(bytes.length);
                const e = await failure(save(bytes.subarray(0, cut)));
                expect(e.reason, `cut at ${cut}: ${e.message}`).toBe("TRUNCATED");
                expect(e.offset).toBeLessThanOrEqual(cut);
            }
        });

        it("every single cut point of the header gives TRUNCATED", async () => {
            const { bytes, offsets } = validFile();
            for (let cut = 1; cut < offsets.data; cut++) {
                const e = await failure(save(bytes.subarray(0, cut), "cut.gguf"));
                expect(e.reason, `cut at ${cut}: ${e.message}`).toBe("TRUNCATED");
            }
        });

        it("names the tensor whose data is missing", async () => {
            const { bytes } = validFile();
            const e = await failure(save(bytes.subarray(0, bytes.length - 4)));
            expect(e.reason).toBe("TRUNCATED");
            expect(e.message).toMatch(/b\.weight/);
            expect(e.message).toMatch(/4 missing/);
        });
    });

    describe("CORRUPT", () => {
        const corruptCases: Array<[string, () => Buffer, RegExp]> = [
            ["absurd string length (2^40) in a key", () => new Raw().header(0, 1).u64(2 ** 40).zeros(64).build(), /length/],
            ["absurd string length (2^63) in a value", () => new Raw().header(0, 1).str("general.name").i32(8).u64(2n ** 63n).zeros(64).build(), /length/],
            ["absurd string length inside a string array", () => new Raw().header(0, 1).str("t").i32(9).i32(8).u64(2).str("ok").u64(2 ** 50).zeros(64).build(), /t\[1\].*length/],
            [
                "absurd string length (2^31) whose length field straddles the reader's 1 MiB buffer",
                () => new Raw().header(0, 1).str("t").i32(9).i32(8).u64(2).str("a".repeat(1048576 - 4 - 57)).u64(2 ** 31).zeros(64).build(),
                /t\[1\].*length of 2147483648/,
            ],
            ["absurd array count", () => new Raw().header(0, 1).str("ids").i32(9).i32(5).u64(2 ** 45).zeros(64).build(), /count/],
            ["absurd key count", () => new Raw().header(0, 2 ** 48).zeros(64).build(), /key count/],
            ["absurd tensor count", () => new Raw().header(2 ** 40, 0).zeros(64).build(), /tensor count/],
            ["unknown value type", () => new Raw().header(0, 1).str("x").i32(13).u32(0).build(), /unknown value type 13/],
            ["unknown array item type", () => new Raw().header(0, 1).str("x").i32(9).i32(42).u64(0).build(), /unknown item type 42/],
            ["nested arrays", () => new Raw().header(0, 1).str("x").i32(9).i32(9).u64(0).build(), /nested/],
            ["empty key", () => new Raw().header(0, 1).kvU32("", 1).build(), /empty/],
            ["duplicate key", () => new Raw().header(0, 2).kvU32("a", 1).kvU32("a", 2).build(), /appears twice/],
            ["alignment not a power of two", () => new Raw().header(0, 1).kvU32("general.alignment", 24).build(), /power of 2/],
            ["alignment of the wrong type", () => new Raw().header(0, 1).kvString("general.alignment", "32").build(), /must have type u32/],
            ["unknown tensor type", () => new Raw().header(1, 0).tensor("t", [4], 99, 0).padTo(32).zeros(32).build(), /unknown or removed ggml type 99/],
            ["removed tensor type (Q4_2 = 4)", () => new Raw().header(1, 0).tensor("t", [32], 4, 0).padTo(32).zeros(32).build(), /type 4/],
            ["more than 4 dimensions", () => new Raw().header(1, 0).tensor("t", [1, 1, 1, 1, 1], 0, 0).padTo(32).zeros(32).build(), /5 dimensions/],
            ["row not a multiple of the block size", () => new Raw().header(1, 0).tensor("t", [16], 2, 0).padTo(32).zeros(32).build(), /block size 32/],
            ["misaligned tensor offset", () => new Raw().header(2, 0).tensor("a", [4], 0, 0).tensor("b", [4], 0, 16).padTo(32).zeros(64).build(), /not a multiple of the alignment/],
            ["duplicate tensor names", () => new Raw().header(2, 0).tensor("a", [4], 0, 0).tensor("a", [4], 0, 32).padTo(32).zeros(64).build(), /appears twice/],
            ["overlapping tensors", () => new Raw().header(2, 0).tensor("a", [16], 0, 0).tensor("b", [4], 0, 32).padTo(32).zeros(128).build(), /overlap/],
            ["tensor name over ggml's 63-byte limit", () => new Raw().header(1, 0).tensor("x".repeat(64), [4], 0, 0).padTo(32).zeros(32).build(), /longer than/],
            ["impossible dimension", () => new Raw().header(1, 0).tensor("t", [2 ** 60], 0, 0).padTo(32).zeros(32).build(), /impossible/],
        ];
        for (const [name, build, pattern] of corruptCases) {
            it(name, async () => {
                const e = await failure(save(build()));
                expect(e.reason, e.message).toBe("CORRUPT");
                expect(e.message).toMatch(pattern);
                expect(e.code).toBe("ERR_GGUF_FORMAT");
            });
        }

        it("a plausible length past the end of the file is TRUNCATED, not CORRUPT", async () => {
            const e = await failure(save(new Raw().header(0, 1).str("general.name").i32(8).u64(5000).bytes("abc").build()));
            expect(e.reason).toBe("TRUNCATED");
        });
    });
});
