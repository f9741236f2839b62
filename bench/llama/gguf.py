"""GGUF version 3 files (llama.cpp's model format), written and read back by rankserve's own code for
bench/llama_bench.sh. The layout follows llama.cpp's gguf-py (gguf/constants.py, gguf_writer.py):
a header (magic, version, tensor and key counts), key-value metadata, tensor infos (name, dimensions
innermost first, ggml type, offset into the data), then the tensor data, each aligned to 32 bytes.
numpy only.
"""
import struct

import numpy as np

MAGIC = b"GGUF"
VERSION = 3
ALIGNMENT = 32  # general.alignment's default

# GGUFValueType
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
_SCALARS = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i", FLOAT32: "<f", BOOL: "<?",
            UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}

# GGMLQuantizationType of the unquantized types, and each one's bytes per element
F32, F16, BF16 = 0, 1, 30
ELEMENT_BYTES = {F32: 4, F16: 2, BF16: 2}
TYPE_NAMES = {F32: "f32", F16: "f16", BF16: "bf16"}


class Value:
    """A metadata value with its GGUF type; arrays carry their element type."""

    def __init__(self, kind, value, element=None):
        self.kind, self.value, self.element = kind, value, element

    def __repr__(self):
        return f"Value({self.kind}, {self.value!r}, {self.element})"


def string(text):
    return Value(STRING, text)


def uint32(n):
    return Value(UINT32, int(n))


def float32(x):
    return Value(FLOAT32, float(x))


def array(element, values):
    return Value(ARRAY, list(values), element)


def bf16_bits(values):
    """float32 values rounded to bfloat16 (nearest, ties to even) as uint16 bits; NaN stays NaN."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = ((bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(values)
    rounded[nan] = ((bits[nan] >> np.uint32(16)) | np.uint32(0x40)).astype(np.uint16)
    return rounded


def bf16_to_float32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def tensor_bytes(values, ggml_type):
    """The data of a float32 array stored as `ggml_type`."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if ggml_type == F32:
        return values.tobytes()
    if ggml_type == F16:
        return values.astype(np.float16).tobytes()
    if ggml_type == BF16:
        return bf16_bits(values).tobytes()
    raise ValueError(f"gguf: tensor type {ggml_type} is not f32, f16 or bf16")


def _pack_string(text):
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return struct.pack("<Q", len(data)) + data


def _pack_value(kind, value):
    if kind == STRING:
        return _pack_string(value)
    return struct.pack(_SCALARS[kind], value)


def _pack_metadata(key, v):
    out = _pack_string(key) + struct.pack("<I", v.kind)
    if v.kind != ARRAY:
        return out + _pack_value(v.kind, v.value)
    out += struct.pack("<IQ", v.element, len(v.value))
    if v.element == STRING:
        return out + b"".join(_pack_string(s) for s in v.value)
    return out + np.asarray(v.value, dtype=np.dtype(_SCALARS[v.element])).tobytes()


def _padding(n):
    return (ALIGNMENT - n % ALIGNMENT) % ALIGNMENT


def write(path, metadata, tensors):
    """Writes `metadata` ({key: Value}, in order) and `tensors` ([(name, float32 array, ggml type)], numpy
    shapes outermost first as torch and safetensors have them) to `path`."""
    infos, offset = [], 0
    for name, values, ggml_type in tensors:
        dims = tuple(reversed(values.shape))  # ggml's ne[0] is the innermost (contiguous) dimension
        infos.append(_pack_string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) +
                     struct.pack("<IQ", ggml_type, offset))
        size = int(np.prod(values.shape)) * ELEMENT_BYTES[ggml_type]
        offset += size + _padding(size)
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<IQQ", VERSION, len(tensors), len(metadata)))
        for key, v in metadata.items():
            f.write(_pack_metadata(key, v))
        for info in infos:
            f.write(info)
        f.write(b"\0" * _padding(f.tell()))
        for name, values, ggml_type in tensors:
            data = tensor_bytes(values, ggml_type)
            f.write(data + b"\0" * _padding(len(data)))


class _Reader:
    def __init__(self, data, path):
        self.data, self.at, self.path = data, 0, path

    def take(self, fmt):
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            raise ValueError(f"gguf: {self.path}: ends at byte {len(self.data)} inside a field at {self.at}")
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return values[0] if len(values) == 1 else values

    def string(self):
        n = self.take("<Q")
        if self.at + n > len(self.data):
            raise ValueError(f"gguf: {self.path}: ends at byte {len(self.data)} inside a string of {n} bytes at {self.at}")
        text = bytes(self.data[self.at:self.at + n]).decode("utf-8")
        self.at += n
        return text

    def value(self, kind):
        if kind == STRING:
            return self.string()
        if kind not in _SCALARS:
            raise ValueError(f"gguf: {self.path}: value type {kind} at byte {self.at} is not a GGUF type")
        return self.take(_SCALARS[kind])


class File:
    """A GGUF file's header read back: metadata {key: Value}, tensors {name: (dims innermost first,
    ggml type, absolute offset of the data)}; tensor() reads one as float32 (numpy shape)."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = f.read()
        r = _Reader(self.data, path)
        if r.take("<4s") != MAGIC:
            raise ValueError(f"gguf: {path}: does not start with GGUF")
        version, n_tensors, n_kv = r.take("<IQQ")
        if version != VERSION:
            raise ValueError(f"gguf: {path}: version {version}; expected {VERSION}")
        self.metadata = {}
        for _ in range(n_kv):
            key, kind = r.string(), r.take("<I")
            if kind == ARRAY:
                element, count = r.take("<IQ")
                self.metadata[key] = Value(ARRAY, [r.value(element) for _ in range(count)], element)
            else:
                self.metadata[key] = Value(kind, r.value(kind))
        infos = []
        for _ in range(n_tensors):
            name, n_dims = r.string(), r.take("<I")
            dims = tuple(r.take(f"<{n_dims}Q")) if n_dims > 1 else (r.take("<Q"),)
            ggml_type, offset = r.take("<IQ")
            infos.append((name, dims, ggml_type, offset))
        start = r.at + _padding(r.at)
        self.tensors = {name: (dims, t, start + offset) for name, dims, t, offset in infos}

    def value(self, key):
        if key not in self.metadata:
            raise KeyError(f"gguf: {self.path}: no key {key}")
        return self.metadata[key].value

    def tensor(self, name):
        dims, ggml_type, at = self.tensors[name]
        count = int(np.prod(dims))
        raw = np.frombuffer(self.data, dtype={F32: np.float32, F16: np.float16, BF16: np.uint16}[ggml_type],
                            count=count, offset=at)
        values = bf16_to_float32(raw) if ggml_type == BF16 else raw.astype(np.float32)
        return values.reshape(tuple(reversed(dims)))
