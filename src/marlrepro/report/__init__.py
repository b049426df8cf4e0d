"""Aggregation of run directories into tables and figures, each beside the published numbers.

Pure functions over run directories and DataFrames (:mod:`~marlrepro.report.runs`,
:mod:`~marlrepro.report.curves`, :mod:`~marlrepro.report.tables`), seaborn figures
(:mod:`~marlrepro.report.figures`) and the papers' transcribed numbers
(:mod:`~marlrepro.report.published`); :mod:`~marlrepro.report.build` assembles each report item
from run directories. The Snakemake rules call it through the thin scripts in ``workflow/scripts/``.
Every file is written atomically (:func:`marlrepro.io_utils.atomic_write`).
"""
