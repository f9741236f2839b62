// Models from the Hugging Face hub, the local half: hub ids, the cache layout huggingface_hub uses
// (<cache>/models--ORG--NAME/{blobs,snapshots,refs}), which files a rank needs, and content hashes.
// Called by launcher/hub_download.cpp; no network here.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "launcher/env.h"

namespace rankserve::launcher {

struct HubId {
  std::string repo;               // ORG/NAME
  std::string revision = "main";  // a branch, tag or commit
};

// ORG/NAME[@REVISION] when `text` has that form and is not a local path that exists (nor random/<size>).
std::optional<HubId> parse_hub_id(const std::string& text);

// "ORG/NAME@REVISION", for messages.
std::string to_string(const HubId& id);

// What the environment says about the hub (huggingface_hub's variables): HF_ENDPOINT (default
// https://huggingface.co), HF_TOKEN, HF_HUB_OFFLINE, HF_HUB_CACHE (default $HF_HOME/hub, HF_HOME
// default $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface).
struct HubSettings {
  std::string endpoint = "https://huggingface.co";
  std::string token;
  bool offline = false;
  std::filesystem::path cache_dir;
};
// Throws Error(usage) naming HF_HUB_OFFLINE when it is not a boolean.
HubSettings hub_settings_from_env(const EnvMap& env);

// One file of a repo at a commit, as the hub's model API lists it (`?blobs=true`).
struct HubFile {
  std::string name;   // path in the repo (rfilename)
  int64_t size = -1;  // bytes; -1 when unknown (a cache listing)
  std::string etag;   // LFS: the content's sha256; otherwise the git blob sha1; the blob's name in the cache
  bool lfs = false;
};

// <cache>/models--ORG--NAME.
std::filesystem::path repo_cache_dir(const HubSettings& settings, const HubId& id);

// The files a rank reads, picked from a repo's top-level files: a .nemo checkpoint (the first by name
// when there are several), else config.json with the safetensors weights (or pytorch_model*.bin when
// there are none) and the tokenizer files. Throws Error(load) naming the repo and its files when
// neither kind is there.
std::vector<HubFile> select_model_files(const HubId& id, const std::vector<HubFile>& files);

// What a fetch brings: every file a rank reads, or only those that hold the model's config
// (`rankserve plan`): config.json, or the .nemo, whose config is inside it.
enum class HubFiles { model, config };

// The files of `which`, from select_model_files.
std::vector<HubFile> select_files(const HubId& id, const std::vector<HubFile>& files, HubFiles which);

// What --model-path becomes: the .nemo file in the snapshot, or the snapshot folder.
std::filesystem::path model_path_in(const std::filesystem::path& snapshot, const std::vector<HubFile>& selected);

// The cached snapshot of `id` without the network (refs/<revision> or a commit id, then the snapshot's
// files): the model path. Throws Error(load) saying what is missing, where, and how to fill it.
std::filesystem::path resolve_from_cache(const HubSettings& settings, const HubId& id);

// Lowercase hex digests of a file's bytes: sha256, and git's blob id (sha1 of "blob <size>\0" + bytes).
std::string sha256_of_file(const std::filesystem::path& path);
std::string git_blob_sha1_of_file(const std::filesystem::path& path);

// The command and URLs that fill the cache by hand, for error messages.
std::string how_to_download(const HubSettings& settings, const HubId& id);

}  // namespace rankserve::launcher
