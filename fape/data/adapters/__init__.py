"""Adapters: `fape data import KIND SRC --out DIR` (being written)."""
ADAPTER_HELP = ""
