// Videos generated with ffmpeg for the video prompt tests (lossless RGB, so the test's own reference sees exactly the
// pixels ffmpeg decodes).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync } from "node:fs";
import { join } from "node:path";

const DIR = join(process.cwd(), "test", ".fixtures", "video-prompts");

const RECIPES = {
    /** 112×84, 10 fps, 8 s: a white square moves right for 4 s, then stays still on a grey background. */
    movingThenStatic: [
        "-f", "lavfi", "-i", "color=c=0x808080:s=112x84:r=10:d=8",
        "-f", "lavfi", "-i", "color=c=white:s=20x20:r=10:d=8",
        "-filter_complex", "[0][1]overlay=x='if(lt(t,4),t*20,80)':y=30:shortest=1",
    ],
    /** 112×84, 10 fps, 6 s: a red scene cut to a blue one at 3 s. */
    sceneCut: ["-f", "lavfi", "-i", "color=c=red:s=112x84:r=10:d=3", "-f", "lavfi", "-i", "color=c=blue:s=112x84:r=10:d=3", "-filter_complex", "[0][1]concat=n=2:v=1"],
    /** 150×99 (odd), 5 fps, 4 s of moving test pattern. */
    odd: ["-f", "lavfi", "-i", "testsrc2=s=150x99:r=5:d=4"],
    /** A single frame. */
    single: ["-f", "lavfi", "-i", "testsrc2=s=112x84:r=25:d=0.04"],
    /** A screen-recording-like clip: a static "window" with a text line that changes every 2 s. */
    screen: [
        "-f", "lavfi", "-i", "color=c=white:s=224x140:r=10:d=10",
        "-f", "lavfi", "-i", "color=c=black:s=120x8:r=10:d=10",
        "-filter_complex", "[0]drawbox=x=0:y=0:w=224:h=20:color=0x3050a0:t=fill[bg];[bg][1]overlay=x=20:y='40+20*floor(t/2)':shortest=1",
    ],
} as const;

export type VideoName = keyof typeof RECIPES;

/** The path of the generated video (made on first use). */
export function testVideo(name: VideoName): string {
    mkdirSync(DIR, { recursive: true });
    const path = join(DIR, `${name}.mkv`);
    if (!existsSync(path)) {
        const tmp = `${path}.${process.pid}.tmp.mkv`;
        execFileSync("ffmpeg", ["-v", "error", "-y", ...RECIPES[name], "-c:v", "ffv1", "-pix_fmt", "bgr0", tmp]);
        renameSync(tmp, path);
    }
    return path;
}
