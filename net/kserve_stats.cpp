#include "net/kserve_stats.h"

#include <boost/json.hpp>

#include "net/json_fields.h"
#include "net/kserve.h"

namespace rankserve::net {

namespace json = boost::json;

namespace {

json::object duration_json(const DurationStat& d) { return json::object{{"count", d.count}, {"ns", d.ns}}; }

// Triton's $model_stat; rankserve has no response cache (cache_hit/cache_miss stay zero) and no
// fixed batches (batch_stats is empty: the continuous batch is counted in execution_count).
json::object model_stat_json(const ModelStatistics& m) {
  return json::object{
      {"name", m.name},
      {"version", m.version},
      {"last_inference", m.last_inference_ms},
      {"inference_count", m.inference_count},
      {"execution_count", m.execution_count},
      {"inference_stats", json::object{{"success", duration_json(m.success)},
                                       {"fail", duration_json(m.fail)},
                                       {"queue", duration_json(m.queue)},
                                       {"compute_input", duration_json(m.compute_input)},
                                       {"compute_infer", duration_json(m.compute_infer)},
                                       {"compute_output", duration_json(m.compute_output)},
                                       {"cache_hit", duration_json({})},
                                       {"cache_miss", duration_json({})}}},
      {"batch_stats", json::array{}},
  };
}

ServerResponse json_response(const json::value& value) {
  ServerResponse r;
  r.body = serialize_json(value);
  return r;
}

}  // namespace

ServerResponse kserve_model_stats(const ServerContext& context, const RouteParams& params) {
  const ModelInfo& served = context.service.model();
  if (!params.model.empty()) kserve_find_model(context, params);
  json::array stats;
  for (const ModelStatistics& m : context.metrics.inference_stats().all(served.name, context.service.status().steps_total)) {
    // A named model (checked above) is the served one.
    if (params.model.empty() || m.name == served.name) stats.push_back(model_stat_json(m));
  }
  return json_response(json::object{{"model_stats", std::move(stats)}});
}

ServerResponse kserve_repository_index(const ServerContext& context, const ServerRequest& request) {
  bool ready_only = false;
  if (request.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    const json::object body = parse_json_object(request.body);
    ready_only = read_bool(body, "ready").value_or(false);
  }
  const ServiceStatus status = context.service.status();
  json::array index;
  if (status.ready || !ready_only) {
    const bool loading = !status.ready && status.not_ready_reason == "loading";
    index.push_back(json::object{{"name", context.service.model().name},
                                 {"version", "1"},
                                 {"state", status.ready ? "READY"
                                           : loading    ? "LOADING"
                                                        : "UNAVAILABLE"},
                                 {"reason", status.ready ? "" : status.not_ready_reason}});
  }
  return json_response(index);
}

}  // namespace rankserve::net
