// cluster tier, in containers: rankserve from the image pyxis/build-image.sh made (the cluster_image fixture), started
// by pyxis + enroot (built from ../shared by the cluster_pyxis_build fixture, loaded by cluster_up) on the two-node
// cluster, through the sbatch scripts in the examples' form. Every client command runs on the controller host.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <regex>

#include "tests/cluster/slurm_jobs.h"
#include "tests/support/tiny_checkpoint.h"

using namespace std::chrono_literals;
using namespace rankserve::testing;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

const std::string kImage = RANKSERVE_CLUSTER_IMAGE;
// enroot's nvidia hook would need nvidia-container-cli, absent here: no GPU is handed to a container, whatever the
// environment says (the image itself sets no NVIDIA_* variable).
const std::string kNoNvidia = "NVIDIA_VISIBLE_DEVICES=void";

// A case's folder under STATE/jobs: the working directory of its jobs, which mount it at its own path (as the
// examples mount $PWD). Removed with the case.
struct CaseDir {
  fs::path path;
  explicit CaseDir(const std::string& name) : path(fs::path(kState) / "jobs" / fmt::format("{}-{}", name, ::getpid())) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~CaseDir() { fs::remove_all(path); }
  CaseDir(const CaseDir&) = delete;
  CaseDir& operator=(const CaseDir&) = delete;
  std::string str() const { return path.string(); }
};

// `srun` options of a new container with `dir` mounted and as its workdir, on node `node`.
std::string new_container(const std::string& dir, const std::string& node) {
  return fmt::format(
      "srun -N1 -n1 -w {} --export=ALL,{} --container-image={} --container-mounts={}:{} --container-workdir={} "
      "--no-container-mount-home",
      node, kNoNvidia, kImage, dir, dir, dir);
}

// The containers enroot holds on both nodes, one "<node>: <name>" a line (nothing when none is left).
std::string containers_on_nodes() {
  auto r = run(fmt::format("{} srun -N2 -n2 --mpi=none bash -c 'enroot list | sed \"s/^/$(hostname): /\"'", kInCtl), 60s);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  return r.output;
}

// What the host's rankserve generates greedily (the expected answer of a served model): the prompt and its continuation.
std::string generated_text(const std::string& model, const std::string& prompt, int tokens, const std::string& layout) {
  auto r = run(fmt::format("{} generate {} --model-path {} --prompt {} --max-tokens {} --json --log-level warn --timeout 60",
                           kBin, layout, model, shell_quote(prompt), tokens),
               180s);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  return std::string(json::parse(r.output.substr(r.output.rfind("{\""))).at("text").as_string());
}

// An interactive session (interactive_client) that exited 0 and answered its first prompt with `answer`,
// before the next prompt.
void check_first_answer(const Result& session, const std::string& answer) {
  INFO(session.output);
  CHECK(session.code == 0);
  const size_t first = session.output.find("> ", session.output.find("type a prompt"));
  REQUIRE(first != std::string::npos);
  const size_t at = session.output.find(answer, first);
  CHECK(at != std::string::npos);
  CHECK(at < session.output.find("> ", first + 2));
}

// Submits `script` from `dir` with the image and the flags; returns the job id and waits (deadline) for the URL its
// rank 0 writes to `url_name` in `dir` once every rank is ready.
std::pair<std::string, std::string> start_server(const CaseDir& dir, const std::string& sbatch_flags, const std::string& script,
                                                 const std::string& url_name, const std::string& serve_flags) {
  const std::string id =
      sbatch(fmt::format("--chdir={} {} --export=ALL,{},RANKSERVE_IMAGE={} {}/sbatch/{} {} --http-port 0 "
                         "--metrics-port -1 --grpc-port -1 --timeout 120",
                         dir.str(), sbatch_flags, kNoNvidia, kImage, kSource, script, serve_flags));
  const std::string url_file = (dir.path / fmt::format(fmt::runtime(url_name), id)).string();
  return {id, wait_for_job_url(id, url_file, 300s)};
}

// Each "enroot remove -f <container>" the script's cleanup step ran (xargs -t), one per node.
size_t num_removed(const std::string& log, const std::string& container) {
  const std::regex removed("\\d+: enroot remove -f " + container + "\n");
  return static_cast<size_t>(std::distance(std::sregex_iterator(log.begin(), log.end(), removed), std::sregex_iterator()));
}

}  // namespace

TEST_CASE("pyxis: rankserve check passes in containers across both nodes under --mpi=pmix, by srun and by check.sbatch") {
  auto help = run(kInCtl + " srun --help", 30s);
  CHECK(help.output.find("--container-image") != std::string::npos);  // pyxis is loaded

  // rankserve is the image's: no rankserve is on the host's PATH.
  auto r = run(fmt::format("{} srun -N2 --ntasks-per-node=2 --mpi=pmix --export=ALL,{} --container-image={} "
                           "--no-container-mount-home rankserve check --nodes 2 --gpus 2 --tp 2 --timeout 120",
                           kInCtl, kNoNvidia, kImage),
               300s);
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("check passed: 4 ranks on 2 nodes") != std::string::npos);
  CHECK(std::regex_search(r.output, std::regex("\n2 +n2 +10\\.77\\.0\\.12 ")));  // the node's own address inside
  CHECK(r.output.find("PMIX ERROR") == std::string::npos);

  const CaseDir dir("pyxis-check");
  const std::string id =
      sbatch_and_wait(fmt::format("--chdir={} --export=ALL,{},RANKSERVE_IMAGE={} {}/sbatch/check.sbatch --tp 2 "
                                  "--timeout 120",
                                  dir.str(), kNoNvidia, kImage, kSource));
  const std::string log = job_log(id);
  INFO(log);
  CHECK(log.find("--mpi=pmix, image " + kImage) != std::string::npos);
  CHECK(log.find("check passed: 4 ranks on 2 nodes, tp 2 pp 1 dp 2") != std::string::npos);
  CHECK(job_exit_code(id) == "0:0");
}

TEST_CASE(
    "pyxis: nemo_gpt.sbatch serves a .nemo at TP 2 across both nodes to clients in a new container and in its own (a pty), "
    "drains on scancel --signal=TERM and removes its containers") {
  const CaseDir dir("pyxis-nemo");
  // The built-in model, a NeMo Megatron GPT saved at TP 2 and trained to count (a clear answer, never a near-tie of
  // random weights), as a user's .nemo in the job's folder.
  fs::copy_file(fs::path(kBin).parent_path().parent_path() / "share/rankserve/builtin.nemo", dir.path / "megatron_gpt.nemo");
  const auto [id, url] = start_server(dir, "--nodes=2 --ntasks-per-node=1 --gpus-per-node=1", "nemo_gpt.sbatch",
                                      "slurm_job-{}.url", "--model-path " + dir.str() + "/megatron_gpt.nemo");
  CHECK(url.rfind("http://n1:", 0) == 0);

  auto fresh = run(fmt::format("{} {} rankserve-client --url {} --init-timeout-s 60 --prompts '1 2 3 4 5' --output-len 5", kInCtl,
                               new_container(dir.str(), "n2"), url),
                   180s);
  INFO(fresh.output);
  CHECK(fresh.code == 0);
  CHECK(fresh.output.find(std::string(32, '=') + "\n1 2 3 4 5 6 7 8 9 10") != std::string::npos);

  const std::string name = "nemo_megatron_gpt-" + id;
  // Joining a running container keeps its mounts and workdir: no --container-mounts here.
  const Result joined = interactive_client(fmt::format("{} srun --jobid {} --overlap -w n1 -N1 -n1 --pty --container-name={} "
                                                       "rankserve-client --url {} --output-len 3",
                                                       kInCtl, id, name, url),
                                           "Monday Tuesday");
  check_first_answer(joined, " Wednesday Thursday Friday");

  const std::string log = cancel_and_wait(id, "--signal=TERM");
  INFO(log);
  CHECK(log.find("draining") != std::string::npos);
  CHECK(log.find("server stopped") != std::string::npos);
  CHECK(num_removed(log, "pyxis_" + id + "_" + name) == 2);  // the script's own cleanup, on both nodes
  CHECK(job_exit_code(id) == "0:0");
  CHECK(containers_on_nodes() == "");
}

TEST_CASE(
    "pyxis: opt.sbatch serves OPT with one server per node (--rank, --head-url), answers a new container and one joining "
    "its own (a pty), and a plain scancel drains and leaves no container") {
  const CaseDir dir("pyxis-opt");
  const std::string model = dir.str() + "/opt";
  fs::create_directories(model);
  make_text_checkpoint("opt", model);
  // One CPU thread per rank on both sides: the same arithmetic, so the same greedy tokens even from random weights.
  const std::string expected = generated_text(model, "The capital of Poland is", 4, "--gpus 2 --tp 2 --cpu-threads 1");
  const auto [id, url] = start_server(dir, "--nodes=2 --ntasks-per-node=1 --gpus-per-node=1", "opt.sbatch", "slurm_job-{}.url",
                                      "--model-path " + model + " --tp 2 --cpu-threads 1");
  CHECK(url.rfind("http://n1:", 0) == 0);
  auto client = run(fmt::format("{} {} rankserve-client --server-url {} --init-timeout-s 60 --input 'The capital of Poland is' "
                                "--output-length 4",
                                kInCtl, new_container(dir.str(), "n2"), url),
                    180s);
  INFO(client.output);
  CHECK(client.code == 0);
  CHECK(client.output.find("output: ['" + expected + "']") != std::string::npos);

  // Joining the server's container on n1 as the OPT example's interactive client does, through a real pty.
  const Result joined = interactive_client(fmt::format("{} srun --jobid {} --overlap -w n1 -N1 -n1 --pty --container-name=opt-{} "
                                                       "rankserve-client --server-url {} --output-length 4",
                                                       kInCtl, id, id, url),
                                           "The capital of Poland is");
  // The stream prints the continuation only; the OPT contract's output above holds the prompt too.
  const std::string prompt = "The capital of Poland is";
  const std::string continuation = expected.rfind(prompt, 0) == 0 ? expected.substr(prompt.size()) : expected;
  REQUIRE(!continuation.empty());
  check_first_answer(joined, continuation);

  const std::string log = cancel_and_wait(id);
  INFO(log);
  CHECK(std::regex_search(log, std::regex("\n1 +n2 +10\\.77\\.0\\.12 ")));  // rank 1 spawned by n2's server
  CHECK(log.find("draining") != std::string::npos);
  CHECK(log.find("server stopped") != std::string::npos);
  CHECK(containers_on_nodes() == "");  // pyxis' epilog (container_scope=job): a cancelled job starts no cleanup step
}

TEST_CASE(
    "pyxis: serve.sbatch with RANKSERVE_IMAGE serves the image's built-in model at TP 2 x DP 2 and removes its containers") {
  const CaseDir dir("pyxis-serve");
  const auto [id, url] = start_server(dir, "", "serve.sbatch", "rankserve-{}.url", "--tp 2");
  auto client = run(fmt::format("{} {} rankserve-client --url {} --init-timeout-s 60 --prompts '1 2 3 4 5' --output-len 5",
                                kInCtl, new_container(dir.str(), "n1"), url),
                    180s);
  INFO(client.output);
  CHECK(client.code == 0);
  CHECK(client.output.find("1 2 3 4 5 6 7 8 9 10") != std::string::npos);
  const std::string log = cancel_and_wait(id, "--signal=TERM");
  INFO(log);
  CHECK(log.find("served as 'GPT': 2 copies") != std::string::npos);
  CHECK(log.find("draining") != std::string::npos);  // scancel --signal=TERM drains
  CHECK(num_removed(log, "pyxis_" + id + "_rankserve-" + id) == 2);
  CHECK(job_exit_code(id) == "0:0");
  CHECK(containers_on_nodes() == "");
}

TEST_CASE(
    "pyxis: a container job whose tasks are not nodes x GPUs exits with the topology code, says why in its log and "
    "removes its containers") {
  const CaseDir dir("pyxis-topology");
  const std::string id =
      sbatch_and_wait(fmt::format("--chdir={} --nodes=2 --ntasks-per-node=1 --gpus-per-node=2 "
                                  "--export=ALL,{},RANKSERVE_IMAGE={} {}/sbatch/nemo_gpt.sbatch --timeout 60",
                                  dir.str(), kNoNvidia, kImage, kSource));
  const std::string log = check_topology_failure(id);
  INFO(log);
  CHECK(num_removed(log, "pyxis_" + id + "_nemo_megatron_gpt-" + id) == 2);
  CHECK(containers_on_nodes() == "");
}

TEST_CASE("pyxis: the scripts refuse an image name pyxis would take for a registry image, naming the fix") {
  const CaseDir dir("pyxis-image-rule");
  const std::string id = sbatch_and_wait(
      fmt::format("--chdir={} --export=ALL,RANKSERVE_IMAGE=rankserve.sqsh {}/sbatch/serve.sbatch", dir.str(), kSource));
  const std::string log = job_log(id);
  INFO(log);
  CHECK(log.find("RANKSERVE_IMAGE=rankserve.sqsh would be a registry image to pyxis (a path starts with / or ./): use "
                 "./rankserve.sqsh") != std::string::npos);
  CHECK(job_exit_code(id) == "2:0");
}
