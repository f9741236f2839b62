# Which libtorch find_package(Torch) found: Debian's CPU-only libtorch 1.13 (this machine, CI), or PyTorch 2.x's
# CUDA libtorch from its Python package (CMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')).
# Sets RANKSERVE_TORCH_CUDA, and then the project-wide definition RANKSERVE_TORCH_CUDA=1 (docs/gpu.md). Matches torch's
# C++ ABI project-wide: every target, with libtorch or without, passes std::string across the same ABI.
set(RANKSERVE_TORCH_CUDA OFF)
if(TARGET torch_cuda OR TARGET c10_cuda OR CAFFE2_USE_CUDA)
  if(NOT CAFFE2_USE_CUDA)
    message(FATAL_ERROR "torch: ${Torch_DIR} is a CUDA build but its config found no CUDA toolkit; expected nvcc and the "
                        "CUDA libraries (put the toolkit's bin/ on PATH or pass -DCUDAToolkit_ROOT=/usr/local/cuda)")
  endif()
  set(RANKSERVE_TORCH_CUDA ON)
  add_compile_definitions(RANKSERVE_TORCH_CUDA=1)
endif()

# Debian's torch says -D_GLIBCXX_USE_CXX11_ABI=1, the compiler's default: nothing to add. A torch built with the old
# ABI (=0, PyTorch wheels before 2.7) needs every target, and every C++ library linked, built the same way.
set(RANKSERVE_TORCH_CXX11_ABI 1)
if(TORCH_CXX_FLAGS MATCHES "_GLIBCXX_USE_CXX11_ABI=([01])")
  set(RANKSERVE_TORCH_CXX11_ABI ${CMAKE_MATCH_1})
endif()
if(RANKSERVE_TORCH_CXX11_ABI EQUAL 0)
  add_compile_definitions(_GLIBCXX_USE_CXX11_ABI=0)
  message(WARNING "torch: ${Torch_DIR} uses the pre-C++11 std::string ABI (_GLIBCXX_USE_CXX11_ABI=0); Debian's Boost, fmt and "
                  "yaml-cpp use the new one, so linking fails (use PyTorch >= 2.7, or those libraries built with the old ABI)")
endif()

# Gloo (the CPU collectives): Debian ships it as libgloo; PyTorch's wheels carry it inside libtorch_cpu with its
# headers in torch's include folder, so there is no library to link.
find_path(RANKSERVE_GLOO_INCLUDE_DIR gloo/algorithm.h HINTS ${TORCH_INCLUDE_DIRS})
if(NOT RANKSERVE_GLOO_INCLUDE_DIR)
  message(FATAL_ERROR "gloo: gloo/algorithm.h not found in torch's include folders (${TORCH_INCLUDE_DIRS}) nor the system's; "
                      "expected Debian's libgloo-dev (scripts/setup.sh) or a PyTorch wheel that ships gloo's headers")
endif()
find_library(RANKSERVE_GLOO_LIBRARY gloo)
add_library(rankserve_gloo INTERFACE)
if(RANKSERVE_GLOO_LIBRARY)
  target_link_libraries(rankserve_gloo INTERFACE ${RANKSERVE_GLOO_LIBRARY})
endif()
message(STATUS "rankserve: torch ${Torch_VERSION} from ${Torch_DIR}, CUDA ${RANKSERVE_TORCH_CUDA}, "
               "_GLIBCXX_USE_CXX11_ABI=${RANKSERVE_TORCH_CXX11_ABI}")
