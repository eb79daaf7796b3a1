"""GPT-2 import: tiny GPT-2 folders in Hugging Face's layout, built here, against the GPT-2 equations.

The safetensors files are written two ways: by minift's writer, and by a ten-line writer in this
file (struct.pack('<Q', n) + JSON + numpy bytes), so reader and writer cannot merely agree with
each other. Hostile files must each end in a MiniftError naming the file, never another exception.
"""
import json
import math
import struct

import numpy as np
import pytest
import torch

from minift import cli
from minift.errors import MiniftError
from minift.bundle import load_gpt2_bundle
from minift.pretrained import (
    convert_gpt2_keys, is_gpt2_spec, load_gpt2, read_gpt2_config, read_safetensors, write_safetensors,
)
from minift.tokenizer import Tokenizer

C, L, NH, T, V = 32, 2, 4, 16, 50
CONFIG = {"model_type": "gpt2", "n_embd": C, "n_layer": L, "n_head": NH, "n_positions": T, "n_ctx": T,
          "vocab_size": V, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
NP_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8"}


def hf_tensors(seed=0):
    """Random GPT-2 weights with Hugging Face's names and Conv1D (in, out) layout, mask buffers, tied head."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, mean=0.0, std=0.2):
        return torch.randn(*shape, generator=g) * std + mean

    sd = {"transformer.wte.weight": rnd(V, C, std=0.5), "transformer.wpe.weight": rnd(T, C, std=0.3)}
    for i in range(L):
        p = f"transformer.h.{i}."
        sd.update({
            p + "ln_1.weight": rnd(C, mean=1.0), p + "ln_1.bias": rnd(C, std=0.1),
            p + "attn.bias": torch.tril(torch.ones(T, T)).view(1, 1, T, T),  # the causal mask buffer
            p + "attn.masked_bias": torch.tensor(-1e4),
            p + "attn.c_attn.weight": rnd(C, 3 * C), p + "attn.c_attn.bias": rnd(3 * C, std=0.1),
            p + "attn.c_proj.weight": rnd(C, C), p + "attn.c_proj.bias": rnd(C, std=0.1),
            p + "ln_2.weight": rnd(C, mean=1.0), p + "ln_2.bias": rnd(C, std=0.1),
            p + "mlp.c_fc.weight": rnd(C, 4 * C), p + "mlp.c_fc.bias": rnd(4 * C, std=0.1),
            p + "mlp.c_proj.weight": rnd(4 * C, C), p + "mlp.c_proj.bias": rnd(C, std=0.1),
        })
    sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"] = rnd(C, mean=1.0), rnd(C, std=0.1)
    sd["lm_head.weight"] = sd["transformer.wte.weight"].clone()
    return sd


def independent_safetensors(tensors, dtype="F32"):
    """A minimal safetensors writer that shares no code with minift's."""
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().numpy().astype(NP_DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def make_folder(path, tensors=None, config=None, how="independent", dtype="F32"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config or CONFIG))
    tensors = hf_tensors() if tensors is None else tensors
    if how == "independent":
        (path / "model.safetensors").write_bytes(independent_safetensors(tensors, dtype))
    elif how == "minift":
        write_safetensors(path / "model.safetensors", tensors)
    else:
        torch.save(tensors, path / "pytorch_model.bin")
    return path


def reference_logits(sd, idx):
    """GPT-2's forward pass written from its equations, on the Hugging Face tensors, in float64."""
    w = {k.removeprefix("transformer."): v.double() for k, v in sd.items()}

    def ln(x, name):
        mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * w[name + ".weight"] + w[name + ".bias"]

    def gelu_tanh(x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))

    B, S = idx.shape
    hs = C // NH
    x = w["wte.weight"][idx] + w["wpe.weight"][torch.arange(S)]
    causal = torch.tril(torch.ones(S, S, dtype=torch.bool))
    for i in range(L):
        p = f"h.{i}."
        qkv = ln(x, p + "ln_1") @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]  # Conv1D: x @ W
        q, k, v = (t.view(B, S, NH, hs).transpose(1, 2) for t in qkv.split(C, dim=2))
        att = (q @ k.transpose(-2, -1) / math.sqrt(hs)).masked_fill(~causal, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, S, C)
        x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = gelu_tanh(ln(x, p + "ln_2") @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    return ln(x, "ln_f") @ w["wte.weight"].T


IDX = torch.tensor([[3, 17, 42, 0, 9, 9, 31, 48, 5, 12, 1, 27, 44, 8, 19, 2], [7, 7, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 49]])


def logits_of(model, idx=IDX):
    with torch.no_grad():
        return model.eval()(idx).double()


@pytest.mark.parametrize("attn_impl", ["manual", "sdpa"])
def test_gpt2_logits_match_the_equations_on_hugging_face_tensors(tmp_path, attn_impl):
    sd = hf_tensors()
    model = load_gpt2(make_folder(tmp_path / "gpt2"), attn_impl=attn_impl)
    expected = reference_logits(sd, IDX)
    assert expected.std() > 1.0  # weights large enough that a wrong transpose would show
    torch.testing.assert_close(logits_of(model), expected, atol=1e-5, rtol=1e-5)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.config.block_size == T and model.config.vocab_size == V


def test_minift_writer_is_read_by_an_independent_reader_and_back(tmp_path):
    tensors = {"a": torch.randn(3, 5), "b": torch.arange(7, dtype=torch.int64), "c": torch.randn(2, 2).double()}
    write_safetensors(tmp_path / "x.safetensors", tensors, metadata={"format": "pt"})
    blob = (tmp_path / "x.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    assert n % 8 == 0 and blob[8 + n - 1:8 + n] in (b" ", b"}")  # padded with spaces to 8-byte alignment
    header = json.loads(blob[8:8 + n])
    assert header.pop("__metadata__") == {"format": "pt"}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        data = np.frombuffer(blob[8 + n + begin:8 + n + end], dtype=NP_DTYPES[entry["dtype"]])
        np.testing.assert_array_equal(data.reshape(entry["shape"]), tensors[name].numpy())
    back = read_safetensors(tmp_path / "x.safetensors")
    assert list(back) == ["a", "b", "c"]
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and torch.equal(back[name], t)


def test_every_dtype_and_odd_shapes_round_trip(tmp_path):
    tensors = {"bf16": torch.randn(4, 3).bfloat16(), "f16": torch.randn(5).half(), "bool": torch.tensor([True, False]),
               "i8": torch.tensor([-128, 127], dtype=torch.int8), "u8": torch.tensor([0, 255], dtype=torch.uint8),
               "i16": torch.tensor([-3], dtype=torch.int16), "i32": torch.tensor([[2**31 - 1]], dtype=torch.int32),
               "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4), "strided": torch.randn(4, 6).t()}
    write_safetensors(tmp_path / "x.safetensors", tensors)
    back = read_safetensors(tmp_path / "x.safetensors")
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and back[name].shape == t.shape and torch.equal(back[name], t), name


def test_independent_file_reads_back_exactly(tmp_path):
    sd = hf_tensors()
    (tmp_path / "m.safetensors").write_bytes(independent_safetensors(sd))
    back = read_safetensors(tmp_path / "m.safetensors")
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


def test_minift_written_folder_loads_the_same(tmp_path):
    a = load_gpt2(make_folder(tmp_path / "a", how="independent"))
    b = load_gpt2(make_folder(tmp_path / "b", how="minift"))
    assert torch.equal(logits_of(a), logits_of(b))


def test_keys_without_the_transformer_prefix_load_the_same(tmp_path):
    sd = hf_tensors()
    bare = {k.removeprefix("transformer."): v for k, v in sd.items() if k != "lm_head.weight"}  # GPT2Model
    assert "wte.weight" in bare and "h.0.attn.c_attn.weight" in bare
    a = load_gpt2(make_folder(tmp_path / "a", sd))
    b = load_gpt2(make_folder(tmp_path / "b", bare))
    assert torch.equal(logits_of(a), logits_of(b))


def test_pytorch_model_bin_loads_the_same_and_safetensors_wins_when_both(tmp_path):
    sd = hf_tensors()
    folder = make_folder(tmp_path / "bin", sd, how="bin")
    torch.testing.assert_close(logits_of(load_gpt2(folder)), reference_logits(sd, IDX), atol=1e-5, rtol=1e-5)
    both = make_folder(tmp_path / "both", hf_tensors(seed=1), how="bin")
    make_folder(both, sd, how="independent")
    assert torch.equal(logits_of(load_gpt2(both)), logits_of(load_gpt2(folder)))


class RunsCode:
    ran = []

    def __reduce__(self):
        return (RunsCode.ran.append, ("executed",))


def test_bin_with_a_pickled_class_is_refused_without_running_it(tmp_path):
    folder = make_folder(tmp_path / "evil", {**hf_tensors(), "payload": RunsCode()}, how="bin")
    with pytest.raises(MiniftError, match="needs pickle code execution.*convert it to safetensors") as err:
        load_gpt2(folder)
    assert str(folder / "pytorch_model.bin") in str(err.value)
    assert RunsCode.ran == []


def test_a_truncated_bin_is_a_minift_error(tmp_path):
    folder = make_folder(tmp_path / "cut", how="bin")
    blob = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(MiniftError, match="pytorch_model.bin"):
        load_gpt2(folder)


def test_float16_weights_load_upcast_to_float32(tmp_path):
    sd = hf_tensors()
    model = load_gpt2(make_folder(tmp_path / "f16", sd, dtype="F16"))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    rounded = {k: v.half().float() for k, v in sd.items()}
    assert torch.equal(model.transformer.h[1].mlp.c_fc.weight, rounded["transformer.h.1.mlp.c_fc.weight"].T)
    torch.testing.assert_close(logits_of(model), reference_logits(rounded, IDX), atol=1e-5, rtol=1e-5)


def raw_file(header, data=b""):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


HOSTILE = {
    "shorter than 8 bytes": (b"\x10\x00\x00", "too short"),
    "header length beyond the file": (struct.pack("<Q", 1000) + b"{}", "does not fit"),
    "header length 2**63": (struct.pack("<Q", 2**63) + b"{}" * 8, "header length 9223372036854775808"),
    "header not JSON": (raw_file(b"{'a': 1"), "not valid JSON"),
    "header not UTF-8": (raw_file(b'{"\xff": 1}'), "not valid JSON"),
    "header nested too deep": (raw_file(b"[" * 200000 + b"]" * 200000), "not valid JSON"),
    "header not an object": (raw_file([1, 2]), "must be a JSON object"),
    "metadata not strings": (raw_file({"__metadata__": {"a": 1}}), "__metadata__"),
    "entry missing a field": (raw_file({"w": {"dtype": "F32", "shape": [2]}}, bytes(8)), "exactly the fields"),
    "unknown dtype": (raw_file({"w": entry(dtype="F128")}, bytes(8)), "dtype 'F128' is not one of"),
    "negative dimension": (raw_file({"w": entry(shape=(-2,))}, bytes(8)), "shape must be"),
    "huge zero-size shape": (raw_file({"w": entry(shape=[0] + [2] * 100, offsets=(0, 0))}), "shape must be"),
    "shape not matching bytes": (raw_file({"w": entry(shape=(3,))}, bytes(8)), "needs 12 bytes, data_offsets span 8"),
    "offsets beyond data": (raw_file({"w": entry(offsets=(8, 16))}, bytes(8)), r"end <= 8"),
    "negative offsets": (raw_file({"w": entry(offsets=(-8, 0))}, bytes(8)), "must satisfy"),
    "begin after end": (raw_file({"w": entry(offsets=(8, 0))}, bytes(8)), "must satisfy"),
    "offsets not two ints": (raw_file({"w": entry(offsets=(0, 8.0))}, bytes(8)), "two integers"),
    "overlapping tensors": (raw_file({"a": entry(offsets=(0, 8)), "b": entry(offsets=(4, 12))}, bytes(12)),
                            "'b' overlaps tensor 'a'"),
    "hole between tensors": (raw_file({"a": entry(offsets=(0, 8)), "b": entry(offsets=(12, 20))}, bytes(20)),
                             r"bytes \[8, 12\) belong to no tensor"),
    "trailing bytes": (raw_file({"a": entry()}, bytes(12)), r"bytes \[8, 12\) belong to no tensor"),
    "duplicate keys": (raw_file(b'{"w": ' + json.dumps(entry()).encode() + b', "w": '
                                + json.dumps(entry()).encode() + b"}", bytes(8)), "duplicate key 'w'"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_safetensors_is_a_minift_error_naming_the_file(tmp_path, case):
    blob, reason = HOSTILE[case]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    with pytest.raises(MiniftError, match=reason) as err:
        read_safetensors(path)
    assert str(err.value).startswith(str(path))


def test_a_well_formed_raw_file_passes_the_same_checks(tmp_path):
    data = np.array([1.5, -2.0], dtype="<f4").tobytes() + np.array([7], dtype="<i8").tobytes()
    path = tmp_path / "ok.safetensors"
    path.write_bytes(raw_file({"__metadata__": {"k": "v"}, "b": entry("I64", (1,), (8, 16)), "a": entry()}, data))
    back = read_safetensors(path)
    assert back["a"].tolist() == [1.5, -2.0] and back["b"].tolist() == [7] and set(back) == {"a", "b"}


def test_missing_key_is_named(tmp_path):
    sd = hf_tensors()
    del sd["transformer.h.1.mlp.c_proj.bias"]
    with pytest.raises(MiniftError, match=r"missing key 'h\.1\.mlp\.c_proj\.bias'"):
        load_gpt2(make_folder(tmp_path / "m", sd))


def test_wrong_shape_names_the_key_and_both_shapes(tmp_path):
    sd = hf_tensors()
    sd["transformer.h.0.attn.c_attn.weight"] = torch.zeros(C, 3 * C - 1)
    with pytest.raises(MiniftError, match=r"'h\.0\.attn\.c_attn\.weight' has shape \(32, 95\).*\(32, 96\)"):
        load_gpt2(make_folder(tmp_path / "m", sd))


def test_untied_head_and_unexpected_keys_are_refused(tmp_path):
    config = config_from(tmp_path, CONFIG)
    sd = hf_tensors()
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1
    with pytest.raises(MiniftError, match="lm_head.weight differs"):
        convert_gpt2_keys(sd, config)
    with pytest.raises(MiniftError, match="unexpected key 'score.weight'"):
        convert_gpt2_keys({**hf_tensors(), "score.weight": torch.zeros(2, C)}, config)


def config_from(tmp_path, raw):
    (tmp_path / "config.json").write_text(json.dumps(raw))
    return read_gpt2_config(tmp_path)


@pytest.mark.parametrize("change, reason", [
    ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon is 1e-06"),
    ({"activation_function": "relu"}, "activation_function is 'relu'"),
    ({"n_inner": 100}, "n_inner is 100"),
    ({"n_head": 5}, "divisible by n_head"),
    ({"model_type": "llama"}, "model_type is 'llama'"),
])
def test_config_a_gpt_cannot_compute_is_refused(tmp_path, change, reason):
    with pytest.raises(MiniftError, match=reason):
        config_from(tmp_path, {**CONFIG, **change})


def test_config_reads_n_ctx_when_n_positions_is_absent(tmp_path):
    raw = {k: v for k, v in CONFIG.items() if k != "n_positions"}
    config = config_from(tmp_path, {**raw, "n_ctx": 12})
    assert (config.block_size, config.n_embd, config.n_layer, config.n_head, config.vocab_size) == (12, C, L, NH, V)
    with pytest.raises(MiniftError, match="'n_positions' is missing"):
        config_from(tmp_path, {k: v for k, v in raw.items() if k != "n_ctx"})


def test_not_a_gpt2_folder_is_a_minift_error(tmp_path):
    assert is_gpt2_spec("gpt2:x") and not is_gpt2_spec("base") and not is_gpt2_spec(None)
    with pytest.raises(MiniftError, match="not a folder"):
        load_gpt2_bundle(f"gpt2:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MiniftError, match="config.json and model.safetensors"):
        load_gpt2(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps(CONFIG))
    with pytest.raises(MiniftError, match="no model.safetensors or pytorch_model.bin"):
        load_gpt2(tmp_path / "empty")


def test_bundle_without_tiktoken_files_says_a_gpt2_base_needs_them(tmp_path, monkeypatch):
    def offline(cls, timeout=15.0):
        raise MiniftError("GPT-2 tokenizer files (vocab.bpe, encoder.json) are not in tiktoken's cache")

    monkeypatch.setattr(Tokenizer, "gpt2", classmethod(offline))
    folder = make_folder(tmp_path / "gpt2")
    with pytest.raises(MiniftError, match="a gpt2: base needs tiktoken's gpt2 tokenizer files.*not in tiktoken"):
        load_gpt2_bundle(f"gpt2:{folder}")


def test_bundle_holds_the_model_the_tokenizer_and_its_source(tmp_path, monkeypatch):
    class FakeTokenizer:
        vocab_size = V

    monkeypatch.setattr(Tokenizer, "gpt2", classmethod(lambda cls, timeout=15.0: FakeTokenizer()))
    sd = hf_tensors()
    folder = make_folder(tmp_path / "gpt2", sd)
    bundle = load_gpt2_bundle(f"gpt2:{folder}", dropout=0.1)
    assert bundle.meta == {"kind": "gpt2", "source": str(folder)} and isinstance(bundle.tokenizer, FakeTokenizer)
    assert bundle.model.config.dropout == 0.1
    torch.testing.assert_close(logits_of(bundle.model), reference_logits(sd, IDX), atol=1e-5, rtol=1e-5)
    FakeTokenizer.vocab_size = V + 1
    with pytest.raises(MiniftError, match="smaller than the GPT-2 tokenizer's"):
        load_gpt2_bundle(f"gpt2:{folder}")


def test_cli_generate_with_a_missing_gpt2_folder_exits_2(capsys):
    assert cli.main(["generate", "--model", "gpt2:/nonexistent", "hi"]) == 2
    assert "/nonexistent" in capsys.readouterr().err


def test_every_truncation_and_random_corruption_is_a_minift_error_or_a_clean_read(tmp_path):
    blob = independent_safetensors({"a": torch.randn(3, 2), "b": torch.arange(4.0)})
    path = tmp_path / "fuzz.safetensors"
    for cut in range(len(blob)):  # every prefix of a valid file is refused
        path.write_bytes(blob[:cut])
        with pytest.raises(MiniftError):
            read_safetensors(path)
    rng = np.random.default_rng(0)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(400):  # flip a few header bytes: either a clean read or a MiniftError, nothing else
        corrupt = bytearray(blob)
        for i in rng.integers(0, 8 + struct.unpack("<Q", blob[:8])[0], size=3):
            corrupt[i] = int(rng.integers(0, 256))
        path.write_bytes(bytes(corrupt))
        try:
            read_safetensors(path)
            outcomes["read"] += 1
        except MiniftError as exc:
            assert str(exc).startswith(str(path))
            outcomes["refused"] += 1
    assert outcomes["refused"] > 300
