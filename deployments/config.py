"""Configuration of the application: which models are served, from where, and how.

The same schema validates `serve_config.yaml` (GPUs) and `serve_config.cpu.yaml` (the tiny
CPU default): it is the `args` block of the Serve application, read by
`ingress.app.build_app`. Errors name the offending field (pydantic's `loc`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deployments.deployment_options import DeploymentOptions
from deployments.engine_args import check_engine_args
from deployments.families import FamilyError, checkpoint_family
from deployments.placement import TensorParallelError, check_checkpoint_tensor_parallel, placement_options

ModelFamily = Literal["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "qwen2"]
VISION_FAMILIES: frozenset[str] = frozenset({"qwen2-vl", "qwen2.5-vl", "qwen3-vl"})
PATCH_SIZES: dict[str, int] = {"qwen2-vl": 14, "qwen2.5-vl": 14, "qwen3-vl": 16}
"""Vision patch side per family; images are resized to multiples of it times the merge (2),
as qwen-vl-utils' `image_patch_size` does (28 for Qwen2/2.5-VL, 32 for Qwen3-VL)."""
TEMPORAL_PIXEL_BUDGET_FAMILIES: frozenset[str] = frozenset({"qwen3-vl"})
"""Families whose video processor bounds the pixels of all frames together (frames x height
x width), not those of one frame (Qwen3-VL's `Qwen3VLVideoProcessor`)."""
# Serve waits this long for a stopping model replica's in-flight requests (Ray's default
# is 20 s, short for a long generation); an operator's value wins.
MODEL_GRACEFUL_SHUTDOWN_TIMEOUT_S = 120.0


class _Strict(BaseModel):
    """Base for config objects: unknown keys are typos, so they are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class MediaDefaults(_Strict):
    """Per-model defaults of Qwen's resizing and frame sampling (qwen-vl-utils' keys).

    A content part's own value wins, then the request's `mm_processor_kwargs`, then these,
    then qwen-vl-utils' constants (images 4..16384 tokens of 28x28; video frames 128..768).
    """

    min_pixels: int | None = Field(default=None, ge=1, description="Images: smallest resized area, in pixels.")
    max_pixels: int | None = Field(default=None, ge=1, description="Images: largest resized area, in pixels.")
    video_min_pixels: int | None = Field(
        default=None, ge=1, description="Video frames: smallest resized area per frame, in pixels."
    )
    video_max_pixels: int | None = Field(
        default=None, ge=1, description="Video frames: largest resized area per frame, in pixels."
    )
    video_total_pixels: int | None = Field(
        default=None, ge=1, description="Video: pixel budget over all sampled frames (qwen-vl-utils `total_pixels`)."
    )
    fps: float | None = Field(default=None, gt=0, description="Video: frames sampled per second (default 2).")
    max_frames: int | None = Field(default=None, ge=2, description="Video: most frames sampled (default 768).")
    low_detail_max_pixels: int = Field(
        default=256 * 28 * 28,
        ge=1,
        description=(
            "Images sent with OpenAI's `detail: low`: largest resized area, in pixels (default "
            "256 tokens of 28x28, near OpenAI's low-detail cost); a part's own min/max_pixels win."
        ),
    )
    fit_to_context: bool = Field(
        default=True,
        description=(
            "Scale a request's images (and video frames) down, all by one factor, when at their "
            "sizes they leave no room in the context for the text and the answer (a 400 when even "
            "their smallest sizes do not fit); false leaves the engine's context check alone."
        ),
    )
    answer_tokens: int = Field(
        default=1024,
        ge=1,
        description=(
            "Room kept for the answer when images are fitted to the context: the request's "
            "max_tokens when smaller (a larger max_tokens is capped at the context, as vllm serve does)."
        ),
    )


class ModelConfig(_Strict):
    """One served model: one Ray Serve deployment wrapping one vLLM engine per replica."""

    name: str = Field(min_length=1, description="Name clients send as `model`.")
    family: ModelFamily | None = Field(
        default=None,
        description=(
            "Model family: qwen2-vl, qwen2.5-vl, qwen3-vl or qwen2 (text only); left out, it is read from "
            "the checkpoint's config.json (deployments/families.py), and must match it when given."
        ),
    )
    source: str = Field(
        min_length=1,
        description=(
            "Where the weights come from: a local directory, `tiny://<family>` (a tiny random "
            "checkpoint built locally), `modelscope://<id>`, `hf://<id>`, or a bare hub id."
        ),
    )
    revision: str | None = Field(default=None, description="Hub revision to pin.")
    engine_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for vLLM's AsyncEngineArgs (max_model_len, dtype, ...); unknown keys are refused.",
    )
    engine_env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables set in the replica before the engine starts (VLLM_*).",
    )
    deployment: DeploymentOptions = Field(
        default_factory=DeploymentOptions,
        description="Ray Serve options of the model's deployment, checked against Ray's schema.",
    )
    media: MediaDefaults = Field(
        default_factory=MediaDefaults,
        description="Defaults of image resizing and video frame sampling for this model.",
    )
    stream_batch_interval_s: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description=(
            "Streaming: after the first delta, merge engine deltas arriving within this "
            "interval into one item across the Serve handle (0 = one item per engine step)."
        ),
    )

    @model_validator(mode="after")
    def _engine_args_are_vllms(self) -> ModelConfig:
        check_engine_args(self.engine_args)
        return self

    @model_validator(mode="after")
    def _family_matches_the_checkpoint(self) -> ModelConfig:
        try:
            self.family = checkpoint_family(self.family, self.source, self.revision)
        except FamilyError as exc:
            raise ValueError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _parallelism_fits(self) -> ModelConfig:
        for key in ("tensor_parallel_size", "pipeline_parallel_size"):
            value = self.engine_args.get(key, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"engine_args.{key}: must be a whole number >= 1, got {value!r}")
        try:
            self.serve_options()
            source = Path(self.source).expanduser()
            if "://" not in self.source and source.is_dir():  # a local checkpoint: check it now
                check_checkpoint_tensor_parallel(source, self.engine_args)
        except TensorParallelError as exc:
            raise ValueError(str(exc)) from None
        return self

    def serve_options(self) -> dict[str, Any]:
        """Ray Serve options of this model's deployment: the operator's, a longer graceful
        shutdown, and the placement group that tensor parallelism needs."""
        options: dict[str, Any] = {"graceful_shutdown_timeout_s": MODEL_GRACEFUL_SHUTDOWN_TIMEOUT_S}
        options.update(self.deployment.serve_options())
        options.update(
            placement_options(
                self.engine_args,
                self.deployment.ray_actor_options,
                self.deployment.bundle_per_worker,
                self.deployment.placement_group_strategy,
            )
        )
        return options

    def mm_limit(self, modality: str) -> float:
        """Most items of `modality` the engine takes in one prompt (`limit_mm_per_prompt`)."""
        limits = self.engine_args.get("limit_mm_per_prompt") or {}
        value = limits.get(modality) if isinstance(limits, dict) else None
        if isinstance(value, dict):  # vLLM's richer form: {"count": N, ...}
            value = value.get("count")
        return value if isinstance(value, int) else float("inf")

    @property
    def scales_to_zero(self) -> bool:
        """Whether the deployment may have no replica (autoscaling with min_replicas 0)."""
        autoscaling = self.deployment.autoscaling_config
        return autoscaling is not None and autoscaling.min_replicas == 0

    @property
    def accepts_images(self) -> bool:
        """Whether the family has a vision tower."""
        return self.family in VISION_FAMILIES

    @property
    def deployment_name(self) -> str:
        """Ray Serve deployment name, derived from the served name."""
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.name)
        return f"model-{safe}"


class MediaConfig(_Strict):
    """How the ingress fetches and decodes media; safe by default (no private hosts, no files)."""

    allow_private_hosts: bool | list[str] = Field(
        default=False,
        description=(
            "Fetch from private, loopback, link-local and metadata addresses: true for all, or a "
            "list of IP networks (e.g. ['10.0.0.0/8']) allowed; checked on the resolved IP of "
            "every hop, redirects included."
        ),
    )
    allowed_domains: list[str] | None = Field(
        default=None,
        description="If set, only these host names (and their subdomains) may be fetched.",
    )
    allowed_local_dirs: list[str] = Field(
        default_factory=list,
        description="Directories whose files may be named by `file://` URLs or plain paths (none by default).",
    )
    fetch_timeout_s: float = Field(default=10.0, gt=0, description="Time limit of one download, redirects included.")
    max_redirects: int = Field(default=3, ge=0, le=20, description="Most redirects followed per download.")
    max_image_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1, description="Largest image download, data URL or file, in bytes."
    )
    max_video_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1, description="Largest video download, data URL or file, in bytes."
    )
    max_image_pixels: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="Largest source image (or video frame) area, checked from the header before decoding.",
    )
    max_request_pixels: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description=(
            "Most pixels one request's images and video frames may have after resizing, all "
            "together (3 bytes each), checked before decoding; 400 beyond."
        ),
    )
    max_images_per_request: int = Field(default=16, ge=0, description="Most images in one request.")
    max_videos_per_request: int = Field(default=2, ge=0, description="Most videos in one request.")
    max_video_frames: int = Field(default=768, ge=2, description="Most frames sampled from one video.")
    max_video_source_frames: int = Field(
        default=100_000, ge=1, description="Most frames a source video may have (decoded to sample)."
    )
    max_video_duration_s: float = Field(default=3600.0, gt=0, description="Longest source video, in seconds.")
    cache_max_bytes: int = Field(
        default=256 * 1024 * 1024, ge=0, description="Bytes of decoded media kept for reuse (0 = no cache)."
    )
    cache_max_entries: int = Field(default=4096, ge=1, description="Most entries of the media cache.")
    cache_ttl_s: float = Field(default=600.0, gt=0, description="Seconds a cached download or decode is reused.")
    request_deadline_s: float = Field(
        default=60.0, gt=0,
        description="Time limit of all media work of one request (fetch, decode, resize; 504 beyond).",
    )
    max_fetches_per_request: int = Field(default=8, ge=1, description="Downloads one request runs at once.")
    max_fetches_per_host: int = Field(
        default=16, ge=1, description="Downloads from one host name at once, over all requests of a replica."
    )
    max_connections: int = Field(default=64, ge=1, description="Open connections of a replica's media downloads.")
    io_threads: int = Field(
        default=8, ge=1, description="Threads for DNS look-ups and local file reads (their own pool, per replica)."
    )
    decode_threads: int = Field(
        default=2, ge=1,
        description="Images and videos decoded at once per replica (their own thread pool; more wait their turn).",
    )
    video_codec_threads: int = Field(default=2, ge=1, description="FFmpeg threads decoding one video.")
    video_formats: list[str] = Field(
        default_factory=lambda: ["mov", "mp4", "matroska", "webm", "avi", "mpegts", "mpeg", "gif", "flv", "ogg"],
        min_length=1,
        description=(
            "FFmpeg demuxers a `video` may be read with; others (concat playlists, sdp, hls, images, ...) "
            "are refused before FFmpeg reads the data."
        ),
    )
    max_video_list_frames: int = Field(
        default=128, ge=1, description="Most frame images of a video given as a list of images."
    )
    max_request_decoded_pixels: int = Field(
        default=16 * 1024**3, ge=1,
        description=(
            "Source pixels one request may decode, over its images and every video frame decoded "
            "(sampled or not); bounds the CPU a request costs."
        ),
    )


class IngressConfig(_Strict):
    """Options of the HTTP ingress deployment."""

    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 beyond)."
    )
    health_timeout_s: float = Field(
        default=5.0, gt=0, description="How long /health waits for each model's engine."
    )
    max_n: int = Field(default=8, ge=1, description="Largest `n` (choices per request) accepted.")
    max_choices: int = Field(
        default=64, ge=1,
        description="Most choices one /v1/completions request asks for (prompts x n): each is an engine request.",
    )
    prompt_chars_per_token: int = Field(
        default=16, ge=1,
        description=(
            "Prompt text longer than max_model_len x this many characters is refused (400) before "
            "the engine tokenizes it on its event loop; natural text averages 3-5 characters a token."
        ),
    )
    body_timeout_s: float = Field(
        default=60.0, gt=0, description="Time limit to receive a request body (408 beyond): slow uploads let go."
    )
    api_keys: list[str] = Field(
        default_factory=list,
        description="Accepted `Authorization: Bearer` keys; with none (here or in api_keys_env) the API is open.",
    )
    api_keys_env: str | None = Field(
        default="QWEN_VL_SERVE_API_KEYS",
        description="Environment variable with more accepted keys, comma-separated (e.g. from a Secret).",
    )
    media: MediaConfig = Field(default_factory=MediaConfig, description="Media fetching and decoding.")
    deployment: DeploymentOptions = Field(default_factory=DeploymentOptions)


class AppConfig(_Strict):
    """The whole application: the models and the ingress in front of them."""

    models: list[ModelConfig] = Field(min_length=1, description="Models served, one deployment each.")
    default_model: str | None = Field(
        default=None, description="Model used when a request names none (default: the first)."
    )
    ingress: IngressConfig = Field(default_factory=IngressConfig)

    @model_validator(mode="after")
    def _names_are_unique_and_default_known(self) -> AppConfig:
        names = [m.name for m in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"models: duplicate model names {duplicates}")
        if self.default_model is not None and self.default_model not in names:
            raise ValueError(f"default_model: {self.default_model!r} is not one of {names}")
        return self

    @property
    def default_model_name(self) -> str:
        """The model a request without `model` goes to."""
        return self.default_model or self.models[0].name
