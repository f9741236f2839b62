// The KServe v2 / Triton gRPC front end (inference.GRPCInferenceService, grpc_service.proto) of global
// rank 0, beside its HttpServer: the same service, metrics, in-flight registry, submit pool, options
// (--api-key, --request-timeout, the body limit) and KServe handlers, so both answer alike. gRPC and
// protobuf stay inside net/grpc/; this facade includes none of them. Constructed and destroyed by
// one thread (the launcher).
#pragma once

#include <memory>
#include <string>

namespace rankserve::net {

class HttpServer;

inline constexpr int kDefaultGrpcPort = 8001;

struct GrpcOptions {
  std::string address = "0.0.0.0";  // --grpc-address
  int port = kDefaultGrpcPort;      // --grpc-port; 0 picks a free port (tests)
};

class GrpcServer {
 public:
  // Binds before returning and serves on gRPC's callback threads; the handlers run on threads of
  // their own and never block gRPC's. Throws Error(usage) when the port cannot be bound, e.g.
  // "server: cannot listen on 0.0.0.0:8001 (--grpc-port): ...". `http` must outlive this server and
  // be stopped after it.
  GrpcServer(const GrpcOptions& options, HttpServer& http);
  ~GrpcServer();  // stop()
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  int port() const;  // the bound port (the chosen one when 0 was asked)

  // Stops accepting calls; calls still running a few seconds later are cancelled (their requests
  // with them). Returns once every call ended. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rankserve::net
