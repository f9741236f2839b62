// unit tier: hub ids, the hub's variables, the cache layout and the choice of files (launcher/hub_cache.h).
#include "launcher/hub_cache.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

using namespace rankserve::launcher;
namespace fs = std::filesystem;

TEST_CASE("a hub id is ORG/NAME[@REVISION] that is not a local path") {
  const auto plain = parse_hub_id("nvidia/nemo-megatron-gpt-1.3B");
  REQUIRE(plain);
  CHECK(plain->repo == "nvidia/nemo-megatron-gpt-1.3B");
  CHECK(plain->revision == "main");
  const auto pinned = parse_hub_id("facebook/opt-125m@refs/pr/1");
  REQUIRE(pinned);
  CHECK(pinned->repo == "facebook/opt-125m");
  CHECK(pinned->revision == "refs/pr/1");
  for (const char* not_hub : {"random/125M", "gpt2", "/abs/path", "./a/b", "a/b/c", "a/../b", "org/name@", "org/na me"}) {
    INFO(not_hub);
    CHECK_FALSE(parse_hub_id(not_hub));
  }
  const fs::path local = fs::temp_directory_path() / "rankserve-hub-id-test";
  fs::create_directories(local / "org" / "name");
  const fs::path cwd = fs::current_path();
  fs::current_path(local);
  CHECK_FALSE(parse_hub_id("org/name"));  // an existing folder is a folder
  fs::current_path(cwd);
  fs::remove_all(local);
}

TEST_CASE("the hub's variables: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub, HF_ENDPOINT, HF_HUB_OFFLINE") {
  CHECK(hub_settings_from_env({{"HOME", "/home/u"}}).cache_dir == "/home/u/.cache/huggingface/hub");
  CHECK(hub_settings_from_env({{"HOME", "/home/u"}, {"HF_HOME", "/hf"}}).cache_dir == "/hf/hub");
  CHECK(hub_settings_from_env({{"HF_HOME", "/hf"}, {"HF_HUB_CACHE", "/c"}}).cache_dir == "/c");
  const HubSettings s =
      hub_settings_from_env({{"HF_ENDPOINT", "http://mirror:8080/"}, {"HF_TOKEN", "t"}, {"HF_HUB_OFFLINE", "1"}});
  CHECK(s.endpoint == "http://mirror:8080");
  CHECK(s.token == "t");
  CHECK(s.offline);
  CHECK(hub_settings_from_env({}).endpoint == "https://huggingface.co");
  CHECK_THROWS_WITH_AS(hub_settings_from_env({{"HF_HUB_OFFLINE", "maybe"}}), doctest::Contains("HF_HUB_OFFLINE=maybe"),
                       rankserve::Error);
  CHECK(repo_cache_dir(hub_settings_from_env({{"HF_HUB_CACHE", "/c"}}), HubId{"org/name", "main"}) == "/c/models--org--name");
}

namespace {

// Files as a cache listing gives them: names only.
std::vector<HubFile> files(std::initializer_list<const char*> names) {
  std::vector<HubFile> out;
  for (const char* name : names) {
    HubFile f;
    f.name = name;
    out.push_back(f);
  }
  return out;
}

}  // namespace

TEST_CASE("a rank needs the .nemo, or config.json with the safetensors (else the .bin) and the tokenizer files") {
  const HubId id{"org/name", "main"};
  auto names = [](const std::vector<HubFile>& files) {
    std::vector<std::string> out;
    for (const auto& f : files) out.push_back(f.name);
    return out;
  };
  CHECK(names(select_model_files(id, files({"README.md", "model_fp16.nemo", "config.json"}))) ==
        std::vector<std::string>{"model_fp16.nemo"});
  CHECK(names(select_model_files(id, files({"config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json",
                                            "vocab.json", "merges.txt", "flax_model.msgpack", "onnx/model.onnx"}))) ==
        std::vector<std::string>{"config.json", "merges.txt", "model.safetensors", "tokenizer.json", "vocab.json"});
  CHECK(names(select_model_files(id, files({"config.json", "pytorch_model.bin", "tf_model.h5"}))) ==
        std::vector<std::string>{"config.json", "pytorch_model.bin"});
  CHECK_THROWS_WITH_AS(select_model_files(id, files({"README.md", "tf_model.h5"})),
                       doctest::Contains("its files: README.md, tf_model.h5"), rankserve::Error);
  CHECK(model_path_in("/s", files({"a.nemo"})) == "/s/a.nemo");
  CHECK(model_path_in("/s", files({"config.json", "model.safetensors"})) == "/s");
}

TEST_CASE("content hashes: sha256 and git's blob sha1") {
  const fs::path file = fs::temp_directory_path() / "rankserve-hub-hash-test";
  std::ofstream(file, std::ios::binary) << "hello\n";
  CHECK(sha256_of_file(file) == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
  CHECK(git_blob_sha1_of_file(file) == "ce013625030ba8dba906f756967f9e9ca394464a");  // git hash-object
  fs::remove(file);
}
