#!/usr/bin/python3
"""grpc tier: checks a live `rankserve serve` through a real gRPC client (Debian's python3-grpcio), with stubs
generated at run time by python3-grpc-tools from the project's net/grpc/grpc_service.proto, against the HTTP
KServe answers of the same server (urllib). One check per run: grpc_check.py CHECK --grpc HOST:PORT --http URL
--proto FILE [--model NAME] [--api-key KEY]. Exits 0 when the check passes; prints what differed otherwise."""
import argparse
import importlib
import json
import os
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request

import grpc


def load_stubs(proto):
    out = tempfile.mkdtemp(prefix="rankserve-grpc-stubs-")
    from grpc_tools import protoc
    include = os.path.dirname(os.path.abspath(proto))
    if protoc.main(["protoc", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", os.path.abspath(proto)]) != 0:
        sys.exit(f"grpc_check: protoc failed on {proto}")
    sys.path.insert(0, out)
    name = os.path.splitext(os.path.basename(proto))[0]
    return importlib.import_module(f"{name}_pb2"), importlib.import_module(f"{name}_pb2_grpc")


def check(condition, what):
    if not condition:
        raise AssertionError(what)


class Http:
    def __init__(self, url, api_key):
        self.url, self.api_key = url.rstrip("/"), api_key

    def call(self, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def metrics(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=60) as r:
            return r.read().decode()


# --- tensors: one description turned into an HTTP JSON body and a gRPC request (raw or typed) ---

DTYPE = {"BYTES": ("bytes_contents", None), "INT32": ("int_contents", "<i"), "INT64": ("int64_contents", "<q"),
         "FP32": ("fp32_contents", "<f"), "BOOL": ("bool_contents", "<?")}


def raw_bytes(datatype, values):
    if datatype == "BYTES":
        out = b""
        for v in values:
            b = v.encode() if isinstance(v, str) else v
            out += struct.pack("<I", len(b)) + b
        return out
    return b"".join(struct.pack(DTYPE[datatype][1], v) for v in values)


def decode_raw(datatype, raw):
    if datatype == "BYTES":
        out, pos = [], 0
        while pos < len(raw):
            (n,) = struct.unpack_from("<I", raw, pos)
            out.append(raw[pos + 4:pos + 4 + n].decode())
            pos += 4 + n
        return out
    fmt = DTYPE[datatype][1]
    size = struct.calcsize(fmt)
    return [struct.unpack_from(fmt, raw, i)[0] for i in range(0, len(raw), size)]


def http_body(inputs, outputs=None, parameters=None):
    body = {"inputs": [{"name": n, "datatype": d, "shape": s, "data": v} for n, d, s, v in inputs]}
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    if parameters:
        body["parameters"] = parameters
    return body


def grpc_request(pb, model, inputs, raw, outputs=None, parameters=None, request_id=""):
    r = pb.ModelInferRequest(model_name=model, id=request_id)
    for n, d, s, v in inputs:
        t = r.inputs.add(name=n, datatype=d, shape=s)
        if d not in DTYPE:
            continue  # a datatype rankserve refuses: no contents to fill
        if raw:
            r.raw_input_contents.append(raw_bytes(d, v))
        else:
            field = getattr(t.contents, DTYPE[d][0])
            field.extend([x.encode() if isinstance(x, str) else x for x in v])
    for o in outputs or []:
        r.outputs.add(name=o)
    for key, value in (parameters or {}).items():
        p = r.parameters[key]
        if isinstance(value, bool):
            p.bool_param = value
        elif isinstance(value, int):
            p.int64_param = value
        elif isinstance(value, float):
            p.double_param = value
        else:
            p.string_param = value
    return r


def grpc_outputs(response):
    """{name: (datatype, shape, values)} from raw_output_contents or typed contents."""
    out = {}
    for i, t in enumerate(response.outputs):
        if response.raw_output_contents:
            values = decode_raw(t.datatype, response.raw_output_contents[i])
        else:
            values = list(getattr(t.contents, DTYPE[t.datatype][0]))
            if t.datatype == "BYTES":
                values = [v.decode() for v in values]
        out[t.name] = (t.datatype, list(t.shape), values)
    return out


def same_values(datatype, a, b):
    if datatype != "FP32":
        return list(a) == list(b)
    return len(a) == len(b) and all(abs(x - y) <= 1e-5 * max(1.0, abs(x)) for x, y in zip(a, b))


def check_equal_to_http(got, http_json):
    check(sorted(got) == sorted(o["name"] for o in http_json["outputs"]), f"outputs {sorted(got)} vs HTTP {http_json}")
    for o in http_json["outputs"]:
        datatype, shape, values = got[o["name"]]
        check(datatype == o["datatype"] and shape == o["shape"], f"{o['name']}: {datatype} {shape} vs HTTP {o}")
        check(same_values(datatype, values, o["data"]), f"{o['name']}: {values} vs HTTP {o['data']}")


# --- the checks ---

def prompt_inputs(model, prompt, new_tokens, fixed_length=False):
    if model == "OPT":
        return [("input", "BYTES", [1, 1], [prompt]), ("output_length", "INT64", [1, 1], [new_tokens])]
    inputs = [("prompts", "BYTES", [1, 1], [prompt]), ("max_length", "INT32", [1, 1], [new_tokens])]
    if fixed_length:
        inputs.append(("min_length", "INT32", [1, 1], [new_tokens]))
    return inputs


def metadata_of(key):
    return [("authorization", f"Bearer {key}")] if key else None


def check_health(a, pb, stub, http):
    check(stub.ServerLive(pb.ServerLiveRequest()).live, "ServerLive: not live")
    check(stub.ServerReady(pb.ServerReadyRequest()).ready, "ServerReady: not ready")
    check(stub.ModelReady(pb.ModelReadyRequest(name=a.model)).ready, "ModelReady: not ready")
    check(stub.ModelReady(pb.ModelReadyRequest(name=a.model, version="1")).ready, "ModelReady version 1: not ready")
    for request, path in [(pb.ModelReadyRequest(name="nope"), "/v2/models/nope/ready"),
                          (pb.ModelMetadataRequest(name=a.model, version="7"), f"/v2/models/{a.model}/versions/7")]:
        try:
            stub.ModelReady(request) if isinstance(request, pb.ModelReadyRequest) else stub.ModelMetadata(request)
            check(False, f"{request}: answered")
        except grpc.RpcError as e:
            status, body = http.call(path)
            check(e.code() == grpc.StatusCode.NOT_FOUND and status == 404 and e.details() == body["error"],
                  f"{path}: {e.code()} {e.details()!r} vs HTTP {status} {body}")
    meta = stub.ServerMetadata(pb.ServerMetadataRequest())
    _, http_meta = http.call("/v2")
    check(meta.name == http_meta["name"] == "rankserve" and meta.version == http_meta["version"] and
          list(meta.extensions) == http_meta["extensions"], f"ServerMetadata {meta} vs HTTP {http_meta}")
    model = stub.ModelMetadata(pb.ModelMetadataRequest(name=a.model))
    _, http_model = http.call(f"/v2/models/{a.model}")
    check(model.name == a.model and list(model.versions) == ["1"] and model.platform == http_model["platform"],
          f"ModelMetadata {model} vs HTTP {http_model}")
    for kind in ("inputs", "outputs"):
        got = [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in getattr(model, kind)]
        check(got == http_model[kind], f"ModelMetadata {kind} {got} vs HTTP {http_model[kind]}")
    config = stub.ModelConfig(pb.ModelConfigRequest(name=a.model)).config
    _, http_config = http.call(f"/v2/models/{a.model}/config")
    check(config.name == a.model and config.platform == "rankserve" and config.backend == "rankserve" and
          config.max_batch_size == http_config["max_batch_size"] and config.max_batch_size > 0,
          f"ModelConfig {config} vs HTTP {http_config}")
    check(list(config.version_policy.specific.versions) == [1], f"version_policy {config.version_policy}")
    check(config.HasField("dynamic_batching") and config.HasField("model_transaction_policy"), f"ModelConfig {config}")
    got = [{"name": t.name, "data_type": pb.DataType.Name(t.data_type), "dims": list(t.dims), "optional": t.optional}
           for t in config.input]
    want = [{k: t[k] for k in ("name", "data_type", "dims", "optional")} for t in http_config["input"]]
    check(got == want, f"ModelConfig input {got} vs HTTP {want}")
    got = [{"name": t.name, "data_type": pb.DataType.Name(t.data_type), "dims": list(t.dims)} for t in config.output]
    want = [{k: t[k] for k in ("name", "data_type", "dims")} for t in http_config["output"]]
    check(got == want, f"ModelConfig output {got} vs HTTP {want}")
    check(config.parameters["family"].string_value == http_config["parameters"]["family"]["string_value"],
          f"parameters {config.parameters}")


def check_infer(a, pb, stub, http):
    prompt = "The quick brown fox"
    inputs = prompt_inputs(a.model, prompt, 8)
    status, want = http.call(f"/v2/models/{a.model}/infer", http_body(inputs))
    check(status == 200, f"HTTP {status} {want}")
    for raw in (True, False):
        r = stub.ModelInfer(grpc_request(pb, a.model, inputs, raw, request_id="req-7"), metadata=metadata_of(a.api_key),
                            timeout=120)
        check(r.model_name == a.model and r.model_version == "1" and r.id == "req-7", f"header of {r}")
        check(bool(r.raw_output_contents) == raw, f"raw_output_contents {'missing' if raw else 'given'} in {r}")
        check_equal_to_http(grpc_outputs(r), want)
    # Requested outputs and a typed request asking for raw outputs (binary_data_output).
    first = want["outputs"][0]["name"]
    r = stub.ModelInfer(grpc_request(pb, a.model, inputs, False, outputs=[first], parameters={"binary_data_output": True}),
                        metadata=metadata_of(a.api_key), timeout=120)
    check([t.name for t in r.outputs] == [first] and len(r.raw_output_contents) == 1, f"requested outputs: {r}")
    check_equal_to_http(grpc_outputs(r), {"outputs": [want["outputs"][0]]})
    # A batch of two, raw, equal to HTTP.
    if a.model == "GPT":
        batch = [("prompts", "BYTES", [2, 1], ["Hello there", "A longer prompt than the first"]),
                 ("max_length", "INT32", [2, 1], [5, 7])]
    else:
        batch = [("input", "BYTES", [2, 1], ["Hello there", "A longer prompt than the first"]),
                 ("output_length", "INT64", [2, 1], [5, 7])]
    status, want = http.call(f"/v2/models/{a.model}/infer", http_body(batch))
    check(status == 200, f"HTTP {status} {want}")
    r = stub.ModelInfer(grpc_request(pb, a.model, batch, True), metadata=metadata_of(a.api_key), timeout=120)
    check_equal_to_http(grpc_outputs(r), want)


def bad_requests(model):
    p = "prompts" if model == "GPT" else "input"
    n, nt = ("max_length", "INT32") if model == "GPT" else ("output_length", "INT64")
    # OPT's output_length 0 is valid (its prompt alone, as the OPT example answers); NeMo's max_length 0 is not.
    zero = [("zero new tokens", [(p, "BYTES", [1, 1], ["hi"]), (n, nt, [1, 1], [0])], None, True)] if model == "GPT" else []
    return [
        ("missing prompt input", [(n, nt, [1, 1], [4])], None, True),
        ("unknown input", [(p, "BYTES", [1, 1], ["hi"]), ("foo", "BYTES", [1, 1], ["x"])], None, True),
    ] + zero + [
        ("wrong datatype", [(p, "INT32", [1, 1], [3])], None, True),
        ("too few elements", [(p, "BYTES", [1, 2], ["only one"])], None, False),
        ("unknown output", [(p, "BYTES", [1, 1], ["hi"])], ["nope"], True),
        ("unsupported datatype", [(p, "FP16", [1, 1], [])], None, False),
        ("negative dimension", [(p, "BYTES", [-1, 1], [])], None, False),
    ]


def check_bad_requests(a, pb, stub, http):
    for what, inputs, outputs, raw in bad_requests(a.model):
        status, body = http.call(f"/v2/models/{a.model}/infer", http_body(inputs, outputs))
        check(status == 400, f"{what}: HTTP {status} {body}")
        try:
            stub.ModelInfer(grpc_request(pb, a.model, inputs, raw, outputs), metadata=metadata_of(a.api_key), timeout=60)
            check(False, f"{what}: answered")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and e.details() == body["error"],
                  f"{what}: {e.code()} {e.details()!r}; HTTP says {body['error']!r}")
    status, body = http.call("/v2/models/nope/infer", http_body(prompt_inputs(a.model, "hi", 2)))
    try:
        stub.ModelInfer(grpc_request(pb, "nope", prompt_inputs(a.model, "hi", 2), True), metadata=metadata_of(a.api_key))
        check(False, "unknown model: answered")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND and status == 404 and e.details() == body["error"],
              f"unknown model: {e.code()} {e.details()!r} vs HTTP {status} {body}")
    check(stub.ServerReady(pb.ServerReadyRequest()).ready, "not ready after the bad requests")


def stream_pieces(pb, responses, text_output):
    pieces, finals = [], []
    for r in responses:
        check(not r.error_message, f"stream error: {r.error_message}")
        got = grpc_outputs(r.infer_response)
        check(list(got) == [text_output], f"streamed outputs {list(got)}")
        pieces.append(got[text_output][2][0])
        finals.append(r.infer_response.parameters["triton_final_response"].bool_param)
    return pieces, finals


def check_stream(a, pb, stub, http):
    text_output = "sentences" if a.model == "GPT" else "output"
    prompt = "Once upon a time"
    inputs = prompt_inputs(a.model, prompt, 12, fixed_length=True)
    status, want = http.call(f"/v2/models/{a.model}/infer", http_body(inputs))
    check(status == 200, f"HTTP {status} {want}")
    whole = [o for o in want["outputs"] if o["name"] == text_output][0]["data"][0]
    check(whole.startswith(prompt), f"HTTP {text_output} {whole!r} does not start with the prompt")
    bad = bad_requests(a.model)[0]
    _, bad_http = http.call(f"/v2/models/{a.model}/infer", http_body(bad[1]))
    requests = [grpc_request(pb, a.model, bad[1], True, request_id="bad"),
                grpc_request(pb, a.model, inputs, True, request_id="good")]
    responses = list(stub.ModelStreamInfer(iter(requests), metadata=metadata_of(a.api_key), timeout=120))
    check(responses and responses[0].error_message == bad_http["error"] and responses[0].infer_response.id == "bad",
          f"first stream response {responses[:1]} vs HTTP {bad_http}")
    good = responses[1:]
    check(all(r.infer_response.id == "good" for r in good), "stream response ids")
    pieces, finals = stream_pieces(pb, good, text_output)
    check(len(pieces) > 1, f"one response for the whole generation: {pieces}")
    check(finals[-1] and not any(finals[:-1]), f"triton_final_response flags {finals}")
    check(prompt + "".join(pieces) == whole, f"streamed {pieces} != HTTP {whole!r}")
    check(good[-1].infer_response.parameters["finish_reason"].string_param == "length", "finish_reason of the last response")


def metric(text, name, model, reason=None):
    total = 0
    for line in text.splitlines():
        if line.startswith(name + "{") and f'model="{model}"' in line and (reason is None or f'reason="{reason}"' in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def check_deadline(a, pb, stub, http):
    # A batch that takes far longer than the deadline: every sample runs to the context's end.
    n = 64
    prompts = [f"Sample {i} of a batch that outlives its deadline" for i in range(n)]
    inputs = [("prompts", "BYTES", [n, 1], prompts), ("max_length", "INT32", [n, 1], [100] * n),
              ("min_length", "INT32", [n, 1], [100] * n)]
    before = http.metrics()
    try:
        stub.ModelInfer(grpc_request(pb, a.model, inputs, True), metadata=metadata_of(a.api_key), timeout=0.2)
        check(False, "the request finished within its deadline (make it longer)")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, f"{e.code()} {e.details()}")
    # The server cancels the request: no success counted, its batch slots freed, and it still serves.
    give_up = time.monotonic() + 30
    while True:
        now = http.metrics()
        running = [l for l in now.splitlines() if l.startswith("rankserve_running_sequences ")]
        queued = [l for l in now.splitlines() if l.startswith("rankserve_queue_size ")]
        if running and float(running[0].split()[1]) == 0 and queued and float(queued[0].split()[1]) == 0:
            break
        check(time.monotonic() < give_up, f"the cancelled request still runs: {running} {queued}")
        time.sleep(0.1)
    check(metric(now, "nv_inference_request_success", a.model) == metric(before, "nv_inference_request_success", a.model),
          "the timed-out request was counted a success")
    check(metric(now, "nv_inference_request_failure", a.model) == metric(before, "nv_inference_request_failure", a.model) + 1,
          "the timed-out request was not counted a failure")
    check(stub.ServerReady(pb.ServerReadyRequest()).ready, "not ready after the deadline")
    check_infer(a, pb, stub, http)


def check_api_key(a, pb, stub, http):
    inputs = prompt_inputs(a.model, "hi", 2)
    no_key = Http(a.http, None)
    status, missing = no_key.call(f"/v2/models/{a.model}/infer", http_body(inputs))
    check(status == 401, f"HTTP without a key: {status}")
    wrong = Http(a.http, "wrong")
    status, mismatch = wrong.call(f"/v2/models/{a.model}/infer", http_body(inputs))
    check(status == 401, f"HTTP with a wrong key: {status}")
    for metadata, body in [(None, missing), ([("authorization", "Bearer wrong")], mismatch)]:
        try:
            stub.ModelInfer(grpc_request(pb, a.model, inputs, True), metadata=metadata, timeout=60)
            check(False, f"ModelInfer with {metadata}: answered")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNAUTHENTICATED and e.details() == body["error"],
                  f"ModelInfer with {metadata}: {e.code()} {e.details()!r} vs HTTP {body}")
        try:
            list(stub.ModelStreamInfer(iter([grpc_request(pb, a.model, inputs, True)]), metadata=metadata, timeout=60))
            check(False, f"ModelStreamInfer with {metadata}: answered")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNAUTHENTICATED and e.details() == body["error"],
                  f"ModelStreamInfer with {metadata}: {e.code()} {e.details()!r}")
    # Health and metadata need no key, as over HTTP; with the key inference works.
    check(stub.ServerReady(pb.ServerReadyRequest()).ready and stub.ModelMetadata(pb.ModelMetadataRequest(name=a.model)).name,
          "health without a key")
    r = stub.ModelInfer(grpc_request(pb, a.model, inputs, True), metadata=metadata_of(a.api_key), timeout=60)
    check(len(r.outputs) > 0, f"ModelInfer with the key: {r}")


def check_drain(a, pb, stub, http):
    # A long stream in flight; SIGTERM once its first token came: readiness goes false, a new request gets
    # UNAVAILABLE with the HTTP message, and the stream still runs to its end.
    import signal
    inputs = prompt_inputs(a.model, "1 2 3", 60)
    stream = stub.ModelStreamInfer(iter([grpc_request(pb, a.model, inputs, True)]), timeout=120)
    first = next(stream)
    check(not first.error_message, f"stream error: {first.error_message}")
    os.killpg(os.getpgid(a.server_pid), signal.SIGTERM)  # as Process::signal: the whole server
    give_up = time.monotonic() + 20
    while stub.ServerReady(pb.ServerReadyRequest()).ready:
        check(time.monotonic() < give_up, "still ready 20 s after SIGTERM")
        time.sleep(0.05)
    try:
        stub.ModelInfer(grpc_request(pb, a.model, prompt_inputs(a.model, "late", 2), True), timeout=30)
        check(False, "a request during the drain was answered")
    except grpc.RpcError as e:
        status, body = http.call(f"/v2/models/{a.model}/infer", http_body(prompt_inputs(a.model, "late", 2)))
        check(e.code() == grpc.StatusCode.UNAVAILABLE and status == 503 and e.details() == body["error"],
              f"during the drain: {e.code()} {e.details()!r} vs HTTP {status} {body}")
    rest = list(stream)
    text_output = "sentences" if a.model == "GPT" else "output"
    pieces, finals = stream_pieces(pb, [first] + rest, text_output)
    check(finals[-1] and not any(finals[:-1]), f"triton_final_response flags {finals}")
    check(rest[-1].infer_response.parameters["finish_reason"].string_param == "length",
          f"the drained stream ended early: {rest[-1]}")


CHECKS = {"health": check_health, "infer": check_infer, "bad-requests": check_bad_requests, "stream": check_stream,
          "deadline": check_deadline, "api-key": check_api_key, "drain": check_drain}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("check", choices=sorted(CHECKS))
    parser.add_argument("--grpc", required=True)
    parser.add_argument("--http", required=True)
    parser.add_argument("--proto", required=True)
    parser.add_argument("--model", default="GPT")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--server-pid", type=int, default=0)  # drain: the server to SIGTERM
    a = parser.parse_args()
    pb, services = load_stubs(a.proto)
    channel = grpc.insecure_channel(a.grpc)
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = services.GRPCInferenceServiceStub(channel)
    try:
        CHECKS[a.check](a, pb, stub, Http(a.http, a.api_key))
    except AssertionError as e:
        sys.exit(f"grpc_check {a.check}: {e}")
    print(f"grpc_check {a.check}: ok")


if __name__ == "__main__":
    main()
