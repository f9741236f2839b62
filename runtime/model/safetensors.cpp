#include "runtime/model/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "runtime/core/error.h"

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

}  // namespace

struct TensorEntry {
  at::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets from the start of the file
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY);
    if (fd_ < 0) throw Error(ErrorCode::load, fmt::format("load: {}: cannot open: {}", path, std::strerror(errno)));
    struct stat st {};
    ::fstat(fd_, &st);
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ < 8) fail("file is shorter than the 8-byte header length");
    map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (map_ == MAP_FAILED) fail(fmt::format("mmap failed: {}", std::strerror(errno)));
    uint64_t header_length = 0;
    std::memcpy(&header_length, map_, 8);  // little-endian on every platform we build for
    if (header_length > size_ - 8) fail(fmt::format("header length {} exceeds the file size {}", header_length, size_));
    parse_header(std::string_view(static_cast<const char*>(map_) + 8, header_length), 8 + header_length);
  }
  ~SafetensorsFile() {
    if (map_ && map_ != MAP_FAILED) ::munmap(map_, size_);
    if (fd_ >= 0) ::close(fd_);
  }
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorEntry>& entries() const { return entries_; }

  // A view of the whole tensor on the mapping (no copy until sliced and converted).
  at::Tensor view(const std::string& name) const {
    const TensorEntry& e = entries_.at(name);
    return at::from_blob(static_cast<char*>(map_) + e.begin, e.shape, at::TensorOptions().dtype(e.dtype));
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::load, fmt::format("load: {}: {} (file truncated or not safetensors?)", path_, what));
  }

 private:
  void parse_header(std::string_view text, uint64_t data_start) {
    json::value header;
    try {
      header = json::parse(text);
    } catch (const std::exception& e) {
      fail(fmt::format("header is not JSON: {}", e.what()));
    }
    if (!header.is_object()) fail("header is not a JSON object");
    for (const auto& [key, value] : header.as_object()) {
      if (key == "__metadata__") continue;
      const std::string name(key);
      try {
        const auto& o = value.as_object();
        TensorEntry e;
        e.dtype = dtype_from(std::string(o.at("dtype").as_string()), path_, name);
        for (const auto& d : o.at("shape").as_array()) e.shape.push_back(d.to_number<int64_t>());
        const auto& offsets = o.at("data_offsets").as_array();
        e.begin = data_start + offsets.at(0).to_number<uint64_t>();
        e.end = data_start + offsets.at(1).to_number<uint64_t>();
        int64_t numel = 1;
        for (int64_t d : e.shape) numel *= d;
        if (e.end > size_ || e.end < e.begin) fail(fmt::format("tensor {} ends at byte {} past the file end {}", name, e.end, size_));
        if (e.end - e.begin != static_cast<uint64_t>(numel) * at::elementSize(e.dtype)) {
          fail(fmt::format("tensor {} has {} bytes for shape of {} elements", name, e.end - e.begin, numel));
        }
        entries_[name] = std::move(e);
      } catch (const Error&) {
        throw;
      } catch (const std::exception& ex) {
        fail(fmt::format("tensor {} has a malformed header entry: {}", name, ex.what()));
      }
    }
  }

  std::string path_;
  int fd_ = -1;
  void* map_ = nullptr;
  uint64_t size_ = 0;
  std::map<std::string, TensorEntry> entries_;
};

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& path) {
  SafetensorsCheckpoint checkpoint;
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
    } else {
      files.push_back((fs::path(path) / "model.safetensors").string());
    }
  } else {
    files.push_back(path);
  }
  for (const std::string& file : files) {
    auto opened = std::make_shared<SafetensorsFile>(file);
    for (const auto& [name, entry] : opened->entries()) checkpoint.by_tensor_[name] = opened;
  }
  return checkpoint;
}

bool SafetensorsCheckpoint::contains(const std::string& name) const { return by_tensor_.count(name) > 0; }

std::vector<int64_t> SafetensorsCheckpoint::shape(const std::string& name) const {
  auto it = by_tensor_.find(name);
  if (it == by_tensor_.end()) throw Error(ErrorCode::load, fmt::format("load: checkpoint has no tensor {}", name));
  return it->second->entries().at(name).shape;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, file] : by_tensor_) out.push_back(name);
  return out;
}

at::Tensor SafetensorsCheckpoint::read(const std::string& name, const TensorSlice& slice, at::ScalarType dtype) const {
  auto it = by_tensor_.find(name);
  if (it == by_tensor_.end()) throw Error(ErrorCode::load, fmt::format("load: checkpoint has no tensor {}", name));
  const SafetensorsFile& file = *it->second;
  at::Tensor whole = file.view(name);
  at::Tensor part = whole;
  if (whole.dim() > 0) {
    if (slice.dim >= whole.dim()) file.fail(fmt::format("tensor {} has {} dims; cannot slice dim {}", name, whole.dim(), slice.dim));
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
    header[name] = json::object{{"dtype", dtype_name(t.scalar_type())}, {"shape", shape}, {"data_offsets", json::array{offset, offset + bytes}}};
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
