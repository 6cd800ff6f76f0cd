/**
 * Stop strings: holds back text that could be the start of a stop string until it is known not to be one, and cuts
 * the answer where a stop string begins.
 *
 * @internal
 * @module
 */
export class StopStringMatcher {
    readonly #stops: readonly string[];
    #text = "";
    #released = 0;
    #stopped = false;

    constructor(stops: readonly string[]) {
        this.#stops = stops;
    }

    /** The answer so far (cut before a stop string once one was found). */
    get text(): string {
        return this.#text;
    }

    get stopped(): boolean {
        return this.#stopped;
    }

    /** Adds decoded text; returns the text that can be shown now. */
    push(chunk: string): string {
        if (this.#stopped) return "";
        this.#text += chunk;
        let cut = -1;
        for (const stop of this.#stops) {
            const at = this.#text.indexOf(stop, Math.max(0, this.#released - stop.length + 1));
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0) {
            this.#stopped = true;
            this.#text = this.#text.slice(0, cut);
            return this.#release(this.#text.length);
        }
        return this.#release(this.#text.length - this.#pendingSuffix());
    }

    /** Releases whatever was held back (generation ended without completing a stop string). */
    flush(chunk = ""): string {
        if (this.#stopped) return "";
        this.#text += chunk;
        return this.#release(this.#text.length);
    }

    #release(end: number): string {
        if (end <= this.#released) return "";
        const out = this.#text.slice(this.#released, end);
        this.#released = end;
        return out;
    }

    /** Length of the longest suffix of the text that is a proper prefix of some stop string. */
    #pendingSuffix(): number {
        let longest = 0;
        for (const stop of this.#stops) {
            for (let n = Math.min(stop.length - 1, this.#text.length); n > longest; n--) {
                if (this.#text.endsWith(stop.slice(0, n))) {
                    longest = n;
                    break;
                }
            }
        }
        return longest;
    }
}
