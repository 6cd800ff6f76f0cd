/**
 * Option validation shared by every public function: each failure is an {@link InvalidOptionError} that names the
 * option, what was expected and what was received; unknown keys are rejected with the nearest valid name.
 *
 * @internal
 * @module
 */
import { InvalidOptionError } from "./errors.js";

/** Throws when `options` is not an object or has keys outside `allowed` (suggesting the closest valid key). */
export function checkOptionsObject<T>(options: T | undefined, allowed: readonly string[], name = "options"): T | Record<string, never> {
    if (options === undefined || options === null) return {};
    if (typeof options !== "object" || Array.isArray(options)) {
        throw new InvalidOptionError(name, "an object", options);
    }
    for (const key of Object.keys(options)) {
        if (!allowed.includes(key) && (options as Record<string, unknown>)[key] !== undefined) {
            const nearest = nearestName(key, allowed);
            throw new InvalidOptionError(
                name === "options" ? key : `${name}.${key}`,
                `one of the known options (${allowed.join(", ")})`,
                (options as Record<string, unknown>)[key],
                nearest ? `unknown option "${key}"; did you mean "${nearest}"?` : `unknown option "${key}"`,
            );
        }
    }
    return options;
}

export function optionalNumber(option: string, value: unknown, min: number, max: number, fallback: number): number;
export function optionalNumber(option: string, value: unknown, min: number, max: number, fallback?: number): number | undefined;
export function optionalNumber(option: string, value: unknown, min: number, max: number, fallback?: number): number | undefined {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
        throw new InvalidOptionError(option, `a number between ${min} and ${max}`, value);
    }
    return value;
}

export function optionalInteger(option: string, value: unknown, min: number, max: number, fallback: number): number;
export function optionalInteger(option: string, value: unknown, min: number, max: number, fallback?: number): number | undefined;
export function optionalInteger(option: string, value: unknown, min: number, max: number, fallback?: number): number | undefined {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
        throw new InvalidOptionError(option, `an integer between ${min} and ${max}`, value);
    }
    return value;
}

export function optionalBoolean(option: string, value: unknown, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") throw new InvalidOptionError(option, "a boolean", value);
    return value;
}

export function optionalString(option: string, value: unknown): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== "string") throw new InvalidOptionError(option, "a string", value);
    return value;
}

export function requiredString(option: string, value: unknown): string {
    if (typeof value !== "string" || value.length === 0) throw new InvalidOptionError(option, "a non-empty string", value);
    return value;
}

export function optionalFunction<F extends (...args: never[]) => unknown>(option: string, value: unknown): F | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== "function") throw new InvalidOptionError(option, "a function", value);
    return value as F;
}

export function optionalSignal(option: string, value: unknown): AbortSignal | undefined {
    if (value === undefined) return undefined;
    if (!(value instanceof AbortSignal)) throw new InvalidOptionError(option, "an AbortSignal", value);
    return value;
}

export function optionalEnum<T extends string>(option: string, value: unknown, allowed: readonly T[], fallback: T): T;
export function optionalEnum<T extends string>(option: string, value: unknown, allowed: readonly T[], fallback?: undefined): T | undefined;
export function optionalEnum<T extends string>(option: string, value: unknown, allowed: readonly T[], fallback?: T): T | undefined {
    if (value === undefined) return fallback;
    if (typeof value !== "string" || !allowed.includes(value as T)) {
        throw new InvalidOptionError(option, `one of ${allowed.map((a) => `"${a}"`).join(", ")}`, value);
    }
    return value as T;
}

/** The closest name by edit distance (case-insensitive), if it is close enough to be a plausible typo. */
export function nearestName(name: string, candidates: readonly string[]): string | undefined {
    let best: string | undefined;
    let bestDistance = Infinity;
    const lower = name.toLowerCase();
    for (const candidate of candidates) {
        const d = editDistance(lower, candidate.toLowerCase());
        if (d < bestDistance) {
            bestDistance = d;
            best = candidate;
        }
    }
    return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
        let previous = row[0]!;
        row[0] = i;
        for (let j = 1; j <= b.length; j++) {
            const current = row[j]!;
            row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
            previous = current;
        }
    }
    return row[b.length]!;
}

/** Throws the signal's reason when it is already aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
    if (signal?.aborted) throw signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}
