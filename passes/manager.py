"""Pass registry, named pipelines and the PassManager.

A pass is a named, pure `Graph -> Graph`. Passes with parameters are frozen
models whose fields are their options: `layout{to=TNX}` on the CLI. A conversion
pass (registered with `context=True`) is called `(graph, context)` with the
PassManager's ConversionContext: the calibration data and typed options, and what
earlier passes left there (calibrate's statistics).
"""

from __future__ import annotations

import re
from pathlib import Path
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict

# The registry: the package snnc.passes imports every pass module, and Python imports it before this
# module, so this import only names that dependency of parse_pipeline (it is no cycle at run time).
import snnc.passes  # noqa: F401
from snnc.core.errors import PassError, SnncError, VerifyError
from snnc.ir.graph import Graph
from snnc.ir.verify import verify
from snnc.passes.context import ConversionContext

PassFn = Callable[[Graph], Graph]  # or (graph, context) -> Graph when fn.uses_context


class PassSpec(BaseModel):
    """Base of passes with options: a frozen model whose fields are the options, called on a graph."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    uses_context: ClassVar[bool] = False  # True: called (graph, context) with the PassManager's context

    def __call__(self, graph: Graph) -> Graph:
        raise NotImplementedError(type(self).__name__)


@dataclass(frozen=True)
class PassInfo:
    name: str
    factory: Callable[..., PassFn]  # called with the pass's options, returns the pass
    doc: str


PASSES: dict[str, PassInfo] = {}


def register_pass(name: str, *, context: bool = False):
    """Register a pass function (no options) or a class whose instances are passes.

    context=True: a function called (graph, context) with the PassManager's ConversionContext
    (None when the pipeline has none); a PassSpec says so with `uses_context = True` instead.
    """

    def deco(obj):
        if name in PASSES:
            raise RuntimeError(f"pass {name!r} registered twice")
        doc = (obj.__doc__ or "").strip().splitlines()[0] if obj.__doc__ else ""
        if isinstance(obj, type):
            factory = obj
        else:
            def factory(**opts: Any) -> PassFn:
                if opts:
                    raise PassError(f"pass {name!r} takes no options, got {sorted(opts)}")
                return obj
        PASSES[name] = PassInfo(name, factory, doc)
        obj.pass_name = name
        if not isinstance(obj, type):
            obj.uses_context = context
        return obj

    return deco


# Named pipelines. "convert" turns a ReLU ANN into an SNN (snnc.convert, and `snnc compile --calib`
# before the target's pipeline): calibrate sketches the activations that normalize reads; normalize
# wraps each ReLU in Scale(1/lambda) -> ReLU -> Scale(lambda) on the ANN, where to-time-layout
# leaves it; relu-to-if then makes the ReLU an IF neuron; bias-correction (a no-op unless asked
# for) needs the converted graph before any folding. A target may add its own conversion passes
# as "convert-<target>" (the lava package registers reset to 0 and threshold calibration).
# reorder-maxpool moves max pooling before its ReLU (on the ANN) before calibrate measures the
# ReLUs; running-maxpool makes the max pooling of rate-coded values converge, before relu-to-if
# (which warns about any max pooling left over spikes). See passes/maxpool.py.
# rate-decode (the hybrid --analog mode, passes/analog.py) finds the rate-coded values from the ReLUs
# that relu-to-if will convert, so it runs before it, on the time layout.
# The target pipelines: fold-scales before fold-constants (it leaves Scale chains to merge);
# layout after the rewrites (they do not care) and before fuse, which runs last
# so its groups name nodes that still exist.
PIPELINES: dict[str, str] = {
    "convert": "fuse-bn,reorder-maxpool,calibrate,normalize,to-time-layout,running-maxpool,rate-decode,relu-to-if,"
               "bias-correction,dce",
    "cpu": "fuse-bn,fold-scales,fold-constants,remove-identities,layout{to=TNX},dce,fuse",
    "triton": "fuse-bn,fold-scales,fold-constants,remove-identities,layout{to=TNX},dce,fuse",
    "lava": "fuse-bn,dce",  # lower() then runs quantize-loihi (NetX legalization + Loihi fixed point)
    "nir": "fuse-bn,fold-scales,fold-constants,remove-identities,dce",  # NIR has no BatchNorm; fewer Scale nodes
    # scales folded into weights and thresholds: fewer float16 roundings (lower() folds time into batch)
    "lynxi": "fuse-bn,fold-scales,fold-constants,remove-identities,compact-layout,dce",  # compact: <= 4-D
}


def conversion_pipeline(target: str | None = None) -> str:
    """PIPELINES["convert"], then the target's own conversion passes ("convert-<target>") if it has any."""
    extra = PIPELINES.get(f"convert-{target}") if target else None
    return PIPELINES["convert"] + (f",{extra}" if extra else "")


_SPEC = re.compile(r"\s*([a-z0-9-]+)\s*(?:\{([^}]*)\})?\s*(?:,|$)")


def parse_pipeline(spec: str) -> list[tuple[str, PassFn]]:
    """'fuse-bn,dce' or 'normalize{mode=99.9%}' -> [(name, pass)]; unknown names are rejected."""
    out: list[tuple[str, PassFn]] = []
    pos = 0
    spec = spec.strip()
    while pos < len(spec):
        m = _SPEC.match(spec, pos)
        if not m or m.end() == pos:
            raise PassError(f"cannot parse pass pipeline {spec!r} at {spec[pos:]!r}",
                            hint="write passes as 'a,b{opt=value},c'")
        name, opts = m.group(1), m.group(2)
        if name not in PASSES:
            raise PassError(f"unknown pass {name!r}", hint=f"known passes: {', '.join(sorted(PASSES))}")
        kwargs = dict(kv.split("=", 1) for kv in opts.split(";") if kv.strip()) if opts else {}
        try:
            out.append((name, PASSES[name].factory(**{k.strip(): v.strip() for k, v in kwargs.items()})))
        except SnncError:
            raise
        except Exception as e:  # noqa: BLE001 - pydantic validation of options
            raise PassError(f"bad options for pass {name!r}: {e}") from None
        pos = m.end()
    return out


@dataclass
class PassManager:
    """Runs passes in order; optionally verifies and prints after each, and times them."""

    passes: list[tuple[str, PassFn]]
    verify_each: bool = False
    print_after: set[str] = field(default_factory=set)
    printer: Callable[[str], None] = print
    timings: list[tuple[str, float]] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)  # nodes before and after each pass
    dump_dir: Path | None = None  # write 00-input.txt, 01-<pass>.txt, ... (the IR after each pass)
    context: ConversionContext | None = None  # what conversion passes read (calibration data, options, stats)

    def __post_init__(self) -> None:
        unknown = set(self.print_after) - {n for n, _ in self.passes} - {"all"}
        if unknown:
            raise PassError(f"--print-after names {', '.join(sorted(unknown))}, which this pipeline does not run",
                            hint=f"passes in the pipeline: {', '.join(n for n, _ in self.passes) or 'none'}, or 'all'")

    def report(self) -> str:
        """One line per pass run: time and node count change (what `snnc compile -v` shows)."""
        lines = [f"  pass {name:<20s} {secs * 1000:8.1f} ms   {a} -> {b} nodes"
                 for (name, secs), (a, b) in zip(self.timings, self.sizes)]
        total = sum(t for _, t in self.timings)
        return "\n".join(lines + [f"  {'total':<25s} {total * 1000:8.1f} ms"])

    def _dump(self, index: int, name: str, graph: Graph) -> None:
        if self.dump_dir is not None:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            (self.dump_dir / f"{index:02d}-{name}.txt").write_text(str(graph))

    def run(self, graph: Graph) -> Graph:
        if self.context is not None:
            self.context.model = graph
        self._dump(0, "input", graph)
        for index, (name, fn) in enumerate(self.passes, 1):
            before = len(graph)
            start = time.perf_counter()
            try:
                graph = fn(graph, self.context) if getattr(fn, "uses_context", False) else fn(graph)
            except SnncError:
                raise
            except Exception as e:  # noqa: BLE001 - name the pass that failed
                raise PassError(f"pass {name!r} failed: {type(e).__name__}: {e}") from e
            self.timings.append((name, time.perf_counter() - start))
            self.sizes.append((before, len(graph)))
            if self.verify_each:
                try:
                    verify(graph)
                except VerifyError as e:
                    raise VerifyError(f"after pass {name!r}: {e.message}", hint=e.hint) from None
            if name in self.print_after or "all" in self.print_after:
                self.printer(f"// after {name}\n{graph}")
            self._dump(index, name, graph)
        return graph
