# Finds the CUDA toolkit and NCCL. Sets RANKSERVE_HAVE_CUDA and the imported target rankserve::nccl, and enables
# the CUDA language (nvcc) whenever the toolkit's compiler is there: .cu sources then build on any machine with
# the toolkit, a GPU or not (docs/gpu.md). A machine without a GPU still compiles and links the NCCL code
# (nothing runs there without a driver). NCCL_HOME is searched first: with PyTorch's CUDA libtorch, point it at
# the NCCL torch loads (the nvidia-nccl wheel, which names its library libnccl.so.2) so one NCCL is in the process.
set(RANKSERVE_HAVE_CUDA OFF)
set(RANKSERVE_HAVE_NVCC OFF)
if(RANKSERVE_WITH_CUDA)
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND)
    find_path(NCCL_INCLUDE_DIR nccl.h HINTS $ENV{NCCL_HOME}/include ${CUDAToolkit_INCLUDE_DIRS})
    find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS $ENV{NCCL_HOME}/lib ${CUDAToolkit_LIBRARY_DIR})
    if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
      add_library(rankserve::nccl UNKNOWN IMPORTED)
      set_target_properties(rankserve::nccl PROPERTIES IMPORTED_LOCATION ${NCCL_LIBRARY}
                                                       INTERFACE_INCLUDE_DIRECTORIES ${NCCL_INCLUDE_DIR})
      set(RANKSERVE_HAVE_CUDA ON)
    endif()
    include(CheckLanguage)
    if(NOT CMAKE_CUDA_COMPILER AND CUDAToolkit_NVCC_EXECUTABLE)
      set(CMAKE_CUDA_COMPILER ${CUDAToolkit_NVCC_EXECUTABLE})  # the toolkit found above, not another nvcc on PATH
    endif()
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
      # Ampere and Hopper (the lent H200 is sm_90); override with -DCMAKE_CUDA_ARCHITECTURES=... for other GPUs.
      if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
        set(CMAKE_CUDA_ARCHITECTURES 80 90)
      endif()
      enable_language(CUDA)
      set(CMAKE_CUDA_STANDARD 17)  # CMake 3.25 knows no CUDA20 flags for nvcc
      set(CMAKE_CUDA_STANDARD_REQUIRED ON)
      set(RANKSERVE_HAVE_NVCC ON)
    endif()
  endif()
endif()
message(STATUS "rankserve: CUDA/NCCL code ${RANKSERVE_HAVE_CUDA}, nvcc ${RANKSERVE_HAVE_NVCC}")
