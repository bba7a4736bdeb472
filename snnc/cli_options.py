"""The options several `snnc` commands share (typer declarations, one definition each) and their help texts."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

MODEL_HELP = "Model file (.snnir, .pt2, .onnx, .nir, NetX .net), an artifact folder, or package.module:attribute (or file.py:attribute)."

# The flags by which the commands take the options that errors deep inside snnc may name in a hint
# (snnc.core.spelling); a target option without a flag of its own is spelled -O key=value.
CLI_FLAGS = {"T": "-T", "time_steps": "-T", "batch_size": "--batch-size", "dtype": "--dtype",
             "input_shape": "--input-shape", "weights": "--weights", "trust_pickle": "--trust-pickle",
             "input_scale": "--input-scale", "max_memory": "--max-memory", "device": "--device", "dt": "--dt",
             "bias_correction": "--bias-correction", "signed": "--signed"}

# Options several commands share: one definition each.
SIGNED_HELP = ("Signed IF neurons: a -1 spike takes back an earlier spike when later input cancels it, so the "
               "spike count follows the ReLU of the summed input (closer to the ANN at every T; cpu, triton and "
               "lynxi targets).")
ModelArgument = Annotated[str, typer.Argument(help=MODEL_HELP, metavar="MODEL", show_default=False)]
InputShapeOption = Annotated[Optional[str], typer.Option(
    "--input-shape", metavar="NAME:[N,...]",
    help="Input shape of a Python model spec or a whole-model pickle, batch first: x:[1,1,8,8] "
         "(the batch dim may be any number or N). Model files declare their own shapes.")]
WeightsOption = Annotated[Optional[str], typer.Option(
    "--weights", metavar="FILE", help="A state_dict file (torch.save(model.state_dict(), FILE)) for a Python model "
                                      "spec; read with weights_only=True.")]
TrustPickleOption = Annotated[bool, typer.Option(
    "--trust-pickle", help="Allow unpickling a whole-model torch.save file given as MODEL (runs any code in it: only "
                           "files you made). It does not apply to --weights.")]
DtOption = Annotated[Optional[float], typer.Option(
    "--dt", metavar="SECONDS", help="NIR input: the time step (seconds) its continuous-time neurons are discretised "
                                    "with (NIR files carry none: default 1e-4 with a warning; sinabs files use 1).")]
InputScaleOption = Annotated[Optional[str], typer.Option(
    "--input-scale", metavar="S", help="Multiply the data read from -i, --calib and --eval by S, e.g. 1/255 for "
                                       "0..255 images. Integer data other than 0/1 needs it (1 uses the values as "
                                       "they are).")]


ANALOG_HELP = ("Hybrid conversion: run these ops, which have no rate code, on the decoded rate of their input "
               "(silu, sigmoid, hardswish, hardsigmoid, gelu, tanh, softmax, layer_norm, matmul: a product of two "
               "rate-coded values, or all; "
               "docs/conversion.md).")
