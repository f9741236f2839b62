#include "launcher/hub_cache.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <memory>

#include "core/error.h"

namespace rankserve::launcher {

namespace fs = std::filesystem;

namespace {

bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'; }

bool is_hub_name(const std::string& part) {
  return !part.empty() && part != "." && part != ".." && part.size() <= 96 && std::all_of(part.begin(), part.end(), is_name_char);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_commit(const std::string& revision) {
  return revision.size() == 40 && revision.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Tokenizer and generation files that come with a Hugging Face checkpoint when the repo has them.
constexpr std::array kCompanionFiles{"tokenizer.json",          "tokenizer_config.json",  "vocab.json",   "merges.txt",
                                     "special_tokens_map.json", "generation_config.json", "encoder.json", "vocab.bpe"};

std::string hex(const unsigned char* digest, unsigned size) {
  std::string out;
  for (unsigned i = 0; i < size; ++i) out += fmt::format("{:02x}", digest[i]);
  return out;
}

std::string digest_of_file(const fs::path& path, const EVP_MD* md, const std::string& prefix) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::load, fmt::format("hub: cannot read {}", path.string()));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), md, nullptr);
  EVP_DigestUpdate(ctx.get(), prefix.data(), prefix.size());
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(in.gcount()));
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned size = 0;
  EVP_DigestFinal_ex(ctx.get(), digest.data(), &size);
  return hex(digest.data(), size);
}

}  // namespace

std::optional<HubId> parse_hub_id(const std::string& text) {
  if (text.rfind("random/", 0) == 0) return std::nullopt;
  std::error_code ec;
  if (fs::exists(text, ec)) return std::nullopt;
  HubId id;
  std::string repo = text;
  if (const size_t at = text.find('@'); at != std::string::npos) {
    repo = text.substr(0, at);
    id.revision = text.substr(at + 1);
    if (id.revision.empty() || id.revision.find_first_of(" \t\n") != std::string::npos) return std::nullopt;
  }
  const size_t slash = repo.find('/');
  if (slash == std::string::npos || !is_hub_name(repo.substr(0, slash)) || !is_hub_name(repo.substr(slash + 1))) {
    return std::nullopt;
  }
  id.repo = repo;
  return id;
}

std::string to_string(const HubId& id) { return id.repo + "@" + id.revision; }

HubSettings hub_settings_from_env(const EnvMap& env) {
  HubSettings s;
  if (auto endpoint = lookup(env, "HF_ENDPOINT"); endpoint && !endpoint->empty()) s.endpoint = *endpoint;
  while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();
  s.token = lookup(env, "HF_TOKEN").value_or("");
  if (s.token.empty()) s.token = lookup(env, "HUGGING_FACE_HUB_TOKEN").value_or("");
  std::string offline = lookup(env, "HF_HUB_OFFLINE").value_or("");
  std::transform(offline.begin(), offline.end(), offline.begin(), [](unsigned char c) { return std::tolower(c); });
  if (offline == "1" || offline == "true" || offline == "yes" || offline == "on") s.offline = true;
  else if (!(offline.empty() || offline == "0" || offline == "false" || offline == "no" || offline == "off"))
    throw Error(ErrorCode::usage, fmt::format("hub: HF_HUB_OFFLINE={} is not a boolean (use 1 or 0)", offline));
  if (auto cache = lookup(env, "HF_HUB_CACHE"); cache && !cache->empty()) {
    s.cache_dir = *cache;
  } else if (auto home = lookup(env, "HF_HOME"); home && !home->empty()) {
    s.cache_dir = fs::path(*home) / "hub";
  } else if (auto xdg = lookup(env, "XDG_CACHE_HOME"); xdg && !xdg->empty()) {
    s.cache_dir = fs::path(*xdg) / "huggingface" / "hub";
  } else {
    s.cache_dir = fs::path(lookup(env, "HOME").value_or("/tmp")) / ".cache" / "huggingface" / "hub";
  }
  return s;
}

fs::path repo_cache_dir(const HubSettings& settings, const HubId& id) {
  std::string name = "models--" + id.repo;
  const size_t slash = name.find('/');
  name.replace(slash, 1, "--");
  return settings.cache_dir / name;
}

std::vector<HubFile> select_model_files(const HubId& id, const std::vector<HubFile>& files) {
  std::vector<HubFile> top;
  for (const HubFile& f : files) {
    if (f.name.find('/') == std::string::npos) top.push_back(f);
  }
  std::sort(top.begin(), top.end(), [](const HubFile& a, const HubFile& b) { return a.name < b.name; });
  for (const HubFile& f : top) {
    if (ends_with(f.name, ".nemo")) return {f};
  }
  std::vector<HubFile> selected;
  auto has = [&](const std::string& name) {
    return std::any_of(top.begin(), top.end(), [&](const HubFile& f) { return f.name == name; });
  };
  const bool safetensors =
      std::any_of(top.begin(), top.end(), [](const HubFile& f) { return ends_with(f.name, ".safetensors"); });
  for (const HubFile& f : top) {
    const bool weights = safetensors ? (ends_with(f.name, ".safetensors") || f.name == "model.safetensors.index.json")
                                     : (f.name.rfind("pytorch_model", 0) == 0 &&
                                        (ends_with(f.name, ".bin") || f.name == "pytorch_model.bin.index.json"));
    const bool companion =
        f.name == "config.json" || std::find(kCompanionFiles.begin(), kCompanionFiles.end(), f.name) != kCompanionFiles.end();
    if (weights || companion) selected.push_back(f);
  }
  const bool any_weights = std::any_of(selected.begin(), selected.end(), [](const HubFile& f) {
    return ends_with(f.name, ".safetensors") || ends_with(f.name, ".bin");
  });
  if (!has("config.json") || !any_weights) {
    std::string names;
    for (const HubFile& f : top) names += (names.empty() ? "" : ", ") + f.name;
    throw Error(ErrorCode::load, fmt::format("hub: {} has neither a .nemo file nor config.json with *.safetensors or "
                                             "pytorch_model*.bin at its top level (its files: {}); rankserve serves NeMo "
                                             "Megatron GPT, GPT-2 and OPT checkpoints",
                                             to_string(id), names.empty() ? "none" : names));
  }
  return selected;
}

std::vector<HubFile> select_files(const HubId& id, const std::vector<HubFile>& files, HubFiles which) {
  std::vector<HubFile> selected = select_model_files(id, files);
  if (which == HubFiles::config) {
    std::erase_if(selected, [](const HubFile& f) { return f.name != "config.json" && !ends_with(f.name, ".nemo"); });
  }
  return selected;
}

fs::path model_path_in(const fs::path& snapshot, const std::vector<HubFile>& selected) {
  if (selected.size() == 1 && ends_with(selected[0].name, ".nemo")) return snapshot / selected[0].name;
  return snapshot;
}

std::string how_to_download(const HubSettings& settings, const HubId& id) {
  return fmt::format(
      "on a machine that reaches the hub, run `huggingface-cli download {} --revision {}` (it fills {}; copy that folder "
      "to the same place here, then HF_HUB_OFFLINE=1 works), or `huggingface-cli download {} --revision {} --local-dir DIR` "
      "and pass --model-path DIR; the files are at {}/{}/resolve/{}/<file> (the .nemo, or config.json, *.safetensors and "
      "the tokenizer files)",
      id.repo, id.revision, repo_cache_dir(settings, id).string(), id.repo, id.revision, settings.endpoint, id.repo, id.revision);
}

fs::path resolve_from_cache(const HubSettings& settings, const HubId& id) {
  const fs::path repo_dir = repo_cache_dir(settings, id);
  std::string commit = id.revision;
  if (!is_commit(commit)) {
    const fs::path ref = repo_dir / "refs" / id.revision;
    std::ifstream in(ref);
    if (!(in >> commit)) {
      throw Error(ErrorCode::load, fmt::format("hub: {} is not in the cache: {} does not exist ({})", to_string(id), ref.string(),
                                               how_to_download(settings, id)));
    }
  }
  const fs::path snapshot = repo_dir / "snapshots" / commit;
  std::vector<HubFile> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(snapshot, ec)) {
    // A link whose blob is gone (an interrupted copy) is missing, not cached.
    if (!fs::exists(entry.path(), ec)) continue;
    HubFile f;
    f.name = entry.path().filename().string();
    files.push_back(f);
  }
  if (files.empty()) {
    throw Error(ErrorCode::load, fmt::format("hub: {} is not in the cache: the snapshot {} has no files ({})", to_string(id),
                                             snapshot.string(), how_to_download(settings, id)));
  }
  try {
    return model_path_in(snapshot, select_model_files(id, files));
  } catch (const Error& e) {
    throw Error(ErrorCode::load,
                fmt::format("{}; in the cache at {} ({})", e.what(), snapshot.string(), how_to_download(settings, id)));
  }
}

std::string sha256_of_file(const fs::path& path) { return digest_of_file(path, EVP_sha256(), ""); }

std::string git_blob_sha1_of_file(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return digest_of_file(path, EVP_sha1(), fmt::format("blob {}", size) + std::string(1, '\0'));
}

}  // namespace rankserve::launcher
