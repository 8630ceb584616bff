"""A fixed corpus of malformed requests, sent byte for byte over raw sockets (reliability R8, R9).

Every case must get a 4xx answer (from the case's allowed set) within 1 s, with Content-Type
application/json and a JSON body whose "error" string names no file-system path; afterwards
GET /v2/health/live must answer 200 on a fresh connection.
"""
from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass

import pytest

ANSWER_TIMEOUT_S = 1.0
LEAKS = ("/work", "/tmp", ".cc", "/home", "/usr/", "/src/")
INFER = "/v2/models/identity/infer"
INFER_MAX_BODY = 64 * 1024 * 1024  # the default --max-infer-body-mb
OTHER_MAX_BODY = 64 * 1024
# After a 413 the sender may fill socket buffers, never much more.
MAX_UNREAD_BODY = 4 * 1024 * 1024


# ---------------------------------------------------------------- request builders

def raw(method: str, target: str, headers: list[tuple[str, str]] | None = None, body: bytes = b"",
        content_length: bool = True, version: str = "HTTP/1.1") -> bytes:
    """An HTTP request, exactly as given: the only header added is Host (and Content-Length when
    `content_length` and the body is not empty or the method is POST)."""
    lines = [f"{method} {target} {version}".encode("latin-1"), b"Host: 127.0.0.1"]
    for name, value in headers or []:
        lines.append(f"{name}: {value}".encode("latin-1") if isinstance(value, str) else name.encode() + b": " + value)
    if content_length and (body or method == "POST"):
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def post(target: str, body: bytes | str, headers=None, **kw) -> bytes:
    if isinstance(body, str):
        body = body.encode()
    return raw("POST", target, [("Content-Type", "application/json"), *(headers or [])], body, **kw)


def infer_json(inputs, model: str = "identity", **extra) -> bytes:
    return post(f"/v2/models/{model}/infer", json.dumps({"inputs": inputs, **extra}))


def fp32_input(shape=(1, 16), data=None, name="INPUT0", datatype="FP32", **extra) -> dict:
    if data is None:
        n = 1
        for d in shape:
            n *= d
        data = [0.5] * n
    d = {"name": name, "shape": list(shape), "datatype": datatype, "data": data}
    d.update(extra)
    return d


def one_value(model_dt: str, value: str) -> bytes:
    """A one-element request to ident_<dt> with `value` spliced in as raw JSON text."""
    body = ('{"inputs":[{"name":"INPUT0","shape":[1,1],"datatype":"%s","data":[%s]}]}' % (model_dt, value))
    return post(f"/v2/models/ident_{model_dt.lower()}/infer", body)


def binary_infer(json_obj: dict, binary: bytes, header_value: str | None = "auto", model: str = "identity",
                 cl: int | None = None) -> bytes:
    head = json.dumps(json_obj).encode()
    body = head + binary
    headers = [("Content-Type", "application/octet-stream")]
    if header_value == "auto":
        headers.append(("Inference-Header-Content-Length", str(len(head))))
    elif header_value is not None:
        headers.append(("Inference-Header-Content-Length", header_value))
    if cl is not None:
        return raw("POST", f"/v2/models/{model}/infer", headers + [("Content-Length", str(cl))], body,
                   content_length=False)
    return raw("POST", f"/v2/models/{model}/infer", headers, body)


def binary_input(size, shape=(1, 16), datatype="FP32", name="INPUT0") -> dict:
    return {"name": name, "shape": list(shape), "datatype": datatype, "parameters": {"binary_data_size": size}}


FP32_16 = struct.pack("<16f", *([1.0] * 16))
VALID_INFER_JSON = '{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","data":[%s]}]}' % ",".join(["1"] * 16)


# A complete request hidden where a body would be: it must never be answered.
SMUGGLED = b"GET /v2/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def deep_data(depth: int, closed: bool = True) -> bytes:
    return (b'{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","data":' + b"[" * depth +
            (b"]" * depth + b"}]}" if closed else b""))


def chunked(target: str, chunks: bytes, extra_headers=()) -> bytes:
    return raw("POST", target, [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked"),
                                *extra_headers], chunks, content_length=False)


# ---------------------------------------------------------------- the corpus

@dataclass(frozen=True)
class Case:
    id: str
    request: bytes
    expect: tuple[int, ...] = (400,)
    # Oversized bodies: `request` holds only the header; after the answer the test tries to stream
    # this many body bytes and checks the server stopped taking them.
    stream_body_after: int = 0
    # Shut down the sending side after the request (the body or header is cut short by EOF).
    half_close: bool = False
    # The framing cannot be trusted (RFC 9112 6.3): after the answer the server must close the
    # connection and must not answer the bytes that follow as a further ("smuggled") request.
    expect_close: bool = False


C = Case
CASES: list[Case] = [
    # --- JSON syntax
    C("json-empty-body", post(INFER, b"")),
    C("json-whitespace-body", post(INFER, b"   \r\n ")),
    C("json-truncated", post(INFER, VALID_INFER_JSON[:40])),
    C("json-truncated-last-byte", post(INFER, VALID_INFER_JSON[:-1])),
    C("json-invalid-utf8-in-string", post(INFER, VALID_INFER_JSON[:-1].encode() + b',"id":"\xff\xfe\xc3"}')),
    C("json-invalid-utf8-in-key", post(INFER, b'{"\xc3\x28":1,' + VALID_INFER_JSON[1:].encode())),
    C("json-overlong-utf8", post(INFER, VALID_INFER_JSON[:-1].encode() + b',"id":"\xc0\xaf"}')),
    C("json-trailing-garbage", post(INFER, VALID_INFER_JSON + "xyz")),
    C("json-two-documents", post(INFER, VALID_INFER_JSON + VALID_INFER_JSON)),
    C("json-nul-byte-inside", post(INFER, VALID_INFER_JSON[:10] + "\0" + VALID_INFER_JSON[10:])),
    C("json-single-quotes", post(INFER, VALID_INFER_JSON.replace('"', "'"))),
    C("json-comment", post(INFER, "// comment\n" + VALID_INFER_JSON)),
    C("json-depth-1e3", post(INFER, deep_data(1000))),
    C("json-depth-1e5", post(INFER, deep_data(100_000))),
    C("json-depth-1e5-unclosed", post(INFER, deep_data(100_000, closed=False))),
    C("json-depth-objects-1e3", post(INFER, b'{"inputs":[],"x":' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}")),
    C("json-root-array", post(INFER, "[]")),
    C("json-root-string", post(INFER, '"inputs"')),
    C("json-root-null", post(INFER, "null")),
    C("json-nan-literal", post(INFER, VALID_INFER_JSON.replace("[1,", "[NaN,", 1))),
    C("json-infinity-literal", post(INFER, VALID_INFER_JSON.replace("[1,", "[Infinity,", 1))),
    C("json-number-1e400", post(INFER, VALID_INFER_JSON.replace("[1,", "[1e400,", 1))),
    C("json-duplicate-keys-conflicting",
      post(INFER, VALID_INFER_JSON[:-1] + ',"inputs":[{"name":"INPUT0","shape":[1,15],"datatype":"FP32",'
           '"data":[' + ",".join(["1"] * 15) + "]}]}")),
    # --- request structure and types
    C("struct-empty-object", post(INFER, "{}")),
    C("struct-inputs-object", post(INFER, '{"inputs":{}}')),
    C("struct-inputs-empty", post(INFER, '{"inputs":[]}')),
    C("struct-input-not-object", post(INFER, '{"inputs":[1]}')),
    C("struct-input-no-name", infer_json([{"shape": [1, 16], "datatype": "FP32", "data": [0] * 16}])),
    C("struct-name-number", infer_json([fp32_input(name=7)])),
    C("struct-name-empty", infer_json([fp32_input(name="")])),
    C("struct-name-with-nul", infer_json([fp32_input(name="INPUT0\u0000")])),
    C("struct-duplicate-input", infer_json([fp32_input(), fp32_input()])),
    C("struct-no-datatype", infer_json([{"name": "INPUT0", "shape": [1, 16], "data": [0] * 16}])),
    C("struct-datatype-number", infer_json([fp32_input(datatype=11)])),
    C("struct-datatype-unknown", infer_json([fp32_input(datatype="FLOAT32")])),
    C("struct-datatype-lowercase", infer_json([fp32_input(datatype="fp32")])),
    C("struct-no-shape", infer_json([{"name": "INPUT0", "datatype": "FP32", "data": [0] * 16}])),
    C("struct-shape-string", infer_json([fp32_input(shape="[1,16]", data=[0] * 16)])),
    C("struct-shape-float", infer_json([fp32_input(shape=[1, 16.5], data=[0] * 16)])),
    C("struct-shape-string-elem", infer_json([fp32_input(shape=["1", 16], data=[0] * 16)])),
    C("struct-shape-null-elem", infer_json([fp32_input(shape=[None, 16], data=[0] * 16)])),
    C("struct-data-object", infer_json([fp32_input(data={"a": 1})])),
    C("struct-data-string", infer_json([fp32_input(data="0.5")])),
    C("struct-data-null", infer_json([{"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": None}])),
    C("struct-data-null-elem", infer_json([fp32_input(data=[None] * 16)])),
    C("struct-data-strings-for-fp32", infer_json([fp32_input(data=["1"] * 16)])),
    C("struct-data-bool-for-fp32", infer_json([fp32_input(data=[True] * 16)])),
    # Ragged nesting is flattened (as Triton does), so only a count mismatch is an error.
    C("struct-data-ragged-count-mismatch", infer_json([fp32_input(data=[[1] * 10, [1] * 5])])),
    C("struct-data-nested-70", post(INFER, deep_data(70))),
    C("struct-id-number", infer_json([fp32_input()], id=5)),
    C("struct-parameters-array", infer_json([fp32_input()], parameters=[1])),
    C("struct-parameter-object-value", infer_json([fp32_input()], parameters={"a": {"b": 1}})),
    C("struct-binary-data-output-string", infer_json([fp32_input()], parameters={"binary_data_output": "yes"})),
    C("struct-timeout-negative", infer_json([fp32_input()], parameters={"timeout": -5})),
    C("struct-outputs-object", infer_json([fp32_input()], outputs={"name": "OUTPUT0"})),
    C("struct-output-no-name", infer_json([fp32_input()], outputs=[{}])),
    C("struct-output-unknown", infer_json([fp32_input()], outputs=[{"name": "NOPE"}])),
    C("struct-output-duplicate", infer_json([fp32_input()], outputs=[{"name": "OUTPUT0"}, {"name": "OUTPUT0"}])),
    C("struct-output-binary-data-number", infer_json([fp32_input()],
                                                     outputs=[{"name": "OUTPUT0", "parameters": {"binary_data": 1}}])),
    # --- shapes and counts
    C("shape-negative-dim", infer_json([fp32_input(shape=[-1, 16], data=[0] * 16)])),
    C("shape-dim-2^63", post(INFER, '{"inputs":[{"name":"INPUT0","shape":[9223372036854775808,16],'
                                    '"datatype":"FP32","data":[0]}]}')),
    C("shape-dim-2^64", post(INFER, '{"inputs":[{"name":"INPUT0","shape":[18446744073709551616,16],'
                                    '"datatype":"FP32","data":[0]}]}')),
    C("shape-dim-int64-max", infer_json([fp32_input(shape=[2**63 - 1, 16], data=[0])])),
    C("shape-product-overflow", infer_json([fp32_input(shape=[2**32, 2**32], data=[0])])),
    C("shape-product-overflow-3d", infer_json([fp32_input(shape=[2**21, 2**21, 2**21, 2], data=[0])])),
    C("shape-bytes-overflow", infer_json([fp32_input(shape=[2**61, 1], data=[0])])),
    C("shape-over-element-limit", infer_json([fp32_input(shape=[2**31, 2], data=[0])])),
    C("shape-data-too-few", infer_json([fp32_input(data=[0.5] * 15)])),
    C("shape-data-too-many", infer_json([fp32_input(data=[0.5] * 17)])),
    C("shape-empty-shape", infer_json([fp32_input(shape=[], data=[0.5])])),
    C("shape-wrong-for-model", infer_json([fp32_input(shape=[1, 8], data=[0.5] * 8)])),
    C("shape-batch-zero", infer_json([fp32_input(shape=[0, 16], data=[])])),
    C("shape-batch-over-max", infer_json([fp32_input(shape=[65, 16], data=[0.5] * 65 * 16)])),
    C("shape-missing-input", post("/v2/models/ident_multi/infer",
                                  json.dumps({"inputs": [fp32_input(shape=[4], data=[1, 2, 3, 4])]}))),
    C("shape-unexpected-input", infer_json([fp32_input(), fp32_input(name="EXTRA")])),
    C("dtype-wrong-for-model", infer_json([fp32_input(datatype="FP64")])),
    # --- numbers that do not fit the datatype
    C("num-nan-string-int32", one_value("INT32", '"NaN"')),
    C("num-int32-over", one_value("INT32", "3000000000")),
    C("num-int8-over", one_value("INT8", "200")),
    C("num-uint8-negative", one_value("UINT8", "-1")),
    C("num-uint64-2^64", one_value("UINT64", "18446744073709551616")),
    C("num-int64-fraction", one_value("INT64", "1.5")),
    C("num-int64-1e30", one_value("INT64", "1e30")),
    C("num-int64-huge-literal", one_value("INT64", "9" * 400)),
    C("num-fp32-over-max", one_value("FP32", "1e39")),
    C("num-fp16-over-max", one_value("FP16", "70000")),
    C("num-bool-two", one_value("BOOL", "2")),
    C("num-bool-string", one_value("BOOL", '"true"')),
    C("num-bytes-number", one_value("BYTES", "1")),
    # --- binary tensor extension
    C("bin-size-too-big", binary_infer({"inputs": [binary_input(128)]}, FP32_16)),
    C("bin-size-too-small", binary_infer({"inputs": [binary_input(32)]}, FP32_16)),
    C("bin-size-negative", binary_infer({"inputs": [binary_input(-64)]}, FP32_16)),
    C("bin-size-fraction", binary_infer({"inputs": [binary_input(64.5)]}, FP32_16)),
    C("bin-size-string", binary_infer({"inputs": [binary_input("64")]}, FP32_16)),
    C("bin-size-2^63", binary_infer({"inputs": [binary_input(2**63)]}, FP32_16)),
    C("bin-size-and-data", binary_infer({"inputs": [dict(binary_input(64), data=[0.5] * 16)]}, FP32_16)),
    C("bin-no-header", binary_infer({"inputs": [binary_input(64)]}, FP32_16, header_value=None)),
    C("bin-size-no-binary-part", binary_infer({"inputs": [binary_input(64)]}, b"")),
    C("bin-extra-bytes", binary_infer({"inputs": [binary_input(64)]}, FP32_16 + b"\0" * 8)),
    C("bin-bytes-but-no-binary-input", binary_infer({"inputs": [fp32_input()]}, FP32_16)),
    C("bin-header-beyond-body", binary_infer({"inputs": [binary_input(64)]}, FP32_16, header_value="100000")),
    C("bin-header-non-numeric", binary_infer({"inputs": [binary_input(64)]}, FP32_16, header_value="abc")),
    C("bin-header-negative", binary_infer({"inputs": [binary_input(64)]}, FP32_16, header_value="-5")),
    C("bin-header-2^64", binary_infer({"inputs": [binary_input(64)]}, FP32_16,
                                      header_value="18446744073709551616")),
    C("bin-header-zero", binary_infer({"inputs": [binary_input(64)]}, FP32_16, header_value="0")),
    C("bin-header-splits-json", binary_infer({"inputs": [binary_input(64)]}, FP32_16, header_value="20")),
    C("bin-header-empty", binary_infer({"inputs": [binary_input(64)]}, FP32_16, header_value="")),
    C("bin-bytes-element-overruns",
      binary_infer({"inputs": [binary_input(8, shape=[1, 1], datatype="BYTES")]}, struct.pack("<I", 100) + b"abcd",
                   model="ident_bytes")),
    C("bin-bytes-count-mismatch",
      binary_infer({"inputs": [binary_input(10, shape=[1, 2], datatype="BYTES")]}, struct.pack("<I", 6) + b"abcdef",
                   model="ident_bytes")),
    # --- models, versions and names
    C("route-unknown-model", infer_json([fp32_input()], model="no_such_model"), (404,)),
    C("route-unknown-version", post("/v2/models/identity/versions/9/infer", VALID_INFER_JSON), (404,)),
    C("route-version-0", post("/v2/models/identity/versions/0/infer", VALID_INFER_JSON)),
    C("route-version-01", post("/v2/models/identity/versions/01/infer", VALID_INFER_JSON)),
    C("route-version-abc", post("/v2/models/identity/versions/abc/infer", VALID_INFER_JSON)),
    C("route-version-negative", post("/v2/models/identity/versions/-1/infer", VALID_INFER_JSON)),
    C("route-version-huge", post("/v2/models/identity/versions/99999999999999999999/infer", VALID_INFER_JSON)),
    C("route-version-empty-ready", raw("GET", "/v2/models/identity/versions//ready"), (400, 404)),
    C("name-dotdot", post("/v2/models/../x/infer", VALID_INFER_JSON), (400, 404)),
    C("name-dotdot-config", raw("GET", "/v2/models/../identity/config"), (400, 404)),
    C("name-encoded-dotdot", post("/v2/models/%2e%2e/infer", VALID_INFER_JSON), (400, 404)),
    C("name-encoded-dotdot-slash", raw("GET", "/v2/models/%2e%2e%2f%2e%2e%2fetc%2fpasswd"), (400, 404)),
    C("name-double-slash", raw("GET", "/v2/models//etc/passwd/config"), (400, 404)),
    C("name-abs-encoded", raw("GET", "/v2/models/%2Fetc%2Fpasswd/config"), (400, 404)),
    C("name-a-dotdot-b", raw("GET", "/v2/models/a/../b/ready"), (400, 404)),
    C("name-nul-encoded", post("/v2/models/identity%00/infer", VALID_INFER_JSON), (400, 404)),
    C("name-nul-encoded-middle", raw("GET", "/v2/models/ide%00ntity/config"), (400, 404)),
    C("name-backslash", raw("GET", "/v2/models/..%5c..%5cwindows/config"), (400, 404)),
    C("name-very-long", post("/v2/models/" + "a" * 4000 + "/infer", VALID_INFER_JSON), (400, 404)),
    C("name-raw-nul", b"GET /v2/models/identity\0/ready HTTP/1.1\r\nHost: x\r\n\r\n"),
    C("name-raw-high-bytes", b"GET /v2/models/\xff\xfe/ready HTTP/1.1\r\nHost: x\r\n\r\n", (400, 404)),
    # --- HTTP framing and limits
    C("http-body-over-limit", raw("POST", INFER, [("Content-Type", "application/json"),
                                                  ("Content-Length", str(INFER_MAX_BODY + 1024 * 1024))],
                                  content_length=False), (413,), stream_body_after=32 * 1024 * 1024),
    C("http-body-over-limit-expect-100", raw("POST", INFER, [("Expect", "100-continue"),
                                                             ("Content-Length", str(INFER_MAX_BODY + 1))],
                                             content_length=False), (413,), stream_body_after=8 * 1024 * 1024),
    C("http-body-over-small-limit", raw("POST", "/v2/repository/index",
                                        [("Content-Length", str(OTHER_MAX_BODY + 1))], content_length=False),
      (413,), stream_body_after=8 * 1024 * 1024),
    C("http-content-length-too-short", post(INFER, VALID_INFER_JSON, [("Content-Length", "30")],
                                            content_length=False)),
    C("http-content-length-too-long-then-eof", post(INFER, VALID_INFER_JSON, [("Content-Length", "100000")],
                                                    content_length=False), half_close=True),
    C("http-header-cut-by-eof", b"POST /v2/models/identity/infer HTTP/1.1\r\nHost: x\r\nContent-Le", half_close=True),
    C("http-chunked-cut-by-eof", chunked(INFER, b"10\r\n{\"inputs\""), half_close=True),
    C("http-content-length-2^64", raw("POST", INFER, [("Content-Length", "18446744073709551617")],
                                      content_length=False), (400, 413)),
    C("http-content-length-negative", raw("POST", INFER, [("Content-Length", "-1")], content_length=False)),
    C("http-content-length-alpha", raw("POST", INFER, [("Content-Length", "abc")], content_length=False)),
    C("http-content-length-twice", raw("POST", INFER, [("Content-Length", "5"), ("Content-Length", "6")],
                                       b"{}    ", content_length=False)),
    C("http-header-20kb", raw("GET", "/v2/health/live", [("X-Big", "a" * 20 * 1024)]), (431,)),
    C("http-many-small-headers", raw("GET", "/v2/health/live", [(f"X-H{i}", "v") for i in range(10_000)]), (431,)),
    C("http-uri-9kb", raw("GET", "/v2/health/live?" + "a" * 9 * 1024), (414,)),
    C("http-uri-9kb-path", raw("GET", "/v2/models/" + "b" * 9 * 1024 + "/ready"), (414,)),
    C("http-cl-and-te", raw("POST", INFER, [("Content-Length", "4"), ("Transfer-Encoding", "chunked")],
                            b"0\r\n\r\n" + SMUGGLED, content_length=False), expect_close=True),
    C("http-te-chunked-twice", raw("POST", INFER, [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
                                   b"0\r\n\r\n" + SMUGGLED, content_length=False), expect_close=True),
    C("http-te-chunked-bad-size", chunked(INFER, b"zz\r\n{}\r\n0\r\n\r\n")),
    C("http-te-chunked-size-overflow", chunked(INFER, b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n")),
    C("http-te-chunked-missing-crlf", chunked(INFER, b"2\r\n{}XX0\r\n\r\n")),
    C("http-te-chunk-over-limit", chunked(INFER, b"5000000\r\n"), (413,), stream_body_after=8 * 1024 * 1024),
    C("http-te-many-chunks-over-small-limit",
      chunked("/v2/repository/index", b"".join(b"400\r\n" + b" " * 1024 + b"\r\n" for _ in range(80))), (413,)),
    C("http-te-65536-one-byte-chunks", chunked(INFER, b"1\r\n \r\n" * 65536 + b"0\r\n\r\n")),
    C("http-te-chunked-valid-but-bad-json", chunked(INFER, b"2\r\n{}\r\n0\r\n\r\n")),
    # Transfer-Encoding whose final coding is not chunked: the body length is unknown; 400 and close.
    C("http-te-gzip-smuggle", raw("POST", INFER, [("Transfer-Encoding", "gzip")], SMUGGLED, content_length=False),
      expect_close=True),
    C("http-te-chunked-gzip-smuggle", raw("POST", INFER, [("Transfer-Encoding", "chunked, gzip")], SMUGGLED,
                                          content_length=False), expect_close=True),
    C("http-te-identity-smuggle", raw("POST", INFER, [("Transfer-Encoding", "identity")], SMUGGLED,
                                      content_length=False), expect_close=True),
    C("http-content-encoding-gzip", post(INFER, VALID_INFER_JSON, [("Content-Encoding", "gzip")]), (415,)),
    C("http-header-no-colon", b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"),
    C("http-header-bare-cr", b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-A: b\rc\r\n\r\n"),
    C("http-header-space-before-colon", b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n"),
    C("http-version-2", b"GET /v2/health/live HTTP/2.0\r\nHost: x\r\n\r\n", (400, 505)),
    C("http-version-garbage", b"GET /v2/health/live HTTX/1.1\r\nHost: x\r\n\r\n"),
    C("http-request-line-garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
    C("http-post-no-content-length", raw("POST", INFER, content_length=False)),
    # --- methods (405)
    C("method-get-infer", raw("GET", INFER), (405,)),
    C("method-put-infer", raw("PUT", INFER, body=VALID_INFER_JSON.encode()), (405,)),
    C("method-delete-live", raw("DELETE", "/v2/health/live"), (405,)),
    C("method-post-ready", raw("POST", "/v2/health/ready", body=b"{}"), (405,)),
    C("method-post-server-metadata", raw("POST", "/v2", body=b"{}"), (405,)),
    C("method-patch-model-metadata", raw("PATCH", "/v2/models/identity", body=b"{}"), (405,)),
    C("method-delete-config", raw("DELETE", "/v2/models/identity/config"), (405,)),
    C("method-options-ready", raw("OPTIONS", "/v2/models/identity/versions/1/ready"), (405,)),
    C("method-post-metrics", raw("POST", "/metrics", body=b"{}"), (405,)),
    C("method-get-repository-index", raw("GET", "/v2/repository/index"), (405,)),
    C("method-lowercase-get", raw("get", "/v2/health/live"), (400, 405)),
    C("method-unknown-verb", raw("BREW", "/v2/health/live"), (400, 405)),
    # --- unknown routes (404) and management off (403)
    C("route-root", raw("GET", "/"), (404,)),
    C("route-v1", raw("GET", "/v1/no-such-route"), (404,)),
    C("route-v2-unknown", raw("GET", "/v2/nope"), (404,)),
    C("route-health-unknown", raw("GET", "/v2/health/dead"), (404,)),
    C("route-health-extra", raw("GET", "/v2/health/live/extra"), (404,)),
    C("route-models-list", raw("GET", "/v2/models"), (404,)),
    C("route-versions-no-number", raw("GET", "/v2/models/identity/versions"), (404,)),
    C("route-model-extra-segments", raw("GET", "/v2/models/identity/versions/1/config/x"), (404,)),
    C("route-model-unknown-action", raw("GET", "/v2/models/identity/explode"), (404,)),
    C("route-absolute-form", raw("GET", "http://127.0.0.1/v2/nope"), (400, 404)),
    C("route-asterisk", raw("OPTIONS", "*"), (400, 404, 405)),
    C("route-repository-unknown", raw("POST", "/v2/repository/delete", body=b"{}"), (404,)),
    C("route-repository-index-bad-ready", raw("POST", "/v2/repository/index", body=b'{"ready": 3}'), (400,)),
    C("route-repository-load-disabled", raw("POST", "/v2/repository/models/identity/load", body=b"{}"), (403,)),
]


def test_corpus_is_large_enough():
    assert len(CASES) >= 60
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"


# ---------------------------------------------------------------- the raw-socket client

@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float
    extra: bytes = b""  # bytes received after this answer (a further answer, which may be unwanted)


def read_answer(sock: socket.socket, deadline: float) -> Answer:
    start = time.monotonic()
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"no complete answer within {ANSWER_TIMEOUT_S}s; got {data[:300]!r}")
        if not chunk:
            raise AssertionError(f"connection closed without an answer; got {data[:300]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    assert parts[0] == "HTTP/1.1", f"bad status line {lines[0]!r}"
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"body not complete within {ANSWER_TIMEOUT_S}s: {len(body)}/{length}")
        if not chunk:
            break
        body += chunk
    return Answer(status, headers, body[:length], time.monotonic() - start, body[length:])


def send_case(port: int, request: bytes, half_close: bool = False) -> tuple[socket.socket, Answer]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.monotonic()
    sock.settimeout(5)
    try:
        sock.sendall(request)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before taking everything: the answer is still there
    if half_close:
        sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    answer = read_answer(sock, deadline)
    answer.elapsed = time.monotonic() - start
    return sock, answer


def stream_until_refused(sock: socket.socket, limit: int) -> int:
    """Sends up to `limit` zero bytes; returns how many the kernel accepted before the connection failed."""
    chunk = b"\0" * 65536
    sent = 0
    sock.settimeout(2.0)
    try:
        while sent < limit:
            sent += sock.send(chunk)
    except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
        pass
    return sent


def assert_closed_without_more(sock: socket.socket, already: bytes) -> None:
    assert already == b"", f"the server answered bytes after the request as another request: {already[:300]!r}"
    sock.settimeout(ANSWER_TIMEOUT_S)
    try:
        more = sock.recv(65536)
    except ConnectionResetError:
        return
    except socket.timeout:
        raise AssertionError("the connection stayed open after a request with untrustworthy framing")
    assert more == b"", f"the server answered bytes after the request as another request: {more[:300]!r}"


def assert_live(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_answer(s, time.monotonic() + 2)
    assert answer.status == 200, f"/v2/health/live answered {answer.status} {answer.body!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed(ferry, case: Case):
    sock, answer = send_case(ferry.port, case.request, case.half_close)
    try:
        detail = f"{case.id}: {answer.status} {answer.headers} {answer.body[:400]!r}"
        assert answer.elapsed < ANSWER_TIMEOUT_S, detail
        assert 400 <= answer.status < 500, detail
        assert answer.status in case.expect, f"expected one of {case.expect}; " + detail
        assert answer.headers.get("content-type", "").split(";")[0].strip() == "application/json", detail
        doc = json.loads(answer.body)
        assert isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"], detail
        for leak in LEAKS:
            assert leak not in doc["error"], f"error leaks {leak!r}: " + detail
        if case.expect_close:
            assert_closed_without_more(sock, answer.extra)
        if case.stream_body_after:
            sent = stream_until_refused(sock, case.stream_body_after)
            # The server answered without reading the body and closed: the sender can push no more than
            # socket buffers hold (a few MiB on loopback), never the whole body.
            assert sent <= MAX_UNREAD_BODY, f"server kept accepting the body ({sent} bytes)"
    finally:
        sock.close()
    assert_live(ferry.port)
    assert ferry.alive()
