# Fails when the engine's top level (autograd/*.hpp autograd/*.cpp: the handle, the tape, every
# op with its backwards, random, gradcheck, the stochastic ops) holds more than BUDGET non-blank
# lines, counted as `cat autograd/*.hpp autograd/*.cpp | grep -cv '^\s*$'` counts them.
file(GLOB files "${ROOT}/autograd/*.hpp" "${ROOT}/autograd/*.cpp")
set(count 0)
foreach(f ${files})
  file(READ "${f}" text)
  # each non-blank line becomes one character (no CMake lists: ';' and '[' would split them)
  string(REGEX REPLACE "[ \t\r]+" "" text "${text}")
  string(REGEX REPLACE "[^\n]+" "x" text "${text}")
  string(REPLACE "\n" "" text "${text}")
  string(LENGTH "${text}" n)
  math(EXPR count "${count} + ${n}")
endforeach()
if(count GREATER BUDGET)
  message(FATAL_ERROR "the engine's top level holds ${count} non-blank lines, above its budget of ${BUDGET}: "
                      "make room (merge, delete) before adding")
endif()
message(STATUS "engine top level: ${count} non-blank lines (budget ${BUDGET})")
