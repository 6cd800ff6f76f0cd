/**
 * State files of Sessions and Streams: `VLSTATE1`, a JSON header (what the owner needs to continue: its record of
 * the cache, its conversation), then libllama's sequence state. Written to a temporary name beside the target and
 * renamed, so a failed save never leaves a half file or replaces the user's. Readers parse the header alone (the
 * KV state after it can be gigabytes).
 *
 * @internal
 * @module
 */
import { closeSync, existsSync, openSync, readSync, renameSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { InvalidOptionError, StateFileError } from "../errors.js";
import type { Model } from "../Model.js";
import type { KvCache } from "./cache.js";

/** What identifies the model a state was saved from (a state only fits the same model). */
export function modelIdentity(model: Model): Record<string, unknown> {
    const i = model.info;
    return { file: basename(model.path), parameters: i.parameters, sizeBytes: i.sizeBytes, vocabSize: i.vocabSize, layers: i.layers, embeddingSize: i.embeddingSize };
}

/** The absolute target of a save, refused when it exists and `overwrite` is not set (checked before any work). */
export function saveTarget(path: string, overwrite: boolean): string {
    const target = resolve(path);
    if (!overwrite && existsSync(target)) throw new InvalidOptionError("path", "a path that does not exist yet (or overwrite: true)", path);
    return target;
}

/** Writes `header` and the cache's state to `target` through a temporary file. */
export async function writeState(cache: KvCache, target: string, header: unknown): Promise<{ bytes: number }> {
    const temp = join(dirname(target), `.${basename(target)}.${process.pid}.${Math.random().toString(36).slice(2, 8)}.partial`);
    try {
        const bytes = await cache.save(temp, Buffer.from(JSON.stringify(header)));
        renameSync(temp, target);
        return { bytes };
    } catch (err) {
        rmSync(temp, { force: true });
        throw err;
    }
}

/** Reads and parses the JSON header of a state file; `kind` names what it should be in errors. */
export function readStateHeader(path: string, kind: string): Record<string, unknown> {
    let fd: number;
    try {
        fd = openSync(path, "r");
    } catch (err) {
        throw new StateFileError(path, "cannot be read", { cause: err });
    }
    let json: string;
    try {
        const prefix = Buffer.alloc(12);
        if (readSync(fd, prefix, 0, 12, 0) < 12 || prefix.toString("latin1", 0, 8) !== "VLSTATE1") {
            throw new StateFileError(path, `is not a vidllama ${kind} state file`);
        }
        const length = prefix.readUInt32LE(8);
        if (length > 256 * 1024 * 1024) throw new StateFileError(path, "has a corrupt header length");
        const body = Buffer.alloc(length);
        if (readSync(fd, body, 0, length, 12) < length) throw new StateFileError(path, "is truncated");
        json = body.toString("utf8");
    } finally {
        closeSync(fd);
    }
    try {
        const header = JSON.parse(json) as unknown;
        if (typeof header !== "object" || header === null) throw new Error("not an object");
        return header as Record<string, unknown>;
    } catch (err) {
        throw new StateFileError(path, "has a corrupt header", { cause: err });
    }
}
