// Where a rank's weight slices come from: a safetensors checkpoint or seeded random values.
// Internal to the runtime (torch). read() returns only the requested slice of the named tensor.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "runtime/model/checkpoint.h"

namespace rankserve::runtime {

enum class Init { normal, ones, zeros };  // for random weights; checkpoints ignore it

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool contains(const std::string& name) const = 0;
  // `shape` is the full tensor's expected shape; throws Error(load) naming the tensor when the
  // checkpoint's differs or the tensor is missing.
  virtual at::Tensor read(const std::string& name, const std::vector<int64_t>& shape, const TensorSlice& slice,
                          at::ScalarType dtype, Init init) const = 0;
  virtual uint64_t bytes_read() const = 0;
};

// A Hugging Face weights folder or file: safetensors (single or sharded) or pytorch_model.bin.
std::unique_ptr<WeightSource> open_checkpoint_source(const std::string& path);

// Values depend only on (seed, tensor name, element index): any slicing of a tensor yields the
// same elements, so TP=1 and TP=4 runs of a random model are the same model.
std::unique_ptr<WeightSource> random_source(uint64_t seed);

}  // namespace rankserve::runtime
