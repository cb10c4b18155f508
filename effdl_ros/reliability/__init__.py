"""Reliability tools (issue 10): lying-message mutators for fuzzing, per-node fuzz setups, the
save-kill trial for atomic checkpoints, and soak measurement. No algorithm here; nothing imports it
at node run time."""
