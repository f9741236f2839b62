#!/usr/bin/env bash
# Downloads the Debian 12 packages rankserve builds with that a bare GPU machine lacks (Boost, fmt, yaml-cpp,
# pcre2, PMIx, doctest and their libraries) into one folder, default .gpu-debs/ in the repository root (ignored by
# git), for scripts/gpu-check.sh to unpack there with dpkg -x. Prints the folder's size: it travels with the
# working tree to the GPU machine (64 MiB in all). Usage: scripts/gpu-debs.sh [FOLDER]
set -euo pipefail
cd "$(dirname "$0")/.."
folder="${1:-.gpu-debs}"
packages=(
  libboost1.81-dev libboost-json1.81-dev libboost-json1.81.0 libboost-program-options1.81-dev
  libboost-program-options1.81.0 libboost-container1.81.0 libboost-container1.81-dev libfmt-dev libfmt9 libyaml-cpp-dev libyaml-cpp0.7
  libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 libpmix-dev libpmix2
  libevent-core-2.1-7 libevent-pthreads-2.1-7 libhwloc15 doctest-dev
  zlib1g-dev zlib1g pkgconf-bin libpkgconf3
)
mkdir -p "$folder"
# apt-get download needs the package lists; as root, refresh them once when they are missing.
if [[ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial)" && $(id -u) -eq 0 ]]; then apt-get update -qq; fi
(cd "$folder" && apt-get download -qq "${packages[@]}")
count=$(ls "$folder"/*.deb | wc -l)
if ((count != ${#packages[@]})); then
  echo "gpu-debs: $count .deb files in $folder; expected ${#packages[@]} (remove the folder's old versions and run again)" >&2
  exit 1
fi
echo "gpu-debs: $count packages, $(du -sh "$folder" | cut -f1) in $folder"
