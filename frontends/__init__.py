"""Frontends: each turns one kind of model into an `snnc.ir.Graph`."""

from snnc.frontends.torch_fx import trace

__all__ = ["trace"]
