"""Real GPT-2 weights from local files: a safetensors reader, the key map, four transposes.

A GPT-2 folder
--------------
Hugging Face publishes GPT-2 (124M, 355M, ...) as a folder:

    config.json          the shape: n_embd, n_layer, n_head, n_positions, vocab_size, ...
    model.safetensors    the weights (preferred: plain bytes, nothing to execute)
    pytorch_model.bin    the same weights as a torch pickle (older copies have only this)
    vocab.json, merges.txt, tokenizer.json ...   the tokenizer (minift uses tiktoken's copy)

``load_gpt2("path/to/gpt2")`` reads such a folder into minift's own ``GPT``. Pass it as a base
with ``gpt2:PATH`` (``minift generate --model gpt2:PATH``); tutorial 12 fine-tunes it on a GPU.

The safetensors format
----------------------
    8 bytes      N, the header length, an unsigned little-endian 64-bit integer
    N bytes      a UTF-8 JSON object:  {name: {"dtype": "F32", "shape": [768, 2304],
                                              "data_offsets": [begin, end]}, ...}
                 plus an optional "__metadata__": {str: str}; writers pad it with spaces
                 to a multiple of 8 bytes, so the data that follows stays aligned
    the rest     the data section: each tensor's raw little-endian bytes, row-major, at
                 [begin, end) counted from the end of the header

A file is input from a stranger, so ``read_safetensors`` checks it all before reading one tensor
byte: the header length against the file size (2**63 must not become an allocation), the JSON
(duplicate keys are refused; ``json.loads`` would silently keep the last), every dtype, shape and
offset, and ``shape product × itemsize == end − begin``. The tensors must tile the data section
exactly, as the format asks: an overlap, a hole or trailing bytes mean a damaged or crafted file.

The key map
-----------
``GPT2LMHeadModel`` saves ``transformer.h.0.attn.c_attn.weight`` ... plus ``lm_head.weight``, a
copy of ``wte`` (GPT-2 ties them, so it is checked and dropped); ``GPT2Model`` saves the same
names without ``transformer.``. Both load. ``.attn.bias`` / ``.attn.masked_bias`` are causal-mask
buffers older GPT-2 code saved, not weights: dropped. F16/BF16 tensors are upcast to float32.

Why transposes
--------------
GPT-2's code uses ``Conv1D`` layers, which compute ``x @ W + b`` with W stored (in, out).
``nn.Linear`` computes ``x @ W.T + b`` with W stored (out, in). Same numbers, so the four
Conv1D weights of each block (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) are transposed
when they are copied; every other tensor copies as is, because minift's names are GPT-2's.

Why ``torch.load(weights_only=True)``
-------------------------------------
A ``.bin`` is a Python pickle, and unpickling can call any function the file names: a
downloaded checkpoint can run code on your machine. ``weights_only=True`` only rebuilds tensors
and plain containers and refuses everything else; minift asks you to convert such a file.
"""
from __future__ import annotations

import json
import math
import pickle
import struct
import sys
from pathlib import Path

import torch

from minift.checkpoint import load_weights
from minift.errors import MiniftError
from minift.io import atomic_write_bytes
from minift.model import GPT, GPTConfig

GPT2_PREFIX = "gpt2:"
DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
MAX_HEADER_BYTES = 100_000_000  # no honest header comes near this: GPT-2 XL's is about 50 KB
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")  # causal masks GPT-2 code saved; not weights
FOLDER_HELP = ("a GPT-2 folder holds config.json and model.safetensors (or pytorch_model.bin), "
               "as on Hugging Face")


def is_gpt2_spec(path_or_name) -> bool:
    """True for a base written as ``gpt2:PATH`` (a local folder in Hugging Face's GPT-2 layout)."""
    return isinstance(path_or_name, str) and path_or_name.startswith(GPT2_PREFIX)


# --- safetensors --------------------------------------------------------------------------------
def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _read_header(path: Path, f, size: int) -> tuple[dict, int]:
    """Return the parsed header and the data section's start; nothing is trusted unchecked."""
    if size < 8:
        raise MiniftError(f"{path}: {size} bytes, too short for a safetensors file (8-byte header length first)")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > size - 8 or n > MAX_HEADER_BYTES:
        raise MiniftError(f"{path}: header length {n} does not fit a {size}-byte file (damaged or not safetensors)")
    try:
        header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MiniftError(f"{path}: header is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(header, dict):
        raise MiniftError(f"{path}: header must be a JSON object {{name: {{dtype, shape, data_offsets}}}}")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise MiniftError(f"{path}: '__metadata__' must be an object of strings")
    return header, 8 + n


def _check_entry(path: Path, name: str, entry, data_len: int) -> tuple[torch.dtype, list, int, int]:
    where = f"{path}: tensor '{name}'"
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise MiniftError(f"{where}: expected exactly the fields dtype, shape, data_offsets")
    dtype = DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    if dtype is None:
        raise MiniftError(f"{where}: dtype {entry['dtype']!r} is not one of {', '.join(DTYPES)}")

    def ints(value):
        return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)

    shape, offsets = entry["shape"], entry["data_offsets"]
    # A zero-size tensor may claim huge other dimensions; keep them within torch's int64 strides.
    if not ints(shape) or any(d < 0 for d in shape) or math.prod(max(d, 1) for d in shape) >= 2**62:
        raise MiniftError(f"{where}: shape must be a list of integers >= 0 (product < 2**62), got {str(shape)[:60]}")
    if not ints(offsets) or len(offsets) != 2:
        raise MiniftError(f"{where}: data_offsets must be two integers [begin, end], got {str(offsets)[:60]}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_len:
        raise MiniftError(f"{where}: data_offsets [{begin}, {end}] must satisfy "
                          f"0 <= begin <= end <= {data_len} (the data section's size)")
    expected = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()  # Python ints: no overflow
    if end - begin != expected:
        raise MiniftError(f"{where}: shape {shape} of {entry['dtype']} needs {expected} bytes, "
                          f"data_offsets span {end - begin}")
    return dtype, shape, begin, end


def read_safetensors(path) -> dict[str, torch.Tensor]:
    """Read every tensor of a .safetensors file, after checking the whole header against the file."""
    path = Path(path)
    if not path.is_file():
        raise MiniftError(f"{path}: no such safetensors file")
    if sys.byteorder != "little":  # torch.frombuffer reads native order; safetensors is little-endian
        raise MiniftError(f"{path}: safetensors holds little-endian bytes; this machine is big-endian")
    with open(path, "rb") as f:
        size = path.stat().st_size
        header, data_start = _read_header(path, f, size)
        data_len = size - data_start
        entries = {name: _check_entry(path, name, entry, data_len) for name, entry in header.items()}
        # The tensors must tile [0, data_len): walk them in order of offsets.
        cursor, previous = 0, None
        for name, (_, _, begin, end) in sorted(entries.items(), key=lambda kv: kv[1][2:]):
            if begin < cursor:
                raise MiniftError(f"{path}: tensor '{name}' overlaps tensor '{previous}'")
            if begin > cursor:
                raise MiniftError(f"{path}: data bytes [{cursor}, {begin}) belong to no tensor (holes are not allowed)")
            cursor, previous = end, name
        if cursor != data_len:
            raise MiniftError(f"{path}: data bytes [{cursor}, {data_len}) belong to no tensor (trailing bytes)")
        tensors = {}
        for name, (dtype, shape, begin, end) in entries.items():
            buffer = bytearray(end - begin)  # bounded by the checked offsets, so by the file size
            f.seek(data_start + begin)
            if f.readinto(memoryview(buffer)) != len(buffer):
                raise MiniftError(f"{path}: tensor '{name}' is cut short (the file changed while reading?)")
            flat = torch.frombuffer(buffer, dtype=dtype) if buffer else torch.empty(0, dtype=dtype)
            tensors[name] = flat.reshape(shape)
    return tensors


def write_safetensors(path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` as a .safetensors file, atomically; the inverse of ``read_safetensors``."""
    if sys.byteorder != "little":
        raise MiniftError(f"{path}: safetensors holds little-endian bytes; this machine is big-endian")
    names = {dtype: name for name, dtype in DTYPES.items()}
    header: dict = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise MiniftError(f"{path}: metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    chunks, offset = [], 0
    for name, tensor in tensors.items():
        if not isinstance(name, str) or name == "__metadata__" or not isinstance(tensor, torch.Tensor):
            raise MiniftError(f"{path}: cannot write {name!r}: names are strings, values tensors")
        if tensor.dtype not in names:
            raise MiniftError(f"{path}: tensor '{name}' has dtype {tensor.dtype}, not one of {', '.join(DTYPES)}")
        t = tensor.detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad so the data section starts 8-byte aligned
    atomic_write_bytes(path, struct.pack("<Q", len(text)) + text + b"".join(chunks))


# --- GPT-2 folders --------------------------------------------------------------------------------
def read_gpt2_config(folder) -> GPTConfig:
    """config.json -> GPTConfig, refusing settings minift's GPT does not compute."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise MiniftError(f"{folder}: no config.json; {FOLDER_HELP}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MiniftError(f"{path}: not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(raw, dict):
        raise MiniftError(f"{path}: must be a JSON object")
    if raw.get("model_type", "gpt2") != "gpt2":
        raise MiniftError(f"{path}: model_type is {raw['model_type']!r}, minift loads 'gpt2' only")
    block = raw.get("n_positions", raw.get("n_ctx"))
    for field, value in (("n_embd", raw.get("n_embd")), ("n_layer", raw.get("n_layer")),
                         ("n_head", raw.get("n_head")), ("n_positions", block),
                         ("vocab_size", raw.get("vocab_size"))):
        if value is None:
            raise MiniftError(f"{path}: field '{field}' is missing")
    eps = raw.get("layer_norm_epsilon", 1e-5)
    if not isinstance(eps, (int, float)) or not math.isclose(eps, 1e-5, rel_tol=1e-9):
        raise MiniftError(f"{path}: layer_norm_epsilon is {eps!r}; minift's LayerNorm uses GPT-2's 1e-5")
    act = raw.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):  # both are GELU's tanh approximation
        raise MiniftError(f"{path}: activation_function is {act!r}; minift's MLP computes 'gelu_new'")
    if raw.get("scale_attn_weights", True) is not True or raw.get("scale_attn_by_inverse_layer_idx", False):
        raise MiniftError(f"{path}: attention scaling other than 1/sqrt(head size) is not supported")
    config = GPTConfig(vocab_size=raw["vocab_size"], block_size=block, n_layer=raw["n_layer"],
                       n_head=raw["n_head"], n_embd=raw["n_embd"], dropout=0.0, bias=True, tie_weights=True)
    try:
        config.validate()
    except MiniftError as exc:
        raise MiniftError(f"{path}: {exc}") from None
    if raw.get("n_inner") not in (None, 4 * config.n_embd):
        raise MiniftError(f"{path}: n_inner is {raw['n_inner']!r}; minift's MLP is 4 * n_embd wide")
    return config


def gpt2_state_dict(folder) -> dict[str, torch.Tensor]:
    """The raw tensors of a GPT-2 folder: model.safetensors if there, else pytorch_model.bin."""
    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        return read_safetensors(folder / "model.safetensors")
    path = folder / "pytorch_model.bin"
    if not path.is_file():
        raise MiniftError(f"{folder}: no model.safetensors or pytorch_model.bin; {FOLDER_HELP}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never runs pickled code
    except pickle.UnpicklingError:
        raise MiniftError(f"{path}: this .bin needs pickle code execution to load; minift only loads "
                          f"plain tensors (convert it to safetensors)") from None
    except Exception as exc:  # truncated, empty, not a torch file
        raise MiniftError(f"{path}: not a readable PyTorch weights file ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MiniftError(f"{path}: expected a dict of tensors (a GPT-2 state dict)")
    return state


def gpt2_shapes(config: GPTConfig) -> dict[str, tuple]:
    """Every GPT-2 tensor name (no 'transformer.' prefix) and its shape in the Hugging Face layout."""
    C, V, T = config.n_embd, config.vocab_size, config.block_size
    shapes = {"wte.weight": (V, C), "wpe.weight": (T, C)}
    for i in range(config.n_layer):
        for name, shape in (("ln_1.weight", (C,)), ("ln_1.bias", (C,)),
                            ("attn.c_attn.weight", (C, 3 * C)), ("attn.c_attn.bias", (3 * C,)),
                            ("attn.c_proj.weight", (C, C)), ("attn.c_proj.bias", (C,)),
                            ("ln_2.weight", (C,)), ("ln_2.bias", (C,)),
                            ("mlp.c_fc.weight", (C, 4 * C)), ("mlp.c_fc.bias", (4 * C,)),
                            ("mlp.c_proj.weight", (4 * C, C)), ("mlp.c_proj.bias", (C,))):
            shapes[f"h.{i}.{name}"] = shape  # Conv1D weights are (in, out)
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,)})
    return shapes


def convert_gpt2_keys(state: dict, config: GPTConfig, source: str = "GPT-2 weights") -> dict:
    """Hugging Face GPT-2 tensors -> minift's state dict: rename, drop mask buffers, transpose Conv1D."""
    plain, head = {}, None
    for key, value in state.items():
        name = key[len("transformer."):] if key.startswith("transformer.") else key
        if name.endswith(MASK_BUFFERS):
            continue
        if name == "lm_head.weight":
            head = value
            continue
        if name in plain:
            raise MiniftError(f"{source}: key '{name}' appears twice (with and without 'transformer.')")
        plain[name] = value
    shapes = gpt2_shapes(config)
    out = {}
    for name, shape in shapes.items():
        if name not in plain:
            raise MiniftError(f"{source}: missing key '{name}' (GPT-2 names, 'transformer.' prefix optional)")
        value = plain[name]
        if tuple(value.shape) != shape:
            raise MiniftError(f"{source}: key '{name}' has shape {tuple(value.shape)}, "
                              f"config.json makes it {shape}")
        if not value.is_floating_point():
            raise MiniftError(f"{source}: key '{name}' has dtype {value.dtype}, expected floating point")
        if name.endswith(CONV1D_WEIGHTS):
            value = value.t().contiguous()  # Conv1D (in, out) -> nn.Linear (out, in)
        out["transformer." + name] = value.float()
    extra = sorted(set(plain) - set(shapes))
    if extra:
        raise MiniftError(f"{source}: unexpected key '{extra[0]}' (not part of GPT-2)")
    if head is not None and not (tuple(head.shape) == shapes["wte.weight"]
                                 and torch.equal(head.float(), out["transformer.wte.weight"])):
        raise MiniftError(f"{source}: lm_head.weight differs from wte.weight; minift's GPT-2 ties them")
    return out


def load_gpt2(path, dropout: float = 0.0, attn_impl: str = "sdpa") -> GPT:
    """A GPT-2 folder -> minift's GPT with its weights, head tied to the token embedding."""
    folder = Path(path)
    if not folder.is_dir():
        raise MiniftError(f"{path}: not a folder; {FOLDER_HELP}")
    config = read_gpt2_config(folder)
    config.dropout, config.attn_impl = dropout, attn_impl
    config.validate()
    state = convert_gpt2_keys(gpt2_state_dict(folder), config, source=str(folder))
    model = GPT(config)
    load_weights(model, state, source=str(folder))
    return model
