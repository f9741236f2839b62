# cmake -D EXE=<doctest executable> -P doctest_names_check.cmake: fails (naming the case) when a doctest case name
# holds a ';'. CMake lists split there, so doctest_discover_tests would register the halves as two CTest tests
# that each match no case and pass without running anything.
execute_process(COMMAND "${EXE}" --list-test-cases OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "tests: ${EXE} --list-test-cases exited ${rc}; expected 0")
endif()
string(REGEX MATCH "[^\n]*;[^\n]*" bad "${out}")
if(bad)
  message(FATAL_ERROR "tests: the case \"${bad}\" in ${EXE} holds a ';'; expected none, CTest would split it "
                      "into two tests that run nothing (use ',' or ':' in the name)")
endif()
