/**
 * Option parsing and error reporting shared by the CLI commands.
 *
 * @internal
 * @module
 */
import { InvalidArgumentError } from "commander";
import { VidllamaError } from "../errors.js";

export function parseInteger(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
    return (value: string): number => {
        const n = Number(value);
        if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
            throw new InvalidArgumentError(`${name} must be an integer between ${min} and ${max}, got "${value}"`);
        }
        return n;
    };
}

export function parseNumber(name: string, min: number, max: number) {
    return (value: string): number => {
        const n = Number(value);
        if (value.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
            throw new InvalidArgumentError(`${name} must be a number between ${min} and ${max}, got "${value}"`);
        }
        return n;
    };
}

/** Prints an error the way every command does and sets a failing exit code. */
export function reportError(err: unknown): void {
    if (err instanceof VidllamaError) {
        process.stderr.write(`vidllama: ${err.message}\n`);
    } else if (err instanceof Error && err.name === "AbortError") {
        process.stderr.write("vidllama: aborted\n");
    } else {
        process.stderr.write(`vidllama: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    process.exitCode = 1;
}

/** An AbortSignal that fires on the first Ctrl+C (SIGINT); a second Ctrl+C exits. */
export function interruptSignal(): { signal: AbortSignal; dispose(): void } {
    const controller = new AbortController();
    const onSigint = () => {
        if (controller.signal.aborted) process.exit(130);
        controller.abort(new DOMException("Interrupted", "AbortError"));
    };
    process.on("SIGINT", onSigint);
    return { signal: controller.signal, dispose: () => process.off("SIGINT", onSigint) };
}
