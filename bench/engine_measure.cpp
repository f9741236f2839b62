// rankserve's side of bench/llama_bench.sh: one measure (bench/llama/measure.h) of a checkpoint in one
// compute dtype, printed as a result line. llama.cpp's side is bench/llama/llama_measure.cpp.
// Usage: engine_measure MODEL_DIR fp32|bf16|fp16 decode:BATCH:THREADS:NEW_TOKENS|prefill:TOKENS:THREADS
// Greedy; EOS never stops a sequence (llama_measure does not stop either), so every run does the same work.
#include <fmt/format.h>

#include <exception>
#include <string>

#include "bench/llama/measure.h"
#include "runtime/dist/communicator.h"
#include "runtime/engine.h"

using namespace rankserve::runtime;
namespace bench = rankserve::bench;

namespace {

constexpr int kNoEos = 1 << 30;  // an id past any vocabulary

ComputeDtype dtype_of(const std::string& name) {
  if (name == "fp32") return ComputeDtype::fp32;
  if (name == "bf16") return ComputeDtype::bf16;
  if (name == "fp16") return ComputeDtype::fp16;
  throw std::invalid_argument("dtype '" + name + "' is not fp32, bf16 or fp16");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    fmt::print(stderr, "usage: engine_measure MODEL_DIR fp32|bf16|fp16 decode:BATCH:THREADS:NEW_TOKENS|prefill:TOKENS:THREADS\n");
    return 2;
  }
  try {
    const bench::Measure measure = bench::parse_measure(argv[3]);
    EngineOptions options{argv[1], 0, 0};
    options.dtype = dtype_of(argv[2]);
    options.cpu_threads = measure.threads;
    options.eos_token_id = kNoEos;
    ProcessGroups groups = make_self_groups();
    std::unique_ptr<Engine> engine = Engine::load(options, groups);
    auto generate = [&](const std::vector<bench::TokenIds>& prompts, int max_tokens) {
      std::vector<SequenceSpec> requests(prompts.size());
      for (size_t i = 0; i < prompts.size(); ++i) {
        requests[i].id = i;
        requests[i].prompt = prompts[i];
        requests[i].max_tokens = max_tokens;
      }
      std::vector<bench::TokenIds> ids;
      for (Generation& g : engine->generate(requests, true)) ids.push_back(std::move(g.ids));
      return ids;
    };
    bench::print_result("rankserve", argv[2], argv[3], bench::run_measure(measure, generate));
  } catch (const std::exception& e) {
    fmt::print(stderr, "engine_measure: {}\n", e.what());
    return 1;
  }
  return 0;
}
