#include "launcher/hub_download.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstring>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "net/http_client.h"

namespace rankserve::launcher {

namespace fs = std::filesystem;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr auto kApiTimeout = 60s;         // the revision listing: one small JSON answer
constexpr auto kFileAttemptTimeout = 2h;  // one attempt at one file; a cut or stalled one resumes with Range
constexpr int kAttemptsPerFile = 5;       // tries at one file before giving up (each continues where the last stopped)
constexpr int kMaxRedirects = 5;          // the hub redirects LFS files to its CDN once
constexpr auto kProgressInterval = 2s;    // between progress lines of one file
constexpr auto kLockPoll = 200ms;         // how often a waiter retries the lock and looks for progress

// Percent-encodes a path segment (or a path when `keep_slash`): revisions such as refs/pr/1 and file names.
std::string encode(const std::string& text, bool keep_slash) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
  }
  return out;
}

// The hub writes etags quoted, weak ones with W/.
std::string bare_etag(std::string etag) {
  if (etag.rfind("W/", 0) == 0) etag = etag.substr(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return etag;
}

// No network (refused, unresolvable, timed out, TLS failed): the reason, for the fallback to the cache or the error.
struct Unreachable {
  std::string reason;
};

net::Url endpoint_url(const HubSettings& settings) {
  try {
    return net::parse_url(settings.endpoint, "HF_ENDPOINT");
  } catch (const Error& e) {
    throw Error(
        ErrorCode::usage,
        fmt::format("hub: {} (HF_ENDPOINT is the hub or a mirror, e.g. https://huggingface.co or http://mirror:8080)", e.what()));
  }
}

std::vector<std::pair<std::string, std::string>> request_headers(const HubSettings& settings) {
  std::vector<std::pair<std::string, std::string>> headers{{"User-Agent", "rankserve"}};
  if (!settings.token.empty()) headers.emplace_back("Authorization", "Bearer " + settings.token);
  return headers;
}

std::string hub_message(const net::HttpResponse& response) {
  std::string message = response.header("X-Error-Message");
  if (message.empty()) message = response.body.substr(0, 200);
  return message.empty() ? "" : ": " + message;
}

struct Listing {
  std::string commit;
  std::vector<HubFile> files;
};

// GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true: the commit and every file with its size and etag.
Listing list_revision(const net::Url& url, const HubSettings& settings, const HubId& id) {
  net::HttpRequest request;
  request.target = fmt::format("/api/models/{}/revision/{}?blobs=true", id.repo, encode(id.revision, false));
  request.headers = request_headers(settings);
  net::HttpResponse response;
  try {
    response = net::http_request(url, request, kApiTimeout);
  } catch (const Error& e) {
    throw Unreachable{e.what()};
  }
  if (response.status == 401 || response.status == 403) {
    throw Error(
        ErrorCode::load,
        fmt::format("hub: {} answers HTTP {} at {}{} ({})", id.repo, response.status, settings.endpoint, hub_message(response),
                    settings.token.empty() ? "a private or gated repo needs HF_TOKEN, a token with access to it"
                                           : "HF_TOKEN is set but has no access to this repo; check the id"));
  }
  if (response.status == 404) {
    if (response.header("X-Error-Code") == "RevisionNotFound") {
      throw Error(ErrorCode::load, fmt::format("hub: {} has no revision '{}' at {}{} (give a branch, tag or commit after @)",
                                               id.repo, id.revision, settings.endpoint, hub_message(response)));
    }
    throw Error(ErrorCode::load, fmt::format("hub: no model repo {} at {} (HTTP 404{}); check ORG/NAME in --model-path (no local "
                                             "path of that name exists, so it was taken as a hub id)",
                                             id.repo, settings.endpoint, hub_message(response)));
  }
  if (response.status != 200) {
    throw Error(ErrorCode::load, fmt::format("hub: GET {}{} answered HTTP {}{}", settings.endpoint, request.target,
                                             response.status, hub_message(response)));
  }
  Listing listing;
  try {
    const json::object root = json::parse(response.body).as_object();
    listing.commit = json::value_to<std::string>(root.at("sha"));
    for (const json::value& v : root.at("siblings").as_array()) {
      const json::object& s = v.as_object();
      HubFile f;
      f.name = json::value_to<std::string>(s.at("rfilename"));
      if (const auto* lfs = s.if_contains("lfs"); lfs && lfs->is_object()) {
        f.lfs = true;
        f.etag = json::value_to<std::string>(lfs->as_object().at("sha256"));
        f.size = lfs->as_object().at("size").to_number<int64_t>();
      } else {
        f.etag = json::value_to<std::string>(s.at("blobId"));
        f.size = s.at("size").to_number<int64_t>();
      }
      listing.files.push_back(std::move(f));
    }
  } catch (const std::exception& e) {
    throw Error(ErrorCode::load, fmt::format("hub: the listing of {} from {}{} is not the hub's model API JSON (sha, siblings "
                                             "with rfilename, size, blobId, lfs): {}",
                                             to_string(id), settings.endpoint, request.target, e.what()));
  }
  return listing;
}

// flock(2) on a file in the cache: the processes of this host (a job's ranks, or two jobs) take turns.
class RepoLock {
 public:
  RepoLock(const HubSettings& settings, const HubId& id, std::chrono::milliseconds wait_timeout) {
    const fs::path dir = settings.cache_dir / ".locks" / repo_cache_dir(settings, id).filename();
    std::error_code ec;
    fs::create_directories(dir, ec);
    const fs::path path = dir / "rankserve.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      throw Error(ErrorCode::load, fmt::format("hub: cannot create the lock file {}: {} (HF_HUB_CACHE must be writable)",
                                               path.string(), std::strerror(errno)));
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
    log::info("hub: another process on this host is fetching {}; waiting for it (up to {:.0f} s without progress)", id.repo,
              std::chrono::duration<double>(wait_timeout).count());
    const fs::path blobs = repo_cache_dir(settings, id) / "blobs";
    auto deadline = Clock::now() + wait_timeout;
    uintmax_t seen = bytes_in(blobs);
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (const uintmax_t now = bytes_in(blobs); now != seen) {
        seen = now;
        deadline = Clock::now() + wait_timeout;
      }
      if (Clock::now() > deadline) {
        ::close(fd_);
        throw Error(ErrorCode::load,
                    fmt::format("hub: waited {:.0f} s for the process on this host that holds {} (fetching {}) without its "
                                "download making progress (--timeout sets the wait; a process that hangs there can be "
                                "stopped, its partial download resumes)",
                                std::chrono::duration<double>(wait_timeout).count(), path.string(), id.repo));
      }
      std::this_thread::sleep_for(kLockPoll);
    }
  }
  ~RepoLock() { ::close(fd_); }  // closing releases the flock
  RepoLock(const RepoLock&) = delete;
  RepoLock& operator=(const RepoLock&) = delete;

 private:
  static uintmax_t bytes_in(const fs::path& dir) {
    uintmax_t total = 0;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) total += entry.file_size(ec);
    return total;
  }
  int fd_ = -1;
};

// One file's bytes appended to its .incomplete blob, with progress lines.
class BlobWriter {
 public:
  BlobWriter(const fs::path& path, const HubFile& file) : path_(path), file_(file) {}

  // Called with the head of a 2xx answer to a request that asked for bytes from `offset` on.
  void start(const net::HttpResponse& head, int64_t offset) {
    if (head.status == 206) {
      const std::string range = head.header("Content-Range");
      if (range.rfind(fmt::format("bytes {}-", offset), 0) != 0) {
        throw Error(ErrorCode::load,
                    fmt::format("hub: {}: asked for bytes {}- but the answer holds '{}'", file_.name, offset, range));
      }
      out_.open(path_, std::ios::binary | std::ios::app);
      written_ = offset;
    } else {
      out_.open(path_, std::ios::binary | std::ios::trunc);  // a full answer (the server ignored Range)
      written_ = 0;
    }
    if (!out_) throw Error(ErrorCode::load, fmt::format("hub: cannot write {}", path_.string()));
    started_ = last_line_ = Clock::now();
    first_ = written_;
  }

  bool write(std::string_view chunk) {
    out_.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    out_.flush();  // a cut connection keeps every byte received, for the next Range request
    if (!out_) throw Error(ErrorCode::load, fmt::format("hub: cannot write {} (disk full?)", path_.string()));
    written_ += static_cast<int64_t>(chunk.size());
    if (Clock::now() - last_line_ >= kProgressInterval) {
      last_line_ = Clock::now();
      log::info("hub: {}: {:.1f} of {:.1f} MB ({:.2f} GB/s)", file_.name, written_ / 1e6, file_.size / 1e6, rate());
    }
    return true;
  }

  void finish() {
    out_.close();
    if (started_ != Clock::time_point{}) {
      log::info("hub: {}: {:.1f} MB in {:.2f} s ({:.2f} GB/s)", file_.name, written_ / 1e6,
                std::chrono::duration<double>(Clock::now() - started_).count(), rate());
    }
  }

 private:
  double rate() const {
    const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
    return (written_ - first_) / 1e9 / std::max(seconds, 1e-9);
  }

  fs::path path_;
  const HubFile& file_;
  std::ofstream out_;
  int64_t written_ = 0, first_ = 0;
  Clock::time_point started_{}, last_line_{};
};

// One GET of `file` from byte `offset` on, following redirects, appended to `incomplete`. Throws
// Error(runtime) when the connection fails (the caller resumes), Error(load) for answers that will not change.
void fetch_from(const net::Url& endpoint, const HubSettings& settings, const HubId& id, const std::string& commit,
                const HubFile& file, const fs::path& incomplete, int64_t offset) {
  net::Url url = endpoint;
  std::string target = fmt::format("/{}/resolve/{}/{}", id.repo, commit, encode(file.name, true));
  BlobWriter writer(incomplete, file);
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    net::HttpRequest request;
    request.target = target;
    if (hop == 0) request.headers = request_headers(settings);  // the token goes to the hub, not to its CDN
    else request.headers = {{"User-Agent", "rankserve"}};
    if (offset > 0) request.headers.emplace_back("Range", fmt::format("bytes={}-", offset));
    const auto response = net::http_request_stream(
        url, request, kFileAttemptTimeout, [&](std::string_view chunk) { return writer.write(chunk); },
        [&](const net::HttpResponse& head) { writer.start(head, offset); });
    const std::string where = net::to_string(url) + target;
    if (hop == 0) {  // the hub's own answer says which content it serves: it must be what the listing said
      std::string etag = bare_etag(response.header("X-Linked-Etag"));
      if (etag.empty()) etag = bare_etag(response.header("ETag"));
      if (!etag.empty() && etag != file.etag) {
        throw Error(ErrorCode::load, fmt::format("hub: {} of {}: the hub serves etag {} but listed {} for commit {} (the "
                                                 "revision moved while downloading? run again)",
                                                 file.name, id.repo, etag, file.etag, commit));
      }
    }
    if (response.status == 200 || response.status == 206) {
      writer.finish();
      return;
    }
    if (response.status == 416 && offset == file.size) return;  // already whole
    if (response.status >= 300 && response.status < 400) {
      const std::string location = response.header("Location");
      if (location.rfind("http://", 0) == 0 || location.rfind("https://", 0) == 0) {
        url = net::parse_url(location, "Location");
        target = url.target.empty() ? "/" : url.target;
        url.target.clear();
      } else if (location.rfind('/', 0) == 0) {
        url.target.clear();
        target = location;
      } else {
        throw Error(ErrorCode::load,
                    fmt::format("hub: {} answered HTTP {} without a usable Location ('{}')", where, response.status, location));
      }
      continue;
    }
    if (response.status == 404) {
      throw Error(ErrorCode::load, fmt::format("hub: {} has no file {} at commit {} (HTTP 404 from {}{})", id.repo, file.name,
                                               commit, where, hub_message(response)));
    }
    throw Error(ErrorCode::load, fmt::format("hub: GET {} answered HTTP {}{}", where, response.status, hub_message(response)));
  }
  throw Error(ErrorCode::load, fmt::format("hub: {} of {}: more than {} redirects", file.name, id.repo, kMaxRedirects));
}

void check_content(const HubId& id, const HubFile& file, const fs::path& incomplete) {
  std::error_code ec;
  const auto size = static_cast<int64_t>(fs::file_size(incomplete, ec));
  std::string problem;
  if (size != file.size) {
    problem = fmt::format("{} bytes arrived but the hub lists {}", size, file.size);
  } else if (file.lfs) {
    if (const std::string got = sha256_of_file(incomplete); got != file.etag)
      problem = fmt::format("its sha256 is {} but the hub lists {}", got, file.etag);
  } else if (const std::string got = git_blob_sha1_of_file(incomplete); got != file.etag) {
    problem = fmt::format("its git blob sha1 is {} but the hub lists {}", got, file.etag);
  }
  if (problem.empty()) return;
  fs::remove(incomplete, ec);
  throw Error(ErrorCode::load, fmt::format("hub: {} of {} is corrupt: {}; removed it (run again to download it anew; a "
                                           "mirror at HF_ENDPOINT that serves other bytes than it lists needs fixing)",
                                           file.name, id.repo, problem));
}

// blobs/<etag> holds `file` once this returns; false when the cache had it.
bool ensure_blob(const net::Url& endpoint, const HubSettings& settings, const HubId& id, const std::string& commit,
                 const HubFile& file, const fs::path& blob) {
  std::error_code ec;
  if (fs::is_regular_file(blob, ec) && static_cast<int64_t>(fs::file_size(blob, ec)) == file.size) return false;
  const fs::path incomplete = blob.string() + ".incomplete";
  for (int attempt = 1;; ++attempt) {
    int64_t offset = fs::exists(incomplete, ec) ? static_cast<int64_t>(fs::file_size(incomplete, ec)) : 0;
    if (offset > file.size) {
      fs::remove(incomplete, ec);
      offset = 0;
    }
    if (offset == file.size) break;
    if (offset > 0) log::info("hub: {}: resuming at {:.1f} of {:.1f} MB", file.name, offset / 1e6, file.size / 1e6);
    else log::info("hub: {}: downloading {:.1f} MB", file.name, file.size / 1e6);
    try {
      fetch_from(endpoint, settings, id, commit, file, incomplete, offset);
      break;
    } catch (const Error& e) {
      if (e.code() != ErrorCode::runtime) throw;
      if (attempt == kAttemptsPerFile)
        throw Unreachable{fmt::format("{} failed {} times, the last: {}", file.name, attempt, e.what())};
      log::warn("hub: {}: {}; trying again from where it stopped", file.name, e.what());
    }
  }
  check_content(id, file, incomplete);
  fs::rename(incomplete, blob);
  return true;
}

void link_snapshot(const fs::path& snapshot, const HubFile& file) {
  const fs::path link = snapshot / file.name;
  const fs::path target = fs::path("..") / ".." / "blobs" / file.etag;
  std::error_code ec;
  if (fs::is_symlink(link, ec) && fs::read_symlink(link, ec) == target) return;
  fs::remove(link, ec);
  fs::create_symlink(target, link);
}

void write_ref(const fs::path& repo_dir, const HubId& id, const std::string& commit) {
  if (id.revision == commit) return;
  const fs::path ref = repo_dir / "refs" / id.revision;
  fs::create_directories(ref.parent_path());
  const fs::path tmp = ref.string() + fmt::format(".{}.tmp", ::getpid());
  std::ofstream(tmp) << commit;
  fs::rename(tmp, ref);  // readers see the old commit or the new one, never half of it
}

std::string fetch_online(const net::Url& endpoint, const HubSettings& settings, const HubId& id, HubFiles which) {
  const Listing listing = list_revision(endpoint, settings, id);
  const std::vector<HubFile> files = select_files(id, listing.files, which);
  const fs::path repo_dir = repo_cache_dir(settings, id);
  const fs::path snapshot = repo_dir / "snapshots" / listing.commit;
  fs::create_directories(repo_dir / "blobs");
  fs::create_directories(snapshot);
  int downloaded = 0;
  double bytes = 0;
  const auto start = Clock::now();
  for (const HubFile& file : files) {
    if (ensure_blob(endpoint, settings, id, listing.commit, file, repo_dir / "blobs" / file.etag)) {
      ++downloaded;
      bytes += static_cast<double>(file.size);
    }
    link_snapshot(snapshot, file);
  }
  if (which == HubFiles::model) write_ref(repo_dir, id, listing.commit);  // last: a ref names only a complete snapshot
  const fs::path path = model_path_in(snapshot, files);
  if (downloaded == 0) {
    log::info("hub: {} (commit {}): all {} files in the cache: {}", to_string(id), listing.commit, files.size(), path.string());
  } else {
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    log::info("hub: {} (commit {}): downloaded {} of {} files, {:.1f} MB in {:.2f} s ({:.2f} GB/s): {}", to_string(id),
              listing.commit, downloaded, files.size(), bytes / 1e6, seconds, bytes / 1e9 / std::max(seconds, 1e-9),
              path.string());
  }
  return path.string();
}

}  // namespace

std::string fetch_hub_model(const HubId& id, const HubSettings& settings, std::chrono::milliseconds wait_timeout,
                            HubFiles which) {
  if (settings.offline) {
    try {
      std::string path = resolve_from_cache(settings, id).string();
      log::info("hub: {} from the cache (HF_HUB_OFFLINE): {}", to_string(id), path);
      return path;
    } catch (const Error& e) {
      throw Error(ErrorCode::load, fmt::format("HF_HUB_OFFLINE=1: {}", e.what()));
    }
  }
  try {
    const net::Url endpoint = endpoint_url(settings);
    const RepoLock lock(settings, id, wait_timeout);
    return fetch_online(endpoint, settings, id, which);
  } catch (const Unreachable& unreachable) {
    try {
      std::string path = resolve_from_cache(settings, id).string();
      log::warn("hub: cannot reach {} ({}); using the cached {}: {}", settings.endpoint, unreachable.reason, to_string(id), path);
      return path;
    } catch (const Error&) {
      throw Error(ErrorCode::load, fmt::format("hub: cannot fetch {} from {}: {}; and the cache {} has no copy (no local path of "
                                               "that name exists, so it was taken as a hub id). To download by hand: {}",
                                               to_string(id), settings.endpoint, unreachable.reason,
                                               repo_cache_dir(settings, id).string(), how_to_download(settings, id)));
    }
  }
}

}  // namespace rankserve::launcher
