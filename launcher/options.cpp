#include "launcher/options.h"

#include "launcher/hub_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <filesystem>
#include <sstream>

#include "core/error.h"

namespace po = boost::program_options;

namespace rankserve::launcher {
namespace {

struct Description {
  po::options_description visible{"Options (each also read from RANKSERVE_<NAME>, e.g. --tp -> RANKSERVE_TP)", 100};
  po::options_description all;
  po::positional_options_description positional;
};

void describe(Description& d, Options& o) {
  // clang-format off
  d.visible.add_options()
    ("help,h", po::bool_switch(), "Print this help and exit.")
    ("version", po::bool_switch(), "Print the version and exit.")
    ("nodes", po::value<int>(&o.nodes),
     "Number of nodes in the job. Under a launcher (Slurm, PMIx, mpirun, torchrun) it must equal the launcher's "
     "node count; by hand (with --rank or --head-url) it is the node count. Default: the launcher's (plan: 1).")
    ("number-of-nodes", po::value<int>(), "Alias of --nodes (the OPT example's name).")
    ("gpus", po::value<std::string>(&o.gpus)->default_value(o.gpus),
     "GPUs per node, as in the NeMo example: -1 all visible GPUs, N the first N, a,b,c those device ids. "
     "Each local rank uses one of them. Without GPUs it is the number of ranks per node (-1: the launcher's "
     "tasks per node, or 1 when rankserve spawns the workers itself). plan: the GPUs per node to plan for.")
    ("number-of-gpus", po::value<std::string>(), "Alias of --gpus (the OPT example's name).")
    ("rank", po::value<int>(&o.rank),
     "This node's rank when nodes are started by hand, one rankserve per node (as in the OPT example); "
     "rankserve then spawns --gpus local workers. Needs --head-url on every node but the head.")
    ("head-url", po::value<std::string>(&o.head_url),
     "host:port of the rendezvous store on the head node (node rank 0) when started by hand. "
     "Default with --rank: localhost:12345.")
    ("k8s-service", po::value<std::string>(&o.k8s_service),
     "Kubernetes StatefulSet mode: the headless Service of the StatefulSet. The pod ordinal comes from "
     "the hostname (<statefulset>-<ordinal>), the node rank is ordinal mod --nodes and the head is "
     "<statefulset>-<first ordinal of the replica>.<service>, resolved in the pod's own namespace.")
    ("advertise-address", po::value<std::string>(&o.advertise_address),
     "Address other ranks use to reach this rank. Default: the address of the interface that routes to "
     "the head (never loopback when the job spans nodes).")
    ("store-port", po::value<int>(&o.store_port),
     "TCP port of the rendezvous store on the head. Default: 15000 + the last four digits of the job id "
     "(so two jobs on one node do not collide), or a free port when rankserve spawns its workers.")
    ("tp", po::value<int>(&o.tp_size)->default_value(o.tp_size), "Tensor-parallel size (a NeMo checkpoint's saved size when not given; plan chooses it).")
    ("pp", po::value<int>(&o.pp_size)->default_value(o.pp_size),
     "Pipeline-parallel size (a NeMo checkpoint's saved size when not given; plan chooses it). Data-parallel copies = world size / (tp x pp).")
    ("timeout", po::value<double>(&o.timeout_s)->default_value(o.timeout_s),
     "Deadline in seconds of each rendezvous phase and of each collective. On expiry every rank exits "
     "naming the ranks and hosts that never arrived.")
    ("check-duration", po::value<double>(&o.check_duration_s)->default_value(o.check_duration_s),
     "check: repeat the all-reduce check on every group for this many seconds (0: once).")
    ("model-path", po::value<std::string>(&o.model_path),
     "generate, serve, plan: a Hugging Face GPT-2 or OPT folder (config.json and model.safetensors, or shards with "
     "model.safetensors.index.json), a NeMo Megatron GPT checkpoint (a .nemo file, or its unpacked folder; its saved "
     "TP/PP are the default layout), random/<size> (125M ... 530B, the OPT example's table) for seeded "
     "random weights created directly as each rank's shard, builtin (serve's default: the small trained model "
     "beside the binary, share/rankserve/builtin.nemo), or a Hugging Face hub id ORG/NAME[@REVISION] (downloaded into "
     "the hub's cache, HF_HUB_CACHE, from HF_ENDPOINT with HF_TOKEN; HF_HUB_OFFLINE=1: the cache only; docs/models.md).")
    ("model-repo-id", po::value<std::string>(),
     "Alias of --model-path for a hub id ORG/NAME[@REVISION] (the NeMo example's name).")
    ("download-dir", po::value<std::string>(&o.download_dir),
     "The hub cache a hub id is downloaded into and read from (as vLLM's --download-dir). Default: HF_HUB_CACHE, "
     "else $HF_HOME/hub, else ~/.cache/huggingface/hub.")
    ("prompt-ids", po::value<std::string>(&o.prompt_ids), "generate: the prompt as comma-separated token ids.")
    ("prompt", po::value<std::string>(&o.prompt),
     "generate: the prompt as text, tokenized with GPT-2 byte-level BPE (OPT models get </s> in front).")
    ("tokenizer", po::value<std::string>(&o.tokenizer),
     "Folder with tokenizer.json, vocab.json + merges.txt or encoder.json + vocab.bpe. Default: --model-path "
     "(for random/<size>: the GPT-2 vocabulary installed with rankserve).")
    ("max-tokens", po::value<int>(&o.max_tokens)->default_value(o.max_tokens), "generate: most tokens to generate.")
    ("json", po::bool_switch(&o.json),
     "generate: print JSON with the prompt ids, generated ids and log-probabilities. plan: print the plan as JSON "
     "(bytes).")
    ("no-kv-cache", po::bool_switch(&o.no_kv_cache), "generate: recompute the whole sequence at every step.")
    ("weights-seed", po::value<uint64_t>(&o.weights_seed)->default_value(o.weights_seed), "Seed of random/<size> weights.")
    ("cpu-threads", po::value<int>(&o.cpu_threads)->default_value(o.cpu_threads),
     "generate, serve: CPU threads each rank computes with. 0: OMP_NUM_THREADS when set, else "
     "SLURM_CPUS_PER_TASK, else the CPUs this process may run on divided by the ranks on its node.")
    ("dtype", po::value<std::string>(&o.dtype)->default_value(o.dtype),
     "generate, serve, plan: compute dtype of weights, activations and the KV cache: auto, fp32, bf16 or fp16 (on CPU, bf16 and fp16 "
     "keep activations in fp32). auto: fp32 on CPU; on GPUs the checkpoint's half type (fp16 for a float16 checkpoint, "
     "else bf16, also for random weights). Checkpoint tensors of any type are converted on load; logits and sampling "
     "stay fp32.")
    ("sample", po::bool_switch(&o.sample), "generate: sample the next token instead of taking the most likely one.")
    ("temperature", po::value<float>(&o.temperature)->default_value(o.temperature), "generate --sample: logits divided by this (> 0).")
    ("top-k", po::value<int>(&o.top_k)->default_value(o.top_k), "generate --sample: keep the k most likely tokens (0: all).")
    ("top-p", po::value<float>(&o.top_p)->default_value(o.top_p),
     "generate --sample: keep the most likely tokens whose probability mass reaches p, in (0, 1].")
    ("repetition-penalty", po::value<float>(&o.repetition_penalty)->default_value(o.repetition_penalty),
     "generate: > 1 makes tokens already in the sequence less likely (1: off).")
    ("min-length", po::value<int>(&o.min_length)->default_value(o.min_length), "generate: no EOS before this many new tokens.")
    ("seed", po::value<uint64_t>(&o.seed)->default_value(o.seed), "generate --sample: the same seed gives the same tokens.")
    ("model-name", po::value<std::string>(&o.model_name),
     "serve: the name clients use for the model (KServe and OpenAI). Default: OPT for OPT checkpoints and "
     "random/<size>, GPT otherwise (the examples' names); the contract (OPT or GPT inputs) follows the family. "
     "Without --model-path, a model given here (random/<size>, or a folder or file) is the model to load, as the "
     "OPT example's --model-name.")
    ("http-address", po::value<std::string>(&o.http_address)->default_value(o.http_address),
     "serve: address the HTTP server of global rank 0 listens on.")
    ("http-port", po::value<int>(&o.http_port)->default_value(o.http_port), "serve: HTTP port (KServe v2, OpenAI, /metrics).")
    ("metrics-port", po::value<int>(&o.metrics_port)->default_value(o.metrics_port),
     "serve: port serving only /metrics, as Triton's 8002 (-1: none).")
    ("grpc-address", po::value<std::string>(&o.grpc_address)->default_value(o.grpc_address),
     "serve: address the gRPC server (KServe v2 inference.GRPCInferenceService) of global rank 0 listens on.")
    ("grpc-port", po::value<int>(&o.grpc_port)->default_value(o.grpc_port),
     "serve: gRPC port, as Triton's 8001 (-1: no gRPC server).")
    ("url-file", po::value<std::string>(&o.url_file),
     "serve: also write the server URL (http://<hostname>:<port>) to this file once it is ready, for batch scripts.")
    ("max-batch-size", po::value<int>(&o.max_batch_size)->default_value(o.max_batch_size),
     "serve: sequences running at once per model copy; also the largest KServe batch (0: GPT 128, OPT 256).")
    ("max-queue-size", po::value<int>(&o.max_queue_size)->default_value(o.max_queue_size),
     "serve: requests waiting beyond the running batches; more get 429 with Retry-After.")
    ("kv-cache-gb", po::value<double>(&o.kv_cache_gb)->default_value(o.kv_cache_gb),
     "serve, plan: KV-cache budget per rank in GB; a request joins a batch only while its prompt + max tokens fit. "
     "0: 2 GB on CPU; on a GPU what --gpu-memory-utilization leaves after the weights.")
    ("gpu-memory-utilization", po::value<double>(&o.gpu_memory_utilization)->default_value(o.gpu_memory_utilization),
     "generate, serve, plan: on GPUs, the fraction (0, 1] of each device's memory that weights, KV cache and activations "
     "may use (as vLLM's flag); memory other processes hold counts against it. A shard that does not fit fails "
     "before loading.")
    ("max-prefill-tokens", po::value<int>(&o.max_prefill_tokens)->default_value(o.max_prefill_tokens),
     "serve: prompt tokens read per step, all joining requests together (longer prompts are read in chunks "
     "while the others keep decoding).")
    ("request-timeout", po::value<double>(&o.request_timeout_s)->default_value(o.request_timeout_s),
     "serve: default deadline of an inference request in seconds (KServe's `timeout` parameter overrides).")
    ("shutdown-timeout", po::value<double>(&o.shutdown_timeout_s)->default_value(o.shutdown_timeout_s),
     "serve: after SIGTERM/SIGINT, seconds in-flight requests may take to finish; a second signal exits at once.")
    ("api-key", po::value<std::string>(&o.api_key),
     "serve: inference endpoints need 'Authorization: Bearer <key>' (health, metadata and metrics stay open).")
    ("gpu-memory", po::value<std::string>(&o.gpu_memory),
     "plan: each GPU's memory, e.g. 80GB (80e9 bytes, a little below what a card sold as 80 GB holds) or 80GiB; "
     "also MB, MiB, TB, TiB.")
    ("context", po::value<int>(&o.context)->default_value(o.context),
     "plan: tokens per sequence (prompt + generated) the KV cache is sized for (0: the model's context).")
    ("batch", po::value<int>(&o.batch)->default_value(o.batch),
     "plan: sequences of --context tokens each model copy must hold at once; the layout grows until they fit.")
    ("dry-run", po::bool_switch(&o.dry_run), "Print the resolved options and topology, then exit.")
    ("log-level", po::value<std::string>(&o.log_level)->default_value(o.log_level), "debug, info, warn or error.")
    ("log-json", po::bool_switch(&o.log_json), "Log one JSON object per line.")
    ("log-all-ranks", po::bool_switch(&o.log_all_ranks), "Print info lines from every rank, not only rank 0.");
  // clang-format on
  d.all.add(d.visible).add_options()("command", po::value<std::string>(&o.command), "serve");
  d.positional.add("command", 1);
}

std::string env_name(const std::string& option) {
  std::string name = "RANKSERVE_";
  for (char c : option) name += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

bool is_switch(const po::option_description& option) { return option.semantic()->max_tokens() == 0; }

// Turns RANKSERVE_* variables into "--name=value" arguments for the options the CLI did not set.
std::vector<std::string> environment_arguments(const po::options_description& desc, const EnvMap& env,
                                               const po::variables_map& cli) {
  std::vector<std::string> args;
  for (const auto& option : desc.options()) {
    const std::string& name = option->long_name();
    if (name.empty() || name == "help" || name == "version") continue;
    auto value = lookup(env, env_name(name));
    if (!value || (cli.count(name) && !cli[name].defaulted())) continue;
    if (is_switch(*option)) {
      std::string v = *value;
      std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
      if (v == "1" || v == "true" || v == "yes" || v == "on") args.push_back("--" + name);
      else if (!(v.empty() || v == "0" || v == "false" || v == "no" || v == "off"))
        throw Error(ErrorCode::usage, fmt::format("options: {}={} is not a boolean (use 1 or 0)", env_name(name), *value));
    } else {
      args.push_back(fmt::format("--{}={}", name, *value));
    }
  }
  return args;
}

// Merges an alias into its option; both given with different values is an error.
template <typename T>
void merge_alias(const po::variables_map& vm, const std::string& name, const std::string& alias, T& target) {
  if (!vm.count(alias)) return;
  const T value = vm[alias].as<T>();
  if (vm.count(name) && !vm[name].defaulted() && vm[name].as<T>() != value) {
    throw Error(ErrorCode::usage,
                fmt::format("options: --{}={} contradicts --{}={} (give one of them)", alias, value, name, vm[name].as<T>()));
  }
  target = value;
}

// The OPT example's --model-name is the model to load. Without --model-path, a --model-name that is
// a model (random/<size>, a folder or file that exists, or a hub id ORG/NAME[@REVISION]) is taken as
// --model-path, served under the family's default name; any other name with a '/' is refused by
// validation (see check_options).
void take_model_name_as_model(Options& o) {
  if (!o.model_path.empty() || o.model_name.find('/') == std::string::npos) return;
  std::error_code ec;
  if (o.model_name.rfind("random/", 0) == 0 || std::filesystem::exists(o.model_name, ec) || parse_hub_id(o.model_name)) {
    o.model_path = o.model_name;
    o.model_name.clear();
    o.model_name_was_model = true;
  }
}

}  // namespace

ParsedOptions parse_options(const std::vector<std::string>& args, const EnvMap& env) {
  ParsedOptions parsed;
  Description d;
  describe(d, parsed.options);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(d.all).positional(d.positional).run(), vm);
  } catch (const po::error& e) {
    throw Error(ErrorCode::usage, fmt::format("options: {} (see rankserve --help)", e.what()));
  }
  std::vector<std::string> env_args = environment_arguments(d.all, env, vm);
  try {
    po::store(po::command_line_parser(env_args).options(d.all).run(), vm);
  } catch (const po::error& e) {
    throw Error(ErrorCode::usage, fmt::format("options: from the environment (RANKSERVE_*): {}", e.what()));
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(ErrorCode::usage, fmt::format("options: {}", e.what()));
  }
  merge_alias(vm, "nodes", "number-of-nodes", parsed.options.nodes);
  merge_alias(vm, "model-path", "model-repo-id", parsed.options.model_path);
  merge_alias(vm, "gpus", "number-of-gpus", parsed.options.gpus);
  take_model_name_as_model(parsed.options);
  parsed.help = vm["help"].as<bool>();
  parsed.version = vm["version"].as<bool>();
  std::ostringstream help;
  help << "Usage: rankserve [serve|check|generate|plan] [options]   (serve when no command is given)\n\n"
          "  check     start every rank, rendezvous, create the world/TP/PP/DP communicators,\n"
          "            verify an all-reduce on each, print the topology and exit.\n"
          "  generate  the same, then load each rank's shard of --model-path and run one greedy\n"
          "            generation of --max-tokens after --prompt or --prompt-ids.\n"
          "  serve     load the shards, then serve KServe v2 (Triton) and the OpenAI API from global\n"
          "            rank 0 over HTTP with continuous batching; without --model-path the built-in\n"
          "            model (a small GPT trained at build time to count and continue weekdays, months,\n"
          "            letters and motifs; --model-path builtin names it).\n"
          "  plan      read only the config of --model-path and print the layout (--tp within a node,\n"
          "            --pp across nodes, data-parallel copies from the rest) that fits it on --nodes x\n"
          "            --gpus of --gpu-memory, each rank's weights and KV cache, the sequences of\n"
          "            --context that fit, and the sbatch line; exit 3 when it does not fit.\n\n"
       << d.visible;
  parsed.help_text = help.str();
  for (const auto& [name, value] : vm) {
    if (!value.defaulted() && name != "command") parsed.set_by_user.push_back(name);
  }
  return parsed;
}

std::string describe_options(const Options& o) {
  std::string out = fmt::format(
      "command = {}\nnodes = {}\ngpus = {}\nrank = {}\nhead-url = {}\nk8s-service = {}\nadvertise-address = {}\n"
      "store-port = {}\ntp = {}\npp = {}\ntimeout = {}\ncheck-duration = {}\nlog-level = {}\nlog-json = {}\n",
      o.command, o.nodes == 0 ? std::string("(from launcher)") : std::to_string(o.nodes), o.gpus,
      o.rank < 0 ? std::string("(from launcher)") : std::to_string(o.rank), o.head_url.empty() ? "(derived)" : o.head_url,
      o.k8s_service.empty() ? "(unset)" : o.k8s_service, o.advertise_address.empty() ? "(derived)" : o.advertise_address,
      o.store_port == 0 ? std::string("(derived)") : std::to_string(o.store_port), o.tp_size, o.pp_size, o.timeout_s,
      o.check_duration_s, o.log_level, o.log_json);
  if (o.command == "check") return out;
  out += fmt::format("model-path = {}\ndtype = {}\ncpu-threads = {}\nweights-seed = {}\n",
                     o.model_path.empty() ? "(built-in)" : o.model_path, o.dtype,
                     o.cpu_threads == 0 ? std::string("(derived)") : std::to_string(o.cpu_threads), o.weights_seed);
  if (o.command == "generate") {
    out += fmt::format(
        "prompt = {}\nprompt-ids = {}\ntokenizer = {}\nmax-tokens = {}\nsample = {}\ntemperature = {}\ntop-k = {}\n"
        "top-p = {}\nrepetition-penalty = {}\nmin-length = {}\nseed = {}\njson = {}\nno-kv-cache = {}\n",
        o.prompt, o.prompt_ids, o.tokenizer.empty() ? "(the model's)" : o.tokenizer, o.max_tokens, o.sample, o.temperature,
        o.top_k, o.top_p, o.repetition_penalty, o.min_length, o.seed, o.json, o.no_kv_cache);
    return out;
  }
  out += fmt::format(
      "model-name = {}\nhttp-address = {}\nhttp-port = {}\nmetrics-port = {}\nurl-file = {}\nmax-batch-size = {}\n"
      "max-queue-size = {}\nkv-cache-gb = {}\nmax-prefill-tokens = {}\nrequest-timeout = {}\nshutdown-timeout = {}\n"
      "api-key = {}\n",
      o.model_name.empty() ? "(by family: GPT or OPT)" : o.model_name, o.http_address, o.http_port, o.metrics_port,
      o.url_file.empty() ? "(none)" : o.url_file,
      o.max_batch_size == 0 ? std::string("(the contract's)") : std::to_string(o.max_batch_size), o.max_queue_size, o.kv_cache_gb,
      o.max_prefill_tokens, o.request_timeout_s, o.shutdown_timeout_s, o.api_key.empty() ? "(none)" : "(set, not shown)");
  return out;
}

}  // namespace rankserve::launcher
