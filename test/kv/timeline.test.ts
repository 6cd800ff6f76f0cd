// The KV timeline on its own (no model): appends, run-length merging, prefix matching, truncation, eviction with
// re-packing, groups and the compact serialized form — checked against a flat list of what each position holds.
import { describe, expect, it } from "vitest";
import { KvTimeline, type PlanItem } from "../../lib/kv/timeline.js";

/** What each position holds, flattened: token ids and `key#i` strings (the obviously-correct model). */
function flat(t: KvTimeline): Array<number | string> {
    const out: Array<number | string> = [];
    for (const s of t.segments) {
        if (s.kind === "text") out.push(...s.tokens);
        else for (let i = 0; i < s.count; i++) out.push(`${s.key}#${s.first + i}`);
    }
    return out;
}

describe("KvTimeline", () => {
    it("appends text and visual runs, merging runs that continue each other", () => {
        const t = new KvTimeline();
        t.appendText([1, 2]);
        t.appendText([3]);
        t.appendVisual("img/0", 0, 4);
        t.appendVisual("img/0", 4, 2);
        t.appendVisual("img/1", 0, 1);
        t.appendText([9], 7);
        expect(t.length).toBe(11);
        expect(t.segments.map((s) => s.kind)).toEqual(["text", "visual", "visual", "text"]);
        expect(flat(t)).toEqual([1, 2, 3, "img/0#0", "img/0#1", "img/0#2", "img/0#3", "img/0#4", "img/0#5", "img/1#0", 9]);
        expect(t.textTokens()).toEqual([1, 2, 3, 9]);
    });

    it("does not merge across groups", () => {
        const t = new KvTimeline();
        t.appendText([1], 1);
        t.appendText([2], 2);
        t.appendVisual("f/0", 0, 2, 3);
        t.appendVisual("f/0", 2, 2, 4);
        expect(t.segments.length).toBe(4);
        expect([...t.groups().entries()]).toEqual([[1, { start: 0, end: 1 }], [2, { start: 1, end: 2 }], [3, { start: 2, end: 4 }], [4, { start: 4, end: 6 }]]);
    });

    it("matches plan prefixes token by token, visual slots by key and count, partly inside a slot", () => {
        const t = new KvTimeline();
        t.appendText([1, 2, 3]);
        t.appendVisual("v/0", 0, 3);
        t.appendText([4]);
        const plan: PlanItem[] = [{ kind: "tokens", tokens: [1, 2, 3] }, { kind: "visual", key: "v/0", count: 3 }, { kind: "tokens", tokens: [4, 5] }];
        expect(t.matchPrefix(plan)).toEqual({ length: 7, item: 2, offset: 1 });
        expect(t.matchPrefix([{ kind: "tokens", tokens: [1, 2, 9] }])).toEqual({ length: 2, item: 0, offset: 2 });
        expect(t.matchPrefix([{ kind: "tokens", tokens: [1, 2, 3] }, { kind: "visual", key: "v/1", count: 3 }])).toEqual({ length: 3, item: 1, offset: 0 });
        // Unknown size (a pruned frame not encoded yet) never matches.
        expect(t.matchPrefix([{ kind: "tokens", tokens: [1, 2, 3] }, { kind: "visual", key: "v/0", count: undefined }])).toEqual({ length: 3, item: 1, offset: 0 });
        // A slot larger than what was cached (an aborted evaluation) matches partly.
        const partial = new KvTimeline();
        partial.appendText([1]);
        partial.appendVisual("v/0", 0, 2);
        expect(partial.matchPrefix([{ kind: "tokens", tokens: [1] }, { kind: "visual", key: "v/0", count: 5 }, { kind: "tokens", tokens: [2] }])).toEqual({ length: 3, item: 1, offset: 2 });
        // Everything matches.
        expect(t.matchPrefix([{ kind: "tokens", tokens: [1, 2, 3] }, { kind: "visual", key: "v/0", count: 3 }, { kind: "tokens", tokens: [4] }])).toEqual({ length: 7, item: 3, offset: 0 });
        // A text plan item spanning two text segments of the timeline.
        const split = new KvTimeline();
        split.appendText([1, 2], 1);
        split.appendText([3], 2);
        expect(split.matchPrefix([{ kind: "tokens", tokens: [1, 2, 3, 4] }])).toEqual({ length: 3, item: 0, offset: 3 });
    });

    it("removes ranges anywhere and re-packs the rest, like a flat list splice (randomized)", () => {
        let seed = 12345;
        const rand = (n: number) => {
            seed = (seed * 1103515245 + 12345) % 2 ** 31;
            return seed % n;
        };
        for (let round = 0; round < 200; round++) {
            const t = new KvTimeline();
            const model: Array<number | string> = [];
            const ops = 5 + rand(20);
            for (let k = 0; k < ops; k++) {
                const op = rand(4);
                if (op === 0) {
                    const tokens = Array.from({ length: 1 + rand(5) }, () => rand(50));
                    t.appendText(tokens, rand(3));
                    model.push(...tokens);
                } else if (op === 1) {
                    const key = `k${rand(3)}/${rand(2)}`;
                    const first = rand(4);
                    const count = 1 + rand(6);
                    t.appendVisual(key, first, count, rand(3));
                    for (let i = 0; i < count; i++) model.push(`${key}#${first + i}`);
                } else if (op === 2 && model.length > 0) {
                    const p0 = rand(model.length);
                    const p1 = p0 + rand(model.length - p0 + 1);
                    t.remove(p0, p1);
                    model.splice(p0, p1 - p0);
                } else if (model.length > 0) {
                    const n = rand(model.length + 1);
                    t.truncate(n);
                    model.length = Math.min(model.length, n);
                }
                expect(t.length).toBe(model.length);
                expect(flat(t)).toEqual(model);
            }
            // Round trip through the compact form.
            const back = KvTimeline.fromJSON(JSON.parse(JSON.stringify(t.toJSON())));
            expect(flat(back)).toEqual(model);
            expect(back.segments).toEqual(t.segments);
        }
    });

    it("keeps the serialized form compact (one entry per run)", () => {
        const t = new KvTimeline();
        t.appendText(Array.from({ length: 100 }, (_, i) => i), 0);
        for (let f = 0; f < 50; f++) t.appendVisual(`frame/${f}`, 0, 64, f + 1);
        const json = JSON.stringify(t.toJSON());
        expect(t.toJSON().segments.length).toBe(51);
        // The flat form (version-1 state files) spells out every position.
        expect(json.length).toBeLessThan(JSON.stringify(flat(t)).length / 10);
    });

    it("reads the flat list of version-1 state files", () => {
        const t = KvTimeline.fromLegacyItems([5, 6, "vid:x/0#0", "vid:x/0#1", "img:a#b/0#0", 7]);
        expect(flat(t)).toEqual([5, 6, "vid:x/0#0", "vid:x/0#1", "img:a#b/0#0", 7]);
        expect(t.segments.length).toBe(4);
    });

    it("refuses malformed input", () => {
        const t = new KvTimeline();
        expect(() => t.appendText([-1])).toThrow(RangeError);
        expect(() => t.appendVisual("k", 0, -2)).toThrow(RangeError);
        expect(() => t.remove(3, 1)).toThrow(RangeError);
        expect(() => KvTimeline.fromJSON({ version: 9, segments: [] })).toThrow(RangeError);
        expect(() => KvTimeline.fromJSON({ version: 1, segments: [{ q: 1 }] })).toThrow(RangeError);
    });
});
