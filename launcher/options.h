// Every command-line option of `rankserve`, with defaults, help text and RANKSERVE_* mirrors.
// Parsed once in main (CLI > environment > default); read-only afterwards.
#pragma once

#include <string>
#include <vector>

#include "launcher/env.h"

namespace rankserve::launcher {

inline constexpr int kFirstDerivedStorePort = 15000;  // NeMo example: 15000 + last 4 digits of the job id

struct Options {
  std::string command = "serve";  // serve (default, as the examples' servers): HTTP; check: start-up and collective check;
                                  // generate: one generation; plan: the layout a model needs (config only)

  // Topology. Zero / empty means "take it from the launcher".
  int nodes = 0;                  // --nodes / --number-of-nodes
  std::string gpus = "-1";        // --gpus / --number-of-gpus: -1 all, N first N, a,b those ids
  int rank = -1;                  // --rank: this node's rank when launched by hand, one launcher per node
  std::string head_url;           // --head-url host:port of the rendezvous store
  std::string k8s_service;        // --k8s-service: StatefulSet mode, the headless Service's name
  std::string advertise_address;  // --advertise-address: address peers use to reach this rank
  int store_port = 0;             // --store-port: 0 derives it from the job id

  // Parallelism.
  int tp_size = 1;
  int pp_size = 1;

  double timeout_s = 300;       // --timeout: deadline of every rendezvous phase and collective, seconds
  double check_duration_s = 0;  // --check-duration: repeat the collective check this long, seconds

  // generate
  std::string model_path;  // Hugging Face folder or random/<size>
  std::string prompt_ids;  // comma-separated token ids
  std::string prompt;      // text, tokenized with --tokenizer (default: the model folder)
  std::string tokenizer;
  int max_tokens = 16;
  bool json = false;
  bool no_kv_cache = false;    // recompute the whole sequence each step (checks the KV cache)
  uint64_t weights_seed = 0;   // random/<size> weights
  std::string dtype = "auto";  // compute dtype: auto (fp32 on CPU, the checkpoint's half type on GPUs), fp32, bf16, fp16
  int cpu_threads = 0;         // compute threads per rank; 0: decided at start-up (cpu_threads_for)
  bool sample = false;         // sample instead of greedy decoding
  float temperature = 1.0f;
  int top_k = 0;
  float top_p = 1.0f;
  float repetition_penalty = 1.0f;
  int min_length = 0;
  uint64_t seed = 0;  // sampling seed

  // serve
  std::string download_dir;           // the hub cache, overriding HF_HUB_CACHE / HF_HOME; "" for theirs
  std::string hub_model;              // the hub id --model-path named, once model_path is its cached snapshot
  std::string model_name;             // served name; default GPT (GPT-2, NeMo) or OPT by family
  bool model_name_was_model = false;  // --model-name named the model to load (the OPT example's meaning): now model_path
  std::string http_address = "0.0.0.0";
  int http_port = 8000;
  int metrics_port = 8002;
  std::string grpc_address = "0.0.0.0";
  int grpc_port = 8001;    // -1: no gRPC server
  std::string url_file;    // also write the server URL here
  int max_batch_size = 0;  // sequences per model copy; 0: the contract's (GPT 128, OPT 256)
  int max_queue_size = 256;
  double kv_cache_gb = 0;               // KV-cache budget per rank, GB; 0: automatic (launcher/memory_budget.h)
  double gpu_memory_utilization = 0.9;  // on a GPU: the fraction of its memory weights + KV cache may use
  int max_prefill_tokens = 512;         // prompt tokens per step
  double request_timeout_s = 600;
  double shutdown_timeout_s = 30;
  std::string api_key;

  // plan
  std::string gpu_memory;  // --gpu-memory: each GPU's memory, "80GB" or "80GiB"
  int context = 0;         // --context: tokens per sequence; 0: the model's max_position_embeddings
  int batch = 1;           // --batch: sequences of --context each model copy must hold

  bool dry_run = false;
  std::string log_level = "info";
  bool log_json = false;
  bool log_all_ranks = false;
};

struct ParsedOptions {
  Options options;
  bool help = false;
  bool version = false;
  std::string help_text;
  std::vector<std::string> set_by_user;  // names of options given on the CLI or environment
};

// Parses argv (without argv[0]) and RANKSERVE_* variables of `env`. Throws Error(usage) naming the
// flag or variable on the first malformed value; range checks happen later in validate().
ParsedOptions parse_options(const std::vector<std::string>& args, const EnvMap& env);

// One "name = value" line per option, for --dry-run and the start-up log.
std::string describe_options(const Options& options);

}  // namespace rankserve::launcher
