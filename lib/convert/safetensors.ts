/**
 * Reading Hugging Face safetensors checkpoints without loading them: only the JSON headers are parsed, and tensor
 * data is read later by byte offset, a slab of rows at a time, into buffers the caller reuses.
 *
 * Layout of a `.safetensors` file: an 8-byte little-endian header length N, N bytes of JSON
 * (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`), then the data, with
 * offsets relative to the first byte after the header. A sharded checkpoint adds `model.safetensors.index.json`
 * whose `weight_map` says which shard holds each tensor.
 *
 * @internal
 * @module
 */
import { open, readFile, stat, type FileHandle } from "node:fs/promises";
import { basename, join } from "node:path";
import { ConversionError } from "../errors.js";

/** Element types of safetensors files. Only the floating-point ones can be converted. */
export type SafetensorsDtype = "BF16" | "F16" | "F32" | "F64" | "F8_E4M3" | "F8_E5M2" | "I8" | "U8" | "I16" | "U16" | "I32" | "U32" | "I64" | "U64" | "BOOL";

const DTYPE_SIZES: Record<SafetensorsDtype, number> = {
    BF16: 2,
    F16: 2,
    F32: 4,
    F64: 8,
    F8_E4M3: 1,
    F8_E5M2: 1,
    I8: 1,
    U8: 1,
    I16: 2,
    U16: 2,
    I32: 4,
    U32: 4,
    I64: 8,
    U64: 8,
    BOOL: 1,
};

/** The dtypes the converter reads (upcast to f32 exactly). */
export const CONVERTIBLE_DTYPES: readonly SafetensorsDtype[] = ["BF16", "F16", "F32"];

/** Largest header accepted (the real 7B shards have ~30 KB headers; the format's own reader limit is 100 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** One tensor of a checkpoint: where its bytes are and what they hold. */
export interface SafetensorsTensor {
    /** The tensor's key, e.g. `model.layers.0.self_attn.q_proj.weight`. */
    name: string;
    /** Absolute path of the shard holding it. */
    file: string;
    dtype: SafetensorsDtype;
    /** PyTorch order (outermost first). */
    shape: number[];
    /** Absolute byte offset of the first element in the file. */
    offset: number;
    /** Byte length of the data. */
    byteLength: number;
}

/** A parsed shard header. */
export interface SafetensorsHeader {
    file: string;
    fileSize: number;
    /** Where tensor data begins (8 + header length). */
    dataStart: number;
    tensors: SafetensorsTensor[];
    metadata: Record<string, string>;
}

/** Bytes per element of a dtype. */
export function dtypeSize(dtype: SafetensorsDtype): number {
    return DTYPE_SIZES[dtype];
}

/**
 * Reads and validates the header of one `.safetensors` file: JSON structure, known dtypes, shapes, offsets that
 * match the shapes, and data that lies inside the file (a truncated file is reported naming the first tensor that
 * extends past its end).
 */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
    let fh: FileHandle;
    try {
        fh = await open(file, "r");
    } catch (err) {
        throw new ConversionError(`cannot open the file: ${(err as Error).message}`, { file, cause: err });
    }
    try {
        const fileSize = (await fh.stat()).size;
        if (fileSize < 8) {
            throw new ConversionError(`truncated safetensors file: ${fileSize} bytes, shorter than the 8-byte header length`, { file });
        }
        const lenBuf = Buffer.alloc(8);
        await readExactly(fh, lenBuf, 0, file);
        const headerLength = lenBuf.readBigUInt64LE(0);
        if (headerLength > BigInt(MAX_HEADER_BYTES)) {
            throw new ConversionError(`malformed safetensors header: header length ${headerLength} is implausible`, { file });
        }
        const n = Number(headerLength);
        if (8 + n > fileSize) {
            throw new ConversionError(
                `truncated safetensors file: the header needs ${n} bytes but the file has only ${fileSize - 8} after the length`,
                { file },
            );
        }
        const headerBuf = Buffer.alloc(n);
        await readExactly(fh, headerBuf, 8, file);
        let json: unknown;
        try {
            json = JSON.parse(headerBuf.toString("utf8"));
        } catch (err) {
            throw new ConversionError(`malformed safetensors header: not valid JSON (${(err as Error).message})`, { file, cause: err });
        }
        if (typeof json !== "object" || json === null || Array.isArray(json)) {
            throw new ConversionError("malformed safetensors header: the header is not a JSON object", { file });
        }
        const dataStart = 8 + n;
        const tensors: SafetensorsTensor[] = [];
        let metadata: Record<string, string> = {};
        for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
            if (name === "__metadata__") {
                if (typeof entry === "object" && entry !== null) metadata = entry as Record<string, string>;
                continue;
            }
            tensors.push(parseEntry(file, name, entry, dataStart));
        }
        // Overlapping tensors mean a corrupt header (the format requires disjoint, contiguous ranges).
        const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
        const cut = sorted.find((t) => t.offset + t.byteLength > fileSize);
        if (cut) {
            throw new ConversionError(
                `truncated safetensors file: the tensor's data ends at byte ${cut.offset + cut.byteLength} but the file has ${fileSize} bytes` +
                    (sorted.at(-1) !== cut ? ` (this is the first of ${sorted.length - sorted.indexOf(cut)} tensors cut off)` : ""),
                { file, tensor: cut.name },
            );
        }
        for (let i = 1; i < sorted.length; i++) {
            const prev = sorted[i - 1]!;
            if (sorted[i]!.offset < prev.offset + prev.byteLength) {
                throw new ConversionError(`malformed safetensors header: the data of ${prev.name} and ${sorted[i]!.name} overlap`, {
                    file,
                    tensor: sorted[i]!.name,
                });
            }
        }
        return { file, fileSize, dataStart, tensors, metadata };
    } finally {
        await fh.close();
    }
}

function parseEntry(file: string, name: string, entry: unknown, dataStart: number): SafetensorsTensor {
    const bad = (what: string): never => {
        throw new ConversionError(`malformed safetensors header: ${what}`, { file, tensor: name });
    };
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) bad("the entry is not an object");
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e.dtype !== "string" || !(e.dtype in DTYPE_SIZES)) bad(`unknown dtype ${JSON.stringify(e.dtype)}`);
    const dtype = e.dtype as SafetensorsDtype;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
        bad(`shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`);
    }
    const shape = e.shape as number[];
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
        bad(`data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    const elements = shape.reduce((a, d) => a * d, 1);
    const expected = elements * DTYPE_SIZES[dtype];
    if (end < begin || end - begin !== expected) {
        bad(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape [${shape.join(", ")}] of ${dtype} needs ${expected}`);
    }
    return { name, file, dtype, shape, offset: dataStart + begin, byteLength: expected };
}

async function readExactly(fh: FileHandle, buf: Buffer, position: number, file: string): Promise<void> {
    let done = 0;
    while (done < buf.length) {
        const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
        if (bytesRead === 0) throw new ConversionError(`truncated file: unexpected end at byte ${position + done}`, { file });
        done += bytesRead;
    }
}

/** All tensors of a checkpoint directory, by name, with the shard files that were read. */
export interface CheckpointTensors {
    tensors: Map<string, SafetensorsTensor>;
    /** The `.safetensors` files (absolute paths). */
    files: string[];
    /** The index file, when the checkpoint is sharded. */
    index: string | undefined;
}

/**
 * Finds and parses the weights of a checkpoint directory: `model.safetensors.index.json` with its shards when
 * present, otherwise `model.safetensors`. Tensors listed in the index must be in the shard it names.
 */
export async function openCheckpointTensors(dir: string): Promise<CheckpointTensors> {
    const indexPath = join(dir, "model.safetensors.index.json");
    const single = join(dir, "model.safetensors");
    let files: string[];
    let weightMap: Map<string, string> | undefined;
    if (await isFile(indexPath)) {
        let index: unknown;
        try {
            index = JSON.parse(await readFile(indexPath, "utf8"));
        } catch (err) {
            throw new ConversionError(`not a valid safetensors index: ${(err as Error).message}`, { file: indexPath, cause: err });
        }
        const map = (index as { weight_map?: unknown } | null)?.weight_map;
        if (typeof map !== "object" || map === null || Array.isArray(map)) {
            throw new ConversionError("not a valid safetensors index: no weight_map object", { file: indexPath });
        }
        weightMap = new Map();
        for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
            if (typeof shard !== "string" || shard.length === 0 || basename(shard) !== shard) {
                throw new ConversionError(`not a valid safetensors index: shard name ${JSON.stringify(shard)} is not a file name`, {
                    file: indexPath,
                    tensor: name,
                });
            }
            weightMap.set(name, join(dir, shard));
        }
        files = [...new Set(weightMap.values())].sort();
        for (const f of files) {
            if (!(await isFile(f))) throw new ConversionError("a shard named in the index does not exist", { file: f });
        }
    } else if (await isFile(single)) {
        files = [single];
    } else {
        throw new ConversionError("no model.safetensors or model.safetensors.index.json found", { file: dir });
    }
    const tensors = new Map<string, SafetensorsTensor>();
    for (const f of files) {
        const header = await readSafetensorsHeader(f);
        for (const t of header.tensors) {
            const other = tensors.get(t.name);
            if (other) {
                throw new ConversionError(`the tensor is stored twice (also in ${other.file})`, { file: f, tensor: t.name });
            }
            tensors.set(t.name, t);
        }
    }
    if (weightMap) {
        for (const [name, shard] of weightMap) {
            const t = tensors.get(name);
            if (!t) throw new ConversionError("the index lists this tensor but the shard does not contain it", { file: shard, tensor: name });
            if (t.file !== shard) {
                throw new ConversionError(`the index places this tensor in ${basename(shard)} but it is in ${basename(t.file)}`, {
                    file: indexPath,
                    tensor: name,
                });
            }
        }
    }
    return { tensors, files, index: weightMap ? indexPath : undefined };
}

async function isFile(path: string): Promise<boolean> {
    try {
        return (await stat(path)).isFile();
    } catch {
        return false;
    }
}

/**
 * Open shard files, one handle per file, reused for every read. `close()` closes them all.
 */
export class ShardReader {
    readonly #handles = new Map<string, Promise<FileHandle>>();

    /**
     * Reads `byteLength` bytes of `tensor` starting `byteOffset` bytes into its data, into `target` (from its
     * start). Throws a ConversionError naming the file and tensor when the file ends early (it may have been
     * truncated after the header was checked).
     */
    async read(tensor: SafetensorsTensor, byteOffset: number, byteLength: number, target: Uint8Array): Promise<void> {
        if (byteOffset < 0 || byteOffset + byteLength > tensor.byteLength || byteLength > target.byteLength) {
            throw new RangeError(`read of ${byteLength} bytes at ${byteOffset} is outside tensor ${tensor.name}`);
        }
        let handle = this.#handles.get(tensor.file);
        if (!handle) {
            handle = open(tensor.file, "r");
            this.#handles.set(tensor.file, handle);
        }
        let fh: FileHandle;
        try {
            fh = await handle;
        } catch (err) {
            throw new ConversionError(`cannot open the file: ${(err as Error).message}`, { file: tensor.file, tensor: tensor.name, cause: err });
        }
        let done = 0;
        const position = tensor.offset + byteOffset;
        while (done < byteLength) {
            const { bytesRead } = await fh.read(target, done, byteLength - done, position + done);
            if (bytesRead === 0) {
                throw new ConversionError(`truncated safetensors file: unexpected end of file at byte ${position + done}`, {
                    file: tensor.file,
                    tensor: tensor.name,
                });
            }
            done += bytesRead;
        }
    }

    /** Closes every file opened so far. */
    async close(): Promise<void> {
        const handles = [...this.#handles.values()];
        this.#handles.clear();
        await Promise.all(handles.map(async (h) => (await h.catch(() => undefined))?.close()));
    }
}

let f16Table: Float32Array | undefined;

/** f16 bit pattern → f32 value, for all 65536 patterns (exact). */
function halfTable(): Float32Array {
    if (f16Table) return f16Table;
    const t = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
        const sign = h & 0x8000 ? -1 : 1;
        const exp = (h >> 10) & 0x1f;
        const mant = h & 0x3ff;
        let v: number;
        if (exp === 0) v = mant * 2 ** -24;
        else if (exp === 31) v = mant ? NaN : Infinity;
        else v = (1 + mant / 1024) * 2 ** (exp - 15);
        t[h] = sign * v;
    }
    f16Table = t;
    return t;
}

/**
 * Converts `count` elements of `dtype` from `src` (little-endian bytes) to f32 in `dst` (exact for BF16, F16, F32:
 * every value of these types is representable in f32, NaN payloads of BF16 kept bit for bit).
 */
export function toFloat32(dtype: SafetensorsDtype, src: Uint8Array, count: number, dst: Float32Array): void {
    if (dst.length < count) throw new RangeError("destination too small");
    switch (dtype) {
        case "BF16": {
            const out = new Uint32Array(dst.buffer, dst.byteOffset, count);
            if (src.byteOffset % 2 === 0) {
                const u16 = new Uint16Array(src.buffer, src.byteOffset, count);
                for (let i = 0; i < count; i++) out[i] = u16[i]! << 16;
            } else {
                for (let i = 0; i < count; i++) out[i] = (src[2 * i]! | (src[2 * i + 1]! << 8)) << 16;
            }
            return;
        }
        case "F16": {
            const table = halfTable();
            for (let i = 0; i < count; i++) dst[i] = table[src[2 * i]! | (src[2 * i + 1]! << 8)]!;
            return;
        }
        case "F32": {
            new Uint8Array(dst.buffer, dst.byteOffset, count * 4).set(src.subarray(0, count * 4));
            return;
        }
        default:
            throw new Error(`dtype ${dtype} cannot be converted`);
    }
}
