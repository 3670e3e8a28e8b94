"""Updating a deployed family: `reds adapt` (LoRA, DoRA, GaLore, adapters, bn-head, full
fine-tuning of every submodel together, kept nested; `adapt`) and `reds profile` (what a
step costs: `profile`). The registries below import no torch, so the command line lists
them quickly; the modules load on first use."""
METHODS = ("lora", "dora", "galore", "adapter", "bn-head", "full", "bn-stats")
RANKED = ("lora", "dora", "galore", "adapter")  # --rank matters
MERGEABLE = ("lora", "dora", "galore", "bn-head", "full", "bn-stats")  # one set of nested weights after
TASKS = ("shift", "new-classes")

__all__ = ["MERGEABLE", "METHODS", "RANKED", "TASKS"]
