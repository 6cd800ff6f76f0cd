/**
 * Streaming GGUF writer (version 3, little-endian). Metadata and tensor declarations are collected first; then
 * {@link GgufWriter.writeHeader} writes the header and {@link GgufWriter.writeTensor} streams each tensor's data in
 * declaration order, padding to the alignment, so a multi-GB model is written without holding its tensors in memory.
 *
 * ```ts
 * const w = new GgufWriter("/tmp/model.gguf.tmp");
 * w.setString("general.architecture", "qwen2");
 * w.setU32("qwen2.block_count", 2);
 * w.addTensor("output_norm.weight", "f32", [64]);
 * await w.writeHeader();
 * await w.writeTensor("output_norm.weight", new Float32Array(64).fill(1));
 * await w.finish();
 * ```
 *
 * The file is written to exactly the path given (callers write to a temporary name and rename it when done).
 *
 * @module
 */
import { open, type FileHandle } from "node:fs/promises";
import { endianness } from "node:os";
import { GgufFormatError, InvalidOptionError } from "../errors.js";
import { checkOptionsObject, requiredString } from "../validate.js";
import { GGML_MAX_DIMS, GGML_MAX_NAME, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, swapBytes, type GgufArrayValue, type GgufValue } from "./reader.js";
import {
    GGUF_VALUE_TYPE_SIZE,
    GgufValueType,
    ggufValueTypeName,
    isGgufValueType,
    resolveGgmlType,
    tensorByteSize,
    type GgmlTypeName,
    type GgufArrayItemType,
} from "./types.js";

/** Data accepted by {@link GgufWriter.writeTensor}: one view, or chunks from an (async) iterable, in file order. */
export type TensorData = ArrayBufferView | AsyncIterable<ArrayBufferView> | Iterable<ArrayBufferView>;

/** A tensor declared with {@link GgufWriter.addTensor}. */
export interface GgufWriterTensor {
    /** Tensor name. */
    readonly name: string;
    /** ggml type name. */
    readonly type: GgmlTypeName;
    /** ggml type id. */
    readonly typeId: number;
    /** Shape in ggml order (`ne0` first). */
    readonly shape: readonly number[];
    /** Bytes of data. */
    readonly byteSize: number;
    /** Offset of the data from the start of the data section (a multiple of the alignment). */
    readonly relativeOffset: number;
}

/** Options of {@link GgufWriter}. */
export interface GgufWriterOptions {
    /** Staging buffer for small writes, in bytes. Default 1 MiB. Larger chunks are written straight from the caller's memory. */
    bufferSize?: number;
}

/** Array values accepted by {@link GgufWriter.setArray} for each item type. */
export type GgufArrayInput<T extends GgufArrayItemType> = T extends 8
    ? readonly string[]
    : T extends 7
      ? readonly boolean[]
      : T extends 10 | 11
        ? ArrayLike<number | bigint>
        : ArrayLike<number>;

type State = "declaring" | "data" | "finished" | "failed";

const isLittleEndianHost = endianness() === "LE";
const integerRanges: Partial<Record<GgufValueType, readonly [number, number]>> = {
    0: [0, 0xff],
    1: [-0x80, 0x7f],
    2: [0, 0xffff],
    3: [-0x8000, 0x7fff],
    4: [0, 0xffffffff],
    5: [-0x80000000, 0x7fffffff],
};
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

/** Writes one GGUF file. Methods must be called in order: set…() and addTensor() → writeHeader → writeTensor… → finish. */
export class GgufWriter {
    /** The file being written. */
    readonly path: string;
    private readonly metadata = new Map<string, GgufValue>();
    private readonly tensorList: GgufWriterTensor[] = [];
    private readonly tensorNames = new Set<string>();
    private state: State = "declaring";
    private fh: FileHandle | undefined;
    private next = 0; // index of the next tensor to write
    private written = 0; // bytes written to the file so far
    private dataOffset = 0;
    private alignmentValue = GGUF_DEFAULT_ALIGNMENT;
    private readonly staging: Buffer;
    private staged = 0;

    /** Creates a writer for `path`; nothing is opened until {@link writeHeader}. */
    constructor(path: string, options?: GgufWriterOptions) {
        this.path = requiredString("path", path);
        const opts = checkOptionsObject(options, ["bufferSize"]);
        const bufferSize = opts.bufferSize ?? 1 << 20;
        if (typeof bufferSize !== "number" || !Number.isSafeInteger(bufferSize) || bufferSize < 4096) {
            throw new InvalidOptionError("bufferSize", "an integer of at least 4096", bufferSize);
        }
        this.staging = Buffer.allocUnsafe(bufferSize);
    }

    /** Declared tensors in order, with their offsets relative to the data section. */
    get tensors(): readonly GgufWriterTensor[] {
        return this.tensorList;
    }

    /** Data alignment: `general.alignment` when set, else 32. */
    get alignment(): number {
        return this.alignmentValue;
    }

    // ---- metadata ----

    /**
     * Sets `key` to `value` of GGUF type `valueType` (replacing an earlier value, which keeps its position).
     * For `GgufValueType.ARRAY` pass the item type as `itemType`. Throws {@link InvalidOptionError} when the value does
     * not fit the type (e.g. 300 as u8, a fraction as an integer type, a non-string as str).
     */
    setKv(key: string, valueType: GgufValueType, value: unknown, itemType?: GgufArrayItemType): this {
        this.checkDeclaring("set metadata");
        requiredString("key", key);
        if (!isGgufValueType(valueType)) throw new InvalidOptionError("valueType", "a GgufValueType", valueType);
        let v: GgufValue;
        if (valueType === GgufValueType.ARRAY) {
            if (itemType === undefined || !isGgufValueType(itemType) || (itemType as number) === GgufValueType.ARRAY) {
                throw new InvalidOptionError("itemType", "the GgufValueType of the array items (not ARRAY)", itemType);
            }
            v = normalizeArray(key, itemType, value);
        } else {
            v = normalizeScalar(key, valueType, value);
        }
        if (key === "general.alignment") {
            if (v.type !== GgufValueType.UINT32 || v.value === 0 || (v.value & (v.value - 1)) !== 0) {
                throw new InvalidOptionError(key, "a u32 power of 2", value);
            }
            if (this.tensorList.length > 0 && v.value !== this.alignmentValue) {
                throw new InvalidOptionError(key, "to be set before the first addTensor()", value);
            }
            this.alignmentValue = v.value;
        }
        this.metadata.set(key, v);
        return this;
    }

    /** Sets a value exactly as {@link readGguf} returned it (type included): copies metadata between files. */
    setValue(key: string, value: GgufValue): this {
        if (typeof value !== "object" || value === null) throw new InvalidOptionError("value", "a GgufValue ({ type, value })", value);
        return value.type === GgufValueType.ARRAY
            ? this.setKv(key, value.type, value.value, value.itemType)
            : this.setKv(key, value.type, value.value);
    }

    /** Sets a string (str). */
    setString(key: string, value: string): this {
        return this.setKv(key, GgufValueType.STRING, value);
    }
    /** Sets a bool. */
    setBool(key: string, value: boolean): this {
        return this.setKv(key, GgufValueType.BOOL, value);
    }
    /** Sets a u8 (0–255). */
    setU8(key: string, value: number): this {
        return this.setKv(key, GgufValueType.UINT8, value);
    }
    /** Sets an i8. */
    setI8(key: string, value: number): this {
        return this.setKv(key, GgufValueType.INT8, value);
    }
    /** Sets a u16. */
    setU16(key: string, value: number): this {
        return this.setKv(key, GgufValueType.UINT16, value);
    }
    /** Sets an i16. */
    setI16(key: string, value: number): this {
        return this.setKv(key, GgufValueType.INT16, value);
    }
    /** Sets a u32 (the usual type of llama.cpp integer keys). */
    setU32(key: string, value: number): this {
        return this.setKv(key, GgufValueType.UINT32, value);
    }
    /** Sets an i32. */
    setI32(key: string, value: number): this {
        return this.setKv(key, GgufValueType.INT32, value);
    }
    /** Sets a u64 (a safe integer number or a bigint). */
    setU64(key: string, value: number | bigint): this {
        return this.setKv(key, GgufValueType.UINT64, value);
    }
    /** Sets an i64 (a safe integer number or a bigint). */
    setI64(key: string, value: number | bigint): this {
        return this.setKv(key, GgufValueType.INT64, value);
    }
    /** Sets an f32 (rounded to single precision on write). */
    setF32(key: string, value: number): this {
        return this.setKv(key, GgufValueType.FLOAT32, value);
    }
    /** Sets an f64. */
    setF64(key: string, value: number): this {
        return this.setKv(key, GgufValueType.FLOAT64, value);
    }
    /**
     * Sets an array of `itemType` items: a typed array or plain array of numbers (u64/i64 also accept bigints),
     * `boolean[]` for BOOL, `string[]` for STRING. Values are range-checked like the scalar setters.
     */
    setArray<T extends GgufArrayItemType>(key: string, itemType: T, values: GgufArrayInput<T>): this {
        return this.setKv(key, GgufValueType.ARRAY, values, itemType);
    }

    // ---- tensors ----

    /**
     * Declares a tensor of ggml `type` (name like `"q4_K"` or id) and `shape` (ggml order, `ne0` first, 1–4 dimensions;
     * `ne0` must be a multiple of the type's block size). Data offsets follow the declaration order, each padded to the
     * alignment. All tensors must be declared before {@link writeHeader}.
     */
    addTensor(name: string, type: string | number, shape: readonly number[]): GgufWriterTensor {
        this.checkDeclaring("add tensors");
        requiredString("name", name);
        if (Buffer.byteLength(name) >= GGML_MAX_NAME) {
            throw new InvalidOptionError("name", `a tensor name shorter than ${GGML_MAX_NAME} bytes (ggml's limit)`, name);
        }
        if (this.tensorNames.has(name)) throw new InvalidOptionError("name", "a tensor name not declared before", name);
        const info = resolveGgmlType(type);
        if (!Array.isArray(shape) || shape.length < 1 || shape.length > GGML_MAX_DIMS) {
            throw new InvalidOptionError("shape", `an array of 1 to ${GGML_MAX_DIMS} dimensions`, shape);
        }
        const byteSize = tensorByteSize(info, shape);
        const prev = this.tensorList[this.tensorList.length - 1];
        const relativeOffset = prev ? alignUp(prev.relativeOffset + prev.byteSize, this.alignmentValue) : 0;
        const t: GgufWriterTensor = Object.freeze({
            name,
            type: info.name,
            typeId: info.id,
            shape: Object.freeze([...shape]),
            byteSize,
            relativeOffset,
        });
        this.tensorList.push(t);
        this.tensorNames.add(name);
        return t;
    }

    // ---- writing ----

    /**
     * Creates (truncates) the file and writes the header: magic, version 3, counts, metadata, tensor infos and the
     * padding up to the data section. Returns the absolute offset of the data section.
     */
    async writeHeader(): Promise<number> {
        this.checkDeclaring("write the header");
        this.state = "failed"; // until the header is complete
        const parts = serializeHeader(this.metadata, this.tensorList, this.alignmentValue);
        this.fh = await open(this.path, "w");
        try {
            for (const part of parts) await this.write(part);
            this.dataOffset = this.written;
        } catch (err) {
            await this.abort();
            throw err;
        }
        this.state = "data";
        return this.dataOffset;
    }

    /**
     * Writes the data of the next declared tensor (tensors are written in declaration order; `name` must be that
     * tensor). `data` is one view or an (async) iterable of chunks; its total length must equal the declared byte
     * size. Each chunk is written before the next is requested, so a producer is paced by the disk.
     */
    async writeTensor(name: string, data: TensorData): Promise<void> {
        if (this.state !== "data") throw this.stateError(`write tensor ${name}`);
        const t = this.tensorList[this.next];
        if (!t) throw new InvalidOptionError("name", "a declared tensor (all declared tensors were written)", name);
        if (name !== t.name) {
            throw new InvalidOptionError("name", `the next tensor in declaration order, "${t.name}"`, name);
        }
        this.state = "failed"; // until this tensor is complete
        let total = 0;
        const tooMuch = () =>
            new GgufFormatError(this.path, "CORRUPT", `tensor ${name} received more than its ${t.byteSize} bytes (${describe(t)})`);
        try {
            if (ArrayBuffer.isView(data)) {
                total = data.byteLength;
                if (total > t.byteSize) throw tooMuch();
                if (total === t.byteSize) await this.write(viewBytes(data));
            } else if (data !== null && typeof data === "object" && (Symbol.asyncIterator in data || Symbol.iterator in data)) {
                for await (const chunk of data as AsyncIterable<ArrayBufferView>) {
                    if (!ArrayBuffer.isView(chunk)) {
                        const expected = "an ArrayBufferView (Uint8Array, Buffer, Float32Array, ...)";
                        throw new InvalidOptionError(`data (chunk of ${name})`, expected, chunk);
                    }
                    total += chunk.byteLength;
                    if (total > t.byteSize) throw tooMuch();
                    await this.write(viewBytes(chunk));
                }
            } else {
                throw new InvalidOptionError("data", "an ArrayBufferView or an (async) iterable of them", data);
            }
            if (total !== t.byteSize) {
                const message = `tensor ${name} received ${total} bytes but needs ${t.byteSize} (${describe(t)})`;
                throw new GgufFormatError(this.path, "CORRUPT", message);
            }
            const pad = alignUp(this.written, this.alignmentValue) - this.written;
            if (pad > 0) await this.write(Buffer.alloc(pad));
        } catch (err) {
            await this.abort();
            throw err;
        }
        this.next++;
        this.state = "data";
    }

    /** Checks that every declared tensor was written, flushes, fsyncs and closes the file. Returns the file size. */
    async finish(): Promise<number> {
        if (this.state !== "data") throw this.stateError("finish");
        if (this.next < this.tensorList.length) {
            const missing = this.tensorList.slice(this.next).map((t) => t.name);
            throw new GgufFormatError(
                this.path,
                "CORRUPT",
                `${missing.length} declared tensor(s) were not written: ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", ..." : ""}`,
            );
        }
        try {
            await this.flush();
            await this.fh!.sync();
            await this.fh!.close();
            this.fh = undefined;
        } catch (err) {
            await this.abort();
            throw err;
        }
        this.state = "finished";
        return this.written;
    }

    /** Closes the file without finishing it (the partial file stays; the caller removes its temporary file). */
    async abort(): Promise<void> {
        this.state = this.state === "finished" ? "finished" : "failed";
        const fh = this.fh;
        this.fh = undefined;
        this.staged = 0;
        if (fh) await fh.close().catch(() => undefined);
    }

    private checkDeclaring(action: string): void {
        if (this.state !== "declaring") throw this.stateError(action);
    }

    private stateError(action: string): GgufFormatError {
        const why: Record<State, string> = {
            declaring: "writeHeader() has not been called",
            data: "the header has already been written",
            finished: "the file is already finished",
            failed: "an earlier write failed or the writer was aborted",
        };
        return new GgufFormatError(this.path, "CORRUPT", `cannot ${action}: ${why[this.state]}`);
    }

    /** Writes bytes through the staging buffer; chunks at least as large as the buffer go straight to the file. */
    private async write(bytes: Uint8Array): Promise<void> {
        if (bytes.length === 0) return;
        if (this.staged + bytes.length <= this.staging.length) {
            this.staging.set(bytes, this.staged);
            this.staged += bytes.length;
            this.written += bytes.length;
            if (this.staged === this.staging.length) await this.flush();
            return;
        }
        await this.flush();
        if (bytes.length < this.staging.length) {
            this.staging.set(bytes, 0);
            this.staged = bytes.length;
        } else {
            await writeAll(this.fh!, bytes);
        }
        this.written += bytes.length;
    }

    private async flush(): Promise<void> {
        if (this.staged === 0) return;
        const n = this.staged;
        this.staged = 0;
        await writeAll(this.fh!, this.staging.subarray(0, n));
    }
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, done, bytes.length - done);
        done += bytesWritten;
    }
}

function alignUp(n: number, alignment: number): number {
    return Math.ceil(n / alignment) * alignment;
}

function describe(t: GgufWriterTensor): string {
    return `${t.type} [${t.shape.join(", ")}]`;
}

function viewBytes(v: ArrayBufferView): Uint8Array {
    if (!isLittleEndianHost && !(v instanceof Uint8Array) && !(v instanceof Int8Array) && !(v instanceof DataView)) {
        const bpe = (v as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
        const copy = new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
        swapBytes(copy, bpe);
        return copy;
    }
    return v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

// ---- value normalization ----

function checkInteger(key: string, type: GgufValueType, value: unknown): number {
    const range = integerRanges[type]!;
    if (typeof value !== "number" || !Number.isInteger(value) || value < range[0] || value > range[1]) {
        throw new InvalidOptionError(key, `an integer from ${range[0]} to ${range[1]} (${ggufValueTypeName(type)})`, value);
    }
    return value;
}

function checkInt64(key: string, type: 10 | 11, value: unknown): number | bigint {
    const [min, max] = type === GgufValueType.UINT64 ? [0n, U64_MAX] : [I64_MIN, I64_MAX];
    let big: bigint | undefined;
    if (typeof value === "bigint") big = value;
    else if (typeof value === "number" && Number.isSafeInteger(value)) big = BigInt(value);
    if (big === undefined || big < min || big > max) {
        throw new InvalidOptionError(key, `a safe integer or bigint from ${min} to ${max} (${ggufValueTypeName(type)})`, value);
    }
    // same representation the reader returns
    return big >= -9007199254740991n && big <= 9007199254740991n ? Number(big) : big;
}

function normalizeScalar(key: string, type: Exclude<GgufValueType, 9>, value: unknown): GgufValue {
    switch (type) {
        case GgufValueType.UINT8:
        case GgufValueType.INT8:
        case GgufValueType.UINT16:
        case GgufValueType.INT16:
        case GgufValueType.UINT32:
        case GgufValueType.INT32:
            return { type, value: checkInteger(key, type, value) };
        case GgufValueType.FLOAT32:
        case GgufValueType.FLOAT64:
            if (typeof value !== "number") throw new InvalidOptionError(key, `a number (${ggufValueTypeName(type)})`, value);
            return { type, value: type === GgufValueType.FLOAT32 ? Math.fround(value) : value };
        case GgufValueType.UINT64:
        case GgufValueType.INT64:
            return { type, value: checkInt64(key, type, value) };
        case GgufValueType.BOOL:
            if (typeof value !== "boolean") throw new InvalidOptionError(key, "a boolean", value);
            return { type, value };
        case GgufValueType.STRING:
            if (typeof value !== "string") throw new InvalidOptionError(key, "a string", value);
            return { type, value };
    }
}

const typedArrayCtors = {
    0: Uint8Array,
    1: Int8Array,
    2: Uint16Array,
    3: Int16Array,
    4: Uint32Array,
    5: Int32Array,
    6: Float32Array,
    10: BigUint64Array,
    11: BigInt64Array,
    12: Float64Array,
} as const;

function normalizeArray(key: string, itemType: GgufArrayItemType, value: unknown): GgufArrayValue {
    if (itemType === GgufValueType.STRING) {
        if (!Array.isArray(value)) throw new InvalidOptionError(key, "an array of strings", value);
        for (let i = 0; i < value.length; i++) {
            if (typeof value[i] !== "string") throw new InvalidOptionError(`${key}[${i}]`, "a string", value[i]);
        }
        return { type: 9, itemType, value: value as string[] };
    }
    if (itemType === GgufValueType.BOOL) {
        if (!Array.isArray(value)) throw new InvalidOptionError(key, "an array of booleans", value);
        for (let i = 0; i < value.length; i++) {
            if (typeof value[i] !== "boolean") throw new InvalidOptionError(`${key}[${i}]`, "a boolean", value[i]);
        }
        return { type: 9, itemType, value: value as boolean[] };
    }
    const Ctor = typedArrayCtors[itemType];
    if (value instanceof Ctor) return { type: 9, itemType, value } as GgufArrayValue;
    if (!Array.isArray(value) && !ArrayBuffer.isView(value)) {
        throw new InvalidOptionError(key, `an array or ${Ctor.name} of ${ggufValueTypeName(itemType)} values`, value);
    }
    if (value instanceof DataView) throw new InvalidOptionError(key, `an array or ${Ctor.name}`, value);
    const items = value as ArrayLike<unknown>;
    const n = items.length;
    if (itemType === GgufValueType.UINT64 || itemType === GgufValueType.INT64) {
        const out = itemType === GgufValueType.UINT64 ? new BigUint64Array(n) : new BigInt64Array(n);
        for (let i = 0; i < n; i++) out[i] = BigInt(checkInt64(`${key}[${i}]`, itemType, items[i]));
        return { type: 9, itemType, value: out } as GgufArrayValue;
    }
    const out = new Ctor(n) as Exclude<GgufArrayValue["value"], string[] | boolean[] | BigInt64Array | BigUint64Array>;
    if (itemType === GgufValueType.FLOAT32 || itemType === GgufValueType.FLOAT64) {
        for (let i = 0; i < n; i++) {
            const x = items[i];
            if (typeof x !== "number") throw new InvalidOptionError(`${key}[${i}]`, "a number", x);
            out[i] = x;
        }
    } else {
        for (let i = 0; i < n; i++) out[i] = checkInteger(`${key}[${i}]`, itemType, items[i]);
    }
    return { type: 9, itemType, value: out } as GgufArrayValue;
}

// ---- header serialization ----

/** Accumulates the header in 1 MiB chunks (the header of a Qwen model is ~6 MB: 152k tokens and 151k merges). */
class HeaderBuilder {
    readonly parts: Buffer[] = [];
    private buf = Buffer.allocUnsafe(1 << 20);
    private pos = 0;

    private room(n: number): void {
        if (this.pos + n <= this.buf.length) return;
        this.parts.push(this.buf.subarray(0, this.pos));
        this.buf = Buffer.allocUnsafe(Math.max(1 << 20, n));
        this.pos = 0;
    }
    u8(v: number): void {
        this.room(1);
        this.buf[this.pos++] = v;
    }
    i32(v: number): void {
        this.room(4);
        this.pos = this.buf.writeInt32LE(v, this.pos);
    }
    u32(v: number): void {
        this.room(4);
        this.pos = this.buf.writeUInt32LE(v, this.pos);
    }
    u64(v: number | bigint): void {
        this.room(8);
        if (typeof v === "number") {
            this.buf.writeUInt32LE(v % 0x100000000, this.pos);
            this.buf.writeUInt32LE(Math.floor(v / 0x100000000), this.pos + 4);
            this.pos += 8;
        } else {
            this.pos = this.buf.writeBigUInt64LE(v, this.pos);
        }
    }
    bytes(b: Uint8Array): void {
        this.room(b.length);
        this.buf.set(b, this.pos);
        this.pos += b.length;
    }
    string(s: string): void {
        // ASCII fast path without a native call for short strings (most tokens and merges)
        const n = s.length;
        if (n <= 64) {
            this.room(8 + 3 * n);
            const buf = this.buf;
            const start = this.pos + 8;
            let i = 0;
            for (; i < n; i++) {
                const c = s.charCodeAt(i);
                if (c >= 0x80) break;
                buf[start + i] = c;
            }
            if (i === n) {
                this.u64(n);
                this.pos += n;
                return;
            }
        }
        const len = Buffer.byteLength(s, "utf8");
        this.room(8 + len);
        this.u64(len);
        this.pos += this.buf.write(s, this.pos, len, "utf8");
    }
    zeros(n: number): void {
        this.room(n);
        this.buf.fill(0, this.pos, this.pos + n);
        this.pos += n;
    }
    finish(): Buffer[] {
        this.parts.push(this.buf.subarray(0, this.pos));
        return this.parts;
    }
    get length(): number {
        let n = this.pos;
        for (const p of this.parts) n += p.length;
        return n;
    }
}

function serializeHeader(metadata: Map<string, GgufValue>, tensors: readonly GgufWriterTensor[], alignment: number): Buffer[] {
    const h = new HeaderBuilder();
    h.bytes(Buffer.from(GGUF_MAGIC, "latin1"));
    h.u32(3);
    h.u64(tensors.length);
    h.u64(metadata.size);
    for (const [key, v] of metadata) {
        h.string(key);
        h.i32(v.type);
        if (v.type === GgufValueType.ARRAY) {
            h.i32(v.itemType);
            h.u64(v.value.length);
            writeArrayItems(h, v);
        } else {
            writeScalar(h, v);
        }
    }
    for (const t of tensors) {
        h.string(t.name);
        h.u32(t.shape.length);
        for (const d of t.shape) h.u64(d);
        h.i32(t.typeId);
        h.u64(t.relativeOffset);
    }
    const length = h.length;
    h.zeros(alignUp(length, alignment) - length);
    return h.finish();
}

function writeScalar(h: HeaderBuilder, v: Exclude<GgufValue, GgufArrayValue>): void {
    const b = Buffer.allocUnsafe(8);
    switch (v.type) {
        case GgufValueType.STRING:
            return h.string(v.value);
        case GgufValueType.BOOL:
            return h.u8(v.value ? 1 : 0);
        case GgufValueType.UINT8:
            return h.u8(v.value);
        case GgufValueType.INT8:
            b.writeInt8(v.value);
            return h.bytes(b.subarray(0, 1));
        case GgufValueType.UINT16:
            b.writeUInt16LE(v.value);
            return h.bytes(b.subarray(0, 2));
        case GgufValueType.INT16:
            b.writeInt16LE(v.value);
            return h.bytes(b.subarray(0, 2));
        case GgufValueType.UINT32:
            return h.u32(v.value);
        case GgufValueType.INT32:
            return h.i32(v.value);
        case GgufValueType.FLOAT32:
            b.writeFloatLE(v.value);
            return h.bytes(b.subarray(0, 4));
        case GgufValueType.FLOAT64:
            b.writeDoubleLE(v.value);
            return h.bytes(b);
        case GgufValueType.UINT64:
            b.writeBigUInt64LE(BigInt(v.value));
            return h.bytes(b);
        case GgufValueType.INT64:
            b.writeBigInt64LE(BigInt(v.value));
            return h.bytes(b);
    }
}

function writeArrayItems(h: HeaderBuilder, v: GgufArrayValue): void {
    if (v.itemType === GgufValueType.STRING) {
        for (const s of v.value) h.string(s);
        return;
    }
    if (v.itemType === GgufValueType.BOOL) {
        const bytes = new Uint8Array(v.value.length);
        for (let i = 0; i < bytes.length; i++) bytes[i] = v.value[i] ? 1 : 0;
        h.bytes(bytes);
        return;
    }
    const arr = v.value;
    if (GGUF_VALUE_TYPE_SIZE[v.itemType] === undefined) throw new Error("unreachable");
    h.bytes(viewBytes(arr));
}
