# Writes TAPEGRAD_ARCH_HEADER (tapegrad_arch.hpp): the SIMD instruction sets the library is
# compiled for, read from the compiler's predefined macros under -march=${TAPEGRAD_ARCH}, and
# a check that stops any translation unit compiled for other ones. xsimd picks its batch type,
# and so xtensor its alignment and inline kernels, from exactly these macros: code that shares
# tapegrad's arrays with other flags breaks the ABI and crashes at run time, far from the cause.
set(_tapegrad_simd_macros __SSE2__ __SSE3__ __SSSE3__ __SSE4_1__ __SSE4_2__ __AVX__ __AVX2__ __FMA__
    __FMA4__ __AVX512F__ __AVX512CD__ __AVX512DQ__ __AVX512BW__ __ARM_NEON __aarch64__)
separate_arguments(_tapegrad_flags UNIX_COMMAND "${CMAKE_CXX_FLAGS}")
if(TAPEGRAD_ARCH)
  list(APPEND _tapegrad_flags -march=${TAPEGRAD_ARCH})
endif()
execute_process(COMMAND ${CMAKE_CXX_COMPILER} ${_tapegrad_flags} -dM -E -x c++ /dev/null
  OUTPUT_VARIABLE _tapegrad_predefined RESULT_VARIABLE _tapegrad_rc ERROR_VARIABLE _tapegrad_err)
if(NOT _tapegrad_rc EQUAL 0)
  message(FATAL_ERROR "TAPEGRAD_ARCH=${TAPEGRAD_ARCH}: ${CMAKE_CXX_COMPILER} refuses -march=${TAPEGRAD_ARCH}: ${_tapegrad_err}")
endif()
set(TAPEGRAD_SIMD "")
set(_tapegrad_condition "")
foreach(macro ${_tapegrad_simd_macros})
  if(_tapegrad_predefined MATCHES "#define ${macro} ")
    set(_built 1)
    string(REGEX REPLACE "^__|__$" "" _name "${macro}")
    list(APPEND TAPEGRAD_SIMD ${_name})
  else()
    set(_built 0)
  endif()
  string(APPEND _tapegrad_condition " || defined(${macro}) != ${_built}")
endforeach()
string(SUBSTRING "${_tapegrad_condition}" 4 -1 TAPEGRAD_ARCH_MISMATCH)
list(JOIN TAPEGRAD_SIMD " " TAPEGRAD_SIMD)
if(TAPEGRAD_ARCH)
  set(TAPEGRAD_ARCH_FLAG "-march=${TAPEGRAD_ARCH}")
else()
  set(TAPEGRAD_ARCH_FLAG "the compiler's default -march")
endif()
message(STATUS "tapegrad: ${TAPEGRAD_ARCH_FLAG}, SIMD: ${TAPEGRAD_SIMD}")
set(TAPEGRAD_ARCH_HEADER ${CMAKE_CURRENT_BINARY_DIR}/generated/tapegrad_arch.hpp)
configure_file(${CMAKE_CURRENT_LIST_DIR}/tapegrad_arch.hpp.in ${TAPEGRAD_ARCH_HEADER} @ONLY)
