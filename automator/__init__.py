"""Automator: a GitOps image-update automator.

Registry tags -> per-workload policy -> surgical YAML edit -> one Git commit -> push.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
