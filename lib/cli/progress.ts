/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal (so logs and pipes stay clean).
 *
 * @internal
 * @module
 */
export class ProgressBar {
    readonly #label: string;
    readonly #enabled: boolean;
    #lastDraw = 0;
    #lastText = "";

    constructor(label: string, enabled = process.stderr.isTTY === true) {
        this.#label = label;
        this.#enabled = enabled;
    }

    /** fraction 0..1; detail is shown after the percentage. */
    update(fraction: number, detail = ""): void {
        if (!this.#enabled) return;
        const now = Date.now();
        if (now - this.#lastDraw < 50 && fraction < 1) return;
        this.#lastDraw = now;
        const width = 30;
        const clamped = Math.max(0, Math.min(1, fraction));
        const filled = Math.round(clamped * width);
        const text = `${this.#label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(clamped * 100).toFixed(0).padStart(3)}% ${detail}`;
        const columns = process.stderr.columns ?? 100;
        const line = text.length > columns - 1 ? text.slice(0, columns - 1) : text;
        process.stderr.write(`\r${line}${" ".repeat(Math.max(0, this.#lastText.length - line.length))}`);
        this.#lastText = line;
    }

    done(message?: string): void {
        if (!this.#enabled) return;
        process.stderr.write(`\r${" ".repeat(this.#lastText.length)}\r`);
        if (message) process.stderr.write(`${message}\n`);
        this.#lastText = "";
    }
}
