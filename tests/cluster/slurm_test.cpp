// cluster tier: a real two-node Slurm cluster (tests/cluster/cluster.sh, started by CTest's
// cluster_up fixture). Every client command runs on the controller host through STATE/bin/in-ctl.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <regex>
#include <thread>

#include "tests/cluster/slurm_jobs.h"

using namespace std::chrono_literals;
using namespace rankserve::testing;

namespace {

// A running sbatch/serve.sbatch job (the built-in model) and the URL its rank 0 wrote.
struct ServeJob {
  std::string id, url;
};

// Submits sbatch/serve.sbatch with `flags` and waits (deadline) for rank 0 to write its URL, which it
// does once the server is ready. Cancels the job and stops the test when no URL comes.
ServeJob start_serve_job(const std::string& flags) {
  static int count = 0;
  const std::string url_file = fmt::format("{}/jobs/serve-url-{}-{}", kState, ::getpid(), ++count);
  std::remove(url_file.c_str());
  ServeJob job;
  job.id =
      sbatch(fmt::format("--export=ALL,RANKSERVE={} {}/sbatch/serve.sbatch {} "
                         "--http-port 0 --metrics-port -1 --grpc-port -1 --url-file {} --timeout 60",
                         kBin, kSource, flags, url_file));
  job.url = wait_for_job_url(job.id, url_file, 120s);
  return job;
}

}  // namespace

TEST_CASE("cluster: the test cluster has two idle nodes") {
  auto r = run(kInCtl + " sinfo -h -N -o '%N %t'", 30s);
  INFO(r.output);
  CHECK(r.output.find("n1 idle") != std::string::npos);
  CHECK(r.output.find("n2 idle") != std::string::npos);
}

TEST_CASE("cluster: srun --mpi=pmix on 2 nodes x 2 tasks passes the check with TP across nodes") {
  for (const char* layout : {"--tp 2", "--tp 4", "--tp 2 --pp 2"}) {
    auto r = run(fmt::format("{} srun -N2 --ntasks-per-node=2 --mpi=pmix {} check --nodes 2 --gpus 2 {} --timeout 60", kInCtl,
                             kBin, layout),
                 120s);
    INFO(layout << "\n" << r.output);
    CHECK(r.code == 0);
    CHECK(r.output.find("check passed: 4 ranks on 2 nodes") != std::string::npos);
    // Each rank advertises its node's own address, never loopback, when the job spans nodes.
    CHECK(std::regex_search(r.output, std::regex("\n2 +n2 +10\\.77\\.0\\.12 ")));
    CHECK(std::regex_search(r.output, std::regex("\n0 +n1 +10\\.77\\.0\\.11 ")));
    CHECK(r.output.find("127.0.") == std::string::npos);
  }
}

TEST_CASE("cluster: plain srun with Slurm variables only passes the check") {
  auto r =
      run(fmt::format("{} srun -N2 --ntasks-per-node=2 --mpi=none {} check --nodes 2 --gpus 2 --tp 2 --timeout 60", kInCtl, kBin),
          120s);
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("source slurm") != std::string::npos);
  CHECK(r.output.find("check passed: 4 ranks on 2 nodes") != std::string::npos);
}

TEST_CASE("cluster: every rank's topology line matches what Slurm tells that task") {
  auto ours = run(
      fmt::format("{} srun -N2 --ntasks-per-node=2 --mpi=pmix --label {} check --nodes 2 --gpus 2 --dry-run", kInCtl, kBin), 60s);
  auto slurm = run(fmt::format("{} srun -N2 --ntasks-per-node=2 --label bash -c 'echo slurm $SLURM_PROCID/$SLURM_NTASKS "
                               "local $SLURM_LOCALID node $SLURM_NODEID host $SLURMD_NODENAME'",
                               kInCtl),
                   60s);
  INFO(ours.output << "\n" << slurm.output);
  REQUIRE(ours.code == 0);
  REQUIRE(slurm.code == 0);
  std::map<int, std::string> expected, seen;
  std::smatch m;
  std::regex slurm_line("(\\d+): slurm (\\d+)/4 local (\\d+) node (\\d+) host (\\S+)");
  for (auto it = std::sregex_iterator(slurm.output.begin(), slurm.output.end(), slurm_line); it != std::sregex_iterator(); ++it) {
    expected[std::stoi((*it)[1])] =
        fmt::format("rank {}/4 local {}/2 node {}/2 host {}", (*it)[2].str(), (*it)[3].str(), (*it)[4].str(), (*it)[5].str());
  }
  std::regex our_line("(\\d+): (?:this process: )?(rank \\d+/4 local \\d+/2 node \\d+/2 host \\S+) source slurm");
  for (auto it = std::sregex_iterator(ours.output.begin(), ours.output.end(), our_line); it != std::sregex_iterator(); ++it) {
    seen[std::stoi((*it)[1])] = (*it)[2].str();
  }
  CHECK(expected.size() == 4);
  CHECK(seen == expected);
}

TEST_CASE("cluster: an sbatch job on 2 nodes x 2 tasks passes the check") {
  std::string id =
      sbatch_and_wait(fmt::format("--export=ALL,RANKSERVE={} {}/sbatch/check.sbatch --tp 2 --timeout 60", kBin, kSource));
  const std::string log = job_log(id);
  INFO(log);
  CHECK(log.find("check passed: 4 ranks on 2 nodes, tp 2 pp 1 dp 2") != std::string::npos);
  CHECK(log.find("--mpi=pmix") != std::string::npos);  // found in srun --mpi=list
  CHECK(job_exit_code(id) == "0:0");

  // A cluster without PMIx: --mpi=none, and rankserve reads Slurm's variables instead.
  id = sbatch_and_wait(fmt::format(
      "--export=ALL,RANKSERVE={},RANKSERVE_MPI=none {}/sbatch/check.sbatch --tp 2 --timeout 60 --log-all-ranks", kBin, kSource));
  const std::string plain = job_log(id);
  INFO(plain);
  CHECK(plain.find("--mpi=none") != std::string::npos);
  CHECK(plain.find("source slurm") != std::string::npos);
  CHECK(plain.find("check passed: 4 ranks on 2 nodes, tp 2 pp 1 dp 2") != std::string::npos);
  CHECK(job_exit_code(id) == "0:0");
}

TEST_CASE("cluster: a job whose tasks are not nodes x gpus exits with the topology code and says why in the log") {
  std::string id =
      sbatch_and_wait(fmt::format("--nodes=2 --ntasks-per-node=1 --export=ALL,RANKSERVE={},RANKSERVE_GPUS=2 "
                                  "{}/sbatch/check.sbatch --timeout 60",
                                  kBin, kSource));
  check_topology_failure(id);
}

TEST_CASE("cluster: mpirun inside an allocation finds its topology through PMIx") {
  std::string id = sbatch_and_wait(fmt::format(
      "--nodes=2 --ntasks-per-node=2 --wrap 'OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 4 {} "
      "check --nodes 2 --gpus 2 --tp 2 --timeout 60 --log-all-ranks'",
      kBin));
  const std::string log = job_log(id);
  INFO(log);
  CHECK(log.find("check passed: 4 ranks on 2 nodes") != std::string::npos);
  CHECK(log.find("rank 3/4 local 1/2 node 1/2 host n2 source openmpi") != std::string::npos);
  CHECK(log.find("rank 0/4 local 0/2 node 0/2 host n1 source openmpi") != std::string::npos);
  CHECK(job_exit_code(id) == "0:0");
}

TEST_CASE("cluster: a rank killed on one node makes every other rank exit within 10 s") {
  Process step(
      fmt::format("exec {} srun -N2 --ntasks-per-node=2 --mpi=pmix {} check --nodes 2 --gpus 2 --tp 2 "
                  "--check-duration 120 --timeout 60",
                  kInCtl, kBin));
  REQUIRE(step.wait_for_output("all 4 ranks arrived", 60s));
  // One rank on n2: a rankserve process whose network namespace is the node's.
  auto victim = run(
      "for p in $(ip netns pids rs-n2); do [ \"$(cat /proc/$p/comm 2>/dev/null)\" = rankserve ] && echo $p && break; done", 10s);
  REQUIRE_MESSAGE(!victim.output.empty(), victim.output);
  const auto killed_at = std::chrono::steady_clock::now();
  ::kill(std::stoi(victim.output), SIGKILL);
  auto code = step.wait_for(15s);
  INFO(step.output());
  REQUIRE(code.has_value());
  CHECK(*code != 0);
  CHECK(std::chrono::steady_clock::now() - killed_at < 11s);
  auto left = run(
      "for ns in rs-n1 rs-n2; do for p in $(ip netns pids $ns); do cat /proc/$p/comm 2>/dev/null; done; done | grep -c rankserve",
      10s);
  CHECK(left.output.find('0') == 0);
}

TEST_CASE("cluster: sbatch serve with TP across both nodes answers rankserve-client from the controller and drains on scancel") {
  const ServeJob job = start_serve_job("--tp 4 --shutdown-timeout 10");
  const std::string& url = job.url;
  const std::string& id = job.id;
  CHECK(url.rfind("http://n1:", 0) == 0);  // a name the other hosts resolve, not localhost
  // The built-in model (trained, NeMo, saved at TP 2) served at TP 4 across the nodes: a right answer.
  auto client =
      run(fmt::format("{} {} --server-url {} --init-timeout-s 60 --input '1 2 3 4 5' --output-length 5", kInCtl, kClientBin, url),
          120s);
  INFO(client.output);
  CHECK(client.code == 0);
  CHECK(client.output.find("output: ['1 2 3 4 5 6 7 8 9 10']") != std::string::npos);

  const std::string log = cancel_and_wait(id);
  INFO(log);
  CHECK(log.find("Server http url http://n1:") != std::string::npos);
  CHECK(log.find("draining") != std::string::npos);
  CHECK(log.find("server stopped") != std::string::npos);
}

TEST_CASE("cluster: rankserve-client in an interactive srun --pty session streams answers to typed prompts") {
  const ServeJob job = start_serve_job("--tp 2");  // the script's default shutdown timeout
  const std::string& url = job.url;
  const std::string& id = job.id;
  const Result session = interactive_client(
      fmt::format("{} srun -N1 -w n2 --pty {} --url {} --output-len 4", kInCtl, kClientBin, url), "Monday Tuesday");
  const std::string log = cancel_and_wait(id);
  // 3/4 of the cluster's KillWait (30 s, tests/cluster/cluster.sh), so a drain ends before Slurm's SIGKILL.
  CHECK_MESSAGE(log.find("shutdown timeout 22 s (KillWait 30 s)") != std::string::npos, log);
  CHECK_MESSAGE(log.find("shutdown-timeout = 22\n") != std::string::npos, log);  // what serve itself took
  const std::string& out = session.output;
  INFO(out);
  CHECK(session.code == 0);
  CHECK(out.find("type a prompt") != std::string::npos);  // it knew it was on a terminal
  // Typed-ahead input is echoed by the terminal around the client's "> "; the answer (the built-in
  // model's: the next weekdays) is streamed after it, before the prompt comes back.
  CHECK(num_prompts(out) >= 2);
  const size_t first = out.find("> ", out.find("type a prompt"));
  REQUIRE(first != std::string::npos);
  const size_t answer = out.find(" Wednesday Thursday", first);
  CHECK(answer != std::string::npos);
  CHECK(answer < out.find("> ", first + 2));
  CHECK(out.find("Not using a pseudo-terminal") == std::string::npos);
}
