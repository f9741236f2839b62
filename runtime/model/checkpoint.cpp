#include "runtime/model/checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "core/error.h"
#include "runtime/model/tensor_file.h"

namespace rankserve::runtime {
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

at::ScalarType dtype_from(const std::string& name, const std::string& file, const std::string& tensor) {
  if (name == "F32") return at::kFloat;
  if (name == "F16") return at::kHalf;
  if (name == "BF16") return at::kBFloat16;
  if (name == "F64") return at::kDouble;
  if (name == "I64") return at::kLong;
  if (name == "I32") return at::kInt;
  if (name == "U8") return at::kByte;
  if (name == "BOOL") return at::kBool;
  throw Error(ErrorCode::load, fmt::format("load: {}: tensor {} has unsupported dtype {}", file, tensor, name));
}

std::string dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kDouble: return "F64";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: throw Error(ErrorCode::runtime, "safetensors: cannot write this dtype");
  }
}

// The product of `shape`; nullopt when a size is negative or the product overflows 64 bits.
std::optional<uint64_t> checked_numel(const std::vector<int64_t>& shape) {
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) return std::nullopt;
  }
  return numel;
}

}  // namespace

TensorFile::TensorFile(const std::string& path) : TensorFile(path, 0, UINT64_MAX, path) {}

TensorFile::TensorFile(const std::string& path, uint64_t offset, uint64_t length, const std::string& name) : path_(name) {
  fd_ = ::open(path.c_str(), O_RDONLY);
  if (fd_ < 0) throw Error(ErrorCode::load, fmt::format("load: {}: cannot open: {}", path, std::strerror(errno)));
  struct stat st {};
  ::fstat(fd_, &st);
  mapped_ = static_cast<uint64_t>(st.st_size);
  if (offset > mapped_) fail("the archive member lies past the end of the archive");
  base_ = offset;
  size_ = std::min(length, mapped_ - offset);
  if (size_ == 0) fail("the file is empty");
  map_ = ::mmap(nullptr, mapped_, PROT_READ, MAP_PRIVATE, fd_, 0);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail(fmt::format("mmap failed: {}", std::strerror(errno)));
  }
}

TensorFile::TensorFile(std::string bytes, const std::string& name) : path_(name), size_(bytes.size()), owned_(std::move(bytes)) {
  if (size_ == 0) fail("the file is empty");
  map_ = owned_.data();
}

TensorFile::~TensorFile() {
  if (map_ && owned_.empty()) ::munmap(map_, mapped_);
  if (fd_ >= 0) ::close(fd_);
}

void TensorFile::fail(const std::string& what) const {
  throw Error(ErrorCode::load, fmt::format("load: {}: {} (file truncated or damaged?)", path_, what));
}

void TensorFile::add(const std::string& name, TensorEntry e) {
  // The bytes the view touches, in checked arithmetic: sizes and strides >= 0 (torch.save writes
  // no negative strides), one stride per dimension, and no overflow on the way.
  std::optional<uint64_t> numel = checked_numel(e.shape);
  bool ok = numel && (e.strides.empty() || e.strides.size() == e.shape.size());
  uint64_t extent = numel.value_or(0);  // elements from the first to one past the last touched
  if (ok && extent > 0 && !e.strides.empty()) {
    extent = 1;
    for (size_t d = 0; d < e.shape.size(); ++d) {
      uint64_t reach = 0;
      ok = ok && e.strides[d] >= 0 &&
           !__builtin_mul_overflow(static_cast<uint64_t>(e.shape[d] - 1), static_cast<uint64_t>(e.strides[d]), &reach) &&
           !__builtin_add_overflow(extent, reach, &extent);
    }
  }
  uint64_t bytes = 0, end = 0;
  ok = ok && !__builtin_mul_overflow(extent, static_cast<uint64_t>(at::elementSize(e.dtype)), &bytes) &&
       !__builtin_add_overflow(e.offset, bytes, &end);
  if (!ok) {
    fail(
        fmt::format("tensor {} has shape [{}] and strides [{}]; expected sizes and strides >= 0, one stride per dimension, "
                    "and a size that fits in 64 bits",
                    name, fmt::join(e.shape, ", "), fmt::join(e.strides, ", ")));
  }
  if (end > size_) fail(fmt::format("tensor {} ends at byte {} past the file end {}", name, end, size_));
  entries_[name] = std::move(e);
}

at::Tensor TensorFile::view(const std::string& name) const {
  const TensorEntry& e = entries_.at(name);
  auto options = at::TensorOptions().dtype(e.dtype);
  char* base = static_cast<char*>(map_) + base_ + e.offset;
  return e.strides.empty() ? at::from_blob(base, e.shape, options) : at::from_blob(base, e.shape, e.strides, options);
}

void parse_safetensors(TensorFile& file) {
  if (file.size() < 8) file.fail("file is shorter than the 8-byte header length");
  uint64_t header_length = 0;
  std::memcpy(&header_length, file.data(), 8);  // little-endian on every platform we build for
  if (header_length > file.size() - 8) {
    file.fail(fmt::format("header length {} exceeds the file size {}", header_length, file.size()));
  }
  const uint64_t data_start = 8 + header_length;
  json::value header;
  try {
    header = json::parse(std::string_view(file.data() + 8, header_length));
  } catch (const std::exception& e) {
    file.fail(fmt::format("header is not JSON: {}", e.what()));
  }
  if (!header.is_object()) file.fail("header is not a JSON object");
  for (const auto& [key, value] : header.as_object()) {
    if (key == "__metadata__") continue;
    const std::string name(key);
    TensorEntry e;
    uint64_t begin = 0, end = 0;
    try {
      const auto& o = value.as_object();
      e.dtype = dtype_from(std::string(o.at("dtype").as_string()), file.path(), name);
      for (const auto& d : o.at("shape").as_array()) e.shape.push_back(d.to_number<int64_t>());
      const auto& offsets = o.at("data_offsets").as_array();
      begin = offsets.at(0).to_number<uint64_t>();
      end = offsets.at(1).to_number<uint64_t>();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& ex) {
      file.fail(fmt::format("tensor {} has a malformed header entry: {}", name, ex.what()));
    }
    const std::optional<uint64_t> numel = checked_numel(e.shape);
    uint64_t bytes = 0;
    if (!numel || __builtin_mul_overflow(*numel, static_cast<uint64_t>(at::elementSize(e.dtype)), &bytes)) {
      file.fail(fmt::format("tensor {} has shape [{}]; expected sizes >= 0 whose product fits in 64 bits", name,
                            fmt::join(e.shape, ", ")));
    }
    if (end < begin || end - begin != bytes) {
      file.fail(fmt::format("tensor {} has {} bytes for shape of {} elements", name, end - begin, *numel));
    }
    e.offset = data_start + begin;
    file.add(name, std::move(e));
  }
}

MappedCheckpoint MappedCheckpoint::open(const std::string& path) {
  MappedCheckpoint checkpoint;
  checkpoint.origin_ = path;
  std::vector<std::string> files;
  if (fs::is_directory(path)) {
    const fs::path index = fs::path(path) / "model.safetensors.index.json";
    if (fs::exists(index)) {
      std::ifstream in(index);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      try {
        std::set<std::string> unique;
        const json::value parsed = json::parse(text);
        for (const auto& [name, file] : parsed.at("weight_map").as_object()) unique.insert(std::string(file.as_string()));
        for (const auto& f : unique) files.push_back((fs::path(path) / f).string());
      } catch (const std::exception& e) {
        throw Error(ErrorCode::load, fmt::format("load: {}: not a safetensors index: {}", index.string(), e.what()));
      }
    } else if (fs::exists(fs::path(path) / "model.safetensors") || !fs::exists(fs::path(path) / "pytorch_model.bin")) {
      files.push_back((fs::path(path) / "model.safetensors").string());
    } else {
      files.push_back((fs::path(path) / "pytorch_model.bin").string());
    }
  } else {
    files.push_back(path);
  }
  for (const std::string& file : files) {
    auto opened = std::make_shared<TensorFile>(file);
    // torch.save files are zips ("PK\3\4"); safetensors files start with their header length.
    if (opened->size() >= 4 && std::memcmp(opened->data(), "PK\3\4", 4) == 0) parse_torch_zip(*opened);
    else parse_safetensors(*opened);
    for (const auto& [name, entry] : opened->entries()) checkpoint.by_tensor_[name] = opened;
  }
  return checkpoint;
}

MappedCheckpoint MappedCheckpoint::open_member(const std::string& archive, uint64_t offset, uint64_t length,
                                               const std::string& name) {
  MappedCheckpoint checkpoint;
  checkpoint.origin_ = name;
  auto opened = std::make_shared<TensorFile>(archive, offset, length, name);
  parse_torch_zip(*opened);
  for (const auto& [tensor, entry] : opened->entries()) checkpoint.by_tensor_[tensor] = opened;
  return checkpoint;
}

MappedCheckpoint MappedCheckpoint::open_bytes(std::string bytes, const std::string& name) {
  MappedCheckpoint checkpoint;
  checkpoint.origin_ = name;
  auto opened = std::make_shared<TensorFile>(std::move(bytes), name);
  parse_torch_zip(*opened);
  for (const auto& [tensor, entry] : opened->entries()) checkpoint.by_tensor_[tensor] = opened;
  return checkpoint;
}

bool MappedCheckpoint::contains(const std::string& name) const { return by_tensor_.count(name) > 0; }

void MappedCheckpoint::expect(const std::string& name, const std::vector<int64_t>& shape) const {
  auto it = by_tensor_.find(name);
  if (it == by_tensor_.end()) throw Error(ErrorCode::load, fmt::format("load: {}: tensor {} is missing", origin_, name));
  const auto& actual = it->second->entries().at(name).shape;
  if (actual != shape) {
    throw Error(ErrorCode::load, fmt::format("load: {}: tensor {} has shape [{}] but the config implies [{}]", it->second->path(),
                                             name, fmt::join(actual, ", "), fmt::join(shape, ", ")));
  }
}

std::vector<int64_t> MappedCheckpoint::shape(const std::string& name) const {
  auto it = by_tensor_.find(name);
  if (it == by_tensor_.end()) throw Error(ErrorCode::load, fmt::format("load: checkpoint has no tensor {}", name));
  return it->second->entries().at(name).shape;
}

std::vector<std::string> MappedCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, file] : by_tensor_) out.push_back(name);
  return out;
}

at::Tensor MappedCheckpoint::read(const std::string& name, const TensorSlice& slice, at::ScalarType dtype) const {
  auto it = by_tensor_.find(name);
  if (it == by_tensor_.end()) throw Error(ErrorCode::load, fmt::format("load: checkpoint has no tensor {}", name));
  const TensorFile& file = *it->second;
  at::Tensor whole = file.view(name);
  at::Tensor part = whole;
  if (whole.dim() > 0) {
    if (slice.dim >= whole.dim())
      file.fail(fmt::format("tensor {} has {} dims; cannot slice dim {}", name, whole.dim(), slice.dim));
    const int64_t length = slice.length < 0 ? whole.size(slice.dim) - slice.start : slice.length;
    if (slice.start < 0 || slice.start + length > whole.size(slice.dim)) {
      file.fail(fmt::format("tensor {} has {} rows in dim {}; slice [{}, {}) is out of range", name, whole.size(slice.dim),
                            slice.dim, slice.start, slice.start + length));
    }
    part = whole.narrow(slice.dim, slice.start, length);
  }
  *bytes_read_ += static_cast<uint64_t>(part.numel()) * part.element_size();
  return part.to(dtype, /*non_blocking=*/false, /*copy=*/true).contiguous();
}

void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors) {
  json::object header;
  uint64_t offset = 0;
  std::vector<at::Tensor> ordered;
  for (const auto& [name, tensor] : tensors) {
    at::Tensor t = tensor.contiguous();
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    json::array shape;
    for (int64_t d : t.sizes()) shape.push_back(d);
    header[name] = json::object{
        {"dtype", dtype_name(t.scalar_type())}, {"shape", shape}, {"data_offsets", json::array{offset, offset + bytes}}};
    offset += bytes;
    ordered.push_back(t);
  }
  std::string text = json::serialize(header);
  while (text.size() % 8 != 0) text += ' ';
  std::ofstream out(path, std::ios::binary);
  const uint64_t length = text.size();
  out.write(reinterpret_cast<const char*>(&length), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const at::Tensor& t : ordered) {
    out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
  }
  if (!out) throw Error(ErrorCode::load, fmt::format("load: cannot write {}", path));
}

}  // namespace rankserve::runtime
