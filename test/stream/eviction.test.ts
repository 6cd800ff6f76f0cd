// The eviction policy on its own: sink always kept, frame window by count/seconds/tokens, text turns outliving
// frames, and the ceiling that leaves room for a question (oldest frames first, turns only when no frame is left).
import { describe, expect, it } from "vitest";
import { planEviction, type StreamEntry, type WindowPolicy } from "../../lib/stream/eviction.js";

const frame = (group: number, timestamp: number, tokens = 10): StreamEntry => ({ group, kind: "frame", tokens, timestamp });
const turn = (group: number, tokens = 20): StreamEntry => ({ group, kind: "turn", tokens });
const policy = (p: Partial<WindowPolicy>): WindowPolicy => ({ textTokens: 1000, ceiling: 1e9, ...p });
const groups = (e: StreamEntry[]) => e.map((x) => x.group);

describe("planEviction", () => {
    const entries = [frame(1, 0), frame(2, 1), turn(3), frame(4, 2), frame(5, 3), turn(6), frame(7, 4)];

    it("keeps everything within the bounds", () => {
        expect(planEviction(5, entries, policy({}))).toEqual([]);
    });

    it("keeps the newest frames by count, by seconds and by tokens", () => {
        expect(groups(planEviction(5, entries, policy({ frames: 2 })))).toEqual([1, 2, 4]);
        expect(groups(planEviction(5, entries, policy({ seconds: 2 })))).toEqual([1, 2, 4]); // 4 - t >= 2 leaves
        expect(groups(planEviction(5, entries, policy({ tokens: 35 })))).toEqual([1, 2]);
        expect(groups(planEviction(5, entries, policy({ frames: 4, seconds: 10, tokens: 1000 })))).toEqual([1]);
    });

    it("keeps text turns in their own, longer window", () => {
        expect(groups(planEviction(5, entries, policy({ frames: 1, textTokens: 20 })))).toEqual([1, 2, 3, 4, 5]);
        expect(groups(planEviction(5, entries, policy({ frames: 1, textTokens: 40 })))).toEqual([1, 2, 4, 5]);
    });

    it("meets the ceiling with the oldest frames first, then the oldest turns", () => {
        // 5 + 5×10 + 2×20 = 95 positions.
        expect(groups(planEviction(5, entries, policy({ ceiling: 80 })))).toEqual([1, 2]);
        expect(groups(planEviction(5, entries, policy({ ceiling: 46 })))).toEqual([1, 2, 4, 5, 7]);
        expect(groups(planEviction(5, entries, policy({ ceiling: 26 })))).toEqual([1, 2, 3, 4, 5, 7]);
    });
});
