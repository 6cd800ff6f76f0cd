/**
 * GGUF header reader. Parses the metadata and tensor table of a GGUF file (versions 2 and 3, little-endian) without
 * reading tensor data, streaming through a buffered reader on a file descriptor, and validates the layout so that a
 * malformed file fails here with a precise {@link GgufFormatError} instead of deep inside libllama.
 *
 * Value representation (exact round trip through {@link GgufWriter}: every value keeps its GGUF type):
 * - u8/i8/u16/i16/u32/i32/f32/f64 scalars: `number`
 * - u64/i64 scalars: `number` when the value is a safe integer (|v| ≤ 2^53 − 1), otherwise `bigint`
 * - bool: `boolean`; str: `string` (UTF-8; invalid byte sequences are replaced by U+FFFD)
 * - arrays: `{ type: ARRAY, itemType, value }` where `value` is a typed array of the item type (`Uint8Array` …
 *   `Float64Array`, `BigUint64Array`/`BigInt64Array` for u64/i64), `boolean[]` for bool or `string[]` for str.
 *   Nested arrays are rejected (llama.cpp rejects them too).
 *
 * @module
 */
import { open, type FileHandle } from "node:fs/promises";
import { endianness } from "node:os";
import { GgufFormatError, InvalidOptionError } from "../errors.js";
import { checkOptionsObject, nearestName, optionalSignal, requiredString, throwIfAborted } from "../validate.js";
import {
    GGUF_VALUE_TYPE_SIZE,
    GgufValueType,
    ggmlTypeById,
    ggufValueTypeName,
    isGgufValueType,
    type GgmlTypeName,
    type GgufArrayItemType,
} from "./types.js";

/** The 4 bytes every GGUF file starts with. */
export const GGUF_MAGIC = "GGUF";
/** GGUF versions this reader accepts. Version 2 and 3 have the same layout on little-endian files. */
export const GGUF_SUPPORTED_VERSIONS: readonly number[] = [2, 3];
/** `GGUF_DEFAULT_ALIGNMENT`: data alignment when `general.alignment` is absent. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** Longest string llama.cpp accepts (`GGUF_MAX_STRING_LENGTH`, 1 GiB); a longer length field is corrupt. */
export const GGUF_MAX_STRING_LENGTH = 1024 * 1024 * 1024;
/** Most elements llama.cpp accepts in an array (`GGUF_MAX_ARRAY_ELEMENTS`); a larger count is corrupt. */
export const GGUF_MAX_ARRAY_ELEMENTS = 1024 * 1024 * 1024;
/** `GGML_MAX_DIMS`. */
export const GGML_MAX_DIMS = 4;
/** `GGML_MAX_NAME`: tensor names must be shorter than this many bytes. */
export const GGML_MAX_NAME = 64;

/** Typed array used for a numeric GGUF array, by item type. */
export interface GgufTypedArrays {
    0: Uint8Array;
    1: Int8Array;
    2: Uint16Array;
    3: Int16Array;
    4: Uint32Array;
    5: Int32Array;
    6: Float32Array;
    10: BigUint64Array;
    11: BigInt64Array;
    12: Float64Array;
}

/** JS representation of the items of a GGUF array with item type `T`. */
export type GgufArrayItems<T extends GgufArrayItemType> = T extends keyof GgufTypedArrays
    ? GgufTypedArrays[T]
    : T extends 7
      ? boolean[]
      : string[];

/** A GGUF array value. `value.length` is the element count. */
export type GgufArrayValue = {
    [T in GgufArrayItemType]: { readonly type: 9; readonly itemType: T; readonly value: GgufArrayItems<T> };
}[GgufArrayItemType];

/** One GGUF metadata value with its GGUF type (see the module documentation for the JS representation). */
export type GgufValue =
    | { readonly type: 0 | 1 | 2 | 3 | 4 | 5 | 6 | 12; readonly value: number }
    | { readonly type: 10 | 11; readonly value: number | bigint }
    | { readonly type: 7; readonly value: boolean }
    | { readonly type: 8; readonly value: string }
    | GgufArrayValue;

/** A tensor of a GGUF file, as described by its header. */
export interface GgufTensorInfo {
    /** Tensor name, e.g. `"blk.0.attn_q.weight"`. */
    readonly name: string;
    /** ggml type name (`ggml_type_name` spelling), e.g. `"f32"`, `"q4_K"`. */
    readonly type: GgmlTypeName;
    /** ggml type id (`enum ggml_type`). */
    readonly typeId: number;
    /** Dimensions in ggml order (`ne0` first, the reverse of PyTorch), as many as the file stores (1–4, or 0). */
    readonly shape: readonly number[];
    /** Number of values (product of `shape`). */
    readonly elementCount: number;
    /** Absolute byte offset of the tensor's data in the file. */
    readonly offset: number;
    /** Bytes of data (without alignment padding). */
    readonly byteSize: number;
}

/** Options of {@link readGguf}. */
export interface ReadGgufOptions {
    /** Aborts the read; the promise then rejects with the signal's reason. */
    signal?: AbortSignal;
}

/** The parsed header of a GGUF file. Tensor data is not loaded (see {@link readTensorData}). */
export class GgufFile {
    /** The file that was read. */
    readonly path: string;
    /** GGUF version (2 or 3). */
    readonly version: number;
    /** File size in bytes when it was read. */
    readonly fileSize: number;
    /** Data alignment in bytes (`general.alignment`, default 32). */
    readonly alignment: number;
    /** Absolute offset of the tensor data section (tensor offsets are relative to it in the file itself). */
    readonly dataOffset: number;
    /** Every metadata key, in file order, with its typed value. */
    readonly metadata: ReadonlyMap<string, GgufValue>;
    /** Every tensor, in file order. */
    readonly tensors: readonly GgufTensorInfo[];
    private readonly byName: Map<string, GgufTensorInfo>;

    /** @internal */
    constructor(init: {
        path: string;
        version: number;
        fileSize: number;
        alignment: number;
        dataOffset: number;
        metadata: Map<string, GgufValue>;
        tensors: GgufTensorInfo[];
    }) {
        this.path = init.path;
        this.version = init.version;
        this.fileSize = init.fileSize;
        this.alignment = init.alignment;
        this.dataOffset = init.dataOffset;
        this.metadata = init.metadata;
        this.tensors = init.tensors;
        this.byName = new Map(init.tensors.map((t) => [t.name, t]));
    }

    /** `general.architecture`, e.g. `"qwen2"` or `"clip"`; undefined when absent. */
    get architecture(): string | undefined {
        return this.getString("general.architecture");
    }

    /** The typed value of `key`, or undefined when absent. */
    getValue(key: string): GgufValue | undefined {
        return this.metadata.get(key);
    }

    /** The string value of `key`; undefined when absent. Throws GgufFormatError (CORRUPT) when it is not a string. */
    getString(key: string): string | undefined {
        const v = this.metadata.get(key);
        if (v === undefined) return undefined;
        if (v.type !== GgufValueType.STRING) throw this.wrongType(key, v, "a string");
        return v.value;
    }

    /**
     * The numeric value of `key` (any integer or float type; a bool is not a number); undefined when absent.
     * Throws GgufFormatError (CORRUPT) for other types, and for a 64-bit integer that does not fit in a double exactly.
     */
    getNumber(key: string): number | undefined {
        const v = this.metadata.get(key);
        if (v === undefined) return undefined;
        if (v.type === GgufValueType.BOOL || v.type === GgufValueType.STRING || v.type === GgufValueType.ARRAY) {
            throw this.wrongType(key, v, "a number");
        }
        if (typeof v.value === "bigint") {
            throw new GgufFormatError(this.path, "CORRUPT", `metadata ${key} = ${v.value} is too large for a JS number`);
        }
        return v.value;
    }

    /** The boolean value of `key`; undefined when absent. Throws GgufFormatError (CORRUPT) for other types. */
    getBoolean(key: string): boolean | undefined {
        const v = this.metadata.get(key);
        if (v === undefined) return undefined;
        if (v.type !== GgufValueType.BOOL) throw this.wrongType(key, v, "a bool");
        return v.value;
    }

    /**
     * The items of the array `key` (typed array, `boolean[]` or `string[]`, see the module documentation); undefined
     * when absent. Throws GgufFormatError (CORRUPT) when the value is not an array.
     */
    getArray(key: string): GgufArrayValue["value"] | undefined {
        const v = this.metadata.get(key);
        if (v === undefined) return undefined;
        if (v.type !== GgufValueType.ARRAY) throw this.wrongType(key, v, "an array");
        return v.value;
    }

    /** The tensor called `name`, or undefined. */
    getTensor(name: string): GgufTensorInfo | undefined {
        return this.byName.get(name);
    }

    private wrongType(key: string, v: GgufValue, expected: string): GgufFormatError {
        const type = v.type === GgufValueType.ARRAY ? `arr[${ggufValueTypeName(v.itemType)}]` : ggufValueTypeName(v.type);
        return new GgufFormatError(this.path, "CORRUPT", `metadata ${key} should be ${expected} but has type ${type}`);
    }
}

const isLittleEndianHost = endianness() === "LE";
const decoder = new TextDecoder("utf-8");
const CHUNK = 1 << 20;

/** Buffered, position-tracking reads over a file handle; every length is checked against the file size first. */
class FileReader {
    private buf: Buffer = Buffer.allocUnsafe(CHUNK);
    /** File offset of buf[0]. */
    private base = 0;
    pos = 0;
    end = 0;

    constructor(
        private readonly fh: FileHandle,
        readonly path: string,
        readonly fileSize: number,
        private readonly signal: AbortSignal | undefined,
    ) {}

    /** Current absolute file offset. */
    get offset(): number {
        return this.base + this.pos;
    }

    /** Bytes between the current offset and the end of the file. */
    get remaining(): number {
        return this.fileSize - this.base - this.pos;
    }

    get buffer(): Buffer {
        return this.buf;
    }

    /** Makes at least `n` bytes available at `pos`, or throws TRUNCATED naming `what`. */
    async need(n: number, what: string): Promise<void> {
        if (this.end - this.pos >= n) return;
        if (n > this.remaining) {
            throw new GgufFormatError(
                this.path,
                "TRUNCATED",
                `the file ends inside ${what} (${n} bytes needed, ${this.remaining} left of ${this.fileSize}); ` +
                    `the file is incomplete (interrupted download or copy?)`,
                this.offset,
            );
        }
        throwIfAborted(this.signal);
        const kept = this.end - this.pos;
        if (n > this.buf.length) {
            // n ≤ remaining file bytes (checked above), so this never allocates more than the file holds.
            const grown = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
            this.buf.copy(grown, 0, this.pos, this.end);
            this.buf = grown;
        } else if (this.pos > 0) {
            this.buf.copy(this.buf, 0, this.pos, this.end);
        }
        this.base += this.pos;
        this.pos = 0;
        this.end = kept;
        while (this.end < n) {
            const want = Math.min(this.buf.length - this.end, this.fileSize - this.base - this.end);
            const { bytesRead } = await this.fh.read(this.buf, this.end, want, this.base + this.end);
            if (bytesRead === 0) {
                throw new GgufFormatError(this.path, "TRUNCATED", `the file became shorter while it was read`, this.base + this.end);
            }
            this.end += bytesRead;
        }
    }

    /** Copies the next `n` bytes (n ≤ remaining, checked by the caller) into `dst`, chunk by chunk. */
    async readInto(dst: Uint8Array, n: number, what: string): Promise<void> {
        let done = 0;
        while (done < n) {
            if (this.end === this.pos) await this.need(Math.min(n - done, this.buf.length), what);
            const take = Math.min(n - done, this.end - this.pos);
            dst.set(this.buf.subarray(this.pos, this.pos + take), done);
            this.pos += take;
            done += take;
        }
    }

    /** Reads up to `n` bytes at absolute `position`, bypassing the buffer. */
    async readAt(position: number, n: number): Promise<Buffer> {
        const out = Buffer.alloc(n);
        const { bytesRead } = await this.fh.read(out, 0, n, position);
        return out.subarray(0, bytesRead);
    }

    skip(n: number): void {
        this.pos += n;
    }

    // Fixed-size reads: the caller has made the bytes available with need().
    u8(): number {
        return this.buf[this.pos++]!;
    }
    i8(): number {
        const v = this.buf.readInt8(this.pos);
        this.pos += 1;
        return v;
    }
    u16(): number {
        const v = this.buf.readUInt16LE(this.pos);
        this.pos += 2;
        return v;
    }
    i16(): number {
        const v = this.buf.readInt16LE(this.pos);
        this.pos += 2;
        return v;
    }
    u32(): number {
        const v = this.buf.readUInt32LE(this.pos);
        this.pos += 4;
        return v;
    }
    i32(): number {
        const v = this.buf.readInt32LE(this.pos);
        this.pos += 4;
        return v;
    }
    f32(): number {
        const v = this.buf.readFloatLE(this.pos);
        this.pos += 4;
        return v;
    }
    f64(): number {
        const v = this.buf.readDoubleLE(this.pos);
        this.pos += 8;
        return v;
    }
    /** A u64 as a number when it is a safe integer, otherwise as a bigint. */
    u64(): number | bigint {
        const lo = this.buf.readUInt32LE(this.pos);
        const hi = this.buf.readUInt32LE(this.pos + 4);
        if (hi < 0x200000) {
            this.pos += 8;
            return hi * 0x100000000 + lo;
        }
        const v = this.buf.readBigUInt64LE(this.pos);
        this.pos += 8;
        return v;
    }
    /** An i64 as a number when it is a safe integer, otherwise as a bigint. */
    i64(): number | bigint {
        const v = this.buf.readBigInt64LE(this.pos);
        this.pos += 8;
        return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
    }
    /** A u64 length/count: a number, or Infinity when it exceeds 2^53 (always too large to be valid). */
    len(): number {
        const v = this.u64();
        return typeof v === "bigint" ? Infinity : v;
    }
    /** Decodes `n` available bytes as UTF-8. */
    str(n: number): string {
        const s = n === 0 ? "" : decoder.decode(this.buf.subarray(this.pos, this.pos + n));
        this.pos += n;
        return s;
    }
}

/**
 * Reads the header (metadata and tensor table) of the GGUF file at `path`, without reading tensor data.
 *
 * Throws {@link GgufFormatError} with `reason`:
 * - `NOT_GGUF`: no GGUF magic (the message names the format when it is recognisable: safetensors, JSON, PyTorch, …)
 * - `UNSUPPORTED_VERSION`: a version other than 2 and 3, or a big-endian file
 * - `TRUNCATED`: the header, or some tensor's data, runs past the end of the file
 * - `CORRUPT`: impossible lengths or counts, unknown value or tensor types, nested arrays, more than 4 dimensions,
 *   a row not a multiple of the type's block size, misaligned or overlapping tensor data, duplicate keys or tensor
 *   names, a bad `general.alignment`
 *
 * File-system errors (ENOENT, EACCES, …) are passed through unchanged.
 */
export async function readGguf(path: string, options?: ReadGgufOptions): Promise<GgufFile> {
    requiredString("path", path);
    const opts = checkOptionsObject(options, ["signal"]);
    const signal = optionalSignal("signal", opts.signal);
    throwIfAborted(signal);
    const fh = await open(path, "r");
    try {
        const stat = await fh.stat();
        if (!stat.isFile()) {
            const what = stat.isDirectory() ? "this is a directory, not a GGUF file" : "this is not a regular file";
            throw new GgufFormatError(path, "NOT_GGUF", what);
        }
        return await parse(new FileReader(fh, path, stat.size, signal));
    } finally {
        await fh.close();
    }
}

async function parse(r: FileReader): Promise<GgufFile> {
    const path = r.path;
    const corrupt = (message: string, offset?: number) => new GgufFormatError(path, "CORRUPT", message, offset);

    // ---- magic and version ----
    if (r.fileSize < 4 || (await readMagic(r)) !== GGUF_MAGIC) throw await notGgufError(r);
    await r.need(4, "the header (version)");
    const versionOffset = r.offset;
    const version = r.u32();
    if ((version & 0xffff) === 0 && version !== 0) {
        throw new GgufFormatError(
            path,
            "UNSUPPORTED_VERSION",
            `version field is ${version} (0x${version.toString(16)}): this is a big-endian GGUF file, which vidllama does not read`,
            versionOffset,
        );
    }
    if (!GGUF_SUPPORTED_VERSIONS.includes(version)) {
        throw new GgufFormatError(
            path,
            "UNSUPPORTED_VERSION",
            `GGUF version ${version} is not supported (only versions 2 and 3)` +
                (version === 1 ? "; version 1 files come from 2023 llama.cpp builds: re-convert the model" : ""),
            versionOffset,
        );
    }
    await r.need(16, "the header (tensor and key counts)");
    const countsOffset = r.offset;
    const nTensors = r.len();
    const nKv = r.len();
    // each key-value takes at least 8 (key length) + 1 (key) + 4 (type) + 1 bytes; each tensor info 8 + 1 + 4 + 4 + 8
    checkCount(r, nTensors, 25, "tensor count", countsOffset);
    checkCount(r, nKv, 14, "metadata key count", countsOffset + 8);

    // ---- metadata ----
    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < nKv; i++) {
        const keyOffset = r.offset;
        const key = await readString(r, `metadata key #${i}`);
        if (key.length === 0) throw corrupt(`metadata key #${i} is empty`, keyOffset);
        if (metadata.has(key)) throw corrupt(`metadata key ${key} appears twice`, keyOffset);
        await r.need(4, `the type of metadata ${key}`);
        const typeOffset = r.offset;
        const type = r.i32();
        if (!isGgufValueType(type)) throw corrupt(`metadata ${key} has unknown value type ${type}`, typeOffset);
        if (type === GgufValueType.ARRAY) {
            await r.need(12, `the array header of metadata ${key}`);
            const itemType = r.i32();
            const countOffset = r.offset;
            const count = r.len();
            if (!isGgufValueType(itemType)) throw corrupt(`array ${key} has unknown item type ${itemType}`, typeOffset + 4);
            if (itemType === GgufValueType.ARRAY) {
                throw corrupt(`array ${key} holds arrays; nested arrays are not supported (llama.cpp rejects them too)`, typeOffset + 4);
            }
            checkCount(r, count, GGUF_VALUE_TYPE_SIZE[itemType] ?? 8, `the element count of array ${key}`, countOffset);
            metadata.set(key, await readArray(r, key, itemType, count));
        } else {
            metadata.set(key, await readScalar(r, key, type));
        }
    }

    const alignmentValue = metadata.get("general.alignment");
    let alignment = GGUF_DEFAULT_ALIGNMENT;
    if (alignmentValue !== undefined) {
        if (alignmentValue.type !== GgufValueType.UINT32) {
            throw corrupt(`general.alignment must have type u32 but has type ${ggufValueTypeName(alignmentValue.type)}`);
        }
        alignment = alignmentValue.value;
        if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
            throw corrupt(`general.alignment is ${alignment}, which is not a power of 2`);
        }
    }

    // ---- tensor infos ----
    const infos: Array<Omit<GgufTensorInfo, "offset"> & { relativeOffset: number }> = [];
    const names = new Set<string>();
    for (let i = 0; i < nTensors; i++) {
        const nameOffset = r.offset;
        const name = await readString(r, `the name of tensor #${i}`);
        if (Buffer.byteLength(name) >= GGML_MAX_NAME) {
            throw corrupt(`tensor name "${name.slice(0, 80)}" is longer than ggml's limit of ${GGML_MAX_NAME - 1} bytes`, nameOffset);
        }
        if (names.has(name)) throw corrupt(`tensor ${name} appears twice`, nameOffset);
        names.add(name);
        await r.need(4, `the dimension count of tensor ${name}`);
        const dimsOffset = r.offset;
        const nDims = r.u32();
        if (nDims > GGML_MAX_DIMS) throw corrupt(`tensor ${name} has ${nDims} dimensions (ggml allows at most ${GGML_MAX_DIMS})`, dimsOffset);
        await r.need(nDims * 8 + 12, `the shape, type and offset of tensor ${name}`);
        const shape: number[] = [];
        for (let d = 0; d < nDims; d++) {
            const ne = r.u64();
            if (typeof ne === "bigint") throw corrupt(`tensor ${name} has an impossible dimension ${ne}`, dimsOffset + 4 + d * 8);
            shape.push(ne);
        }
        const typeOffset = r.offset;
        const typeId = r.i32();
        const info = ggmlTypeById(typeId);
        if (!info) throw corrupt(`tensor ${name} has unknown or removed ggml type ${typeId}`, typeOffset);
        const offsetOffset = r.offset;
        const rel = r.u64();
        if (typeof rel === "bigint") throw corrupt(`tensor ${name} has an impossible data offset ${rel}`, offsetOffset);
        const ne0 = nDims > 0 ? shape[0]! : 1;
        if (ne0 % info.blockSize !== 0) {
            throw corrupt(
                `tensor ${name} of type ${info.name} has rows of ${ne0} values, not a multiple of the block size ${info.blockSize}`,
                dimsOffset,
            );
        }
        let elements = 1;
        for (const d of shape) elements *= d;
        let byteSize = (ne0 / info.blockSize) * info.typeSize;
        for (let d = 1; d < nDims; d++) byteSize *= shape[d]!;
        if (!Number.isSafeInteger(elements) || !Number.isSafeInteger(byteSize)) {
            throw corrupt(`tensor ${name} with shape [${shape.join(", ")}] is impossibly large`, dimsOffset);
        }
        if (rel % alignment !== 0) {
            throw corrupt(`tensor ${name} starts at data offset ${rel}, which is not a multiple of the alignment ${alignment}`, offsetOffset);
        }
        infos.push({ name, type: info.name, typeId, shape, elementCount: elements, relativeOffset: rel, byteSize });
    }

    // llama.cpp pads to the alignment only when there are tensors
    const dataOffset = nTensors > 0 ? alignUp(r.offset, alignment) : r.offset;
    const tensors: GgufTensorInfo[] = infos.map(({ relativeOffset, ...t }) => ({ ...t, offset: dataOffset + relativeOffset }));
    checkTensorLayout(path, tensors, dataOffset, r.fileSize);

    return new GgufFile({ path, version, fileSize: r.fileSize, alignment, dataOffset, metadata, tensors });
}

function alignUp(n: number, alignment: number): number {
    return Math.ceil(n / alignment) * alignment;
}

/**
 * A count whose minimal encoding does not fit in the rest of the file: CORRUPT when it is beyond what llama.cpp
 * accepts at all (a garbage length field), TRUNCATED otherwise (a plausible count in a file that was cut short).
 */
function checkCount(r: FileReader, count: number, minItemBytes: number, what: string, offset: number): void {
    if (count > GGUF_MAX_ARRAY_ELEMENTS) {
        throw new GgufFormatError(r.path, "CORRUPT", `${what} is ${count === Infinity ? "≥ 2^53" : count}, which is impossible`, offset);
    }
    if (count * minItemBytes > r.remaining) {
        throw new GgufFormatError(
            r.path,
            "TRUNCATED",
            `${what} is ${count} (at least ${count * minItemBytes} bytes) but only ${r.remaining} bytes are left in the file; ` +
                `the file is incomplete (interrupted download or copy?)`,
            offset,
        );
    }
}

async function readString(r: FileReader, what: string): Promise<string> {
    await r.need(8, `the length of ${what}`);
    const lengthOffset = r.offset;
    const n = r.len();
    if (n > GGUF_MAX_STRING_LENGTH) {
        throw new GgufFormatError(
            r.path,
            "CORRUPT",
            `${what} claims a length of ${n === Infinity ? "≥ 2^53" : n} bytes (more than the ${GGUF_MAX_STRING_LENGTH} llama.cpp allows` +
                `${n > r.remaining ? ` and than the ${r.remaining} left in the file` : ""})`,
            lengthOffset,
        );
    }
    await r.need(n, what);
    return r.str(n);
}

async function readScalar(r: FileReader, key: string, type: Exclude<GgufValueType, 9>): Promise<GgufValue> {
    if (type === GgufValueType.STRING) return { type, value: await readString(r, `the value of metadata ${key}`) };
    await r.need(GGUF_VALUE_TYPE_SIZE[type]!, `the value of metadata ${key}`);
    switch (type) {
        case GgufValueType.UINT8:
            return { type, value: r.u8() };
        case GgufValueType.INT8:
            return { type, value: r.i8() };
        case GgufValueType.UINT16:
            return { type, value: r.u16() };
        case GgufValueType.INT16:
            return { type, value: r.i16() };
        case GgufValueType.UINT32:
            return { type, value: r.u32() };
        case GgufValueType.INT32:
            return { type, value: r.i32() };
        case GgufValueType.FLOAT32:
            return { type, value: r.f32() };
        case GgufValueType.BOOL:
            return { type, value: r.u8() !== 0 };
        case GgufValueType.UINT64:
            return { type, value: r.u64() };
        case GgufValueType.INT64:
            return { type, value: r.i64() };
        case GgufValueType.FLOAT64:
            return { type, value: r.f64() };
    }
}

async function readArray(r: FileReader, key: string, itemType: GgufArrayItemType, count: number): Promise<GgufArrayValue> {
    const what = `array ${key}`;
    if (itemType === GgufValueType.STRING) return { type: 9, itemType, value: await readStringArray(r, what, count) };
    if (itemType === GgufValueType.BOOL) {
        const bytes = new Uint8Array(count);
        await r.readInto(bytes, count, what);
        const out: boolean[] = new Array<boolean>(count);
        for (let i = 0; i < count; i++) out[i] = bytes[i] !== 0;
        return { type: 9, itemType, value: out };
    }
    const size = GGUF_VALUE_TYPE_SIZE[itemType]!;
    const bytes = new Uint8Array(count * size); // count * size ≤ remaining file bytes (checkCount)
    await r.readInto(bytes, count * size, what);
    if (!isLittleEndianHost) swapBytes(bytes, size);
    const ab = bytes.buffer;
    switch (itemType) {
        case 0:
            return { type: 9, itemType, value: bytes };
        case 1:
            return { type: 9, itemType, value: new Int8Array(ab, 0, count) };
        case 2:
            return { type: 9, itemType, value: new Uint16Array(ab, 0, count) };
        case 3:
            return { type: 9, itemType, value: new Int16Array(ab, 0, count) };
        case 4:
            return { type: 9, itemType, value: new Uint32Array(ab, 0, count) };
        case 5:
            return { type: 9, itemType, value: new Int32Array(ab, 0, count) };
        case 6:
            return { type: 9, itemType, value: new Float32Array(ab, 0, count) };
        case 10:
            return { type: 9, itemType, value: new BigUint64Array(ab, 0, count) };
        case 11:
            return { type: 9, itemType, value: new BigInt64Array(ab, 0, count) };
        case 12:
            return { type: 9, itemType, value: new Float64Array(ab, 0, count) };
    }
}

const fatalDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads `count` strings. Calling a decoder once per string costs about a microsecond each (a Qwen vocabulary has 300k
 * tokens and merges), so every complete string already in the buffer is copied into one scratch buffer while its
 * UTF-16 length is counted, the batch is decoded with a single TextDecoder call and sliced. The result is identical
 * to decoding each string on its own: the joined bytes must be valid UTF-8 and no string may start with a
 * continuation byte (then every string is valid on its own); otherwise each string of the batch is decoded separately
 * (invalid sequences become U+FFFD).
 */
async function readStringArray(r: FileReader, what: string, count: number): Promise<string[]> {
    const out: string[] = new Array<string>(count);
    let capacity = 0;
    let scratch = new Uint8Array(0);
    let starts = new Int32Array(0);
    let lengths = new Int32Array(0);
    let units = new Int32Array(0);
    let i = 0;
    while (i < count) {
        const buf = r.buffer;
        if (capacity < buf.length) {
            capacity = buf.length;
            scratch = new Uint8Array(capacity);
            starts = new Int32Array((capacity >> 3) + 1);
            lengths = new Int32Array((capacity >> 3) + 1);
            units = new Int32Array((capacity >> 3) + 1);
        }
        const end = r.end;
        let p = r.pos;
        let n = 0;
        let w = 0;
        let valid = true;
        while (i + n < count && end - p >= 8) {
            const len = buf[p]! + (buf[p + 1]! << 8) + (buf[p + 2]! << 16) + buf[p + 3]! * 0x1000000;
            if ((buf[p + 4]! | buf[p + 5]! | buf[p + 6]! | buf[p + 7]!) !== 0 || len > GGUF_MAX_STRING_LENGTH) {
                const full = buf.readBigUInt64LE(p);
                throw new GgufFormatError(
                    r.path,
                    "CORRUPT",
                    `${what}[${i + n}] claims a length of ${full} bytes (more than the ${GGUF_MAX_STRING_LENGTH} llama.cpp allows)`,
                    r.offset + (p - r.pos),
                );
            }
            if (end - p - 8 < len) break;
            const s = p + 8;
            const e = s + len;
            if (len > 0 && (buf[s]! & 0xc0) === 0x80) valid = false;
            let u = 0;
            for (let j = s; j < e; j++) {
                const b = buf[j]!;
                scratch[w++] = b;
                // one UTF-16 unit per character, two for 4-byte sequences (surrogate pairs)
                if ((b & 0xc0) !== 0x80) u += b >= 0xf0 ? 2 : 1;
            }
            starts[n] = s;
            lengths[n] = len;
            units[n] = u;
            n++;
            p = e;
        }
        if (n === 0) {
            // the next string is not (completely) in the buffer: refill (this reports a truncated file)
            await r.need(8, `the length of ${what}[${i}]`);
            const len = r.buffer.readBigUInt64LE(r.pos);
            // an absurd length is reported as CORRUPT by the scan above on the next turn
            if (len <= BigInt(GGUF_MAX_STRING_LENGTH)) await r.need(8 + Number(len), `${what}[${i}]`);
            continue;
        }
        let joined: string | undefined;
        if (valid) {
            try {
                joined = fatalDecoder.decode(scratch.subarray(0, w));
            } catch {
                joined = undefined;
            }
        }
        if (joined !== undefined) {
            let q = 0;
            for (let k = 0; k < n; k++) {
                const u = units[k]!;
                out[i + k] = joined.slice(q, q + u);
                q += u;
            }
            if (q !== joined.length) joined = undefined; // cannot happen for valid UTF-8; be safe
        }
        if (joined === undefined) {
            for (let k = 0; k < n; k++) {
                out[i + k] = lengths[k] === 0 ? "" : decoder.decode(buf.subarray(starts[k]!, starts[k]! + lengths[k]!));
            }
        }
        i += n;
        r.skip(p - r.pos);
    }
    return out;
}

/** @internal Reverses the byte order of each `size`-byte item in place (big-endian hosts). */
export function swapBytes(bytes: Uint8Array, size: number): void {
    if (size === 1) return;
    for (let i = 0; i + size <= bytes.length; i += size) {
        for (let a = i, b = i + size - 1; a < b; a++, b--) {
            const t = bytes[a]!;
            bytes[a] = bytes[b]!;
            bytes[b] = t;
        }
    }
}

function checkTensorLayout(path: string, tensors: GgufTensorInfo[], dataOffset: number, fileSize: number): void {
    const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < sorted.length; i++) {
        const prev = sorted[i - 1]!;
        const cur = sorted[i]!;
        if (prev.byteSize > 0 && cur.byteSize > 0 && cur.offset < prev.offset + prev.byteSize) {
            throw new GgufFormatError(
                path,
                "CORRUPT",
                `the data of tensors ${prev.name} (bytes ${prev.offset}–${prev.offset + prev.byteSize}) and ${cur.name} ` +
                    `(from byte ${cur.offset}) overlap`,
                cur.offset,
            );
        }
    }
    let last: GgufTensorInfo | undefined;
    for (const t of tensors) {
        if (t.byteSize > 0 && t.offset + t.byteSize > fileSize && (!last || t.offset + t.byteSize > last.offset + last.byteSize)) last = t;
    }
    if (last) {
        const end = last.offset + last.byteSize;
        throw new GgufFormatError(
            path,
            "TRUNCATED",
            `the data of tensor ${last.name} ends at byte ${end} but the file has only ${fileSize} bytes ` +
                `(${end - fileSize} missing); the file is incomplete (interrupted download or copy?)`,
            fileSize,
        );
    }
    if (tensors.length > 0 && dataOffset > fileSize && tensors.some((t) => t.byteSize > 0)) {
        const message = `the tensor data section starts at byte ${dataOffset}, past the end of the file`;
        throw new GgufFormatError(path, "TRUNCATED", message, fileSize);
    }
}

async function readMagic(r: FileReader): Promise<string> {
    await r.need(4, "the magic");
    const magic = r.buffer.toString("latin1", r.pos, r.pos + 4);
    r.skip(4);
    return magic;
}

/** Builds the NOT_GGUF error, naming the format when the first bytes are recognisable. */
async function notGgufError(r: FileReader): Promise<GgufFormatError> {
    if (r.fileSize === 0) return new GgufFormatError(r.path, "NOT_GGUF", "the file is empty");
    // re-read the start of the file
    const n = Math.min(r.fileSize, 256);
    const head = await r.readAt(0, n);
    if (r.fileSize < 4 && Buffer.from(GGUF_MAGIC, "latin1").subarray(0, r.fileSize).equals(head)) {
        return new GgufFormatError(r.path, "TRUNCATED", `the file has only ${r.fileSize} bytes, a truncated GGUF magic`, r.fileSize);
    }
    const what = sniffFormat(head, r.fileSize);
    const shown = [...head.subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    return new GgufFormatError(
        r.path,
        "NOT_GGUF",
        `not a GGUF file: it starts with bytes ${shown} instead of "GGUF"` + (what ? `; this looks like ${what}` : ""),
        0,
    );
}

/** @internal Names a file format from its first bytes (undefined when unknown). */
export function sniffFormat(head: Buffer, fileSize: number): string | undefined {
    const ascii = head.toString("latin1");
    if (head.length >= 9) {
        const headerLength = head.readBigUInt64LE(0);
        if (head[8] === 0x7b /* { */ && headerLength > 1n && headerLength + 8n <= BigInt(fileSize)) {
            return "a safetensors file (a Hugging Face checkpoint shard: convert the checkpoint with `vidllama convert`)";
        }
    }
    if (ascii.startsWith("version https://git-lfs")) {
        return "a Git LFS pointer, not the model itself (fetch the real file with `git lfs pull`)";
    }
    const trimmed = ascii.replace(/^\uFEFF|^\xEF\xBB\xBF/, "").trimStart();
    if (/^<(!doctype|html|\?xml)/i.test(trimmed)) return "an HTML/XML page (a web page was downloaded instead of the model file?)";
    if (trimmed.startsWith("{") || trimmed.startsWith("[")) return "a JSON file";
    if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) {
        return "a ZIP archive (a PyTorch .pt/.bin checkpoint is a ZIP: convert the checkpoint with `vidllama convert`)";
    }
    if (head[0] === 0x80 && head[1] !== undefined && head[1] >= 2 && head[1] <= 5) return "a Python pickle (an old-style PyTorch checkpoint)";
    const magic = ascii.slice(0, 4);
    if (magic === "lmgg" || magic === "fmgg" || magic === "tjgg") {
        return "a legacy GGML/GGJT model from before GGUF (2023): re-convert it with a current llama.cpp";
    }
    if (head[0] === 0x1f && head[1] === 0x8b) return "a gzip-compressed file (decompress it first)";
    if (ascii.startsWith("PK") || ascii.startsWith("7z\xBC\xAF") || ascii.startsWith("\xFD7zXZ")) return "an archive (extract it first)";
    if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return "a JPEG image";
    if (ascii.startsWith("\x89PNG")) return "a PNG image";
    if (ascii.slice(4, 8) === "ftyp") return "an MP4/MOV video";
    if (head[0] === 0x1a && head[1] === 0x45 && head[2] === 0xdf && head[3] === 0xa3) return "a Matroska/WebM video";
    if (ascii.startsWith("\x7fELF")) return "an executable (ELF)";
    if (ascii.startsWith("\x93NUMPY")) return "a NumPy .npy array";
    return undefined;
}

/** Options of {@link readTensorData}. */
export interface ReadTensorDataOptions {
    /** Refuse tensors larger than this many bytes. Default 256 MiB (this function is meant for small tensors). */
    maxBytes?: number;
}

/**
 * Reads the raw bytes of one tensor (as stored: quantized blocks stay quantized). Meant for small tensors in tests and
 * `inspect`; throws {@link InvalidOptionError} for an unknown name or a tensor larger than `options.maxBytes`.
 */
export async function readTensorData(file: GgufFile, name: string, options?: ReadTensorDataOptions): Promise<Buffer> {
    if (!(file instanceof GgufFile)) throw new InvalidOptionError("file", "a GgufFile from readGguf()", file);
    requiredString("name", name);
    const opts = checkOptionsObject(options, ["maxBytes"]);
    const maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
    if (typeof maxBytes !== "number" || !Number.isSafeInteger(maxBytes) || maxBytes < 0) {
        throw new InvalidOptionError("maxBytes", "a non-negative integer", maxBytes);
    }
    const t = file.getTensor(name);
    if (!t) {
        const near = nearestName(name, file.tensors.map((x) => x.name));
        throw new InvalidOptionError("name", `the name of a tensor in ${file.path}`, name, near ? `did you mean "${near}"?` : undefined);
    }
    if (t.byteSize > maxBytes) {
        const hint = `${name} has ${t.byteSize} bytes`;
        throw new InvalidOptionError("name", `a tensor of at most ${maxBytes} bytes (options.maxBytes)`, name, hint);
    }
    const out = Buffer.alloc(t.byteSize);
    const fh = await open(file.path, "r");
    try {
        let done = 0;
        while (done < t.byteSize) {
            const { bytesRead } = await fh.read(out, done, t.byteSize - done, t.offset + done);
            if (bytesRead === 0) {
                throw new GgufFormatError(file.path, "TRUNCATED", `the file ends inside the data of tensor ${name}`, t.offset + done);
            }
            done += bytesRead;
        }
    } finally {
        await fh.close();
    }
    return out;
}
