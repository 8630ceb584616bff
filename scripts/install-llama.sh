#!/usr/bin/env bash
# Fetches llama.cpp's source from the pinned npm package node-llama-cpp, whose llama/gitRelease.bundle is
# a git bundle of the llama.cpp release that version was built from, and clones it into
# third_party/llama.cpp. CMake builds llama and ggml from there as static libraries (FERRY_WITH_LLAMA).
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

version=3.21.1
# The tarball's SHA-256, so that a changed package is refused rather than built.
sha256=7a231d6bafa14142a1cbed9893d4ec5bc6041b2a5f5939a623accaab4203c11f
dest=third_party/llama.cpp
if [ -f "$dest/.installed-$version" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "node-llama-cpp@$version" >/dev/null)
echo "$sha256  $tmp/node-llama-cpp-$version.tgz" | sha256sum --check --quiet
tar -xzf "$tmp/node-llama-cpp-$version.tgz" -C "$tmp" package/llama/gitRelease.bundle package/llama/binariesGithubRelease.json
rm -rf "$dest"
mkdir -p third_party
git -c advice.detachedHead=false clone -q "$tmp/package/llama/gitRelease.bundle" "$dest"
# The bundle holds one release; record which, for the build log and the docs.
node -p "require('$tmp/package/llama/binariesGithubRelease.json').release" > "$dest/.release"
touch "$dest/.installed-$version"
