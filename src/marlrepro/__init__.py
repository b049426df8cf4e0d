"""marlrepro: regenerate decentralised cooperative MARL papers as one Snakemake pipeline."""

__version__ = "0.1.0"
