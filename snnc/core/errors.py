"""The snnc error hierarchy.

Every error a user can cause is an `SnncError`; each family has its own class
(and its own CLI exit code), and each message names the node or module it is
about and what to do instead.
"""

from __future__ import annotations


class SnncError(Exception):
    """Base of every error snnc raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(self._text())

    def _text(self) -> str:
        return self.message if self.hint is None else f"{self.message}\nhint: {self.hint}"

    def with_hint(self, hint: str) -> "SnncError":
        """Give the error `hint` where it has none; returns self to re-raise."""
        if self.hint is None:
            self.hint = hint
            self.args = (self._text(),)
        return self

    def at_source(self, source: str | None) -> "SnncError":
        """Append where in the user's code this happened ('file.py:12'), once; returns self to re-raise."""
        if source and not getattr(self, "source", None):
            self.source = source
            self.message = f"{self.message} [{source}]"
            self.args = (self._text(),)
        return self


def one_line(e: Exception) -> str:
    """e's message on one line: a pydantic ValidationError as `field.path: message (got value)` per error."""
    errors = getattr(e, "errors", None)
    if callable(errors) and type(e).__name__ == "ValidationError":
        try:
            parts = [f"{'.'.join(map(str, err['loc']))}: {err['msg']} (got {err.get('input')!r:.40})"
                     for err in errors()]
        except Exception:  # noqa: BLE001 - any other shape: the plain text below
            parts = []
        if parts:
            return "; ".join(parts)
    return " ".join(str(e).split())


class FrontendError(SnncError):
    """A model could not be read into the IR."""

    exit_code = 3


class UnsupportedOpError(FrontendError):
    """The model uses a module, function or op that snnc cannot represent."""


class UnsupportedAttributeError(FrontendError):
    """A supported op uses an attribute value snnc cannot represent."""


class MalformedFileError(FrontendError):
    """A model file is truncated, has the wrong magic, or is internally inconsistent."""


class UntrustedPickleError(FrontendError):
    """A file would need unpickling arbitrary objects, which may execute code."""


class VerifyError(SnncError):
    """The IR graph is invalid (shape/type mismatch, dangling reference, ...)."""

    exit_code = 4


class PassError(SnncError):
    """A pass could not transform the graph."""

    exit_code = 5


class LoweringError(SnncError):
    """A backend cannot express the graph (unsupported op or attribute for the target)."""

    exit_code = 6


class InputError(SnncError):
    """Bad user data: wrong shape or dtype, NaN/Inf, empty calibration set, T <= 0."""

    exit_code = 7


class TensorTooLargeError(MalformedFileError):
    """A file claims a tensor larger than snnc's size limit (see snnc.core.limits); refused before allocating."""


class UnsafeFileReferenceError(FrontendError):
    """A model file refers to data outside its own folder (an escaping path, a symlink, an HDF5 external link)."""


class ResourceError(InputError):
    """A run would need more memory than allowed or available; refused before allocating."""


class OutputPathError(InputError):
    """An output path snnc will not write: it holds what is not snnc's (without --force), is a device,
    pipe or socket, or its folder cannot be written."""
