"""Declarative figures for claim checks: data, not drawings.

A claim check returns what a person would rather look at than read (curves, images,
histograms) as plain data in these classes; ``gradhub demo --report DIR`` draws them with
matplotlib when it is installed (``pip install gradhub[plot]``) and writes their data as
tables when it is not. Plugins therefore never import matplotlib.

Values may be given as lists, NumPy arrays or tensors (on any device); they are stored
as nested lists of floats, so a figure is JSON-serialisable (:meth:`to_dict`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Figure", "Histogram", "ImageGrid", "ImageRow", "LinePlot", "Series", "as_floats"]


def as_floats(values: Any) -> Any:
    """A tensor, array or (nested) sequence as nested lists of Python floats."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().double()
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, (list, tuple)):
        return [as_floats(value) for value in values]
    return float(values)


Style = Literal["line", "dashed", "points", "step", "markers"]
"""How a :class:`Series` is drawn: a solid or dashed line, a faint cloud of small points
(many samples), a step function, or ``"markers"``: a few large points drawn above every
line and cloud (modes, optima, a model's operating point)."""
Scale = Literal["linear", "log", "symlog"]


@dataclass
class Series:
    """One curve (or point cloud, with ``style="points"``) of a :class:`LinePlot`.

    Each series has its own colour, the ``index``-th of matplotlib's cycle (``"C0"``,
    ``"C1"``, ...) by its position in the plot, whatever its style; ``color`` overrides it
    (any matplotlib colour, e.g. ``"C3"`` or ``"black"``) to pair series that belong together.
    """

    label: str
    x: Any
    y: Any
    style: Style = "line"
    color: str | None = None

    def __post_init__(self) -> None:
        self.x, self.y = as_floats(self.x), as_floats(self.y)
        if len(self.x) != len(self.y):
            raise ValueError(f"series {self.label!r}: {len(self.x)} x values but {len(self.y)} y values")


@dataclass
class LinePlot:
    """Curves on shared axes, e.g. residual against iteration for two solvers."""

    title: str
    series: list[Series]
    xlabel: str = ""
    ylabel: str = ""
    xscale: Scale = "linear"
    yscale: Scale = "linear"
    vlines: list[tuple[float, str]] = field(default_factory=list)
    """Vertical markers ``(x, label)``, e.g. a threshold or the outlier eigenvalues."""
    kind: Literal["lines"] = "lines"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ImageRow:
    """A labelled row of images; each image is (H, W) grey or (3, H, W) / (H, W, 3) colour."""

    label: str
    images: list[Any]

    def __post_init__(self) -> None:
        self.images = [as_floats(image) for image in self.images]


@dataclass
class ImageGrid:
    """Rows of images side by side, e.g. originals, reconstructions and a baseline's."""

    title: str
    rows: list[ImageRow]
    column_labels: list[str] = field(default_factory=list)
    value_range: tuple[float, float] | None = None
    """Shared colour range; None scales each image to its own range."""
    kind: Literal["images"] = "images"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Histogram:
    """Distributions of values, e.g. a Hessian's eigenvalues, optionally on a log axis."""

    title: str
    values: dict[str, Any]
    bins: int = 50
    xlabel: str = ""
    ylabel: str = "count"
    yscale: Scale = "linear"
    vlines: list[tuple[float, str]] = field(default_factory=list)
    kind: Literal["histogram"] = "histogram"

    def __post_init__(self) -> None:
        self.values = {label: as_floats(values) for label, values in self.values.items()}
        for label, values in self.values.items():
            if not all(math.isfinite(value) for value in values):
                raise ValueError(f"histogram {self.title!r}: series {label!r} has non-finite values")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Figure = LinePlot | ImageGrid | Histogram
