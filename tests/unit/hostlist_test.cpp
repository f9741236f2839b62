#include "launcher/hostlist.h"

#include <doctest/doctest.h>

#include "core/error.h"

using namespace rankserve;
using namespace rankserve::launcher;

TEST_CASE("expands a hostlist with zero-padded ranges, single numbers and plain names") {
  auto hosts = expand_hostlist("gpu-a[01-04,07],gpu-b12", "SLURM_STEP_NODELIST");
  CHECK(hosts == std::vector<std::string>{"gpu-a01", "gpu-a02", "gpu-a03", "gpu-a04", "gpu-a07", "gpu-b12"});
}

TEST_CASE("expands several bracket groups in one name and a suffix after the brackets") {
  CHECK(expand_hostlist("r[1-2]-n[08-09]", "X") == std::vector<std::string>{"r1-n08", "r1-n09", "r2-n08", "r2-n09"});
  CHECK(expand_hostlist("n[1-2].ib", "X") == std::vector<std::string>{"n1.ib", "n2.ib"});
  CHECK(expand_hostlist("n[9-11]", "X") == std::vector<std::string>{"n9", "n10", "n11"});
  CHECK(expand_hostlist("localhost", "X") == std::vector<std::string>{"localhost"});
}

TEST_CASE("rejects a malformed hostlist naming the variable") {
  for (const char* bad : {"n[1-2", "n1-2]", "n[a-b]", "n[3-1]", "", "n1,,n2"}) {
    try {
      expand_hostlist(bad, "SLURM_JOB_NODELIST");
      FAIL("accepted " << bad);
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::usage);
      CHECK(std::string(e.what()).find("SLURM_JOB_NODELIST") != std::string::npos);
    }
  }
}

TEST_CASE("expands Slurm's compressed tasks-per-node lists") {
  CHECK(expand_tasks_per_node("2(x3),1", "T") == std::vector<int>{2, 2, 2, 1});
  CHECK(expand_tasks_per_node("4", "T") == std::vector<int>{4});
  CHECK(expand_tasks_per_node("3,1", "T") == std::vector<int>{3, 1});
  CHECK(expand_tasks_per_node("2(x2)", "T") == std::vector<int>{2, 2});
}

TEST_CASE("rejects malformed tasks-per-node lists naming the variable") {
  for (const char* bad : {"2(x)", "x2", "2(x3", "0", "2,,1", ""}) {
    CHECK_THROWS_WITH_AS(expand_tasks_per_node(bad, "SLURM_STEP_TASKS_PER_NODE"), doctest::Contains("SLURM_STEP_TASKS_PER_NODE"),
                         Error);
  }
}
