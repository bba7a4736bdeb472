"""`python -m snnc ...` runs the `snnc` command (also under `torchrun -m snnc ...`)."""

from snnc.cli import main

main()
