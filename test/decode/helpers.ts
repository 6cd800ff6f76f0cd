/** Shared helpers of the video decoding tests. */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { expect } from "vitest";
import type { RgbFrame, Video } from "../../lib/decode/Video.js";

/** Direct children of this process (including zombies), from /proc: the tests spawn nothing else that outlives a call. */
export function ffmpegChildren(): { pid: number; comm: string; state: string }[] {
    const out: { pid: number; comm: string; state: string }[] = [];
    for (const name of readdirSync("/proc")) {
        if (!/^\d+$/.test(name)) continue;
        let stat: string;
        try {
            stat = readFileSync(`/proc/${name}/stat`, "utf8");
        } catch {
            continue;
        }
        // pid (comm) state ppid ...
        const close = stat.lastIndexOf(")");
        const comm = stat.slice(stat.indexOf("(") + 1, close);
        const [state, ppid] = stat.slice(close + 2).split(" ");
        if (Number(ppid) === process.pid) out.push({ pid: Number(name), comm, state: state! });
    }
    return out;
}

/** Asserts that no child process (ffmpeg, ffprobe, …) is left running or unreaped. */
export function expectNoLeakedChildren(): void {
    expect(ffmpegChildren()).toEqual([]);
}

/** All frames of one pass. */
export async function collect(video: Video, options?: Parameters<Video["frames"]>[0]): Promise<RgbFrame[]> {
    const frames: RgbFrame[] = [];
    for await (const f of video.frames(options)) frames.push(f);
    return frames;
}

export function md5(data: Uint8Array): string {
    return createHash("md5").update(data).digest("hex");
}

let numpyOk: boolean | undefined;
/** Whether `python3` with numpy is available (for the reference oracle). */
export function hasNumpy(): boolean {
    if (numpyOk === undefined) {
        const r = spawnSync("python3", ["-c", "import numpy"], { stdio: "ignore" });
        numpyOk = r.status === 0;
    }
    return numpyOk;
}

/**
 * The reference loader (`load_video` of VideoLLaMA3's processing_videollama3.py), re-stated in Python with the
 * ffmpeg command that ffmpeg-python builds for it (`-ss/-t` input options, `-filter_complex [0]fps=…[s0]`), numpy
 * `frombuffer/reshape`, `arange` timestamps and `linspace` subsampling. Only for start/end ranges of 1 s or more.
 * Returns per-frame md5 and timestamps.
 */
const REFERENCE_PY = String.raw`
import json, subprocess, sys, hashlib
import numpy as np
def load(a):
  path, start, end, fps, max_frames = a["path"], a.get("start"), a.get("end"), a["fps"], a["max_frames"]
  probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", path], capture_output=True, check=True).stdout)
  duration = float(probe["format"]["duration"])
  vs = next(s for s in probe["streams"] if s["codec_type"] == "video")
  w, h = int(vs["width"]), int(vs["height"])
  do_trim = start is not None or end is not None
  if start is not None:
      new_start = max(float(vs["start_time"]), start)
      duration -= new_start - start
      start = new_start
  else:
      start = float(vs["start_time"])
  if end is not None:
      duration = min(duration, end - start)
  args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin"]
  if do_trim:
      args += ["-ss", str(start), "-t", str(duration)]
  args += ["-i", path, "-filter_complex", "[0]fps=fps=%s:round=down[s0]" % (fps,), "-map", "[s0]", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
  out = subprocess.run(args, capture_output=True, check=True).stdout
  frames = np.frombuffer(out, np.uint8).reshape([-1, h, w, 3])
  timestamps = np.arange(start, start + duration + 1 / fps, 1 / fps)[:len(frames)]
  n = len(frames)
  if max_frames is not None and len(frames) > max_frames:
      indices = np.linspace(0, len(frames) - 1, max_frames, dtype=int)
      frames = frames[indices]
      timestamps = timestamps[indices]
  return {"n": n, "md5": [hashlib.md5(f.tobytes()).hexdigest() for f in frames], "timestamps": [float(t) for t in timestamps]}
print(json.dumps([load(a) for a in json.loads(sys.argv[1])]))
`;

/** Runs {@link REFERENCE_PY} for several cases (one Python process). */
export function referenceLoad(cases: { path: string; fps: number; maxFrames: number; start?: number; end?: number }[]): { n: number; md5: string[]; timestamps: number[] }[] {
    const arg = JSON.stringify(
        cases.map((o) => ({ path: o.path, fps: o.fps, max_frames: o.maxFrames, ...(o.start !== undefined ? { start: o.start } : {}), ...(o.end !== undefined ? { end: o.end } : {}) })),
    );
    const out = execFileSync("python3", ["-c", REFERENCE_PY, arg], { maxBuffer: 1 << 28 });
    return JSON.parse(out.toString("utf8")) as { n: number; md5: string[]; timestamps: number[] }[];
}

/** `np.linspace(0, n-1, m, dtype=int)` computed by numpy. */
export function numpyLinspace(cases: [number, number][]): number[][] {
    const py = "import json,sys\nimport numpy as np\nprint(json.dumps([np.linspace(0,n-1,m,dtype=int).tolist() for n,m in json.loads(sys.argv[1])]))";
    return JSON.parse(execFileSync("python3", ["-c", py, JSON.stringify(cases)]).toString("utf8")) as number[][];
}

/** Video-LLaVA's HF sampling `np.arange(0, total, total / n).astype(int)`, in Python, for each (total, n). */
export function numpyArangeIndices(cases: [number, number][]): number[][] {
    const py = "import json,sys\nimport numpy as np\nprint(json.dumps([np.arange(0,t,t/n).astype(int).tolist() for t,n in json.loads(sys.argv[1])]))";
    return JSON.parse(execFileSync("python3", ["-c", py, JSON.stringify(cases)]).toString("utf8")) as number[][];
}

/** The reference's decord short-range index computation (`load_video_from_ids` + `frame_sample`), in Python. */
export function referenceDecordIndices(cases: { s: number; e: number; vid_fps: number; n: number; fps: number; max_frames: number }[]): number[][] {
    const py = String.raw`
import json, sys
import numpy as np
def frame_sample(duration, mode, num_frames=None, vid_fps=None, fps=None):
    if mode == "uniform":
        if duration <= num_frames:
            return np.arange(duration).astype(int)
        return np.linspace(0, duration - 1, num_frames, dtype=int)
    segment_len = min(vid_fps // fps, duration)
    return np.arange(segment_len // 2, duration, segment_len, dtype=int)
out = []
for c in json.loads(sys.argv[1]):
    s, e, vid_fps, n, fps, max_frames = c["s"], c["e"], c["vid_fps"], c["n"], c["fps"], c["max_frames"]
    s = s if s >= 0. else 0.
    e = e if e >= 0. else 0.
    f_start = max(int(s * vid_fps) - 1, 0)
    f_end = min(int(e * vid_fps) - 1, n - 1)
    idx = list(range(f_start, f_end + 1))
    d = len(idx)
    if fps is not None and d / vid_fps < max_frames:
        picks = frame_sample(d, "fps", vid_fps=vid_fps, fps=fps)
    else:
        picks = frame_sample(d, "uniform", num_frames=max_frames)
    out.append([idx[i] for i in picks])
print(json.dumps(out))
`;
    return JSON.parse(execFileSync("python3", ["-c", py, JSON.stringify(cases)]).toString("utf8")) as number[][];
}

/** Raw RGB24 frames of `ffmpeg <args> -f rawvideo -pix_fmt rgb24 -`, split by frame size. */
export function ffmpegFrames(args: string[], frameSize: number): Buffer[] {
    const out = execFileSync("ffmpeg", ["-hide_banner", "-loglevel", "error", "-nostdin", ...args, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], {
        maxBuffer: 1 << 30,
        stdio: ["ignore", "pipe", "pipe"],
    });
    const frames: Buffer[] = [];
    for (let o = 0; o + frameSize <= out.length; o += frameSize) frames.push(out.subarray(o, o + frameSize));
    return frames;
}

export function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}
