"""The typed description of a method: :class:`MethodSpec`, :class:`Paper`, :class:`Kind`.

These models are the single source of truth for the plugin protocol: the JSON Schema in
``specs/`` is generated from them (``python -m gradhub.generate specs``, ``make specs``) and a test fails
when the two drift. Nothing here imports torch, so a plugin's entry module, which only
builds specs, stays cheap to import.
"""

from __future__ import annotations

import enum
import json
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from gradhub.hyperparameters import Hyperparameters
from gradhub.registry import KINDS, NAME_PATTERN

__all__ = [
    "AttackCapabilities",
    "Capabilities",
    "DistributedSupport",
    "Kind",
    "LayerCapabilities",
    "LossCapabilities",
    "MethodSpec",
    "OptimizerCapabilities",
    "Paper",
    "ProbeCapabilities",
    "SamplerCapabilities",
    "ScheduleCapabilities",
    "SolverCapabilities",
    "Support",
]

PROTOCOL_VERSION = "2.0"
"""Version of the plugin protocol described in ``specs/plugin-protocol.md``."""


class _KindBase(str, enum.Enum):
    def __str__(self) -> str:
        return self.value


Kind = _KindBase("Kind", [(kind.upper(), kind) for kind in KINDS], module=__name__)  # type: ignore[misc]
Kind.__doc__ = "The eight kinds of method (:data:`gradhub.registry.KINDS`); each has an interface in ``gradhub.kinds``."
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=64)]
ImportPath = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z_][\w.]*(?::[A-Za-z_][\w.]*)?$"),
    Field(
        description=(
            '"package.module:attribute", imported only when needed; "package.module" alone names the '
            "attribute called like the method (so a function named after its method is not named twice)"
        )
    ),
]
Url = Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
DType = Literal["float16", "bfloat16", "float32", "float64"]
Line = Annotated[str, StringConstraints(min_length=1, max_length=160, pattern=r"^[^\n]+$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Paper(_Frozen):
    """The paper a method comes from."""

    title: Line
    authors: tuple[Line, ...] = Field(min_length=1)
    year: int = Field(ge=1900, le=2100)
    venue: Line | None = Field(None, description='where it was published, e.g. "ICLR 2021"')
    arxiv: str | None = Field(None, pattern=r"^\d{4}\.\d{4,5}$", description="arXiv id")
    url: Url | None = None
    code: Url | None = Field(None, description="the official implementation")

    def citation_key(self) -> str:
        """``heo2021slowing``: first author's surname, year, first significant title word."""
        # Letters with diacritics lose them (Döbler -> dobler), as BibTeX keys are ASCII.
        ascii_surname = unicodedata.normalize("NFKD", self.authors[0].split()[-1]).encode("ascii", "ignore").decode()
        surname = re.sub(r"[^a-z]", "", ascii_surname.lower()) or "anon"
        stop = {"a", "an", "the", "on", "of", "for", "and", "to", "in", "with", "via"}
        words = [w for w in re.findall(r"[a-z]+", self.title.lower()) if w not in stop]
        return f"{surname}{self.year}{words[0] if words else ''}"

    def bibtex(self) -> str:
        """A BibTeX entry for the paper (``@inproceedings`` when a venue is known)."""
        fields: list[tuple[str, str]] = [
            ("title", "{" + self.title + "}"),
            ("author", " and ".join(self.authors)),
            ("year", str(self.year)),
        ]
        if self.venue:
            entry = "inproceedings"
            fields.append(("booktitle", self.venue))
        else:
            entry = "article"
            fields.append(("journal", f"arXiv preprint arXiv:{self.arxiv}" if self.arxiv else "preprint"))
        if self.arxiv:
            fields += [("eprint", self.arxiv), ("archivePrefix", "arXiv")]
        if self.url:
            fields.append(("url", self.url))
        body = ",\n".join(f"  {key} = {{{value}}}" for key, value in fields)
        return f"@{entry}{{{self.citation_key()},\n{body}\n}}"


class Capabilities(_Frozen):
    """What a method supports; the conformance suite chooses its checks from these."""


class Support(_Frozen):
    """Whether an optimizer works in a setting (a distributed wrapper, ``torch.compile``), and how we know."""

    status: Literal["tested", "supported", "untested", "unsupported"] = Field(
        description=(
            "tested: the conformance suite checks it (DDP/FSDP2: 2 processes against one; compile: compiled "
            "against eager); supported: expected to work, not checked; untested: unknown; unsupported: does "
            "not work (reason required)"
        )
    )
    reason: str = Field("", description="why it is unsupported (or what supported rests on)")

    @model_validator(mode="after")
    def _reason_for_unsupported(self) -> Support:
        if self.status == "unsupported" and not self.reason.strip():
            raise ValueError("an unsupported setting needs a reason")
        return self

    def __str__(self) -> str:
        return f"{self.status} ({self.reason})" if self.reason else self.status


DistributedSupport = Support
"""The name of :class:`Support` before ``compile`` shared it (gradhub 0.2.0)."""


class OptimizerCapabilities(Capabilities):
    kind: Literal["optimizer"] = "optimizer"
    ddp: Support = Field(
        Support(status="tested"),
        description="under DistributedDataParallel (gradients averaged across processes before step())",
    )
    fsdp2: Support = Field(
        Support(status="untested"),
        description="under FSDP2 fully_shard (parameters and state are DTensor shards of dim 0)",
    )
    compile: Support = Field(
        Support(status="untested"),
        description=(
            "under torch.compile of step(): tested = the suite's compiled_step check runs it (at most two "
            "compilations per frame over 10 steps with an lr changed every step, equal to eager)"
        ),
    )
    supports_foreach: bool = Field(False, description="has a multi-tensor path selected by foreach=True")
    fused: str = Field(
        "",
        description=(
            "what fused=True runs and what it needs at run time (a compiler, say); empty: no fused path. "
            "The suite checks the fused path against the per-tensor one"
        ),
    )
    requires_closure: bool = Field(False, description="step() needs a closure that re-evaluates the loss")
    param_groups: bool = Field(True, description="param groups behave like separate optimizers")
    sparse_gradients: bool = Field(False, description="accepts sparse gradients")


class LayerCapabilities(Capabilities):
    kind: Literal["layer"] = "layer"
    gradient: Literal["exact", "surrogate"] = Field(
        "exact", description="exact: backward is the true gradient (gradcheck applies)"
    )


class LossCapabilities(Capabilities):
    kind: Literal["loss"] = "loss"
    form: Literal["prediction", "model"] = Field(
        "prediction",
        description=(
            "prediction: loss(prediction, target, ...), gradients flow into the prediction; model: "
            "loss(model, *data, generator=..., **hparams) draws its own noise or times from the generator "
            "and gradients flow into the model's parameters (diffusion and score-matching objectives)"
        ),
    )
    gradient: Literal["exact", "surrogate"] = "exact"
    reductions: tuple[Literal["none", "mean", "sum"], ...] = Field(
        (), description="values its reduction= argument takes; empty if it has none"
    )


class SolverCapabilities(Capabilities):
    kind: Literal["solver"] = "solver"


class AttackCapabilities(Capabilities):
    kind: Literal["attack"] = "attack"
    perturbation_norm: Literal["linf", "l2"] | None = Field(
        None, description="the norm bounding the perturbation by the eps hyperparameter, if any"
    )
    model_calls_per_iteration: int = Field(
        1, ge=1, description="forward calls of the model per iteration, at most (the budget check counts them)"
    )
    setup_model_calls: int = Field(
        0, ge=0, description="forward calls before the first iteration (e.g. to read activation shapes)"
    )


class SamplerCapabilities(Capabilities):
    kind: Literal["sampler"] = "sampler"
    stochastic: bool = Field(
        True,
        description=(
            "draws randomness from its generator; False for a deterministic sampler (an ODE solver "
            "from a given start), whose samples must then not depend on the generator"
        ),
    )


class ScheduleCapabilities(Capabilities):
    kind: Literal["schedule"] = "schedule"
    form: Literal["scheduler", "factory", "step", "progress", "noise"] | None = Field(
        None,
        description=(
            "scheduler: an LRScheduler subclass, cls(optimizer, **hparams); factory: fn(optimizer, **hparams) "
            "returns an LRScheduler; step: fn(step, **hparams) -> rate; progress: fn(p, **hparams) -> value "
            "for p in [0, 1]; noise: target(**hparams) is a noise schedule with t_min, t_max, alpha(t), "
            "sigma(t). None: scheduler for a class target, step for a function"
        ),
    )


class ProbeCapabilities(Capabilities):
    kind: Literal["probe"] = "probe"
    form: Literal["function", "recorder"] = Field(
        "function",
        description=(
            "function: probe(model, *args, generator=None, **hparams) measures the model as it is; "
            "recorder: cls(model, **hparams) watches a run, record() once per training step, "
            "with a state_dict round trip"
        ),
    )


AnyCapabilities = Annotated[
    OptimizerCapabilities
    | LayerCapabilities
    | LossCapabilities
    | SolverCapabilities
    | AttackCapabilities
    | SamplerCapabilities
    | ScheduleCapabilities
    | ProbeCapabilities,
    Field(discriminator="kind"),
]

CAPABILITIES: dict[Kind, type[Capabilities]] = {
    Kind(model.model_fields["kind"].default): model for model in Capabilities.__subclasses__()
}

HyperparameterModel = Annotated[
    type[Hyperparameters],
    PlainSerializer(lambda model: model.model_json_schema(), return_type=dict, when_used="json"),
    WithJsonSchema({"type": "object", "description": "JSON Schema of the hyperparameters"}),
]


class MethodSpec(_Frozen):
    """Everything gradhub knows about one method without importing its implementation."""

    name: Name = Field(description="unique lower-case name; the entry point's name")
    kind: Kind
    summary: Line = Field(description="one line: what the method does")
    paper: Paper
    target: ImportPath = Field(description="what gradhub.get returns, imported on first get")
    params: HyperparameterModel = Field(Hyperparameters, description="hyperparameters with defaults and bounds")
    example: ImportPath = Field(description="example(device, dtype, seed) -> the kind's example object (gradhub.kinds)")
    claims: tuple[ImportPath, ...] = Field(
        (), description="claim checks: functions returning gradhub.claims.ClaimResult"
    )
    aliases: tuple[Name, ...] = ()
    tags: tuple[Name, ...] = ()
    devices: tuple[Literal["cpu", "cuda", "mps", "xpu"], ...] = Field(("cpu", "cuda"), min_length=1)
    dtypes: tuple[DType, ...] = Field(("float32", "float64"), min_length=1)
    capabilities: AnyCapabilities
    expected_failures: dict[str, Line] = Field(
        default_factory=dict, description="conformance check id -> why it is expected to fail"
    )
    inert: dict[str, Line] = Field(
        default_factory=dict,
        description=(
            "hyperparameter -> why changing it from its value in the example does not change the example's "
            "result (hyperparameters_have_effect checks every other one; path options such as foreach are left out)"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _default_capabilities(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            for key in ("target", "example"):
                path = data.get(key)
                if isinstance(path, str) and ":" not in path:
                    data = {**data, key: f"{path}:{data['name']}"}
        if isinstance(data, dict) and "kind" in data:
            kind = data["kind"]
            kind = kind.value if isinstance(kind, Kind) else kind
            capabilities = data.get("capabilities")
            if capabilities is None:
                data = {**data, "capabilities": {"kind": kind}}
            elif isinstance(capabilities, dict) and "kind" not in capabilities:
                data = {**data, "capabilities": {**capabilities, "kind": kind}}
        return data

    @model_validator(mode="after")
    def _capabilities_match_kind(self) -> MethodSpec:
        if self.capabilities.kind != self.kind.value:
            raise ValueError(
                f"capabilities are for kind {self.capabilities.kind!r} but the method is a {self.kind.value}"
            )
        if self.name in self.aliases:
            raise ValueError(f"alias {self.name!r} repeats the method's own name")
        unknown = sorted(set(self.inert) - set(self.params.model_fields))
        if unknown:
            raise ValueError(f"inert names {unknown}, which are not hyperparameters of {self.name!r}")
        return self

    @field_validator("expected_failures")
    @classmethod
    def _known_checks(cls, value: dict[str, str]) -> dict[str, str]:
        for check_id in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", check_id):
                raise ValueError(f"expected_failures key {check_id!r} is not a check id")
        return value


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas published in ``specs/``, by file name."""
    return {
        "method-spec.schema.json": MethodSpec.model_json_schema(mode="serialization"),
        "paper.schema.json": Paper.model_json_schema(),
    }


def write_json_schemas(directory: Path) -> list[Path]:
    """Write :func:`json_schemas` into ``directory``; returns the paths written."""
    written = []
    for filename, schema in json_schemas().items():
        path = directory / filename
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


CHECKS_BEGIN = "<!-- checks:begin (generated by `make specs`; do not edit) -->"
CHECKS_END = "<!-- checks:end -->"


def protocol_with_checks(text: str, tables: str) -> str:
    """``plugin-protocol.md`` with the generated tables of checks between the markers."""
    before, rest = text.split(CHECKS_BEGIN)
    _, after = rest.split(CHECKS_END)
    return f"{before}{CHECKS_BEGIN}\n{tables}{CHECKS_END}{after}"


FIRST_PARTY_HEADER = '''"""Method names shipped by first-party plugins (``plugins/<slug>`` -> ``gradhub-<slug>``).

Generated by ``make specs`` from the entry points in ``plugins/*/pyproject.toml``; do not edit.
Used only to answer a lookup of a method whose plugin is not installed with the pip command
that installs it. A test fails when this file is stale.
"""

FIRST_PARTY_METHODS: dict[str, str] = {
'''


def first_party_index(plugins: Path) -> dict[str, str]:
    """Method name -> plugin slug, read from the ``gradhub.<kind>`` entry points under ``plugins/``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    index: dict[str, str] = {}
    for pyproject in sorted(plugins.glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        slug = project["name"].removeprefix("gradhub-")
        groups = project.get("entry-points", {})
        for kind in KINDS:
            for name in groups.get(f"gradhub.{kind}", {}):
                index[name] = slug
    return dict(sorted(index.items(), key=lambda item: (item[1], item[0])))


def render_first_party(index: dict[str, str]) -> str:
    """The text of ``gradhub/_firstparty.py`` for ``index``."""
    rows = "".join(f"    {name!r}: {slug!r},\n".replace("'", '"') for name, slug in index.items())
    return FIRST_PARTY_HEADER + rows + "}\n"
