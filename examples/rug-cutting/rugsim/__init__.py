"""Simulated rug roll and line camera for the rug-cutting example (see rug.py, camera.py, baseline.py)."""
from .camera import Camera, truth
from .rug import KINDS, Rug

__all__ = ["Camera", "KINDS", "Rug", "truth"]
