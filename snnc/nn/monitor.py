"""Monitors: record inputs, outputs, attributes or gradients of chosen layers with hooks.

    mon = OutputMonitor(net, neuron.IFNode)        # every IFNode in net
    net(x_seq)
    mon.records            # all records, in the order they were made
    mon[0], mon['1']       # by position, or the list recorded by layer '1'
    mon.monitored_layers   # ['1', '3'] (names from net.named_modules())
    mon.clear_recorded_data(); mon.remove_hooks()

Each monitor takes an optional function applied to a value before it is
stored (e.g. a firing rate, or `tensor_cache.float_spike_to_bool`).  Gradient
monitors record during `backward()`, so the deepest layer comes first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["BaseMonitor", "OutputMonitor", "InputMonitor", "AttributeMonitor", "GradInputMonitor",
           "GradOutputMonitor"]

Instance = type | tuple[type, ...] | None


def _identity(x: Any) -> Any:
    return x


def _unpack(x: Any) -> Any:
    return x[0] if isinstance(x, tuple) and len(x) == 1 else x


class _Records(list):
    """The list of records; `records.clear()` (used in the seeds) also clears the per-layer index."""

    def __init__(self, monitor: BaseMonitor) -> None:
        super().__init__()
        self._index = monitor.name_records_index

    def clear(self) -> None:
        super().clear()
        for idx in self._index.values():
            idx.clear()


class BaseMonitor:
    """Records, their per-layer index, the hooks, and enable/disable."""

    def __init__(self) -> None:
        self.hooks: list[RemovableHandle] = []
        self.monitored_layers: list[str] = []
        self.name_records_index: dict[str, list[int]] = {}
        self.records: list[Any] = _Records(self)
        self._enable = True

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            if key not in self.name_records_index:
                raise KeyError(f"layer {key!r} is not monitored; monitored layers: {self.monitored_layers}")
            return [self.records[i] for i in self.name_records_index[key]]
        return self.records[key]

    def __len__(self) -> int:
        return len(self.records)

    def _modules(self, net: nn.Module, instance: Instance) -> list[tuple[str, nn.Module]]:
        modules = [(name, m) for name, m in net.named_modules() if isinstance(m, instance or type(net))]
        for name, _ in modules:
            self.monitored_layers.append(name)
            self.name_records_index[name] = []
        return modules

    def _record(self, name: str, value: Any) -> None:
        self.name_records_index[name].append(len(self.records))
        self.records.append(value)

    def clear_recorded_data(self) -> None:
        self.records.clear()

    def enable(self) -> None:
        self._enable = True

    def disable(self) -> None:
        self._enable = False

    def is_enable(self) -> bool:
        return self._enable

    def remove_hooks(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()

    def __enter__(self) -> BaseMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove_hooks()

    def __del__(self) -> None:
        if hasattr(self, "hooks"):  # __init__ may have failed early
            self.remove_hooks()


class OutputMonitor(BaseMonitor):
    """Record `function_on_output(output)` of every module of type `instance` (default: type(net))."""

    def __init__(self, net: nn.Module, instance: Instance = None, function_on_output: Callable = _identity) -> None:
        super().__init__()
        self.function_on_output = function_on_output
        for name, m in self._modules(net, instance):
            self.hooks.append(m.register_forward_hook(self._hook(name)))

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if self._enable:
                self._record(name, self.function_on_output(_unpack(output)))
        return hook


class InputMonitor(BaseMonitor):
    """Record `function_on_input(input)` of every module of type `instance`."""

    def __init__(self, net: nn.Module, instance: Instance = None, function_on_input: Callable = _identity) -> None:
        super().__init__()
        self.function_on_input = function_on_input
        for name, m in self._modules(net, instance):
            self.hooks.append(m.register_forward_pre_hook(self._hook(name)))

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: Any) -> None:
            if self._enable:
                self._record(name, self.function_on_input(_unpack(inputs)))
        return hook


class AttributeMonitor(BaseMonitor):
    """Record `function_on_attribute(module.<attribute_name>)` before or after each forward."""

    def __init__(self, attribute_name: str, pre_forward: bool, net: nn.Module, instance: Instance = None,
                 function_on_attribute: Callable = _identity) -> None:
        super().__init__()
        self.attribute_name = attribute_name
        self.function_on_attribute = function_on_attribute
        for name, m in self._modules(net, instance):
            register = m.register_forward_pre_hook if pre_forward else m.register_forward_hook
            self.hooks.append(register(self._hook(name)))

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, *args: Any) -> None:
            if self._enable:
                self._record(name, self.function_on_attribute(getattr(module, self.attribute_name)))
        return hook


class GradInputMonitor(BaseMonitor):
    """Record `function_on_grad_input(dL/dX)`, the gradient w.r.t. each module's input."""

    def __init__(self, net: nn.Module, instance: Instance = None, function_on_grad_input: Callable = _identity) -> None:
        super().__init__()
        self.function_on_grad_input = function_on_grad_input
        for name, m in self._modules(net, instance):
            self.hooks.append(m.register_full_backward_hook(self._hook(name)))

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, grad_input: Any, grad_output: Any) -> None:
            if self._enable:
                self._record(name, self.function_on_grad_input(_unpack(grad_input)))
        return hook


class GradOutputMonitor(BaseMonitor):
    """Record `function_on_grad_output(dL/dY)`, the gradient w.r.t. each module's output."""

    def __init__(self, net: nn.Module, instance: Instance = None,
                 function_on_grad_output: Callable = _identity) -> None:
        super().__init__()
        self.function_on_grad_output = function_on_grad_output
        for name, m in self._modules(net, instance):
            self.hooks.append(m.register_full_backward_hook(self._hook(name)))

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, grad_input: Any, grad_output: Any) -> None:
            if self._enable:
                self._record(name, self.function_on_grad_output(_unpack(grad_output)))
        return hook
