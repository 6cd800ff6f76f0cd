#!/usr/bin/env node
// Obtains the pinned llama.cpp source that vidllama links against.
//
// The source is the git bundle that the npm package node-llama-cpp@3.22.1 ships as llama/gitRelease.bundle
// (llama.cpp tag v0.5.0). It is fetched with the ordinary npm client, its integrity is checked against the pinned
// value, the bundle is cloned into deps/llama.cpp (ignored by git) and reused on later builds.
// Nothing of llama.cpp is ever committed to this repository.
// The few changes vidllama needs in it are reviewed patch files in patches/llama.cpp/, applied to the checkout here
// (fresh or reused) so that every build, whichever way the source was obtained, compiles the same code.
//
// Usage: node scripts/llama-source.mjs [--print-dir]
// Environment: VIDLLAMA_LLAMA_CPP_DIR=<dir> uses an existing checkout instead (it must be at the pinned commit).

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";

export const PINNED = Object.freeze({
    npmPackage: "node-llama-cpp@3.22.1",
    integrity: "sha512-bltIipuWmc123H7tMIgDGKSsSrhmhlQYeVUC48XTjVW7XGJJiJJyCdlTMzQ/LiWoPkGDpcL4FviDpgw7qfTiDw==",
    bundlePath: "package/llama/gitRelease.bundle",
    tag: "v0.5.0",
    commit: "de3ff815ea7d559ee917f063901b8986f038abc6",
});

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const depsDir = join(packageRoot, "deps");
const defaultSourceDir = join(depsDir, "llama.cpp");
const patchesDir = join(packageRoot, "patches", "llama.cpp");

function log(message) {
    process.stderr.write(`[vidllama] ${message}\n`);
}

function git(args, cwd) {
    const result = spawnSync("git", args, { cwd, encoding: "utf8" });
    if (result.error) throw new Error(`could not run git (${result.error.message}); git is needed to unpack the llama.cpp source bundle`);
    if (result.status !== 0) throw new Error(`git ${args.join(" ")} failed: ${result.stderr.trim()}`);
    return result.stdout.trim();
}

function headCommit(dir) {
    try {
        return git(["rev-parse", "HEAD"], dir);
    } catch {
        return undefined;
    }
}

/** Runs `npm pack <spec>` in `dir` with the npm that runs this script when there is one, and returns the tarball path. */
function npmPack(spec, dir) {
    const npmCli = process.env.npm_execpath && process.env.npm_execpath.endsWith(".js") ? process.env.npm_execpath : undefined;
    const command = npmCli ? process.execPath : process.platform === "win32" ? "npm.cmd" : "npm";
    const args = [...(npmCli ? [npmCli] : []), "pack", spec, "--json", "--pack-destination", dir];
    // npm_config_* variables of an enclosing `npm install` (global, dry-run, ...) must not change what pack does.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_(global|dry_run|prefix|location)$/i.test(k)));
    const result = spawnSync(command, args, { cwd: dir, encoding: "utf8", env, shell: process.platform === "win32" && !npmCli });
    if (result.error || result.status !== 0) {
        throw new Error(`npm pack ${spec} failed: ${(result.error?.message ?? result.stderr).trim()}`);
    }
    const info = JSON.parse(result.stdout.slice(result.stdout.indexOf("[")));
    return join(dir, info[0].filename);
}

async function sha512Base64(file) {
    const hash = createHash("sha512");
    for await (const chunk of createReadStream(file)) hash.update(chunk);
    return hash.digest("base64");
}

/**
 * Extracts one regular file from a .tgz with a minimal ustar reader (no external tar program needed).
 * The unpacked tarball is about 40 MB, so it is simply read into memory.
 */
function extractFromTgz(tgzPath, wantedPath, outPath) {
    const tar = gunzipSync(readFileSync(tgzPath));
    let offset = 0;
    let longName = null;
    while (offset + 512 <= tar.length) {
        const header = tar.subarray(offset, offset + 512);
        offset += 512;
        if (header.every((b) => b === 0)) continue;
        const field = (start, len) => header.subarray(start, start + len).toString("utf8").replace(/\0.*$/s, "");
        const size = parseInt(field(124, 12).trim() || "0", 8);
        const type = field(156, 1);
        const prefix = field(345, 155);
        const name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
        longName = null;
        const body = tar.subarray(offset, offset + size);
        if (body.length !== size) throw new Error(`${tgzPath} is truncated`);
        offset += size + ((512 - (size % 512)) % 512);
        if (type === "L") longName = body.toString("utf8").replace(/\0.*$/s, "");
        else if (type === "x") longName = /\d+ path=([^\n]*)\n/.exec(body.toString("utf8"))?.[1] ?? null;
        else if ((type === "0" || type === "") && name === wantedPath) {
            writeFileSync(outPath, body);
            return;
        }
    }
    throw new Error(`${wantedPath} is not in ${tgzPath}`);
}

/** Returns the exit status of `git args` in `cwd` (for checks whose failure is an answer, not an error). */
function gitStatus(args, cwd) {
    const result = spawnSync("git", args, { cwd, encoding: "utf8" });
    if (result.error) throw new Error(`could not run git (${result.error.message}); git is needed to patch the llama.cpp source`);
    return result;
}

/**
 * Applies every patches/llama.cpp/*.patch, in name order (they may build on each other), to the checkout in `dir`.
 * Idempotent, because a reused checkout has usually been patched by an earlier build: a patch whose reverse applies
 * is already in and is skipped. A patch that neither applies nor is already applied means the checkout was changed
 * by hand or the patch no longer matches the pinned source; building anyway would compile unreviewed code, so it stops.
 */
export function applyLlamaPatches(dir, { quiet = false } = {}) {
    // A copy of the package without the patches folder has nothing to apply.
    if (!existsSync(patchesDir)) return [];
    const patches = readdirSync(patchesDir).filter((name) => name.endsWith(".patch")).sort();
    const applied = [];
    for (const name of patches) {
        const file = join(patchesDir, name);
        // The patches carry no context lines (only our own lines, no copy of llama.cpp's): --unidiff-zero. The
        // reverse check comes first because a zero-context patch would also "apply" a second time.
        if (gitStatus(["apply", "--unidiff-zero", "--reverse", "--check", file], dir).status === 0) continue;
        const check = gitStatus(["apply", "--unidiff-zero", "--check", file], dir);
        if (check.status !== 0) {
            throw new Error(`patches/llama.cpp/${name} neither applies to ${dir} nor is already applied: ${check.stderr.trim()}`);
        }
        git(["apply", "--unidiff-zero", file], dir);
        applied.push(name);
        if (!quiet) log(`applied patches/llama.cpp/${name}`);
    }
    return applied;
}

/** Returns the directory of a llama.cpp checkout at the pinned commit, fetching it first if needed, with vidllama's patches applied. */
export async function ensureLlamaSource({ quiet = false } = {}) {
    const dir = await obtainLlamaSource({ quiet });
    applyLlamaPatches(dir, { quiet });
    return dir;
}

async function obtainLlamaSource({ quiet }) {
    const override = process.env.VIDLLAMA_LLAMA_CPP_DIR;
    if (override) {
        const commit = headCommit(override);
        if (commit !== PINNED.commit) {
            throw new Error(`VIDLLAMA_LLAMA_CPP_DIR=${override} is at commit ${commit ?? "(not a git checkout)"}, expected ${PINNED.commit} (llama.cpp ${PINNED.tag})`);
        }
        return override;
    }
    if (existsSync(join(defaultSourceDir, ".git")) && headCommit(defaultSourceDir) === PINNED.commit) {
        return defaultSourceDir;
    }

    mkdirSync(depsDir, { recursive: true });
    if (!quiet) log(`fetching llama.cpp ${PINNED.tag} from the npm package ${PINNED.npmPackage}`);
    const tgz = npmPack(PINNED.npmPackage, depsDir);
    try {
        const actual = `sha512-${await sha512Base64(tgz)}`;
        if (actual !== PINNED.integrity) {
            throw new Error(`integrity mismatch for ${PINNED.npmPackage}: expected ${PINNED.integrity}, got ${actual}`);
        }
        const bundle = join(depsDir, "gitRelease.bundle");
        extractFromTgz(tgz, PINNED.bundlePath, bundle);
        const staging = `${defaultSourceDir}.partial`;
        rmSync(staging, { recursive: true, force: true });
        git(["clone", "--quiet", bundle, staging], depsDir);
        const commit = headCommit(staging);
        if (commit !== PINNED.commit) throw new Error(`the bundle's HEAD is ${commit}, expected ${PINNED.commit}`);
        rmSync(defaultSourceDir, { recursive: true, force: true });
        renameSync(staging, defaultSourceDir);
        writeFileSync(join(defaultSourceDir, ".vidllama-source.json"), JSON.stringify({ ...PINNED }, null, 2) + "\n");
        rmSync(bundle, { force: true });
        if (!quiet) log(`llama.cpp ${PINNED.tag} (${PINNED.commit.slice(0, 7)}) is in ${defaultSourceDir}`);
        return defaultSourceDir;
    } finally {
        rmSync(tgz, { force: true });
    }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    ensureLlamaSource({ quiet: process.argv.includes("--print-dir") })
        .then((dir) => {
            if (process.argv.includes("--print-dir")) process.stdout.write(dir + "\n");
        })
        .catch((err) => {
            log(`error: ${err.message}`);
            process.exit(1);
        });
}
