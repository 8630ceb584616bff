"""The official tritonclient.http client, used unchanged, against Ferry."""
from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import ident_model_name, load_reference


@pytest.fixture(scope="module")
def client(ferry):
    c = httpclient.InferenceServerClient(url=ferry.url, network_timeout=30.0)
    yield c
    c.close()


def cnn_input(batch: int) -> np.ndarray:
    """tools/reference/cnn.json's input formula over a [batch, 3, 224, 224] tensor."""
    i = np.arange(batch * 3 * 224 * 224, dtype=np.int64)
    k = (i * 7919 + 13) % 1000
    return ((k - 500) / 500.0).astype(np.float32).reshape(batch, 3, 224, 224)


def infer_one(client, model, name, array, binary_in=True, binary_out=True, outputs=None, **kwargs):
    dt = "BYTES" if array.dtype == object else np_to_triton(array.dtype)
    inp = httpclient.InferInput(name, list(array.shape), dt)
    inp.set_data_from_numpy(array, binary_data=binary_in)
    if outputs is None:
        outputs = []
    req = [httpclient.InferRequestedOutput(o, binary_data=binary_out) for o in outputs]
    return client.infer(model, [inp], outputs=req or None, **kwargs)


def np_to_triton(dtype) -> str:
    from tritonclient.utils import np_to_triton_dtype
    return np_to_triton_dtype(dtype)


# ---------------------------------------------------------------- server and model metadata

def test_server_live_and_ready(client):
    assert client.is_server_live()
    assert client.is_server_ready()


def test_server_metadata(client):
    md = client.get_server_metadata()
    assert md["name"] == "ferry"
    assert md["version"]
    assert "binary_tensor_data" in md["extensions"]


def test_model_metadata(client):
    md = client.get_model_metadata("cnn")
    assert md["name"] == "cnn"
    assert "1" in md["versions"]
    assert md["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 3, 224, 224]}]
    assert md["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    md = client.get_model_metadata("identity", model_version="1")
    assert md["inputs"][0]["name"] == "INPUT0" and md["inputs"][0]["shape"] == [-1, 16]


def test_model_config(client):
    cfg = client.get_model_config("cnn")
    assert cfg["name"] == "cnn"
    assert cfg["max_batch_size"] == 8
    assert cfg["input"][0]["name"] == "image"
    assert cfg["input"][0]["data_type"] == "TYPE_FP32"
    assert [int(d) for d in cfg["input"][0]["dims"]] == [3, 224, 224]
    assert [int(d) for d in cfg["output"][0]["dims"]] == [10]
    cfg = client.get_model_config("identity")
    assert cfg["max_batch_size"] == 64
    assert [int(d) for d in cfg["input"][0]["dims"]] == [16]
    cfg = client.get_model_config(ident_model_name("BYTES"))
    assert cfg["input"][0]["data_type"] == "TYPE_STRING"


def test_model_ready(client):
    assert client.is_model_ready("cnn")
    assert client.is_model_ready("identity", model_version="1")
    assert not client.is_model_ready("no_such_model")
    assert not client.is_model_ready("identity", model_version="7")


# ---------------------------------------------------------------- inference

IDENTITY_REF = load_reference("identity")


def identity_input() -> tuple[np.ndarray, np.ndarray]:
    x = np.array(IDENTITY_REF["input"]["data"], dtype=np.float32).reshape(IDENTITY_REF["input"]["shape"])
    y = np.array(IDENTITY_REF["output"]["data"], dtype=np.float32).reshape(IDENTITY_REF["output"]["shape"])
    return x, y


@pytest.mark.parametrize("binary_in,binary_out", [(False, False), (True, True), (False, True), (True, False)])
def test_identity_infer(client, binary_in, binary_out):
    x, y = identity_input()
    result = infer_one(client, "identity", "INPUT0", x, binary_in, binary_out, outputs=["OUTPUT0"])
    out = result.as_numpy("OUTPUT0")
    assert out.dtype == np.float32 and out.shape == y.shape
    np.testing.assert_allclose(out, y, atol=IDENTITY_REF["tolerance"])
    response = result.get_response()
    assert response["model_name"] == "identity"
    assert response["model_version"] == "1"
    out_meta = response["outputs"][0]
    if binary_out:
        assert out_meta["parameters"]["binary_data_size"] == y.nbytes and "data" not in out_meta
    else:
        assert "data" in out_meta


def test_identity_default_outputs_json(client):
    x, y = identity_input()
    inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=False)
    result = client.infer("identity", [inp])  # no outputs requested: all, as JSON
    np.testing.assert_allclose(result.as_numpy("OUTPUT0"), y, atol=1e-6)


CNN_REF = load_reference("cnn")


def test_cnn_matches_reference(client):
    x = cnn_input(2)
    np.testing.assert_allclose(x.reshape(-1)[:8], CNN_REF["input"]["first"], rtol=0, atol=1e-7)
    result = infer_one(client, "cnn", "image", x, outputs=["probabilities"])
    out = result.as_numpy("probabilities")
    expected = np.array(CNN_REF["output"]["data"], dtype=np.float32).reshape(CNN_REF["output"]["shape"])
    assert out.shape == (2, 10)
    np.testing.assert_allclose(out, expected, atol=CNN_REF["tolerance"], rtol=0)


def test_cnn_batch_of_4_matches_single_calls(client):
    x = cnn_input(4)
    batched = infer_one(client, "cnn", "image", x, outputs=["probabilities"]).as_numpy("probabilities")
    assert batched.shape == (4, 10)
    for row in range(4):
        single = infer_one(client, "cnn", "image", x[row:row + 1], outputs=["probabilities"]).as_numpy("probabilities")
        assert single.shape == (1, 10)
        np.testing.assert_allclose(batched[row], single[0], atol=CNN_REF["tolerance"], rtol=0)
    expected = np.array(CNN_REF["output"]["data"], dtype=np.float32).reshape(2, 10)
    np.testing.assert_allclose(batched[:2], expected, atol=CNN_REF["tolerance"], rtol=0)
    np.testing.assert_allclose(batched.sum(axis=1), np.ones(4), atol=1e-4)


@pytest.mark.parametrize("binary", [True, False])
def test_bytes_round_trip(client, binary):
    values = [b"hello", b"", b"\x00\x01\xff binary", "ünïcödé".encode(), b"x" * 1000, b"last"]
    x = np.array(values, dtype=np.object_).reshape(2, 3)
    if not binary:
        x = np.array([v for v in values if v != b"\x00\x01\xff binary"] + [b"ok"], dtype=np.object_).reshape(2, 3)
    result = infer_one(client, ident_model_name("BYTES"), "INPUT0", x, binary, binary, outputs=["OUTPUT0"])
    out = result.as_numpy("OUTPUT0")
    assert out.shape == x.shape
    got = [v if isinstance(v, bytes) else str(v).encode() for v in out.reshape(-1)]
    assert got == list(x.reshape(-1))


@pytest.mark.parametrize("binary", [True, False])
def test_fp16_round_trip(client, binary):
    x = np.array([[0.0, -1.5, 65504.0, 6.1e-5, 1.0 / 3.0], [2.0, -0.0, 0.099975586, -65504.0, 1e-3]],
                 dtype=np.float16)
    result = infer_one(client, ident_model_name("FP16"), "INPUT0", x, binary, binary, outputs=["OUTPUT0"])
    out = result.as_numpy("OUTPUT0")
    assert out.dtype == np.float16 and out.shape == x.shape
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("binary", [True, False])
def test_bool_round_trip(client, binary):
    x = np.array([[True, False, True, True], [False, False, True, False]], dtype=np.bool_)
    result = infer_one(client, ident_model_name("BOOL"), "INPUT0", x, binary, binary, outputs=["OUTPUT0"])
    out = result.as_numpy("OUTPUT0")
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("binary", [True, False])
def test_int64_round_trip(client, binary):
    x = np.array([[0, 1, -1, 2**62, -(2**63), 2**63 - 1]], dtype=np.int64)
    result = infer_one(client, ident_model_name("INT64"), "INPUT0", x, binary, binary, outputs=["OUTPUT0"])
    out = result.as_numpy("OUTPUT0")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("np_type,triton_type", [
    (np.uint8, "UINT8"), (np.uint16, "UINT16"), (np.uint32, "UINT32"), (np.uint64, "UINT64"),
    (np.int8, "INT8"), (np.int16, "INT16"), (np.int32, "INT32"), (np.float32, "FP32"), (np.float64, "FP64")])
def test_numeric_round_trips_binary(client, np_type, triton_type):
    info = np.iinfo(np_type) if np.issubdtype(np_type, np.integer) else np.finfo(np_type)
    x = np.array([[info.min, info.max, 0, 1, 7]], dtype=np_type)
    result = infer_one(client, ident_model_name(triton_type), "INPUT0", x, True, True, outputs=["OUTPUT0"])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)


def test_requested_output_subset(client):
    a = np.arange(4, dtype=np.float32)
    b = np.array([5, -6, 7, -8], dtype=np.int32)
    c = np.array([b"p", b"q"], dtype=np.object_)
    inputs = []
    for name, arr, dt in [("INPUT0", a, "FP32"), ("INPUT1", b, "INT32"), ("INPUT2", c, "BYTES")]:
        inp = httpclient.InferInput(name, list(arr.shape), dt)
        inp.set_data_from_numpy(arr, binary_data=True)
        inputs.append(inp)
    outputs = [httpclient.InferRequestedOutput("OUTPUT1", binary_data=True),
               httpclient.InferRequestedOutput("OUTPUT2", binary_data=False)]
    result = client.infer("ident_multi", inputs, outputs=outputs)
    names = [o["name"] for o in result.get_response()["outputs"]]
    assert names == ["OUTPUT1", "OUTPUT2"]
    assert result.as_numpy("OUTPUT0") is None
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), b)
    assert [bytes(v) if not isinstance(v, str) else v.encode() for v in result.as_numpy("OUTPUT2")] == [b"p", b"q"]


def test_request_id_echo(client):
    x, _ = identity_input()
    result = infer_one(client, "identity", "INPUT0", x, request_id="req-42/é")
    assert result.get_response()["id"] == "req-42/é"


def test_explicit_version(client):
    x, y = identity_input()
    result = infer_one(client, "identity", "INPUT0", x, model_version="1", outputs=["OUTPUT0"])
    assert result.get_response()["model_version"] == "1"
    np.testing.assert_allclose(result.as_numpy("OUTPUT0"), y, atol=1e-6)


# ---------------------------------------------------------------- errors carry the server's message

def expect_error(fn, *fragments, status=None):
    with pytest.raises(InferenceServerException) as info:
        fn()
    message = info.value.message()
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in server message {message!r}"
    if status is not None:
        assert info.value.status() == str(status), info.value
    for leak in ("/work", "/tmp", ".cc"):
        assert leak not in message
    return message


def test_unknown_model(client):
    x, _ = identity_input()
    expect_error(lambda: infer_one(client, "no_such_model", "INPUT0", x), "no_such_model", status=404)
    expect_error(lambda: client.get_model_metadata("no_such_model"), "no_such_model", status=404)
    expect_error(lambda: client.get_model_config("no_such_model"), "no_such_model", status=404)


def test_unknown_version(client):
    x, _ = identity_input()
    expect_error(lambda: infer_one(client, "identity", "INPUT0", x, model_version="9"), "identity")


def test_wrong_shape(client):
    x = np.zeros((1, 3, 224, 223), dtype=np.float32)
    expect_error(lambda: infer_one(client, "cnn", "image", x), "shape", "[1,3,224,223]", status=400)
    x = np.zeros((1, 15), dtype=np.float32)
    expect_error(lambda: infer_one(client, "identity", "INPUT0", x, binary_in=False), "shape", status=400)


def test_batch_too_large(client):
    x = np.zeros((9, 3, 224, 224), dtype=np.float32)
    expect_error(lambda: infer_one(client, "cnn", "image", x), "batch size 9", status=400)


def test_wrong_datatype(client):
    x = np.zeros((1, 16), dtype=np.float64)
    expect_error(lambda: infer_one(client, "identity", "INPUT0", x), "FP64", "FP32", status=400)


def test_wrong_input_name(client):
    x = np.zeros((1, 16), dtype=np.float32)
    expect_error(lambda: infer_one(client, "identity", "INPUTX", x), "INPUTX", status=400)


def test_unknown_output(client):
    x = np.zeros((1, 16), dtype=np.float32)
    expect_error(lambda: infer_one(client, "identity", "INPUT0", x, outputs=["NOPE"]), "NOPE", status=400)
