"""Tiny random-weight Qwen2-VL / Qwen2.5-VL / Qwen3-VL / Qwen2 checkpoints, built offline in seconds.

The answers of these models are random tokens: the weights are random. They exist to
exercise the whole pipeline (tokenizer, chat template, processor, vision tower, vLLM, Ray
Serve) on a CPU without downloading anything. Each checkpoint is a normal Hugging Face
directory (`config.json`, `model.safetensors`, tokenizer, processor, `generation_config.json`)
that vLLM and transformers load exactly like the real models: the same architectures,
the same special tokens, chat templates, M-RoPE and image/video processors, only small
(2 layers, hidden size 64, a 576-token byte-level BPE vocabulary). Qwen3-VL keeps what sets
it apart: 16-pixel patches (factor 32), interleaved M-RoPE, a learned position embedding
interpolated per image, DeepStack (each vision block's features also feed a language layer)
and the video processor that writes frame timestamps into the prompt.

`tiny://<family>` sources resolve through `resolve_tiny`, which builds once and caches.
A build is deterministic: the same family and seed give the same bytes.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deployments.checkpoints.templates import (
    QWEN2_5_TEMPLATE,
    QWEN2_5_VL_TEMPLATE,
    QWEN2_VL_TEMPLATE,
    QWEN3_VL_TEMPLATE,
)
from deployments.config import PATCH_SIZES

TINY_FAMILIES: tuple[str, ...] = ("qwen2-vl", "qwen2.5-vl", "qwen3-vl", "qwen2")
"""The families `build_tiny_checkpoint` and `tiny://<family>` accept."""

TINY_SCHEME = "tiny://"

BUILDER_VERSION = 2
"""Part of the cache key: bump it whenever the builder's output changes, so stale caches
are never reused."""

CACHE_ENV = "QWEN_VL_SERVE_CACHE"

VOCAB_SIZE = 576
"""Tokenizer length and model vocab size (a multiple of 64). They are equal so that any id
the random model samples decodes to a real token."""

HIDDEN_SIZE = 64
MAX_POSITIONS = 32768
MIN_PIXELS = 56 * 56
MAX_PIXELS = 28 * 28 * 1280

# Qwen's special tokens in the real checkpoints' order (there: ids 151643...).
_QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
_TOOL_TOKENS = ("<tool_call>", "</tool_call>")

# Qwen2's pre-tokenizer split (transformers' tokenization_qwen2.PRETOKENIZE_REGEX).
_SPLIT_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# The BPE merges are learned from this text, so common English words are short in tokens.
_CORPUS = """\
The quick brown fox jumps over the lazy dog. A picture is worth a thousand words.
You are a helpful assistant. Describe this image in one sentence. What is in the picture?
The image shows a cat sitting on a table next to a window, and the sun is shining.
There is a red car parked in front of the house, and two people are walking along the street.
Please answer the question about the video. What happens at the beginning and at the end?
The weather is nice today: the sky is blue, there are a few white clouds, and it is warm.
Call the function with the arguments given by the user, then return the result as JSON.
{"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}}
Count the number of objects in the image and give the answer as a number between 0 and 100.
The model reads the text, then the image, and writes an answer token by token until it stops.
In the morning she drinks coffee, reads the news, and then goes to work by bicycle.
This is a test of the tokenizer, the chat template, the processor and the vision encoder.
Where is the dog? The dog is under the tree. How many birds are there? There are three birds.
def main():\n    print("hello, world")\n    return 0\n
Numbers: 1, 2, 3, 10, 42, 100, 2024. Dates: Monday, Tuesday, Wednesday, Thursday, Friday.
"""


def build_tiny_checkpoint(family: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random checkpoint of `family` into `out_dir` (created) and return it.

    Weights come from `torch.manual_seed(seed)`; the same seed gives identical files.
    """
    _check_family(family)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(family)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _QWEN_SPECIAL_TOKENS}
    config = _build_config(family, ids)
    model_cls = _model_class(family)

    with _seeded_torch(seed):
        model = model_cls(config).to(config.dtype).eval()  # init in float32, like from_config
    model.save_pretrained(out_dir, safe_serialization=True)
    _build_generation_config(ids).save_pretrained(out_dir)

    if family == "qwen2":
        tokenizer.save_pretrained(out_dir)
    else:
        _build_processor(family, tokenizer).save_pretrained(out_dir)
    return out_dir


def resolve_tiny(uri: str, cache_dir: Path | None = None) -> Path:
    """Local directory of the tiny checkpoint `tiny://<family>`, built on first use.

    Why cached and locked: every replica of a deployment resolves its source at start, often
    at the same moment; a `FileLock` lets one build while the others wait, and the build goes
    to a temp dir renamed into place, so a crash never leaves a half-written checkpoint.
    """
    if not uri.startswith(TINY_SCHEME):
        raise ValueError(f"not a tiny:// source: {uri!r}")
    family = uri.removeprefix(TINY_SCHEME).strip("/")
    _check_family(family)
    from filelock import FileLock

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    tiny_root = root / "tiny"
    tiny_root.mkdir(parents=True, exist_ok=True)
    target = tiny_root / f"{family}-v{BUILDER_VERSION}"
    if _is_complete(target):
        return target
    with FileLock(str(tiny_root / f"{family}-v{BUILDER_VERSION}.lock")):
        if _is_complete(target):  # another process built it while we waited
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{family}-", dir=tiny_root))
        try:
            build_tiny_checkpoint(family, staging)
            for path in (staging, *staging.iterdir()):  # mkdtemp makes 0700; share like a download
                path.chmod(0o755 if path.is_dir() else 0o644)
            if target.exists():  # an incomplete leftover (no marker): replace it
                shutil.rmtree(target)
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def default_cache_dir() -> Path:
    """`$QWEN_VL_SERVE_CACHE`, else `~/.cache/qwen-vl-serve` (shared with hub downloads)."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "qwen-vl-serve"))


def _is_complete(path: Path) -> bool:
    """A finished build: renamed into place only after every file was written."""
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def _check_family(family: str) -> None:
    if family not in TINY_FAMILIES:
        raise ValueError(f"unknown tiny family {family!r}; valid: {', '.join(TINY_FAMILIES)}")


@contextlib.contextmanager
def _seeded_torch(seed: int) -> Iterator[None]:
    """Seed torch for the build, then restore the caller's RNG state (no global side effect)."""
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def _build_tokenizer(family: str) -> Any:
    """Qwen2's byte-level BPE with merges learned from `_CORPUS`, sized to `VOCAB_SIZE`."""
    from tokenizers import AddedToken, Regex, pre_tokenizers
    from transformers import Qwen2Tokenizer

    n_added = len(_QWEN_SPECIAL_TOKENS) + (0 if family == "qwen2-vl" else len(_TOOL_TOKENS))
    pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    alphabet = _byte_symbols()
    words = [piece for piece, _ in pre_tokenizer.pre_tokenize_str(_CORPUS)]
    merges = _learn_merges(words, VOCAB_SIZE - len(alphabet) - n_added)
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    for left, right in merges:
        vocab[left + right] = len(vocab)

    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=list(merges),
        unk_token=None,
        bos_token=None,
        eos_token="<|endoftext|>",  # the first added token gets the first id, as in Qwen
        pad_token="<|endoftext|>",
        model_max_length=MAX_POSITIONS,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    # Added in the real order, so the ids keep Qwen's layout (endoftext, im_start, im_end...).
    tokenizer.add_special_tokens({"additional_special_tokens": list(_QWEN_SPECIAL_TOKENS)})
    if family != "qwen2-vl":
        # Not special in Qwen2.5 either: they must survive `skip_special_tokens` decoding,
        # since tool-call parsers look for them in the output text.
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in _TOOL_TOKENS])
    tokenizer.eos_token = "<|im_end|>"  # the chat models' stop token
    tokenizer.chat_template = _chat_template(family)
    if len(tokenizer) != VOCAB_SIZE:
        raise RuntimeError(f"tiny tokenizer has {len(tokenizer)} tokens, expected {VOCAB_SIZE}")
    return tokenizer


def _byte_symbols() -> list[str]:
    """GPT-2's byte-to-unicode table (what ByteLevel uses): symbol i stands for byte i."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    codes = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in codes:
            codes[b] = 256 + extra
            extra += 1
    return [chr(codes[b]) for b in range(256)]


def _learn_merges(words: list[str], count: int) -> list[tuple[str, str]]:
    """Plain BPE training, deterministic: ties go to the lexicographically smallest pair."""
    frequencies = collections.Counter(words)
    corpus = [(list(word), freq) for word, freq in sorted(frequencies.items())]
    merges: list[tuple[str, str]] = []
    while len(merges) < count:
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for symbols, freq in corpus:
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += freq
        if not pairs:
            raise RuntimeError("tiny BPE corpus too small for the requested merges")
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        merged = best[0] + best[1]
        for symbols, _ in corpus:
            i = 0
            while i < len(symbols) - 1:
                if symbols[i] == best[0] and symbols[i + 1] == best[1]:
                    symbols[i : i + 2] = [merged]
                i += 1
    return merges


def _chat_template(family: str) -> str:
    return {
        "qwen2-vl": QWEN2_VL_TEMPLATE,
        "qwen2.5-vl": QWEN2_5_VL_TEMPLATE,
        "qwen3-vl": QWEN3_VL_TEMPLATE,
        "qwen2": QWEN2_5_TEMPLATE,
    }[family]


def _text_config(ids: dict[str, int], mrope: bool) -> dict[str, Any]:
    """The language model: 2 layers, hidden 64, 2 heads of 32 (CPU attention needs >= 32)."""
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": 1_000_000.0}
    if mrope:
        rope["mrope_section"] = [4, 6, 6]  # temporal, height, width; sums to head_dim / 2
    return {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": HIDDEN_SIZE,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": MAX_POSITIONS,
        "max_window_layers": 2,
        "rms_norm_eps": 1e-6,
        "rope_parameters": rope,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
    }


def _build_config(family: str, ids: dict[str, int]) -> Any:
    import torch

    if family == "qwen2":
        from transformers import Qwen2Config

        config = Qwen2Config(**_text_config(ids, mrope=False))
    else:
        vision_ids = {
            "image_token_id": ids["<|image_pad|>"],
            "video_token_id": ids["<|video_pad|>"],
            "vision_start_token_id": ids["<|vision_start|>"],
            "vision_end_token_id": ids["<|vision_end|>"],
        }
        text = _text_config(ids, mrope=True)
        vision: dict[str, Any] = {
            "depth": 2,
            "num_heads": 2,
            "in_channels": 3,
            "patch_size": PATCH_SIZES[family],
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        }
        if family == "qwen2-vl":
            from transformers import Qwen2VLConfig as config_cls

            # embed_dim: the ViT width; hidden_size: the merger's output (the LM's width).
            vision.update(embed_dim=64, hidden_size=HIDDEN_SIZE, mlp_ratio=2)
        elif family == "qwen3-vl":
            from transformers import Qwen3VLConfig as config_cls

            text, vision = _qwen3_vl_configs(text, vision)
        else:
            from transformers import Qwen2_5_VLConfig as config_cls

            # Block 0 uses window attention (112 px windows), block 1 full attention.
            vision.update(
                hidden_size=64,
                intermediate_size=128,
                out_hidden_size=HIDDEN_SIZE,
                window_size=112,
                fullatt_block_indexes=[1],
                tokens_per_second=2,
            )
        config = config_cls(
            text_config=text,
            vision_config=vision,
            tie_word_embeddings=False,
            **vision_ids,
        )
    config.dtype = torch.bfloat16  # what the real checkpoints ship and vLLM's "auto" runs on CPU
    return config


def _qwen3_vl_configs(text: dict[str, Any], vision: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Qwen3-VL's text and vision configs: the real models' layout at the tiny sizes.

    Text: an explicit head_dim and interleaved M-RoPE (sections in the real 24:20:20 ratio).
    Vision: a 48x48 learned position grid (the real size) and DeepStack on both blocks, so
    both language layers receive vision features as in the real models.
    """
    text = {k: v for k, v in text.items() if k != "max_window_layers"}
    text.update(
        head_dim=HIDDEN_SIZE // 2,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 5_000_000.0,
            "mrope_section": [6, 5, 5],
            "mrope_interleaved": True,
        },
    )
    vision = dict(
        vision,
        hidden_size=64,
        intermediate_size=128,
        out_hidden_size=HIDDEN_SIZE,
        num_position_embeddings=2304,
        deepstack_visual_indexes=[0, 1],
    )
    return text, vision


def _model_class(family: str) -> type:
    import transformers

    return {
        "qwen2-vl": transformers.Qwen2VLForConditionalGeneration,
        "qwen2.5-vl": transformers.Qwen2_5_VLForConditionalGeneration,
        "qwen3-vl": transformers.Qwen3VLForConditionalGeneration,
        "qwen2": transformers.Qwen2ForCausalLM,
    }[family]


def _build_generation_config(ids: dict[str, int]) -> Any:
    """The real stop ids. The real files also set sampling defaults (top_k=1, ...) that vLLM
    would apply to every request; they are left out, so requests alone decide sampling."""
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )


def _build_processor(family: str, tokenizer: Any) -> Any:
    """The real processor classes with the real models' pixel limits."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    if family == "qwen3-vl":
        return _build_qwen3_vl_processor(tokenizer)

    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    kwargs = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2}
    image_processor = Qwen2VLImageProcessor(size=size, **kwargs)
    video_processor = Qwen2VLVideoProcessor(size=dict(size), **kwargs)
    if family == "qwen2-vl":
        from transformers import Qwen2VLProcessor as processor_cls
    else:
        from transformers import Qwen2_5_VLProcessor as processor_cls
    return processor_cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=tokenizer.chat_template,
    )


def _build_qwen3_vl_processor(tokenizer: Any) -> Any:
    """Qwen3-VL's processor as its checkpoints ship it: 16-pixel patches, mean/std 0.5, the
    image limits 64..16384 tokens of 32x32 and the video limits over all frames together."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    kwargs: dict[str, Any] = {
        "patch_size": PATCH_SIZES["qwen3-vl"],
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": 65536, "longest_edge": 16777216}, **kwargs)
    video_processor = Qwen3VLVideoProcessor(size={"shortest_edge": 4096, "longest_edge": 25165824}, **kwargs)
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=tokenizer.chat_template,
    )
