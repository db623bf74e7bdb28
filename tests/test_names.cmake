# Fails if a TEST_CASE name holds a ';': doctest_discover_tests splits such a name into
# several ctest tests whose filters match nothing, so the test case silently never runs.
file(GLOB sources "${DIR}/*.cpp")
foreach(source ${sources})
  file(READ "${source}" text)
  string(REGEX MATCH "TEST_CASE\\(\"[^\"\n]*;[^\"\n]*\"" bad "${text}")
  if(bad)
    message(FATAL_ERROR "${source}: ${bad}: a ';' in a test name hides the test from ctest; use ','")
  endif()
endforeach()
