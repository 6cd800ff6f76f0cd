/**
 * Human-readable description of a GGUF header (backs `vidllama inspect`).
 *
 * @module
 */
import { formatBytes, InvalidOptionError } from "../errors.js";
import { checkOptionsObject, optionalEnum } from "../validate.js";
import { GgufFile, type GgufTensorInfo, type GgufValue } from "./reader.js";
import { GgufValueType, ggufValueTypeName, llamaFileTypeName } from "./types.js";

/** Options of {@link describeGguf}. */
export interface DescribeGgufOptions {
    /** `"summary"` (default): counts by type, totals and the largest tensors; `"all"`: also every tensor with type, shape and size. */
    tensors?: "summary" | "all";
    /** Longest string shown before it is truncated (characters). Default 100. */
    maxStringLength?: number;
    /** Array items shown before the rest is summarised. Default 8. */
    maxArrayItems?: number;
}

/**
 * Describes a GGUF file: a header line (version, size, counts, alignment), every metadata key with its type and value
 * (long strings such as chat templates truncated with their length, long arrays summarised as count + first items,
 * token id keys annotated with the token text, `general.file_type` with its llama.cpp name), and a tensor summary
 * (count by type, total bytes, parameter count, bits per weight, the largest tensors; every tensor with `tensors: "all"`).
 */
export function describeGguf(file: GgufFile, options?: DescribeGgufOptions): string {
    if (!(file instanceof GgufFile)) throw new InvalidOptionError("file", "a GgufFile from readGguf()", file);
    const opts = checkOptionsObject(options, ["tensors", "maxStringLength", "maxArrayItems"]);
    const tensorMode = optionalEnum("tensors", opts.tensors, ["summary", "all"] as const, "summary");
    const maxString = positiveInteger("maxStringLength", opts.maxStringLength, 100);
    const maxItems = positiveInteger("maxArrayItems", opts.maxArrayItems, 8);

    const lines: string[] = [];
    lines.push(file.path);
    lines.push(
        `  GGUF v${file.version}, ${formatBytes(file.fileSize)} (${file.fileSize} bytes), ${file.metadata.size} metadata keys, ` +
            `${file.tensors.length} tensors, alignment ${file.alignment}, data at byte ${file.dataOffset}`,
    );

    lines.push("", "Metadata:");
    const keyWidth = Math.min(48, Math.max(0, ...[...file.metadata.keys()].map((k) => k.length)));
    const tokens = tokenStrings(file);
    for (const [key, value] of file.metadata) {
        lines.push(`  ${key.padEnd(keyWidth)}  ${typeLabel(value).padEnd(15)} ${formatValue(key, value, tokens, maxString, maxItems)}`);
    }

    lines.push("", ...describeTensors(file.tensors, tensorMode));
    return lines.join("\n");
}

function positiveInteger(option: string, value: unknown, fallback: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) throw new InvalidOptionError(option, "a positive integer", value);
    return value;
}

function tokenStrings(file: GgufFile): readonly string[] | undefined {
    const v = file.metadata.get("tokenizer.ggml.tokens");
    return v && v.type === GgufValueType.ARRAY && v.itemType === GgufValueType.STRING ? v.value : undefined;
}

function typeLabel(v: GgufValue): string {
    return v.type === GgufValueType.ARRAY ? `arr[${ggufValueTypeName(v.itemType)},${v.value.length}]` : ggufValueTypeName(v.type);
}

/** Shortest decimal that reads back as the same f32. */
function formatF32(x: number): string {
    if (!Number.isFinite(x)) return String(x);
    for (let p = 1; p <= 9; p++) {
        const s = x.toPrecision(p);
        if (Math.fround(Number(s)) === x) return String(Number(s));
    }
    return String(x);
}

function quote(s: string, max: number): string {
    if (s.length <= max) return JSON.stringify(s);
    return `${JSON.stringify(s.slice(0, max))}… (${s.length} chars)`;
}

function formatScalar(type: number, x: unknown, maxString: number): string {
    if (type === GgufValueType.STRING) return quote(x as string, maxString);
    if (type === GgufValueType.FLOAT32) return formatF32(x as number);
    return String(x);
}

function formatValue(key: string, v: GgufValue, tokens: readonly string[] | undefined, maxString: number, maxItems: number): string {
    if (v.type !== GgufValueType.ARRAY) {
        let s = formatScalar(v.type, v.value, maxString);
        if (key === "general.file_type" && typeof v.value === "number") {
            const name = llamaFileTypeName(v.value);
            if (name) s += ` (${name})`;
        }
        if (tokens && /^tokenizer\.ggml\..*token_id$|_token_id$/.test(key) && typeof v.value === "number" && tokens[v.value] !== undefined) {
            s += ` (${quote(tokens[v.value]!, 40)})`;
        }
        return s;
    }
    const items = v.value;
    const n = items.length;
    const shown: string[] = [];
    for (let i = 0; i < Math.min(n, maxItems); i++) shown.push(formatScalar(v.itemType, items[i], 24));
    return `[${shown.join(", ")}${n > maxItems ? `, … ${n - maxItems} more` : ""}]`;
}

function formatCount(n: number): string {
    if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
    if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
    if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
    return String(n);
}

function describeTensors(tensors: readonly GgufTensorInfo[], mode: "summary" | "all"): string[] {
    if (tensors.length === 0) return ["Tensors: none"];
    let bytes = 0;
    let params = 0;
    const byType = new Map<string, { count: number; bytes: number }>();
    for (const t of tensors) {
        bytes += t.byteSize;
        params += t.elementCount;
        const e = byType.get(t.type) ?? { count: 0, bytes: 0 };
        e.count++;
        e.bytes += t.byteSize;
        byType.set(t.type, e);
    }
    const lines: string[] = [];
    const bpw = params > 0 ? ` (${((bytes * 8) / params).toFixed(2)} bits per weight)` : "";
    lines.push(`Tensors: ${tensors.length}, ${formatBytes(bytes)} (${bytes} bytes), ${formatCount(params)} parameters (${params})${bpw}`);
    const types = [...byType].sort((a, b) => b[1].bytes - a[1].bytes);
    lines.push(`  by type: ${types.map(([type, e]) => `${type} ×${e.count} (${formatBytes(e.bytes)})`).join(", ")}`);
    const row = (t: GgufTensorInfo, width: number) =>
        `    ${t.name.padEnd(width)}  ${t.type.padEnd(7)} ${`[${t.shape.join(", ")}]`.padEnd(22)} ${formatBytes(t.byteSize)}`;
    if (mode === "all") {
        const width = Math.max(...tensors.map((t) => t.name.length));
        lines.push("  every tensor (file order):");
        for (const t of tensors) lines.push(row(t, width));
    } else {
        const largest = [...tensors].sort((a, b) => b.byteSize - a.byteSize).slice(0, 5);
        const width = Math.max(...largest.map((t) => t.name.length));
        lines.push(`  largest:`);
        for (const t of largest) lines.push(row(t, width));
        if (tensors.length > largest.length) lines.push(`  … ${tensors.length - largest.length} more (list them all with --tensors)`);
    }
    return lines;
}
