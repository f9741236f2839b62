// torch.save zip files (pytorch_model.bin, NeMo's model_weights.ckpt): a pickle (data.pkl) that
// describes the tensors, and one uncompressed record per storage (data/<key>). Debian's libtorch
// cannot unpickle a real state_dict (an OrderedDict with _metadata), so this reads the pickle
// opcodes torch.save emits itself and maps the storages in place.
#include <sys/types.h>  // off_t, which in_memory_adapter.h uses without including

#include <caffe2/serialize/in_memory_adapter.h>
#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>

#include <cstring>
#include <deque>
#include <memory>
#include <string_view>
#include <variant>

#include "core/error.h"
#include "runtime/model/tensor_file.h"

namespace rankserve::runtime {
namespace {

struct Object;
// Objects live in the Unpickler's arena: a pickle can make cycles (a list appended to itself through
// the memo), which shared ownership would leak, and deep nesting, which it would free recursively.
using Ref = Object*;
struct Global {
  std::string module, name;
};
struct Storage {
  std::string key;
  at::ScalarType dtype;
};
struct TensorRef {
  Storage storage;
  int64_t offset;
  std::vector<int64_t> shape, strides;
};
struct Mark {};
struct Dict {
  std::vector<std::pair<Ref, Ref>> items;
};
using Tuple = std::vector<Ref>;
struct Object {
  std::variant<std::monostate, bool, int64_t, double, std::string, Tuple, Dict, Global, Storage, TensorRef, Mark> value;
};

at::ScalarType storage_dtype(const std::string& name) {
  if (name == "FloatStorage") return at::kFloat;
  if (name == "HalfStorage") return at::kHalf;
  if (name == "BFloat16Storage") return at::kBFloat16;
  if (name == "DoubleStorage") return at::kDouble;
  if (name == "LongStorage") return at::kLong;
  if (name == "IntStorage") return at::kInt;
  if (name == "ByteStorage") return at::kByte;
  if (name == "BoolStorage") return at::kBool;
  throw std::runtime_error("unsupported storage type torch." + name);
}

class Unpickler {
 public:
  Unpickler(const char* data, size_t size) : p_(data), end_(data + size) {}

  Ref run() {
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;             // PROTO
        case 0x95: take(8); break;            // FRAME
        case '}': push(make(Dict{})); break;  // EMPTY_DICT
        case ']':
        case ')': push(make(Tuple{})); break;  // EMPTY_LIST, EMPTY_TUPLE
        case '(': push(make(Mark{})); break;
        case 'N': push(make(std::monostate{})); break;
        case 0x88: push(make(true)); break;
        case 0x89: push(make(false)); break;
        case 'K': push(make(int64_t{byte()})); break;
        case 'M': push(make(int64_t{uint16()})); break;
        case 'J': push(make(int64_t{static_cast<int32_t>(uint32())})); break;
        case 0x8a: push(make(long1())); break;
        case 'G': push(make(binfloat())); break;
        case 'X': push(make(std::string(take(uint32())))); break;
        case 0x8c:
        case 'U': push(make(std::string(take(byte())))); break;
        case 'T': push(make(std::string(take(uint32())))); break;
        case 'c': {
          std::string module = line(), name = line();
          push(make(Global{module, name}));
          break;
        }
        case 'q': memo_[byte()] = top(); break;
        case 'r': memo_[uint32()] = top(); break;
        case 0x94: memo_[memo_.size()] = top(); break;  // MEMOIZE
        case 'h': push(memo_.at(byte())); break;
        case 'j': push(memo_.at(uint32())); break;
        case 't': push(make(pop_to_mark())); break;
        case 0x85: push(make(Tuple{pop()})); break;
        case 0x86: {
          auto b = pop(), a = pop();
          push(make(Tuple{a, b}));
          break;
        }
        case 0x87: {
          auto c = pop(), b = pop(), a = pop();
          push(make(Tuple{a, b, c}));
          break;
        }
        case 'e': {
          auto items = pop_to_mark();
          auto& list = std::get<Tuple>(top()->value);
          list.insert(list.end(), items.begin(), items.end());
          break;
        }
        case 'a': {
          auto item = pop();
          std::get<Tuple>(top()->value).push_back(item);
          break;
        }
        case 'u': {
          auto items = pop_to_mark();
          auto& dict = std::get<Dict>(top()->value);
          for (size_t i = 0; i + 1 < items.size(); i += 2) dict.items.emplace_back(items[i], items[i + 1]);
          break;
        }
        case 's': {
          auto v = pop(), k = pop();
          std::get<Dict>(top()->value).items.emplace_back(k, v);
          break;
        }
        case 'Q': push(persistent(pop())); break;
        case 'R': {
          auto args = pop(), callable = pop();
          push(reduce(callable, args));
          break;
        }
        case 'b': pop(); break;  // BUILD: the state (OrderedDict _metadata, parameter hooks) changes no tensor
        case '.': return pop();
        default: throw std::runtime_error(fmt::format("unsupported pickle opcode 0x{:02x}", op));
      }
    }
  }

 private:
  template <typename T>
  Ref make(T value) {
    arena_.push_back(Object{std::move(value)});
    return &arena_.back();
  }
  uint8_t byte() { return static_cast<uint8_t>(*take(1).data()); }
  uint16_t uint16() {
    uint16_t v;
    std::memcpy(&v, take(2).data(), 2);
    return v;
  }
  uint32_t uint32() {
    uint32_t v;
    std::memcpy(&v, take(4).data(), 4);
    return v;
  }
  int64_t long1() {
    const uint8_t n = byte();
    std::string_view bytes = take(n);
    int64_t v = 0;
    for (size_t i = 0; i < n && i < 8; ++i) v |= static_cast<int64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
    if (n > 0 && n < 8 && (static_cast<uint8_t>(bytes[n - 1]) & 0x80)) v -= int64_t{1} << (8 * n);
    return v;
  }
  double binfloat() {
    std::string_view b = take(8);
    uint64_t bits = 0;
    for (char c : b) bits = (bits << 8) | static_cast<uint8_t>(c);  // big-endian
    double v;
    std::memcpy(&v, &bits, 8);
    return v;
  }
  std::string_view take(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) throw std::runtime_error("the pickle ends early");
    std::string_view out(p_, n);
    p_ += n;
    return out;
  }
  std::string line() {
    const char* nl = static_cast<const char*>(std::memchr(p_, '\n', static_cast<size_t>(end_ - p_)));
    if (!nl) throw std::runtime_error("the pickle ends early");
    std::string out(p_, nl);
    p_ = nl + 1;
    return out;
  }
  void push(Ref r) { stack_.push_back(std::move(r)); }
  Ref pop() {
    if (stack_.empty()) throw std::runtime_error("pickle stack underflow");
    Ref r = stack_.back();
    stack_.pop_back();
    return r;
  }
  Ref top() {
    if (stack_.empty()) throw std::runtime_error("pickle stack underflow");
    return stack_.back();
  }
  Tuple pop_to_mark() {
    Tuple items;
    while (true) {
      Ref r = pop();
      if (std::holds_alternative<Mark>(r->value)) break;
      items.insert(items.begin(), r);
    }
    return items;
  }
  static std::vector<int64_t> ints(const Ref& r) {
    std::vector<int64_t> out;
    for (const Ref& e : std::get<Tuple>(r->value)) out.push_back(std::get<int64_t>(e->value));
    return out;
  }
  // ('storage', torch.<Type>Storage, key, location, numel)
  Ref persistent(const Ref& pid) {
    const Tuple& t = std::get<Tuple>(pid->value);
    if (t.size() < 3 || std::get<std::string>(t[0]->value) != "storage") throw std::runtime_error("unknown persistent id");
    return make(Storage{std::get<std::string>(t[2]->value), storage_dtype(std::get<Global>(t[1]->value).name)});
  }
  Ref reduce(const Ref& callable, const Ref& args) {
    const Global& g = std::get<Global>(callable->value);
    const Tuple& a = std::get<Tuple>(args->value);
    if (g.module == "collections" && g.name == "OrderedDict") return make(Dict{});
    if (g.module == "torch._utils" && g.name == "_rebuild_tensor_v2") {
      return make(TensorRef{std::get<Storage>(a.at(0)->value), std::get<int64_t>(a.at(1)->value), ints(a.at(2)), ints(a.at(3))});
    }
    if (g.module == "torch._utils" && g.name == "_rebuild_parameter") return a.at(0);
    throw std::runtime_error(fmt::format("unsupported object {}.{}", g.module, g.name));
  }

  const char* p_;
  const char* end_;
  std::deque<Object> arena_;  // every object made; a deque keeps their addresses
  std::vector<Ref> stack_;
  std::map<size_t, Ref> memo_;
};

}  // namespace

std::vector<PickledTensor> read_torch_pickle(std::string_view pickle) {
  Unpickler unpickler(pickle.data(), pickle.size());
  const Ref root = unpickler.run();
  if (!std::holds_alternative<Dict>(root->value)) throw std::runtime_error("the pickle is not a dict of tensors (a state_dict)");
  std::vector<PickledTensor> out;
  for (const auto& [key, value] : std::get<Dict>(root->value).items) {
    if (!std::holds_alternative<std::string>(key->value) || !std::holds_alternative<TensorRef>(value->value)) continue;
    const TensorRef& t = std::get<TensorRef>(value->value);
    PickledTensor p;
    p.name = std::get<std::string>(key->value);
    p.storage_key = t.storage.key;
    p.entry.dtype = t.storage.dtype;
    p.entry.shape = t.shape;
    p.entry.strides = t.strides;
    p.entry.offset = static_cast<uint64_t>(t.offset) * at::elementSize(t.storage.dtype);
    out.push_back(std::move(p));
  }
  return out;
}

void parse_torch_zip(TensorFile& file) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
  std::vector<PickledTensor> tensors;
  try {
    zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(
        std::make_shared<caffe2::serialize::MemoryReadAdapter>(file.data(), static_cast<off_t>(file.size())));
    auto [pickle, size] = zip->getRecord("data.pkl");
    tensors = read_torch_pickle(std::string_view(static_cast<const char*>(pickle.get()), size));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    file.fail(fmt::format("not a readable torch.save file: {}", std::string(e.what()).substr(0, 300)));
  }
  for (PickledTensor& t : tensors) {
    try {
      // torch.save stores records uncompressed and aligned, so the storage can be mapped in place.
      t.entry.offset += zip->getRecordOffset("data/" + t.storage_key);
    } catch (const std::exception& ex) {
      file.fail(fmt::format("tensor {}: storage {} is missing", t.name, t.storage_key));
    }
    file.add(t.name, std::move(t.entry));
  }
}

}  // namespace rankserve::runtime
