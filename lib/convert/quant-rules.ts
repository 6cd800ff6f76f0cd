/**
 * Per-tensor storage types for a `--type`, following llama.cpp's own quantizer (`src/llama-quant.cpp`,
 * `llama_tensor_get_type` with `llama_model_quantize_default_params()`: no imatrix, output tensor quantized, no
 * overrides) for a dense `qwen2` model, so that converting directly gives the same tensor types as converting to
 * f32 and running `llama-quantize`:
 *
 * - only tensors with ≥ 2 dimensions whose name ends in `weight` and is not a `_norm.weight` are quantized; the
 *   rest (biases, norms) stay f32;
 * - `output.weight` — and `token_embd.weight` when there is no `output.weight` (tied embeddings) — get Q6_K when
 *   the default type is not Q8_0, or Q8_0 when the row length is not a multiple of the default type's block size;
 * - Q4_K_M: `attn_v.weight` and `ffn_down.weight` get Q6_K in the layers where `use_more_bits(i, n)` holds
 *   (the first and last eighth and every third layer in between), everything else Q4_K;
 * - Q8_0 and Q4_0: every other matrix in the default type (Q4_0's ffn_down bump needs an imatrix, not used here);
 * - fallback when a row (`ne0`) is not a multiple of the block size: Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, and
 *   F16 when even the 32-block fallback does not fit.
 *
 * @internal
 * @module
 */

/** Output types of `vidllama convert --type`. */
export type TextOutputType = "f32" | "f16" | "bf16" | "q8_0" | "q4_0" | "q4_k_m";
/** Output types of `--mmproj-type`. */
export type MmprojOutputType = "f32" | "f16" | "q8_0" | "q4_k";

/** All `--type` values. */
export const TEXT_OUTPUT_TYPES: readonly TextOutputType[] = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m"];
/** All `--mmproj-type` values. */
export const MMPROJ_OUTPUT_TYPES: readonly MmprojOutputType[] = ["f32", "f16", "q8_0", "q4_k"];

/** `llama_ftype` (general.file_type) of each output type. */
export const FILE_TYPE: Readonly<Record<TextOutputType, number>> = Object.freeze({
    f32: 0,
    f16: 1,
    bf16: 32,
    q8_0: 7,
    q4_0: 2,
    q4_k_m: 15,
});

/** ggml type names (`ggml_type_name` spelling) the converter can produce. */
export type StorageType = "f32" | "f16" | "bf16" | "q8_0" | "q4_0" | "q5_0" | "q5_1" | "q4_K" | "q5_K" | "q6_K";

const BLOCK_SIZE: Record<StorageType, number> = {
    f32: 1,
    f16: 1,
    bf16: 1,
    q8_0: 32,
    q4_0: 32,
    q5_0: 32,
    q5_1: 32,
    q4_K: 256,
    q5_K: 256,
    q6_K: 256,
};

/** Values per block of a storage type. */
export function blockSize(type: StorageType): number {
    return BLOCK_SIZE[type];
}

/** True for block-quantized types. */
export function isQuantized(type: StorageType): boolean {
    return BLOCK_SIZE[type] > 1;
}

const DEFAULT_TYPE: Record<TextOutputType, StorageType> = {
    f32: "f32",
    f16: "f16",
    bf16: "bf16",
    q8_0: "q8_0",
    q4_0: "q4_0",
    q4_k_m: "q4_K",
};

/** A tensor as the rules see it: GGUF name and ggml shape. */
export interface TensorShapeInfo {
    name: string;
    ne: readonly number[];
}

/** One type decision, with the reason (for logs and the summary). */
export interface TypeChoice {
    type: StorageType;
    /** Set when llama.cpp's shape fallback changed the type (row length not a multiple of the block size). */
    fallbackFrom?: StorageType;
}

/** `llama-quant.cpp` `tensor_allows_quantization` for the tensor names a qwen2 model has. */
export function allowsQuantization(name: string, ne: readonly number[]): boolean {
    let nDims = ne.length; // ggml_n_dims: trailing dimensions of 1 do not count
    while (nDims > 1 && ne[nDims - 1] === 1) nDims--;
    if (nDims < 2) return false;
    if (!name.endsWith("weight")) return false;
    if (name.includes("_norm.weight")) return false;
    return true;
}

/** `use_more_bits` of llama-quant.cpp (integer division as in C). */
function useMoreBits(i: number, n: number): boolean {
    const n8 = Math.trunc(n / 8);
    return i < n8 || i >= Math.trunc((7 * n) / 8) || (i - n8) % 3 === 2;
}

/** llama.cpp's tensor order while quantizing: by layer number (non-layer tensors first), then by name. */
function llamaOrder(a: string, b: string): number {
    const la = /^blk\.(\d+)\./.exec(a);
    const lb = /^blk\.(\d+)\./.exec(b);
    const ia = la ? Number(la[1]) : -1;
    const ib = lb ? Number(lb[1]) : -1;
    if (ia !== ib) return ia - ib;
    return a < b ? -1 : a > b ? 1 : 0;
}

function fallback(type: StorageType, ne0: number): TypeChoice {
    if (ne0 % BLOCK_SIZE[type] === 0) return { type };
    let next: StorageType;
    switch (type) {
        case "q4_K":
            next = "q5_0";
            break;
        case "q5_K":
            next = "q5_1";
            break;
        case "q6_K":
            next = "q8_0";
            break;
        default:
            next = type; // already a 32-block type
    }
    if (ne0 % BLOCK_SIZE[next] !== 0) next = "f16";
    return { type: next, fallbackFrom: type };
}

/**
 * The storage type of every text-model tensor for `outType`, exactly as llama.cpp's quantizer would choose it
 * from an f32 file holding these tensors. `nLayer` is the model's block count.
 */
export function selectTextTensorTypes(outType: TextOutputType, tensors: readonly TensorShapeInfo[], nLayer: number): Map<string, TypeChoice> {
    const result = new Map<string, TypeChoice>();
    const defaultType = DEFAULT_TYPE[outType];
    const ordered = [...tensors].sort((a, b) => llamaOrder(a.name, b.name));
    const tied = !tensors.some((t) => t.name === "output.weight");
    const nAttnV = tensors.filter((t) => t.name.includes("attn_v.weight")).length;
    let iAttnV = 0;
    let iFfnDown = 0;
    for (const t of ordered) {
        if (!allowsQuantization(t.name, t.ne)) {
            result.set(t.name, { type: "f32" });
            continue;
        }
        if (!isQuantized(defaultType)) {
            result.set(t.name, { type: defaultType });
            continue;
        }
        let type: StorageType = defaultType;
        const ne0 = t.ne[0]!;
        if (t.name === "output.weight" || (tied && t.name === "token_embd.weight")) {
            if (ne0 % BLOCK_SIZE[defaultType] !== 0) type = "q8_0";
            else if (type !== "q8_0") type = "q6_K";
        } else if (t.name === "token_embd.weight") {
            // untied embeddings keep the default type for these ftypes
        } else if (t.name.includes("attn_v.weight")) {
            if (outType === "q4_k_m" && useMoreBits(iAttnV, nAttnV)) type = "q6_K";
            iAttnV++;
        } else if (t.name.includes("ffn_down")) {
            if (outType === "q4_k_m" && useMoreBits(iFfnDown, nLayer)) type = "q6_K";
            iFfnDown++;
        }
        result.set(t.name, fallback(type, ne0));
    }
    return result;
}

/** `general.file_type` of each projector type (`llama_ftype`; q4_k is LLAMA_FTYPE_MOSTLY_Q4_K_S). */
export const MMPROJ_FILE_TYPE: Readonly<Record<MmprojOutputType, number>> = Object.freeze({ f32: 0, f16: 1, q8_0: 7, q4_k: 14 });

const MMPROJ_STORAGE: Record<MmprojOutputType, StorageType> = { f32: "f32", f16: "f16", q8_0: "q8_0", q4_k: "q4_K" };

/**
 * The mmproj's types. Float types: every tensor with ≥ 2 dimensions in `outType`, vectors in f32. Quantized types
 * (as llama.cpp's `clip_model_quantize`): only 2-D `*weight` matrices are quantized — attention, MLP and projector
 * matrices; the 4-D patch embedding stays f16 and vectors f32 — and a matrix whose rows (`ne0`) do not fit the block
 * size falls back per tensor as in the text model (q4_K → q5_0, then f16; q8_0 → f16), e.g. SigLIP's FFN down
 * projection with rows of 4304.
 */
export function selectMmprojTensorTypes(outType: MmprojOutputType, tensors: readonly TensorShapeInfo[]): Map<string, TypeChoice> {
    const result = new Map<string, TypeChoice>();
    const storage = MMPROJ_STORAGE[outType];
    for (const t of tensors) {
        if (t.ne.length < 2) result.set(t.name, { type: "f32" });
        else if (!isQuantized(storage)) result.set(t.name, { type: storage });
        else if (!allowsQuantization(t.name, t.ne) || t.ne.length !== 2) result.set(t.name, { type: "f16" });
        else result.set(t.name, fallback(storage, t.ne[0]!));
    }
    return result;
}
