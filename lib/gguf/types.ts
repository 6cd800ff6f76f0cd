/**
 * Constants of the GGUF format and of ggml: tensor types with their block layout, GGUF metadata value types and the
 * `llama_ftype` numbers stored in `general.file_type`. Numbers and spellings are those of llama.cpp v0.5.0
 * (`ggml/include/ggml.h` `enum ggml_type`, `ggml/src/ggml.c` `type_traits`, `ggml/src/ggml-common.h` block structs,
 * `ggml/include/gguf.h` `enum gguf_type`, `include/llama.h` `enum llama_ftype`).
 *
 * @module
 */
import { InvalidOptionError } from "../errors.js";

/** One ggml tensor type: how many values a block holds and how many bytes a block takes. */
export interface GgmlTypeInfo {
    /** `enum ggml_type` value, as stored in a GGUF tensor info. */
    readonly id: number;
    /** `ggml_type_name()` spelling, e.g. `"f32"`, `"q4_K"`, `"iq2_xxs"`. */
    readonly name: string;
    /** Values per block (`ggml_blck_size`); 1 for plain types. A row (`ne0`) must be a multiple of it. */
    readonly blockSize: number;
    /** Bytes per block (`ggml_type_size`). */
    readonly typeSize: number;
    /** True for block-quantized types (`ggml_is_quantized`). */
    readonly quantized: boolean;
}

/**
 * Every tensor type ggml v0.5.0 defines, ordered by id. Ids 4, 5, 31–33 and 36–38 were removed from ggml (their
 * `type_traits` entry has block size 0) and are absent here, so a file using them is reported as corrupt.
 */
export const GGML_TYPES: readonly GgmlTypeInfo[] = Object.freeze(
    (
        [
            // id, name, blockSize, typeSize, quantized
            [0, "f32", 1, 4, false],
            [1, "f16", 1, 2, false],
            [2, "q4_0", 32, 18, true], // f16 d + 16 B nibbles
            [3, "q4_1", 32, 20, true], // f16 d, m + 16 B
            [6, "q5_0", 32, 22, true], // f16 d + u32 qh + 16 B
            [7, "q5_1", 32, 24, true], // f16 d, m + u32 qh + 16 B
            [8, "q8_0", 32, 34, true], // f16 d + 32 B
            [9, "q8_1", 32, 36, true], // f16 d, s + 32 B
            [10, "q2_K", 256, 84, true],
            [11, "q3_K", 256, 110, true],
            [12, "q4_K", 256, 144, true],
            [13, "q5_K", 256, 176, true],
            [14, "q6_K", 256, 210, true],
            [15, "q8_K", 256, 292, true], // f32 d + 256 B + 16 x i16
            [16, "iq2_xxs", 256, 66, true],
            [17, "iq2_xs", 256, 74, true],
            [18, "iq3_xxs", 256, 98, true],
            [19, "iq1_s", 256, 50, true],
            [20, "iq4_nl", 32, 18, true],
            [21, "iq3_s", 256, 110, true],
            [22, "iq2_s", 256, 82, true],
            [23, "iq4_xs", 256, 136, true],
            [24, "i8", 1, 1, false],
            [25, "i16", 1, 2, false],
            [26, "i32", 1, 4, false],
            [27, "i64", 1, 8, false],
            [28, "f64", 1, 8, false],
            [29, "iq1_m", 256, 56, true],
            [30, "bf16", 1, 2, false],
            [34, "tq1_0", 256, 54, true],
            [35, "tq2_0", 256, 66, true],
            [39, "mxfp4", 32, 17, true], // e8m0 scale + 16 B
            [40, "nvfp4", 64, 36, true], // 4 x e4m3 scales + 32 B
            [41, "q1_0", 128, 18, true], // f16 d + 16 B of bits
            [42, "q2_0", 64, 18, true], // f16 d + 16 B
        ] as const
    ).map(([id, name, blockSize, typeSize, quantized]) => Object.freeze({ id, name, blockSize, typeSize, quantized })),
);

/** `GGML_TYPE_COUNT`: tensor type ids are below this. */
export const GGML_TYPE_COUNT = 43;

/** A ggml tensor type name as spelled by `ggml_type_name()`. */
export type GgmlTypeName = (typeof GGML_TYPES)[number]["name"];

const typesById = new Map<number, GgmlTypeInfo>(GGML_TYPES.map((t) => [t.id, t]));
const typesByName = new Map<string, GgmlTypeInfo>(GGML_TYPES.map((t) => [t.name, t]));
const typesByLowerName = new Map<string, GgmlTypeInfo>(GGML_TYPES.map((t) => [t.name.toLowerCase(), t]));

/** The ggml type with this id, or undefined for unknown and removed ids. */
export function ggmlTypeById(id: number): GgmlTypeInfo | undefined {
    return typesById.get(id);
}

/**
 * The ggml type with this name. The exact `ggml_type_name` spelling is tried first, then a case-insensitive match
 * (`"Q4_K"` and `"q4_k"` both give `q4_K`). Returns undefined for unknown names.
 */
export function ggmlTypeByName(name: string): GgmlTypeInfo | undefined {
    return typesByName.get(name) ?? typesByLowerName.get(name.toLowerCase());
}

/** Resolves a type given by name or id, throwing {@link InvalidOptionError} (option `option`) when unknown. */
export function resolveGgmlType(type: string | number, option = "type"): GgmlTypeInfo {
    const info = typeof type === "number" ? ggmlTypeById(type) : typeof type === "string" ? ggmlTypeByName(type) : undefined;
    if (!info) {
        throw new InvalidOptionError(option, `a ggml type name (${GGML_TYPES.map((t) => t.name).join(", ")}) or id`, type);
    }
    return info;
}

/** Number of values in a tensor of this shape (product of the dimensions; 1 for an empty shape). */
export function elementCount(shape: readonly number[]): number {
    let n = 1;
    for (const d of shape) n *= d;
    return n;
}

/**
 * Bytes taken by a tensor of `type` and `shape` (ggml order, `ne0` first): `ne0 / blockSize * typeSize` bytes per row
 * times the other dimensions — the same as `ggml_nbytes` for a contiguous tensor, without alignment padding.
 *
 * Throws {@link InvalidOptionError} when the type is unknown, a dimension is not a non-negative safe integer, `ne0`
 * is not a multiple of the type's block size, or the size exceeds `Number.MAX_SAFE_INTEGER`.
 */
export function tensorByteSize(type: string | number | GgmlTypeInfo, shape: readonly number[]): number {
    const info = typeof type === "object" ? type : resolveGgmlType(type);
    if (!Array.isArray(shape)) throw new InvalidOptionError("shape", "an array of dimensions", shape);
    for (let i = 0; i < shape.length; i++) {
        const d = shape[i];
        if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
            throw new InvalidOptionError(`shape[${i}]`, "a non-negative integer", d);
        }
    }
    const ne0 = shape.length > 0 ? shape[0]! : 1;
    if (ne0 % info.blockSize !== 0) {
        throw new InvalidOptionError(
            "shape[0]",
            `a multiple of ${info.blockSize} (the block size of ${info.name})`,
            ne0,
            "ggml stores whole blocks per row",
        );
    }
    let bytes = (ne0 / info.blockSize) * info.typeSize;
    for (let i = 1; i < shape.length; i++) bytes *= shape[i]!;
    if (!Number.isSafeInteger(bytes)) {
        throw new InvalidOptionError("shape", "a tensor smaller than 2^53 bytes", shape);
    }
    return bytes;
}

/** GGUF metadata value types (`enum gguf_type` of `ggml/include/gguf.h`). */
export const GgufValueType = Object.freeze({
    UINT8: 0,
    INT8: 1,
    UINT16: 2,
    INT16: 3,
    UINT32: 4,
    INT32: 5,
    FLOAT32: 6,
    BOOL: 7,
    STRING: 8,
    ARRAY: 9,
    UINT64: 10,
    INT64: 11,
    FLOAT64: 12,
} as const);

/** A GGUF metadata value type number. */
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

/** Value types that hold a number in JS (`bigint` allowed for the 64-bit integer types). */
export type GgufNumberType = Exclude<GgufValueType, 7 | 8 | 9>;

/** Value types an array may hold (llama.cpp rejects nested arrays, and so does vidllama). */
export type GgufArrayItemType = Exclude<GgufValueType, 9>;

const valueTypeNames: Record<GgufValueType, string> = {
    0: "u8",
    1: "i8",
    2: "u16",
    3: "i16",
    4: "u32",
    5: "i32",
    6: "f32",
    7: "bool",
    8: "str",
    9: "arr",
    10: "u64",
    11: "i64",
    12: "f64",
};

/** Byte size of one scalar of each fixed-size value type (strings and arrays are variable: undefined). */
export const GGUF_VALUE_TYPE_SIZE: Readonly<Record<GgufValueType, number | undefined>> = Object.freeze({
    0: 1,
    1: 1,
    2: 2,
    3: 2,
    4: 4,
    5: 4,
    6: 4,
    7: 1,
    8: undefined,
    9: undefined,
    10: 8,
    11: 8,
    12: 8,
});

/** Short name of a GGUF value type as `gguf_type_name()` spells it: `"u32"`, `"f32"`, `"str"`, `"arr"`, ... */
export function ggufValueTypeName(type: number): string {
    return valueTypeNames[type as GgufValueType] ?? `unknown(${type})`;
}

/** True when `type` is a defined GGUF value type number. */
export function isGgufValueType(type: number): type is GgufValueType {
    return Number.isInteger(type) && type >= 0 && type <= 12;
}

/** `llama_ftype` values (`include/llama.h`) stored in `general.file_type`, with the names llama.cpp prints. */
export const LlamaFileType = Object.freeze({
    ALL_F32: 0,
    MOSTLY_F16: 1,
    MOSTLY_Q4_0: 2,
    MOSTLY_Q4_1: 3,
    MOSTLY_Q8_0: 7,
    MOSTLY_Q5_0: 8,
    MOSTLY_Q5_1: 9,
    MOSTLY_Q2_K: 10,
    MOSTLY_Q3_K_S: 11,
    MOSTLY_Q3_K_M: 12,
    MOSTLY_Q3_K_L: 13,
    MOSTLY_Q4_K_S: 14,
    MOSTLY_Q4_K_M: 15,
    MOSTLY_Q5_K_S: 16,
    MOSTLY_Q5_K_M: 17,
    MOSTLY_Q6_K: 18,
    MOSTLY_IQ2_XXS: 19,
    MOSTLY_IQ2_XS: 20,
    MOSTLY_Q2_K_S: 21,
    MOSTLY_IQ3_XS: 22,
    MOSTLY_IQ3_XXS: 23,
    MOSTLY_IQ1_S: 24,
    MOSTLY_IQ4_NL: 25,
    MOSTLY_IQ3_S: 26,
    MOSTLY_IQ3_M: 27,
    MOSTLY_IQ2_S: 28,
    MOSTLY_IQ2_M: 29,
    MOSTLY_IQ4_XS: 30,
    MOSTLY_IQ1_M: 31,
    MOSTLY_BF16: 32,
    MOSTLY_TQ1_0: 36,
    MOSTLY_TQ2_0: 37,
    MOSTLY_MXFP4_MOE: 38,
    MOSTLY_NVFP4: 39,
    MOSTLY_Q1_0: 40,
    MOSTLY_Q2_0: 41,
} as const);

/** A `llama_ftype` number. */
export type LlamaFileType = (typeof LlamaFileType)[keyof typeof LlamaFileType];

const fileTypeNames: Record<number, string> = {
    0: "all F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K - Medium",
    11: "Q3_K - Small",
    12: "Q3_K - Medium",
    13: "Q3_K - Large",
    14: "Q4_K - Small",
    15: "Q4_K - Medium",
    16: "Q5_K - Small",
    17: "Q5_K - Medium",
    18: "Q6_K",
    19: "IQ2_XXS - 2.0625 bpw",
    20: "IQ2_XS - 2.3125 bpw",
    21: "Q2_K - Small",
    22: "IQ3_XS - 3.3 bpw",
    23: "IQ3_XXS - 3.0625 bpw",
    24: "IQ1_S - 1.5625 bpw",
    25: "IQ4_NL - 4.5 bpw",
    26: "IQ3_S - 3.4375 bpw",
    27: "IQ3_S mix - 3.66 bpw",
    28: "IQ2_S - 2.5 bpw",
    29: "IQ2_M - 2.7 bpw",
    30: "IQ4_XS - 4.25 bpw",
    31: "IQ1_M - 1.75 bpw",
    32: "BF16",
    36: "TQ1_0 - 1.69 bpw ternary",
    37: "TQ2_0 - 2.06 bpw ternary",
    38: "MXFP4 MoE",
    39: "NVFP4",
    40: "Q1_0",
    41: "Q2_0",
};

/** `LLAMA_FTYPE_GUESSED`: flag llama.cpp adds when `general.file_type` is missing. */
export const LLAMA_FTYPE_GUESSED = 1024;

/** The name llama.cpp gives a `general.file_type` value (`llama_model_ftype_name`), or undefined when unknown. */
export function llamaFileTypeName(fileType: number): string | undefined {
    return fileTypeNames[fileType];
}
