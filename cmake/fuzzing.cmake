# RANKSERVE_BUILD_FUZZERS: a build tree of its own (build-fuzz, configured by scripts/fuzz-tier.sh)
# whose every target carries libFuzzer's coverage instrumentation, ASan and UBSan, so the decoders the
# fuzz targets in tests/fuzz link are checked too. UB aborts (no recovery) so libFuzzer sees it as a
# crash. Debian's libraries (libtorch, Boost.JSON, yaml-cpp, zlib) stay uninstrumented.
set(RANKSERVE_FUZZING OFF)
if(RANKSERVE_BUILD_FUZZERS)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    set(RANKSERVE_FUZZING ON)
    # -fno-sanitize=function: clang 14 cannot emit UBSan's function-type prologue for split coroutine
    # bodies ("Cannot represent a difference across sections", net/ is coroutines throughout).
    set(RANKSERVE_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize=function -fno-sanitize-recover=undefined
                                  -fno-omit-frame-pointer)
    add_compile_options(-fsanitize=fuzzer-no-link ${RANKSERVE_SANITIZER_FLAGS})
    add_link_options(${RANKSERVE_SANITIZER_FLAGS})
  else()
    message(WARNING "RANKSERVE_BUILD_FUZZERS needs clang (configure with -DCMAKE_CXX_COMPILER=clang++); "
                    "the fuzz targets are not built with ${CMAKE_CXX_COMPILER_ID}")
  endif()
endif()
