#!/usr/bin/env bash
# Installs OpenVINO's C++ runtime from its pinned PyPI wheel into third_party/openvino (a venv of its own).
# The wheel carries the headers, the shared libraries (TBB included) and OpenVINOConfig.cmake, which the
# CMake build finds there; the Python part is not used by Ferry. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

version=2026.4.1
prefix=third_party/openvino
if [ -f "$prefix/.installed-$version" ]; then
  exit 0
fi
rm -rf "$prefix"
/usr/bin/python3 -m venv "$prefix"
# --no-deps: numpy and the telemetry package are for the Python API only.
"$prefix/bin/pip" install -q --disable-pip-version-check --no-deps "openvino==$version"
# A fixed path to the wheel's package folder, named as in site-packages because its CMake files look for
# their libraries two levels up, in openvino/libs. Its cmake/ is what openvino.utils.get_cmake_path()
# returns (found here without importing the Python module, which wants numpy).
config=$(ls "$prefix"/lib/python3*/site-packages/openvino/cmake/OpenVINOConfig.cmake)
ln -sfn "$(realpath --relative-to="$prefix" "$(dirname "$(dirname "$config")")")" "$prefix/openvino"
touch "$prefix/.installed-$version"
