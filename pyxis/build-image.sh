#!/usr/bin/env bash
# Builds rankserve.sqsh, a squashfs image for pyxis/enroot, with no Docker engine and no registry:
# Debian 12 minbase from the Debian mirror apt uses, the Debian packages the binaries link against (found with
# ldd, so Open MPI's and PMIx's dlopen()ed components come as the packages ship them), the binaries and
# share/rankserve/ under /usr/local, an empty /dev, squashed with zstd level 3. Run as root (debootstrap, chroot).
#
#   pyxis/build-image.sh [--build DIR | --prefix DIR] [--output FILE] [--cache DIR] [--mirror URL]
#     --build DIR    a built tree, installed with `cmake --install DIR --strip` (default: ./build)
#     --prefix DIR   an installed rankserve instead (bin/rankserve, bin/rankserve-client, share/rankserve/)
#     --output FILE  the image (default: ./rankserve.sqsh); FILE.mounts lists the host folders to mount
#     --cache DIR    where the package rootfs is kept (default: $RANKSERVE_IMAGE_CACHE or /var/tmp/rankserve-image)
#     --mirror URL   Debian mirror (default: the first bookworm URI in /etc/apt/sources.list{,.d/*})
#
# Cache: the rootfs with its packages is kept under --cache, keyed on the package list (and suite, mirror,
# recipe); a code change that links the same libraries only re-copies /usr/local and re-squashes (seconds).
# Libraries that no Debian package owns (the CUDA toolkit's libcudart and libnccl) are not copied: the image
# expects their folder mounted read-only at the same path, and FILE.mounts says which (pyxis/README.md).
set -euo pipefail

recipe=1  # bump when the rootfs steps below change: a new cache key
suite=bookworm
build=""
prefix=""
output=$PWD/rankserve.sqsh
cache=${RANKSERVE_IMAGE_CACHE:-/var/tmp/rankserve-image}
mirror=""

die() { echo "build-image: $*" >&2; exit 1; }
log() { echo "build-image: $*"; }
since() { echo "$(($(date +%s) - $1)) s"; }

while (($#)); do
  case "$1" in
    --build) build=${2:?--build needs a folder}; shift 2 ;;
    --prefix) prefix=${2:?--prefix needs a folder}; shift 2 ;;
    --output) output=${2:?--output needs a file}; shift 2 ;;
    --cache) cache=${2:?--cache needs a folder}; shift 2 ;;
    --mirror) mirror=${2:?--mirror needs a URL}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

# ------------------------------------------------------------------ validate everything first
[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap and chroot); try: sudo $0"
for tool in debootstrap mksquashfs unsquashfs chroot ldd dpkg-query flock; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install debootstrap squashfs-tools; scripts/setup.sh installs both)"
done
[[ -n $build && -n $prefix ]] && die "--build and --prefix exclude each other"
[[ -z $build && -z $prefix ]] && build=$PWD/build
if [[ -n $build ]]; then
  [[ -f $build/CMakeCache.txt ]] || die "--build $build: no CMakeCache.txt (configure and build first: cmake --preset dev && cmake --build build)"
fi
if [[ -z $mirror ]]; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)
  [[ -n $mirror ]] || die "no Debian mirror found in /etc/apt/sources.list{,.d/}; pass --mirror http://deb.debian.org/debian"
fi
output=$(realpath -m "$output")
mkdir -p "$(dirname "$output")" "$cache"
t0=$(date +%s)

stage=$(mktemp -d /tmp/rankserve-image-stage-XXXXXX)
trap 'rm -rf "$stage"' EXIT
if [[ -n $build ]]; then
  cmake --install "$build" --prefix "$stage/usr/local" --strip >"$stage/install.log" 2>&1 ||
    { tail -n 20 "$stage/install.log" >&2; die "cmake --install $build failed"; }
  rm -f "$stage/install.log"
else
  mkdir -p "$stage/usr/local"
  cp -a "$prefix/." "$stage/usr/local/"
fi
bins=("$stage/usr/local/bin/rankserve" "$stage/usr/local/bin/rankserve-client")
for f in "${bins[@]}" "$stage/usr/local/share/rankserve/gpt2/vocab.bpe"; do
  [[ -e $f ]] || die "${f#"$stage"} missing from the install (build the rankserve and rankserve-client targets)"
done

# ------------------------------------------------------------------ the packages the binaries need
# Every library ldd resolves is owned by a Debian package (dpkg -S, asked once for all: the path as ldd prints it,
# its real path, and either side of the merged /usr) or sits in a folder to mount (no package owns it).
ldd "${bins[@]}" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/.*[^:]$/ {print $1}' | sort -u >"$stage/libs"
missing=$(ldd "${bins[@]}" | awk '$3 == "not" {print $1}' | sort -u | tr '\n' ' ')
[[ -z $missing ]] || die "the host binaries themselves miss $missing(ldd); fix the build first"
while read -r path; do
  real=$(realpath "$path")
  printf '%s\t%s\n%s\t%s\n%s\t%s\n%s\t%s\n' "$path" "$path" "$path" "$real" "$path" "${real#/usr}" "$path" "/usr${path#/usr}"
done <"$stage/libs" | sort -u >"$stage/candidates"
cut -f2 "$stage/candidates" | sort -u | { xargs dpkg-query -S 2>/dev/null || true; } |
  awk -F': ' '!/^diversion/ {split($1, p, ", "); print $2 "\t" p[1]}' | sort -u >"$stage/owners"
declare -A packages=()
declare -A mounts=()
declare -A owned=()
while IFS=$'\t' read -r file pkg; do owned[$file]=${pkg%%:*}; done <"$stage/owners"
while IFS=$'\t' read -r path candidate; do
  if [[ -n ${owned[$candidate]:-} ]]; then packages[${owned[$candidate]}]=1; echo "$path"; fi
done <"$stage/candidates" >"$stage/owned-libs"
sort -u -o "$stage/owned-libs" "$stage/owned-libs"
while read -r path; do
  dir=$(dirname "$path")
  mounts["$(realpath "$dir"):$dir"]=1
done < <(comm -23 "$stage/libs" "$stage/owned-libs")
# Open MPI (mpirun inside the image) and PMIx as packages: their components are dlopen()ed, never seen by ldd.
for extra in libpmix2 openmpi-bin libopenblas0-pthread; do packages[$extra]=1; done
package_list=$(printf '%s\n' "${!packages[@]}" | sed 's/:amd64$//' | sort -u | tr '\n' ' ')
key=$(printf 'recipe=%s suite=%s mirror=%s packages=%s' "$recipe" "$suite" "$mirror" "$package_list" | sha256sum | cut -c1-16)
rootfs=$cache/rootfs-$key

# ------------------------------------------------------------------ the rootfs (cached on the key)
exec 9>"$cache/lock"
flock 9  # one build at a time per cache: the rootfs's /usr/local is rewritten below
if [[ -f $rootfs/.rankserve-rootfs ]]; then
  log "rootfs $key cached ($rootfs)"
else
  log "rootfs $key: debootstrap --variant=minbase $suite from $mirror with $(wc -w <<<"$package_list") packages and their dependencies"
  t=$(date +%s)
  for old in "$cache"/rootfs-*; do [[ -e $old ]] && rm -rf --one-file-system "$old"; done
  mkdir -p "$cache/debs" "$rootfs.tmp"
  # --cache-dir keeps the .debs, so a new package list downloads only what is new.
  if ! nice -n 10 debootstrap --variant=minbase --cache-dir="$cache/debs" --include="$(tr ' ' ',' <<<"${package_list% }")" \
    "$suite" "$rootfs.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1; then
    tail -n 20 "$cache/debootstrap.log" >&2
    rm -rf --one-file-system "$rootfs.tmp"
    die "debootstrap failed (log: $cache/debootstrap.log)"
  fi
  # Device nodes break a non-root `enroot create`; enroot mounts its own /dev. No apt lists or .debs inside.
  find "$rootfs.tmp/dev" -mindepth 1 -delete
  # enroot gives a container the job's environment with this file's variables on top (pyxis/README.md).
  echo 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' >"$rootfs.tmp/etc/environment"
  rm -rf "$rootfs.tmp"/var/cache/apt/archives/*.deb "$rootfs.tmp"/var/lib/apt/lists/* "$rootfs.tmp"/var/log/*.log
  echo "$package_list" >"$rootfs.tmp/.rankserve-rootfs"
  mv "$rootfs.tmp" "$rootfs"
  log "rootfs built in $(since "$t")"
fi

# ------------------------------------------------------------------ rankserve into /usr/local, checked, squashed
rm -rf --one-file-system "${rootfs:?}/usr/local"
cp -a "$stage/usr/local" "$rootfs/usr/local"
# Each SRC:DST is bound by enroot from the image's /etc/fstab when the host has SRC (nofail: skipped where it has
# not; --container-mounts can bind another folder there), and DST is in ld.so.conf: ldconfig below, run with the
# folders bound, caches their libraries.
{
  echo "# rankserve image (pyxis/build-image.sh): enroot binds these host folders (libraries no Debian package ships)"
  for m in "${!mounts[@]}"; do echo "${m%%:*} ${m#*:} none x-create=dir,bind,ro,nosuid,nodev,private,nofail 0 -1"; done
} >"$rootfs/etc/fstab"
for m in "${!mounts[@]}"; do mkdir -p "$rootfs${m#*:}"; done
printf '%s\n' "${!mounts[@]}" | sed '/^$/d; s/^[^:]*://' >"$rootfs/etc/ld.so.conf.d/rankserve-mounted.conf"
# The image runs both binaries: chroot with the folders to mount bound in a private mount namespace.
check=$(
  unshare --mount --propagation private bash -c '
    rootfs=$1; shift
    for m in "$@"; do mount --bind -o ro "${m%%:*}" "$rootfs${m#*:}"; done
    chroot "$rootfs" ldconfig
    chroot "$rootfs" /usr/local/bin/rankserve --version && chroot "$rootfs" /usr/local/bin/rankserve-client --version
  ' check "$rootfs" "${!mounts[@]}" 2>&1
) || die "the binaries do not run in the image: $check"
t=$(date +%s)
rm -f "$output.tmp"
nice -n 10 mksquashfs "$rootfs" "$output.tmp" -comp zstd -Xcompression-level 3 -noappend -no-progress -quiet -e .rankserve-rootfs ||
  die "mksquashfs failed"
mv "$output.tmp" "$output"
printf '%s\n' "${!mounts[@]}" | sed '/^$/d; s/$/:ro/' >"$output.mounts"
log "squashed in $(since "$t")"

# ------------------------------------------------------------------ what it holds
num_packages=$(chroot "$rootfs" dpkg-query -W -f='${binary:Package}\n' | wc -l)
blas=$(readlink -f "$rootfs/etc/alternatives/libblas.so.3-x86_64-linux-gnu" 2>/dev/null || echo "?")
echo "image:     $output ($(du -h "$output" | cut -f1), rootfs $(du -sh --exclude=proc "$rootfs" | cut -f1), $num_packages packages)"
echo "debian:    $suite minbase from $mirror, rootfs key $key"
echo "rankserve: $(tr '\n' ' ' <<<"$check")"
echo "files:     /usr/local/bin/{rankserve,rankserve-client}, /usr/local/share/rankserve/{$(ls "$stage/usr/local/share/rankserve" | tr '\n' ',' | sed 's/,$//')}"
echo "libraries: $(wc -w <<<"$package_list") packages own what the binaries link ($(grep -oE 'libtorch[^ ]*|libpmix[^ ]*|libgrpc\+\+[^ ]*|libboost-json[^ ]*' <<<"$package_list" | tr '\n' ' ')...), with openmpi-bin and libpmix2 as packages"
echo "blas:      ${blas#"$rootfs"}"
echo "largest:   $(chroot "$rootfs" dpkg-query -W -f='${Installed-Size} ${binary:Package}\n' | sort -rn | head -n 6 |
  awk '{printf "%s %d MB, ", $2, $1 / 1024}' | sed 's/, $//')"
if [[ -s $output.mounts ]]; then
  echo "mounted:   $(paste -sd, "$output.mounts") (no Debian package owns these libraries; the image's /etc/fstab binds them when the host has them: $output.mounts)"
fi
log "done in $(since "$t0")"
