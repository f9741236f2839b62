// Device-to-device copy bandwidth of GPU 0 (bytes read + written per second), the HBM bound the GPU decode
// benchmark (bench/gpu_bench.sh) divides by: cudaMemcpyAsync and a plain copy kernel, best of 10 after a warm-up.
// Usage: hbm_copy [GiB per buffer, default 2]. Prints one line per method; exits 1 without a GPU.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

namespace {

__global__ void copy_kernel(const int4* in, int4* out, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = in[i];
  }
}

bool ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) std::fprintf(stderr, "hbm_copy: %s: %s\n", what, cudaGetErrorString(e));
  return e == cudaSuccess;
}

// Best seconds of one run of `copy` over 10 runs after one warm-up.
template <typename Copy>
float best_seconds(Copy copy) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  copy();
  float best = 1e30f;
  for (int i = 0; i < 10; ++i) {
    cudaEventRecord(start);
    copy();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    if (ms < best) best = ms;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return best / 1e3f;
}

}  // namespace

int main(int argc, char** argv) {
  const double gib = argc > 1 ? std::atof(argv[1]) : 2.0;
  const size_t bytes = static_cast<size_t>(gib * (1 << 30)) / sizeof(int4) * sizeof(int4);
  void *in = nullptr, *out = nullptr;
  if (!ok(cudaMalloc(&in, bytes), "cudaMalloc") || !ok(cudaMalloc(&out, bytes), "cudaMalloc")) return 1;
  cudaMemset(in, 1, bytes);
  const float memcpy_s = best_seconds([&] { cudaMemcpyAsync(out, in, bytes, cudaMemcpyDeviceToDevice); });
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const float kernel_s = best_seconds(
      [&] { copy_kernel<<<sms * 8, 512>>>(static_cast<const int4*>(in), static_cast<int4*>(out), bytes / sizeof(int4)); });
  if (!ok(cudaDeviceSynchronize(), "copy")) return 1;
  std::printf("hbm_copy: cudaMemcpy %.1f GB/s, copy kernel %.1f GB/s (read + written, %.2f GiB buffers)\n",
              2.0 * bytes / memcpy_s / 1e9, 2.0 * bytes / kernel_s / 1e9, bytes / double(1 << 30));
  cudaFree(in);
  cudaFree(out);
  return 0;
}
