/**
 * A reader for SentencePiece's `tokenizer.model` (a serialized `sentencepiece.ModelProto`, protobuf), enough for
 * llama.cpp's vocabulary: the pieces with their scores and types, and the normalizer's `add_dummy_prefix`.
 *
 * The fields read (sentencepiece_model.proto):
 *
 * - `ModelProto.pieces` (1, repeated message `SentencePiece`): `piece` (1, string), `score` (2, float),
 *   `type` (3, enum: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6; default NORMAL);
 * - `ModelProto.trainer_spec` (2, message): `model_type` (3, enum: UNIGRAM 1, BPE 2, WORD 3, CHAR 4; default
 *   UNIGRAM), `byte_fallback` (35, bool);
 * - `ModelProto.normalizer_spec` (3, message): `add_dummy_prefix` (3, bool, default true).
 *
 * Everything else is skipped by wire type. A truncated or malformed message is a {@link ConversionError} naming the
 * file.
 *
 * @internal
 * @module
 */
import { readFile } from "node:fs/promises";
import { ConversionError } from "../errors.js";

/** SentencePiece piece types (`ModelProto.SentencePiece.Type`), the same numbers as GGUF token types. */
export const PieceType = Object.freeze({ NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const);

/** One piece of the model. */
export interface SentencePiece {
    piece: string;
    score: number;
    /** {@link PieceType} value. */
    type: number;
}

/** What the converter reads from `tokenizer.model`. */
export interface SentencePieceModel {
    pieces: SentencePiece[];
    /** `normalizer_spec.add_dummy_prefix` (true when the normalizer spec or the field is absent). */
    addDummyPrefix: boolean;
    /** `trainer_spec.model_type`: 1 unigram, 2 BPE, 3 word, 4 char; undefined when the file does not set it. */
    modelType: number | undefined;
    /** `trainer_spec.byte_fallback` (false when absent). */
    byteFallback: boolean;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

/** A cursor over one protobuf message. */
class Cursor {
    pos: number;

    constructor(
        readonly buf: Uint8Array,
        readonly file: string,
        readonly start: number,
        readonly end: number,
        readonly what: string,
    ) {
        this.pos = start;
    }

    fail(message: string): never {
        throw new ConversionError(`malformed SentencePiece model: ${message} (${this.what}, byte ${this.pos})`, { file: this.file });
    }

    get done(): boolean {
        return this.pos >= this.end;
    }

    /** A varint as a JS number (exact up to 2^53; larger values only matter for skipped fields). */
    varint(): number {
        let result = 0;
        let scale = 1;
        for (let i = 0; i < 10; i++) {
            if (this.pos >= this.end) this.fail("truncated varint");
            const b = this.buf[this.pos++]!;
            result += (b & 0x7f) * scale;
            if ((b & 0x80) === 0) return result;
            scale *= 128;
        }
        this.fail("varint longer than 10 bytes");
    }

    /** The next field's number and wire type. */
    tag(): { field: number; wire: number } {
        const key = this.varint();
        const field = Math.floor(key / 8);
        if (field === 0) this.fail("field number 0");
        return { field, wire: key % 8 };
    }

    /** The bounds of a length-delimited field's payload. */
    bytes(): { start: number; end: number } {
        const length = this.varint();
        const start = this.pos;
        if (length > this.end - start) this.fail(`a field of ${length} bytes runs past the end`);
        this.pos = start + length;
        return { start, end: start + length };
    }

    float(): number {
        if (this.end - this.pos < 4) this.fail("truncated float");
        const view = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4);
        this.pos += 4;
        return view.getFloat32(0, true);
    }

    skip(wire: number): void {
        switch (wire) {
            case WIRE_VARINT:
                this.varint();
                return;
            case WIRE_I64:
                if (this.end - this.pos < 8) this.fail("truncated 64-bit field");
                this.pos += 8;
                return;
            case WIRE_LEN:
                this.bytes();
                return;
            case WIRE_I32:
                if (this.end - this.pos < 4) this.fail("truncated 32-bit field");
                this.pos += 4;
                return;
            default:
                this.fail(`unsupported wire type ${wire}`);
        }
    }

    expect(wire: number, expected: number, field: string): void {
        if (wire !== expected) this.fail(`${field} has wire type ${wire}, expected ${expected}`);
    }

    sub(range: { start: number; end: number }, what: string): Cursor {
        return new Cursor(this.buf, this.file, range.start, range.end, what);
    }
}

// ignoreBOM: a piece may be U+FEFF itself (LLaMA's vocabulary has one), which the default decoder would strip
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function readPiece(c: Cursor, index: number): SentencePiece {
    let piece: string | undefined;
    let score = 0;
    let type: number = PieceType.NORMAL;
    while (!c.done) {
        const { field, wire } = c.tag();
        if (field === 1) {
            c.expect(wire, WIRE_LEN, "piece");
            const r = c.bytes();
            try {
                piece = utf8.decode(c.buf.subarray(r.start, r.end));
            } catch {
                c.fail(`piece ${index} is not valid UTF-8`);
            }
        } else if (field === 2) {
            c.expect(wire, WIRE_I32, "score");
            score = c.float();
        } else if (field === 3) {
            c.expect(wire, WIRE_VARINT, "type");
            type = c.varint();
            if (type < 1 || type > 6) c.fail(`piece ${index} has type ${type} (expected 1..6)`);
        } else {
            c.skip(wire);
        }
    }
    if (piece === undefined) c.fail(`piece ${index} has no text`);
    return { piece, score, type };
}

/** Parses a serialized `ModelProto`. `file` names the source in errors. */
export function parseSentencePieceModel(buf: Uint8Array, file: string): SentencePieceModel {
    const top = new Cursor(buf, file, 0, buf.length, "ModelProto");
    const pieces: SentencePiece[] = [];
    let addDummyPrefix = true;
    let modelType: number | undefined;
    let byteFallback = false;
    while (!top.done) {
        const { field, wire } = top.tag();
        if (field === 1) {
            top.expect(wire, WIRE_LEN, "pieces");
            pieces.push(readPiece(top.sub(top.bytes(), `piece ${pieces.length}`), pieces.length));
        } else if (field === 2) {
            top.expect(wire, WIRE_LEN, "trainer_spec");
            const c = top.sub(top.bytes(), "trainer_spec");
            while (!c.done) {
                const t = c.tag();
                if (t.field === 3 && t.wire === WIRE_VARINT) modelType = c.varint();
                else if (t.field === 35 && t.wire === WIRE_VARINT) byteFallback = c.varint() !== 0;
                else c.skip(t.wire);
            }
        } else if (field === 3) {
            top.expect(wire, WIRE_LEN, "normalizer_spec");
            const c = top.sub(top.bytes(), "normalizer_spec");
            while (!c.done) {
                const t = c.tag();
                if (t.field === 3 && t.wire === WIRE_VARINT) addDummyPrefix = c.varint() !== 0;
                else c.skip(t.wire);
            }
        } else {
            top.skip(wire);
        }
    }
    if (pieces.length === 0) top.fail("no pieces");
    return { pieces, addDummyPrefix, modelType, byteFallback };
}

/** Reads and parses `tokenizer.model`; a missing file is a {@link ConversionError} naming it. */
export async function readSentencePieceModel(path: string): Promise<SentencePieceModel> {
    let buf: Buffer;
    try {
        buf = await readFile(path);
    } catch (err) {
        const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
        throw new ConversionError(missing ? "required file is missing (the SentencePiece tokenizer)" : `cannot read: ${(err as Error).message}`, {
            file: path,
            cause: err,
        });
    }
    return parseSentencePieceModel(buf, path);
}
