#!/usr/bin/env bash
# cluster tier fixture: builds and installs enroot + pyxis from the sources in SHARED (the repository's ../shared:
# vendor/pyxis/ tarballs and tools/build-enroot-pyxis.sh) into PREFIX, under a second when already built.
# The Debian packages it needs come from scripts/setup.sh (--no-apt: nothing is installed at test time).
#   pyxis_build.sh SHARED PREFIX
set -euo pipefail
shared=${1:?usage: pyxis_build.sh SHARED PREFIX}
prefix=${2:?usage: pyxis_build.sh SHARED PREFIX}
script=$shared/tools/build-enroot-pyxis.sh
if [[ ! -f $script ]]; then
  echo "pyxis_build: $script not found: the cluster tier builds pyxis and enroot from shared/ beside the repository" \
    "(configure with -DRANKSERVE_SHARED_DIR=/path/to/shared)" >&2
  exit 1
fi
[[ $(id -u) -eq 0 ]] || { echo "pyxis_build: must run as root (the cluster tier does)" >&2; exit 1; }
PYXIS_LAB_PREFIX=$prefix bash "$script" --no-apt
