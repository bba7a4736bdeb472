"""Standard ANN architectures written in the repository (torchvision's CPU wheels do not import on our torch)."""
