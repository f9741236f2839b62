# rankserve_doctest_tests(<target> LABELS <label>... [PROPERTIES <name> <value>...], single values): registers every doctest case
# of <target> as its own CTest test (named by the case, so a failure names it), discovered after each build.
# doctest_discover_tests' own PROPERTIES cannot carry labels (doctest 2.4.9 writes an empty LABELS after them,
# which makes CTest drop the whole set_tests_properties call), so the labels and properties are applied by a
# second CTest include file that runs after the discovered list. A case name may not hold a ';' (checked after each
# build: CMake lists split there).
find_package(doctest REQUIRED)
include(${doctest_DIR}/doctest.cmake)

function(rankserve_doctest_tests target)
  cmake_parse_arguments(arg "" "" "LABELS;PROPERTIES" ${ARGN})
  doctest_discover_tests(${target} TEST_LIST ${target}_TESTS)
  add_custom_command(TARGET ${target} POST_BUILD VERBATIM
                     COMMAND ${CMAKE_COMMAND} -D EXE=$<TARGET_FILE:${target}> -P ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/doctest_names_check.cmake)
  set(properties "")
  foreach(item IN LISTS arg_PROPERTIES)
    string(APPEND properties " [==[${item}]==]")
  endforeach()
  set(file "${CMAKE_CURRENT_BINARY_DIR}/${target}_properties.cmake")
  file(WRITE "${file}" "if(${target}_TESTS)\n"
                       "  set_tests_properties(\${${target}_TESTS} PROPERTIES LABELS \"${arg_LABELS}\"${properties})\n"
                       "endif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${file}")
endfunction()
