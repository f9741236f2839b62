#include "runtime/tokenizer/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <fmt/format.h>
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <queue>

#include "core/error.h"
#include "runtime/tokenizer/byte_level.h"

namespace rankserve::runtime {
namespace {

// openai/gpt-2 encoder.py's pre-tokenizer,
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// splits off contractions, then runs of letters, digits or other symbols (each with at most one
// leading space), then whitespace runs that leave their last space to the word after them. \s is
// spelled \p{White_Space} because that is what \s means in Python's regex module (U+0085 yes;
// U+180E, U+FEFF no), while PCRE2's \s also takes U+180E.
constexpr std::string_view kPattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+)"
                                      R"(|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+)";

// Hugging Face's BPE cache limits: at most 10,000 words, none longer than 256 bytes, so the memory a
// stream of unusual words can take stays bounded.
constexpr std::size_t kCacheCapacity = 10'000;
constexpr std::size_t kMaxCachedWordBytes = 256;

// Ids index a vector; this bounds what a corrupt file can make us allocate.
constexpr int64_t kMaxVocabSize = int64_t{1} << 24;

struct Merge {
  uint32_t rank;  // position in merges.txt: lower merges first
  int32_t merged_id;
};

uint64_t pair_key(int32_t left, int32_t right) {
  return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
}

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
using MatchData = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

[[noreturn]] void fail_load(std::string_view origin, const std::string& what) {
  throw Error(ErrorCode::load, fmt::format("tokenizer: {}: {}", origin, what));
}

std::string spelling_of_byte(unsigned char b) {
  std::string spelling;
  byte_level::append_spelling(spelling, std::string_view(reinterpret_cast<const char*>(&b), 1));
  return spelling;
}

}  // namespace

struct BpeTokenizer::Impl {
  std::vector<std::string> texts;  // raw bytes of each id; empty for an unused id
  std::vector<bool> used;          // whether an id has a token
  std::unordered_map<std::string, int32_t> ids_by_text;
  std::array<int32_t, 256> byte_ids{};  // the single-byte token of each byte
  std::unordered_map<uint64_t, Merge> merges;
  std::vector<AddedToken> added;  // longest content first, so a tie at one position takes the longest
  std::unique_ptr<pcre2_code, CodeDeleter> pattern;
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;  // word bytes -> ids

  void add_token(int32_t id, std::string text, std::string_view origin);
  void encode_ordinary(std::string_view text, pcre2_match_data* match, std::vector<int32_t>& ids) const;
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;
  std::vector<int32_t> merge_word(std::string_view word) const;
};

void BpeTokenizer::Impl::add_token(int32_t id, std::string text, std::string_view origin) {
  if (id < 0 || id >= kMaxVocabSize) {
    fail_load(origin, fmt::format("token {:?} has id {}; expected an id in [0, {})", text, id, kMaxVocabSize));
  }
  auto index = static_cast<std::size_t>(id);
  if (index >= texts.size()) {
    texts.resize(index + 1);
    used.resize(index + 1, false);
  }
  texts[index] = text;
  used[index] = true;
  ids_by_text[std::move(text)] = id;
}

BpeTokenizer BpeTokenizer::from_model(const BpeModel& model) {
  auto impl = std::make_unique<Impl>();
  auto is_added = [&](const std::string& text) {
    return std::any_of(model.added_tokens.begin(), model.added_tokens.end(),
                       [&](const AddedToken& token) { return token.content == text; });
  };
  for (const auto& [spelling, id] : model.vocab) {
    std::optional<std::string> bytes = byte_level::bytes_of_spelling(spelling);
    // Some tokenizer.json files also list added tokens in model.vocab, spelled as raw text.
    if (!bytes && is_added(spelling)) bytes = spelling;
    if (!bytes) {
      fail_load(model.vocab_origin,
                fmt::format("token {:?} (id {}) has a character outside GPT-2's byte-level alphabet; expected a "
                            "byte-level BPE vocabulary (GPT-2, OPT, RoBERTa), not a SentencePiece one",
                            spelling, id));
    }
    if (id >= 0 && static_cast<std::size_t>(id) < impl->used.size() && impl->used[id]) {
      fail_load(model.vocab_origin,
                fmt::format("tokens {:?} and {:?} share id {}; expected one token per id", impl->texts[id], *bytes, id));
    }
    impl->add_token(id, std::move(*bytes), model.vocab_origin);
  }
  for (int b = 0; b < 256; ++b) {
    std::string spelling = spelling_of_byte(static_cast<unsigned char>(b));
    auto it = model.vocab.find(spelling);
    if (it == model.vocab.end()) {
      fail_load(model.vocab_origin, fmt::format("byte 0x{:02X} (spelled {:?}) has no token; expected all 256 bytes "
                                                "in a byte-level vocabulary",
                                                b, spelling));
    }
    impl->byte_ids[b] = it->second;
  }
  for (std::size_t rank = 0; rank < model.merges.size(); ++rank) {
    const auto& [left, right] = model.merges[rank];
    std::array<int32_t, 3> ids{};
    std::array<std::string, 3> parts{left, right, left + right};
    for (std::size_t i = 0; i < parts.size(); ++i) {
      auto it = model.vocab.find(parts[i]);
      if (it == model.vocab.end()) {
        fail_load(model.merges_origin,
                  fmt::format("merge {} ({:?}) needs token {:?}, which is not in the vocabulary; expected the "
                              "vocabulary these merges were made with",
                              rank + 1, left + " " + right, parts[i]));
      }
      ids[i] = it->second;
    }
    // A repeated pair keeps its last rank, as the dict in encoder.py does.
    impl->merges[pair_key(ids[0], ids[1])] = Merge{static_cast<uint32_t>(rank), ids[2]};
  }
  for (const AddedToken& token : model.added_tokens) {
    if (token.content.empty()) fail_load(model.vocab_origin, fmt::format("added token {} is empty", token.id));
    impl->add_token(token.id, token.content, model.vocab_origin);
    impl->added.push_back(token);
  }
  std::stable_sort(impl->added.begin(), impl->added.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });

  int error = 0;
  PCRE2_SIZE offset = 0;
  // PCRE2_MATCH_INVALID_UTF: ill-formed bytes match nothing instead of failing the match (encode()
  // gives them their own piece).
  impl->pattern.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern.data()), kPattern.size(),
                                    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr));
  RANKSERVE_CHECK(impl->pattern != nullptr, fmt::format("PCRE2 error {} compiling GPT-2's pattern", error));
  // Without JIT (a PCRE2 built without it) pcre2_match interprets the pattern: slower, same result.
  pcre2_jit_compile(impl->pattern.get(), PCRE2_JIT_COMPLETE);
  return BpeTokenizer(std::move(impl));
}

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;
BpeTokenizer& BpeTokenizer::operator=(BpeTokenizer&&) noexcept = default;
BpeTokenizer::~BpeTokenizer() = default;

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  MatchData match(pcre2_match_data_create_from_pattern(impl_->pattern.get(), nullptr));
  RANKSERVE_CHECK(match != nullptr, "out of memory for PCRE2 match data");
  const auto& added = impl_->added;
  // Next occurrence of each added token at or after `pos`; recomputed once `pos` passes it.
  std::vector<std::size_t> next(added.size());
  for (std::size_t k = 0; k < added.size(); ++k) next[k] = text.find(added[k].content);
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t best = added.size();
    for (std::size_t k = 0; k < added.size(); ++k) {
      if (next[k] < pos) next[k] = text.find(added[k].content, pos);
      if (next[k] != std::string_view::npos && (best == added.size() || next[k] < next[best])) best = k;
    }
    if (best == added.size()) {
      impl_->encode_ordinary(text.substr(pos), match.get(), ids);
      break;
    }
    std::size_t start = next[best];
    std::size_t end = start + added[best].content.size();
    if (added[best].lstrip) {
      while (start > pos && is_ascii_space(text[start - 1])) --start;
    }
    if (added[best].rstrip) {
      while (end < text.size() && is_ascii_space(text[end])) ++end;
    }
    impl_->encode_ordinary(text.substr(pos, start - pos), match.get(), ids);
    ids.push_back(added[best].id);
    pos = end;
  }
  return ids;
}

void BpeTokenizer::Impl::encode_ordinary(std::string_view text, pcre2_match_data* match, std::vector<int32_t>& ids) const {
  std::size_t pos = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(pattern.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos, 0, match, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) {
      encode_word(text.substr(pos), ids);  // a tail of ill-formed UTF-8
      return;
    }
    if (rc < 0) {
      std::array<PCRE2_UCHAR, 256> message{};
      pcre2_get_error_message(rc, message.data(), message.size());
      throw Error(ErrorCode::runtime, fmt::format("tokenizer: pre-tokenizer match failed at byte {}: {}", pos,
                                                  reinterpret_cast<const char*>(message.data())));
    }
    const PCRE2_SIZE* offsets = pcre2_get_ovector_pointer(match);
    RANKSERVE_CHECK(offsets[1] > offsets[0] && offsets[0] >= pos, "GPT-2's pattern never matches empty text");
    // Bytes the pattern skipped are ill-formed UTF-8: they become a piece of their own.
    if (offsets[0] > pos) encode_word(text.substr(pos, offsets[0] - pos), ids);
    encode_word(text.substr(offsets[0], offsets[1] - offsets[0]), ids);
    pos = offsets[1];
  }
}

void BpeTokenizer::Impl::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.size() == 1) {
    ids.push_back(byte_ids[static_cast<unsigned char>(word[0])]);
    return;
  }
  bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex);
    auto it = cache.find(std::string(word));
    if (it != cache.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> merged = merge_word(word);
  ids.insert(ids.end(), merged.begin(), merged.end());
  if (cacheable) {
    std::lock_guard lock(cache_mutex);
    if (cache.size() < kCacheCapacity) cache.emplace(std::string(word), std::move(merged));
  }
}

// Applies merges lowest rank first, the leftmost occurrence first among equal ranks: the result of
// encoder.py's bpe() loop, in O(n log n) with a heap instead of its O(n^2) rescans, so a long run of
// punctuation or a base64 blob in a prompt stays cheap.
std::vector<int32_t> BpeTokenizer::Impl::merge_word(std::string_view word) const {
  struct Symbol {
    int32_t id;
    int32_t prev;  // index of the live symbol before this one, -1 at the start
    int32_t next;  // index of the live symbol after this one, -1 at the end
    bool alive;
  };
  struct Candidate {
    uint32_t rank;
    int32_t left;  // index of the left symbol of the pair
    bool operator>(const Candidate& other) const { return rank != other.rank ? rank > other.rank : left > other.left; }
  };
  auto n = static_cast<int32_t>(word.size());
  std::vector<Symbol> symbols(word.size());
  for (int32_t i = 0; i < n; ++i) {
    symbols[i] = Symbol{byte_ids[static_cast<unsigned char>(word[i])], i - 1, i + 1 < n ? i + 1 : -1, true};
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto find_merge = [&](int32_t left) -> const Merge* {
    if (left < 0 || symbols[left].next < 0) return nullptr;
    auto it = merges.find(pair_key(symbols[left].id, symbols[symbols[left].next].id));
    return it == merges.end() ? nullptr : &it->second;
  };
  auto offer = [&](int32_t left) {
    if (const Merge* merge = find_merge(left)) queue.push(Candidate{merge->rank, left});
  };
  for (int32_t i = 0; i + 1 < n; ++i) offer(i);
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.left];
    if (!left.alive) continue;
    // A stale candidate: an earlier merge changed this pair since it was offered.
    const Merge* merge = find_merge(top.left);
    if (merge == nullptr || merge->rank != top.rank) continue;
    Symbol& right = symbols[left.next];
    left.id = merge->merged_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    offer(left.prev);
    offer(top.left);
  }
  std::vector<int32_t> ids;
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
  return ids;
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::string bytes;
  for (int32_t id : ids) bytes.append(token_text(id));
  std::string text;
  text.reserve(bytes.size());
  byte_level::append_utf8_lossy(text, bytes, true);
  return text;
}

int32_t BpeTokenizer::vocab_size() const { return static_cast<int32_t>(impl_->texts.size()); }

std::optional<int32_t> BpeTokenizer::token_id(std::string_view token) const {
  auto it = impl_->ids_by_text.find(std::string(token));
  if (it == impl_->ids_by_text.end()) return std::nullopt;
  return it->second;
}

std::string_view BpeTokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= vocab_size() || !impl_->used[id]) {
    throw Error(ErrorCode::usage, fmt::format("tokenizer: token id {} has no token; expected an id in [0, {}) "
                                              "(check that the model and its tokenizer files belong together)",
                                              id, vocab_size()));
  }
  return impl_->texts[id];
}

std::string IncrementalDecoder::push(int32_t id) { return release(tokenizer_->token_text(id)); }

IncrementalDecoder::Decoded IncrementalDecoder::push_token(int32_t id) {
  const std::string_view bytes = tokenizer_->token_text(id);
  Decoded decoded;
  byte_level::append_utf8_lossy(decoded.token, bytes, true);
  decoded.text = release(bytes);
  return decoded;
}

std::string IncrementalDecoder::release(std::string_view bytes) {
  pending_.append(bytes);
  std::string text;
  pending_.erase(0, byte_level::append_utf8_lossy(text, pending_, false));
  return text;
}

std::string IncrementalDecoder::finish() {
  std::string text;
  byte_level::append_utf8_lossy(text, pending_, true);
  pending_.clear();
  return text;
}

}  // namespace rankserve::runtime
