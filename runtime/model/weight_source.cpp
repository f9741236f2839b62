#include "runtime/model/weight_source.h"

#include <fmt/format.h>

#include "core/error.h"

namespace rankserve::runtime {
namespace {

class CheckpointSource final : public WeightSource {
 public:
  explicit CheckpointSource(const std::string& path) : checkpoint_(MappedCheckpoint::open(path)) {}

  bool contains(const std::string& name) const override { return checkpoint_.contains(name); }

  at::Tensor read(const std::string& name, const std::vector<int64_t>& shape, const TensorSlice& slice, at::ScalarType dtype,
                  Init) const override {
    checkpoint_.expect(name, shape);
    return checkpoint_.read(name, slice, dtype);
  }

  uint64_t bytes_read() const override { return checkpoint_.bytes_read(); }

 private:
  MappedCheckpoint checkpoint_;
};

uint64_t fnv1a(const std::string& text) {  // stable across builds, unlike std::hash
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

// splitmix64 on int64 tensors; logical right shifts are emulated with a mask.
at::Tensor mix(at::Tensor x) {
  auto shr = [](const at::Tensor& v, int bits) { return at::bitwise_and(v.__rshift__(bits), (int64_t{1} << (64 - bits)) - 1); };
  x = x.mul(static_cast<int64_t>(0xBF58476D1CE4E5B9ULL));
  x = at::bitwise_xor(x, shr(x, 27));
  x = x.mul(static_cast<int64_t>(0x94D049BB133111EBULL));
  x = at::bitwise_xor(x, shr(x, 31));
  return x;
}

class RandomSource final : public WeightSource {
 public:
  explicit RandomSource(uint64_t seed) : seed_(seed) {}
  bool contains(const std::string&) const override { return true; }

  at::Tensor read(const std::string& name, const std::vector<int64_t>& shape, const TensorSlice& slice, at::ScalarType dtype,
                  Init init) const override {
    std::vector<int64_t> out_shape = shape;
    const int64_t length = slice.length < 0 ? shape[slice.dim] - slice.start : slice.length;
    out_shape[slice.dim] = length;
    auto options = at::TensorOptions().dtype(dtype);
    if (init == Init::ones) return at::ones(out_shape, options);
    if (init == Init::zeros) return at::zeros(out_shape, options);
    // Flat indices of the slice's elements within the whole tensor.
    at::Tensor index;
    auto i64 = at::TensorOptions().dtype(at::kLong);
    if (shape.size() == 1) {
      index = at::arange(slice.start, slice.start + length, i64);
    } else {
      const int64_t cols = shape[1];
      at::Tensor rows = slice.dim == 0 ? at::arange(slice.start, slice.start + length, i64) : at::arange(shape[0], i64);
      at::Tensor columns = slice.dim == 1 ? at::arange(slice.start, slice.start + length, i64) : at::arange(cols, i64);
      index = rows.unsqueeze(1).mul(cols).add(columns.unsqueeze(0));
    }
    const int64_t salt = static_cast<int64_t>(fnv1a(name) ^ (seed_ * 0x9E3779B97F4A7C15ULL));
    at::Tensor bits = mix(index.mul(static_cast<int64_t>(0x9E3779B97F4A7C15ULL)).add(salt));
    // Top 24 bits -> uniform in [-1, 1), scaled to a standard deviation of 0.02.
    at::Tensor uniform = at::bitwise_and(bits.__rshift__(40), 0xFFFFFF).to(at::kFloat).div(float(1 << 23)).sub(1.0f);
    return uniform.mul(0.02f * 1.7320508f).to(dtype);
  }

  uint64_t bytes_read() const override { return 0; }

 private:
  uint64_t seed_;
};

}  // namespace

std::unique_ptr<WeightSource> open_checkpoint_source(const std::string& path) { return std::make_unique<CheckpointSource>(path); }
std::unique_ptr<WeightSource> random_source(uint64_t seed) { return std::make_unique<RandomSource>(seed); }

}  // namespace rankserve::runtime
