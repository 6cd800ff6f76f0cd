// Electron: native files under app.asar load from the unpacked copy beside the archive (lib/native/asar.ts), the one
// rule the addon loader and the ffmpeg lookup share.
import { describe, expect, it } from "vitest";
import { unpackedPath } from "../../lib/native/asar.js";

describe("unpackedPath", () => {
    it("turns a path inside app.asar into the unpacked copy's path", () => {
        expect(unpackedPath("/Applications/My.app/Contents/Resources/app.asar/node_modules/vidllama/build/Release/vidllama.node", "/")).toBe(
            "/Applications/My.app/Contents/Resources/app.asar.unpacked/node_modules/vidllama/build/Release/vidllama.node",
        );
        expect(unpackedPath("C:\\Program Files\\My\\resources\\app.asar\\node_modules\\vidllama\\prebuilds\\win32-x64\\vidllama.node", "\\")).toBe(
            "C:\\Program Files\\My\\resources\\app.asar.unpacked\\node_modules\\vidllama\\prebuilds\\win32-x64\\vidllama.node",
        );
    });

    it("leaves every other path alone, including one already unpacked and names that only contain app.asar", () => {
        for (const p of [
            "/opt/app/node_modules/vidllama/build/Release/vidllama.node",
            "/opt/My/resources/app.asar.unpacked/node_modules/vidllama/build/Release/vidllama.node",
            "/home/me/my-app.asar/vidllama.node",
            "/home/me/app.asarx/vidllama.node",
        ]) {
            expect(unpackedPath(p, "/")).toBe(p);
        }
    });
});
