# oneDNN for the Winograd convolutions (native/models/winograd_conv.h).
#
# Used only when this LibTorch itself runs a shared oneDNN 2.x (Debian's
# libtorch-dev links the system's libdnnl.so.2), and that library's headers
# are installed (libdnnl-dev): the addon then calls the very library LibTorch
# uses, with the same OpenMP runtime. Official LibTorch downloads and pip's
# torch link oneDNN statically and hide it; a second copy beside them would
# bring its own thread pool, so they build without it and
# WinogradAvailable() says why. TABSIGHT_ONEDNN=OFF (cmake variable or
# environment) turns the detection off.

set(TABSIGHT_WITH_DNNL OFF)
if(NOT DEFINED TABSIGHT_ONEDNN AND DEFINED ENV{TABSIGHT_ONEDNN})
  set(TABSIGHT_ONEDNN "$ENV{TABSIGHT_ONEDNN}")
endif()
if(NOT DEFINED TABSIGHT_ONEDNN)
  set(TABSIGHT_ONEDNN AUTO)
endif()

if(TABSIGHT_ONEDNN)
  set(_tabsight_torch_cpu "")
  foreach(_lib IN LISTS TABSIGHT_TORCH_LIBS)
    if(IS_ABSOLUTE "${_lib}" AND _lib MATCHES "libtorch_cpu")
      set(_tabsight_torch_cpu "${_lib}")
      break()
    endif()
  endforeach()
  set(_tabsight_torch_dnnl "")
  if(_tabsight_torch_cpu AND CMAKE_OBJDUMP)
    execute_process(COMMAND ${CMAKE_OBJDUMP} -p "${_tabsight_torch_cpu}" OUTPUT_VARIABLE _tabsight_dyn ERROR_QUIET)
    string(REGEX MATCH "NEEDED +libdnnl\\.so\\.2" _tabsight_torch_dnnl "${_tabsight_dyn}")
  endif()
  find_path(TABSIGHT_DNNL_INCLUDE oneapi/dnnl/dnnl.hpp)
  find_library(TABSIGHT_DNNL_LIBRARY NAMES libdnnl.so.2 dnnl)
  set(_tabsight_dnnl_major "")
  if(TABSIGHT_DNNL_INCLUDE AND EXISTS "${TABSIGHT_DNNL_INCLUDE}/oneapi/dnnl/dnnl_version.h")
    file(STRINGS "${TABSIGHT_DNNL_INCLUDE}/oneapi/dnnl/dnnl_version.h" _tabsight_dnnl_major
         REGEX "^#define DNNL_VERSION_MAJOR 2$")
  endif()
  if(_tabsight_torch_dnnl AND TABSIGHT_DNNL_LIBRARY AND _tabsight_dnnl_major)
    set(TABSIGHT_WITH_DNNL ON)
    list(APPEND TABSIGHT_TORCH_DEFINES TABSIGHT_WITH_DNNL)
    list(APPEND TABSIGHT_TORCH_INCLUDES "${TABSIGHT_DNNL_INCLUDE}")
    list(APPEND TABSIGHT_TORCH_LIBS "${TABSIGHT_DNNL_LIBRARY}")
    message(STATUS "tabsight: oneDNN ${TABSIGHT_DNNL_LIBRARY} (LibTorch's own): Winograd convolutions on")
  elseif(_tabsight_torch_dnnl)
    message(STATUS "tabsight: LibTorch runs the system's oneDNN 2.x but its headers are missing (apt install libdnnl-dev): Winograd convolutions off")
  else()
    message(STATUS "tabsight: this LibTorch has no shared oneDNN 2.x: Winograd convolutions off")
  endif()
endif()
