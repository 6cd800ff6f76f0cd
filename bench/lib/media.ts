/**
 * Benchmark media, generated with the system ffmpeg and cached under bench/.models/media/:
 *
 * - still images (JPEG of ffmpeg's `testsrc2` pattern) at any size;
 * - two 60-second 1280×720 30 fps H.264 videos (libx264, yuv420p, default GOP):
 *   - `screen`: a screen-recording-like clip — a static application window (title bar with a running clock, side
 *     bar, a paragraph of text), a line of text being typed character by character and a mouse cursor gliding
 *     around;
 *   - `camera`: a camera-like clip — textured content in which every region changes (ffmpeg's `mandelbrot` source,
 *     continuously zooming, colours cycling) with temporal sensor noise on every pixel.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { MEDIA_DIR } from "./env.js";

/** Bump when a recipe changes (cached files are then regenerated). */
const VERSION = "v2";
const FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf";

function ffmpeg(args: string[], out: string): string {
    if (existsSync(out)) return out;
    mkdirSync(MEDIA_DIR, { recursive: true });
    const tmp = `${out}.tmp-${process.pid}${out.slice(out.lastIndexOf("."))}`;
    try {
        execFileSync("ffmpeg", ["-hide_banner", "-loglevel", "error", "-y", ...args, tmp], { stdio: ["ignore", "inherit", "inherit"] });
        renameSync(tmp, out);
    } finally {
        rmSync(tmp, { force: true });
    }
    return out;
}

/** A JPEG (quality ~2) of `testsrc2` at width×height. */
export function ensureImage(width: number, height: number): string {
    const out = join(MEDIA_DIR, `testsrc2-${width}x${height}-${VERSION}.jpg`);
    return ffmpeg(["-f", "lavfi", "-i", `testsrc2=s=${width}x${height}:r=1`, "-frames:v", "1", "-q:v", "2"], out);
}

/** Kinds of benchmark video. */
export const VIDEO_KINDS = ["screen", "camera"] as const;
export type VideoKind = (typeof VIDEO_KINDS)[number];

/** What a benchmark video is. */
export const VIDEO_DESCRIPTIONS: Readonly<Record<VideoKind, string>> = {
    screen: "screen-recording-like: static window, text typed character by character, moving cursor, clock",
    camera: "camera-like: zooming mandelbrot (texture everywhere, all of it changing) + temporal sensor noise",
};

function escapeText(s: string): string {
    return s.replace(/\\/g, "\\\\").replace(/:/g, "\\:").replace(/'/g, "\u2019").replace(/%/g, "\\%");
}

function screenFilter(seconds: number): string {
    const text = (x: number, y: number, s: string, size = 18, color = "0x202020", font = FONT) =>
        `drawtext=fontfile=${font}:text='${escapeText(s)}':x=${x}:y=${y}:fontsize=${size}:fontcolor=${color}`;
    const sidebar = ["Inbox", "Drafts", "Projects", "  vidllama", "  benchmarks", "Archive", "Settings"];
    const paragraph = [
        "Meeting notes - weekly sync",
        "",
        "1. The vision encoder runs on the CPU with two threads.",
        "2. Screen recordings are mostly static between frames.",
        "3. Differential frame pruning drops unchanged tokens.",
        "4. Keep the total run of the benchmark under thirty minutes.",
    ];
    const typed = [
        "Action items: measure decode, encode, prefill and generation separately;",
        "compare the keep ratio of a screen recording with a camera clip.",
    ];
    const parts = [
        `drawbox=x=0:y=0:w=1280:h=44:color=0x2b579a:t=fill`,
        text(16, 12, "Notes - vidllama", 20, "white"),
        `drawtext=fontfile=${MONO}:text='%{pts\\:hms}':x=1130:y=13:fontsize=18:fontcolor=white`,
        `drawbox=x=0:y=44:w=250:h=676:color=0xe3e6ea:t=fill`,
        ...sidebar.map((s, i) => text(20, 70 + i * 34, s, 18, "0x303030")),
        `drawbox=x=250:y=44:w=2:h=676:color=0xc0c4c8:t=fill`,
        ...paragraph.map((s, i) => text(280, 80 + i * 32, s, i === 0 ? 24 : 18)),
        ...typed.map((s, i) => text(280, 320 + i * 32, s, 18, "0x103060", MONO)),
    ];
    // Typing: a background-coloured cover slides right over each typed line, one line per half of the clip.
    const half = seconds / 2;
    const lineWidth = 900;
    return [
        `[0:v]${parts.join(",")}[ui]`,
        `[ui][1:v]overlay=x='280+${lineWidth}*min(1\\,t/${half})':y=316:eval=frame[t1]`,
        `[t1][2:v]overlay=x='280+${lineWidth}*min(1\\,max(0\\,t-${half})/${half})':y=348:eval=frame[t2]`,
        // cursor: a small dark arrow-sized box on a Lissajous path
        `[t2][3:v]overlay=x='600+420*sin(t*0.7)':y='380+250*sin(t*0.45+1)':eval=frame[v]`,
    ].join(";");
}

/** A 60 s (or `seconds`) 1280×720 30 fps H.264 clip of the given kind. */
export function ensureVideo(kind: VideoKind, seconds = 60): string {
    const out = join(MEDIA_DIR, `${kind}-1280x720-${seconds}s-${VERSION}.mp4`);
    const encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", kind === "camera" ? "26" : "23", "-pix_fmt", "yuv420p", "-movflags", "+faststart"];
    if (kind === "screen") {
        const bg = "0xf4f4f4";
        return ffmpeg(
            [
                "-f", "lavfi", "-i", `color=c=${bg}:s=1280x720:r=30:d=${seconds}`,
                "-f", "lavfi", "-i", `color=c=${bg}:s=1000x28:r=30:d=${seconds}`,
                "-f", "lavfi", "-i", `color=c=${bg}:s=1000x28:r=30:d=${seconds}`,
                "-f", "lavfi", "-i", `color=c=0x101010:s=12x19:r=30:d=${seconds}`,
                "-filter_complex", screenFilter(seconds),
                "-map", "[v]", "-t", String(seconds), ...encode,
            ],
            out,
        );
    }
    return ffmpeg(
        [
            "-f", "lavfi", "-i", `mandelbrot=s=1280x720:r=30`,
            "-vf", "noise=alls=10:allf=t+u",
            "-t", String(seconds), ...encode,
        ],
        out,
    );
}
