// Decode throughput of one rank on this machine per compute dtype, against the memory-bandwidth bound
// measured in the same run: every decode step reads all weights once, so tokens/s <= bandwidth /
// weight bytes at batch 1. The dtypes run interleaved (each batch size in turn for each), so their
// ratios share the machine's state. Then prefill of one long prompt per dtype. Prints ratios, never
// pass/fail.
// Usage: decode_bench [random/125M] [new tokens] [intra-op threads, default 1,2] [batch sizes, default
// 1,8,32; the ratio to batch 1 needs 1 first] [dtypes, default fp32,bf16,fp16; ratios to the first]
// [prefill prompt tokens, default 512; 0: none]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <chrono>
#include <map>
#include <string>

#include "bench/blas_threads.h"
#include "runtime/dist/communicator.h"
#include "runtime/engine.h"

using namespace rankserve::runtime;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  for (std::string rest = text; !rest.empty();) {
    const size_t comma = rest.find(',');
    out.push_back(rest.substr(0, comma));
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
  }
  return out;
}

ComputeDtype dtype_of(const std::string& name) {
  if (name == "bf16") return ComputeDtype::bf16;
  if (name == "fp16") return ComputeDtype::fp16;
  return ComputeDtype::fp32;
}

// Best of several timed runs of `read`, which reads `bytes` once, in bytes per second.
template <typename Read>
double best_bandwidth(uint64_t bytes, Read read) {
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    read();
    best = std::max(best, static_cast<double>(bytes) / seconds_since(start));
  }
  return best;
}

// OpenBLAS's pool gets as many threads as the intra-op threads decode uses: at 1 thread a gemv on its
// default pool (every core) would measure more cores than decode gets.
std::string set_blas_threads(int threads) {
  if (!rankserve::bench::set_openblas_threads(threads)) return "on the BLAS's own threads";
  return fmt::format("on {} OpenBLAS threads", threads);
}

// The best read bandwidth this machine gives the threads decode uses, in bytes per second, over
// 1 GiB (well past the caches): at::sum on every intra-op thread, and a BLAS matrix-vector product
// on as many BLAS threads. Prints each.
double read_bandwidth() {
  const std::string blas = set_blas_threads(at::get_num_threads());
  constexpr int64_t kColumns = 4096, kRows = (int64_t{1} << 30) / 4 / kColumns;
  const uint64_t bytes = uint64_t{1} << 30;
  at::Tensor matrix = at::ones({kRows, kColumns}, at::kFloat);
  at::Tensor vector = at::ones({kColumns}, at::kFloat);
  const double sum = best_bandwidth(bytes, [&] {
    volatile float sink = matrix.sum().item<float>();
    (void)sink;
  });
  const double gemv = best_bandwidth(bytes, [&] {
    volatile float sink = at::mv(matrix, vector)[0].item<float>();
    (void)sink;
  });
  fmt::print(
      "memory read bandwidth: at::sum on {} threads {:.2f} GB/s, BLAS gemv {} {:.2f} GB/s (best of 5 reads of "
      "1 GiB each)\n",
      at::get_num_threads(), sum / 1e9, blas, gemv / 1e9);
  return std::max(sum, gemv);
}

// Seconds per decode step at `batch`: a run of 1 token (prefill only) subtracted from a run of 1 + n.
double decode_step_seconds(Engine& engine, int batch, int n) {
  std::vector<SequenceSpec> requests(static_cast<size_t>(batch));
  for (int b = 0; b < batch; ++b) {
    requests[static_cast<size_t>(b)].id = static_cast<uint64_t>(b);
    for (int i = 0; i < 8; ++i) requests[static_cast<size_t>(b)].prompt.push_back(100 + 37 * b + i);
  }
  auto run = [&](int tokens) {
    for (auto& r : requests) r.max_tokens = tokens;
    return engine.generate(requests, true);
  };
  run(2);  // warm-up
  auto start = Clock::now();
  run(1);
  const double prefill = seconds_since(start);
  start = Clock::now();
  auto results = run(1 + n);
  const double total = seconds_since(start);
  for (const auto& r : results) {
    if (static_cast<int>(r.ids.size()) != 1 + n) fmt::print("note: a sequence stopped at EOS after {} tokens\n", r.ids.size());
  }
  return (total - prefill) / n;
}

// Prompt tokens per second of one sequence's `tokens`-token prompt (best of 2, after a warm-up).
double prefill_tokens_per_s(Engine& engine, int tokens) {
  std::vector<SequenceSpec> requests(1);
  for (int i = 0; i < tokens; ++i) requests[0].prompt.push_back(100 + (37 * i) % 5000);
  requests[0].max_tokens = 1;
  engine.generate(requests, true);
  double best = 1e30;
  for (int i = 0; i < 2; ++i) {
    const auto start = Clock::now();
    engine.generate(requests, true);
    best = std::min(best, seconds_since(start));
  }
  return tokens / best;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string model = argc > 1 ? argv[1] : "random/125M";
  const int n = argc > 2 ? std::stoi(argv[2]) : 32;
  std::vector<int> thread_counts, batches;
  for (const std::string& t : split(argc > 3 ? argv[3] : "1,2")) thread_counts.push_back(std::stoi(t));
  for (const std::string& b : split(argc > 4 ? argv[4] : "1,8,32")) batches.push_back(std::stoi(b));
  const std::vector<std::string> dtypes = split(argc > 5 ? argv[5] : "fp32,bf16,fp16");
  const int prefill_tokens = argc > 6 ? std::stoi(argv[6]) : 512;

  ProcessGroups groups = make_self_groups();
  std::map<std::string, std::unique_ptr<Engine>> engines;
  for (const std::string& dtype : dtypes) {
    const auto start = Clock::now();
    EngineOptions options{model, 0, 0};
    options.dtype = dtype_of(dtype);
    engines[dtype] = Engine::load(options, groups);
    fmt::print("{}: loaded in {:.2f} s, {:.1f} MB of weights\n", dtype, seconds_since(start),
               engines[dtype]->weight_bytes() / 1e6);
  }
  for (int threads : thread_counts) {
    at::set_num_threads(threads);
    fmt::print("\ndecode_bench: {} on {} intra-op threads, {} decode steps per batch size\n", model, at::get_num_threads(), n);
    const double bandwidth = read_bandwidth();
    fmt::print("bound uses the best: {:.2f} GB/s\n", bandwidth / 1e9);
    std::map<std::string, double> batch1;
    for (int batch : batches) {
      double first = 0;  // the first dtype's tokens/s at this batch size
      for (const std::string& dtype : dtypes) {
        Engine& engine = *engines[dtype];
        const double bound = bandwidth / static_cast<double>(engine.weight_bytes());  // steps per second
        const double step = decode_step_seconds(engine, batch, n);
        const double tokens_per_s = batch / step;
        if (batch1[dtype] == 0) batch1[dtype] = tokens_per_s;
        if (first == 0) first = tokens_per_s;
        fmt::print(
            "{} batch {:>2}: {:8.1f} tokens/s ({:6.1f} ms/step); {:.2f} of the bandwidth bound ({:.1f} steps/s); "
            "{:.2f}x batch {}; {:.2f}x {}\n",
            dtype, batch, tokens_per_s, step * 1e3, (1.0 / step) / bound, bound, tokens_per_s / batch1[dtype], batches[0],
            tokens_per_s / first, dtypes[0]);
      }
    }
    if (prefill_tokens <= 0) continue;
    double first = 0;
    for (const std::string& dtype : dtypes) {
      const double rate = prefill_tokens_per_s(*engines[dtype], prefill_tokens);
      if (first == 0) first = rate;
      fmt::print("{} prefill of {} tokens: {:.1f} tokens/s; {:.2f}x {}\n", dtype, prefill_tokens, rate, rate / first, dtypes[0]);
    }
  }
  return 0;
}
