#!/usr/bin/env bash
# Installs every system package Ferry builds, tests and benchmarks with, pinned to Debian 12's versions.
# Safe to run again: apt skips what is already there.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (it calls apt-get)" >&2
  exit 1
fi

packages=(
  # build toolchain
  build-essential=12.9 cmake ninja-build ccache pkg-config git
  clang-14 libclang-rt-14-dev
  # C++ libraries (Debian 12 versions; Boost 1.81 is the one with the Beast we target)
  libboost1.81-dev=1.81.0-5+deb12u1
  libopencv-dev=4.6.0+dfsg-12
  libsimdjson-dev=3.0.1-1
  libfmt-dev=9.1.0+ds1-2
  libspdlog-dev=1:1.10.0+ds-0.4
  libcli11-dev=2.1.2+ds-1
  libyaml-cpp-dev=0.7.0+dfsg-8+b1
  prometheus-cpp-dev=1.0.1-1
  libsqlite3-dev
  # webhook signatures (HMAC-SHA256) and https deliveries; unpinned so that security updates apply
  libssl-dev ca-certificates
  # alert e-mail to an SMTP relay (libcurl's SMTP client); unpinned so that security updates apply
  libcurl4-openssl-dev
  libgtest-dev=1.12.1-0.2 libgmock-dev=1.12.1-0.2
  libbenchmark-dev=1.7.1-1
  nlohmann-json3-dev=3.11.2-2
  # the xgboost backend: XGBoost's C API (xgboost/c_api.h, libxgboost.so); models from PyPI's xgboost 1.7.4
  libxgboost-dev=1.7.4-1
  # Python for tooling and protocol tests (packages come from PyPI into a venv); numpy and yaml for
  # llama.cpp's gguf-py, which writes the example language models
  python3 python3-venv python3-pip python3-numpy python3-yaml
  # model-making (PyTorch -> ONNX) and benchmark peers; OpenCV's Python binding renders the rug-cutting
  # example's training frames with the system Python
  python3-torch=1.13.1+dfsg-4 libopenblas0-pthread python3-opencv=4.6.0+dfsg-12
  # the rug-cutting example's PLC link (Modbus TCP), through ctypes
  libmodbus-dev=3.1.6-2.1+deb12u1
  wrk=4.1.0-3+b2 nginx-light
  curl procps
  # schedules read their time zones from /usr/share/zoneinfo; unpinned so that rule updates apply
  tzdata
  # the power-loss check traces fsyncs against 202s (shared/reliability.md R2, without FUSE)
  strace=6.1-0.1
  # perf_analyzer (from the tritonclient 2.41.0 wheel) links libb64
  libb64-0d
)

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"

# npm fetches llama.cpp's source (inside the node-llama-cpp package). Debian's npm, unless the machine
# already has one (a NodeSource node.js carries its own, and Debian's package would conflict with it).
if ! command -v npm >/dev/null; then
  apt-get install -y -qq --no-install-recommends npm=9.2.0~ds1-1
fi

# OpenVINO comes from its PyPI wheel (headers, libraries and CMake config), not from Debian.
bash "$(dirname "$0")/install-openvino.sh"
# llama.cpp's source, from the pinned npm package; CMake builds it as static libraries.
bash "$(dirname "$0")/install-llama.sh"
