# rankserve_warnings: the warning flags every project target uses (link it PRIVATE).
add_library(rankserve_warnings INTERFACE)
target_compile_options(rankserve_warnings INTERFACE -Wall -Wextra -Wpedantic -Wno-unused-parameter)
