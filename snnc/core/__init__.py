"""The basement of snnc: what every layer may import and what imports nothing of snnc above it.

errors (the typed hierarchy and exit codes), limits and safety (defensive reading of files from
elsewhere), isolate (the helper process that bounds a read), fileio (output paths, the cache
folder), progress, spelling (hints), userdata (arrays a user hands in), datasets (the bundled
digits), dynamics (the neuron semantics, defined once). See docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
