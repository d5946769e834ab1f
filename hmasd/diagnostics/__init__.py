"""Diagnostics: the symmetry audit (``hmasd-audit``) that tells an env bias from a pipeline bias from chance.

:mod:`hmasd.diagnostics.stats` holds the statistics (NumPy only), :mod:`hmasd.diagnostics.audit` the sub-commands
``env``, ``permute``, ``policy``, ``runs`` and ``pipeline``. Only ``policy`` needs torch.
"""
