# Fails when code above the engine (layers optim serialize datasets examples) includes the
# engine's private headers (autograd/kernels/*, autograd/detail*), or when a kernel includes
# the tensor (kernels see arrays only). ROOT is the source tree.
set(bad "")
function(refuse regex note)  # every #include in ARGN's files matching regex goes into bad
  foreach(f ${ARGN})
    file(STRINGS "${f}" hits REGEX "#[ \t]*include[ \t]*[\"<]${regex}")
    foreach(h ${hits})
      string(APPEND bad "\n  ${f}: ${h}${note}")
    endforeach()
  endforeach()
  set(bad "${bad}" PARENT_SCOPE)
endfunction()
foreach(dir layers optim serialize datasets examples)
  file(GLOB_RECURSE above "${ROOT}/${dir}/*.hpp" "${ROOT}/${dir}/*.cpp")
  refuse("autograd/(kernels/|detail)" "" ${above})
endforeach()
file(GLOB kernels "${ROOT}/autograd/kernels/*.hpp" "${ROOT}/autograd/kernels/*.cpp")
refuse("autograd/tensor\\.hpp" " (a kernel sees arrays: include autograd/array.hpp)" ${kernels})
if(bad)
  message(FATAL_ERROR "the engine's boundary is crossed (use the public headers: tapegrad.hpp, autograd/ops.hpp, "
                      "autograd/threads.hpp...):${bad}")
endif()
