// The projections of one decode (or prefill) step of a 125M model (12 layers of QKV 2304x768, output
// 768x768, MLP 3072x768 and 768x3072, then the 50304x768 output layer: 501 MB in float32), each way
// the model can run them: cpu_project per weight type, and BLAS (at::mv for one row, else at::linear;
// half-precision weights widened to float32 for the call), against the read bandwidth measured in the
// same run. Measures the choices cpu_linear makes (runtime/model/cpu_kernels.cpp). Prints, never
// pass/fail. Usage: project_bench [intra-op threads, default 1,2] [rows, default 1,8,32,128,512]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "bench/blas_threads.h"
#include "runtime/model/cpu_kernels.h"

using namespace rankserve::runtime;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> out;
  for (std::string rest = text; !rest.empty();) {
    const size_t comma = rest.find(',');
    out.push_back(std::stoi(rest.substr(0, comma)));
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
  }
  return out;
}

// Best seconds of `runs` calls of fn (after one warm-up).
double best_seconds(int runs, const std::function<void()>& fn) {
  fn();
  double best = 1e30;
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  return best;
}

std::vector<at::Tensor> step_weights(at::ScalarType type) {
  std::vector<at::Tensor> weights;
  for (int layer = 0; layer < 12; ++layer) {
    for (auto [out, in] : std::vector<std::pair<int64_t, int64_t>>{{2304, 768}, {768, 768}, {3072, 768}, {768, 3072}}) {
      weights.push_back(at::randn({out, in}).div(30).to(type));
    }
  }
  weights.push_back(at::randn({50304, 768}).div(30).to(type));
  return weights;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<int> thread_counts = parse_list(argc > 1 ? argv[1] : "1,2");
  const std::vector<int> row_counts = parse_list(argc > 2 ? argv[2] : "1,8,32,128,512");
  fmt::print("project_bench: cpu kernels: {}\n", cpu_kernels_chosen());
  const std::vector<at::Tensor> f32 = step_weights(at::kFloat), bf16 = step_weights(at::kBFloat16), f16 = step_weights(at::kHalf);
  double params = 0;
  for (const at::Tensor& w : f32) params += static_cast<double>(w.numel());
  at::Tensor buffer = at::ones({int64_t{1} << 28}, at::kFloat);  // 1 GiB, twice the VM's L3
  for (int threads : thread_counts) {
    at::set_num_threads(threads);
    const double read = best_seconds(5, [&] { (void)buffer.sum().item<float>(); });
    const double bandwidth = static_cast<double>(buffer.nbytes()) / read;
    fmt::print("\n{} intra-op threads: read bandwidth {:.2f} GB/s (at::sum of 1 GiB, best of 5)\n", threads, bandwidth / 1e9);
    for (int rows : row_counts) {
      const at::Tensor x_narrow = at::randn({rows, 768}), x_wide = at::randn({rows, 3072});
      // blas: at::linear on OpenBLAS's own pool of `threads`; cpu_linear: what the engine calls, its BLAS
      // calls single-threaded and split over the intra-op threads (blas_threads_per_call).
      enum class Call { cpu_project, blas, cpu_linear };
      struct Way {
        std::string name;
        const std::vector<at::Tensor>* weights;
        Call call;
        bool dot_products;
      };
      const std::vector<Way> ways{
          {"fp32 cpu_project", &f32, Call::cpu_project, true}, {"fp32 BLAS", &f32, Call::blas, true},
          {"fp32 cpu_linear", &f32, Call::cpu_linear, true},   {"bf16 cpu_project", &bf16, Call::cpu_project, true},
          {"bf16 portable", &bf16, Call::cpu_project, false},  {"bf16 BLAS widened", &bf16, Call::blas, true},
          {"bf16 cpu_linear", &bf16, Call::cpu_linear, true},  {"fp16 cpu_project", &f16, Call::cpu_project, true},
          {"fp16 BLAS widened", &f16, Call::blas, true},       {"fp16 cpu_linear", &f16, Call::cpu_linear, true}};
      for (const Way& way : ways) {
        const at::ScalarType x_type = way.weights == &f32 ? at::kFloat : (*way.weights)[0].scalar_type();
        const at::Tensor xn = x_narrow.to(x_type), xw = x_wide.to(x_type);
        allow_avx512_bf16(way.dot_products);
        if (way.call == Call::blas) rankserve::bench::set_openblas_threads(threads);
        if (way.call == Call::cpu_linear) (void)blas_threads_per_call();
        const double seconds = best_seconds(rows >= 128 ? 1 : 5, [&] {
          for (const at::Tensor& w : *way.weights) {
            const at::Tensor& xi = w.size(1) == 768 ? xn : xw;
            if (way.call == Call::cpu_project) {
              (void)cpu_project(xi, w, {});
            } else if (way.call == Call::cpu_linear) {
              (void)cpu_linear(xi, w, {});
            } else if (rows == 1) {
              (void)at::mv(w.to(at::kFloat), xi[0].to(at::kFloat));
            } else {
              (void)at::linear(xi.to(at::kFloat), w.to(at::kFloat));
            }
          }
        });
        const double bytes = params * static_cast<double>(at::elementSize((*way.weights)[0].scalar_type()));
        fmt::print("rows {:>3} {:<18} {:8.2f} ms  {:6.2f} GB/s of weights ({:.2f} of the bound)  {:6.1f} GFLOP/s\n", rows,
                   way.name, seconds * 1e3, bytes / seconds / 1e9, bytes / seconds / bandwidth,
                   2 * params * rows / seconds / 1e9);
      }
      allow_avx512_bf16(true);
    }
  }
  return 0;
}
