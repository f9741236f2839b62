# Finds the CUDA toolkit and NCCL. Sets RANKSERVE_HAVE_CUDA and the imported target rankserve::nccl.
# A machine without a GPU still compiles and links the NCCL code (nothing runs there without a driver).
set(RANKSERVE_HAVE_CUDA OFF)
if(RANKSERVE_WITH_CUDA)
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND)
    find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} $ENV{NCCL_HOME}/include)
    find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} $ENV{NCCL_HOME}/lib)
    if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
      add_library(rankserve::nccl UNKNOWN IMPORTED)
      set_target_properties(rankserve::nccl PROPERTIES IMPORTED_LOCATION ${NCCL_LIBRARY}
                                                       INTERFACE_INCLUDE_DIRECTORIES ${NCCL_INCLUDE_DIR})
      set(RANKSERVE_HAVE_CUDA ON)
    endif()
  endif()
endif()
message(STATUS "rankserve: CUDA/NCCL code ${RANKSERVE_HAVE_CUDA}")
