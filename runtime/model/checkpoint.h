// Read-only access to checkpoints whose tensors lie uncompressed in files: safetensors (one file,
// or shards with model.safetensors.index.json) and torch.save zips (pytorch_model.bin). Files are
// memory-mapped; read() copies only the requested slice. Internal to the runtime (torch).
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rankserve::runtime {

struct TensorSlice {
  int64_t dim = 0;  // dimension to slice; the others are read whole
  int64_t start = 0;
  int64_t length = -1;  // -1: to the end
};

class TensorFile;

class MappedCheckpoint {
 public:
  // Opens `path` (a .safetensors or .bin file) or a folder holding model.safetensors, an index
  // file, or pytorch_model.bin.
  // Throws Error(load) naming the file when a header is damaged or a file is missing.
  static MappedCheckpoint open(const std::string& path);

  // A torch.save zip stored uncompressed at [offset, offset + length) of `archive` (a .nemo tar
  // member), named `name` in messages.
  static MappedCheckpoint open_member(const std::string& archive, uint64_t offset, uint64_t length, const std::string& name);

  // A torch.save zip held in memory (a member decompressed from a gzip .nemo), named `name`.
  static MappedCheckpoint open_bytes(std::string bytes, const std::string& name);

  bool contains(const std::string& name) const;
  // Throws Error(load) naming the file when `name` is missing or its shape is not `shape`.
  void expect(const std::string& name, const std::vector<int64_t>& shape) const;
  std::vector<int64_t> shape(const std::string& name) const;
  // Copies the slice into a new CPU tensor of `dtype`. Throws Error(load) naming file and tensor.
  at::Tensor read(const std::string& name, const TensorSlice& slice, at::ScalarType dtype) const;
  std::vector<std::string> names() const;
  uint64_t bytes_read() const { return *bytes_read_; }

 private:
  std::string origin_;  // what was opened, for messages
  std::map<std::string, std::shared_ptr<TensorFile>> by_tensor_;
  std::shared_ptr<uint64_t> bytes_read_ = std::make_shared<uint64_t>(0);
};

// Writes tensors in the safetensors format (used by tests and tools to make real checkpoints).
void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors);

}  // namespace rankserve::runtime
