#include "tests/cluster/slurm_jobs.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

namespace rankserve::testing {

using namespace std::chrono_literals;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string sbatch(const std::string& args) {
  auto submit = run(fmt::format("{} sbatch --parsable -o {}/jobs/%j.out {}", kInCtl, kState, args), 30s);
  REQUIRE_MESSAGE(submit.code == 0, submit.output);
  return submit.output.substr(0, submit.output.find_first_of(";\n"));
}

std::string job_log(const std::string& id) { return read_file(fmt::format("{}/jobs/{}.out", kState, id)); }

bool wait_until_left(const std::string& id, int tries) {
  for (int i = 0; i < tries; ++i) {
    auto queue = run(fmt::format("{} squeue -h -j {}", kInCtl, id), 10s);
    if (queue.code == 0 && queue.output.find(id) == std::string::npos) return true;
    std::this_thread::sleep_for(200ms);
  }
  return false;
}

std::string sbatch_and_wait(const std::string& args) {
  std::string id = sbatch(args);
  if (wait_until_left(id, 600)) return id;
  run(fmt::format("{} scancel {}", kInCtl, id), 10s);
  FAIL("job " << id << " still queued or running after 120 s");
  return id;
}

std::string cancel_and_wait(const std::string& id, const std::string& flags) {
  run(fmt::format("{} scancel {} {}", kInCtl, flags, id), 10s);
  const bool left = wait_until_left(id, 600);
  std::string log = job_log(id);
  REQUIRE_MESSAGE(left, "job " << id << " still in the queue 120 s after scancel " << flags << ":\n" << log);
  return log;
}

std::string job_exit_code(const std::string& id) {
  auto show = run(fmt::format("{} scontrol show job {}", kInCtl, id), 10s);
  std::smatch m;
  std::regex re(" ExitCode=(\\d+:\\d+)");
  return std::regex_search(show.output, m, re) ? m[1].str() : "unknown:\n" + show.output;
}

std::string check_topology_failure(const std::string& id) {
  std::string log = job_log(id);
  INFO(log);
  CHECK(log.find("topology: SLURM_STEP_NUM_TASKS=2 but --nodes 2 x --gpus 2 = 4 (submit with --ntasks-per-node=2)") !=
        std::string::npos);
  CHECK(log.find("exit code 3") != std::string::npos);
  CHECK(job_exit_code(id) == "3:0");
  return log;
}

std::string wait_for_job_url(const std::string& id, const std::string& path, std::chrono::seconds deadline) {
  std::string url = wait_for_file_word(path, deadline);
  if (url.empty()) run(fmt::format("{} scancel {}", kInCtl, id), 10s);
  REQUIRE_MESSAGE(!url.empty(), "job " << id << " wrote no URL to " << path << " within " << deadline.count() << " s:\n"
                                       << job_log(id));
  return url;
}

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (const char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

size_t num_prompts(const std::string& session_output) {
  const size_t start = session_output.find("type a prompt");
  size_t count = 0;
  if (start == std::string::npos) return 0;
  for (size_t at = session_output.find("> ", start); at != std::string::npos; at = session_output.find("> ", at + 2)) ++count;
  return count;
}

Result interactive_client(const std::string& command, const std::string& line) {
  static int count = 0;
  const std::string go = fmt::format("{}/jobs/go-{}-{}", kState, ::getpid(), ++count);
  std::remove(go.c_str());
  Process session(
      fmt::format("(printf '%s\\n' {}; while [ ! -e {} ]; do sleep 0.2; done; printf 'exit\\n') | script -qfec {} /dev/null",
                  shell_quote(line), go, shell_quote(command)));
  for (int i = 0; i < 900 && num_prompts(session.output()) < 2; ++i) std::this_thread::sleep_for(200ms);
  std::ofstream(go) << "go\n";
  const auto code = session.wait_for(60s);
  std::remove(go.c_str());
  std::string out = session.output();
  std::erase(out, '\r');
  return {code.value_or(-1), out};
}

}  // namespace rankserve::testing
