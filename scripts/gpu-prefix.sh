#!/usr/bin/env bash
# Unpacks the Debian packages in DEBS (scripts/gpu-debs.sh) into PREFIX with dpkg-deb -x (never into /), points
# their pkg-config files and absolute symbolic links into PREFIX, and writes PREFIX/env.sh, which exports what
# a build against them needs: CMAKE_PREFIX_PATH (appended), PKG_CONFIG_PATH, LD_LIBRARY_PATH and, where the machine
# has no pkg-config, RANKSERVE_PKG_CONFIG (the carried pkgconf). Used by scripts/gpu-check.sh; any machine.
#   scripts/gpu-prefix.sh DEBS PREFIX
set -euo pipefail
debs=$1
prefix=$(mkdir -p "$2" && cd "$2" && pwd)
shopt -s nullglob
files=("$debs"/*.deb)
((${#files[@]})) || { echo "gpu-prefix: no .deb files in $debs; expected scripts/gpu-debs.sh's download (run it first)" >&2; exit 1; }
for deb in "${files[@]}"; do dpkg-deb -x "$deb" "$prefix"; done
multiarch=lib/x86_64-linux-gnu
# pkg-config files name /usr (pmix.pc also -I/usr/include and an rpath): every such path moves into the prefix.
for pc in "$prefix"/usr/$multiarch/pkgconfig/*.pc "$prefix"/usr/share/pkgconfig/*.pc; do
  sed -i -E "s#(^|[=[:space:]]|-I|-L)/usr(/|[[:space:]]|\$)#\\1$prefix/usr\\2#g" "$pc"
done
# CMake configs that fix their prefix at /usr (Debian's doctestTargets.cmake) take the prefix's. Those that
# compare their real path with the /usr one (fmt, yaml-cpp) compute it themselves.
grep -rlF 'set(_IMPORT_PREFIX "/usr")' --include='*.cmake' "$prefix" | while IFS= read -r config; do
  sed -i "s#set(_IMPORT_PREFIX \"/usr\")#set(_IMPORT_PREFIX \"$prefix/usr\")#" "$config"
done
# Absolute links (libz.so -> /lib/...) point at the prefix's copy.
while IFS= read -r link; do
  target=$(readlink "$link")
  [[ -e "$prefix$target" ]] && ln -sfn "$prefix$target" "$link"
done < <(find "$prefix" -type l -lname '/*')
{
  echo "export CMAKE_PREFIX_PATH=\"\${CMAKE_PREFIX_PATH:+\$CMAKE_PREFIX_PATH;}$prefix/usr\""
  echo "export PKG_CONFIG_PATH=\"$prefix/usr/$multiarch/pkgconfig:$prefix/usr/share/pkgconfig\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}\""
  # Transitive libraries (PMIx's libevent and hwloc) are found through LD_LIBRARY_PATH; the direct ones also
  # through the executables' build-tree RPATH.
  echo "export LD_LIBRARY_PATH=\"$prefix/usr/$multiarch:$prefix/usr/$multiarch/pmix2/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
  command -v pkg-config >/dev/null || echo "export RANKSERVE_PKG_CONFIG=\"$prefix/usr/bin/pkgconf\""
} > "$prefix/env.sh"
echo "gpu-prefix: ${#files[@]} packages in $prefix ($(du -sh "$prefix" | cut -f1)); source $prefix/env.sh"
