#include "launcher/pmix_client.h"

#include <fmt/format.h>
#include <pmix.h>

#include <cstring>
#include <optional>

#include "core/error.h"

namespace rankserve::launcher {
namespace {

pmix_proc_t g_self;  // set by PMIx_Init; PMIx itself is process-global

std::optional<long long> as_integer(const pmix_value_t* v) {
  switch (v->type) {
    case PMIX_UINT16: return v->data.uint16;
    case PMIX_UINT32: return v->data.uint32;
    case PMIX_UINT64: return static_cast<long long>(v->data.uint64);
    case PMIX_INT: return v->data.integer;
    case PMIX_INT32: return v->data.int32;
    case PMIX_INT64: return v->data.int64;
    case PMIX_PROC_RANK: return v->data.rank;
    case PMIX_SIZE: return static_cast<long long>(v->data.size);
    default: return std::nullopt;
  }
}

pmix_value_t* get_value(const pmix_proc_t& proc, const char* key, int timeout_s = 0) {
  pmix_info_t info;
  PMIX_INFO_CONSTRUCT(&info);
  PMIX_INFO_LOAD(&info, PMIX_TIMEOUT, &timeout_s, PMIX_INT);
  pmix_value_t* value = nullptr;
  pmix_status_t rc = PMIx_Get(&proc, key, timeout_s > 0 ? &info : nullptr, timeout_s > 0 ? 1 : 0, &value);
  PMIX_INFO_DESTRUCT(&info);
  return rc == PMIX_SUCCESS ? value : nullptr;
}

int get_int(const pmix_proc_t& proc, const char* key, int fallback) {
  pmix_value_t* value = get_value(proc, key);
  if (!value) return fallback;
  auto n = as_integer(value);
  PMIX_VALUE_RELEASE(value);
  return n ? static_cast<int>(*n) : fallback;
}

std::string get_string(const pmix_proc_t& proc, const char* key) {
  pmix_value_t* value = get_value(proc, key);
  if (!value) return "";
  std::string out = value->type == PMIX_STRING && value->data.string ? value->data.string : "";
  PMIX_VALUE_RELEASE(value);
  return out;
}

}  // namespace

std::unique_ptr<PmixClient> PmixClient::connect_if_launched(const EnvMap& env) {
  if (!lookup(env, "PMIX_RANK")) return nullptr;
  pmix_status_t rc = PMIx_Init(&g_self, nullptr, 0);
  if (rc != PMIX_SUCCESS) {
    throw Error(ErrorCode::rendezvous, fmt::format("rendezvous: PMIX_RANK={} is set but PMIx_Init failed: {} (was the "
                                                   "step started with --mpi=pmix?)",
                                                   *lookup(env, "PMIX_RANK"), PMIx_Error_string(rc)));
  }
  std::unique_ptr<PmixClient> client(new PmixClient());
  pmix_proc_t job;
  PMIX_LOAD_PROCID(&job, g_self.nspace, PMIX_RANK_WILDCARD);
  PmixInfo& i = client->info_;
  i.nspace = g_self.nspace;
  i.rank = static_cast<int>(g_self.rank);
  i.size = get_int(job, PMIX_JOB_SIZE, 0);
  i.local_rank = get_int(g_self, PMIX_LOCAL_RANK, 0);
  i.local_size = get_int(job, PMIX_LOCAL_SIZE, 1);
  i.node_id = get_int(g_self, PMIX_NODEID, 0);
  i.num_nodes = get_int(job, PMIX_NUM_NODES, 0);
  i.hostname = get_string(g_self, PMIX_HOSTNAME);
  const std::string nodes = get_string(job, PMIX_NODE_LIST);
  for (size_t start = 0; !nodes.empty() && start <= nodes.size();) {
    size_t comma = nodes.find(',', start);
    i.node_hosts.push_back(nodes.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (i.size <= 0) throw Error(ErrorCode::rendezvous, "rendezvous: PMIx did not report the job size (PMIX_JOB_SIZE)");
  return client;
}

PmixClient::~PmixClient() { PMIx_Finalize(nullptr, 0); }

void PmixClient::put(const std::string& key, const std::string& value) {
  pmix_value_t v;
  PMIX_VALUE_CONSTRUCT(&v);
  v.type = PMIX_STRING;
  v.data.string = const_cast<char*>(value.c_str());
  pmix_status_t rc = PMIx_Put(PMIX_GLOBAL, key.c_str(), &v);
  if (rc != PMIX_SUCCESS)
    throw Error(ErrorCode::rendezvous, fmt::format("rendezvous: PMIx_Put({}) failed: {}", key, PMIx_Error_string(rc)));
}

void PmixClient::fence(std::chrono::seconds timeout) {
  pmix_status_t rc = PMIx_Commit();
  if (rc != PMIX_SUCCESS)
    throw Error(ErrorCode::rendezvous, fmt::format("rendezvous: PMIx_Commit failed: {}", PMIx_Error_string(rc)));
  pmix_info_t info[2];
  bool collect = true;
  int seconds = static_cast<int>(std::max<long long>(1, timeout.count()));
  PMIX_INFO_LOAD(&info[0], PMIX_COLLECT_DATA, &collect, PMIX_BOOL);
  PMIX_INFO_LOAD(&info[1], PMIX_TIMEOUT, &seconds, PMIX_INT);
  rc = PMIx_Fence(nullptr, 0, info, 2);
  PMIX_INFO_DESTRUCT(&info[0]);
  PMIX_INFO_DESTRUCT(&info[1]);
  if (rc != PMIX_SUCCESS) {
    throw Error(ErrorCode::rendezvous, fmt::format("rendezvous: PMIx fence over {} ranks failed after up to {} s: {} (a "
                                                   "rank never arrived or died; see the other ranks' logs)",
                                                   info_.size, seconds, PMIx_Error_string(rc)));
  }
}

std::string PmixClient::get(int rank, const std::string& key, std::chrono::seconds timeout) {
  pmix_proc_t proc;
  PMIX_LOAD_PROCID(&proc, g_self.nspace, static_cast<pmix_rank_t>(rank));
  pmix_value_t* value = get_value(proc, key.c_str(), static_cast<int>(timeout.count()));
  if (!value) throw Error(ErrorCode::rendezvous, fmt::format("rendezvous: rank {} did not publish '{}' through PMIx", rank, key));
  std::string out = value->type == PMIX_STRING && value->data.string ? value->data.string : "";
  PMIX_VALUE_RELEASE(value);
  return out;
}

}  // namespace rankserve::launcher
