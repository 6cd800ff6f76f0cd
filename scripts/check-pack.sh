#!/usr/bin/env bash
# Packaging check: `npm pack` the package (with the prebuild made by `npm run prebuild`), install the tarball into an
# empty folder, and run the CLI there. The install must not compile anything, and the CLI must answer.
# Needs the tiny test model made by `npm test` (test/.fixtures/tiny-qwen2.gguf).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model="$root/test/.fixtures/tiny-qwen2.gguf"
[ -f "$model" ] || { echo "missing $model: run npm test first" >&2; exit 1; }
ls "$root"/prebuilds/*/*.node >/dev/null 2>&1 || { echo "no prebuild: run npm run prebuild first" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"
tarball=$(npm pack --silent --pack-destination "$work" 2>/dev/null | tail -n 1)
echo "packed $tarball ($(du -h "$work/$tarball" | cut -f1))"

mkdir "$work/app" && cd "$work/app"
npm init -y >/dev/null 2>&1
started=$(date +%s)
npm install --foreground-scripts --no-audit --no-fund "$work/$tarball" >install.log 2>&1 || { cat install.log; exit 1; }
echo "installed in $(( $(date +%s) - started )) s"
if grep -qE "building the addon|cmake-js|gyp info spawn" install.log; then
    cat install.log
    echo "FAIL: installing the tarball compiled the addon instead of using the prebuild" >&2
    exit 1
fi
[ ! -e node_modules/vidllama/build ] || { echo "FAIL: node_modules/vidllama/build exists (something was built)" >&2; exit 1; }

npx --no-install vidllama info | tee info.txt
grep -q "prebuilds" info.txt || { echo "FAIL: the CLI did not load the prebuilt addon" >&2; exit 1; }
npx --no-install vidllama ask -m "$model" "hi" --json --temperature 0 --max-tokens 16 | tee answer.json
node -e '
const r = JSON.parse(require("fs").readFileSync("answer.json", "utf8"));
for (const k of ["text", "tokens", "promptTokens", "stopReason", "timings"]) if (!(k in r)) throw new Error("missing " + k);
if (!Array.isArray(r.promptTokens) || r.promptTokens.length === 0) throw new Error("no prompt tokens");
console.log("OK: packed tarball installs without compiling and answers (" + r.tokens.length + " tokens, " + r.stopReason + ")");
'
