// dist tier: models from the Hugging Face hub, fetched by rankserve's own client from a local mirror
// (tests/support/hub_mirror.py: the hub's routes and headers, what HF_ENDPOINT is for) into a fresh
// HF_HUB_CACHE per case. The mirror's request log says what was downloaded.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "tests/support/reference_generation.h"

using namespace std::chrono_literals;
using namespace rankserve::testing;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

const std::string kBin = RANKSERVE_BIN;
const std::string kMirrorScript = std::string(RANKSERVE_SOURCE_DIR) + "/tests/support/hub_mirror.py";
const std::string kGenerate = "generate --prompt-ids 5,17,300 --max-tokens 4 --json --timeout 60";

fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / fmt::format("rankserve-hub-{}-{}", name, ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// The repos the mirror serves, made once per test process: tiny-org/gpt2-tiny (config.json,
// model.safetensors, vocab.json, merges.txt) and tiny-org/nemo-tiny (a .nemo saved at TP 2, and a
// README.md that a rank does not need).
struct Repos {
  fs::path root, gpt2, nemo;
  size_t gpt2_files = 0;
};
const Repos& repos() {
  static const Repos made = [] {
    Repos r;
    r.root = scratch("repos");
    r.gpt2 = r.root / "tiny-org" / "gpt2-tiny";
    r.nemo = r.root / "tiny-org" / "nemo-tiny";
    fs::create_directories(r.gpt2);
    make_text_checkpoint("gpt2", r.gpt2.string());
    const fs::path unpacked = scratch("nemo-unpacked");
    reference(fmt::format("make-nemo {} {} 2", r.gpt2.string(), unpacked.string()));
    fs::create_directories(r.nemo);
    reference(fmt::format("pack-nemo {} {}/tiny.nemo tar", unpacked.string(), r.nemo.string()));
    std::ofstream(r.nemo / "README.md") << "# a tiny NeMo model\n";
    fs::remove_all(unpacked);
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(r.gpt2)) ++r.gpt2_files;
    return r;
  }();
  return made;
}

// The mirror as a daemon: ready once it has written its URL (deadline-bounded), killed when this goes away.
class Mirror {
 public:
  explicit Mirror(const std::string& faults = "") : dir_(scratch("mirror")) {
    process_ = std::make_unique<Process>(fmt::format("/usr/bin/python3 {} --root {} --port-file {}/url --log {}/requests {}",
                                                     kMirrorScript, repos().root.string(), dir_.string(), dir_.string(), faults));
    url_ = wait_for_file_word((dir_ / "url").string(), 30s);
    REQUIRE_MESSAGE(!url_.empty(), "the mirror did not start:\n" << process_->output());
  }
  ~Mirror() {
    process_.reset();
    fs::remove_all(dir_);
  }
  Mirror(const Mirror&) = delete;
  Mirror& operator=(const Mirror&) = delete;

  const std::string& url() const { return url_; }

  // Every request so far, "METHOD PATH RANGE" each.
  std::vector<std::string> requests() const {
    std::ifstream in(dir_ / "requests");
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  // Requests for file contents (the hub's resolve route, not the CDN it redirects to) since request `from`.
  size_t file_requests(size_t from = 0) const {
    const auto all = requests();
    size_t n = 0;
    for (size_t i = from; i < all.size(); ++i) n += all[i].find("/resolve/") != std::string::npos;
    return n;
  }

 private:
  fs::path dir_;
  std::unique_ptr<Process> process_;
  std::string url_;
};

std::string hub_env(const std::string& endpoint, const fs::path& cache) {
  return fmt::format("env -u HF_HUB_OFFLINE -u HF_TOKEN -u HF_HOME HF_ENDPOINT={} HF_HUB_CACHE={}", endpoint, cache.string());
}

Result fetch_and_generate(const std::string& env, const std::string& args) {
  return run(fmt::format("{} {} {} {}", env, kBin, kGenerate, args), 3min);
}

// What generate gives for the local copy of a repo: the reference the downloaded model must match.
Output local_output(const std::string& path, const std::string& flags) {
  const Result r = run(fmt::format("{} {} --model-path {} {}", kBin, kGenerate, path, flags), 3min);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  return parse_output(r.output);
}

void check_same(const Result& got, const Output& want) {
  REQUIRE_MESSAGE(got.code == 0, got.output);
  check_close(parse_output(got.output), want, 1e-6);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

fs::path gpt2_cache_dir(const fs::path& cache) { return cache / "models--tiny-org--gpt2-tiny"; }

}  // namespace

TEST_CASE(
    "hub: an ORG/NAME is downloaded into the Hugging Face cache layout and generates as its local copy does, and a "
    "second run downloads nothing") {
  const Mirror mirror;
  const fs::path cache = scratch("cache-download");
  const Output want = local_output(repos().gpt2.string(), "");
  const Result first = fetch_and_generate(hub_env(mirror.url(), cache), "--model-path tiny-org/gpt2-tiny");
  check_same(first, want);
  CHECK(first.output.find("GB/s") != std::string::npos);
  CHECK(mirror.file_requests() == repos().gpt2_files);

  // huggingface_hub's layout: refs/main names the commit; snapshots/<commit>/<file> -> ../../blobs/<etag>
  const fs::path repo = gpt2_cache_dir(cache);
  const std::string commit = read_text(repo / "refs" / "main");
  REQUIRE(commit.size() == 40);
  size_t linked = 0;
  for (const auto& entry : fs::directory_iterator(repo / "snapshots" / commit)) {
    INFO(entry.path());
    REQUIRE(fs::is_symlink(entry.path()));
    const fs::path target = fs::read_symlink(entry.path());
    CHECK(target.parent_path() == fs::path("../../blobs"));
    CHECK(read_text(entry.path()) == read_text(repos().gpt2 / entry.path().filename()));
    ++linked;
  }
  CHECK(linked == repos().gpt2_files);
  const Result sha = run(fmt::format("sha256sum {}", (repos().gpt2 / "model.safetensors").string()), 30s);
  CHECK(fs::read_symlink(repo / "snapshots" / commit / "model.safetensors").filename() == sha.output.substr(0, 64));

  const size_t before = mirror.requests().size();
  check_same(fetch_and_generate(hub_env(mirror.url(), cache), "--model-path tiny-org/gpt2-tiny@main"), want);
  CHECK(mirror.requests().size() > before);  // the listing was asked for ...
  CHECK(mirror.file_requests(before) == 0);  // ... and no file

  // The NeMo example's spelling, a .nemo repo: only the .nemo is fetched, and its saved TP 2 is the layout.
  const Output nemo_want = local_output((repos().nemo / "tiny.nemo").string(), "--gpus 2");
  const size_t before_nemo = mirror.requests().size();
  check_same(fetch_and_generate(hub_env(mirror.url(), cache), "--gpus 2 --model-repo-id tiny-org/nemo-tiny"), nemo_want);
  CHECK(mirror.file_requests(before_nemo) == 1);
  for (const std::string& line : mirror.requests()) CHECK(line.find("README.md") == std::string::npos);
  fs::remove_all(cache);
}

TEST_CASE("hub: plan fetches only a hub model's config and plans as for its local copy, and serve's fetch adds the rest") {
  const Mirror mirror;
  const fs::path cache = scratch("cache-plan");
  const std::string flags = "--nodes 1 --gpus 2 --gpu-memory 16GB --json";
  const auto plan = [&](const std::string& env, const std::string& model) {
    const Result r = run(fmt::format("{} {} plan {} --model-path {}", env, kBin, flags, model), 2min);
    REQUIRE_MESSAGE(r.code == 0, r.output);
    const size_t at = r.output.find("{\"");
    REQUIRE_MESSAGE(at != std::string::npos, r.output);
    return json::parse(r.output.substr(at, r.output.find('\n', at) - at)).as_object();
  };
  // The same plan, naming the model as it was given: the sbatch line serves the hub id.
  const auto same_plan = [](json::object hub, json::object local, const std::string& id, const std::string& path) {
    CHECK(hub.at("model_path").as_string() == id);
    CHECK(std::string(hub.at("submit").as_string()).find("--model-path " + id + " ") != std::string::npos);
    CHECK(std::string(local.at("submit").as_string()).find(path) != std::string::npos);
    for (auto* o : {&hub, &local}) {
      o->erase("model_path");
      o->erase("submit");
    }
    CHECK(json::serialize(hub) == json::serialize(local));
  };
  same_plan(plan(hub_env(mirror.url(), cache), "tiny-org/gpt2-tiny"), plan("", repos().gpt2.string()), "tiny-org/gpt2-tiny",
            repos().gpt2.string());
  REQUIRE(mirror.file_requests() == 1);
  CHECK(mirror.requests().back().find("/resolve/") != std::string::npos);
  CHECK(mirror.requests().back().find("config.json") != std::string::npos);
  CHECK(!fs::exists(gpt2_cache_dir(cache) / "refs" / "main"));  // a config is not a model: no ref yet

  check_same(fetch_and_generate(hub_env(mirror.url(), cache), "--model-path tiny-org/gpt2-tiny"),
             local_output(repos().gpt2.string(), ""));
  CHECK(mirror.file_requests() == repos().gpt2_files);  // config.json was not fetched twice
  CHECK(fs::exists(gpt2_cache_dir(cache) / "refs" / "main"));

  // --download-dir (vLLM's flag) is the cache instead of HF_HUB_CACHE.
  const fs::path other = scratch("cache-download-dir");
  REQUIRE(
      fetch_and_generate(hub_env(mirror.url(), cache), "--model-path tiny-org/gpt2-tiny --download-dir " + other.string()).code ==
      0);
  CHECK(fs::exists(gpt2_cache_dir(other) / "refs" / "main"));
  fs::remove_all(other);

  // A .nemo holds its config: plan fetches the .nemo.
  const size_t before = mirror.file_requests();
  const std::string nemo = (repos().nemo / "tiny.nemo").string();
  same_plan(plan(hub_env(mirror.url(), cache), "tiny-org/nemo-tiny"), plan("", nemo), "tiny-org/nemo-tiny", nemo);
  CHECK(mirror.file_requests() == before + 1);
  fs::remove_all(cache);
}

TEST_CASE("hub: a connection cut in the middle of a file is resumed with a Range request") {
  const Mirror mirror("--cut-once model.safetensors");
  const fs::path cache = scratch("cache-resume");
  const Result r = fetch_and_generate(hub_env(mirror.url(), cache), "--model-path tiny-org/gpt2-tiny");
  check_same(r, local_output(repos().gpt2.string(), ""));
  CHECK(r.output.find("model.safetensors: resuming at") != std::string::npos);
  bool ranged = false;
  for (const std::string& line : mirror.requests())
    ranged |= line.find("/cdn/") != std::string::npos && line.find(" bytes=") != std::string::npos;
  CHECK(ranged);
  fs::remove_all(cache);
}

TEST_CASE("hub: a missing repo, revision or file is named, a private repo asks for HF_TOKEN, a corrupted file is refused") {
  const fs::path cache = scratch("cache-errors");
  {
    const Mirror mirror;
    const Result repo = fetch_and_generate(hub_env(mirror.url(), cache), "--model-path tiny-org/absent");
    CHECK_MESSAGE(repo.code == 5, repo.output);
    CHECK(repo.output.find("no model repo tiny-org/absent") != std::string::npos);
    // A bad flag is found before anything is downloaded.
    const size_t before = mirror.requests().size();
    const Result flag = fetch_and_generate(hub_env(mirror.url(), cache), "--model-path tiny-org/gpt2-tiny --dtype fp64");
    CHECK_MESSAGE(flag.code == 2, flag.output);
    CHECK(flag.output.find("--dtype=fp64") != std::string::npos);
    CHECK(mirror.requests().size() == before);
    const Result revision = fetch_and_generate(hub_env(mirror.url(), cache), "--model-path tiny-org/gpt2-tiny@v9");
    CHECK_MESSAGE(revision.code == 5, revision.output);
    CHECK(revision.output.find("has no revision 'v9'") != std::string::npos);
  }
  {
    const Mirror mirror("--hide merges.txt");
    const Result file = fetch_and_generate(hub_env(mirror.url(), cache), "--model-path tiny-org/gpt2-tiny");
    CHECK_MESSAGE(file.code == 5, file.output);
    CHECK(file.output.find("has no file merges.txt") != std::string::npos);
    CHECK_FALSE(fs::exists(gpt2_cache_dir(cache) / "refs" / "main"));  // an incomplete snapshot has no ref
  }
  {
    const Mirror mirror("--token s3cret");
    const Result without = fetch_and_generate(hub_env(mirror.url(), cache), "--model-path tiny-org/gpt2-tiny");
    CHECK_MESSAGE(without.code == 5, without.output);
    CHECK(without.output.find("needs HF_TOKEN") != std::string::npos);
    const Result with = fetch_and_generate(hub_env(mirror.url(), cache) + " HF_TOKEN=s3cret", "--model-path tiny-org/gpt2-tiny");
    CHECK_MESSAGE(with.code == 0, with.output);
  }
  fs::remove_all(cache);
  fs::create_directories(cache);
  {
    const Mirror mirror("--corrupt model.safetensors");
    const Result corrupt = fetch_and_generate(hub_env(mirror.url(), cache), "--model-path tiny-org/gpt2-tiny");
    CHECK_MESSAGE(corrupt.code == 5, corrupt.output);
    CHECK(corrupt.output.find("model.safetensors of tiny-org/gpt2-tiny is corrupt: its sha256 is") != std::string::npos);
    for (const auto& blob : fs::directory_iterator(gpt2_cache_dir(cache) / "blobs")) {
      CHECK(blob.path().extension() != ".incomplete");
      CHECK(fs::file_size(blob.path()) != fs::file_size(repos().gpt2 / "model.safetensors"));
    }
  }
  fs::remove_all(cache);
}

TEST_CASE("hub: HF_HUB_OFFLINE uses the cache only, and without a network the cache serves, or the error says what to download") {
  const fs::path cache = scratch("cache-offline");
  const std::string offline = hub_env("http://127.0.0.1:9", cache) + " HF_HUB_OFFLINE=1";
  const Result empty = fetch_and_generate(offline, "--model-path tiny-org/gpt2-tiny");
  CHECK_MESSAGE(empty.code == 5, empty.output);
  CHECK(empty.output.find("HF_HUB_OFFLINE=1") != std::string::npos);
  CHECK(empty.output.find("refs/main does not exist") != std::string::npos);
  CHECK(empty.output.find("huggingface-cli download tiny-org/gpt2-tiny") != std::string::npos);

  // No network and nothing cached: what to download and where it goes.
  const Result unreachable = fetch_and_generate(hub_env("http://127.0.0.1:9", cache), "--model-path tiny-org/gpt2-tiny");
  CHECK_MESSAGE(unreachable.code == 5, unreachable.output);
  CHECK(unreachable.output.find("cannot fetch tiny-org/gpt2-tiny@main from http://127.0.0.1:9") != std::string::npos);
  CHECK(unreachable.output.find("huggingface-cli download tiny-org/gpt2-tiny") != std::string::npos);

  {
    const Mirror mirror;
    REQUIRE(fetch_and_generate(hub_env(mirror.url(), cache), "--model-path tiny-org/gpt2-tiny").code == 0);
  }  // the mirror is gone: the cache alone
  const Output want = local_output(repos().gpt2.string(), "");
  check_same(fetch_and_generate(offline, "--model-path tiny-org/gpt2-tiny"), want);
  const Result fallback = fetch_and_generate(hub_env("http://127.0.0.1:9", cache), "--model-path tiny-org/gpt2-tiny");
  check_same(fallback, want);
  CHECK(fallback.output.find("using the cached tiny-org/gpt2-tiny@main") != std::string::npos);
  fs::remove_all(cache);
}

TEST_CASE("hub: the ranks of one node, and two jobs on one host, download each file once") {
  const Mirror mirror("--delay 0.5");  // slow files: the two jobs' downloads would overlap without the lock
  const Output want = local_output(repos().gpt2.string(), "--gpus 2 --tp 2");
  const fs::path ranks_cache = scratch("cache-ranks");
  check_same(fetch_and_generate(hub_env(mirror.url(), ranks_cache), "--gpus 2 --tp 2 --model-path tiny-org/gpt2-tiny"), want);
  CHECK(mirror.file_requests() == repos().gpt2_files);
  fs::remove_all(ranks_cache);

  const fs::path jobs_cache = scratch("cache-jobs");
  const size_t before = mirror.requests().size();
  const std::string one =
      fmt::format("{} {} {} --model-path tiny-org/gpt2-tiny", hub_env(mirror.url(), jobs_cache), kBin, kGenerate);
  const Result both = run(
      fmt::format("({0}) > {1}/a.out 2>&1 & a=$!; ({0}) > {1}/b.out 2>&1 & b=$!; wait $a && wait $b", one, jobs_cache.string()),
      3min);
  INFO(read_text(jobs_cache / "a.out") << read_text(jobs_cache / "b.out"));
  CHECK(both.code == 0);
  CHECK(mirror.file_requests(before) == repos().gpt2_files);
  fs::remove_all(jobs_cache);
}

TEST_CASE("hub: an https endpoint is spoken with TLS, its certificate checked (SSL_CERT_FILE trusts a private one)") {
  const fs::path tls = scratch("tls");
  const Result made = run(fmt::format("cd {} && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 "
                                      "-subj /CN=localhost -addext subjectAltName=DNS:localhost",
                                      tls.string()),
                          1min);
  REQUIRE_MESSAGE(made.code == 0, made.output);
  const Mirror mirror(fmt::format("--tls-cert {0}/cert.pem --tls-key {0}/key.pem", tls.string()));
  REQUIRE(mirror.url().rfind("https://localhost:", 0) == 0);
  const fs::path cache = scratch("cache-tls");
  const Result untrusted =
      fetch_and_generate(hub_env(mirror.url(), cache) + " SSL_CERT_FILE=/dev/null", "--model-path tiny-org/gpt2-tiny");
  CHECK_MESSAGE(untrusted.code == 5, untrusted.output);
  CHECK(untrusted.output.find("certificate verify failed") != std::string::npos);
  CHECK(mirror.file_requests() == 0);
  const std::string trusted = fmt::format("{} SSL_CERT_FILE={}/cert.pem", hub_env(mirror.url(), cache), tls.string());
  check_same(fetch_and_generate(trusted, "--model-path tiny-org/gpt2-tiny"), local_output(repos().gpt2.string(), ""));
  CHECK(mirror.file_requests() == repos().gpt2_files);
  fs::remove_all(cache);
  fs::remove_all(tls);
}
