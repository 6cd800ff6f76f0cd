#!/usr/bin/env bash
# Install test: `npm pack` the main package and the linux-x64 platform package (made from the prebuild that
# `npm run prebuild` wrote), install both tarballs into an empty folder with npm --offline (the tarballs and a private
# npm cache of the registry dependencies only: nothing is fetched at install), and check there that
#   - installing compiled nothing and the CLI loads the addon from the platform package,
#   - the CLI answers on every CPU variant this CPU can run (forced with VIDLLAMA_CPU_VARIANT), and on Vulkan when the
#     package has the Vulkan module and a device is visible (GGML_VK_VISIBLE_DEVICES=0 for lavapipe),
#   - `ldd` of every native file needs nothing a stock Linux lacks (libc, libm, ld.so; libvulkan.so.1 for the
#     Vulkan module only),
#   - the addon loads in worker_threads.
# Needs the tiny test model made by `npm test` (test/.fixtures/tiny-qwen2.gguf).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model="$root/test/.fixtures/tiny-qwen2.gguf"
platform="$(node -p 'process.platform + "-" + process.arch')"
[ -f "$model" ] || { echo "missing $model: run npm test first" >&2; exit 1; }
[ -f "$root/prebuilds/$platform/vidllama.node" ] || { echo "no prebuilds/$platform/vidllama.node: run npm run prebuild first" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"
platform_tarball=$(node scripts/platform-package.mjs --from "prebuilds/$platform" --out "$work/packages")
main_tarball="$work/$(npm pack --silent --pack-destination "$work" 2>/dev/null | tail -n 1)"
echo "packed $(basename "$main_tarball") ($(du -h "$main_tarball" | cut -f1)) and $(basename "$platform_tarball") ($(du -h "$platform_tarball" | cut -f1))"

# The registry dependencies go into a private npm cache first, with network, by a throwaway install of the same two
# tarballs with scripts off; the real install then runs --offline from that cache and the tarballs: nothing native is
# fetched or compiled at install. Optional dependencies are left out (ffmpeg-static downloads its binary from GitHub in
# its own install script, which this machine cannot reach; it is optional, and vidllama then finds ffmpeg on PATH).
export npm_config_cache="$work/npm-cache"
mkdir "$work/warm" && (cd "$work/warm" && npm init -y >/dev/null 2>&1 &&
    npm install --ignore-scripts --omit=optional --no-audit --no-fund "$main_tarball" "$platform_tarball" >/dev/null 2>&1) ||
    { echo "FAIL: could not put the registry dependencies into the npm cache" >&2; exit 1; }
rm -rf "$work/warm"

mkdir "$work/app" && cd "$work/app"
npm init -y >/dev/null 2>&1
started=$(date +%s)
npm install --offline --omit=optional --foreground-scripts --no-audit --no-fund "$main_tarball" "$platform_tarball" >install.log 2>&1 || { cat install.log; exit 1; }
echo "installed offline in $(( $(date +%s) - started )) s"
if grep -qE "building the addon|cmake-js|gyp info spawn" install.log; then
    cat install.log
    echo "FAIL: installing the tarballs compiled the addon instead of using the platform package" >&2
    exit 1
fi
[ ! -e node_modules/vidllama/build ] || { echo "FAIL: node_modules/vidllama/build exists (something was built)" >&2; exit 1; }
pkgdir="node_modules/@vidllama/$platform"
[ -f "$pkgdir/vidllama.node" ] || { echo "FAIL: $pkgdir/vidllama.node is missing" >&2; exit 1; }
echo "platform package: $(du -sh "$pkgdir" | cut -f1) installed, $(ls "$pkgdir" | grep -cE '\.(so|node)$') native files"

# ldd: only what every Linux has (plus the Vulkan loader for the Vulkan module, which is optional at run time).
for f in "$pkgdir"/*.so "$pkgdir"/vidllama.node; do
    unexpected=$(ldd "$f" | awk '{print $1}' | grep -vE '^(linux-vdso\.so\.1|/lib64/ld-linux-x86-64\.so\.2|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|libvidllama-(llama|ggml|ggml-base)\.so)$' || true)
    if [ -n "$unexpected" ]; then
        if [ "$(basename "$f")" = libggml-vulkan.so ] && [ "$unexpected" = libvulkan.so.1 ]; then continue; fi
        echo "FAIL: $(basename "$f") needs $unexpected" >&2; exit 1
    fi
    if ldd "$f" | grep -q "not found"; then echo "FAIL: $(basename "$f"): $(ldd "$f" | grep 'not found')" >&2; exit 1; fi
done
echo "ldd: every native file needs only libc, libm and ld.so (and the Vulkan loader for the Vulkan module)"

npx --no-install vidllama info | tee info.txt
grep -q "addon: .*node_modules/@vidllama/$platform/vidllama.node" info.txt || { echo "FAIL: the CLI did not load the platform package's addon" >&2; exit 1; }

check_answer() {
    node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
for (const k of ["text", "tokens", "promptTokens", "stopReason", "timings"]) if (!(k in r)) throw new Error("missing " + k);
if (r.promptTokens.length === 0) throw new Error("no prompt tokens");' "$1"
}

# Every CPU variant this CPU runs (score > 0), forced one at a time; the greedy answer must be the same on all.
variants=$(node --input-type=module -e 'const { systemInfo } = await import("vidllama"); console.log(systemInfo().backends.cpuVariants.filter((v) => v.score > 0).map((v) => v.name).join(" "))')
first=""
for v in $variants; do
    VIDLLAMA_CPU_VARIANT=$v npx --no-install vidllama info | grep -q "^cpu variant: $v (forced" || { echo "FAIL: VIDLLAMA_CPU_VARIANT=$v was not used" >&2; exit 1; }
    VIDLLAMA_CPU_VARIANT=$v npx --no-install vidllama ask -m "$model" "hi" --json --temperature 0 --max-tokens 8 --gpu cpu >"answer-$v.json"
    check_answer "answer-$v.json"
    tokens=$(node -p 'JSON.stringify(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).tokens)' "answer-$v.json")
    [ -z "$first" ] && first=$tokens
    [ "$tokens" = "$first" ] || echo "note: variant $v answered $tokens, the first variant $first (float differences between instruction sets)"
done
echo "OK: the CLI answers on every CPU variant this CPU runs: $variants"

if [ -f "$pkgdir/libggml-vulkan.so" ]; then
    if GGML_VK_VISIBLE_DEVICES=0 npx --no-install vidllama info | grep -q '^gpu "auto": Vulkan0'; then
        GGML_VK_VISIBLE_DEVICES=0 npx --no-install vidllama ask -m "$model" "hi" --json --temperature 0 --max-tokens 8 --gpu vulkan >answer-vulkan.json
        check_answer answer-vulkan.json
        echo "OK: the CLI answers on Vulkan0"
    else
        echo "FAIL: the package has the Vulkan module but no Vulkan device was found (GGML_VK_VISIBLE_DEVICES=0):" >&2
        GGML_VK_VISIBLE_DEVICES=0 npx --no-install vidllama info >&2
        exit 1
    fi
fi

node --input-type=module -e '
import { Worker } from "node:worker_threads";
const source = `import { parentPort } from "node:worker_threads"; const { systemInfo } = await import("vidllama"); parentPort.postMessage(systemInfo().backends.cpuVariant);`;
const w = new Worker(source, { eval: true });
const variant = await new Promise((resolve, reject) => { w.once("message", resolve); w.once("error", reject); });
if (!variant) throw new Error("no CPU variant in the worker");
console.log("OK: loads in worker_threads (CPU variant " + variant + ")");
'
echo "OK: packed tarballs install offline without compiling and answer"
