# Distributed training backends (LibTorch's c10d), detected, never assumed.
#
# Included at the end of TorchFlags.cmake, so the addon (CMakeLists.txt) and
# binding.gyp (through cmake/probe and scripts/torch-flags.js) see the same
# result. Sets:
#   TABSIGHT_HAVE_GLOO  ON when LibTorch exports c10d::ProcessGroupGloo and
#                       gloo's headers are found (Debian: libgloo-dev).
#   TABSIGHT_HAVE_NCCL  ON when a CUDA LibTorch exports c10d::ProcessGroupNCCL
#                       and nccl.h is found.
# and TABSIGHT_DIST_DEFINES / _INCLUDES / _LIBS (which CMakeLists.txt applies
# to the addon), also appended to TABSIGHT_TORCH_DEFINES / _INCLUDES / _LIBS
# for binding.gyp. The TCPStore rendezvous is part
# of every LibTorch ≥ 1.10 and needs nothing extra. Without a backend the
# addon still builds; distributed training then fails with ERR_CONFIG.

find_program(TABSIGHT_NM nm)
set(TABSIGHT_DIST_DEFINES "")
set(TABSIGHT_DIST_INCLUDES "")
set(TABSIGHT_DIST_LIBS "")

# Does `lib` export a symbol whose (mangled) name contains `needle`?
function(_tabsight_exports lib needle out)
  set(${out} OFF PARENT_SCOPE)
  if(NOT TABSIGHT_NM OR NOT EXISTS "${lib}")
    return()
  endif()
  execute_process(
    COMMAND ${TABSIGHT_NM} -D --defined-only "${lib}"
    COMMAND grep -c "${needle}"
    OUTPUT_VARIABLE _count OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_count AND _count GREATER 0)
    set(${out} ON PARENT_SCOPE)
  endif()
endfunction()

set(_tabsight_torch_cpu "")
set(_tabsight_torch_cuda "")
foreach(_lib IN LISTS TABSIGHT_TORCH_LIBS)
  get_filename_component(_name "${_lib}" NAME)
  if(_name MATCHES "^libtorch_cpu\\.(so|dylib)")
    set(_tabsight_torch_cpu "${_lib}")
  elseif(_name MATCHES "^libtorch_cuda\\.(so|dylib)")
    set(_tabsight_torch_cuda "${_lib}")
  endif()
endforeach()

# Gloo (CPU). Debian's libtorch_cpu links libgloo.so.0 and exports
# ProcessGroupGloo; ProcessGroupGloo.hpp includes gloo's headers.
set(TABSIGHT_HAVE_GLOO OFF)
_tabsight_exports("${_tabsight_torch_cpu}" "16ProcessGroupGloo" _pg_gloo)
find_path(TABSIGHT_GLOO_INCLUDE_DIR gloo/config.h HINTS ${TORCH_INCLUDE_DIRS})
find_path(TABSIGHT_C10D_INCLUDE_DIR torch/csrc/distributed/c10d/ProcessGroupGloo.hpp HINTS ${TORCH_INCLUDE_DIRS})
if(_pg_gloo AND TABSIGHT_GLOO_INCLUDE_DIR AND TABSIGHT_C10D_INCLUDE_DIR)
  set(TABSIGHT_HAVE_GLOO ON)
  list(APPEND TABSIGHT_DIST_DEFINES USE_C10D_GLOO TABSIGHT_HAVE_GLOO=1)
  list(APPEND TABSIGHT_DIST_INCLUDES "${TABSIGHT_GLOO_INCLUDE_DIR}")
  # Nothing more to link: every c10d and gloo symbol the addon uses comes
  # from libtorch_cpu (checked with nm -u on the built addon).
  message(STATUS "tabsight: distributed backend gloo (headers ${TABSIGHT_GLOO_INCLUDE_DIR})")
else()
  message(STATUS "tabsight: no gloo backend (LibTorch exports ProcessGroupGloo: ${_pg_gloo}; gloo headers: ${TABSIGHT_GLOO_INCLUDE_DIR}); install libgloo-dev for distributed CPU training")
endif()

# NCCL (CUDA). Only a CUDA LibTorch built with NCCL has it; this machine's
# CPU LibTorch never does, so this branch is untested here.
set(TABSIGHT_HAVE_NCCL OFF)
if(_tabsight_torch_cuda)
  _tabsight_exports("${_tabsight_torch_cuda}" "16ProcessGroupNCCL" _pg_nccl)
  find_path(TABSIGHT_NCCL_INCLUDE_DIR nccl.h HINTS ${TORCH_INCLUDE_DIRS} ENV NCCL_ROOT PATH_SUFFIXES include)
  if(_pg_nccl AND TABSIGHT_NCCL_INCLUDE_DIR)
    set(TABSIGHT_HAVE_NCCL ON)
    list(APPEND TABSIGHT_DIST_DEFINES USE_C10D_NCCL TABSIGHT_HAVE_NCCL=1)
    list(APPEND TABSIGHT_DIST_INCLUDES "${TABSIGHT_NCCL_INCLUDE_DIR}")
    message(STATUS "tabsight: distributed backend nccl")
  else()
    message(STATUS "tabsight: no nccl backend (LibTorch exports ProcessGroupNCCL: ${_pg_nccl}; nccl.h: ${TABSIGHT_NCCL_INCLUDE_DIR})")
  endif()
endif()

list(APPEND TABSIGHT_TORCH_DEFINES ${TABSIGHT_DIST_DEFINES})
list(APPEND TABSIGHT_TORCH_INCLUDES ${TABSIGHT_DIST_INCLUDES})
list(APPEND TABSIGHT_TORCH_LIBS ${TABSIGHT_DIST_LIBS})
