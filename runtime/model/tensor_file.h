// Internal to the checkpoint readers: one memory-mapped file and where each tensor lies in it.
// The format parsers (safetensors, torch.save zip) fill the entries; views are zero-copy.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace rankserve::runtime {

struct TensorEntry {
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements; empty: contiguous
  uint64_t offset = 0;           // bytes from the start of the file
};

class TensorFile {
 public:
  explicit TensorFile(const std::string& path);  // maps the file; throws Error(load) naming it
  // Maps bytes [offset, offset + length) of `path` (a member of an uncompressed archive), named
  // `name` in messages.
  TensorFile(const std::string& path, uint64_t offset, uint64_t length, const std::string& name);
  // Owns `bytes` (a member decompressed from a gzip archive), named `name` in messages.
  TensorFile(std::string bytes, const std::string& name);
  ~TensorFile();
  TensorFile(const TensorFile&) = delete;
  TensorFile& operator=(const TensorFile&) = delete;

  const std::string& path() const { return path_; }
  const char* data() const { return static_cast<const char*>(map_) + base_; }
  uint64_t size() const { return size_; }
  std::map<std::string, TensorEntry>& entries() { return entries_; }
  const std::map<std::string, TensorEntry>& entries() const { return entries_; }

  // Adds an entry after checking it lies inside the file.
  void add(const std::string& name, TensorEntry entry);
  at::Tensor view(const std::string& name) const;
  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string path_;
  int fd_ = -1;
  void* map_ = nullptr;
  uint64_t mapped_ = 0;  // bytes mapped (the whole file)
  uint64_t base_ = 0;    // where this file's bytes start in the mapping
  uint64_t size_ = 0;
  std::string owned_;
  std::map<std::string, TensorEntry> entries_;
};

void parse_safetensors(TensorFile& file);
void parse_torch_zip(TensorFile& file);  // torch.save's zip: data.pkl + data/<key> records

// One tensor of a torch.save pickle. entry.offset counts bytes from the start of its storage's
// record (data/<storage_key>), not of the file.
struct PickledTensor {
  std::string name;
  std::string storage_key;
  TensorEntry entry;
};

// The tensors of a torch.save state_dict pickle (data.pkl), in order; entries that are not
// tensors are skipped. Throws std::exception when the pickle is malformed or not a dict
// (parse_torch_zip names the file). Used by parse_torch_zip and the pickle fuzzer.
std::vector<PickledTensor> read_torch_pickle(std::string_view pickle);

}  // namespace rankserve::runtime
